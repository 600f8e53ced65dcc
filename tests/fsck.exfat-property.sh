#!/usr/bin/env bash
# Property test of fsck.exfat's repairs, over seeded random bit flips in the
# metadata of a populated volume.
#
# Two volumes of 32 MiB are made once (one by Debian's mkfs.exfat with 4 KiB
# clusters, one by kbox's with 1 KiB clusters) and filled through exfat-fuse:
# a few hundred files in nested directories (one holding 150 files), written
# in interleaved chunks so their FAT chains are fragmented, some deleted and
# others written into the holes. For each seed, a copy of one of them gets
# 1 to 4 bit flips in its boot regions, FAT, allocation bitmap, up-case table
# or directory clusters (tests/progs/exfat-flip.c, which also says which files
# own the metadata hit), and then:
#   - `fsck.exfat -y` (the sanitizer build, ./kbox-asan, when built) must not
#     crash, hang or report a sanitizer error;
#   - when it exits 0 or 1, the next `kbox fsck.exfat -n` and Debian's
#     `fsck.exfat -n` must both exit 0, and every file whose own metadata was
#     not hit must read back (exfat-fuse, read-only) with its sha256;
#   - when it exits 1, the main boot sector's PercentInUse must be the share
#     of clusters in use that Debian's dump.exfat counts, rounded down.
# Prints one line per failing seed, then the figures: seeds, exit codes,
# files compared. Failing images (before the repair) and logs are kept with
# -k DIR.
#
# usage: fsck.exfat-property.sh [-s FIRST_SEED] [-n SEEDS] [-f FLIPS] [-k KEEP_DIR] [-v]
# (-f: that many flips for every seed instead of 1 to 4; -v: also a line for
# each seed whose repair exits with neither 0 nor 1, saying what was left)
# Exit status: 0 all seeds held, 1 a seed failed, 2 usage or setup error,
# 77 a requirement is missing (root, losetup, exfat-fuse, exfatprogs).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
KBOX=${KBOX:-$root/kbox}
REPAIR_KBOX=${REPAIR_KBOX:-$root/kbox-asan}
[ -x "$REPAIR_KBOX" ] || REPAIR_KBOX=$KBOX
. "$here/wait.sh"
FLIP=$root/build/tests/exfat-flip
COPY=$root/build/tests/interleave-copy
first=1 seeds=20 keep= flips= verbose=
while getopts s:n:f:k:v opt; do
	case $opt in
	s) first=$OPTARG ;;
	n) seeds=$OPTARG ;;
	f) flips=$OPTARG ;;
	k) keep=$OPTARG ;;
	v) verbose=1 ;;
	*) echo "usage: $0 [-s FIRST_SEED] [-n SEEDS] [-f FLIPS] [-k KEEP_DIR] [-v]" >&2; exit 2 ;;
	esac
done

missing() { echo "fsck.exfat-property: needs $1" >&2; exit 77; }
[ "$(id -u)" -eq 0 ] || missing root
for cmd in losetup unshare mount.exfat-fuse /usr/sbin/fsck.exfat /usr/sbin/mkfs.exfat /usr/sbin/dump.exfat sha256sum timeout; do
	command -v "$cmd" >/dev/null || missing "$cmd"
done
# The exfat-fuse mounts live in a mount namespace of their own: a namespace
# another program makes meanwhile would get a copy of them otherwise, and
# keep exfat-fuse (and the image) busy after umount.
if [ -z "${KBOX_PROPERTY_NAMESPACE:-}" ]; then
	KBOX_PROPERTY_NAMESPACE=1 exec unshare -m --propagation private "$0" "$@"
fi
[ -x "$KBOX" ] && [ -x "$FLIP" ] && [ -x "$COPY" ] || { echo "fsck.exfat-property: build kbox first (make)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/kbox-fsck-property.XXXXXX)
mnt=$tmp/mnt
mkdir "$mnt"
loopdev=
# exfat-fuse writes its last changes after umount returns: the image is whole
# once the detached loop device has let go of it (loop_detach, 30 s).
unmount() {
	local dev=$loopdev
	if mountpoint -q "$mnt"; then
		timeout 30 umount "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	[ -n "$dev" ] || return 0
	loopdev=
	loop_detach 30 "$dev" && return 0
	echo "fsck.exfat-property: $dev is held by:" \
		"$(find /proc/[0-9]*/fd -lname "$dev" 2>/dev/null | cut -d/ -f3 | sort -u |
		   while read -r pid; do printf '%s:%s:%s:%s ' "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)" \
			"$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" "$(cat /proc/$pid/task/*/wchan 2>/dev/null)"; done)" >&2
	return 1
}
cleanup() {
	unmount
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# attach IMAGE [-r]: a loop device for the image (retried for 5 s: others
# take devices at the same time).
attach() {
	wait_until 5 "a loop device for $1" try_attach "$@"
}
try_attach() { loopdev=$(losetup -f --show $2 "$1" 2>/dev/null); }

# mount_image IMAGE rw|ro: mounts it on $mnt through exfat-fuse.
mount_image() {
	attach "$1" "$([ "$2" = ro ] && echo -r)" || return 1
	timeout 30 mount.exfat-fuse -o "$2" "$loopdev" "$mnt" >/dev/null 2>&1 && return 0
	echo "fsck.exfat-property: exfat-fuse cannot mount $1" >&2
	unmount
	return 1
}

# The files: sizes from a fixed sequence (RANDOM seeded), contents random.
make_source() {
	local src=$1 i d size
	RANDOM=4242
	mkdir -p "$src"/d{0..5} "$src"/d0/s{0..2} "$src"/d1/s0/t0 "$src"/many "$src"/empty
	for i in $(seq 1 150); do
		size=$((RANDOM % 3 == 0 ? RANDOM % 20000 : RANDOM % 3000))
		head -c "$size" /dev/urandom > "$src/many/file-$i.dat"
	done
	for i in $(seq 1 200); do
		case $((i % 11)) in
		0) d=. ;; 1|2) d=d0 ;; 3) d=d0/s1 ;; 4) d=d0/s2 ;; 5) d=d1/s0/t0 ;; 6) d=d2 ;; 7) d=d3 ;; 8) d=d4 ;; *) d=d5 ;;
		esac
		size=$((RANDOM % 10 == 0 ? RANDOM * 4 : RANDOM % 9000))
		head -c "$size" /dev/urandom > "$src/$d/f$i with a longer name.bin"
	done
}

# fill IMAGE SRC MANIFEST: writes SRC through exfat-fuse, 8 KiB of every
# file in turn (tests/progs/interleave-copy.c), deletes every seventh file
# and writes it again (into the holes), and records each file's sha256.
fill() {
	local img=$1 src=$2 manifest=$3 f
	mount_image "$img" rw || return 1
	(cd "$src" && find . -mindepth 1 -type d | sort) | while read -r f; do mkdir -p "$mnt/$f"; done
	(cd "$src" && find . -type f | sort) > "$tmp/files"
	"$COPY" 8192 "$src" "$mnt" < "$tmp/files" || { unmount; return 1; }
	awk 'NR % 7 == 0' "$tmp/files" > "$tmp/again"
	(cd "$mnt" && tr '\n' '\0' < "$tmp/again" | xargs -0 rm)
	"$COPY" 1048576 "$src" "$mnt" < "$tmp/again" || { unmount; return 1; }
	(cd "$src" && tr '\n' '\0' < "$tmp/files" | xargs -0 sha256sum) > "$manifest"
	unmount || return 1
}

# check_files IMAGE MANIFEST HITS: every file of MANIFEST not listed in HITS
# ("hit PATH" lines) reads back with its sha256. Those that do not go to
# $tmp/lost; $compared counts the files compared.
check_files() {
	local img=$1 manifest=$2 hits=$3 rc=0
	sed -n 's|^hit /|./|p' "$hits" > "$tmp/hit-paths"
	awk -v hits="$tmp/hit-paths" 'BEGIN { while ((getline p < hits) > 0) hit[p] = 1 }
		!(substr($0, 67) in hit)' "$manifest" > "$tmp/expect"
	compared=$((compared + $(wc -l < "$tmp/expect")))
	[ -s "$tmp/expect" ] || return 0
	mount_image "$img" ro || { echo "cannot be mounted" > "$tmp/lost"; return 1; }
	(cd "$mnt" && timeout 120 sha256sum --quiet -c "$tmp/expect") > "$tmp/lost" 2>&1 || rc=1
	unmount || rc=1
	return "$rc"
}

# percent_of IMAGE: its main boot sector's PercentInUse, and the one the
# clusters in use that Debian's dump.exfat counts call for.
percent_of() {
	printf '%s ' "$(od -An -tu1 -j 112 -N1 "$1" | tr -d ' ')"
	/usr/sbin/dump.exfat "$1" 2>/dev/null |
		awk -F: '/^Total Clusters/ { t = $2 } /^Free Clusters/ { f = $2 } END { if (t > 0) print int((t - f) * 100 / t) }'
}

make_base() {
	local name=$1
	truncate -s 32M "$tmp/$name.img"
	case $name in
	debian) /usr/sbin/mkfs.exfat "$tmp/$name.img" >/dev/null ;;
	kbox) "$KBOX" mkfs.exfat -q -c 1K "$tmp/$name.img" ;;
	esac || return 1
	fill "$tmp/$name.img" "$tmp/src" "$tmp/$name.manifest" || return 1
	"$KBOX" fsck.exfat -n "$tmp/$name.img" >/dev/null && /usr/sbin/fsck.exfat -n "$tmp/$name.img" >/dev/null || {
		echo "fsck.exfat-property: the $name base volume does not check clean" >&2
		return 1
	}
	: > "$tmp/nohits"
	check_files "$tmp/$name.img" "$tmp/$name.manifest" "$tmp/nohits" || {
		echo "fsck.exfat-property: the $name base volume does not read back: $(head -n 3 "$tmp/lost")" >&2
		return 1
	}
}

make_source "$tmp/src"
compared=0
make_base debian && make_base kbox || exit 2
echo "base volumes made and read back in ${SECONDS}s"
[ -z "$keep" ] || mkdir -p "$keep"

declare -A exits
failures=0 compared=0 kept=0
for ((seed = first; seed < first + seeds; seed++)); do
	base=$([ $((seed % 2)) = 0 ] && echo debian || echo kbox)
	img=$tmp/seed.img
	cp --sparse=always "$tmp/$base.img" "$img"
	"$FLIP" "$img" "$seed" $flips > "$tmp/flips" || { echo "seed $seed: exfat-flip failed"; exit 2; }
	cp --sparse=always "$img" "$tmp/damaged.img"
	ASAN_OPTIONS=exitcode=99 UBSAN_OPTIONS=exitcode=99:print_stacktrace=1 \
		timeout 120 "$REPAIR_KBOX" fsck.exfat -y "$img" > "$tmp/repair.log" 2>&1
	rc=$?
	exits[$rc]=$((${exits[$rc]:-0} + 1))
	why=
	if [ "$rc" -ge 99 ] || grep -qE 'Sanitizer|runtime error' "$tmp/repair.log"; then
		why="fsck.exfat -y crashed (exit $rc)"
	elif [ "$rc" = 124 ]; then
		why="fsck.exfat -y did not finish in 120 s"
	elif [ "$rc" = 0 ] || [ "$rc" = 1 ]; then
		if ! timeout 120 "$KBOX" fsck.exfat -n "$img" > "$tmp/recheck.log" 2>&1; then
			why="kbox fsck.exfat -n after the repair: $(tail -n 3 "$tmp/recheck.log" | tr '\n' ' ')"
		elif ! timeout 120 /usr/sbin/fsck.exfat -n "$img" > "$tmp/recheck.log" 2>&1; then
			why="Debian's fsck.exfat -n after the repair: $(grep -v '^exfatprogs' "$tmp/recheck.log" | head -n 3 | tr '\n' ' ')"
		elif ! check_files "$img" "$tmp/$base.manifest" "$tmp/flips"; then
			why="$(head -n 3 "$tmp/lost" | tr '\n' ' ')"
		elif [ "$rc" = 1 ] && read -r percent want < <(percent_of "$img") && [ "$percent" != "$want" ]; then
			why="PercentInUse $percent after the repair, where dump.exfat's counts give ${want:-nothing}"
		fi
	fi
	if [ -n "$verbose" ] && [ -z "$why" ] && [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
		echo "seed $seed ($base): exit $rc: $(grep -v ': repaired: ' "$tmp/repair.log" | tail -n 2 | tr '\n' ' ')"
	fi
	if [ -n "$why" ]; then
		failures=$((failures + 1))
		echo "seed $seed ($base): $why; flips: $(grep '^flip' "$tmp/flips" | cut -d' ' -f2- | tr '\n' ';')"
		if [ -n "$keep" ] && [ "$kept" -lt 50 ]; then
			cp --sparse=always "$tmp/damaged.img" "$keep/seed-$seed.img"
			cp "$tmp/flips" "$keep/seed-$seed.flips"
			cp "$tmp/repair.log" "$keep/seed-$seed.log"
			kept=$((kept + 1))
		fi
	fi
done

codes=
for rc in $(printf '%s\n' "${!exits[@]}" | sort -n); do codes+=" $rc:${exits[$rc]}"; done
echo "seeds $seeds (from $first), fsck.exfat -y exit codes (code:seeds):$codes"
echo "files compared after repairs: $compared; failing seeds: $failures"
[ "$failures" -eq 0 ]
