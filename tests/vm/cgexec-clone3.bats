#!/usr/bin/env bats
# cgexec-clone3 on a pure cgroup2 kernel with memory, cpu and pids: limits,
# statistics, controller enabling and the delegation / internal-process rules.
# One boot runs every scenario; each test judges one of them on the host.
load test_helper

setup_file() {
	[ -x "$KBOX" ] && "$KBOX" --list | grep -qx cgexec-clone3 || return 0
	command -v qemu-system-x86_64 >/dev/null 2>&1 || return 0
	vm_run - <<-'EOF'
		C=/sys/fs/cgroup
		cg() { kbox cgexec-clone3 "$@"; }

		# A hog beyond memory.max is OOM-killed; --stats shows the oom_kill.
		oom() { cg -c --rm --stats --json -g oom -p memory.max=32M -- memhog 256; }
		vm_case oom oom

		# pids.max stops a fork bomb; --rm kills the children it leaves.
		forkbomb() { cg -c --rm --stats --json -g bomb -p pids.max=10 -- forkbomb 50; }
		vm_case forkbomb forkbomb

		# cpu.max at 10% throttles a busy loop.
		cpumax() { cg -c --rm --stats --json -g slow -p cpu.max="10000 100000" -- timeout 1 sh -c 'while :; do :; done'; }
		vm_case cpumax cpumax

		# --stats figures of a run that touches 24 MiB.
		stats() { cg -c --rm --stats --json -g st -- memhog 24; }
		vm_case stats stats

		# Controllers missing from an ancestor's subtree_control: the error,
		# then --enable-controllers writing them root first.
		mkdir $C/en
		vm_case not_enabled cg -c --rm -g en/leaf -p memory.max=64M -p pids.max=20 true
		vm_case enable cg -c --rm --enable-controllers -g en/leaf -p memory.max=64M -p pids.max=20 \
			cat $C/en/leaf/memory.max $C/en/leaf/pids.max
		vm_case enabled_after cat $C/en/cgroup.subtree_control
		vm_case enable_cgexec_syntax cg -c --rm -g memory,pids:en/leaf2 cgroup-probe

		# No internal processes: a cgroup that enables controllers for its
		# children takes no process; one holding a process cannot enable them.
		mkdir $C/inner $C/inner/child
		echo +memory >$C/inner/cgroup.subtree_control
		vm_case ebusy_place cg -g inner true
		mkdir $C/occupied
		sh -c "echo \$\$ >$C/occupied/cgroup.procs; exec sleep 1000" &
		sleeper=$!
		occupied() { [ -n "$(cat $C/occupied/cgroup.procs)" ]; }
		wait_until 20 "the sleeper to enter $C/occupied" occupied
		vm_case ebusy_enable cg -c --enable-controllers -g occupied/x -p memory.max=1M true
		vm_case ebusy_left ls $C/occupied/x
		kill $sleeper

		# Delegation as an unprivileged user: refused from the root cgroup,
		# accepted once the user's shell sits in the delegated sub-tree.
		mkdir $C/deleg $C/deleg/home $C/deleg/work
		chown -R 65534:65534 $C/deleg
		vm_case eacces run-as 65534 65534 kbox cgexec-clone3 -g deleg/work cgroup-probe
		delegated() {
			sh -c "echo \$\$ >$C/deleg/home/cgroup.procs
			       exec run-as 65534 65534 kbox cgexec-clone3 -g deleg/work cgroup-probe"
		}
		vm_case delegated delegated

		# The old way is weaker: pids.max=0 refuses a process born in the
		# cgroup, but a process that moves itself in after fork gets in.
		mkdir $C/nofork
		echo 0 >$C/nofork/pids.max
		vm_case born_limited cg -g nofork cgroup-probe
		moved() { no-clone3 kbox cgexec-clone3 --fallback -g nofork sh -c 'read n <'$C'/nofork/pids.current; echo "inside, pids.current=$n"'; }
		vm_case moved_limited moved
	EOF
}

setup() {
	require_applet cgexec-clone3
	vm_require
}

@test "VM: -p memory.max kills a hog; --stats shows memory.events oom_kill" {
	vm_result oom
	[ "$status" -eq 137 ]
	run jq -r '.exit_status, .signal, (.memory_events.oom_kill >= 1), (.memory_peak <= 32 * 1048576)' <<<"$stderr"
	assert_output $'137\n9\ntrue\ntrue'
}

@test "VM: pids.max stops a fork bomb; --rm kills the survivors" {
	vm_result forkbomb
	assert_success
	assert_output "forked 9, refused 41"
	assert_equal "${stderr_lines[1]}" "cgexec-clone3: --rm: killed 9 leftover processes in /sys/fs/cgroup/bomb"
}

@test "VM: cpu.max throttles (cpu.stat nr_throttled in --stats)" {
	vm_result cpumax
	[ "$status" -eq 143 ]   # stopped by busybox timeout's SIGTERM
	# --rm may add a line after the report (the killed shell can still be exiting).
	report=$(grep '^{' <<<"$stderr" | tail -n 1)
	[ -n "$report" ] || { echo "no --stats report in: $stderr"; false; }
	run jq -r '(.cpu.nr_throttled > 0), (.cpu.throttled_usec > 0), (.cpu.nr_periods >= .cpu.nr_throttled)' <<<"$report"
	assert_output $'true\ntrue\ntrue'
}

@test "VM: --stats reports wall time, cpu, memory.peak and memory.events" {
	vm_result stats
	assert_success
	assert_output "touched 24 MiB"
	run jq -r '(.wall_usec > 0), (.cpu.usage_usec > 0), (.memory_peak >= 24 * 1048576),
		.memory_peak_source, .memory_events.oom_kill, .exit_status' <<<"$stderr"
	assert_output $'true\ntrue\ntrue\nmemory.peak\n0\n0'
}

@test "VM: a controller missing from an ancestor is named; --enable-controllers adds it" {
	vm_result not_enabled
	[ "$status" -eq 125 ]
	assert_equal "$stderr" "cgexec-clone3: memory.max: the memory controller is not enabled for /sys/fs/cgroup/en/leaf: it is missing from /sys/fs/cgroup/en/cgroup.subtree_control (write +memory there, or use --enable-controllers)"
	vm_result enable
	assert_success
	assert_output $'67108864\n20'
	vm_result enabled_after
	assert_output "memory pids"
	vm_result enable_cgexec_syntax
	assert_success
	assert_output /en/leaf2
}

@test "VM: EBUSY explains the no-internal-process rule" {
	vm_result ebusy_place
	[ "$status" -eq 125 ]
	assert_equal "$stderr" "cgexec-clone3: cannot start the command in /sys/fs/cgroup/inner: Device or resource busy (no-internal-process rule: a cgroup that enables controllers for its children (cgroup.subtree_control: memory) cannot hold processes; use a leaf cgroup)"
	vm_result ebusy_enable
	[ "$status" -eq 125 ]
	assert_equal "$stderr" "cgexec-clone3: cannot write '+memory' to /sys/fs/cgroup/occupied/cgroup.subtree_control: Device or resource busy (no-internal-process rule: a cgroup holding processes cannot enable controllers for its children; move them into a leaf cgroup first)"
	# The sub-cgroup it created for the run was removed again.
	vm_result ebusy_left
	assert_failure
}

@test "VM: EACCES as a non-root user explains delegation; inside the delegated tree it works" {
	vm_result eacces
	[ "$status" -eq 125 ]
	assert_equal "$stderr" "cgexec-clone3: cannot start the command in /sys/fs/cgroup/deleg/work: Permission denied (delegation rule: moving a process from / needs write access to /sys/fs/cgroup/deleg/work/cgroup.procs and to /sys/fs/cgroup/cgroup.procs, the common ancestor's)"
	vm_result delegated
	assert_success
	assert_output /deleg/work
}

@test "VM: the old way lets a process into a cgroup whose pids.max refuses births" {
	vm_result born_limited
	[ "$status" -eq 125 ]
	assert_equal "$stderr" "cgexec-clone3: cannot start the command in /sys/fs/cgroup/nofork: Resource temporarily unavailable (pids.max of the cgroup or an ancestor reached)"
	vm_result moved_limited
	assert_success
	assert_output "inside, pids.current=1"
}
