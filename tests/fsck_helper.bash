# Shared by the fsck.exfat suites: the base image they damage, where its
# structures are, and how a problem is detected, repaired and its files
# compared. `load fsck_helper` after test_helper: it also gives the suite
# its setup_file (the base image), setup (IMG, a fresh copy) and teardown.

field() { loc entry "$1" | cut -d' ' -f"$2"; }   # 1 offset, 2 first cluster, 3 size
set_fat() { poke "$(loc fat "$1")" $(le32 "$2"); }

# fsck_base_image: the suite's base image ($BATS_FILE_TMPDIR/base.img, which
# fresh_image copies), made by kbox's mkfs.exfat -d from a small tree (TREE):
# a.txt, keep.txt, dir/b.bin, dir/sub/c.bin and dir/n1..n20.
fsck_base_image() {
	TREE=$BATS_FILE_TMPDIR/tree
	mkdir -p "$TREE/dir/sub"
	echo hello > "$TREE/a.txt"
	head -c 20000 /dev/urandom > "$TREE/dir/b.bin"
	head -c 300000 /dev/urandom > "$TREE/dir/sub/c.bin"
	echo keep > "$TREE/keep.txt"
	for i in $(seq 1 20); do echo "$i" > "$TREE/dir/n$i"; done
	"$KBOX" mkfs.exfat -q -L label -d "$TREE" "$BATS_FILE_TMPDIR/base.img" 64M
}

setup_file() {
	require_applet fsck.exfat 2>/dev/null || return 0
	fsck_base_image
}

setup() {
	require_applet fsck.exfat
	require_applet mkfs.exfat
	fresh_image
}

teardown() { loop_cleanup; }

# detect CODE: a read-only check exits 4 and reports CODE.
detect() {
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e --arg c "$1" '.problems | map(.code) | index($c) != null' >/dev/null ||
		fail "expected a '$1' problem, got: $output $stderr"
	echo "$output" | jq -e '.exit_code == 4 and .clean == false' >/dev/null
}

# repair [OPTS]: -y exits 1, then kbox and Debian find the image clean.
repair() {
	run -1 "$KBOX" fsck.exfat -y "$@" "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "clean"
	if command -v /usr/sbin/fsck.exfat >/dev/null; then
		run -0 /usr/sbin/fsck.exfat -n "$IMG"
	fi
}

sha() { sha256sum | cut -d' ' -f1; }

# same IMGPATH TREEPATH [BYTES|+]...: the file reads back (through exfat-fuse)
# with the sha256 of the tree's file (TREEPATH relative to $TREE, or
# absolute), or of its first BYTES bytes; with +, it begins with the whole
# tree file and may go on.
same() {
	require_root
	require_cmd mount.exfat-fuse
	mount_fuse "$IMG" ro
	local mnt=$MNT rc=0 want
	while [ $# -ge 2 ]; do
		want=$2; [[ $want == /* ]] || want=$TREE/$want
		if [[ ${3:-} =~ ^[0-9]+$ ]]; then
			[ "$(sha < "$mnt/$1")" = "$(head -c "$3" "$want" | sha)" ] || { rc=1; echo "$1 differs"; }
			[ "$(stat -c %s "$mnt/$1")" -eq "$3" ] || { rc=1; echo "$1: size $(stat -c %s "$mnt/$1")"; }
			shift 3
		elif [ "${3:-}" = + ]; then
			[ "$(head -c "$(stat -c %s "$want")" "$mnt/$1" | sha)" = "$(sha < "$want")" ] || { rc=1; echo "$1 differs"; }
			shift 3
		else
			[ "$(sha < "$mnt/$1")" = "$(sha < "$want")" ] || { rc=1; echo "$1 differs"; }
			shift 2
		fi
	done
	umount_fuse
	[ "$rc" -eq 0 ] || fail "file contents differ after the repair"
}

# on_fuse IMAGE COMMAND...: runs COMMAND with $MNT the image mounted
# read-write through exfat-fuse.
on_fuse() {
	local rc=0
	mount_fuse "$1"
	shift
	"$@" || rc=$?
	umount_fuse
	return "$rc"
}

# fuse_image: IMG becomes a 64 MiB volume made by Debian's mkfs.exfat (4 KiB
# clusters) and written through exfat-fuse, as most cards are: contiguous
# files f1..f5, d/ and d/g, f6, f7 one after another, then two FAT chains a
# and b of 6 clusters each, grown a cluster at a time in turn, then a
# contiguous z, the last clusters in use (f1..f7 hold text, but f4 0xff
# bytes, the others random bytes). TREE holds the files written.
fuse_image() {
	require_root
	require_cmd mount.exfat-fuse
	require_cmd mkfs.exfat
	TREE=$BATS_FILE_TMPDIR/fuse-tree
	local base=$BATS_FILE_TMPDIR/fuse.img k
	if [ ! -f "$base" ]; then
		rm -rf "$TREE"; mkdir -p "$TREE/d"
		for k in 1 2 3 5 6 7; do seq -f "f$k %g" 100000 | head -c $((k * 5000 + 300)) > "$TREE/f$k"; done
		head -c 20300 /dev/zero | tr '\0' '\377' > "$TREE/f4"
		head -c 9000 /dev/urandom > "$TREE/d/g"
		head -c 24576 /dev/urandom > "$TREE/a"; head -c 24576 /dev/urandom > "$TREE/b"
		head -c 10000 /dev/urandom > "$TREE/z"
		truncate -s 64M "$base.new"; /usr/sbin/mkfs.exfat "$base.new" >/dev/null
		on_fuse "$base.new" write_fuse_tree
		mv "$base.new" "$base"
	fi
	cp --sparse=always "$base" "$IMG"
}

write_fuse_tree() {
	local k
	cp "$TREE"/f[1-5] "$MNT"/ && mkdir "$MNT/d" && cp "$TREE/d/g" "$MNT/d/" && cp "$TREE"/f[67] "$MNT"/ || return 1
	for k in 0 1 2 3 4 5; do
		dd if="$TREE/a" bs=4096 skip=$k count=1 status=none >> "$MNT/a" &&
			dd if="$TREE/b" bs=4096 skip=$k count=1 status=none >> "$MNT/b" || return 1
	done
	cp "$TREE/z" "$MNT/"
}

# grow PATH BYTES [damaged]: raises DataLength and ValidDataLength by BYTES;
# the set checksum is recomputed (so only the size is wrong) unless damaged.
grow() {
	local off len vdl
	off=$(field "$1" 1)
	vdl=$(od -An -tu8 -j $((off + 32 + 8)) -N8 "$IMG") len=$(od -An -tu8 -j $((off + 32 + 24)) -N8 "$IMG")
	poke $((off + 32 + 8)) $(le64 $((vdl + $2)))
	poke $((off + 32 + 24)) $(le64 $((len + $2)))
	[ "${3:-}" = damaged ] || loc fixsum "$1"
}

fat_of() { od -An -tu4 -j "$(loc fat "$1")" -N4 "$IMG" | tr -d ' '; }

# checked CODE PATH: -n --json reports CODE on PATH; sets PROBLEM to it.
checked() {
	detect "$1"
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	PROBLEM=$(echo "$output" | jq -c --arg c "$1" --arg p "$2" '.problems[] | select(.code == $c and .path == $p)')
	[ -n "$PROBLEM" ] || fail "no '$1' problem on $2: $output"
}
