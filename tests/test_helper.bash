# Shared setup for kbox's bats suites: `load test_helper` at the top of a suite.
bats_require_minimum_version 1.5.0
bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load.bash
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load.bash
bats_load_library bats-file 2>/dev/null || load /usr/lib/bats/bats-file/load.bash

KBOX_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# KBOX may point at another build (e.g. the sanitizer build, ./kbox-asan).
KBOX=${KBOX:-$KBOX_ROOT/kbox}
KBOX_TESTBIN=$KBOX_ROOT/build/tests
SHARED=${KBOX_SHARED:-$KBOX_ROOT/../shared}
export KBOX KBOX_ROOT KBOX_TESTBIN SHARED
# Other tools' output (dump.exfat's labels, error messages) is compared as text:
# one locale whatever the caller's. C.UTF-8 comes with libc.
export LC_ALL=C.UTF-8

# Runs an applet through the multicall binary: `kb mkfs.exfat -h`.
kb() { "$KBOX" "$@"; }

require_root() { [ "$(id -u)" -eq 0 ] || skip "needs root"; }
require_cmd() { command -v "$1" >/dev/null 2>&1 || skip "needs $1"; }
require_applet() { "$KBOX" --list | grep -qx "$1" || skip "applet $1 not built"; }
require_shared() { [ -d "$SHARED/$1" ] || skip "../shared/$1 is absent"; }

# outputs_are CMD... <<TABLE: for each line "ARG EXPECTED..." of the table, runs
# CMD... ARG and fails unless it prints EXPECTED (the rest of the line).
outputs_are() {
	local arg want rows=0
	while read -r arg want; do
		[ -n "$arg" ] || continue
		run "$@" "$arg" </dev/null
		[ "$output" = "$want" ] || fail "$* $arg: expected '$want', got '$output'"
		rows=$((rows + 1))
	done
	[ "$rows" -gt 0 ] || fail "outputs_are $*: empty table"
}

# exFAT images, for suites that inspect or damage the image $IMG:
# loc ARGS... runs tests/progs/exfat-locate on it; poke OFFSET BYTE... writes
# bytes (hex) at OFFSET.
loc() { "$KBOX_TESTBIN/exfat-locate" "$IMG" "$@"; }
poke() {
	local off=$1 hex="" byte; shift
	for byte in "$@"; do hex+="\\x$byte"; done
	printf "$hex" | dd of="$IMG" bs=1 seek="$off" conv=notrunc status=none
}

# Every wait in a test is bounded: wait_until SECONDS WHAT COMMAND [ARG]...
source "$KBOX_ROOT/tests/wait.sh"

# True once process PID has ended: gone, or a zombie its parent has not reaped.
ended() {
	local stat
	stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}
