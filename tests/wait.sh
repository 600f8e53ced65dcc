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
