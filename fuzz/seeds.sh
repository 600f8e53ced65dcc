#!/usr/bin/env bash
# Makes fuzzing seeds, one folder per target under OUTDIR:
#   fsck_exfat: small exFAT volumes (512-byte clusters, 4 KiB alignment, so
#     every structure lies in the first 48 KiB) cut to their first 48 KiB;
#     when run as root with exfat-fuse, also one whose files were written
#     through it (FAT chains, fragmented by interleaved appends), cut to 64 KiB;
#   exfat_label: the same small volumes, and one whose root directory has no
#     free entry;
#   undo: undo files of real repairs (one complete, one from a run killed part
#     way), each also with byte 40 set so the harness keeps its CRCs right;
#   kmsg: the split-lock log forms of the tests' fixtures, line by line too;
#   exfat_dump: the fsck_exfat volumes, and their exfat2img streams.
# usage: seeds.sh KBOX OUTDIR
set -eu
kbox=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
# As root, in a mount namespace of its own: the exfat-fuse mount below must
# not be copied into one that another program makes meanwhile (it would keep
# exfat-fuse, and the image, busy after umount).
if [ "$(id -u)" = 0 ] && [ -z "${KBOX_SEEDS_NAMESPACE:-}" ] && command -v unshare >/dev/null; then
	KBOX_SEEDS_NAMESPACE=1 exec unshare -m --propagation private bash "$0" "$@"
fi
tmp=$(mktemp -d)
mnt= loopdev=
cleanup() {
	[ -z "$mnt" ] || umount "$mnt" 2>/dev/null || true
	[ -z "$loopdev" ] || losetup -d "$loopdev" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$out/fsck_exfat" "$out/undo" "$out/kmsg" "$out/exfat_dump" "$tmp/tree/dir/sub"
echo hello > "$tmp/tree/a.txt"
printf '%s\n' one two three > "$tmp/tree/dir/b.txt"
head -c 3000 /dev/zero | tr '\0' x > "$tmp/tree/dir/sub/c.bin"
for i in 1 2 3 4 5 6; do echo "$i" > "$tmp/tree/dir/n$i"; done
"$kbox" mkfs.exfat -q -b 4K -c 512 "$tmp/empty.img" 1M
"$kbox" mkfs.exfat -q -b 4K -c 512 -L seed -d "$tmp/tree" "$tmp/tree.img" 1M
"$kbox" mkfs.exfat -q -b 4K -c 1K -s 1024 -d "$tmp/tree" "$tmp/tree1k.img" 1M
for img in "$tmp"/*.img; do
	head -c 49152 "$img" > "$out/fsck_exfat/$(basename "$img" .img)"
	cp "$out/fsck_exfat/$(basename "$img" .img)" "$out/exfat_dump/"
	"$kbox" exfat2img -o - "$img" 2>/dev/null | head -c 49152 > "$out/exfat_dump/$(basename "$img" .img).stream"
done
# exfat_label: the same volumes, and one whose root directory is full (label,
# bitmap, up-case and files of 3+3+3+4 entries in one 512-byte cluster).
mkdir -p "$out/exfat_label" "$tmp/full"
cp "$out"/fsck_exfat/* "$out/exfat_label/"
for f in one two three a-name-of-20-chars; do echo "$f" > "$tmp/full/$f"; done
"$kbox" mkfs.exfat -q -b 4K -c 512 -d "$tmp/full" "$tmp/full.img" 1M
head -c 49152 "$tmp/full.img" > "$out/exfat_label/full"

# Files written through exfat-fuse: three directory levels, files appended to
# in turn (so their chains interleave), one deleted to leave a hole.
write_chained() {
	local m=$1 i f
	mkdir -p "$m/d/e"
	for i in 1 2 3; do
		for f in a b c; do
			yes "$f$i" | head -c 700 >> "$m/$f"
			yes "d$f$i" | head -c 300 >> "$m/d/$f$i"
		done
	done
	rm "$m/b"
	yes x | head -c 1500 > "$m/d/e/x"
}
if [ "$(id -u)" = 0 ] && command -v mount.exfat-fuse >/dev/null; then
	. "$here/../tests/wait.sh"
	"$kbox" mkfs.exfat -q -b 4K -c 512 "$tmp/chained.img" 1M
	mkdir "$tmp/mnt"
	if loopdev=$(losetup -f --show "$tmp/chained.img") &&
	   timeout 20 mount.exfat-fuse "$loopdev" "$tmp/mnt" >/dev/null 2>&1; then
		mnt=$tmp/mnt
		write_chained "$mnt"
		umount "$mnt" && mnt=
	fi
	# exfat-fuse is done writing once the loop device lets go of the image.
	if [ -n "$loopdev" ] && loop_detach 30 "$loopdev" && [ -z "$mnt" ]; then
		head -c 65536 "$tmp/chained.img" > "$out/fsck_exfat/chained"
	fi
	loopdev=
fi

# Undo files: damage the checksum of /a.txt's entry set, then repair with -z
# (whole, and killed at a 6000-byte file limit). The entry is found with the
# tests' exfat-locate (built by `make`).
locate=$here/../build/tests/exfat-locate
entry=$("$locate" "$tmp/tree.img" entry /a.txt | cut -d' ' -f1)
damage() {
	cp "$tmp/tree.img" "$tmp/d.img"
	printf '\x12\x34' | dd of="$tmp/d.img" bs=1 seek=$((entry + 2)) conv=notrunc status=none
}
damage
"$kbox" fsck.exfat -y -z "$out/undo/complete" "$tmp/d.img" >/dev/null 2>&1 || true
damage
{ prlimit --fsize=6000 "$kbox" fsck.exfat -y -z "$tmp/cut" "$tmp/d.img" >/dev/null; } 2>/dev/null || true
[ ! -s "$tmp/cut" ] || cp "$tmp/cut" "$out/undo/interrupted"
for f in "$out"/undo/*; do
	cp "$f" "$f.fix"
	printf '\x01' | dd of="$f.fix" bs=1 seek=40 conv=notrunc status=none
done

fixtures=$here/../tests/fixtures/splitlock-stat
cp "$fixtures/forms.kmsg" "$fixtures/garbage.kmsg" "$out/kmsg/"
split -l 1 -d "$fixtures/forms.kmsg" "$out/kmsg/line"
