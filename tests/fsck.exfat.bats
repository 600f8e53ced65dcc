#!/usr/bin/env bats
# fsck.exfat: clean images check clean; each check is shown by damaging a
# fresh kbox-made, -d populated image in exactly that way and asserting the
# diagnosis (by its --json code), the repair, the exit codes, a clean
# recheck (kbox and Debian's exfatprogs) and that kept files are unchanged.
load test_helper
load fsck_helper

# ---- clean images --------------------------------------------------------

@test "kbox-made images check clean (kbox and Debian agree)" {
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "clean, 24 files, 3 directories"
	run -0 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '.clean and .exit_code == 0 and .files == 24 and (.problems | length) == 0'
	for size in 8M 300M 40G; do
		rm -f "$IMG"
		"$KBOX" mkfs.exfat -q "$IMG" "$size"
		run -0 "$KBOX" fsck.exfat -n "$IMG"
	done
	rm -f "$IMG"; "$KBOX" mkfs.exfat -q -s 4096 -c 64K "$IMG" 1G
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "Debian mkfs.exfat images check clean" {
	require_cmd mkfs.exfat
	for args in "-c 4096" "-c 1M" "-s 4096" "-L x"; do
		rm -f "$IMG"; truncate -s 300M "$IMG"
		/usr/sbin/mkfs.exfat $args "$IMG" >/dev/null 2>&1 || continue
		run -0 "$KBOX" fsck.exfat -n "$IMG"
	done
	rm -f "$IMG"; truncate -s 3T "$IMG"; /usr/sbin/mkfs.exfat "$IMG" >/dev/null
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "images written by exfat-fuse on a loop device check clean" {
	require_root
	require_cmd mount.exfat-fuse
	rm -f "$IMG"; truncate -s 64M "$IMG"; /usr/sbin/mkfs.exfat "$IMG" >/dev/null
	local mnt=$BATS_TEST_TMPDIR/mnt dev
	mkdir -p "$mnt"
	dev=$(losetup -f --show "$IMG")
	mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1
	cp -r "$TREE"/. "$mnt"/
	mkdir "$mnt/Ünïcödé dir"; echo x > "$mnt/Ünïcödé dir/ファイル.txt"
	rm "$mnt/dir/n3" "$mnt/dir/n7"
	head -c 3000000 /dev/urandom > "$mnt/big"
	umount "$mnt"; losetup -d "$dev"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "clean, 24 files, 4 directories"
}

# ---- boot region ---------------------------------------------------------

@test "boot-region: a damaged main boot region is restored from the backup" {
	poke 200 aa
	detect boot-region
	repair
	cmp <(head -c 6144 "$IMG" | od -An -tx1 -v | sed 1,7d) <(tail -c +6145 "$IMG" | head -c 6144 | od -An -tx1 -v | sed 1,7d)
	same a.txt a.txt dir/sub/c.bin dir/sub/c.bin
}

@test "backup-boot-region: a backup that differs from the main region is rewritten" {
	poke $((12 * 512 + 300)) 55
	detect backup-boot-region
	repair
	# Equal but for VolumeFlags and PercentInUse (bytes 107, 108, 113 counted from 1).
	run cmp -l <(head -c 6144 "$IMG") <(tail -c +6145 "$IMG" | head -c 6144)
	[ -z "$(echo "$output" | awk '$1 != 107 && $1 != 108 && $1 != 113')" ]
}

@test "-b takes the backup boot region" {
	poke 200 aa
	run -1 "$KBOX" fsck.exfat -y -b "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "not an exFAT filesystem: operational error 8" {
	truncate -s 0 "$IMG"; truncate -s 8M "$IMG"
	run -8 "$KBOX" fsck.exfat -n "$IMG"
	assert_output "fsck.exfat: $IMG: not an exFAT filesystem (no \"EXFAT\" signature in either boot sector)"
}

# ---- FAT -----------------------------------------------------------------

@test "fat-head: FAT[0] and FAT[1] are restored" {
	set_fat 0 0
	detect fat-head
	repair
	[ "$(od -An -tx4 -j "$(loc fat 0)" -N4 "$IMG" | tr -d ' ')" = fffffff8 ]
}

@test "chain-broken: a cluster marked bad ends the file before it; the mark stays" {
	local first; first=$(field /dir/sub/c.bin 2)
	# FAT[first + 2] = BAD: cluster first + 2 itself is bad.
	set_fat $((first + 2)) 0xFFFFFFF7
	detect chain-broken
	repair
	[ "$(field /dir/sub/c.bin 3)" -eq 8192 ]
	same dir/sub/c.bin dir/sub/c.bin 8192 a.txt a.txt
	[ "$(od -An -tx4 -j "$(loc fat $((first + 2)))" -N4 "$IMG" | tr -d ' ')" = fffffff7 ]
	[ "$(od -An -tx4 -j "$(loc fat $((first + 1)))" -N4 "$IMG" | tr -d ' ')" = ffffffff ]
}

@test "chain-broken: an out-of-range cluster number" {
	local first; first=$(field /dir/b.bin 2)
	set_fat "$first" 0x0FFFFFF0
	detect chain-broken
	repair
	same dir/b.bin dir/b.bin 4096
}

@test "chain-loop: a loop is cut and the file keeps its clusters up to it" {
	local first; first=$(field /dir/sub/c.bin 2)
	set_fat $((first + 3)) $((first + 1))
	detect chain-loop
	repair
	same dir/sub/c.bin dir/sub/c.bin 16384
}

@test "cross-link: a chain that goes past its size into another file's chain is cut back; that file keeps its clusters" {
	local b c; b=$(field /dir/b.bin 2); c=$(field /dir/sub/c.bin 2)
	set_fat "$b" $((c + 1))
	checked cross-link /dir/b.bin
	echo "$PROBLEM" | jq -e --arg m "cluster $((c + 1)) (after 1 clusters) is also claimed by /dir/sub/c.bin, and this file's cluster chain disagrees with its size" \
		'.message == $m and .repair == "truncate to 4096 bytes"'
	repair
	[ "$(field /dir/b.bin 3)" -eq 4096 ]
	same dir/b.bin dir/b.bin 4096 dir/sub/c.bin dir/sub/c.bin a.txt a.txt keep.txt keep.txt
}

@test "chain-short: a chain shorter than the size truncates the size" {
	local first; first=$(field /dir/sub/c.bin 2)
	set_fat $((first + 5)) 0xFFFFFFFF
	detect chain-short
	repair
	same dir/sub/c.bin dir/sub/c.bin 24576
}

@test "chain-long: a chain longer than the size is ended at the size" {
	local first; first=$(field /a.txt 2)
	set_fat "$first" 5000
	detect chain-long
	repair
	same a.txt a.txt
	# A free entry where the end-of-chain mark belongs is named as such.
	set_fat "$first" 0
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "/a.txt: no end-of-chain mark after the 1 clusters the size needs (FAT entry of $first is 0, free)"
	repair
}

@test "first-cluster: a first cluster outside the heap leaves an empty file" {
	local off; off=$(field /dir/b.bin 1)
	poke $((off + 32 + 20)) $(le32 0x0FFFFFF0)
	loc fixsum /dir/b.bin
	detect first-cluster
	repair
	[ "$(field /dir/b.bin 3)" -eq 0 ]
	same a.txt a.txt dir/sub/c.bin dir/sub/c.bin
}

@test "first-cluster: -p leaves a lost size's data alone (exit 4); -y empties the file, -s keeps its data" {
	local flags off first chk
	# As a FAT chain, and as a contiguous (NoFatChain) file.
	for flags in 01 03; do
		cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
		off=$(field /dir/b.bin 1) first=$(field /dir/b.bin 2)
		poke $((off + 32 + 1)) "$flags"
		poke $((off + 32 + 8)) $(le64 0)     # ValidDataLength
		poke $((off + 32 + 24)) $(le64 0)    # DataLength
		loc fixsum /dir/b.bin
		detect first-cluster
		local before; before=$(sha256sum < "$IMG")
		run -4 "$KBOX" fsck.exfat -p "$IMG"
		[ "$(sha256sum < "$IMG")" = "$before" ]
		run -1 "$KBOX" fsck.exfat -y -s "$IMG"
		[ "$(field /dir/b.bin 3)" -eq 0 ]
		# The rescued clusters hold the 20000 bytes.
		chk=$(field /LOST+FOUND/FILE0000001.CHK 2)
		[ "$chk" -eq "$first" ]
		[ "$(field /LOST+FOUND/FILE0000001.CHK 3)" -eq 20480 ]
		cmp <(dd if="$IMG" bs=1 skip="$(loc cluster "$first")" count=20000 status=none) "$TREE/dir/b.bin"
		run -0 "$KBOX" fsck.exfat -n "$IMG"
	done
}

@test "fat-copy: with two FATs, the one not in use is repaired from the one in use, and repairs go to both" {
	# Two FATs and two allocation bitmaps, as TexFAT lays them out (neither
	# mkfs makes them; Debian's fsck and exfat-fuse refuse such volumes).
	"$KBOX_TESTBIN/exfat-craft" "$IMG" texfat
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	local first fat0 fat1; first=$(field /dir/sub/c.bin 2) fat0=$(loc fat 0) fat1=$(loc fat 0 1)
	fats_equal() { cmp <(tail -c +$((fat0 + 1)) "$IMG" | head -c $((fat1 - fat0))) <(tail -c +$((fat1 + 1)) "$IMG" | head -c $((fat1 - fat0))); }
	poke "$(loc fat "$first" 1)" $(le32 12345)
	checked fat-copy ""
	echo "$PROBLEM" | jq -e --arg m "the second FAT (not in use) differs from the first (in use) in 1 entries (first: entry $first)" \
		'.message == $m and .repair == "copy the FAT in use over it"'
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	fats_equal
	# A repair of the FAT in use is made in both: a chain cut short in both.
	set_fat $((first + 6)) 0xFFFFFFFF
	poke "$(loc fat $((first + 6)) 1)" ff ff ff ff
	detect chain-short
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	fats_equal
	# The other FAT's allocation bitmap is repaired from the one in use.
	local bm1; bm1=$(loc bitmap 1 | cut -d' ' -f1)
	poke $((bm1 + 1000)) 5a
	checked bitmap-copy ""
	echo "$PROBLEM" | jq -e '.message | startswith("the allocation bitmap of the FAT not in use differs from the one in use in 4 clusters")'
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	cmp <(tail -c +$((bm1 + 1)) "$IMG" | head -c 1984) <(tail -c +$(($(loc bitmap | cut -d' ' -f1) + 1)) "$IMG" | head -c 1984)
	# VolumeFlags ActiveFat: the second FAT is in use, the first is repaired from it.
	poke 106 "$(printf %02x $(( $(od -An -tu1 -j 106 -N1 "$IMG") | 1 )))"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	poke "$(loc fat "$first")" $(le32 777)
	checked fat-copy ""
	echo "$PROBLEM" | jq -e '.message | startswith("the first FAT (not in use) differs from the second (in use) in 1 entries")'
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	fats_equal
	# The files read back through exfat-fuse once the volume has one FAT again.
	"$KBOX_TESTBIN/exfat-craft" "$IMG" onefat
	same dir/sub/c.bin dir/sub/c.bin 28672 dir/b.bin dir/b.bin a.txt a.txt keep.txt keep.txt
}

# ---- conflicting claims: decided by evidence, shared clusters copied ---------
# On a volume written through exfat-fuse; every kept file is read back
# through exfat-fuse and compared by sha256.

@test "cross-link: a contiguous file whose size runs onto the next files is cut back; they keep theirs" {
	fuse_image
	# f5 is 7 clusters; 10 more reach over d/, d/g and into f6.
	grow /f5 40960
	checked cross-link /f5
	echo "$PROBLEM" | jq -e '.message == "its size reaches past its own clusters: cluster 27 (after 7 clusters) is the first cluster of /d" and .repair == "truncate to 28672 bytes"'
	[ "$(echo "$output" | jq '.problems | length')" -eq 1 ]
	repair
	[ "$(field /f5 3)" -eq 28672 ]
	same f5 f5 + f1 f1 f2 f2 f3 f3 f4 f4 d/g d/g f6 f6 f7 f7 a a b b
}

@test "extent-free: a damaged entry's NoFatChain extent is cut back to the clusters the bitmap marks; the bitmap alone cuts nothing" {
	fuse_image
	# z's entry set is damaged: its size now runs 10 clusters into free space.
	grow /z 40960 damaged
	checked extent-free /z
	echo "$PROBLEM" | jq -e --arg m "its size reaches past its own clusters: the last 10 of the 13 clusters from $(field /z 2) are marked free in the allocation bitmap" \
		'.message == $m and .repair == "truncate to 12288 bytes"'
	repair
	[ "$(field /z 3)" -eq 12288 ]
	same z z + a a f7 f7
	# An intact entry whose size runs into free clusters keeps it: they are marked used.
	fuse_image
	grow /z 40960
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '[.problems[].code] == ["bitmap-free-in-use"]'
	repair
	[ "$(field /z 3)" -eq 50960 ]
	same z z + a a
}

@test "cross-link: a chain that runs onto another file's first cluster is cut back; that file keeps its data" {
	fuse_image
	local b; b=$(field /b 2)
	set_fat "$(field /a 2)" "$b"
	checked cross-link /a
	echo "$PROBLEM" | jq -e --arg m "its cluster chain runs onto the first cluster $b of /b (after 1 clusters)" \
		'.message == $m and .repair == "truncate to 4096 bytes"'
	# Its own clusters past the first are orphans now; nothing is said of its chain's length.
	echo "$output" | jq -e '[.problems[].code] | sort == ["bitmap-orphan", "cross-link"]'
	repair
	[ "$(field /a 3)" -eq 4096 ]
	same a a 4096 b b f5 f5 f6 f6 d/g d/g
}

@test "cross-link: an entry set whose checksum was wrong gives the clusters up to an intact file" {
	fuse_image
	local a1 a3 off; a1=$(field /a 2); a3=$(fat_of "$(fat_of "$a1")") off=$(field /b 1)
	# b's first cluster now points into a's chain, and its checksum no longer matches.
	poke $((off + 32 + 20)) $(le32 "$a3")
	checked cross-link /b
	echo "$PROBLEM" | jq -e --arg m "cluster $a3 (after 0 clusters) is also claimed by /a, and this file's entry set had a wrong checksum" \
		'.message == $m and .repair == "truncate to 0 bytes"'
	repair
	[ "$(field /b 3)" -eq 0 ]
	same a a f7 f7 d/g d/g
}

@test "cross-link: both claims damaged: the one its checksum and its chain both speak against gives the clusters up" {
	fuse_image
	local b1 b3 b5 off; b1=$(field /b 2); b3=$(fat_of "$(fat_of "$b1")"); b5=$(fat_of "$(fat_of "$b3")")
	# a (walked first) now starts in b's chain, its checksum wrong and its
	# chain too short from there; b's own chain ends a cluster early.
	off=$(field /a 1)
	poke $((off + 32 + 20)) $(le32 "$b3")
	set_fat "$b5" 0xFFFFFFFF
	checked cross-link /a
	echo "$PROBLEM" | jq -e --arg m "cluster $b3 (after 0 clusters) is also claimed by /b, and this file's entry set had a wrong checksum" \
		'.message == $m and .repair == "truncate to 0 bytes"'
	echo "$output" | jq -e '[.problems[] | select(.path == "/b") | .code] == ["chain-short"]'
	repair
	[ "$(field /a 3)" -eq 0 ] && [ "$(field /b 3)" -eq 20480 ]
	same b b 20480 f1 f1 f2 f2 f3 f3 f4 f4 f5 f5 f6 f6 f7 f7 d/g d/g z z
}

@test "cross-link: a directory whose entry set was damaged is read only once its clusters are settled" {
	fuse_image
	local off x; off=$(field /d 1) x=$(( $(field /f6 2) + 2 ))
	# d's first cluster now points into f6, and its checksum no longer matches.
	poke $((off + 32 + 20)) $(le32 "$x")
	checked cross-link /d
	echo "$PROBLEM" | jq -e --arg m "cluster $x (after 0 clusters) is also claimed by /f6, and this file's entry set had a wrong checksum" \
		'.message == $m and .repair == "truncate to 0 bytes"'
	# f6's data was never read as directory entries.
	echo "$output" | jq -e '[.problems[].code] | sort == ["bitmap-orphan", "cross-link", "set-checksum"]'
	repair
	[ "$(field /d 3)" -eq 0 ]
	same f6 f6 f5 f5 f7 f7 a a
}

@test "cross-link: a directory whose chain goes on past its size into a file is read only once its clusters are settled" {
	fuse_image
	local off d a2; off=$(field /d 1) d=$(field /d 2) a2=$(fat_of "$(field /a 2)")
	# d (walked before a) becomes a FAT chain of two clusters whose second
	# is a's second, a's chain going on from there; its set is consistent.
	poke $((off + 32 + 1)) 01
	poke $((off + 32 + 8)) $(le64 8192)
	poke $((off + 32 + 24)) $(le64 8192)
	loc fixsum /d
	set_fat "$d" "$a2"
	checked cross-link /d
	echo "$PROBLEM" | jq -e --arg m "cluster $a2 (after 1 clusters) is also claimed by /a, and this file's cluster chain disagrees with its size" \
		'.message == $m and .repair == "truncate to 4096 bytes"'
	repair
	[ "$(field /d 3)" -eq 4096 ]
	# a's random bytes were never read as directory entries and repaired.
	same a a d/g d/g f7 f7
}

@test "cross-link: a directory below another that runs into its clusters (a loop) is the one cut back" {
	local sub off csize; sub=$(field /dir/sub 2) off=$(field /dir/sub/c.bin 1)
	csize=$(( $(loc cluster 3) - $(loc cluster 2) ))
	# c.bin becomes a directory whose one cluster is sub's own, a whole
	# set; sub's own set is damaged (a wrong checksum), so it is read late.
	poke $((off + 4)) 10 00
	poke $((off + 32 + 8)) $(le64 "$csize")
	poke $((off + 32 + 20)) $(le32 "$sub") $(le64 "$csize")
	loc fixsum "$off"
	poke $(($(field /dir/sub 1) + 2)) 00 00
	checked cross-link /dir/sub/c.bin
	repair
	[ "$(field /dir/sub/c.bin 3)" -eq 0 ]
	same dir/b.bin dir/b.bin a.txt a.txt keep.txt keep.txt
}

@test "cross-link: two chains that agree with their sizes and merge both keep their data: the later one gets a copy" {
	fuse_image
	local a1 a2 b1; a1=$(field /a 2) b1=$(field /b 2); a2=$(fat_of "$a1")
	# b's chain joins a's at its second cluster: both are 6 clusters long, as their sizes say.
	set_fat "$b1" "$a2"
	checked cross-link /b
	echo "$PROBLEM" | jq -e --arg m "shares 5 clusters from cluster $a2 (after 1 clusters) with /a; both files' entries, chains and bitmap agree" \
		'.message == $m and .repair == "copy the shared clusters (20480 bytes) to free ones for this file"'
	repair
	[ "$(field /b 2)" -eq "$b1" ] && [ "$(fat_of "$b1")" -ne "$a2" ]
	{ head -c 4096 "$TREE/b"; tail -c +4097 "$TREE/a"; } > "$BATS_TEST_TMPDIR/b-now"
	same a a b "$BATS_TEST_TMPDIR/b-now" f5 f5 f7 f7
	# A directory that shares a file's first cluster gets its copy there:
	# it is read (and repaired: 0xff bytes are stray entries) in the copy,
	# never in the file's data.
	fuse_image
	local f4; f4=$(field /f4 2)
	poke $(($(field /d 1) + 32 + 20)) $(le32 "$f4")
	loc fixsum /d
	checked cross-link /d
	echo "$PROBLEM" | jq -e '.repair == "copy the shared cluster (4096 bytes) to free ones for this file"'
	repair
	[ "$(field /d 2)" -ne "$f4" ]
	same f4 f4 f5 f5 a a
}

@test "cross-link: with no free cluster for the copy, the later file is cut back and the loss said in bytes" {
	fuse_image
	fill() { dd if=/dev/zero of="$MNT/fill" bs=4k status=none 2>/dev/null; [ "$(stat -f -c %a "$MNT")" -eq 0 ]; }
	on_fuse "$IMG" fill
	local a2 b1; a2=$(fat_of "$(field /a 2)") b1=$(field /b 2)
	set_fat "$b1" "$a2"
	checked cross-link /b
	echo "$PROBLEM" | jq -e '.repair == "truncate to 4096 bytes, losing 20480 bytes: no free clusters to copy the shared ones to"'
	repair
	[ "$(field /b 3)" -eq 4096 ]
	same a a b b 4096 f1 f1 f7 f7
}

# ---- allocation bitmap ---------------------------------------------------

@test "bitmap-free-in-use: a used cluster marked free is marked used" {
	local first bm; first=$(field /dir/sub/c.bin 2); bm=$(loc bitmap | cut -d' ' -f1)
	local byte=$((bm + (first - 2) / 8)) v
	v=$(od -An -tu1 -j "$byte" -N1 "$IMG")
	poke "$byte" "$(printf %02x $((v & ~(1 << ((first - 2) % 8)) & 255)))"
	detect bitmap-free-in-use
	repair
	[ "$(od -An -tu1 -j "$byte" -N1 "$IMG")" -eq "$v" ]
}

@test "bitmap-orphan: clusters marked used that nothing owns are freed" {
	local bm; bm=$(loc bitmap | cut -d' ' -f1)
	poke $((bm + 1000)) ff
	detect bitmap-orphan
	repair
	[ "$(od -An -tu1 -j $((bm + 1000)) -N1 "$IMG")" -eq 0 ]
}

@test "bitmap-size: a wrong allocation bitmap size is corrected" {
	local at; at=$(loc bitmap | cut -d' ' -f2)
	poke $((at + 24)) $(le64 100)
	detect bitmap-size
	repair
}

# ---- up-case table -------------------------------------------------------

@test "upcase-table: a damaged up-case table is rewritten with the default one" {
	local t; t=$(loc upcase | cut -d' ' -f1)
	poke $((t + 10)) 00 00
	detect upcase-table
	repair
	same a.txt a.txt
}

# upcase_first: the up-case table's first cluster, as its entry says.
upcase_first() { od -An -tu4 -j $(($(loc upcase | cut -d' ' -f2) + 20)) -N4 "$IMG" | tr -d ' '; }

@test "upcase-table: a damaged table whose chain runs onto a directory's first cluster gives it up; the default table goes to free clusters" {
	local up sub; up=$(upcase_first) sub=$(field /dir/sub 2)
	# The table's second link points at dir/sub's one cluster: its checksum
	# no longer matches, and its own second cluster is left to none.
	set_fat "$up" "$sub"
	checked cross-link /
	echo "$PROBLEM" | jq -e --arg m "up-case table: its cluster chain runs onto the first cluster $sub of /dir/sub (after 1 clusters)" \
		'.message == $m and .repair == "end its chain after 1 clusters"'
	echo "$output" | jq -e '[.problems[].code] | sort == ["bitmap-orphan", "cross-link", "upcase-table"]'
	repair
	# The default table keeps its first cluster; dir/sub's entries were never written over.
	[ "$(upcase_first)" -eq "$up" ] && [ "$(fat_of "$up")" -ne "$sub" ] && [ "$(field /dir/sub 2)" -eq "$sub" ]
	local files=(a.txt a.txt keep.txt keep.txt dir/b.bin dir/b.bin dir/sub/c.bin dir/sub/c.bin) i
	for i in $(seq 1 20); do files+=("dir/n$i" "dir/n$i"); done
	same "${files[@]}"
}

@test "upcase-table: a damaged table whose first cluster is a file's gives all its clusters up to it" {
	local at c; at=$(loc upcase | cut -d' ' -f2) c=$(field /dir/sub/c.bin 2)
	poke $((at + 20)) $(le32 "$c")
	checked cross-link /
	echo "$PROBLEM" | jq -e --arg m "up-case table: cluster $c (after 0 clusters) is also claimed by /dir/sub/c.bin, and its TableChecksum does not match its contents" \
		'.message == $m and .repair == "give all its clusters up"'
	repair
	[ "$(upcase_first)" -ne "$c" ] && [ "$(field /dir/sub/c.bin 2)" -eq "$c" ]
	same dir/sub/c.bin dir/sub/c.bin dir/b.bin dir/b.bin a.txt a.txt keep.txt keep.txt
}

@test "upcase-table: a damaged table whose chain runs into a file's FAT chain gives the clusters up; the file keeps its whole chain" {
	fuse_image
	local up a1 a2; up=$(upcase_first) a1=$(field /a 2); a2=$(fat_of "$a1")
	# The table's chain goes on from its first cluster into a's, past its size.
	set_fat "$up" "$a2"
	checked cross-link /
	echo "$PROBLEM" | jq -e --arg m "up-case table: cluster $a2 (after 1 clusters) is also claimed by /a, and its TableChecksum does not match its contents" \
		'.message == $m and .repair == "end its chain after 1 clusters"'
	echo "$output" | jq -e '[.problems[].code] | sort == ["bitmap-orphan", "cross-link", "upcase-table"]'
	repair
	[ "$(field /a 3)" -eq 24576 ] && [ "$(fat_of "$a1")" -eq "$a2" ] && [ "$(fat_of "$up")" -ne "$a2" ]
	same a a b b f1 f1 f2 f2 f3 f3 f4 f4 f5 f5 f6 f6 f7 f7 d/g d/g z z
}

# ---- directory entries ---------------------------------------------------

@test "set-checksum: a wrong SetChecksum is recomputed" {
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	detect set-checksum
	repair
	same a.txt a.txt
}

@test "name-hash: a wrong NameHash is recomputed" {
	local off; off=$(field /keep.txt 1)
	poke $((off + 32 + 4)) 00 00
	loc fixsum /keep.txt
	detect name-hash
	repair
	same keep.txt keep.txt
}

# name_length_repaired HEX: /keep.txt with NameLength HEX (its checksum
# recomputed) is found and repaired, and reads back whole.
name_length_repaired() {
	local off; off=$(field /keep.txt 1)
	poke $((off + 32 + 3)) "$1"
	loc fixsum "$off"
	detect name-length
	repair
	same keep.txt keep.txt
}

@test "name-length: a NameLength the name entries cannot hold is corrected" {
	name_length_repaired 28
}

@test "name-length: a set with no name at all is named _ on disk, not only in the messages" {
	local off; off=$(field /a.txt 1)
	poke $((off + 32 + 3)) 00
	dd if=/dev/zero of="$IMG" bs=1 seek=$((off + 64 + 2)) count=30 conv=notrunc status=none
	loc fixsum "$off"
	detect name-length
	repair
	same _ a.txt keep.txt keep.txt
}

@test "name-length: a NameLength short of the name NameHash describes is set from the name entries" {
	name_length_repaired 07
}

@test "name-padding: a character after the name in its last name entry is zeroed (Debian agrees)" {
	local off; off=$(field /keep.txt 1)
	# keep.txt has 8 characters: the 9th of its name entry becomes 'x'.
	poke $((off + 64 + 2 + 16)) 78 00
	loc fixsum "$off"
	if command -v /usr/sbin/fsck.exfat >/dev/null; then
		run -4 /usr/sbin/fsck.exfat -n "$IMG"
		assert_output --partial "name length"
	fi
	detect name-padding
	repair
	same keep.txt keep.txt
}

@test "secondary-count: a SecondaryCount beyond the set is corrected" {
	local off; off=$(field /a.txt 1)
	poke $((off + 1)) 05
	loc fixsum /a.txt || true
	detect secondary-count
	repair
	same a.txt a.txt keep.txt keep.txt
}

@test "invalid-name: invalid characters are replaced, the file kept" {
	local off; off=$(field /a.txt 1)
	poke $((off + 64 + 2)) 3a 00
	loc fixsum /:.txt
	detect invalid-name
	repair
	same _.txt a.txt
}

@test "duplicate-name: a case-insensitive duplicate is renamed, both files kept" {
	local off hash; off=$(field /dir/n1 1)
	poke $((off + 64 + 2)) 4e 00 32 00   # n1 -> N2, a duplicate of n2
	# Its NameHash becomes n2's, which up-cases alike: both sets are whole.
	hash=$(od -An -tx1 -j $(($(field /dir/n2 1) + 32 + 4)) -N2 "$IMG")
	poke $((off + 32 + 4)) $hash
	loc fixsum /dir/N2
	detect duplicate-name
	repair
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	# The first of the two in directory order keeps its name.
	same dir/N2 dir/n1 "dir/n2~1" dir/n2
}

@test "duplicate-name: a name a flipped bit turned into another's is the one renamed, though it comes first" {
	# n2 and n3 differ by one bit; the first of them in directory order
	# takes the other's name, its NameHash left as it was.
	local o2 o3 first second; o2=$(field /dir/n2 1); o3=$(field /dir/n3 1)
	if [ "$o2" -lt "$o3" ]; then first=n2 second=n3; else first=n3 second=n2; fi
	poke $(($(field "/dir/$first" 1) + 64 + 4)) "3${second#n}"
	detect duplicate-name
	repair
	same "dir/$second" "dir/$second" "dir/$second~1" "dir/$first"
}

@test "dot-name: a file named '.' is renamed" {
	local off; off=$(field /a.txt 1)
	poke $((off + 32 + 3)) 01
	poke $((off + 64 + 2)) 2e 00
	loc fixsum /.
	detect dot-name
	repair
	same _ a.txt 2>/dev/null || same "_~1" a.txt
}

# stream_flags_repaired PATH HEX: PATH's stream flags set to HEX (checksum
# recomputed) are found and corrected, and its directory reads back through
# exfat-fuse (which refuses a directory over flags it does not know).
stream_flags_repaired() {
	local off; off=$(field "$1" 1)
	poke $((off + 32 + 1)) "$2"
	loc fixsum "$off"
	detect stream-flags
	repair
}

@test "stream-flags: a reserved bit is cleared, and exfat-fuse reads the directory again" {
	stream_flags_repaired /dir/b.bin 07
	same dir/b.bin dir/b.bin dir/n1 dir/n1
}

@test "stream-flags: AllocationPossible cleared on a contiguous file is set again" {
	stream_flags_repaired /dir/sub/c.bin 02
	same dir/sub/c.bin dir/sub/c.bin
}

@test "stream-flags: an empty file marked NoFatChain loses the mark" {
	local off; off=$(field /a.txt 1)
	poke $((off + 32 + 8)) $(le64 0)
	poke $((off + 32 + 20)) $(le32 0) $(le64 0)
	stream_flags_repaired /a.txt 03
	same keep.txt keep.txt
}

@test "valid-length: ValidDataLength above DataLength is lowered" {
	local off size; off=$(field /dir/b.bin 1); size=$(field /dir/b.bin 3)
	poke $((off + 32 + 8)) $(le64 $((size + 5000)))
	loc fixsum /dir/b.bin
	detect valid-length
	repair
	same dir/b.bin dir/b.bin
}

@test "timestamp: an invalid modification time is replaced" {
	local off; off=$(field /keep.txt 1)
	poke $((off + 12)) ff ff ff ff
	loc fixsum /keep.txt
	detect timestamp
	repair
	same keep.txt keep.txt
}

@test "dir-size: a directory size that is not a cluster multiple is rounded" {
	local off; off=$(field /dir 1)
	poke $((off + 32 + 24)) $(le64 4196)
	poke $((off + 32 + 8)) $(le64 4196)
	loc fixsum /dir
	detect dir-size
	repair
	same dir/b.bin dir/b.bin dir/sub/c.bin dir/sub/c.bin
}

@test "label-length: a volume label longer than 11 characters is cut" {
	local at; at=$(loc type 0x83)
	poke $((at + 1)) 0f
	detect label-length
	repair
}

@test "entry-after-end: entries after the end-of-directory mark are zeroed" {
	local eod; eod=$(loc type 0)
	poke $((eod + 64)) 85 02
	detect entry-after-end
	repair
	same a.txt a.txt
}

@test "unknown-entry and orphan-entry: stray entries are deleted, nothing else changes" {
	local eod; eod=$(loc type 0)
	poke "$eod" 8f
	poke $((eod + 32)) c1
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '[.problems[].code] | index("unknown-entry") != null and index("orphan-entry") != null'
	repair
	same a.txt a.txt keep.txt keep.txt
}

@test "stream-missing: a file entry without its stream entry is removed" {
	local off; off=$(field /a.txt 1)
	poke $((off + 32)) 40
	detect stream-missing
	repair
	same keep.txt keep.txt
}

# ---- sparse image files ----------------------------------------------------

@test "sparse images: damage written into the holes of a 2 TiB image is found and repaired" {
	IMG=$BATS_TEST_TMPDIR/big.img
	"$KBOX" mkfs.exfat -q -d "$TREE" "$IMG" 2T
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	local bm root csize
	bm=$(loc bitmap | cut -d' ' -f1); root=$(loc root)
	csize=$(( $(loc cluster 3) - $(loc cluster 2) ))
	# Both places are holes of the sparse file until written here.
	poke $((root + csize - 32)) 85 02
	poke $((bm + 1500000)) 01
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '[.problems[].code] | index("entry-after-end") != null and index("bitmap-orphan") != null'
	echo "$output" | jq -e '.problems[] | select(.code == "bitmap-orphan") | .message | test("^1 clusters .*first: 12000002")'
	repair
	[ "$(od -An -tu1 -j $((bm + 1500000)) -N1 "$IMG")" -eq 0 ]
}

# ---- modes, exit codes, safety --------------------------------------------

@test "usage errors exit 16; a missing device exits 8" {
	run -16 "$KBOX" fsck.exfat
	run -16 "$KBOX" fsck.exfat -n -y "$IMG"
	run -16 "$KBOX" fsck.exfat --bogus "$IMG"
	run -16 "$KBOX" fsck.exfat -n -z "$BATS_TEST_TMPDIR/u" "$IMG"
	run -8 "$KBOX" fsck.exfat -n "$BATS_TEST_TMPDIR/nonexistent"
	local mode
	for mode in -n -y; do
		run -8 "$KBOX" fsck.exfat $mode "$BATS_TEST_TMPDIR"
		assert_output "fsck.exfat: $BATS_TEST_TMPDIR is neither a block device nor a regular file"
	done
	run -0 "$KBOX" fsck.exfat -h
	assert_output --partial "Exit status"
	run -0 "$KBOX" fsck.exfat --version
}

@test "no mode without a terminal checks only; -n never writes" {
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	local before; before=$(sha256sum < "$IMG")
	run -4 "$KBOX" fsck.exfat "$IMG" < /dev/null
	run -4 "$KBOX" fsck.exfat -n "$IMG"
	[ "$(sha256sum < "$IMG")" = "$before" ]
}

@test "no mode asks on a controlling terminal; on a terminal that is not one (a boot's console) it checks only" {
	require_cmd script
	require_cmd setsid
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	local before; before=$(sha256sum < "$IMG")
	run script -qec "$KBOX fsck.exfat $IMG" /dev/null <<< "n"
	[ "$status" -eq 4 ] || fail "asked and answered n: exit $status, wanted 4: $output"
	assert_output --partial "[y]es [n]o [a]ll [q]uit"
	# setsid: a new session, with the terminal on stdin and stderr but not
	# controlling it, as an initramfs's init has the console.
	run script -qec "setsid -w $KBOX fsck.exfat $IMG" /dev/null < /dev/null
	[ "$status" -eq 4 ] || fail "without a controlling terminal: exit $status, wanted 4 (checked only): $output"
	refute_output --partial "[y]es [n]o"
	assert_output --partial "not repaired"
	[ "$(sha256sum < "$IMG")" = "$before" ]
	# -r still needs one.
	run script -qec "setsid -w $KBOX fsck.exfat -r $IMG" /dev/null < /dev/null
	[ "$status" -eq 16 ] || fail "-r without a controlling terminal: exit $status, wanted 16: $output"
}

@test "-p repairs the safe problems and leaves truncations: exit 4, then -y: exit 1" {
	local off first; off=$(field /a.txt 1); first=$(field /dir/sub/c.bin 2)
	poke $((off + 2)) 12 34
	set_fat $((first + 3)) $((first + 1))
	run -4 --separate-stderr "$KBOX" fsck.exfat -p --json "$IMG"
	echo "$output" | jq -e '.problems | map(select(.code == "set-checksum"))[0].repaired == true'
	echo "$output" | jq -e '.problems | map(select(.code == "chain-loop"))[0].repaired == false'
	run -4 "$KBOX" fsck.exfat -a "$IMG"
	repair
}

@test "VolumeDirty is clear after a repair" {
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	[ $(( $(od -An -tu2 -j 106 -N2 "$IMG") & 2 )) -eq 0 ]
}

@test "an image another program holds locked is not repaired (exit 8); -n checks it with a warning" {
	require_cmd flock
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	local before; before=$(sha256sum < "$IMG")
	# The holder is one process (the lock's descriptor goes with the exec).
	( exec 9<>"$IMG"; flock -x 9; exec sleep 60 ) 3>&- &
	local holder=$!
	locked() { ! flock -n -s "$IMG" true; }
	wait_until 10 "the holder to lock $IMG" locked
	run "$KBOX" fsck.exfat -y "$IMG"
	local repair_status=$status repair_out=$output
	run "$KBOX" fsck.exfat -n "$IMG"
	local check_status=$status check_out=$output
	run "$KBOX" mkfs.exfat -q "$IMG"
	local mkfs_status=$status mkfs_out=$output
	kill "$holder"; wait "$holder" 2>/dev/null || true
	[ "$repair_status" -eq 8 ]
	[ "$repair_out" = "fsck.exfat: $IMG is being checked or repaired by another program; refusing to write to it" ]
	[ "$check_status" -eq 4 ]
	[[ $check_out == *"warning: $IMG is being repaired by another program"* ]]
	[ "$mkfs_status" -eq 1 ]
	[[ $mkfs_out == *"refusing to format it"* ]]
	[ "$(sha256sum < "$IMG")" = "$before" ]
	run -1 "$KBOX" fsck.exfat -y "$IMG"
}

@test "a read-only device: a repair is refused up front (exit 8), -n checks it" {
	require_root
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	local dev; dev=$(losetup -r -f --show "$IMG")
	run "$KBOX" fsck.exfat -y --json "$dev"
	local repair_status=$status repair_out=$output
	run "$KBOX" fsck.exfat -n "$dev"
	local check_status=$status
	losetup -d "$dev"
	[ "$repair_status" -eq 8 ]
	[ "$repair_out" = "fsck.exfat: $dev is read-only: nothing can be written (-n checks only)" ]
	[ "$check_status" -eq 4 ]
}

@test "a clean volume marked dirty: -n leaves the mark, a repair mode clears it (exit 0)" {
	poke 106 02 00
	run -0 "$KBOX" fsck.exfat -n -v "$IMG"
	assert_output --partial "marked dirty"
	[ $(( $(od -An -tu2 -j 106 -N2 "$IMG") & 2 )) -eq 2 ]
	run -0 "$KBOX" fsck.exfat -p -v "$IMG"
	assert_output --partial "the dirty mark was cleared"
	[ $(( $(od -An -tu2 -j 106 -N2 "$IMG") & 2 )) -eq 0 ]
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "a mounted filesystem (device or its image file) is not repaired (exit 8); a read-only check warns" {
	require_root
	require_cmd mount.exfat-fuse
	local mnt=$BATS_TEST_TMPDIR/mnt dev
	mkdir -p "$mnt"
	dev=$(losetup -f --show "$IMG")
	mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1
	run -8 "$KBOX" fsck.exfat -y "$dev"
	assert_output --partial "mounted"
	run "$KBOX" fsck.exfat -n "$dev"
	assert_output --partial "mounted"
	# The image file behind the loop device is refused too.
	run -8 "$KBOX" fsck.exfat -y "$IMG"
	assert_output --partial "is mounted on $mnt"
	umount "$mnt"; losetup -d "$dev"
	run -0 "$KBOX" fsck.exfat -y "$IMG"
}

@test "an image file that is a mount's source is not repaired; its escaped name is matched" {
	require_root
	local img="$BATS_TEST_TMPDIR/with space.img" mnt=$BATS_TEST_TMPDIR/mnt
	cp --sparse=always "$IMG" "$img"
	mkdir -p "$mnt"
	# tmpfs takes any source string: the mount table names the image.
	mount -t tmpfs "$img" "$mnt"
	run -8 "$KBOX" fsck.exfat -y "$img"
	assert_output --partial "is mounted on $mnt: refusing to repair it"
	run -0 "$KBOX" fsck.exfat -n "$img"
	assert_output --partial "warning: $img is mounted on $mnt"
	umount "$mnt"
	run -0 "$KBOX" fsck.exfat -y "$img"
}

# ---- undo files ----------------------------------------------------------

@test "undo: repair with -z, then --rollback restores the exact pre-repair bytes" {
	local first off; first=$(field /dir/sub/c.bin 2); off=$(field /a.txt 1)
	set_fat $((first + 3)) $((first + 1))
	poke $((off + 2)) 12 34
	poke 200 aa
	local before; before=$(sha256sum < "$IMG")
	run -1 "$KBOX" fsck.exfat -y -z "$BATS_TEST_TMPDIR/undo" "$IMG"
	[ "$(sha256sum < "$IMG")" != "$before" ]
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$IMG"
	assert_output --partial "restored"
	[ "$(sha256sum < "$IMG")" = "$before" ]
	run -4 "$KBOX" fsck.exfat -n "$IMG"
}

@test "undo: a device changed after the repair, or a damaged undo file, is refused" {
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	run -1 "$KBOX" fsck.exfat -y -z "$BATS_TEST_TMPDIR/undo" "$IMG"
	cp "$BATS_TEST_TMPDIR/undo" "$BATS_TEST_TMPDIR/damaged"
	local size; size=$(stat -c %s "$BATS_TEST_TMPDIR/damaged")
	printf '\xff' | dd of="$BATS_TEST_TMPDIR/damaged" bs=1 seek=$((size - 3)) conv=notrunc status=none
	local repaired; repaired=$(sha256sum < "$IMG")
	run -8 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/damaged" "$IMG"
	assert_output --partial "damaged"
	[ "$(sha256sum < "$IMG")" = "$repaired" ]
	poke $((off + 2)) 56 78
	run -8 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$IMG"
	assert_output --partial "force"
	# A device of another size is named as such.
	cp --sparse=always "$IMG" "$BATS_TEST_TMPDIR/bigger"
	truncate -s +1M "$BATS_TEST_TMPDIR/bigger"
	run -8 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$BATS_TEST_TMPDIR/bigger"
	assert_output --partial "made for a device of $(( $(stat -c %s "$IMG") )) bytes, $BATS_TEST_TMPDIR/bigger has"
	run -16 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" --json "$IMG"
	# Even with --force, nothing is written past the end of a smaller device.
	head -c 1M "$IMG" > "$BATS_TEST_TMPDIR/small"
	(( $(field /a.txt 1) > 1048576 ))
	run -8 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" --force "$BATS_TEST_TMPDIR/small"
	assert_output --partial "beyond the end"
	[ "$(stat -c %s "$BATS_TEST_TMPDIR/small")" -eq 1048576 ]
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" --force "$IMG"
	run -8 "$KBOX" fsck.exfat --rollback "$IMG" "$IMG"
	assert_output --partial "not an undo file"
}

@test "undo: the device itself, under any name, or a loop device's backing file is refused as the undo file" {
	require_root
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	local before; before=$(sha256sum < "$IMG")
	ln "$IMG" "$BATS_TEST_TMPDIR/hardlink"
	run -16 "$KBOX" fsck.exfat -y -z "$IMG" "$IMG"
	assert_output "fsck.exfat: $IMG: the undo file would be $IMG itself"
	run -16 "$KBOX" fsck.exfat -y -z "$BATS_TEST_TMPDIR/hardlink" "$IMG"
	assert_output --partial "the undo file would be $IMG itself"
	run -16 "$KBOX" fsck.exfat -y -z "$BATS_TEST_TMPDIR" "$IMG"
	assert_output --partial "an undo file must be a regular file"
	local dev; dev=$(losetup -f --show "$IMG")
	run -16 "$KBOX" fsck.exfat -y -z "$IMG" "$dev"
	local out=$output
	losetup -d "$dev"
	[[ $out == *"the undo file backs $dev"* ]]
	[ "$(sha256sum < "$IMG")" = "$before" ]
}

# A repair killed part way: a file-size limit (SIGXFSZ) stops it at its first
# write past 6000 bytes into the image, after the boot sector's VolumeDirty
# flag was set; the undo file then holds every saved block but a header that
# was never completed.
interrupted_repair() {
	local off; off=$(field /a.txt 1)
	(( off > 6000 ))
	poke $((off + 2)) 12 34
	BEFORE=$(sha256sum < "$IMG")
	run -153 prlimit --fsize=6000 "$KBOX" fsck.exfat -y -z "$BATS_TEST_TMPDIR/undo" "$IMG"
	[ "$(sha256sum < "$IMG")" != "$BEFORE" ]
}

@test "undo: the undo file of an interrupted repair rolls back with --force" {
	interrupted_repair
	local changed; changed=$(sha256sum < "$IMG")
	run -8 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$IMG"
	assert_output --partial "interrupted run"
	[ "$(sha256sum < "$IMG")" = "$changed" ]
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" --force "$IMG"
	assert_output --partial "from an interrupted run"
	[ "$(sha256sum < "$IMG")" = "$BEFORE" ]
}

@test "undo: an interrupted run's cut last record is skipped; damage before it is refused" {
	interrupted_repair
	local undo=$BATS_TEST_TMPDIR/undo size; size=$(stat -c %s "$undo")
	cp "$undo" "$BATS_TEST_TMPDIR/whole"
	# Cut inside the last record (the block the killed write was about to change).
	truncate -s $((size - 5)) "$undo"
	run -0 "$KBOX" fsck.exfat --rollback "$undo" --force "$IMG"
	assert_output --partial "cut short"
	[ "$(sha256sum < "$IMG")" = "$BEFORE" ]
	# Damage inside the first record is not a cut: nothing is written.
	run -153 prlimit --fsize=6000 "$KBOX" fsck.exfat -y -z "$undo" "$IMG"
	local changed; changed=$(sha256sum < "$IMG")
	printf '\x77' | dd of="$undo" bs=1 seek=100 conv=notrunc status=none
	run -8 "$KBOX" fsck.exfat --rollback "$undo" --force "$IMG"
	assert_output --partial "damaged"
	[ "$(sha256sum < "$IMG")" = "$changed" ]
}

# ---- -s: orphans to LOST+FOUND, -r on a terminal --------------------------

@test "-s keeps an orphan chain as /LOST+FOUND/FILE0000001.CHK with its data" {
	local bm c=3000; bm=$(loc bitmap | cut -d' ' -f1)
	head -c 8192 /dev/urandom > "$TREE/../orphan.$BATS_TEST_NUMBER"
	dd if="$TREE/../orphan.$BATS_TEST_NUMBER" of="$IMG" bs=4096 seek=$(( $(loc cluster $c) / 4096 )) conv=notrunc status=none
	set_fat $c $((c + 1)); set_fat $((c + 1)) 0xFFFFFFFF
	poke $((bm + (c - 2) / 8)) "$(printf %02x $((3 << ((c - 2) % 8))))"
	detect bitmap-orphan
	run -1 "$KBOX" fsck.exfat -y -s "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
	assert_output --partial "25 files, 4 directories"
	run -0 /usr/sbin/fsck.exfat -n "$IMG"
	[ "$(field /LOST+FOUND/FILE0000001.CHK 3)" -eq 8192 ]
	cp "$TREE/../orphan.$BATS_TEST_NUMBER" "$TREE/orphan"
	same LOST+FOUND/FILE0000001.CHK orphan a.txt a.txt
	rm "$TREE/orphan"
	# A second rescue does not reuse the existing directory's name.
	poke $((bm + 1000)) 01
	run -1 "$KBOX" fsck.exfat -y -s "$IMG"
	[ "$(field "/LOST+FOUND~1/FILE0000001.CHK" 3)" -eq 4096 ]
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "-s on a volume with no room for /LOST+FOUND: the orphans are left, not freed (exit 4)" {
	# Every cluster marked used: all the free ones become orphans, none is left.
	local bm entry size
	read -r bm entry < <(loc bitmap)
	size=$(od -An -tu8 -j $((entry + 24)) -N8 "$IMG" | tr -d ' ')   # its DataLength
	head -c "$size" /dev/zero | tr '\0' '\377' | dd of="$IMG" bs=1 seek="$bm" conv=notrunc status=none
	local before; before=$(sha256sum < "$IMG")
	run -4 --separate-stderr "$KBOX" fsck.exfat -y -s --json "$IMG"
	echo "$output" | jq -e '.problems[] | select(.code == "bitmap-orphan") | .repaired == false' >/dev/null
	assert_equal "$(echo "$stderr" | grep -c 'no room for /LOST+FOUND')" 1
	[ "$(sha256sum < "$IMG")" = "$before" ]
	# Without -s they are freed.
	run -1 "$KBOX" fsck.exfat -y "$IMG"
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

@test "-r asks on the terminal: n leaves a problem (4), q cancels (32), y repairs (1)" {
	require_cmd script
	local off; off=$(field /a.txt 1)
	poke $((off + 2)) 12 34
	run script -qec "$KBOX fsck.exfat -r $IMG" /dev/null <<< "n"
	[ "$status" -eq 4 ]
	assert_output --partial "[y]es [n]o [a]ll [q]uit"
	run script -qec "$KBOX fsck.exfat -r $IMG" /dev/null <<< "q"
	[ "$status" -eq 32 ]
	run script -qec "$KBOX fsck.exfat -r $IMG" /dev/null <<< "y"
	[ "$status" -eq 1 ]
	run -0 "$KBOX" fsck.exfat -n "$IMG"
}

# Ctrl-C (SIGINT) arrives, under gdb, right after the first problem was
# reported (the one in the root directory): the run stops before the next
# directory. (LeakSanitizer cannot run under ptrace.)
interrupt() {
	run env ASAN_OPTIONS=detect_leaks=0 gdb -q -batch -ex 'break report' -ex run -ex delete \
		-ex 'signal SIGINT' --args "$KBOX" fsck.exfat "$@" "$IMG"
	assert_output --partial "exited with code 040"   # 32, in octal
}

@test "SIGINT stops a check or repair at the next directory: exit 32, not clean, repairs kept whole" {
	require_cmd gdb
	local in_root in_dir; in_root=$(field /a.txt 1) in_dir=$(field /dir/b.bin 1)
	poke $((in_root + 2)) 12 34
	poke $((in_dir + 2)) 56 78
	interrupt -n --json
	echo "$output" | grep '^{' | jq -e '.cancelled and (.clean | not) and .problems_found == 1 and
		.clusters_used == null' >/dev/null
	interrupt -y
	assert_output --partial "/a.txt: SetChecksum"
	assert_output --partial "cancelled"
	refute_output --partial "/dir/b.bin"
	# The root's repair is on disk; /dir was never reached.
	run -4 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	echo "$output" | jq -e '[.problems[].path] | index("/a.txt") == null and index("/dir/b.bin") != null' >/dev/null
	repair
	same /a.txt a.txt dir/b.bin dir/b.bin
}

@test "-P shows progress on a terminal and clears it; nothing without one" {
	require_cmd script
	run script -qec "$KBOX fsck.exfat -n -P $IMG" /dev/null
	[ "$status" -eq 0 ]
	assert_output --partial "directories, "
	assert_output --partial "clean, 24 files"
	run --separate-stderr "$KBOX" fsck.exfat -n -P "$IMG"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
}
