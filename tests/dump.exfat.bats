#!/usr/bin/env bats
# dump.exfat: its first sections match Debian's exfatprogs dump.exfat line
# for line on the same images (kbox-, Debian- and exfat-fuse-made, and
# corpus volumes whose root starts label, bitmap, up-case as exfatprogs
# assumes); -p PATH against the offsets exfat-locate finds, on damage the
# test makes; nothing is written; mounted volumes get a warning; bad input
# a one-line error; the corruption corpus and fuzzing under the sanitizers.
load test_helper

# Debian's dump.exfat output without its version line.
debian_dump() { /usr/sbin/dump.exfat "$1" | grep -v '^exfatprogs version'; }

# same_as_debian IMAGE: kbox's first lines are exactly Debian's output.
same_as_debian() {
	local want
	want=$(debian_dump "$1")
	[ "$(echo "$want" | wc -l)" -ge 24 ] || fail "Debian's dump.exfat printed too little for $1"
	run -0 "$KBOX" dump.exfat "$1"
	assert_equal "$(echo "$output" | head -n "$(echo "$want" | wc -l)")" "$want"
}

setup_file() {
	exfat_tree "$BATS_FILE_TMPDIR/tree"
	"$KBOX" mkfs.exfat -q -L label -d "$BATS_FILE_TMPDIR/tree" "$BATS_FILE_TMPDIR/base.img" 64M 2>/dev/null || true
}

setup() {
	require_applet dump.exfat
	require_applet mkfs.exfat
	fresh_image
}

teardown() { loop_cleanup; }

# ---- exfatprogs' sections --------------------------------------------------

@test "the boot sector, root entries and statistics sections are Debian's, line for line" {
	require_cmd /usr/sbin/dump.exfat
	same_as_debian "$IMG"
	local d=$BATS_TEST_TMPDIR/d.img
	for args in "-L DEBVOL" "-c 512" "-c 1M" "-b 4096 -c 4096"; do
		rm -f "$d"; truncate -s 300M "$d"
		/usr/sbin/mkfs.exfat $args "$d" >/dev/null
		same_as_debian "$d"
	done
	rm -f "$d"; "$KBOX" mkfs.exfat -q "$d" 8M
	same_as_debian "$d"
}

@test "a volume written by exfat-fuse dumps as Debian dumps it, free clusters included" {
	require_root
	require_cmd mount.exfat-fuse
	require_cmd /usr/sbin/dump.exfat
	mount_fuse "$IMG"
	head -c 3000000 /dev/urandom > "$MNT/big"
	rm "$MNT/dir/n3"
	umount_fuse
	same_as_debian "$IMG"
	run -0 "$KBOX" dump.exfat --json "$IMG"
	echo "$output" | jq -e '.statistics.free_clusters == .statistics.total_clusters - .statistics.used_clusters'
	[ "$(echo "$output" | jq .statistics.free_clusters)" = "$(debian_dump "$IMG" | sed -n 's/^Free Clusters:[[:space:]]*//p')" ]
}

@test "corpus volumes laid out as exfatprogs expects dump as Debian dumps them" {
	require_shared exfat-corpus
	require_cmd /usr/sbin/dump.exfat
	for c in bad_bitmap bad_dentries loop_chain invalid_name rename_dot_entry; do
		rm -rf "$BATS_TEST_TMPDIR/c" && mkdir "$BATS_TEST_TMPDIR/c"
		tar -xf "$SHARED/exfat-corpus/$c/exfat.img.tar.xz" -C "$BATS_TEST_TMPDIR/c"
		same_as_debian "$BATS_TEST_TMPDIR/c/exfat.img"
	done
}

@test "entries are found by type: a root without exfatprogs' order still shows its label" {
	local root
	root=$(loc root | cut -d' ' -f1)
	# Swap the label entry (first) and the bitmap entry (second).
	dd if="$IMG" of="$BATS_TEST_TMPDIR/e" bs=1 skip="$root" count=64 status=none
	{ tail -c 32 "$BATS_TEST_TMPDIR/e"; head -c 32 "$BATS_TEST_TMPDIR/e"; } |
		dd of="$IMG" bs=1 seek="$root" conv=notrunc status=none
	run -0 "$KBOX" dump.exfat "$IMG"
	assert_line --regexp '^Volume entry type:[[:space:]]+0x83$'
	assert_line --regexp '^Volume label:[[:space:]]+label$'
	assert_line --regexp '^Bitmap entry type:[[:space:]]+0x81$'
	assert_line --regexp '^Bitmap start cluster:[[:space:]]+2$'
	assert_line --regexp '^Upcase table start cluster:[[:space:]]+3$'
	run -0 "$KBOX" dump.exfat --json "$IMG"
	echo "$output" | jq -e '.label.offset == '"$((root + 32))"' and .bitmap.offset == '"$root"
}

@test "--json holds the same values as the text" {
	run -0 "$KBOX" dump.exfat --json "$IMG"
	local j=$output
	run -0 "$KBOX" dump.exfat "$IMG"
	field() { echo "$output" | sed -n "s/^$1:[[:space:]]*//p" | head -1; }
	[ "$(echo "$j" | jq .boot_sector.cluster_count)" = "$(field 'Cluster Count')" ]
	[ "$(echo "$j" | jq .boot_sector.volume_length)" = "$(field 'Volume Length(sectors)')" ]
	[ "$(printf '0x%x' "$(echo "$j" | jq .boot_sector.volume_serial)")" = "$(field 'Volume Serial')" ]
	[ "$(echo "$j" | jq -r .label.label)" = "$(field 'Volume label')" ]
	[ "$(echo "$j" | jq .upcase.size)" = "$(field 'Upcase table size')" ]
	echo "$j" | jq -e '.boot_regions.main.sound and .boot_regions.backup.sound and .boot_regions.in_use == "main"'
	echo "$j" | jq -e '[.root.entries[].kind] == ["label", "bitmap", "upcase", "file", "directory"]'
	echo "$j" | jq -e '.root.entries[3].name == "a.txt" and .root.entries[3].size == 6 and .root.entries[3].checksum_ok'
}

@test "the boot regions section tells a damaged main region and uses the backup" {
	poke 300 55
	run -0 "$KBOX" dump.exfat --json "$IMG"
	echo "$output" | jq -e '.boot_regions.in_use == "backup" and (.boot_regions.main.sound | not)'
	echo "$output" | jq -e '.boot_regions.main.problem | test("checksum")'
	run -0 "$KBOX" dump.exfat "$IMG"
	assert_line --regexp '^Main boot region:[[:space:]]+damaged: boot checksum sector does not match the region$'
	assert_line --regexp '^Boot region in use:[[:space:]]+backup$'
}

# ---- -p PATH ---------------------------------------------------------------

@test "-p: a file's entry set, fields and runs agree with where the set is on disk" {
	local off first size count
	read -r off first size count < <(loc entry /dir/sub/c.bin)
	run -0 "$KBOX" dump.exfat -p /dir/sub/c.bin --json "$IMG"
	echo "$output" | jq -e --argjson o "$off" --argjson f "$first" --argjson s "$size" --argjson n "$count" \
		'.offset == $o and .stream.first_cluster == $f and .stream.data_length == $s and .entries == $n'
	echo "$output" | jq -e '.name == "c.bin" and .kind == "file" and .file.set_checksum == .file.set_checksum_computed'
	echo "$output" | jq -e '.stream.name_hash == .stream.name_hash_computed and .stream.valid_data_length == .stream.data_length'
	echo "$output" | jq -e '.chain.end == "complete" and .chain.clusters == .chain.clusters_needed'
	echo "$output" | jq -e --argjson f "$first" '.chain.runs[0].first == $f and ([.chain.runs[].count] | add) == .chain.clusters'
	echo "$output" | jq -e '.bitmap.agrees and .bitmap.clusters_free == 0'
	# 300000 bytes in 4 KiB clusters.
	echo "$output" | jq -e '.chain.clusters == 74'
	run -0 "$KBOX" dump.exfat -p /dir/sub/c.bin "$IMG"
	assert_line --regexp '^Runs:[[:space:]]+'"$first"'-'"$((first + 73))"'$'
	assert_line --regexp '^Bitmap agrees:[[:space:]]+yes$'
	assert_line --regexp '^Name:[[:space:]]+c\.bin$'
	assert_line --regexp '^Create time:[[:space:]]+[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ UTC\+00:00 '
}

@test "-p: names are compared without regard to case; a directory lists its entries; / is the root" {
	run -0 "$KBOX" dump.exfat -p /DIR/SUB/C.BIN --json "$IMG"
	echo "$output" | jq -e '.name == "c.bin"'
	run -0 "$KBOX" dump.exfat -p //dir/ --json "$IMG"
	echo "$output" | jq -e '.kind == "directory" and (.entries | length) == 22'
	echo "$output" | jq -e '[.entries[] | select(.kind == "directory") | .name] == ["sub"]'
	run -0 "$KBOX" dump.exfat -p / --json "$IMG"
	echo "$output" | jq -e '.kind == "root" and .chain.clusters == 1 and .bitmap.agrees and (.entries | length) == 5'
}

@test "-p: a cluster the bitmap marks free is named" {
	local first bm
	first=$(loc entry /dir/b.bin | cut -d' ' -f2)
	bm=$(loc bitmap | cut -d' ' -f1)
	# Clear the bit of the file's third cluster (bit N is cluster N + 2).
	local bit=$((first + 2 - 2)) byte old
	byte=$((bm + bit / 8))
	old=$(od -An -tu1 -j "$byte" -N1 "$IMG" | tr -d ' ')
	poke "$byte" "$(printf '%02x' $((old & ~(1 << (bit % 8)))))"
	run -0 "$KBOX" dump.exfat -p /dir/b.bin --json "$IMG"
	echo "$output" | jq -e --argjson c "$((first + 2))" \
		'(.bitmap.agrees | not) and .bitmap.clusters_free == 1 and .bitmap.free_runs == [{"first": $c, "count": 1}]'
	run -0 "$KBOX" dump.exfat -p /dir/b.bin "$IMG"
	assert_line --regexp '^Runs marked free:[[:space:]]+'"$((first + 2))"'$'
	assert_line --regexp '^Bitmap agrees:[[:space:]]+no$'
}

@test "-p: a chain that loops, breaks or runs on is said so, its runs cut where it repeats" {
	local first
	first=$(loc entry /dir/b.bin | cut -d' ' -f2)
	# b.bin has 5 clusters; the fourth points back to the second.
	poke "$(loc fat $((first + 3)))" $(le32 $((first + 1)))
	run -0 "$KBOX" dump.exfat -p /dir/b.bin --json "$IMG"
	echo "$output" | jq -e --argjson f "$first" '.chain.end == "loop" and .chain.end_value == $f + 1'
	echo "$output" | jq -e --argjson f "$first" '.chain.runs == [{"first": $f, "count": 4}] and .chain.clusters_needed == 5'
	# A free entry in the middle.
	poke "$(loc fat $((first + 3)))" $(le32 0)
	run -0 "$KBOX" dump.exfat -p /dir/b.bin --json "$IMG"
	echo "$output" | jq -e '.chain.end == "free-cluster" and .chain.clusters == 4'
	# No end mark after the fifth: the FAT goes on.
	poke "$(loc fat $((first + 3)))" $(le32 $((first + 4)))
	poke "$(loc fat $((first + 4)))" $(le32 $((first + 100)))
	run -0 "$KBOX" dump.exfat -p /dir/b.bin --json "$IMG"
	echo "$output" | jq -e '.chain.end == "complete" and .chain.longer and .chain.clusters == 5'
}

@test "-p: a damaged entry set is dumped as it is" {
	local off
	off=$(loc entry /a.txt | cut -d' ' -f1)
	poke $((off + 2)) 12 34
	run -0 "$KBOX" dump.exfat -p /a.txt --json "$IMG"
	echo "$output" | jq -e '.file.set_checksum == 13330 and .file.set_checksum != .file.set_checksum_computed'
	run -0 "$KBOX" dump.exfat "$IMG"
	assert_output --partial "a.txt (SetChecksum does not match)"
}

# ---- safety and errors -----------------------------------------------------

@test "nothing is written: the image is unchanged, bit for bit" {
	local before
	before=$(sha256sum < "$IMG")
	run -0 "$KBOX" dump.exfat "$IMG"
	run -0 "$KBOX" dump.exfat --json -p /dir/sub/c.bin "$IMG"
	[ "$(sha256sum < "$IMG")" = "$before" ]
}

@test "a mounted volume is dumped with a warning" {
	require_root
	require_cmd mount.exfat-fuse
	mount_fuse "$IMG" ro
	run -0 --separate-stderr "$KBOX" dump.exfat "$LOOP"
	assert_equal "$stderr" "dump.exfat: warning: $LOOP is mounted on $MNT: the dump may show stale data"
	assert_line --regexp '^Cluster Count:[[:space:]]+15872$'
	umount_fuse
}

@test "bad input: one-line errors and documented exit codes" {
	head -c 1M /dev/zero > "$BATS_TEST_TMPDIR/zero.img"
	run -1 --separate-stderr "$KBOX" dump.exfat "$BATS_TEST_TMPDIR/zero.img"
	assert_equal "$stderr" "dump.exfat: $BATS_TEST_TMPDIR/zero.img: not an exFAT filesystem (no EXFAT signature in either boot sector)"
	run -1 --separate-stderr "$KBOX" dump.exfat "$BATS_TEST_TMPDIR/missing.img"
	assert_equal "$stderr" "dump.exfat: $BATS_TEST_TMPDIR/missing.img: No such file or directory"
	run -1 --separate-stderr "$KBOX" dump.exfat "$BATS_TEST_TMPDIR"
	assert_equal "$stderr" "dump.exfat: $BATS_TEST_TMPDIR: neither a block device nor a regular file"
	run -1 --separate-stderr "$KBOX" dump.exfat -p /dir/nope "$IMG"
	assert_equal "$stderr" "dump.exfat: $IMG: /dir/nope: no such file or directory"
	[ -z "$output" ]
	run -1 --separate-stderr "$KBOX" dump.exfat -p /a.txt/x "$IMG"
	assert_equal "$stderr" "dump.exfat: $IMG: /a.txt: not a directory"
	run -2 --separate-stderr "$KBOX" dump.exfat
	assert_equal "${stderr%%$'\n'*}" "dump.exfat: missing DEVICE"
	run -2 "$KBOX" dump.exfat --bogus "$IMG"
	run -2 "$KBOX" dump.exfat "$IMG" "$IMG"
	# Both boot sectors without their signature, still named exFAT.
	poke 510 00
	poke $((12 * 512 + 510)) 00
	run -1 --separate-stderr "$KBOX" dump.exfat "$IMG"
	[[ $stderr == "dump.exfat: $IMG: both boot regions are damaged"* ]]
}

# ---- untrusted volumes -----------------------------------------------------

@test "the corruption corpus: every volume dumps (text, JSON, -p /) without a crash or sanitizer report" {
	require_shared exfat-corpus
	local dir c bin img
	for dir in "$SHARED"/exfat-corpus/*/; do
		c=$(basename "$dir")
		rm -rf "$BATS_TEST_TMPDIR/c" && mkdir "$BATS_TEST_TMPDIR/c"
		tar -xf "$dir/exfat.img.tar.xz" -C "$BATS_TEST_TMPDIR/c"
		img=$BATS_TEST_TMPDIR/c/exfat.img
		for bin in $(builds); do
			for args in "" "--json" "-p / --json"; do
				run --separate-stderr "$bin" dump.exfat $args "$img"
				[ "$status" -eq 0 ] || fail "$c: dump.exfat $args exited $status: $stderr"
				[[ $stderr != *Sanitizer* && $stderr != *"runtime error"* ]] || fail "$c: $stderr"
				[ -z "$args" ] || echo "$output" | jq -e . >/dev/null || fail "$c: invalid JSON"
			done
		done
	done
}

@test "libFuzzer: a short run over mutated volumes and streams finds no crash, leak or hang" {
	require_cmd clang
	run make -s -C "$KBOX_ROOT/fuzz" build/exfat_dump_fuzz
	[ "$status" -eq 0 ] || skip "cannot build the fuzzer here: ${output##*$'\n'}"
	bash "$KBOX_ROOT/fuzz/seeds.sh" "$KBOX" "$BATS_TEST_TMPDIR/seeds"
	[ -s "$BATS_TEST_TMPDIR/seeds/exfat_dump/tree.stream" ]
	mkdir -p "$BATS_TEST_TMPDIR/corpus"
	run -0 "$KBOX_ROOT/fuzz/build/exfat_dump_fuzz" -max_total_time=8 -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$BATS_TEST_TMPDIR/corpus" "$BATS_TEST_TMPDIR/seeds/exfat_dump"
	assert_output --partial "Done"
	assert_output --partial "stat::number_of_executed_units"
}
