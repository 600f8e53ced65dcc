#!/usr/bin/env bats
# exfat2img against Debian's exfatprogs exfat2img on the same volumes: the
# images are as long as Debian's and sparse; fsck.exfat says of an image what
# it says of the volume, on damage the test makes and on the exfatprogs
# corruption corpus; streams go both ways between the two programs; -z
# round trips; a restore onto a blank loop device passes kbox's and Debian's
# fsck; a restore that cannot be made leaves the target as it was.
load test_helper

# What fsck.exfat -n finds: its exit code and each problem's code, path and offset.
diagnosis() {
	"$KBOX" fsck.exfat -n --json "$1" 2>/dev/null | jq -c '[.exit_code, [.problems[] | [.code, .path, .offset]]]'
}

# same_diagnosis VOLUME IMAGE: a check of the image finds what a check of the
# volume finds, and a repair of a copy of each ends the same way.
same_diagnosis() {
	local want got
	want=$(diagnosis "$1")
	got=$(diagnosis "$2")
	[ -n "$want" ] || fail "no fsck report for $1"
	assert_equal "$got" "$want"
	cp --sparse=always "$1" "$BATS_TEST_TMPDIR/v.copy"
	cp --sparse=always "$2" "$BATS_TEST_TMPDIR/i.copy"
	want=$("$KBOX" fsck.exfat -y --json "$BATS_TEST_TMPDIR/v.copy" 2>/dev/null |
		jq -c '[.exit_code, [.problems[] | [.code, .path, .repaired]]]')
	got=$("$KBOX" fsck.exfat -y --json "$BATS_TEST_TMPDIR/i.copy" 2>/dev/null |
		jq -c '[.exit_code, [.problems[] | [.code, .path, .repaired]]]')
	assert_equal "$got" "$want"
	rm -f "$BATS_TEST_TMPDIR/v.copy" "$BATS_TEST_TMPDIR/i.copy"
}

# Allocated KiB, and apparent size in bytes.
used_kib() { du -k "$1" | cut -f1; }
size() { stat -c %s "$1"; }

setup_file() {
	local tree=$BATS_FILE_TMPDIR/tree
	exfat_tree "$tree"
	# An empty directory, and more file data than metadata.
	mkdir "$tree/empty"
	head -c 3000000 /dev/urandom > "$tree/dir/big.bin"
	"$KBOX" mkfs.exfat -q -L label -d "$tree" "$BATS_FILE_TMPDIR/base.img" 64M 2>/dev/null || true
}

setup() {
	require_applet exfat2img
	require_applet mkfs.exfat
	require_applet fsck.exfat
	fresh_image
}

teardown() { loop_cleanup; }

# ---- the sparse image ------------------------------------------------------

@test "-o: the image is as long as Debian's, sparse, holds no file data, and checks as the volume" {
	require_cmd /usr/sbin/exfat2img
	run -0 "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG"
	assert_output --regexp '^24 files found, 4 directories dumped, [0-9]+ kbytes written$'
	/usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/d.img" "$IMG" >/dev/null 2>&1
	assert_equal "$(size "$BATS_TEST_TMPDIR/k.img")" "$(size "$BATS_TEST_TMPDIR/d.img")"
	assert_equal "$(size "$BATS_TEST_TMPDIR/k.img")" "$(size "$IMG")"
	# Sparse: far less allocated than its length, and less than the volume's data.
	[ "$(used_kib "$BATS_TEST_TMPDIR/k.img")" -lt $(($(size "$BATS_TEST_TMPDIR/k.img") / 1024 / 10)) ]
	[ "$(used_kib "$BATS_TEST_TMPDIR/k.img")" -lt "$(used_kib "$IMG")" ]
	run -1 grep -q hello "$BATS_TEST_TMPDIR/k.img"
	same_diagnosis "$IMG" "$BATS_TEST_TMPDIR/k.img"
	run -0 "$KBOX" fsck.exfat -n "$BATS_TEST_TMPDIR/k.img"
	run -0 /usr/sbin/fsck.exfat -n "$BATS_TEST_TMPDIR/k.img"
	# Every metadata structure is where it was: dump.exfat sees the same tree.
	run -0 "$KBOX" dump.exfat -p /dir/sub/c.bin --json "$IMG"
	local want=$output
	run -0 "$KBOX" dump.exfat -p /dir/sub/c.bin --json "$BATS_TEST_TMPDIR/k.img"
	assert_equal "$(echo "$output" | jq -c 'del(.device)')" "$(echo "$want" | jq -c 'del(.device)')"
}

@test "-o: Debian-made volumes (several cluster sizes) give images as long as Debian's that check as the volume" {
	require_cmd /usr/sbin/exfat2img
	local d=$BATS_TEST_TMPDIR/d.img
	for args in "-c 512" "-c 4096" "-c 1M"; do
		rm -f "$d"; truncate -s 300M "$d"
		/usr/sbin/mkfs.exfat $args "$d" >/dev/null
		rm -f "$BATS_TEST_TMPDIR/k.img" "$BATS_TEST_TMPDIR/x.img"
		run -0 "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$d"
		/usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/x.img" "$d" >/dev/null 2>&1
		assert_equal "$(size "$BATS_TEST_TMPDIR/k.img")" "$(size "$BATS_TEST_TMPDIR/x.img")"
		same_diagnosis "$d" "$BATS_TEST_TMPDIR/k.img"
	done
}

@test "damage made here: the image is diagnosed as the volume (checksum, loop, cross-link, bitmap, entries after the end)" {
	local off first second
	off=$(loc entry /dir/b.bin | cut -d' ' -f1)
	poke $((off + 2)) 12 34                                    # set checksum
	first=$(loc entry /dir/sub/c.bin | cut -d' ' -f2)
	poke "$(loc fat $((first + 5)))" $(le32 $((first + 2)))    # a loop
	second=$(loc entry /a.txt | cut -d' ' -f2)
	poke "$(loc fat "$second")" $(le32 $((first + 50)))        # a cross-link
	poke "$(loc bitmap | cut -d' ' -f1)" 00                    # bitmap bits cleared
	off=$(loc type 0)
	poke $((off + 64)) 85                                      # an entry after the end mark
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	run -0 "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG"
	same_diagnosis "$IMG" "$BATS_TEST_TMPDIR/k.img"
}

@test "a directory whose set is damaged, looped or shared is still copied whole" {
	local off dir
	# /dir's set checksum and NameHash wrong: fsck still reads /dir.
	off=$(loc entry /dir | cut -d' ' -f1)
	poke $((off + 2)) 00 00
	poke $((off + 32 + 4)) 00 00
	# /dir/sub's chain pointed back at /dir's cluster: a directory loop.
	dir=$(loc entry /dir | cut -d' ' -f2)
	off=$(loc entry /dir/sub | cut -d' ' -f1)
	poke $((off + 32 + 20)) $(le32 "$dir")
	run -0 "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG"
	same_diagnosis "$IMG" "$BATS_TEST_TMPDIR/k.img"
}

# The exfatprogs corruption corpus: each volume's image is diagnosed as the
# volume by both builds, is as long as Debian's image (exfatprogs' exfat2img
# never finishes bad_root) and sparse, and its zstd stream restores to a
# volume diagnosed the same again. exfatprogs' own image of unused-dentries
# loses the entries after the end mark; kbox's keeps them.
@test "the corruption corpus: images and restored streams are diagnosed as the volumes" {
	require_shared exfat-corpus
	local dir c img bin want
	for dir in "$SHARED"/exfat-corpus/*/; do
		c=$(basename "$dir")
		rm -rf "$BATS_TEST_TMPDIR/c" "$BATS_TEST_TMPDIR"/*.img && mkdir "$BATS_TEST_TMPDIR/c"
		tar -xf "$dir/exfat.img.tar.xz" -C "$BATS_TEST_TMPDIR/c"
		img=$BATS_TEST_TMPDIR/c/exfat.img
		want=$(diagnosis "$img")
		for bin in $(builds); do
			rm -f "$BATS_TEST_TMPDIR/k.img"
			run --separate-stderr "$bin" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$img"
			[ "$status" -eq 0 ] || fail "$c: exfat2img exited $status: $stderr"
			[[ $stderr != *Sanitizer* && $stderr != *"runtime error"* ]] || fail "$c: $stderr"
			[ "$(diagnosis "$BATS_TEST_TMPDIR/k.img")" = "$want" ] || fail "$c: the image is diagnosed otherwise"
		done
		[ "$(size "$BATS_TEST_TMPDIR/k.img")" -eq "$(size "$img")" ] || fail "$c: image size differs"
		[ "$(used_kib "$BATS_TEST_TMPDIR/k.img")" -lt $(($(size "$img") / 1024 / 2)) ] || fail "$c: not sparse"
		if [ "$c" != bad_root ] && command -v /usr/sbin/exfat2img >/dev/null; then
			timeout 60 /usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/d.img" "$img" >/dev/null 2>&1
			[ "$(size "$BATS_TEST_TMPDIR/k.img")" -eq "$(size "$BATS_TEST_TMPDIR/d.img")" ] ||
				fail "$c: not as long as Debian's image"
		fi
		run -0 "$KBOX" exfat2img -z -o "$BATS_TEST_TMPDIR/k.zst" "$img"
		truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
		run -0 "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.zst" "$BATS_TEST_TMPDIR/r.img"
		[ "$(diagnosis "$BATS_TEST_TMPDIR/r.img")" = "$want" ] || fail "$c: the restored stream is diagnosed otherwise"
	done
}

# ---- streams ----------------------------------------------------------------

@test "-o -: kbox's stream restored by Debian's exfat2img is kbox's sparse image, byte for byte" {
	require_cmd /usr/sbin/exfat2img
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG" >/dev/null
	"$KBOX" exfat2img -o - "$IMG" > "$BATS_TEST_TMPDIR/k.stream" 2>/dev/null
	truncate -s "$(size "$IMG")" "$BATS_TEST_TMPDIR/r.img"
	/usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/r.img" - < "$BATS_TEST_TMPDIR/k.stream" >/dev/null 2>&1
	cmp "$BATS_TEST_TMPDIR/r.img" "$BATS_TEST_TMPDIR/k.img"
	# The header is exfatprogs': magic, version 1.0, data at 108.
	run -0 od -An -tx4 -N16 "$BATS_TEST_TMPDIR/k.stream"
	assert_equal "$(echo $output)" "b67598db 00000001 00000000 0000006c"
}

@test "Debian's stream restored by kbox is what Debian's own restore makes" {
	require_cmd /usr/sbin/exfat2img
	/usr/sbin/exfat2img -o - "$IMG" > "$BATS_TEST_TMPDIR/d.stream" 2>/dev/null
	truncate -s "$(size "$IMG")" "$BATS_TEST_TMPDIR/d.img" "$BATS_TEST_TMPDIR/k.img"
	/usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/d.img" - < "$BATS_TEST_TMPDIR/d.stream" >/dev/null 2>&1
	run -0 "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/d.stream" "$BATS_TEST_TMPDIR/k.img"
	assert_output --partial "(stream)"
	cmp "$BATS_TEST_TMPDIR/k.img" "$BATS_TEST_TMPDIR/d.img"
	# exfatprogs' own forms: DEVICE IMAGE, and -o DEVICE - to restore.
	rm -f "$BATS_TEST_TMPDIR/k.img"
	run -0 "$KBOX" exfat2img "$IMG" "$BATS_TEST_TMPDIR/k.img"
	truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/r.img" - < "$BATS_TEST_TMPDIR/d.stream" >/dev/null
	cmp "$BATS_TEST_TMPDIR/r.img" "$BATS_TEST_TMPDIR/d.img"
}

@test "-z: a zstd stream, to a file or through a pipe, restores to the sparse image" {
	require_cmd zstd
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG" >/dev/null
	run -0 "$KBOX" exfat2img -z -o "$BATS_TEST_TMPDIR/k.zst" "$IMG"
	zstd -tq "$BATS_TEST_TMPDIR/k.zst"
	[ "$(size "$BATS_TEST_TMPDIR/k.zst")" -lt 100000 ]
	truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
	run -0 "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.zst" "$BATS_TEST_TMPDIR/r.img"
	assert_output --partial "(stream+zstd)"
	cmp "$BATS_TEST_TMPDIR/r.img" "$BATS_TEST_TMPDIR/k.img"
	rm "$BATS_TEST_TMPDIR/r.img"; truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
	"$KBOX" exfat2img -z19 -o - "$IMG" 2>/dev/null | "$KBOX" exfat2img -r - "$BATS_TEST_TMPDIR/r.img" >/dev/null
	cmp "$BATS_TEST_TMPDIR/r.img" "$BATS_TEST_TMPDIR/k.img"
	# zstd's own files too: the decompressed stream is Debian-readable.
	zstd -dcq "$BATS_TEST_TMPDIR/k.zst" | cmp - <("$KBOX" exfat2img -o - "$IMG" 2>/dev/null)
	# And a plain image, compressed or not, through a pipe.
	rm "$BATS_TEST_TMPDIR/r.img"; truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
	zstd -cq "$BATS_TEST_TMPDIR/k.img" | "$KBOX" exfat2img -r - "$BATS_TEST_TMPDIR/r.img" >/dev/null
	cmp "$BATS_TEST_TMPDIR/r.img" "$BATS_TEST_TMPDIR/k.img"
}

@test "--json summaries" {
	run -0 "$KBOX" exfat2img --json -z -o "$BATS_TEST_TMPDIR/k.zst" "$IMG"
	echo "$output" | jq -e --argjson s "$(size "$IMG")" \
		'.mode == "copy" and .format == "stream+zstd" and .image_size == $s and .files == 24 and .directories == 4'
	echo "$output" | jq -e '.metadata_clusters > 0 and .bytes_written > 0'
	truncate -s 0 "$BATS_TEST_TMPDIR/r.img"
	run -0 "$KBOX" exfat2img --json -r - "$BATS_TEST_TMPDIR/r.img" < "$BATS_TEST_TMPDIR/k.zst"
	echo "$output" | jq -e '.mode == "restore" and .image == "standard input" and .format == "stream+zstd"'
}

# ---- restore onto a device -------------------------------------------------

@test "-r onto a blank loop device: kbox's and Debian's fsck find it clean, dump.exfat sees the volume" {
	require_root
	"$KBOX" exfat2img -z -o "$BATS_TEST_TMPDIR/k.zst" "$IMG" >/dev/null
	truncate -s "$(size "$IMG")" "$BATS_TEST_TMPDIR/blank"
	LOOP=$(losetup -f --show "$BATS_TEST_TMPDIR/blank")
	run -0 "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.zst" "$LOOP"
	run -0 "$KBOX" fsck.exfat -n "$LOOP"
	run -0 /usr/sbin/fsck.exfat -n "$LOOP"
	assert_equal "$("$KBOX" dump.exfat "$LOOP" | head -26)" "$("$KBOX" dump.exfat "$IMG" | head -26)"
}

@test "-r onto a device full of other data: the metadata is written whole, fsck finds the volume clean" {
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG" >/dev/null
	"$KBOX" exfat2img -o - "$IMG" 2>/dev/null | zstd -cq > "$BATS_TEST_TMPDIR/k.zst"
	/usr/sbin/exfat2img -o "$BATS_TEST_TMPDIR/d.img" "$IMG" >/dev/null 2>&1 || true
	local src
	for src in "$BATS_TEST_TMPDIR/k.img" "$BATS_TEST_TMPDIR/k.zst" "$BATS_TEST_TMPDIR/d.img"; do
		[ -s "$src" ] || continue
		head -c "$(size "$IMG")" /dev/urandom > "$BATS_TEST_TMPDIR/junk"
		run -0 "$KBOX" exfat2img -r "$src" "$BATS_TEST_TMPDIR/junk"
		run -0 "$KBOX" fsck.exfat -n "$BATS_TEST_TMPDIR/junk"
		run -0 /usr/sbin/fsck.exfat -n "$BATS_TEST_TMPDIR/junk"
	done
}

@test "-r refuses a mounted device, a file behind a loop device and a locked image; nothing is written" {
	require_root
	require_cmd mount.exfat-fuse
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG" >/dev/null
	local sum
	sum=$(sha256sum < "$IMG")
	mount_fuse "$IMG" ro
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.img" "$LOOP"
	assert_equal "$stderr" "exfat2img: $LOOP is mounted on $MNT: refusing to write to it"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.img" "$IMG"
	assert_equal "$stderr" "exfat2img: $IMG is mounted on $MNT: refusing to write to it"
	umount "$MNT"
	wait_closed "$LOOP"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.img" "$IMG"
	assert_equal "$stderr" "exfat2img: $IMG backs $LOOP: refusing to write to it"
	losetup -d "$LOOP"
	LOOP=
	run -1 --separate-stderr flock -x "$IMG" "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.img" "$IMG"
	assert_equal "$stderr" "exfat2img: $IMG is being checked or written by another program: refusing to write to it"
	assert_equal "$(sha256sum < "$IMG")" "$sum"
}

@test "-r with a truncated, damaged or foreign image leaves the target untouched" {
	local t=$BATS_TEST_TMPDIR/target sum s
	cp --sparse=always "$IMG" "$t"
	sum=$(sha256sum < "$t")
	"$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/k.img" "$IMG" >/dev/null
	"$KBOX" exfat2img -o - "$IMG" > "$BATS_TEST_TMPDIR/k.stream" 2>/dev/null
	"$KBOX" exfat2img -z -o "$BATS_TEST_TMPDIR/k.zst" "$IMG" >/dev/null
	s=$(size "$BATS_TEST_TMPDIR/k.stream")
	# A stream cut in the FAT area, and among the clusters.
	head -c 1000000 "$BATS_TEST_TMPDIR/k.stream" > "$BATS_TEST_TMPDIR/cut1"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/cut1" "$t"
	assert_equal "$stderr" "exfat2img: $BATS_TEST_TMPDIR/cut1: stream cut short before the cluster heap; nothing written to $t"
	head -c $((s - 5000)) "$BATS_TEST_TMPDIR/k.stream" > "$BATS_TEST_TMPDIR/cut2"
	run -1 --separate-stderr "$KBOX" exfat2img -r - "$t" < "$BATS_TEST_TMPDIR/cut2"
	assert_output ""
	[[ $stderr == "exfat2img: standard input: stream cut short: "*" clusters; nothing written to $t" ]]
	# A compressed stream cut short.
	head -c $(($(size "$BATS_TEST_TMPDIR/k.zst") / 2)) "$BATS_TEST_TMPDIR/k.zst" > "$BATS_TEST_TMPDIR/cut3"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/cut3" "$t"
	[[ $stderr == *"cut short"*"; nothing written to $t" ]]
	# A sparse image cut short.
	cp --sparse=always "$BATS_TEST_TMPDIR/k.img" "$BATS_TEST_TMPDIR/cut4"
	truncate -s 10M "$BATS_TEST_TMPDIR/cut4"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/cut4" "$t"
	assert_equal "$stderr" "exfat2img: $BATS_TEST_TMPDIR/cut4: the image has 10485760 bytes but its cluster heap ends at byte $(size "$IMG"): cut short; nothing written to $t"
	# A run past the cluster count.
	cp "$BATS_TEST_TMPDIR/k.stream" "$BATS_TEST_TMPDIR/bad"
	local heap
	heap=$(od -An -tu4 -j16 -N4 "$BATS_TEST_TMPDIR/k.stream" | tr -d ' ')
	printf '\x04\xff\xff\xff\x7f' | dd of="$BATS_TEST_TMPDIR/bad" bs=1 seek=$((108 + heap)) conv=notrunc status=none
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/bad" "$t"
	[[ $stderr == *"runs past the"*"nothing written to $t" ]]
	# Not an image at all, and nothing.
	head -c 1M /dev/urandom > "$BATS_TEST_TMPDIR/noise"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/noise" "$t"
	assert_equal "$stderr" "exfat2img: $BATS_TEST_TMPDIR/noise: neither an exFAT image nor an exfat2img stream; nothing written to $t"
	run -1 --separate-stderr "$KBOX" exfat2img -r - "$t" < /dev/null
	assert_equal "$stderr" "exfat2img: standard input: too short (0 bytes) to be an image or a stream; nothing written to $t"
	# A target too small for the image.
	if [ "$(id -u)" -eq 0 ]; then
		truncate -s 8M "$BATS_TEST_TMPDIR/small"
		LOOP=$(losetup -f --show "$BATS_TEST_TMPDIR/small")
		run -1 --separate-stderr "$KBOX" exfat2img -r "$BATS_TEST_TMPDIR/k.img" "$LOOP"
		assert_equal "$stderr" "exfat2img: $LOOP has 8388608 bytes, the image needs $(size "$IMG"); nothing written"
		[ "$(used_kib "$BATS_TEST_TMPDIR/small")" -eq 0 ]
	fi
	assert_equal "$(sha256sum < "$t")" "$sum"
}

# ---- bad input ---------------------------------------------------------------

@test "bad input: one-line errors, documented exit codes, nothing left behind" {
	head -c 1M /dev/zero > "$BATS_TEST_TMPDIR/zero.img"
	run -1 --separate-stderr "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/out.img" "$BATS_TEST_TMPDIR/zero.img"
	assert_equal "$stderr" "exfat2img: $BATS_TEST_TMPDIR/zero.img: not an exFAT filesystem (no EXFAT signature in either boot sector)"
	[ ! -e "$BATS_TEST_TMPDIR/out.img" ]
	run -1 --separate-stderr "$KBOX" exfat2img -o "$BATS_TEST_TMPDIR/out.img" "$BATS_TEST_TMPDIR/missing"
	assert_equal "$stderr" "exfat2img: $BATS_TEST_TMPDIR/missing: No such file or directory"
	run -1 --separate-stderr "$KBOX" exfat2img -o "$IMG" "$IMG"
	assert_equal "$stderr" "exfat2img: $IMG: the output would be the volume itself"
	run -1 --separate-stderr "$KBOX" exfat2img -o /dev/null "$IMG"
	assert_equal "$stderr" "exfat2img: /dev/null: a sparse image needs a regular file (-o - or -z write the stream form)"
	run -1 --separate-stderr "$KBOX" exfat2img -r "$IMG" "$IMG"
	assert_equal "$stderr" "exfat2img: $IMG: the image is $IMG itself"
	run -2 --separate-stderr "$KBOX" exfat2img "$IMG"
	assert_equal "${stderr%%$'\n'*}" "exfat2img: missing -o IMAGE, -r IMAGE or DEVICE IMAGE"
	run -2 --separate-stderr "$KBOX" exfat2img -o x
	assert_equal "${stderr%%$'\n'*}" "exfat2img: missing DEVICE"
	run -2 "$KBOX" exfat2img -o x -r y "$IMG"
	run -2 "$KBOX" exfat2img -z -r y "$IMG"
	run -2 "$KBOX" exfat2img --json -o - "$IMG"
	run -2 "$KBOX" exfat2img -z0 -o x "$IMG"
	run -2 "$KBOX" exfat2img --bogus "$IMG"
	# No output file, nor a temporary one, was left.
	[ -z "$(ls -a "$BATS_TEST_TMPDIR" | grep out)" ]
}
