#!/usr/bin/env bats
# fsck.exfat and PercentInUse: a repair that changes allocation leaves the
# share of clusters the bitmap marks used in the main boot sector, as
# Debian's dump.exfat counts it; a stale value alone is not damage.
load test_helper
load fsck_helper

# percent_follows [REPAIR OPTIONS]: with the main boot sector's PercentInUse
# stale (77: in range, far from the truth), -n reports no problem with it;
# the repair (-y, exit 1) leaves the share Debian's dump.exfat counts in
# the bitmap there, the backup's as it was, and both fsck find it clean.
percent_follows() {
	require_cmd /usr/sbin/dump.exfat
	local backup; backup=$(percent_in_use 12)
	poke 112 4d
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '.problems | map(.code) | index("percent-in-use") == null'
	repair "$@"
	[ "$(percent_in_use 0)" -eq "$(bitmap_percent)" ]
	[ "$(percent_in_use 12)" -eq "$backup" ]
}

@test "PercentInUse follows repairs that free clusters: orphans, a chain cut back" {
	# 1600 orphans: over 9% of the volume's clusters.
	local bm before; bm=$(loc bitmap | cut -d' ' -f1)
	head -c 200 /dev/zero | tr '\0' '\377' | dd of="$IMG" bs=1 seek=$((bm + 1000)) conv=notrunc status=none
	before=$(bitmap_percent)
	percent_follows
	[ "$(percent_in_use 0)" -le $((before - 9)) ]
	# c.bin's size says 1 cluster: its chain is ended there, the rest freed.
	fresh_image
	grow /dir/sub/c.bin $((4096 - 300000))
	percent_follows
	[ "$(field /dir/sub/c.bin 3)" -eq 4096 ]
}

@test "PercentInUse follows repairs that take clusters: -s's /LOST+FOUND, a cross-link's copy" {
	local bm c=3000; bm=$(loc bitmap | cut -d' ' -f1)
	set_fat $c $((c + 1)); set_fat $((c + 1)) 0xFFFFFFFF
	poke $((bm + (c - 2) / 8)) "$(printf %02x $((3 << ((c - 2) % 8))))"
	percent_follows -s
	[ "$(field /LOST+FOUND/FILE0000001.CHK 3)" -eq 8192 ]
	fuse_image
	set_fat "$(field /b 2)" "$(fat_of "$(field /a 2)")"
	percent_follows
}

@test "PercentInUse: a stale value alone is not damage, left by -n and -y (-v says so); 0xFF when a repair leaves problems" {
	require_cmd /usr/sbin/dump.exfat
	local right; right=$(bitmap_percent)
	poke 112 4d
	local before; before=$(sha256sum < "$IMG")
	run -0 "$KBOX" fsck.exfat -n -v "$IMG"
	assert_output --partial "PercentInUse is 77, the allocation bitmap gives $right: stale, not damage"
	run -0 "$KBOX" fsck.exfat -y "$IMG"
	run -0 /usr/sbin/fsck.exfat -n "$IMG"
	[ "$(sha256sum < "$IMG")" = "$before" ]
	# A clean volume marked dirty: the write that clears the mark sets it.
	poke 106 02 00
	run -0 "$KBOX" fsck.exfat -p "$IMG"
	[ "$(percent_in_use 0)" -eq "$right" ]
	# -p repairs the checksum and leaves the loop: the volume stays dirty,
	# its bitmap may not say what is allocated: not known.
	local off first; off=$(field /a.txt 1); first=$(field /dir/sub/c.bin 2)
	poke $((off + 2)) 12 34
	set_fat $((first + 3)) $((first + 1))
	run -4 "$KBOX" fsck.exfat -p "$IMG"
	[ "$(percent_in_use 0)" -eq 255 ]
	repair
	[ "$(percent_in_use 0)" -eq "$(bitmap_percent)" ]
}
