# Bounded waiting for the tests, in plain sh: sourced by tests/test_helper.bash,
# inside the test VM (tests/vm/inside.sh) and by `sh -c` scripts the tests run
# (`. "$KBOX_ROOT/tests/wait.sh"`).
#
# wait_until SECONDS WHAT COMMAND [ARG]...
#   Runs COMMAND (a program or a shell function) every 50 ms until it
#   succeeds, then returns 0. Once SECONDS have passed it gives up: prints
#   "timed out after SECONDS s waiting for WHAT" on stderr and returns 1.
#   WHAT says what should have happened: "snap-target to write its layout".
wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$(($(date +%s) + secs))
	until "$@"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			echo "timed out after ${secs} s waiting for $what" >&2
			return 1
		fi
		sleep 0.05
	done
}

# ended PID: true once process PID has ended: gone, or a zombie its parent
# has not reaped. For wait_until 10 "X to exit" ended "$pid".
ended() {
	local stat
	stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}

# loop_detach SECONDS DEVICE
#   Detaches a loop device and waits until it has let go of its backing file.
#   A FUSE daemon on it (exfat-fuse) writes its last changes after umount
#   returns, and the device is released only once the daemon closes it:
#   until then the image may not be whole. Returns 1 (saying so) if it is
#   still held after SECONDS.
loop_detach() {
	local back file
	back=/sys/block/${2#/dev/}/loop/backing_file
	file=$(cat "$back" 2>/dev/null) || return 0
	losetup -d "$2" 2>/dev/null
	wait_until "$1" "$2 to let go of $file" loop_released "$back" "$file"
}
loop_released() { [ "$(cat "$1" 2>/dev/null)" != "$2" ]; }
