#!/usr/bin/env bats
# splitlock-stat: kernel log parsing (every message form, garbage, through the
# sanitizer build), attribution to thread/process/symbol against live
# processes, run's exit status and process tree, the CAP_SYSLOG error, and —
# on CPUs that detect them — real split-lock traps.
load test_helper

FIX=$KBOX_ROOT/tests/fixtures/splitlock-stat
PROG=$KBOX_TESTBIN/splitlock-prog

setup() {
	require_applet splitlock-stat
	PROG_PID=
}

teardown() {
	exec 8>&- 2>/dev/null || true
	[ -z "$PROG_PID" ] || { kill "$PROG_PID" 2>/dev/null; wait "$PROG_PID" 2>/dev/null; } || true
}

# The sanitizer build, for everything that parses untrusted input:
# require_asan at the top of the test, then `run "$ASAN" ...`. (A skip
# inside `run` would only end run's subshell, and leave the test to fail on
# empty output instead of saying what is missing.)
require_asan() {
	[ -x "$KBOX_ROOT/kbox-asan" ] || skip "kbox-asan not built (make asan)"
	ASAN=$KBOX_ROOT/kbox-asan
}

# Starts the test program with -H (it keeps every thread alive until we
# close fd 8) and waits until it has done its split locks.
start_prog() {
	[ "$(kb splitlock-stat status --json | jq -r .mode)" != fatal ] ||
		skip "split locks are fatal (SIGBUS) on this machine"
	mkfifo "$BATS_TEST_TMPDIR/hold"
	"$PROG" "$@" -H <"$BATS_TEST_TMPDIR/hold" >"$BATS_TEST_TMPDIR/prog.out" &
	PROG_PID=$!
	exec 8>"$BATS_TEST_TMPDIR/hold"
	wait_until 30 "splitlock-prog $* to take its split locks and say ready" \
		grep -qx ready "$BATS_TEST_TMPDIR/prog.out" || { cat "$BATS_TEST_TMPDIR/prog.out"; return 1; }
}

stop_prog() {
	exec 8>&-
	wait_until 30 "splitlock-prog to end once released" ended "$PROG_PID"
	wait "$PROG_PID"
	PROG_PID=
}

prog_field() {   # prog_field KEY: value of KEY= on the program's first matching line
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$BATS_TEST_TMPDIR/prog.out" | head -1
}

# True when this CPU and kernel report split or bus locks in the log.
traps_reported() {
	grep -qwE 'split_lock_detect|bus_lock_detect' /proc/cpuinfo || return 1
	[ "$(kb splitlock-stat status --json | jq -r .mode)" != off ]
}

require_traps() {
	require_root
	traps_reported || skip "this CPU reports no split/bus-lock traps (no split_lock_detect/bus_lock_detect flag, or mode off)"
}

@test "help, version and usage errors" {
	run kb splitlock-stat --help
	assert_success
	assert_output --partial "splitlock-stat watch"
	run kb splitlock-stat summary -h
	assert_success
	run kb splitlock-stat watch --version
	assert_success
	assert_output --partial "kbox"
	run kb splitlock-stat frobnicate
	assert_failure 2
	assert_output --partial "unknown command 'frobnicate'"
	run kb splitlock-stat watch -n 0
	assert_failure 2
	run kb splitlock-stat watch --duration banana
	assert_failure 2
	run kb splitlock-stat run
	assert_failure 2
	assert_output --partial "needs a COMMAND"
	run kb splitlock-stat summary --kmsg "$FIX/forms.kmsg" --since-boot
	assert_failure 2
	run kb splitlock-stat status extra
	assert_failure 2
}

@test "a --kmsg file that cannot be read is an error for every command, before any output" {
	local cmd
	for cmd in status summary watch; do
		run kb splitlock-stat "$cmd" --kmsg "$BATS_TEST_TMPDIR/absent"
		assert_failure 1
		assert_output "splitlock-stat: $BATS_TEST_TMPDIR/absent: No such file or directory"
		run kb splitlock-stat "$cmd" --kmsg "$BATS_TEST_TMPDIR"
		assert_failure 1
		assert_output "splitlock-stat: $BATS_TEST_TMPDIR: Is a directory"
	done
}

@test "status reports this machine's CPU flags, sysctl and mode, text and JSON" {
	require_cmd jq
	run kb splitlock-stat status --json
	assert_success
	echo "$output" | jq -e . >/dev/null
	sld=false; bld=false
	grep -qw split_lock_detect /proc/cpuinfo && sld=true
	grep -qw bus_lock_detect /proc/cpuinfo && bld=true
	assert_equal "$(echo "$output" | jq -r .cpu.split_lock_detect)" "$sld"
	assert_equal "$(echo "$output" | jq -r .cpu.bus_lock_detect)" "$bld"
	if [ -r /proc/sys/kernel/split_lock_mitigate ]; then
		assert_equal "$(echo "$output" | jq -r .split_lock_mitigate)" "$(cat /proc/sys/kernel/split_lock_mitigate)"
	fi
	if [ "$sld$bld" = falsefalse ]; then
		assert_equal "$(echo "$output" | jq -r .mode)" off
	fi
	run kb splitlock-stat
	assert_success
	assert_line --partial "cpu: split_lock_detect"
	assert_line --regexp "^mode: "
	assert_line --regexp "^perf: "
}

# ---- real traps: only where the CPU reports them ---------------------------
# The kernel logs at most 10 reports per 5 s system-wide; these tests take 7
# split locks in all and come first, before the tests below take more (those
# read their own saved records, not the log). Fewer reports are accepted only
# when the kernel says it suppressed some (summary's "exact" is then false).

@test "live: watch attributes real traps to thread, process and symbol" {
	require_traps
	require_cmd jq
	# "$KBOX" itself, not kb: $! must be splitlock-stat, not a subshell
	# running it (whose descriptors and signals are not the watch's).
	"$KBOX" splitlock-stat watch --json -d 30 >"$BATS_TEST_TMPDIR/watch.json" &
	wpid=$!
	reads_kmsg() { ls -l /proc/"$wpid"/fd 2>/dev/null | grep -q /dev/kmsg; }
	wait_until 10 "splitlock-stat watch to open /dev/kmsg" reads_kmsg
	sleep 0.1
	start_prog -n 1 -t 2
	pid=$(prog_field pid)
	# Reports are logged synchronously in the trap; give the reader a moment.
	# Fewer may come when the kernel's rate limit drops some: checked below.
	both_read() {
		[ "$(jq -s --argjson p "$pid" '[.[] | select(.pid == $p)] | length' "$BATS_TEST_TMPDIR/watch.json")" -ge 2 ] ||
			grep -q '"suppressed"' "$BATS_TEST_TMPDIR/watch.json"
	}
	wait_until 5 "watch to print both reports of $pid" both_read || true
	kill -INT $wpid
	wait_until 10 "splitlock-stat watch to end on SIGINT" ended "$wpid"
	wait $wpid || true
	stop_prog
	mine=$(jq -c --argjson p "$pid" 'select(.type == "trap" and .pid == $p)' "$BATS_TEST_TMPDIR/watch.json")
	# Reports may only be missing when the kernel's rate limit dropped them.
	[ -n "$mine" ] || grep -q '"suppressed"' "$BATS_TEST_TMPDIR/watch.json"
	[ "$(echo "$mine" | grep -c .)" -le 2 ]
	while read -r tid name count; do
		echo "$mine" | jq -s -e --argjson t "$tid" --arg n "$name" 'map(select(.tid == $t))
			| all(.thread == $n and .symbol == "split_lock_hit" and .process == "splitlock-prog")' >/dev/null
	done < <(sed -n 's/^thread tid=\([0-9]*\) name=\([^ ]*\) count=\([0-9]*\)/\1 \2 \3/p' "$BATS_TEST_TMPDIR/prog.out")
	# Every report of ours names one of our threads.
	echo "$mine" | jq -r .tid | while read -r t; do grep -q "^thread tid=$t " "$BATS_TEST_TMPDIR/prog.out"; done
}

@test "live: run attributes the command's and its child's traps and counts honestly" {
	require_traps
	require_cmd jq
	run --separate-stderr kb splitlock-stat run --json -- "$PROG" -n 1 -t 2 -c 1
	assert_success
	summary=$(echo "$output" | tail -1)
	pid=$(echo "$output" | sed -n 's/^pid=//p')
	child=$(echo "$output" | sed -n 's/^child pid=\([0-9]*\).*/\1/p')
	total=$(echo "$output" | sed -n 's/^total=//p')
	traps=$(echo "$summary" | jq .traps)
	[ "$traps" -le "$total" ]
	if [ "$(echo "$summary" | jq .exact)" = true ]; then
		assert_equal "$traps" "$total"
		echo "$summary" | jq -e --argjson c "$child" '.processes[] | select(.pid == $c) | .count == 1' >/dev/null
	else
		[ "$(echo "$summary" | jq '.suppressed + .unattributed')" -gt 0 ] ||
			echo "$summary" | jq -e '.lower_bound_because | length > 0' >/dev/null
	fi
	echo "$summary" | jq -e --argjson p "$pid" --argjson c "$child" \
		'[.processes[].pid] - [$p, $c] == []' >/dev/null
	echo "$summary" | jq -e '[.locations[].symbol] | unique == ["split_lock_hit"]' >/dev/null
}

@test "live: summary --since-boot finds a finished program's traps" {
	require_traps
	require_cmd jq
	start_prog -n 1 -t 2
	pid=$(prog_field pid)
	run kb splitlock-stat summary --json --since-boot
	stop_prog
	assert_success
	count=$(echo "$output" | jq --argjson p "$pid" '[.processes[] | select(.pid == $p) | .count] | add // 0')
	[ "$count" -le 2 ]
	if [ "$(echo "$output" | jq .suppressed)" = 0 ]; then
		[ "$count" -ge 1 ]
	fi
}

@test "status --kmsg takes the mode from each form of the kernel's boot message" {
	require_asan
	require_cmd jq
	check() {   # check MESSAGE MODE [RATE]
		printf '6,1,0,-;x86/split lock detection: %s\n' "$1" >"$BATS_TEST_TMPDIR/boot.kmsg"
		run "$ASAN" splitlock-stat status --json --kmsg "$BATS_TEST_TMPDIR/boot.kmsg"
		assert_success
		assert_equal "$(echo "$output" | jq -r .mode)" "$2"
		assert_equal "$(echo "$output" | jq -r .mode_source)" "boot message"
		[ -z "${3:-}" ] || assert_equal "$(echo "$output" | jq -r .ratelimit_per_sec)" "$3"
	}
	check "disabled" off
	check "MSR access failed: Disabled" off
	check "warning about user-space split_locks" warn
	check "sending SIGBUS on user-space split_locks" fatal
	check "#AC: crashing the kernel on kernel split_locks and warning on user-space split_locks" warn
	check "#AC: crashing the kernel on kernel split_locks and sending SIGBUS on user-space split_locks" fatal
	check "#DB: warning on user-space bus_locks" warn
	check "#DB: sending SIGBUS on user-space bus_locks" fatal
	check "#DB: sending SIGBUS on user-space bus_locks from non-WB" fatal
	check "#DB: setting system wide bus lock rate limit to 250/sec" ratelimit 250
}

@test "parser: every recorded message form, through the sanitizer build" {
	require_asan
	require_cmd jq
	run "$ASAN" splitlock-stat watch --json --no-resolve --kmsg "$FIX/forms.kmsg"
	assert_success
	got=$(echo "$output" | jq -r '[.type, (.mode // .kind), (.trap // ""), (.thread // ""),
		(.tid // "" | tostring), (.address // ""), (.count // "" | tostring),
		(.ratelimit_per_sec // "" | tostring), (.guest_sigbus // "" | tostring)] | join("|")')
	expected="mode|off|||||||
mode|off|#AC||||||
mode|warn|#AC||||||
mode|fatal|#AC||||||
mode|warn|#AC||||||
mode|fatal|#AC||||||
mode|warn|#DB||||||
mode|fatal|#DB||||||
mode|fatal|#DB||||||
mode|ratelimit|#DB|||||7|
trap|bus_lock|#DB|sl-worker|15673|0x561e6e56830c|||
trap|split_lock|#AC|qemu-system-x86|24250|0x1e3|||
trap|split_lock|#AC|CContentUpdateC|50909|0xe4b04c8f|||
trap|split_lock|#AC|qemu-kvm|3141|0x7f00|||true
trap|split_lock|#AC|vcpu|77|0x400000|||true
trap|bus_lock|#DB|a/b c|4242|0x401000|||
trap|bus_lock|#DB|tab	name|99|0x401001|||
suppressed|bus_lock|||||23||
suppressed|split_lock|||||5||
suppressed|split_lock|||||2||
trap|bus_lock|#DB|with-dict|555|0xffffffffff600000|||
trap|bus_lock|#DB|raw-form|321|0x4011ae|||
trap|bus_lock|#DB|plain-form|322|0x4011af|||
trap|bus_lock|#DB||12|0x1|||
trap|bus_lock|#DB|took a bus_lock trap|13|0x2|||"
	assert_equal "$got" "$expected"
	# The user-facility record (written to /dev/kmsg from user space) is not a kernel report.
	refute_output --partial forged
}

@test "parser: summary of the recorded forms counts traps and suppressed reports" {
	require_asan
	require_cmd jq
	run "$ASAN" splitlock-stat summary --json --no-resolve --kmsg "$FIX/forms.kmsg"
	assert_success
	kernel_lines() { grep -E '^[0-7],|^<[0-7]>|^\[' "$FIX/forms.kmsg"; }
	n_db=$(kernel_lines | grep -c 'took a bus_lock trap at address')
	n_ac=$(kernel_lines | grep -cE '(took a|fatal|bogus) split_lock trap at address')
	n_sup=$(kernel_lines | sed -n 's/.*: \([0-9]*\) callbacks suppressed$/\1/p' | awk '{ n += $1 } END { print n }')
	assert_equal "$(echo "$output" | jq .bus_lock_traps)" "$n_db"
	assert_equal "$(echo "$output" | jq .split_lock_traps)" "$n_ac"
	assert_equal "$(echo "$output" | jq .suppressed)" "$n_sup"
	assert_equal "$(echo "$output" | jq .exact)" false
	echo "$output" | jq -e '.lower_bound_because | index("the kernel suppressed reports (rate limit)")'
}

@test "parser: garbage lines and every truncation of every record are ignored, no crash" {
	require_asan
	require_cmd jq
	run "$ASAN" splitlock-stat watch --json --no-resolve --kmsg "$FIX/garbage.kmsg"
	assert_success
	assert_output ""
	# Every prefix of every record: each parses or is dropped, never crashes.
	while IFS= read -r line; do
		for ((i = 0; i <= ${#line}; i++)); do printf '%s\n' "${line:0:i}"; done
	done <"$FIX/forms.kmsg" >"$BATS_TEST_TMPDIR/prefixes.kmsg"
	run "$ASAN" splitlock-stat watch --json --no-resolve --kmsg "$BATS_TEST_TMPDIR/prefixes.kmsg"
	assert_success
	echo "$output" | jq -e . >/dev/null
	run "$ASAN" splitlock-stat summary --kmsg - <"$BATS_TEST_TMPDIR/prefixes.kmsg"
	assert_success
	head -c 65536 /dev/urandom >"$BATS_TEST_TMPDIR/random.kmsg"
	run "$ASAN" splitlock-stat summary --kmsg "$BATS_TEST_TMPDIR/random.kmsg"
	assert_success
}

# The CPU here may not detect split locks, so the program writes the records
# a detecting CPU's kernel would log for the split locks it really took; the
# attribution below runs against the live process (/proc, ELF symbols).
@test "watch attributes each report to its thread, process and function symbol" {
	require_asan
	require_cmd jq
	require_cmd nm
	start_prog -n 2 -t 2 -c 1 -e "$BATS_TEST_TMPDIR/log.kmsg"
	pid=$(prog_field pid)
	child=$(sed -n 's/^child pid=\([0-9]*\).*/\1/p' "$BATS_TEST_TMPDIR/prog.out")
	label=$(nm "$PROG" | awk '$3 == "split_lock_hit_after" { print $1 }')
	run "$ASAN" splitlock-stat watch --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
	stop_prog
	assert_success
	assert_equal "$(echo "$output" | jq -s length)" "$(prog_field total)"
	checked=0
	while read -r tid name count; do
		checked=$((checked + 1))
		mine=$(echo "$output" | jq -c "select(.tid == $tid)")
		assert_equal "$(echo "$mine" | jq -s length)" "$count"
		echo "$mine" | jq -e --arg n "$name" --argjson p "$pid" --arg prog "$PROG" '
			.attributed and .thread == $n and .pid == $p and .process == "splitlock-prog"
			and .exe == $prog and .binary == $prog and .symbol == "split_lock_hit"
			and .symbol_offset > 0' >/dev/null
	done < <(sed -n 's/^thread tid=\([0-9]*\) name=\([^ ]*\) count=\([0-9]*\)/\1 \2 \3/p' "$BATS_TEST_TMPDIR/prog.out")
	assert_equal "$checked" 2
	# binary_offset is the ELF address of the instruction after the lock.
	want=$(printf '0x%x' "$((16#$label))")
	assert_equal "$(echo "$output" | jq -r '.binary_offset' | sort -u)" "$want"
	# The child process is its own process, named as it named itself.
	echo "$output" | jq -s -e --argjson c "$child" 'map(select(.tid == $c))
		| length == 1 and all(.pid == $c and .thread == "sl-child")' >/dev/null
}

@test "summary counts per process, thread and code location match the program's own counts" {
	require_asan
	require_cmd jq
	start_prog -n 3 -t 2 -c 2 -e "$BATS_TEST_TMPDIR/log.kmsg"
	pid=$(prog_field pid)
	child=$(sed -n 's/^child pid=\([0-9]*\).*/\1/p' "$BATS_TEST_TMPDIR/prog.out")
	run "$ASAN" splitlock-stat summary --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
	text=$(kb splitlock-stat summary --kmsg "$BATS_TEST_TMPDIR/log.kmsg")
	stop_prog
	assert_success
	total=$(prog_field total)
	assert_equal "$(echo "$output" | jq .traps)" "$total"
	assert_equal "$(echo "$output" | jq .exact)" true
	assert_equal "$(echo "$output" | jq --argjson p "$pid" '.processes[] | select(.pid == $p) | .count')" 6
	assert_equal "$(echo "$output" | jq --argjson p "$child" '.processes[] | select(.pid == $p) | .count')" 2
	checked=0
	while read -r tid name count; do
		checked=$((checked + 1))
		assert_equal "$(echo "$output" | jq --argjson t "$tid" '.threads[] | select(.tid == $t) | .count')" "$count"
		assert_equal "$(echo "$output" | jq -r --argjson t "$tid" '.threads[] | select(.tid == $t) | .thread')" "$name"
	done < <(sed -n 's/^thread tid=\([0-9]*\) name=\([^ ]*\) count=\([0-9]*\)/\1 \2 \3/p' "$BATS_TEST_TMPDIR/prog.out")
	assert_equal "$checked" 2
	# One code location: the locked add in split_lock_hit, shared by both processes.
	assert_equal "$(echo "$output" | jq '.locations | length')" 1
	assert_equal "$(echo "$output" | jq -r '.locations[0].symbol')" split_lock_hit
	assert_equal "$(echo "$output" | jq '.locations[0].count')" "$total"
	[[ "$text" == *"counts are exact"* ]]
	[[ "$text" == *"split_lock_hit+0x"* ]]
}

@test "#AC reports (the locked instruction's own address) resolve to the same function" {
	require_asan
	require_cmd jq
	require_cmd nm
	start_prog -n 1 -t 2 -k ac -e "$BATS_TEST_TMPDIR/log.kmsg"
	label=$(nm "$PROG" | awk '$3 == "split_lock_hit_at" { print $1 }')
	run "$ASAN" splitlock-stat watch --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
	stop_prog
	assert_success
	assert_equal "$(echo "$output" | jq -s length)" 2
	assert_equal "$(echo "$output" | jq -r '.trap + " " + .symbol' | sort -u)" "#AC split_lock_hit"
	assert_equal "$(echo "$output" | jq -r .binary_offset | sort -u)" "$(printf '0x%x' "$((16#$label))")"
}

@test "symbol lookup in a binary with corrupt section headers is safe (sanitizer build)" {
	require_asan
	require_cmd jq
	require_cmd od
	shoff=$(od -An -t u8 -j 40 -N 8 "$PROG" | tr -d ' ')
	for how in foreign-bytes far-offset; do
		cp "$PROG" "$BATS_TEST_TMPDIR/prog-$how"
		if [ $how = foreign-bytes ]; then
			# Another binary's bytes over the section header table: nonsense offsets and sizes.
			dd if=/bin/sh of="$BATS_TEST_TMPDIR/prog-$how" bs=1 skip=4096 seek="$shoff" count=2048 conv=notrunc status=none
		else
			printf '\x00\x00\xff\xff\xff\xff\xff\x7f' |
				dd of="$BATS_TEST_TMPDIR/prog-$how" bs=1 seek=40 conv=notrunc status=none
		fi
		PROG=$BATS_TEST_TMPDIR/prog-$how start_prog -n 1 -t 1 -e "$BATS_TEST_TMPDIR/log.kmsg"
		run "$ASAN" splitlock-stat watch --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
		stop_prog
		assert_success
		assert_equal "$(echo "$output" | jq -r .binary)" "$BATS_TEST_TMPDIR/prog-$how"
		assert_equal "$(echo "$output" | jq .attributed)" true
		rm -f "$BATS_TEST_TMPDIR/hold"
	done
}

@test "reports of exited threads and of reused thread ids are not misattributed" {
	require_asan
	require_cmd jq
	# A thread id that existed but is gone.
	gone=$(sh -c 'echo $$')
	printf '4,1,%s,-;x86/split lock detection: #DB: gone/%s took a bus_lock trap at address: 0x401000\n' \
		"$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime)" "$gone" >"$BATS_TEST_TMPDIR/log.kmsg"
	# A live thread, but the report predates its start: the id was reused.
	start_prog -n 1 -t 1 -e "$BATS_TEST_TMPDIR/prog.kmsg"
	tid=$(prog_field tid)
	printf '4,2,1,-;x86/split lock detection: #DB: old/%s took a bus_lock trap at address: 0x401000\n' \
		"$tid" >>"$BATS_TEST_TMPDIR/log.kmsg"
	run "$ASAN" splitlock-stat watch --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
	stop_prog
	assert_success
	assert_equal "$(echo "$output" | jq -r 'select(.thread == "gone") | .attributed')" false
	assert_equal "$(echo "$output" | jq -r 'select(.thread == "gone") | .reason')" \
		"thread exited before its report was read"
	assert_equal "$(echo "$output" | jq -r 'select(.thread == "old") | .reason')" \
		"thread id reused since the report"
}

@test "a saved log's thread id is attributed only to a thread of the name the kernel printed" {
	require_cmd jq
	sleep 300 3>&- &
	local pid=$! now
	PROG_PID=$pid
	is_sleep() { [ "$(cat /proc/"$pid"/comm)" = sleep ]; }
	wait_until 10 "the background job to execute sleep" is_sleep
	now=$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime)
	# The same id and time, under its name and under another (a log of another boot).
	printf '4,%s,%s,-;x86/split lock detection: #DB: %s/%s took a bus_lock trap at address: 0x401000\n' \
		1 "$now" sleep "$pid" 2 "$now" worker "$pid" >"$BATS_TEST_TMPDIR/log.kmsg"
	run kb splitlock-stat watch --json --kmsg "$BATS_TEST_TMPDIR/log.kmsg"
	kill "$pid"
	assert_success
	assert_equal "$(echo "$output" | jq -r 'select(.thread == "sleep") | "\(.attributed) \(.pid) \(.process)"')" \
		"true $pid sleep"
	assert_equal "$(echo "$output" | jq -r 'select(.thread == "worker") | "\(.attributed) \(.reason)"')" \
		"false the thread id now names another thread"
}

@test "watch -d ends after the duration and prints nothing while the log is quiet of traps" {
	require_root
	traps_reported && skip "this CPU reports traps: other processes may log some"
	run kb splitlock-stat watch --json -d 300ms
	assert_success
	assert_output ""
}

@test "run exits with the command's status and reports on stderr" {
	require_root
	require_cmd jq
	run kb splitlock-stat run -- sh -c 'echo out; exit 7'
	assert_failure 7
	assert_line out
	assert_line --partial "exited with status 7"
	assert_line --regexp '^[0-9]+ trap reports'
	run --separate-stderr kb splitlock-stat run --json -- sh -c 'exit 3'
	assert_failure 3
	assert_equal "$(echo "$output" | jq .exit_status)" 3
	echo "$output" | jq -e '.perf_counters | type == "string"' >/dev/null
	# As root the kernel's process events follow the tree.
	assert_equal "$(echo "$output" | jq -r .tracking)" "process events"
	if ! traps_reported; then
		# Zero reports from a kernel that cannot report is not "exact".
		assert_equal "$(echo "$output" | jq .exact)" false
		echo "$output" | jq -e '.lower_bound_because | any(test("report(s)? none|no report"))' >/dev/null
	fi
	echo "$output" | jq -e '.command_pid > 0' >/dev/null
	run -127 kb splitlock-stat run -- /nonexistent/command
	assert_output --partial "/nonexistent/command"
	printf '#!/nonexistent/interpreter\n' >"$BATS_TEST_TMPDIR/noint"
	chmod 0755 "$BATS_TEST_TMPDIR/noint"
	run -126 kb splitlock-stat run -- "$BATS_TEST_TMPDIR/noint"
	assert_output --partial "$BATS_TEST_TMPDIR/noint: cannot execute: bad interpreter"
	run kb splitlock-stat run -- sh -c 'kill -TERM $$'
	assert_failure 143
}

@test "without CAP_SYSLOG: one clear error naming it; status still prints" {
	require_root
	require_cmd setpriv
	[ "$(cat /proc/sys/kernel/dmesg_restrict)" = 1 ] || skip "kernel.dmesg_restrict is 0: anyone may read the log"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all "$KBOX" "$@"; }
	run as_nobody splitlock-stat watch -d 1
	assert_failure 1
	assert_equal "${#lines[@]}" 1
	assert_output --partial "CAP_SYSLOG"
	assert_output --regexp "^splitlock-stat: "
	run as_nobody splitlock-stat summary --since-boot
	assert_failure 1
	assert_output --partial "CAP_SYSLOG"
	run as_nobody splitlock-stat run -- true
	assert_failure 1
	assert_output --partial "CAP_SYSLOG"
	run as_nobody splitlock-stat status
	assert_success
	assert_line --partial "kernel log: not readable"
	assert_output --partial "CAP_SYSLOG"
	assert_line --regexp "^cpu: "
}
