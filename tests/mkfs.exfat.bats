#!/usr/bin/env bats
# mkfs.exfat: images checked by Debian's exfatprogs (fsck.exfat -n, dump.exfat),
# -d read back through exfat-fuse on a loop device, and every refusal.
load test_helper

setup_file() {
	# Sparse images up to 64 TiB need a filesystem that allows such files
	# (ext4 stops at 16 TiB): a private tmpfs when root, else /dev/shm.
	IMGDIR=$BATS_FILE_TMPDIR/img
	mkdir -p "$IMGDIR"
	if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=4g kbox-mkfs "$IMGDIR" 2>/dev/null; then
		echo mounted > "$BATS_FILE_TMPDIR/mounted"
	else
		IMGDIR=$(mktemp -d /dev/shm/kbox-mkfs.XXXXXX)
	fi
	export IMGDIR
}

teardown_file() {
	if [ ! -f "$BATS_FILE_TMPDIR/mounted" ]; then
		rm -rf "$IMGDIR"
		return 0
	fi
	# A loop device lets go of its (deleted) image only when its last user
	# closes it, and exfat-fuse closes it after umount has returned.
	unmounted() { umount "$1" 2>/dev/null; }
	wait_until 30 "the loop devices on $IMGDIR to let go of its images" unmounted "$IMGDIR" && return 0
	# Still held after that: only copies of a test's mount in other mount
	# namespaces are let go of (lazily: the tmpfs holds deleted images
	# alone, freed with those namespaces); anything else is a leak.
	local holders status=0
	holders=$(imgdir_holders "$IMGDIR") || status=$?
	if [ "$status" -ne 0 ]; then
		printf '%s is still busy:\n%s\n' "$IMGDIR" "$holders" >&2
		return 1
	fi
	printf '# %s\n' "$holders" "$IMGDIR is unmounted lazily" >&3
	umount -l "$IMGDIR"
}

# imgdir_holders DIR: says what keeps DIR busy. Returns 0 when all of it is
# loop devices the tests detached whose mount lives on in another mount
# namespace: one that a program made (unshare -m) while a test had the
# device mounted keeps a copy of that mount, and exfat-fuse's fuseblk mount
# keeps the loop device, for as long as that namespace lives.
imgdir_holders() {
	local dir=$1 ours leak=0 back sysdir loop file dev info pid
	ours=$(readlink /proc/self/ns/mnt)
	for back in /sys/block/loop*/loop/backing_file; do
		file=$(cat "$back" 2>/dev/null) || continue
		[[ $file == "$dir"/* ]] || continue
		sysdir=${back%/loop/backing_file}
		loop=/dev/${sysdir##*/}
		dev=$(cat "$sysdir/dev")
		if [ "$(cat "$sysdir/loop/autoclear")" != 1 ]; then
			echo "$loop is still attached to $file: a test did not detach it"
			leak=1
			continue
		fi
		if mounts "$dev" /proc/self/mountinfo; then
			echo "$loop ($file) is still mounted here"
			leak=1
			continue
		fi
		local elsewhere=0
		for info in /proc/[0-9]*/mountinfo; do
			pid=${info#/proc/}; pid=${pid%/mountinfo}
			[ "$(readlink /proc/"$pid"/ns/mnt 2>/dev/null)" != "$ours" ] && mounts "$dev" "$info" || continue
			echo "$loop ($file) is mounted in the mount namespace of process $pid" \
				"($(cat /proc/"$pid"/comm 2>/dev/null)), made while a test had it mounted"
			elsewhere=1
			break
		done
		if [ "$elsewhere" = 0 ]; then
			echo "$loop ($file) is open in: $(find /proc/[0-9]*/fd -lname "$loop" 2>/dev/null | cut -d/ -f3 | sort -u |
				while read -r pid; do printf '%s (%s) ' "$pid" "$(cat /proc/"$pid"/comm 2>/dev/null)"; done)"
			leak=1
		fi
	done
	for pid in $(find /proc/[0-9]*/fd -lname "$dir/*" 2>/dev/null | cut -d/ -f3 | sort -u); do
		echo "process $pid ($(cat /proc/"$pid"/comm 2>/dev/null)) has a file of $dir open"
		leak=1
	done
	return "$leak"
}
# mounts MAJ:MIN MOUNTINFO: true when a mount in MOUNTINFO is of that device.
mounts() { awk -v d="$1" '$3 == d { found = 1 } END { exit !found }' "$2" 2>/dev/null; }

setup() {
	require_applet mkfs.exfat
	IMG=$IMGDIR/$BATS_TEST_NUMBER.img
	rm -f "$IMG"
}

teardown() {
	[ -n "${MNT:-}" ] && mountpoint -q "$MNT" && umount "$MNT"
	[ -n "${LOOP:-}" ] && losetup -d "$LOOP" 2>/dev/null
	rm -f "$IMGDIR"/*.img
}

core() { "$KBOX_TESTBIN/exfat-core-test" "$@"; }

# dump_field IMAGE "Field name" -> value
dump_field() { dump.exfat "$1" | sed -n "s/^$2:[[:space:]]*//p" | head -1; }

# check_image IMAGE SECTOR CLUSTER LABEL: clean for Debian's fsck, and
# dump.exfat shows the requested sector size, cluster size and label.
check_image() {
	local img=$1 ss=$2 cs=$3 label=$4
	run fsck.exfat -n "$img"
	[ "$status" -eq 0 ] || { echo "fsck.exfat -n $img: $output"; return 1; }
	[[ "$output" == *": clean."* ]] || { echo "not clean: $output"; return 1; }
	local bits got_cs got_label
	bits=$(dump_field "$img" "Sector Size Bits")
	got_cs=$(dump_field "$img" "Cluster size")
	got_label=$(dump_field "$img" "Volume label")
	[ $((1 << bits)) -eq "$ss" ] || { echo "$img: sector size $((1 << bits)), want $ss"; return 1; }
	[ "$got_cs" -eq "$cs" ] || { echo "$img: cluster size $got_cs, want $cs"; return 1; }
	[ "$got_label" = "$label" ] || { echo "$img: label '$got_label', want '$label'"; return 1; }
}

# Start and size in bytes of partition 1 of an MBR or GPT image.
part1() {
	local img=$1 ss=$2
	if [ "$(dd if="$img" bs=1 skip="$ss" count=8 status=none | tr -d '\0')" = "EFI PART" ]; then
		local first last
		first=$(od -An -tu8 -j $((2 * ss + 32)) -N8 "$img" | tr -d ' ')
		last=$(od -An -tu8 -j $((2 * ss + 40)) -N8 "$img" | tr -d ' ')
		echo $((first * ss)) $(((last - first + 1) * ss))
	else
		local start size
		start=$(od -An -tu4 -j 454 -N4 "$img" | tr -d ' ')
		size=$(od -An -tu4 -j 458 -N4 "$img" | tr -d ' ')
		echo $((start * ss)) $((size * ss))
	fi
}

@test "geometry matrix: sizes x sector sizes x cluster sizes x label/GUID/pack-bitmap, all clean" {
	require_cmd fsck.exfat
	require_cmd dump.exfat
	local n=0
	# size : explicit cluster sizes to try besides the default
	local matrix="8M:4K,512 100M:16K,64K 1G:4K,1M 33G:32K,4M 2T:64K,32M 64T:1M,32M"
	local variants=("" "-L KBOX" "-L Ünïcode✓ --pack-bitmap" "-U 01234567-89ab-cdef-0123-456789abcdef"
			"--pack-bitmap -L 12345678901")
	for entry in $matrix; do
		local size=${entry%%:*} clusters=${entry#*:}
		for ss in 512 4096; do
			for cs in default ${clusters//,/ }; do
				local cs_bytes want_cs
				if [ "$cs" = default ]; then
					want_cs=
				else
					want_cs=$(numfmt --from=iec "$cs")
					[ "$want_cs" -lt "$ss" ] && continue
				fi
				local v=${variants[$((n % ${#variants[@]}))]}
				rm -f "$IMG"
				# shellcheck disable=SC2086
				run kb mkfs.exfat -q -s "$ss" ${want_cs:+-c "$cs"} $v "$IMG" "$size"
				[ "$status" -eq 0 ] || { echo "mkfs $size ss=$ss cs=$cs $v: $output"; return 1; }
				cs_bytes=${want_cs:-$(dump_field "$IMG" "Cluster size")}
				if [ -z "$want_cs" ]; then
					# Default: the specification's table, never below the sector size.
					local b; b=$(numfmt --from=iec "$size")
					local def=131072
					[ "$b" -le $((32 << 30)) ] && def=32768
					[ "$b" -le $((256 << 20)) ] && def=4096
					[ "$def" -lt "$ss" ] && def=$ss
					[ "$cs_bytes" -eq "$def" ] || { echo "$size ss=$ss: default cluster $cs_bytes, want $def"; return 1; }
				fi
				local label=""
				[[ "$v" == *"-L "* ]] && label=$(sed -E 's/.*-L ([^ ]+).*/\1/' <<<"$v")
				check_image "$IMG" "$ss" "$cs_bytes" "$label"
				if [[ "$v" == *"-U "* ]]; then
					run core ls "$IMG"
					assert_line "guid 01234567-89ab-cdef-0123-456789abcdef checksum ok"
				fi
				n=$((n + 1))
			done
		done
	done
	echo "# $n images checked" >&3
	[ "$n" -ge 30 ]
}

@test "a 64 TiB sparse image costs only a few KiB of allocated space" {
	run kb mkfs.exfat -q "$IMG" 64T
	assert_success
	run stat -c '%s %b %B' "$IMG"
	read -r size blocks bsize <<<"$output"
	[ "$size" -eq $((64 << 40)) ]
	# Boot regions, the used start of FAT and bitmap, up-case table, root.
	[ $((blocks * bsize)) -le $((1 << 20)) ]
}

@test "a pre-filled (non-sparse) image is zeroed where the FAT, bitmap and root must be" {
	# Old non-zero data everywhere: a stale FAT or bitmap would show as
	# allocated clusters, a stale root as garbage entries.
	head -c $((64 << 20)) /dev/zero | tr '\0' '\377' > "$IMG"
	run kb mkfs.exfat -q "$IMG"
	assert_success
	check_image "$IMG" 512 4096 ""
	run dump_field "$IMG" "Free Clusters"
	assert_output "$(( $(dump_field "$IMG" "Total Clusters") - 4 ))"
}

@test "-P mbr|gpt writes a partition table with one exFAT partition, for both sector sizes" {
	require_cmd fsck.exfat
	require_root
	for pt in mbr gpt; do
		for ss in 512 4096; do
			rm -f "$IMG"
			run kb mkfs.exfat -q -P "$pt" -s "$ss" -L "P$pt$ss" "$IMG" 1G
			assert_success
			read -r off size < <(part1 "$IMG" "$ss")
			[ "$off" -eq $((1 << 20)) ]
			if [ "$pt" = mbr ]; then
				# MBR type 0x07 in entry 1.
				[ "$(od -An -tx1 -j 450 -N1 "$IMG" | tr -d ' ')" = 07 ]
			else
				# GPT header in sector 1, protective MBR (0xEE) in sector 0.
				[ "$(dd if="$IMG" bs=1 skip="$ss" count=8 status=none)" = "EFI PART" ]
				[ "$(od -An -tx1 -j 450 -N1 "$IMG" | tr -d ' ')" = ee ]
			fi
			LOOP=$(losetup -f --show -b "$ss" -o "$off" --sizelimit "$size" "$IMG")
			check_image "$LOOP" "$ss" 32768 "P$pt$ss"
			losetup -d "$LOOP"
			LOOP=
		done
	done
}

@test "-d copies names (incl. non-ASCII), sizes, contents, mtimes; read back via exfat-fuse" {
	require_root
	require_cmd mount.exfat-fuse
	src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src/sub/deeper/deepest" "$src/empty-dir"
	echo hello > "$src/a.txt"
	head -c 300000 /dev/urandom > "$src/sub/random.bin"
	head -c 4096 /dev/urandom > "$src/sub/exactly-one-cluster"
	: > "$src/empty"
	printf 'x' > "$src/ünïcödé 日本語 😀.txt"
	printf 'long' > "$src/$(printf 'n%.0s' $(seq 200))"
	for i in $(seq 1 300); do echo "$i" > "$src/sub/deeper/f$i"; done
	touch -d '2021-03-04 05:06:08' "$src/sub/random.bin"
	touch -d '1999-12-31 23:59:58' "$src/a.txt"
	touch -d '2030-01-01 00:00:00' "$src/sub/deeper/deepest"
	chmod 444 "$src/a.txt"
	ln -s a.txt "$src/link"
	run kb mkfs.exfat -d "$src" "$IMG" 64M
	assert_success
	assert_output --partial "link: skipped: symbolic links cannot be stored on exFAT"
	run fsck.exfat -n "$IMG"
	assert_success
	assert_output --partial "clean. directories 5, files 306"
	# The read-only attribute, straight from the entries.
	run core ls "$IMG"
	assert_line --regexp '^/a.txt file ro size 6 '
	assert_line --regexp '^/sub/random.bin file size 300000 '

	LOOP=$(losetup -f --show "$IMG")
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	mount.exfat-fuse -o ro "$LOOP" "$MNT"
	listing() { (cd "$1" && find . -mindepth 1 ! -type l -printf '%y %p %s %T@\n' | sed 's/\.[0-9]*$//' |
		awk '$1 == "d" { $3 = "-" } 1' | sort); }
	diff <(listing "$src") <(listing "$MNT")
	(cd "$src" && find . -type f -exec sha256sum {} + | sort -k2) > "$BATS_TEST_TMPDIR/want"
	(cd "$MNT" && find . -type f -exec sha256sum {} + | sort -k2) > "$BATS_TEST_TMPDIR/got"
	diff "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
	[ "$(wc -l < "$BATS_TEST_TMPDIR/got")" -eq 306 ]
}

@test "-d: a sparse file's holes read back as zeros, also over old data; a new image stays sparse" {
	require_root
	require_cmd mount.exfat-fuse
	src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src"
	truncate -s 48M "$src/sparse"
	printf 'HEAD' | dd of="$src/sparse" conv=notrunc status=none
	head -c 100000 /dev/urandom | dd of="$src/sparse" bs=1M seek=20 conv=notrunc status=none
	printf 'TAIL' | dd of="$src/sparse" bs=1 seek=$(( (48 << 20) - 4 )) conv=notrunc status=none
	local img
	for img in new old; do
		rm -f "$IMG"
		# "old": an existing image full of 0xff, where a hole must not leave it.
		[ "$img" = new ] || head -c 64M /dev/zero | tr '\0' '\377' > "$IMG"
		run kb mkfs.exfat -q -d "$src" "$IMG" 64M
		assert_success
		[ "$img" = old ] || [ "$(du -k "$IMG" | cut -f1)" -lt 4096 ]
		run fsck.exfat -n "$IMG"
		assert_success
		LOOP=$(losetup -f --show -r "$IMG")
		MNT=$BATS_TEST_TMPDIR/mnt
		mkdir -p "$MNT"
		mount.exfat-fuse -o ro "$LOOP" "$MNT"
		cmp "$src/sparse" "$MNT/sparse"
		umount "$MNT"
		losetup -d "$LOOP"
		LOOP=
	done
}

@test "-d refuses names exFAT cannot hold, and trees that do not fit; nothing is written" {
	src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src"
	: > "$src/a:b"
	run kb mkfs.exfat -d "$src" "$IMG" 16M
	assert_failure 1
	assert_output --partial "name contains a character exFAT forbids (U+003A)"
	assert_file_not_exists "$IMG"
	rm "$src/a:b"
	: > "$src/Name"; : > "$src/NAME"
	run kb mkfs.exfat -d "$src" "$IMG" 16M
	assert_failure 1
	assert_output --partial "names differ only in case"
	rm "$src/NAME"
	: > "$src/"$'bad\xff'
	run kb mkfs.exfat -d "$src" "$IMG" 16M
	assert_failure 1
	assert_output --partial "not valid UTF-8"
	rm "$src/"$'bad\xff'
	head -c $((3 << 20)) /dev/zero > "$src/big"
	run kb mkfs.exfat -d "$src" "$IMG" 2M
	assert_failure 1
	assert_output --partial "the tree does not fit"
	assert_file_not_exists "$IMG"
	rm "$src/big"
	# A file the caller cannot read: refused before an existing image is
	# touched (in a directory outside the test's own, which nobody can reach).
	local open; open=$(mktemp -d /tmp/kbox-mkfs.XXXXXX)
	chmod 777 "$open"
	mkdir -m 777 "$open/src"
	echo secret > "$open/src/unreadable"
	chmod 000 "$open/src/unreadable"
	kb mkfs.exfat -q "$open/theirs.img" 16M
	chmod 666 "$open/theirs.img"
	local before; before=$(sha256sum < "$open/theirs.img")
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$KBOX" mkfs.exfat -d "$open/src" "$open/theirs.img"
	local after; after=$(sha256sum < "$open/theirs.img")
	rm -rf "$open"
	assert_failure 1
	assert_output "mkfs.exfat: $open/src/unreadable: Permission denied"
	[ "$after" = "$before" ]
}

@test "refuses a mounted loop device, and the image behind it; nothing written" {
	require_root
	require_cmd mount.exfat-fuse
	kb mkfs.exfat -q -L before "$IMG" 32M
	sum=$(sha256sum < "$IMG")
	LOOP=$(losetup -f --show "$IMG")
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	mount.exfat-fuse "$LOOP" "$MNT"
	run kb mkfs.exfat "$LOOP"
	assert_failure 1
	assert_output "mkfs.exfat: $LOOP is mounted on $MNT; refusing to format it"
	run kb mkfs.exfat "$IMG"
	assert_failure 1
	assert_output --partial "is mounted on $MNT; refusing"
	umount "$MNT"
	# Not mounted, but still the backing file of a loop device.
	run kb mkfs.exfat "$IMG"
	assert_failure 1
	assert_output --partial "backing file of $LOOP"
	[ "$(sha256sum < "$IMG")" = "$sum" ]
}

@test "refuses a read-only block device before writing" {
	require_root
	kb mkfs.exfat -q "$IMG" 16M
	local dev; dev=$(losetup -r -f --show "$IMG")
	run kb mkfs.exfat "$dev"
	losetup -d "$dev"
	assert_failure 1
	assert_output "mkfs.exfat: $dev is read-only; refusing to format it"
}

@test "refuses a block device held open exclusively by another program" {
	require_root
	truncate -s 32M "$IMG"
	LOOP=$(losetup -f --show "$IMG")
	exec 9< <(exec python3 -c 'import os,sys,time; fd=os.open(sys.argv[1], os.O_RDONLY|os.O_EXCL); print("held", flush=True); time.sleep(30)' "$LOOP")
	local holder=$! line=
	read -r -t 10 -u 9 line || true
	[ "$line" = held ] || { kill "$holder"; fail "python3 did not say within 10 s that it holds $LOOP"; }
	run kb mkfs.exfat "$LOOP"
	kill "$holder"
	exec 9<&-
	assert_failure 1
	assert_output "mkfs.exfat: $LOOP is in use (mounted, or held by another program); refusing to format it"
}

@test "formats a loop device (not the image) and erases a stale ext4 signature" {
	require_root
	require_cmd mkfs.ext4
	truncate -s 64M "$IMG"
	mkfs.ext4 -q -F "$IMG"
	LOOP=$(losetup -f --show "$IMG")
	run kb mkfs.exfat -v -K "$LOOP"
	assert_success
	assert_line "erased ext4 signature at offset 0x438 (2 bytes)"
	run blkid -p -s TYPE -o value "$LOOP"
	assert_output exfat
	run fsck.exfat -n "$LOOP"
	assert_success
}

@test "stale ext4 signature on an image file is erased (blkid sees only exfat)" {
	truncate -s 64M "$IMG"
	mkfs.ext4 -q -F "$IMG" 2>/dev/null || skip "needs mkfs.ext4"
	run kb mkfs.exfat -v "$IMG"
	assert_success
	assert_line "erased ext4 signature at offset 0x438 (2 bytes)"
	run blkid -p -o export "$IMG"
	assert_line "TYPE=exfat"
	refute_output --partial ext4
}

@test "bad sizes are refused with the limit named; no file is left behind" {
	run kb mkfs.exfat "$IMG" 512K
	assert_failure 1
	assert_output "mkfs.exfat: volume too small: 524288 bytes, exFAT needs at least 1 MiB"
	assert_file_not_exists "$IMG"
	run kb mkfs.exfat -c 512 "$IMG" 4T
	assert_failure 1
	assert_output --partial "exceed the exFAT limit of 2^32-11; use a larger cluster size"
	assert_file_not_exists "$IMG"
	run kb mkfs.exfat -c 32M "$IMG" 40M
	assert_failure 1
	assert_output --partial "volume too small"
	run kb mkfs.exfat "$IMG" 12Q
	assert_failure 2
	assert_output --partial "invalid SIZE '12Q'"
	# An existing smaller file extended for SIZE gets its size back on refusal.
	truncate -s 1M "$IMG"
	run kb mkfs.exfat -c 64K -b 4M "$IMG" 5M
	assert_failure 1
	run stat -c %s "$IMG"
	assert_output 1048576
}

@test "a new image whose format fails or is interrupted is removed" {
	require_root
	require_cmd gdb
	# Out of space while writing (-d data into a 1 MiB tmpfs).
	local small=$BATS_TEST_TMPDIR/small
	mkdir -p "$small" "$BATS_TEST_TMPDIR/tree"
	head -c 3M /dev/urandom > "$BATS_TEST_TMPDIR/tree/blob"
	mount -t tmpfs -o size=1M tmpfs "$small"
	run kb mkfs.exfat -q -d "$BATS_TEST_TMPDIR/tree" "$small/new.img" 64M
	local listing; listing=$(ls -A "$small")
	umount "$small"
	assert_failure 1
	assert_output --partial "No space left on device"
	[ -z "$listing" ]
	# SIGINT once the writing has begun: the file goes, the signal stays the
	# cause of death (gdb passes it on to the default action).
	run gdb -q -batch -ex 'break exfat_format_write' -ex run -ex 'handle SIGINT nostop noprint pass' \
		-ex 'signal SIGINT' --args "$KBOX" mkfs.exfat -q "$IMG" 64M
	assert_output --partial "terminated with signal SIGINT"
	assert_file_not_exists "$IMG"
	# A file that existed is not removed by a failure.
	truncate -s 1M "$IMG"
	run kb mkfs.exfat -c 64K -b 4M "$IMG" 5M
	assert_failure 1
	assert_file_exists "$IMG"
}

@test "bad cluster and sector sizes are refused, naming the limit" {
	run kb mkfs.exfat -c 3000 "$IMG" 16M
	assert_failure 1
	assert_output "mkfs.exfat: cluster size 3000 is not a power of two between 512 and 32M"
	run kb mkfs.exfat -c 64M "$IMG" 16G
	assert_failure 1
	assert_output --partial "between 512 and 32M"
	run kb mkfs.exfat -s 4096 -c 1K "$IMG" 16M
	assert_failure 1
	assert_output "mkfs.exfat: cluster size 1024 is smaller than the sector size 4096"
	run kb mkfs.exfat -s 8192 "$IMG" 16M
	assert_failure 1
	assert_output --partial "sector size 8192"
	run kb mkfs.exfat -s 1000 "$IMG" 16M
	assert_failure 1
	run kb mkfs.exfat -b 1000 "$IMG" 16M
	assert_failure 1
	assert_output --partial "boundary alignment 1000"
	assert_file_not_exists "$IMG"
}

@test "bad labels and GUIDs are refused" {
	run kb mkfs.exfat -L 123456789012 "$IMG" 16M
	assert_failure 1
	assert_output "mkfs.exfat: volume label '123456789012' is 12 UTF-16 units long; exFAT allows at most 11"
	# 6 astral characters are 12 UTF-16 units.
	run kb mkfs.exfat -L "😀😀😀😀😀😀" "$IMG" 16M
	assert_failure 1
	assert_output --partial "12 UTF-16 units long"
	run kb mkfs.exfat -L $'ab\xff' "$IMG" 16M
	assert_failure 1
	assert_output "mkfs.exfat: volume label is not valid UTF-8 (byte 2)"
	# The characters names may not hold, control characters included.
	run kb mkfs.exfat -L 'a:b' "$IMG" 16M
	assert_failure 1
	assert_output "mkfs.exfat: volume label contains a character exFAT forbids (U+003A)"
	run kb mkfs.exfat -L $'tab\there' "$IMG" 16M
	assert_failure 1
	assert_output --partial "(U+0009)"
	run kb mkfs.exfat -U not-a-guid "$IMG" 16M
	assert_failure 2
	assert_output --partial "invalid volume GUID"
	assert_file_not_exists "$IMG"
	# 11 units is fine, including non-ASCII.
	run kb mkfs.exfat -q -L "ÄÖÜäöüßéèêë" "$IMG" 16M
	assert_success
	check_image "$IMG" 512 4096 "ÄÖÜäöüßéèêë"
}

@test "--volume-serial is stored; -f zeroes the heap; -q is quiet; usage errors exit 2" {
	run kb mkfs.exfat -q --volume-serial 0x1234abcd -f "$IMG" 16M
	assert_success
	assert_output ""
	run dump_field "$IMG" "Volume Serial"
	assert_output 0x1234abcd
	check_image "$IMG" 512 4096 ""
	run kb mkfs.exfat --bogus "$IMG"
	assert_failure 2
	run kb mkfs.exfat
	assert_failure 2
	run kb mkfs.exfat -P floppy "$IMG"
	assert_failure 2
	run kb mkfs.exfat "$IMG" 16M extra
	assert_failure 2
	run kb mkfs.exfat -h
	assert_success
	assert_output --partial "--root-dir"
	run kb mkfs.exfat -V
	assert_success
	assert_output --partial "mkfs.exfat (kbox)"
}

@test "a tiny volume (below 1 MiB alignment) still formats and checks clean" {
	run kb mkfs.exfat -q "$IMG" 2M
	assert_success
	check_image "$IMG" 512 512 ""
}

@test "a loop device is discarded unless -K (the backing file loses its old blocks)" {
	require_root
	head -c $((32 << 20)) /dev/zero | tr '\0' '\252' > "$IMG"
	LOOP=$(losetup -f --show "$IMG")
	run kb mkfs.exfat -q -K "$LOOP"
	assert_success
	sync
	[ $(( $(stat -c '%b * %B' "$IMG") )) -ge $((30 << 20)) ]
	run kb mkfs.exfat -q "$LOOP"
	assert_success
	sync
	# The loop driver turns discard into hole punching in the image.
	[ $(( $(stat -c '%b * %B' "$IMG") )) -le $((4 << 20)) ]
	run fsck.exfat -n "$LOOP"
	assert_success
}

@test "SIZE below a file's size formats only that much and leaves the rest alone" {
	head -c $((8 << 20)) /dev/zero > "$IMG"
	head -c $((8 << 20)) /dev/urandom >> "$IMG"
	tail_sum=$(tail -c $((8 << 20)) "$IMG" | sha256sum)
	run kb mkfs.exfat -q "$IMG" 8M
	assert_success
	run stat -c %s "$IMG"
	assert_output $((16 << 20))
	[ "$(tail -c $((8 << 20)) "$IMG" | sha256sum)" = "$tail_sum" ]
	run dump_field "$IMG" "Volume Length(sectors)"
	assert_output 16384
}

@test "an old GPT (both headers) and its protective MBR are erased; -v lists them" {
	run kb mkfs.exfat -q -P gpt "$IMG" 256M
	assert_success
	run kb mkfs.exfat -v "$IMG"
	assert_success
	assert_line --regexp '^erased gpt signature at offset 0x200 \(8 bytes\)$'
	assert_line --regexp "^erased gpt signature at offset 0x$(printf '%x' $(((256 << 20) - 512))) \(8 bytes\)$"
	assert_line --regexp '^erased PMBR signature at offset 0x1fe \(2 bytes\)$'
	run blkid -p -o export "$IMG"
	assert_line "TYPE=exfat"
	refute_line "PTTYPE=gpt"
	check_image "$IMG" 512 4096 ""
}

@test "a root directory spanning several clusters (FAT chain) checks clean and lists every file" {
	src=$BATS_TEST_TMPDIR/src
	mkdir -p "$src"
	for i in $(seq 1 200); do echo "$i" > "$src/file-with-a-longer-name-$i.txt"; done
	run kb mkfs.exfat -q -c 512 -d "$src" "$IMG" 8M
	assert_success
	run fsck.exfat -n "$IMG"
	assert_success
	assert_output --partial "clean. directories 1, files 200"
	run core ls "$IMG"
	[ "$(grep -c '^/file-with-a-longer-name-.*checksum ok$' <<<"$output")" -eq 200 ]
}

@test "a 4096-byte-sector block device: default sector size follows it, smaller is refused" {
	require_root
	truncate -s 64M "$IMG"
	LOOP=$(losetup -f --show -b 4096 "$IMG")
	run kb mkfs.exfat -q -K -s 512 "$LOOP"
	assert_failure 1
	assert_output "mkfs.exfat: sector size 512 is below the device's logical sector size 4096"
	run kb mkfs.exfat -q -K "$LOOP"
	assert_success
	check_image "$LOOP" 4096 4096 ""
}
