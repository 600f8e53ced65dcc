#!/usr/bin/env bats
# fsck.exfat when both boot regions are damaged. The volume is made by
# Debian's mkfs.exfat and filled through exfat-fuse, as a card would be.
# Seeded random bit flips in the checksum sector, the extended boot sectors
# and the OEM and reserved sectors of both regions: -n reports the damage as
# repairable and writes nothing, -y rebuilds both regions from the boot
# sector that matches the volume, kbox and Debian's fsck then find it clean,
# and every file reads back through exfat-fuse with its sha256. When
# neither boot sector matches the volume, the repair is refused with the
# reason and nothing is written.
load test_helper

SS=512   # Debian's mkfs.exfat on a 64 MiB image: 512-byte sectors

# released DEV IMG: the loop device no longer holds IMG. After umount,
# exfat-fuse may still hold (and write to) it for a while.
released() { ! losetup "$1" 2>/dev/null | grep -qF "($2)"; }

setup_file() {
	[ "$(id -u)" -eq 0 ] && command -v mount.exfat-fuse >/dev/null && [ -x /usr/sbin/mkfs.exfat ] || return 0
	TREE=$BATS_FILE_TMPDIR/tree
	mkdir -p "$TREE/dir/sub" "$TREE/Ünïcödé"
	echo hello > "$TREE/a.txt"
	head -c 300000 /dev/urandom > "$TREE/dir/b.bin"
	head -c 2000000 /dev/urandom > "$TREE/dir/sub/c.bin"
	echo x > "$TREE/Ünïcödé/ファイル.txt"
	for i in $(seq 1 30); do echo "$i" > "$TREE/dir/n$i"; done
	(cd "$TREE" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$BATS_FILE_TMPDIR/sums"
	local img=$BATS_FILE_TMPDIR/base.img mnt=$BATS_FILE_TMPDIR/mnt dev
	truncate -s 64M "$img"
	/usr/sbin/mkfs.exfat "$img" >/dev/null
	mkdir -p "$mnt"
	dev=$(losetup -f --show "$img")
	mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1
	cp -r "$TREE"/. "$mnt"/
	umount "$mnt"
	losetup -d "$dev"
	wait_until 30 "exfat-fuse to let go of $dev" released "$dev" "$img"
}

setup() {
	require_root
	require_cmd mount.exfat-fuse
	require_cmd /usr/sbin/fsck.exfat
	require_applet fsck.exfat
	[ -f "$BATS_FILE_TMPDIR/base.img" ] || skip "no base image (needs Debian's mkfs.exfat)"
	TREE=$BATS_FILE_TMPDIR/tree
	IMG=$BATS_TEST_TMPDIR/t.img
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
}

# flip SEED SECTOR...: in each region, main and backup, flips 1 to 4 bits
# at random places of each SECTOR (0-11), each region with its own flips.
flip() {
	local seed=$1 region s n i at bit byte; shift
	RANDOM=$seed
	for region in 0 12; do
		for s in "$@"; do
			n=$((RANDOM % 4 + 1))
			for ((i = 0; i < n; i++)); do
				at=$(((region + s) * SS + RANDOM % SS)) bit=$((RANDOM % 8))
				byte=$(od -An -tu1 -j "$at" -N1 "$IMG")
				poke "$at" "$(printf %02x $((byte ^ (1 << bit))))"
			done
		done
	done
}

# files_intact: every file of the tree, and no other, reads back through
# exfat-fuse with its sha256.
files_intact() {
	local mnt=$BATS_TEST_TMPDIR/mnt dev
	mkdir -p "$mnt"
	dev=$(losetup -f --show -r "$IMG")
	mount.exfat-fuse -o ro "$dev" "$mnt" >/dev/null 2>&1 || { losetup -d "$dev"; fail "exfat-fuse mount failed"; }
	(cd "$mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$BATS_TEST_TMPDIR/sums"
	umount "$mnt"
	losetup -d "$dev"
	wait_until 30 "exfat-fuse to let go of $dev" released "$dev" "$IMG"
	diff "$BATS_FILE_TMPDIR/sums" "$BATS_TEST_TMPDIR/sums" || fail "files differ after the repair"
}

# rebuilt FROM: -n reports both regions damaged, repairable from the FROM
# (main or backup) boot sector, and writes nothing; -y rebuilds them (exit
# 1); kbox and Debian then find the volume clean, the two regions agree
# (VolumeFlags and PercentInUse aside) and every file is intact.
rebuilt() {
	local before
	before=$(sha256sum < "$IMG")
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e --arg r "rebuild both boot regions from the $1 boot sector" \
		'.exit_code == 4 and (.problems[0] | .code == "boot-regions" and .repair == $r and .repaired == false)' >/dev/null ||
		fail "expected a repairable boot-regions problem, got: $output $stderr"
	[ "$(sha256sum < "$IMG")" = "$before" ] || fail "-n changed the image"
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	assert_output --partial "1 problems, 1 repaired"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "clean, $(wc -l < "$BATS_FILE_TMPDIR/sums") files"
	run -0 /usr/sbin/fsck.exfat -n "$IMG"
	run cmp -l <(head -c $((12 * SS)) "$IMG") <(tail -c +$((12 * SS + 1)) "$IMG" | head -c $((12 * SS)))
	[ -z "$(echo "$output" | awk '$1 != 107 && $1 != 108 && $1 != 113')" ] || fail "the regions differ: $output"
	files_intact
}

# rebuilt_taking FROM WHAT: as rebuilt, and -n says the rebuilt regions
# take WHAT ("the other's VolumeLength, ...") besides the FROM boot sector.
rebuilt_taking() {
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "with $2"
	rebuilt "$1"
}

# refused WHY: -n and -y both exit 4 saying that neither boot sector
# matches the volume and why (WHY: a regular expression), and the image is
# left exactly as it was.
refused() {
	local before
	before=$(sha256sum < "$IMG")
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --regexp "both boot regions are damaged, and neither boot sector matches the volume $1"
	run -4 "$KBOX" fsck.exfat -y "$IMG"
	assert_output --partial "neither boot sector matches the volume"
	[ "$(sha256sum < "$IMG")" = "$before" ] || fail "a refused repair changed the image"
}

@test "the base volume (Debian mkfs.exfat, files through exfat-fuse) checks clean" {
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "clean, $(wc -l < "$BATS_FILE_TMPDIR/sums") files"
	files_intact
}

@test "boot-regions: the checksum sector of both regions hit: rebuilt from the main boot sector" {
	for seed in 1 2 3; do
		cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
		flip "$seed" 11
		rebuilt main
	done
}

@test "boot-regions: the extended boot sectors of both regions hit: rebuilt" {
	for seed in 4 5 6; do
		cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
		flip "$seed" 1 2 3 4 5 6 7 8
		rebuilt main
	done
}

@test "boot-regions: the OEM and reserved sectors of both regions hit: rebuilt" {
	for seed in 7 8 9; do
		cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
		flip "$seed" 9 10
		rebuilt main
	done
}

@test "boot-regions: sectors 1-11 of both regions hit at once: rebuilt" {
	for seed in 10 11 12 13; do
		cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
		flip "$seed" 1 2 3 4 5 6 7 8 9 10 11
		rebuilt main
	done
}

@test "boot-regions: a main boot sector that names another FAT is passed over for the backup's" {
	# The main's FatOffset 2048 becomes 2177, in the gap before the heap; the
	# backup's checksum sector is hit.
	poke 80 81
	flip 14 11
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "the backup boot sector matches the volume"
	rebuilt backup
}

@test "a main boot sector whose BytesPerSectorShift is wrong: the backup is found at its own sector size" {
	# Main: 512-byte sectors read as 1024 (byte 108: 9 -> 10).
	poke 108 0a
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '.problems[0].code == "boot-region"' >/dev/null || fail "expected boot-region: $output"
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	run -0 /usr/sbin/fsck.exfat -n "$IMG"
	files_intact
	# The same with the backup's checksum sector hit too: both rebuilt from it.
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
	poke 108 0a
	flip 15 11
	rebuilt backup
}

@test "boot-regions: both boot sectors garbage (the name left): refused, nothing written" {
	local region
	for region in 0 12; do
		dd if="$TREE/dir/sub/c.bin" of="$IMG" bs=1 skip=$((region * 1000)) seek=$((region * SS + 11)) count=499 \
			conv=notrunc status=none
	done
	refused "\\(main: [^;]+; backup: [^)]+\\)$"
}

@test "boot-regions: both boot sectors name a FAT without the media byte: refused, nothing written" {
	local region
	for region in 0 12; do
		poke $((region * SS + 80)) 81
	done
	refused "\\(main: FAT\\[0\\] is 0x[0-9a-f]{8}, without the media byte 0xF8; backup: FAT.*0xF8\\)$"
}

@test "boot-regions: bits hit in the fields every boot sector holds the same (name, MustBeZero) do not disqualify it" {
	# Main: a MustBeZero byte; backup: a letter of "EXFAT   ". The rebuilt
	# regions have both as they must be.
	poke 40 10
	poke $((12 * SS + 4)) 59
	rebuilt main
}

@test "boot-regions: the up-case table damaged as well: the boot sector is still taken, the table rewritten" {
	local at; at=$("$KBOX_TESTBIN/exfat-locate" "$IMG" upcase | cut -d' ' -f1)
	flip 16 11
	poke $((at + 100)) 7f
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '.problems | map(.code) | (index("boot-regions") != null and index("upcase-table") != null)' \
		>/dev/null || fail "expected boot-regions and upcase-table, got: $output $stderr"
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	run -0 /usr/sbin/fsck.exfat -n "$IMG"
	files_intact
}

@test "boot-regions: the VolumeLength of the boot sector that matches is hit: the other one's, which fits, is taken" {
	# Main: VolumeLength grows by 2^32 sectors; backup: its FatOffset names
	# the gap before the heap, so only the main boot sector matches.
	poke 76 01
	poke $((12 * SS + 80)) 81
	rebuilt_taking main "the other's VolumeLength, which fits the device"
}

@test "boot-regions: a PercentInUse above 100 in the boot sector that matches: the rebuilt backup says 0xFF, the main the bitmap's share" {
	require_cmd /usr/sbin/dump.exfat
	# Main: PercentInUse 197 (so its region is damaged); backup: its
	# checksum sector hit. Both rebuilt from the main boot sector, with
	# 0xFF, not known; the main one's is set from the bitmap at the end.
	poke 112 c5
	flip 17 11
	rebuilt main
	[ "$(percent_in_use 0)" -eq "$(bitmap_percent)" ]
	[ "$(percent_in_use 12)" -eq 255 ]
}

@test "boot-regions: the FileSystemRevision of the boot sector that matches is hit: the other one's 1.00 is taken" {
	# Main: revision 1.00 becomes 1.02 (its checksum then wrong); backup:
	# its checksum sector hit. exfatprogs refuses any revision but 1.00.
	poke 104 02
	flip 18 11
	rebuilt_taking main "the other's FileSystemRevision 1.00"
	[ "$(od -An -tx1 -j 104 -N2 "$IMG" | tr -d ' ')" = 0001 ]
}

@test "boot-regions: a VolumeLength too short for the heap does not disqualify a boot sector: the device's size is taken" {
	# Main: BytesPerSectorShift 13, out of range; backup: VolumeLength
	# 0x20000 sectors (64 MiB) becomes 0 (its checksum then wrong).
	poke 108 0d
	poke $((12 * SS + 74)) 00
	rebuilt_taking backup "VolumeLength set to the device's size"
	[ "$(od -An -tu8 -j 72 -N8 "$IMG" | tr -d ' ')" -eq $((64 << 20 >> 9)) ]
}
