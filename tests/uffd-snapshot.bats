#!/usr/bin/env bats
# uffd-snapshot against real processes (build/tests/snap-target) on the host
# kernel: consistency of the core, gdb, and the target's survival.
load test_helper

setup() {
	require_applet uffd-snapshot
	require_root
	WORK=$(mktemp -d)
	chmod 755 "$WORK"
	TARGETS=()
}

teardown() {
	for t in "${TARGETS[@]}"; do kill -KILL "$t" 2>/dev/null || true; done
	[ -n "${SYSCTL_SAVED:-}" ] && sysctl -qw vm.unprivileged_userfaultfd="$SYSCTL_SAVED"
	[ -n "${CORE_PATTERN_SAVED:-}" ] && printf '%s\n' "$CORE_PATTERN_SAVED" >/proc/sys/kernel/core_pattern
	rm -rf "$WORK"
}

# start_target ARGS...: runs snap-target in the background, waits until its
# workers run; sets $T (pid) and $LAYOUT.
start_target() {
	LAYOUT=$WORK/layout.$RANDOM
	"$KBOX_TESTBIN/snap-target" --layout "$LAYOUT" "$@" >"$WORK/target.out" 2>"$WORK/target.err" &
	T=$!
	TARGETS+=("$T")
	wait_until 30 "snap-target $* to write its layout" test -e "$LAYOUT" ||
		{ echo "snap-target: $(cat "$WORK/target.err")" >&2; return 1; }
}

# stop_target: asks the target to check itself one last time; it must pass.
stop_target() {
	kill -TERM "$T"
	wait_until 30 "snap-target to check itself and exit after SIGTERM" ended "$T"
	local rc=0
	wait "$T" || rc=$?
	cat "$WORK/target.err" >&2
	[ "$rc" -eq 0 ]
	grep -q '^ok sleeps' "$WORK/target.out"
}

# snapshot_rounds N: N snapshots of the running target, each checked against its layout.
snapshot_rounds() {
	local i
	for ((i = 0; i < $1; i++)); do
		run kb uffd-snapshot -o "$WORK/core" "$T"
		assert_success
		run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
		assert_success
	done
}

# The target runs freely: no thread stopped or traced, no userfaultfd left in it.
target_free() {
	threads_running && [ "$(tracer_of "$T")" = 0 ] && ! ls -l /proc/"$T"/fd | grep -q userfaultfd
}
# thread_states: the state letter of each thread of the target, one a line.
thread_states() { sed 's/.*) //; s/ .*//' /proc/"$T"/task/*/stat; }
threads_running() { ! thread_states | grep -q '[tT]'; }
# Every thread in a ptrace stop.
threads_stopped() { ! thread_states | grep -qv '^t$'; }
tracer_of() { awk '/^TracerPid/ {print $2}' /proc/"$1"/status; }
untraced() { [ "$(tracer_of "$T")" = 0 ]; }

# describe_target: what holds the target, for a wait that failed: each
# thread's state and tracer, its userfaultfds, the uffd-snapshot processes
# (and their helpers) still at it.
describe_target() {
	local f fd
	echo "state of target $T:"
	for f in /proc/"$T"/task/*/status; do
		echo "  $f: $(awk '$1 == "State:" || $1 == "TracerPid:" {printf "%s %s ", $1, $2}' "$f")"
	done
	for fd in /proc/"$T"/fd/*; do
		[[ $(readlink "$fd") == *userfaultfd* ]] || continue
		echo "  userfaultfd $fd:"
		sed 's/^/    /' /proc/"$T"/fdinfo/"${fd##*/}"
	done
	echo "  uffd-snapshot processes of $T:"
	pgrep -f "uffd-snapshot .*[ ]$T\$" | while read -r f; do
		echo "    $(ps -o pid=,ppid=,stat=,etime=,wchan:24= -p "$f") $(tr '\0' ' ' </proc/"$f"/cmdline 2>/dev/null)"
	done
}

# wait_target_free SECONDS: waits until the target runs freely, or fails
# describing what still holds it.
wait_target_free() {
	wait_until "$1" "the target to run freely (no thread stopped, no tracer, no userfaultfd)" target_free ||
		{ describe_target >&2; return 1; }
}

# Right after uffd-snapshot returned, the target must already be free.
assert_target_free() {
	threads_running || { grep -H . /proc/"$T"/task/*/stat >&2; echo "a thread of $T is stopped" >&2; return 1; }
	[ "$(tracer_of "$T")" = 0 ] || { echo "$T is still traced by $(tracer_of "$T")" >&2; return 1; }
	! ls -l /proc/"$T"/fd | grep userfaultfd >&2 || { echo "a userfaultfd is left in $T" >&2; return 1; }
}

# target_survives_rounds N ARGS...: a target started with ARGS gives N
# consistent snapshots in a row, then runs freely and passes its last check.
target_survives_rounds() {
	local rounds=$1
	shift
	start_target "$@"
	snapshot_rounds "$rounds"
	assert_target_free
	stop_target
}

@test "usage errors exit 2; a missing process exits 3" {
	run kb uffd-snapshot
	assert_failure 2
	assert_output --partial "missing PID"
	run kb uffd-snapshot --bogus 1
	assert_failure 2
	run kb uffd-snapshot -z99 1
	assert_failure 2
	run kb uffd-snapshot --filter xyz 1
	assert_failure 2
	run kb uffd-snapshot --dirty nonsense 1
	assert_failure 2
	run kb uffd-snapshot -o "$WORK/c" 12x
	assert_failure 2
	run kb uffd-snapshot -o "$WORK/c" 4000000
	assert_failure 3
	assert_output --partial "no such process"
	assert_file_not_exists "$WORK/c"
	run kb uffd-snapshot --help
	assert_success
	assert_output --partial "--dirty"
}

@test "every page and stack slot in the core matches what the threads recorded" {
	start_target --mib 96 --threads 4
	run kb uffd-snapshot -v -o "$WORK/core" "$T"
	assert_success
	assert_output --regexp "pause [0-9.]+ ms"
	[ "$(stat -c %a "$WORK/core")" = 600 ]
	run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
	assert_success
	assert_output "consistent: 4 workers, 24608 slots"
	assert_target_free
	stop_target
}

@test "pages written while the memory is being protected are protected again at the pause" {
	# Small enough that the writers come back to a page soon after the pause.
	start_target --mib 48 --threads 4
	local i reprotected=0
	for i in 1 2 3 4 5 6; do
		run kb uffd-snapshot -v -o "$WORK/core" "$T"
		assert_success
		assert_output --regexp "protect while running [0-9.]+ ms"
		local verbose=$output
		run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
		assert_success
		[[ $verbose =~ "protect again "[1-9][0-9]*" pages" ]] && reprotected=$((reprotected + 1))
	done
	[ "$reprotected" -ge 1 ]
	stop_target
}

@test "gdb reads globals, a heap list and every thread's backtrace from the core" {
	require_cmd gdb
	start_target --mib 16 --threads 3
	kb uffd-snapshot -o "$WORK/core" "$T"
	run gdb -batch -nx -ex 'print/x snap_global_magic' -ex 'print snap_accounts->next->name' \
		-ex 'print snap_accounts->next->next->balance' -ex 'print nworkers' \
		-ex 'thread apply all bt' "$KBOX_TESTBIN/snap-target" "$WORK/core"
	assert_success
	assert_output --partial '$1 = 0x5eedf00dcafe0001'
	assert_output --partial '$2 = "bob"'
	assert_output --partial '$3 = 3000'
	assert_output --partial '$4 = 3'
	# Four threads: main asleep, three workers.
	[ "$(grep -c '^Thread [0-9]' <<<"$output")" -eq 4 ]
	[ "$(grep -c 'in main (' <<<"$output")" -eq 1 ]
	[ "$(grep -cE 'worker_main \(' <<<"$output")" -eq 3 ]
	assert_output --regexp 'nanosleep'
	stop_target
}

@test "the XSAVE layout note is the one the kernel writes in its own core dumps" {
	start_target --mib 8 --threads 1
	run kb uffd-snapshot -o "$WORK/core" "$T"
	assert_success
	# The kernel's own core of the same program, as the reference.
	CORE_PATTERN_SAVED=$(cat /proc/sys/kernel/core_pattern)
	echo "$WORK/kernel-core.%p" >/proc/sys/kernel/core_pattern
	(ulimit -c unlimited; exec "$KBOX_TESTBIN/snap-target" --mib 8 --threads 1 --layout "$WORK/layout.k" \
		>/dev/null 2>&1) &
	local k=$!
	wait_until 30 "the second snap-target to write its layout" test -e "$WORK/layout.k"
	kill -SEGV "$k"
	wait "$k" || true
	printf '%s\n' "$CORE_PATTERN_SAVED" >/proc/sys/kernel/core_pattern
	local kernel_core=("$WORK"/kernel-core.*)
	[ -f "${kernel_core[0]}" ] || skip "the kernel wrote no core here"
	ours=$(readelf -n "$WORK/core" | grep -A1 "(0x00000205)" | tail -n 1)
	theirs=$(readelf -n "${kernel_core[0]}" | grep -A1 "(0x00000205)" | tail -n 1)
	[ -n "$theirs" ] || skip "this kernel writes no NT_X86_XSAVE_LAYOUT note (before 6.11)"
	[ "$ours" = "$theirs" ]
	stop_target
}

@test "compressed with zstd, to a file or to standard output" {
	require_cmd zstd
	start_target --mib 32 --threads 2
	run kb uffd-snapshot -z -o "$WORK/core.zst" "$T"
	assert_success
	zstd -qd "$WORK/core.zst" -o "$WORK/core"
	run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
	assert_success
	kb uffd-snapshot -z19 -j 2 -o - "$T" | zstd -qd >"$WORK/core2"
	run "$KBOX_TESTBIN/snap-check" "$WORK/core2" "$LAYOUT"
	assert_success
	kb uffd-snapshot -o - "$T" >"$WORK/core3"
	run "$KBOX_TESTBIN/snap-check" "$WORK/core3" "$LAYOUT"
	assert_success
	stop_target
}

@test "an existing FIFO or device is written in place, a symlink's file is replaced" {
	start_target --mib 8 --threads 1
	mkfifo "$WORK/fifo"
	# fd 3 closed: bats would wait for a reader left blocked by a failed run.
	cat "$WORK/fifo" >"$WORK/from-fifo" 3>&- &
	local reader=$!
	TARGETS+=("$reader")
	run kb uffd-snapshot -o "$WORK/fifo" "$T"
	assert_success
	wait_until 30 "the FIFO's reader to read the core to its end" ended "$reader"
	wait "$reader"
	[ -p "$WORK/fifo" ]
	run "$KBOX_TESTBIN/snap-check" "$WORK/from-fifo" "$LAYOUT"
	assert_success
	# A character device of our own (the null device's numbers) stays one.
	mknod "$WORK/null" c 1 3
	run kb uffd-snapshot -o "$WORK/null" "$T"
	assert_success
	[ -c "$WORK/null" ]
	touch "$WORK/real"
	ln -s real "$WORK/link"
	run kb uffd-snapshot -o "$WORK/link" "$T"
	assert_success
	[ -L "$WORK/link" ]
	run "$KBOX_TESTBIN/snap-check" "$WORK/real" "$LAYOUT"
	assert_success
	# A dangling link names the file to create: relative (via a link to a
	# link), and absolute into another directory.
	mkdir "$WORK/elsewhere"
	ln -s new.core "$WORK/rel"
	ln -s rel "$WORK/rel2"
	ln -s "$WORK/elsewhere/abs.core" "$WORK/abs"
	local l
	for l in rel2 abs; do
		run kb uffd-snapshot -o "$WORK/$l" "$T"
		assert_success
		[ -L "$WORK/$l" ]
	done
	run "$KBOX_TESTBIN/snap-check" "$WORK/new.core" "$LAYOUT"
	assert_success
	run "$KBOX_TESTBIN/snap-check" "$WORK/elsewhere/abs.core" "$LAYOUT"
	assert_success
	ln -s loop "$WORK/loop"
	run kb uffd-snapshot -o "$WORK/loop" "$T"
	assert_failure
	assert_output --partial "Too many levels of symbolic links"
	run kb uffd-snapshot -o "$WORK" "$T"
	assert_failure
	assert_output --partial "Is a directory"
	stop_target
}

@test "transparent huge pages and a target inside nanosleep" {
	# The main thread sleeps in nanosleep; the target exits 98 if a sleep
	# ever returned an error, e.g. a system call not restarted properly.
	target_survives_rounds 3 --mib 128 --threads 2 --thp
}

@test "SIGKILL at random moments in every phase leaves the target running unharmed" {
	start_target --mib 64 --threads 3
	for i in $(seq 40); do
		# "$KBOX" itself, not kb: $! must be uffd-snapshot, not a subshell
		# running it (the kill would leave it to finish on its own).
		"$KBOX" uffd-snapshot -o "$WORK/core" "$T" 2>/dev/null &
		p=$!
		# Mostly within the first milliseconds (stop, inject, protect), sometimes during the copy.
		if [ $((i % 4)) -eq 0 ]; then d=$((RANDOM % 150)); else d=$((RANDOM % 12)); fi
		sleep "$(printf '0.%03d' "$d")"
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# The helper of the last run lets the target go once it sees its parent
	# die; that takes well under a second, but the helper itself may wait up
	# to 2 s for the threads to stop and 5 s for each injected system call
	# on a loaded machine.
	wait_target_free 30
	# Killed runs leave no file behind (the core is unnamed until complete).
	run find "$WORK" -name '.core*'
	assert_output ""
	stop_target
}

@test "a kernel thread, a zombie, or another user's process as non-root: the cause named, no file" {
	# PID 2 is kthreadd.
	run kb uffd-snapshot -o "$WORK/c" 2
	assert_failure 1
	assert_output --partial "process 2 is a kernel thread"
	run kb uffd-snapshot --dirty 1,1 2
	assert_failure 1
	assert_output --partial "kernel thread"
	# A child that has exited under a parent that does not reap it until killed.
	local zombie
	exec 7< <(exec "$KBOX_TESTBIN/zombie-parent" 3>&-)
	TARGETS+=("$!")
	read -r -t 10 -u 7 zombie || fail "zombie-parent printed no pid within 10 s"
	exec 7<&-
	run kb uffd-snapshot -o "$WORK/c" "$zombie"
	assert_failure 3
	assert_output --partial "process $zombie has exited (a zombie"
	sleep 60 &
	local victim=$!
	TARGETS+=("$victim")
	chmod 777 "$WORK"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$KBOX" uffd-snapshot -o "$WORK/c" "$victim"
	assert_failure 4
	assert_output --partial "cannot inspect process $victim: Permission denied"
	assert_output --partial "CAP_SYS_PTRACE"
	assert_file_not_exists "$WORK/c"
}

@test "--max-pause takes 1ms to 24h: a longer limit is a usage error, never a wrapped-around one" {
	start_target --mib 16 --threads 1
	# 2^32 + 1 ms, 24h and 1 ms, 25h, and what an int of milliseconds cannot hold.
	local t
	for t in 4294967297ms 24h1ms 25h 600h 0.5ms 0; do
		run kb uffd-snapshot --stopped --max-pause "$t" -o "$WORK/core" "$T"
		assert_failure 2
		assert_line --index 0 "uffd-snapshot: bad --max-pause: '$t' (from 1ms to 24h)"
		assert_file_not_exists "$WORK/core"
	done
	assert_target_free
	# The bounds themselves are limits that hold a --stopped copy of 16 MiB.
	for t in 24h 86400000ms; do
		run kb uffd-snapshot --stopped --max-pause "$t" -o "$WORK/core" "$T"
		assert_success
		run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
		assert_success
		rm "$WORK/core"
	done
	run kb uffd-snapshot --max-pause 1ms -o "$WORK/core" 4000000
	assert_failure 3
	stop_target
}

@test "--max-pause: a pause past the limit fails naming it, the target runs on; itself is refused" {
	start_target --mib 64 --threads 2
	# --stopped copies 64 MiB while stopped: far more than 2 ms.
	run kb uffd-snapshot --stopped --max-pause 2ms -o "$WORK/core" "$T"
	assert_failure 1
	assert_output "uffd-snapshot: the target was released at the pause limit (--max-pause); the core would not be consistent"
	assert_file_not_exists "$WORK/core"
	assert_target_free
	run kb uffd-snapshot -o "$WORK/core" "$T"
	assert_success
	stop_target
	# Its own process: its helper would stop the one that must answer it.
	run sh -c 'exec "$1" uffd-snapshot -o "$2" $$' _ "$KBOX" "$WORK/self"
	assert_failure 1
	assert_output --regexp '^uffd-snapshot: process [0-9]+ is uffd-snapshot itself$'
	assert_file_not_exists "$WORK/self"
}

@test "a non-root target: clear error with the remedy, --stopped, or the sysctl" {
	chmod 777 "$WORK"
	LAYOUT=$WORK/layout.nobody
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$KBOX_TESTBIN/snap-target" --mib 16 --threads 2 --layout "$LAYOUT" \
		>"$WORK/target.out" 2>"$WORK/target.err" &
	T=$!
	TARGETS+=("$T")
	wait_until 30 "snap-target as nobody to write its layout" test -e "$LAYOUT"
	SYSCTL_SAVED=$(sysctl -n vm.unprivileged_userfaultfd)
	sysctl -qw vm.unprivileged_userfaultfd=0
	run kb uffd-snapshot -o "$WORK/core" "$T"
	assert_failure 1
	assert_output --partial "vm.unprivileged_userfaultfd=1"
	assert_output --partial "--stopped"
	assert_file_not_exists "$WORK/core"
	assert_target_free
	run kb uffd-snapshot --stopped -o "$WORK/core" "$T"
	assert_success
	run "$KBOX_TESTBIN/snap-check" "$WORK/core" "$LAYOUT"
	assert_success
	sysctl -qw vm.unprivileged_userfaultfd=1
	run kb uffd-snapshot -o "$WORK/core2" "$T"
	assert_success
	run "$KBOX_TESTBIN/snap-check" "$WORK/core2" "$LAYOUT"
	assert_success
	assert_target_free
	stop_target
}

@test "a target that exits during the copy: exit 3, no file" {
	start_target --mib 256 --threads 1
	# The reader takes the first bytes (the copy has begun), then holds the
	# copy back until the target is killed. (fd 3 closed: bats would wait
	# for a pipeline left hanging by a failed test.)
	{ ( rc=0; kb uffd-snapshot -o - "$T" 2>"$WORK/err" || rc=$?; echo "$rc" >"$WORK/rc" ) |
		( head -c 1 >/dev/null; touch "$WORK/copying"
		  wait_until 30 "the target to be killed" test -e "$WORK/killed" && cat >/dev/null ); } 3>&- &
	pipe=$!
	wait_until 30 "the core's first bytes" test -e "$WORK/copying"
	kill -KILL "$T"
	wait "$T" 2>/dev/null || true
	touch "$WORK/killed"
	wait_until 30 "uffd-snapshot to end once its target was killed" ended "$pipe"
	wait "$pipe"
	[ "$(cat "$WORK/rc")" -eq 3 ]
	grep -q "exited during the copy" "$WORK/err"
	run kb uffd-snapshot -o "$WORK/core" "$T"
	assert_failure 3
	assert_file_not_exists "$WORK/core"
}

@test "a target that starts another program during the copy: exit 3, no file" {
	start_target --mib 256 --threads 1
	# The copy waits on a FIFO while the target executes sleep. Once
	# uffd-snapshot has ended, the FIFO is opened (read-write: that never
	# blocks) and closed, so that our opening of it returns even when
	# uffd-snapshot failed before opening it.
	mkfifo "$WORK/fifo"
	( rc=0; kb uffd-snapshot -o "$WORK/fifo" "$T" 2>"$WORK/err" || rc=$?; echo "$rc" >"$WORK/rc"
	  : <>"$WORK/fifo" ) 3>&- &
	local snap=$!
	exec 5<"$WORK/fifo"
	timeout 60 head -c 1M <&5 >/dev/null || fail "uffd-snapshot wrote no first MiB within 60 s"
	kill -USR2 "$T"
	runs_sleep() { [[ $(readlink /proc/"$T"/exe) == */sleep ]]; }
	wait_until 10 "the target to execute sleep" runs_sleep
	timeout 60 cat <&5 >/dev/null || fail "uffd-snapshot wrote no end of its output within 60 s"
	exec 5<&-
	wait_until 30 "uffd-snapshot to end after its output" ended "$snap"
	wait "$snap"
	[ "$(cat "$WORK/rc")" -eq 3 ]
	run cat "$WORK/err"
	assert_output --partial "started another program (execve) during the copy"
	kill -KILL "$T"
}

@test "mappings created, moved and removed during the copy" {
	target_survives_rounds 5 --mib 64 --threads 2 --churn
}

@test "--filter and --all choose the mappings like coredump_filter" {
	start_target --mib 32 --threads 1
	kb uffd-snapshot -o "$WORK/default" "$T"
	kb uffd-snapshot --filter 0 -o "$WORK/none" "$T"
	kb uffd-snapshot --all -o "$WORK/all" "$T"
	d=$(stat -c %s "$WORK/default") n=$(stat -c %s "$WORK/none") a=$(stat -c %s "$WORK/all")
	# The 32 MiB region is anonymous private memory: in by default, out with filter 0.
	[ "$((d - n))" -ge $((32 << 20)) ]
	[ "$a" -gt "$d" ]
	run "$KBOX_TESTBIN/snap-check" "$WORK/none" "$LAYOUT"
	assert_failure
	# Every PT_LOAD is listed with its permissions either way.
	run readelf -lW "$WORK/none"
	assert_output --regexp "LOAD .* RW "
	stop_target
}

@test "--dirty reports the rate a target dirties its memory at" {
	start_target --mib 64 --threads 1 --rate 4000
	run kb uffd-snapshot --dirty 1s,3 --json "$T"
	assert_success
	[ "$(wc -l <<<"$output")" -eq 3 ]
	# Intervals 2 and 3 (the first includes the start-up). The target keeps to
	# 4000 pages/s on average, but on a busy machine it may be starved in one
	# interval and catch up in the next; counting each page twice (8000) or
	# missing most of them fails either way.
	for rate in $(tail -n 2 <<<"$output" | jq -r .pages_per_second); do
		awk -v r="$rate" 'BEGIN { exit !(r > 2000 && r < 6000) }' || { echo "rate $rate"; false; }
	done
	region=$(awk '/^region/ {print $2}' "$LAYOUT")
	tail -n 1 <<<"$output" | jq -e '.mappings | length > 0'
	run kb uffd-snapshot --dirty 200ms,1 "$T"
	assert_success
	assert_output --regexp "interval 1: [0-9]+ pages"
	stop_target
}

@test "the helper killed while it holds the target stopped: the kernel lets the target go" {
	start_target --mib 128 --threads 3
	# With --stopped the whole copy is made in the pause. Its output goes to
	# a FIFO nobody reads yet, so the pause lasts until we read: the helper
	# holds every thread stopped and waits for uffd-snapshot in poll.
	mkfifo "$WORK/fifo"
	"$KBOX" uffd-snapshot --stopped --max-pause 10m -o - "$T" >"$WORK/fifo" 2>"$WORK/err" &
	local p=$! helper rc=0
	exec 5<"$WORK/fifo"
	held() {
		helper=$(tracer_of "$T")
		[ "$helper" != 0 ] && threads_stopped && grep -q poll /proc/"$helper"/wchan 2>/dev/null
	}
	wait_until 30 "a helper to hold every thread of the target stopped, waiting in poll" held ||
		{ describe_target >&2; false; }
	kill -KILL "$helper"
	wait_target_free 30
	# Let go on, uffd-snapshot finds its helper gone: it fails, saying so.
	timeout 60 cat <&5 >/dev/null || fail "uffd-snapshot wrote no end of its output within 60 s"
	exec 5<&-
	wait "$p" || rc=$?
	[ "$rc" -eq 1 ]
	run cat "$WORK/err"
	assert_output "uffd-snapshot: the helper process ended unexpectedly"
	stop_target
}

@test "the helper killed inside a system call it made the target run: the target goes on unharmed" {
	start_target --mib 16 --threads 2
	local masks hits=0 i
	masks=$(grep -h SigBlk /proc/"$T"/task/*/status)
	# kill-in-window kills the helper while a thread of the target is stopped
	# in the injected userfaultfd() or close(): registers and signal mask
	# changed. The thread must run on through the signal frame left for it.
	for i in $(seq 300); do
		rc=0
		timeout 60 "$KBOX_TESTBIN/kill-in-window" "$T" "$KBOX" uffd-snapshot -o "$WORK/core" "$T" 2>/dev/null || rc=$?
		[ "$rc" -ne 124 ] || fail "uffd-snapshot under kill-in-window did not end within 60 s"
		[ "$rc" -ne 0 ] || hits=$((hits + 1))
		[ "$hits" -lt 10 ] || break
	done
	echo "killed in the window $hits times" >&3
	[ "$hits" -ge 1 ]
	running_untraced() { threads_running && untraced; }
	wait_until 10 "the target's threads to run again, untraced" running_untraced
	[ "$(grep -h SigBlk /proc/"$T"/task/*/status)" = "$masks" ]
	# What cannot be undone: a userfaultfd created just before the helper
	# died stays open (unused, close-on-exec), at most one per kill.
	[ "$(ls -l /proc/"$T"/fd | grep -c userfaultfd)" -le "$hits" ]
	stop_target
}

@test "uffd-snapshot stopped during the copy, then killed: the target's writers run again" {
	# A slow writer: it reaches pages not copied yet for seconds.
	start_target --mib 128 --threads 1 --rate 2000
	# The copy blocks on a full pipe read no further than its first bytes;
	# then the whole snapshot is frozen.
	mkfifo "$WORK/fifo"
	"$KBOX" uffd-snapshot -o - "$T" >"$WORK/fifo" 2>/dev/null &
	p=$!
	exec 5<"$WORK/fifo"
	timeout 30 head -c 1 <&5 >/dev/null || fail "uffd-snapshot wrote nothing within 30 s"
	kill -STOP "$p"
	# Its writers wait for pages nobody serves: in handle_userfault.
	in_userfault() { grep -q handle_userfault /proc/"$T"/task/*/wchan; }
	wait_until 20 "the target's writer to wait in handle_userfault" in_userfault
	kill -KILL "$p"
	served() { ! in_userfault; }
	wait_until 10 "the target's writers to leave handle_userfault" served
	exec 5<&-
	wait_target_free 10
	stop_target
}
