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

# exfat_tree DIR: a small tree to populate test volumes with: a.txt ("hello"),
# dir/b.bin (20000 random bytes), dir/sub/c.bin (300000), dir/n1..n20.
exfat_tree() {
	mkdir -p "$1/dir/sub"
	echo hello > "$1/a.txt"
	head -c 20000 /dev/urandom > "$1/dir/b.bin"
	head -c 300000 /dev/urandom > "$1/dir/sub/c.bin"
	for i in $(seq 1 20); do echo "$i" > "$1/dir/n$i"; done
}

# fresh_image: IMG is a new sparse copy of the suite's base image
# ($BATS_FILE_TMPDIR/base.img, made by its setup_file), TREE its source tree.
fresh_image() {
	TREE=$BATS_FILE_TMPDIR/tree
	IMG=$BATS_TEST_TMPDIR/t.img
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
}

# percent_in_use SECTOR: PercentInUse of $IMG's boot sector at SECTOR (of
# 512 bytes): 0, the main boot region's, or 12, the backup's.
percent_in_use() { od -An -tu1 -j $(($1 * 512 + 112)) -N1 "$IMG" | tr -d ' '; }

# clusters_in_use: total and allocated clusters of $IMG, as Debian's
# dump.exfat counts them in the allocation bitmap.
clusters_in_use() {
	run -0 /usr/sbin/dump.exfat "$IMG"
	local total free
	total=$(sed -n 's/^Total Clusters:[[:space:]]*//p' <<<"$output")
	free=$(sed -n 's/^Free Clusters:[[:space:]]*//p' <<<"$output")
	[ -n "$total" ] && [ -n "$free" ] || fail "dump.exfat printed no cluster counts: $output"
	echo "$total $((total - free))"
}
# bitmap_percent: the PercentInUse those counts give, rounded down.
bitmap_percent() {
	local total used
	read -r total used < <(clusters_in_use)
	[ -n "$used" ] || fail "no cluster counts from dump.exfat"
	echo $((used * 100 / total))
}

# le32 N, le64 N: N's bytes, little-endian, in hex, as poke takes them.
le32() { printf '%02x %02x %02x %02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
le64() { le32 $(($1 & 0xffffffff)); printf ' '; le32 $(($1 >> 32)); }

# builds: the binary under test, then the sanitizer build ./kbox-asan if it
# is built (for suites that feed both untrusted volumes).
builds() {
	echo "$KBOX"
	[ "$KBOX" != "$KBOX_ROOT/kbox-asan" ] && [ -x "$KBOX_ROOT/kbox-asan" ] && echo "$KBOX_ROOT/kbox-asan"
	return 0
}

# mount_fuse IMAGE [OPTIONS]: attaches IMAGE to a loop device, LOOP, and
# mounts that with exfat-fuse (-o OPTIONS) on MNT, a new directory.
# umount_fuse undoes it; a suite's teardown calls loop_cleanup, which undoes
# whatever a failed test left.
mount_fuse() {
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	LOOP=$(losetup -f --show "$1")
	mount.exfat-fuse ${2:+-o "$2"} "$LOOP" "$MNT" >/dev/null 2>&1 || fail "exfat-fuse cannot mount $1"
}
umount_fuse() {
	umount "$MNT"
	wait_closed "$LOOP"
	losetup -d "$LOOP"
	LOOP=
}
loop_cleanup() {
	[ -n "${MNT:-}" ] && mountpoint -q "$MNT" && umount "$MNT"
	[ -n "${LOOP:-}" ] && losetup -d "$LOOP" 2>/dev/null
	return 0
}

# wait_closed DEV: waits until no process has DEV open (a FUSE daemon may
# still be writing to it when umount returns).
closed() { ! find /proc/[0-9]*/fd -lname "$1" 2>/dev/null | grep -q .; }
wait_closed() { wait_until 10 "every process to close $1" closed "$1" || fail "$1 still open after umount"; }
