#!/usr/bin/env bats
# cgexec-clone3 on the host's cgroup2 mount, inside a sub-tree owned by this
# suite (removed in teardown).  Only core cgroup2 files are written here: on a
# hybrid host the v1 controllers (memory, cpu, pids...) are never touched.
load test_helper

probe() { echo "$KBOX_TESTBIN/cgroup-probe"; }

# Kills whatever is left and removes a cgroup sub-tree, deepest first (a
# killed process leaves its cgroup a moment after the signal).
remove_tree() {
	[ -d "$1" ] || return 0
	local d
	while read -r d; do
		[ -e "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill"
		wait_until 10 "the processes killed in $d to leave it" rmdir_quiet "$d"
	done < <(find "$1" -depth -type d)
}
rmdir_quiet() { rmdir "$1" 2>/dev/null; }

setup_file() {
	[ "$(id -u)" -eq 0 ] || return 0
	CG_ROOT=$(findmnt -n -t cgroup2 -o TARGET /sys/fs/cgroup 2>/dev/null ||
		  findmnt -n -t cgroup2 -o TARGET /sys/fs/cgroup/unified 2>/dev/null ||
		  findmnt -n -t cgroup2 -o TARGET | head -1)
	export CG_ROOT
	[ -n "$CG_ROOT" ] || return 0
	export T_REL=kbox-test.cgexec.$$
	export T=$CG_ROOT/$T_REL
	mkdir -p "$T"
}

teardown_file() {
	[ -n "${T:-}" ] && remove_tree "$T"
	true
}

setup() {
	require_root
	require_applet cgexec-clone3
	[ -n "$CG_ROOT" ] || fail "no cgroup2 file system is mounted here (cgexec-clone3 needs one: mount -t cgroup2 none /sys/fs/cgroup)"
	W=$BATS_TEST_TMPDIR
}

teardown() {
	# Without a suite sub-tree (not root, no cgroup2) there is nothing to remove.
	[ -n "${T:-}" ] && [ -d "$T" ] || return 0
	local d
	for d in "$T"/*/; do [ -d "$d" ] && remove_tree "${d%/}"; done
	true
}

@test "the command is born in the cgroup: the probe's first read shows it" {
	mkdir "$T/place"
	run kb cgexec-clone3 -g "$T_REL/place" -- "$(probe)"
	assert_success
	assert_output "/$T_REL/place"
	# Same cgroup through an absolute path inside the mount, and cgexec's syntax.
	run kb cgexec-clone3 -g "$T/place" "$(probe)"
	assert_output "/$T_REL/place"
	run kb cgexec-clone3 -g ":/$T_REL/place" "$(probe)"
	assert_output "/$T_REL/place"
	# The caller stays where it was.
	run "$(probe)"
	refute_output "/$T_REL/place"
}

@test "race: a command that forks as its first act has every descendant in the cgroup" {
	mkdir "$T/race"
	for i in $(seq 20); do
		kb cgexec-clone3 -g "$T_REL/race" "$(probe)" fork 8 >>"$W/out"
	done
	run wc -l <"$W/out"
	assert_output 180
	run grep -vc " /$T_REL/race\$" "$W/out"
	assert_output 0
}

@test "--root: the cgroup is relative to the given cgroup2 directory" {
	mkdir -p "$T/r/inner"
	run kb cgexec-clone3 --root "$T/r" -g inner "$(probe)"
	assert_success
	assert_output "/$T_REL/r/inner"
	run kb cgexec-clone3 --root /tmp -g inner true
	assert_failure 125
	assert_output "cgexec-clone3: /tmp is not a cgroup2 file system"
}

@test "-c creates the cgroup and its parents; --rm removes what this run created" {
	run kb cgexec-clone3 -c --rm -g "$T_REL/new/a/b" "$(probe)"
	assert_success
	assert_output "/$T_REL/new/a/b"
	assert_not_exist "$T/new"
	# -c on an existing cgroup is fine, and --rm leaves the pre-existing part.
	mkdir "$T/keep"
	run kb cgexec-clone3 -c --rm -g "$T_REL/keep/child" "$(probe)"
	assert_success
	assert_output "/$T_REL/keep/child"
	assert_dir_exist "$T/keep"
	assert_not_exist "$T/keep/child"
	run kb cgexec-clone3 --rm -g "$T_REL/keep" true
	assert_success
	assert_output "cgexec-clone3: --rm: $T/keep existed before this run and will be left in place"
	assert_dir_exist "$T/keep"
}

@test "--rm of one run leaves alone another run's cgroup beside it, even under a parent it created" {
	# A creates shared/ and shared/a and waits; B then creates shared/b.
	# "$KBOX" itself, not kb: $!, which B watches end, must be run A.
	"$KBOX" cgexec-clone3 -c --rm -g "$T_REL/shared/a" -- \
		sh -c '. "$1"; wait_until 30 "run B to start" test -e "$2"' _ "$KBOX_ROOT/tests/wait.sh" "$W/a-may-end" 3>&- &
	local a=$!
	wait_until 10 "run A to create $T/shared/a" test -d "$T/shared/a"
	# B lets A end, outlives A's clean-up, and must be neither killed nor moved.
	run kb cgexec-clone3 -c --rm -g "$T_REL/shared/b" -- \
		sh -c '. "$1"; touch "$2"; a_ended() { ! kill -0 "$3" 2>/dev/null; }
			wait_until 30 "run A to end" a_ended "$3" && sleep 0.2 && echo alive' \
		_ "$KBOX_ROOT/tests/wait.sh" "$W/a-may-end" "$a"
	wait "$a"
	assert_success
	assert_output "alive"
	# Each removed its own cgroup; shared/ (A's) was not empty when A ended.
	assert_not_exist "$T/shared/a"
	assert_not_exist "$T/shared/b"
	rmdir "$T/shared"
}

@test "--rm kills processes left behind, including ones in child cgroups" {
	run kb cgexec-clone3 -c --rm -g "$T_REL/left" -- sh -c "
		. '$KBOX_ROOT/tests/wait.sh'
		sleep 1000 >/dev/null 2>&1 & echo \$! >'$W/p1'
		mkdir '$T/left/sub' && sh -c 'echo \$\$ >$T/left/sub/cgroup.procs; exec sleep 1000' >/dev/null 2>&1 &
		wait_until 10 'a process in $T/left/sub' grep -qs . '$T/left/sub/cgroup.procs' || exit 1
		cat '$T/left/sub/cgroup.procs' >'$W/p2'
		exit 3"
	assert_failure 3
	assert_output "cgexec-clone3: --rm: killed 2 leftover processes in $T/left"
	assert_not_exist "$T/left"
	for p in $(cat "$W/p1" "$W/p2"); do
		# Gone, or a zombie waiting for its new parent to reap it.
		run ps -o stat= -p "$p"
		[ -z "$output" ] || [[ $output == Z* ]]
	done
}

@test "a failed run removes the cgroup it created" {
	run kb cgexec-clone3 -c --rm -g "$T_REL/fail/x" -p cgroup.nonsense=1 true
	assert_failure 125
	assert_not_exist "$T/fail"
}

@test "--note sets extended attributes on the cgroup directory" {
	require_cmd getfattr
	run kb cgexec-clone3 -c -g "$T_REL/noted" --note owner=ci --note trusted.kbox.job=42 \
		--note empty= true
	assert_success
	run getfattr --absolute-names --only-values -n user.owner "$T/noted"
	assert_output ci
	run getfattr --absolute-names --only-values -n trusted.kbox.job "$T/noted"
	assert_output 42
	run getfattr --absolute-names -n user.empty "$T/noted"
	assert_success
	run kb cgexec-clone3 -g "$T_REL/noted" --note bogus.x=1 true
	assert_failure 125
	assert_output --partial "cgexec-clone3: cannot set bogus.x on $T/noted: Operation not supported"
	run kb cgexec-clone3 -g "$T_REL/noted" --note novalue true
	assert_failure 125
	assert_line --index 0 "cgexec-clone3: --note novalue: expected KEY=VALUE"
}

@test "-p writes control files before the command starts; sizes take suffixes" {
	mkdir "$T/props"
	run kb cgexec-clone3 -g "$T_REL/props" -p cgroup.max.descendants=3 \
		-p cgroup.max.depth=2 -- cat "$T/props/cgroup.max.descendants" "$T/props/cgroup.max.depth"
	assert_success
	assert_output $'3\n2'
	# A size suffix becomes bytes (cgroup.max.descendants takes any number).
	run kb cgexec-clone3 -g "$T_REL/props" -p cgroup.max.descendants=1K cat "$T/props/cgroup.max.descendants"
	assert_output 1024
	# A long token (a cpuset list on a big machine, say) is written whole.
	run kb cgexec-clone3 -g "$T_REL/props" -p "cgroup.max.depth=$(printf '0%.0s' $(seq 300))7" \
		cat "$T/props/cgroup.max.depth"
	assert_success
	assert_output 7
}

@test "-p errors name the file and the reason, before anything runs" {
	mkdir "$T/perr"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.nonsense=1 touch "$W/ran"
	assert_failure 125
	assert_output "cgexec-clone3: cgroup.nonsense: no such control file in $T/perr"
	run kb cgexec-clone3 -g "$T_REL/perr" -p frobnicate.max=1 touch "$W/ran"
	assert_output "cgexec-clone3: frobnicate.max: no such control file (no controller named frobnicate)"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.controllers=x touch "$W/ran"
	assert_output "cgexec-clone3: cgroup.controllers: read-only control file"
	run kb cgexec-clone3 -g "$T_REL/perr" -p ../x=1 touch "$W/ran"
	assert_output "cgexec-clone3: ../x: not a control file name"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.max.depth=lots touch "$W/ran"
	assert_output "cgexec-clone3: invalid value 'lots' for cgroup.max.depth: Invalid argument"
	run kb cgexec-clone3 -g "$T_REL/perr" -p nothing touch "$W/ran"
	assert_failure 125
	assert_line --index 0 "cgexec-clone3: -p nothing: expected FILE=VALUE"
	# Core files that act rather than configure: nothing is written.
	sleep 60 3>&- &
	local bystander=$!
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.procs=$bystander touch "$W/ran"
	assert_failure 125
	assert_output "cgexec-clone3: cgroup.procs: not a setting: it moves processes (the command is placed by clone3)"
	[ -z "$(cat "$T/perr/cgroup.procs")" ]
	kill "$bystander"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.threads=1 touch "$W/ran"
	assert_output --partial "cgroup.threads: not a setting: it moves threads"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.kill=1 touch "$W/ran"
	assert_output --partial "cgroup.kill: not a setting: it kills"
	run kb cgexec-clone3 -g "$T_REL/perr" -p cgroup.subtree_control=+hugetlb touch "$W/ran"
	assert_output --partial "use --enable-controllers"
	assert_not_exist "$W/ran"
}

@test "controllers bound to cgroup v1 or not enabled are explained" {
	local c v1 mnt
	# A controller this host binds to v1, if any (read from /proc/cgroups).
	v1=$(awk '!/^#/ && $2 > 0 && $1 != "blkio" {print $1; exit}' /proc/cgroups)
	if [ -n "$v1" ]; then
		mnt=$(findmnt -n -t cgroup -O "$v1" -o TARGET | head -1)
		mkdir "$T/v1"
		run kb cgexec-clone3 -g "$T_REL/v1" -p "$v1.max=1" touch "$W/ran"
		assert_failure 125
		assert_output "cgexec-clone3: $v1.max: the $v1 controller is bound to cgroup v1${mnt:+ at $mnt}, so cgroup2 cannot use it"
		run kb cgexec-clone3 -g "$v1:$T_REL/v1" touch "$W/ran"
		assert_output --partial "cgexec-clone3: $v1: the $v1 controller is bound to cgroup v1"
	fi
	# A cgroup2 controller the root does not pass down to our sub-tree.
	for c in $(cat "$CG_ROOT/cgroup.controllers"); do
		grep -qw "$c" "$T/cgroup.controllers" && continue
		mkdir -p "$T/ne"
		run kb cgexec-clone3 -g "$c,$c:$T_REL/ne" touch "$W/ran"
		assert_failure 125
		assert_output --regexp "^cgexec-clone3: $c: the $c controller is not enabled for $T/ne: it is missing from .*/cgroup.subtree_control \(write \+$c there, or use --enable-controllers\)\$"
		break
	done
	[ -n "$v1$c" ] || skip "no v1-bound or unused cgroup2 controller here"
	assert_not_exist "$W/ran"
}

@test "--info prints the mount, options and controllers; --json the same" {
	require_cmd jq
	mkdir "$T/info"
	run kb cgexec-clone3 --info -g "$T_REL/info"
	assert_success
	assert_line "$(printf '%-27s%s' mount "$CG_ROOT")"
	assert_line "$(printf '%-27s%s' cgroup "$T/info")"
	assert_line --regexp '^nsdelegate +(yes|no)$'
	assert_line "$(printf '%-27s%s' cgroup.kill "$([ -e "$T/info/cgroup.kill" ] && echo yes || echo no)")"
	kb cgexec-clone3 --info --json -g "$T_REL/info" >"$W/j"
	run jq -r .mount "$W/j";  assert_output "$CG_ROOT"
	run jq -r .cgroup "$W/j"; assert_output "$T/info"
	run jq -r .exists "$W/j"; assert_output true
	run jq -r '.controllers | join(" ")' "$W/j"; assert_output "$(cat "$T/info/cgroup.controllers")"
	run jq -r '.processes' "$W/j"; assert_output 0
	local opts; opts=$(findmnt -n -o FS-OPTIONS "$CG_ROOT")
	run jq -r '.options | join(",")' "$W/j"; assert_output "$opts"
	# --root below the mount point: still that mount's options.
	run kb cgexec-clone3 --info --json --root "$T"
	run jq -r '.options | join(",")' <<<"$output"; assert_output "$opts"
	run jq -r .nsdelegate "$W/j"
	[[ ,$opts, == *,nsdelegate,* ]] && assert_output true || assert_output false
	run jq -r '.v1_controllers | join(" ")' "$W/j"
	assert_output "$(awk '!/^#/ && $2 > 0 {print $1}' /proc/cgroups | xargs)"
	# The root cgroup and one that does not exist.
	run kb cgexec-clone3 --info --json
	assert_success
	run jq -r .cgroup <<<"$output"; assert_output "$CG_ROOT"
	run kb cgexec-clone3 --info --json -g "$T_REL/nope"
	run jq -r .exists <<<"$output"; assert_output false
}

@test "exit status: the command's own, 128+N on a signal, 126, 127" {
	mkdir "$T/st"
	run kb cgexec-clone3 -g "$T_REL/st" sh -c 'exit 42'
	assert_failure 42
	run kb cgexec-clone3 -g "$T_REL/st" sh -c 'kill -KILL $$'
	assert_failure 137
	run -127 kb cgexec-clone3 -g "$T_REL/st" /nonexistent/cmd
	assert_failure 127
	assert_output "cgexec-clone3: /nonexistent/cmd: command not found"
	run -127 kb cgexec-clone3 -g "$T_REL/st" kbox-no-such-command
	assert_failure 127
	assert_output "cgexec-clone3: kbox-no-such-command: command not found"
	printf 'data\n' >"$W/notexec"
	chmod 0644 "$W/notexec"
	run kb cgexec-clone3 -g "$T_REL/st" "$W/notexec"
	assert_failure 126
	assert_output "cgexec-clone3: $W/notexec: cannot execute: Permission denied"
	run kb cgexec-clone3 -g "$T_REL/st" "$W"
	assert_failure 126
	# The file exists, its #! interpreter does not: 126, not "not found".
	printf '#!/nonexistent/interpreter\n' >"$W/noint"
	chmod 0755 "$W/noint"
	run kb cgexec-clone3 -g "$T_REL/st" "$W/noint"
	assert_failure 126
	assert_output "cgexec-clone3: $W/noint: cannot execute: bad interpreter (its #! line names a missing program)"
}

@test "signals INT TERM HUP QUIT USR1 USR2 are forwarded to the command" {
	mkdir "$T/sig"
	for s in INT TERM HUP QUIT USR1 USR2; do
		rm -f "$W/ready" "$W/out"
		"$KBOX" cgexec-clone3 -g "$T_REL/sig" -- "$KBOX_TESTBIN/sig-catch" "$W/ready" >"$W/out" 2>&1 &
		local pid=$!
		wait_until 10 "sig-catch to start under cgexec-clone3" test -e "$W/ready"
		kill -s "$s" "$pid"
		wait_until 10 "cgexec-clone3 to end after forwarding SIG$s" ended "$pid"
		local rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 9 ]
		run cat "$W/out"
		assert_output "got $s"
	done
	# A signal the command does not catch kills it: 128+N (kb is a function: run $KBOX itself).
	# A signal arriving before exec waits in the child's blocked mask, so
	# there is no window to wait out: the cgroup's cgroup.procs suffices.
	"$KBOX" cgexec-clone3 -g "$T_REL/sig" -- sleep 1000 &
	pid=$!
	wait_until 10 "sleep to start in $T/sig" grep -q . "$T/sig/cgroup.procs"
	kill -TERM "$pid"
	wait_until 10 "cgexec-clone3 to end after forwarding SIGTERM" ended "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 143 ]
}

@test "the command keeps the caller's fds, environment and stdin" {
	mkdir "$T/inherit"
	echo input >"$W/in"
	KBOX_TEST_VAR=hello kb cgexec-clone3 -g "$T_REL/inherit" -- \
		sh -c 'echo "$KBOX_TEST_VAR" >&3; cat; readlink /proc/self/fd/0 >&3' 3>"$W/fd3" <"$W/in" >"$W/out"
	run cat "$W/fd3"
	assert_output $'hello\n'"$W/in"
	run cat "$W/out"
	assert_output input
}

@test "--stats reports wall time and the cgroup's cpu.stat; --json too" {
	require_cmd jq
	run kb cgexec-clone3 -c --rm --stats -g "$T_REL/stats" sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 4'
	assert_failure 4
	assert_line --index 0 --regexp '^cgexec-clone3: sh exited with status 4 after [0-9]+\.[0-9]{3} s$'
	assert_line --index 1 --regexp '^  cpu +[0-9]+\.[0-9]{3} s \(user [0-9.]+ s, system [0-9.]+ s\)$'
	kb cgexec-clone3 -c --rm --stats --json -g "$T_REL/stats" sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done' 2>"$W/j"
	run jq -r '.exit_status' "$W/j";  assert_output 0
	run jq -r '.cgroup' "$W/j";  assert_output "$T/stats"
	run jq -r '.cpu.usage_usec > 0 and .cpu.user_usec + .cpu.system_usec > 0' "$W/j"
	assert_output true
	run jq -r '.wall_usec > 0' "$W/j";  assert_output true
	# Controllers this hierarchy lacks are reported as null, not as zero.
	if [ ! -e "$T/memory.peak" ]; then
		run jq -r '.memory_peak, .memory_events' "$W/j"
		assert_output $'null\nnull'
	fi
	run kb cgexec-clone3 -c --rm --stats --json -g "$T_REL/stats" sh -c 'kill -USR1 $$'
	assert_failure 138
	run jq -r '.signal, .exit_status' <<<"$output"
	assert_output $'10\n138'
}

@test "without CLONE_INTO_CGROUP: a clear error, or --fallback moves the child and says so" {
	mkdir "$T/fb"
	local nc=$KBOX_TESTBIN/no-clone3
	run "$nc" "$KBOX" cgexec-clone3 -g "$T_REL/fb" "$(probe)"
	assert_failure 125
	assert_output "cgexec-clone3: clone3 cannot start a process inside a cgroup here: Function not implemented (CLONE_INTO_CGROUP needs Linux 5.7 and no seccomp filter refusing clone3; --fallback moves the command before exec instead)"
	run --separate-stderr "$nc" "$KBOX" cgexec-clone3 --fallback -g "$T_REL/fb" "$(probe)" fork 4
	assert_success
	assert_equal "$stderr" "cgexec-clone3: clone3 cannot start a process inside a cgroup on this kernel; the command moved itself into $T/fb before exec (--fallback)"
	assert_equal "$(grep -c " /$T_REL/fb\$" <<<"$output")" 5
	# Exit codes are the same on the old path.
	run -127 "$nc" "$KBOX" cgexec-clone3 --fallback -g "$T_REL/fb" /nonexistent
	assert_failure 127
	run "$nc" "$KBOX" cgexec-clone3 --fallback -g "$T_REL/fb" sh -c 'exit 5'
	assert_failure 5
}

@test "EACCES explains the delegation rule (as an unprivileged user)" {
	require_cmd setpriv
	mkdir "$T/deleg"
	local as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
	"${as_nobody[@]}" test -x "$KBOX" || skip "nobody cannot run $KBOX"
	local self; self=$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
	run "${as_nobody[@]}" "$KBOX" cgexec-clone3 -g "$T_REL/deleg" true
	assert_failure 125
	assert_output --partial "cgexec-clone3: cannot start the command in $T/deleg: Permission denied (delegation rule: moving a process from $self needs write access to $T/deleg/cgroup.procs and to "
	# Owning the target is not enough: the common ancestor's cgroup.procs counts too.
	chown nobody "$T/deleg" "$T/deleg/cgroup.procs"
	run "${as_nobody[@]}" "$KBOX" cgexec-clone3 -g "$T_REL/deleg" true
	assert_failure 125
	assert_output --regexp "the common ancestor's\)\$"
	run "${as_nobody[@]}" "$KBOX" cgexec-clone3 -c -g "$T_REL/deleg2/x" true
	assert_failure 125
	assert_output "cgexec-clone3: cannot create $T/deleg2: Permission denied (needs write access to $T)"
}

@test "errors: missing cgroup, no cgroup2 mount, bad paths, usage" {
	run kb cgexec-clone3 -g "$T_REL/absent" true
	assert_failure 125
	assert_output "cgexec-clone3: cgroup $T/absent does not exist (use -c to create it)"
	run kb cgexec-clone3 -g "$T_REL/../x" true
	assert_failure 125
	assert_output "cgexec-clone3: $T_REL/../x: '.' and '..' are not allowed in a cgroup path"
	# A path in a cgroup v1 hierarchy is not taken for a cgroup2 one.
	local v1; v1=$(findmnt -n -t cgroup -o TARGET | head -1)
	if [ -n "$v1" ]; then
		run kb cgexec-clone3 -c --rm -g "$v1/kbox-test" true
		assert_failure 125
		assert_output "cgexec-clone3: $v1/kbox-test is in a cgroup v1 hierarchy; cgroup2 is mounted at $CG_ROOT"
		assert_not_exist "$CG_ROOT${v1}"
	fi
	# An empty path (an unset variable, say) is not taken for the root.
	run kb cgexec-clone3 -g "" true
	assert_failure 125
	assert_output "cgexec-clone3: empty cgroup path (/ names the root)"
	run kb cgexec-clone3 -g "hugetlb:" true
	assert_failure 125
	run kb cgexec-clone3 true
	assert_failure 125
	assert_line --index 0 "cgexec-clone3: missing -g CGROUP"
	run kb cgexec-clone3 -g "$T_REL"
	assert_failure 125
	assert_line --index 0 "cgexec-clone3: missing COMMAND"
	run kb cgexec-clone3 --bogus -g x true
	assert_failure 125
	assert_output "cgexec-clone3: unrecognized option '--bogus'"$'\n'"Try 'cgexec-clone3 --help' for more information."
	run kb cgexec-clone3 --info true
	assert_failure 125
	assert_line --index 0 "cgexec-clone3: --info takes no command"
	run kb cgexec-clone3 -g x -- --help
	assert_failure 125   # x does not exist; --help after -- is the command
	run kb cgexec-clone3 -g x -h
	assert_success
	assert_line --index 0 --partial "Usage: cgexec-clone3"
	run kb cgexec-clone3 -V
	assert_output --regexp '^cgexec-clone3 \(kbox\) '
	# No cgroup2 mount at all (in a private mount namespace).
	require_cmd unshare
	run unshare -m sh -c "for m in \$(findmnt -n -t cgroup2 -o TARGET); do umount \$m; done; exec '$KBOX' cgexec-clone3 -g x true"
	assert_failure 125
	assert_output "cgexec-clone3: no cgroup2 file system is mounted (mount -t cgroup2 none /sys/fs/cgroup, or give --root)"
}

@test "bash completion offers cgroup paths and the cgroup's control files" {
	mkdir -p "$T/comp/sub"
	comp() {
		bash -c 'source "$1/completions/cgexec-clone3"; shift
			COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _cgexec_clone3; echo "${COMPREPLY[*]}"' \
			_ "$KBOX_ROOT" "$@"
	}
	run comp cgexec-clone3 --root "$CG_ROOT" -g "$T_REL/co"
	assert_output "$T_REL/comp/"
	run comp cgexec-clone3 --root "$CG_ROOT" -g "hugetlb:$T_REL/comp/"
	assert_output "hugetlb:$T_REL/comp/sub/"
	run comp cgexec-clone3 --root "$CG_ROOT" -g "$T_REL/comp" -p cgroup.max.de
	assert_output "cgroup.max.depth= cgroup.max.descendants="
	run comp cgexec-clone3 --root "$CG_ROOT" -g "$T_REL/comp" -p cgroup.
	assert_output --partial "cgroup.max.depth="
	refute_output --regexp 'cgroup\.(procs|threads|kill|subtree_control)='
	run comp cgexec-clone3 --fa
	assert_output --fallback
}

@test "libcommon: run a command in a fresh cgroup and wait for it (the reusable API)" {
	mkdir "$T/api"
	run --separate-stderr "$KBOX_TESTBIN/cgroup-run" "$T_REL/api" sh -c "$(probe); sleep 1000 & exit 6"
	assert_failure 6
	assert_output --regexp "^/$T_REL/api/run\.[0-9]+\.0\$"
	assert_equal "${stderr_lines[0]}" "cgroup $CG_ROOT${output}"
	assert_equal "${stderr_lines[1]}" "status 6"
	assert_equal "${stderr_lines[2]}" "cpu_usage_known 1"
	# The fresh cgroup and the process left in it are gone.
	run find "$T/api" -mindepth 1 -type d
	assert_output ""
}
