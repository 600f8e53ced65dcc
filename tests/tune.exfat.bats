#!/usr/bin/env bats
# tune.exfat and exfatlabel: values set by kbox are read back by Debian's
# exfatprogs and blkid, and the other way round, on image files and loop
# devices; both fsck.exfat (kbox's and Debian's) find the volume clean after
# every change; an undo file rolls a change back byte for byte; bad input and
# volumes that must not be written get a clear error and stay untouched.
load test_helper

byte_at() { od -An -tx1 -j "$1" -N1 "$IMG" | tr -d ' '; }
sum() { sha256sum < "$1" | cut -d' ' -f1; }

setup_file() {
	require_applet tune.exfat 2>/dev/null || return 0
	TREE=$BATS_FILE_TMPDIR/tree
	mkdir -p "$TREE/dir"
	echo hello > "$TREE/a.txt"
	head -c 50000 /dev/urandom > "$TREE/dir/b.bin"
	"$KBOX" mkfs.exfat -q -L START --volume-serial 0x11223344 -d "$TREE" "$BATS_FILE_TMPDIR/base.img" 64M
}

setup() {
	require_applet tune.exfat
	require_applet exfatlabel
	IMG=$BATS_TEST_TMPDIR/t.img
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
}

teardown() {
	[ -n "${MNT:-}" ] && mountpoint -q "$MNT" && umount "$MNT"
	[ -n "${LOOP:-}" ] && losetup -d "$LOOP" 2>/dev/null
	return 0
}

# clean DEV: kbox's fsck.exfat and Debian's find it clean. Debian's 1.2.0
# does not know the volume GUID entry: it names it as an unknown entry (and
# still calls the volume clean); no other complaint is accepted.
clean() {
	run -0 "$KBOX" fsck.exfat -n "$1"
	assert_output --partial ": clean,"
	if command -v /usr/sbin/fsck.exfat >/dev/null; then
		run -0 /usr/sbin/fsck.exfat -n "$1"
		assert_output --partial ": clean."
		[ "$(grep -c 'ERROR' <<<"$output")" -eq "$(grep -c 'ERROR: /: unknown entry type 0xa0 ' <<<"$output")" ] ||
			fail "Debian's fsck.exfat complains: $output"
	fi
}

debian() { command -v "/usr/sbin/$1" >/dev/null || skip "needs Debian's exfatprogs ($1)"; }

# set_and_read_back DEV LABEL SERIAL: kbox sets both and a random GUID; the
# volume is clean and Debian's exfatlabel reads label and serial back.
set_and_read_back() {
	run -0 kb tune.exfat -L "$2" -I "$3" -U random "$1"
	clean "$1"
	run -0 /usr/sbin/exfatlabel "$1"
	assert_line "label: $2"
	run -0 /usr/sbin/exfatlabel -i "$1"
	assert_line "volume serial : $3"
}

# ---- kbox and Debian agree ----------------------------------------------

@test "kbox sets label and serial; Debian's tune.exfat, exfatlabel, dump.exfat and blkid read them back" {
	debian tune.exfat
	run -0 kb tune.exfat -l -i "$IMG"
	assert_output $'START\n0x11223344'
	for label in "Kbox Label" "Ünïcödé✓" "12345678901" "😀😀😀😀😀" "x"; do
		run -0 kb tune.exfat -L "$label" "$IMG"
		assert_output ""
		clean "$IMG"
		run -0 /usr/sbin/tune.exfat -l "$IMG"
		assert_line "label: $label"
		run -0 /usr/sbin/exfatlabel "$IMG"
		assert_line "label: $label"
		run -0 dump.exfat "$IMG"
		assert_line --regexp "^Volume label:[[:space:]]+$label\$"
		assert_equal "$(blkid -p -s LABEL -o value "$IMG")" "$label"
	done
	for serial in 0xdeadbeef 0 4294967295 305419896; do
		run -0 kb tune.exfat -I "$serial" "$IMG"
		clean "$IMG"
		run -0 /usr/sbin/tune.exfat -i "$IMG"
		assert_line "volume serial : $(printf '0x%x' "$serial")"
		hex=$(printf '%08X' "$serial")
		# blkid shows no UUID for a zero serial.
		[ "$serial" = 0 ] || assert_equal "$(blkid -p -s UUID -o value "$IMG")" "${hex:0:4}-${hex:4:4}"
	done
	# exfatlabel sets the same fields.
	run -0 kb exfatlabel "$IMG" "Via Label"
	run -0 kb exfatlabel -i "$IMG" 0xcafe0001
	clean "$IMG"
	run -0 /usr/sbin/exfatlabel "$IMG"
	assert_line "label: Via Label"
	run -0 /usr/sbin/exfatlabel -i "$IMG"
	assert_line "volume serial : 0xcafe0001"
	# An empty label empties it; the entry stays, with no characters.
	run -0 kb exfatlabel "$IMG" ""
	clean "$IMG"
	run -0 dump.exfat "$IMG"
	assert_line --regexp '^Volume label character count:[[:space:]]+0$'
	[ -z "$(blkid -p -s LABEL -o value "$IMG")" ]
}

@test "Debian sets label and serial; kbox's tune.exfat and exfatlabel read them back" {
	debian tune.exfat
	/usr/sbin/tune.exfat -L "Deb Label" "$IMG" >/dev/null
	/usr/sbin/tune.exfat -I 0x89abcdef "$IMG" >/dev/null
	run -0 kb tune.exfat -i -l "$IMG"
	assert_output $'0x89abcdef\nDeb Label'
	run -0 kb exfatlabel "$IMG"
	assert_output "Deb Label"
	run -0 kb exfatlabel -i "$IMG"
	assert_output "0x89abcdef"
	/usr/sbin/exfatlabel "$IMG" "Ωmega" >/dev/null
	/usr/sbin/exfatlabel -i "$IMG" 0x1 >/dev/null
	run -0 --separate-stderr kb tune.exfat --json "$IMG"
	echo "$output" | jq -e --arg d "$IMG" \
		'.device == $d and .label == "Ωmega" and .serial == 1 and .guid == null and .changed == [] and .root_grown == false'
	# And a volume made by Debian's mkfs.exfat, changed by kbox, read by Debian.
	rm -f "$IMG"; truncate -s 300M "$IMG"; /usr/sbin/mkfs.exfat -L deb "$IMG" >/dev/null
	run -0 kb tune.exfat -l "$IMG"
	assert_output "deb"
	set_and_read_back "$IMG" kbox 0x5eed
}

@test "the serial goes into both boot regions, each with a matching checksum sector" {
	run -0 kb tune.exfat -I 0x0badf00d "$IMG"
	for region in 0 12; do
		[ "$(od -An -tx4 -j $((region * 512 + 100)) -N4 "$IMG" | tr -d ' ')" = 0badf00d ]
	done
	# Main and backup regions equal (flags and PercentInUse aside, both clean here).
	cmp <(head -c 6144 "$IMG") <(tail -c +6145 "$IMG" | head -c 6144)
	# The backup alone is valid: kbox's fsck -b takes it and finds nothing to do.
	run -0 "$KBOX" fsck.exfat -n -b "$IMG"
	clean "$IMG"
}

@test "-U writes the volume GUID entry with its checksum; random makes version 4 GUIDs; clear removes it" {
	run -0 kb tune.exfat -u "$IMG"
	assert_output ""
	run -0 kb tune.exfat -U 01234567-89ab-cdef-0123-456789abcdef -u "$IMG"
	assert_output "01234567-89ab-cdef-0123-456789abcdef"
	clean "$IMG"
	# mkfs.exfat -U stores it the same way (first three fields little-endian).
	local at; at=$(loc type 0xa0)
	[ "$(od -An -tx1 -j $((at + 6)) -N4 "$IMG" | tr -d ' ')" = 67452301 ]
	"$KBOX" mkfs.exfat -q -U 01234567-89ab-cdef-0123-456789abcdef "$BATS_TEST_TMPDIR/m.img" 16M
	cmp <(dd if="$IMG" bs=1 skip="$at" count=32 status=none) \
		<(dd if="$BATS_TEST_TMPDIR/m.img" bs=1 skip="$("$KBOX_TESTBIN/exfat-locate" "$BATS_TEST_TMPDIR/m.img" type 0xa0)" count=32 status=none)
	# Hyphens are optional, upper case is fine, and the entry is rewritten in place.
	run -0 kb tune.exfat -U FEDCBA9876543210FEDCBA9876543210 -u "$IMG"
	assert_output "fedcba98-7654-3210-fedc-ba9876543210"
	[ "$(loc type 0xa0)" = "$at" ]
	clean "$IMG"
	local a b
	a=$(kb tune.exfat -U random -u "$IMG"); b=$(kb tune.exfat -U random -u "$IMG")
	[[ $a =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	[[ $b =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	[ "$a" != "$b" ]
	clean "$IMG"
	run -0 kb tune.exfat -U clear -u "$IMG"
	assert_output ""
	[ "$(byte_at "$at")" = 20 ]
	clean "$IMG"
	# A new GUID entry takes the first unused entry: the one just cleared.
	run -0 kb tune.exfat -U random "$IMG"
	[ "$(loc type 0xa0)" = "$at" ]
	run -0 --separate-stderr kb tune.exfat -U clear --json "$IMG"
	echo "$output" | jq -e '.guid == null and .changed == ["guid"]'
}

@test "a missing label entry is created in a free root entry; blkid and Debian read it" {
	debian exfatlabel
	local at; at=$(loc type 0x83)
	poke "$at" 03
	run -0 kb tune.exfat -l "$IMG"
	assert_output ""
	run -0 kb tune.exfat -L "" "$IMG"
	[ "$(byte_at "$at")" = 03 ]   # an empty label needs no entry
	run -0 kb tune.exfat -L NEWLABEL "$IMG"
	[ "$(loc type 0x83)" = "$at" ]
	clean "$IMG"
	assert_equal "$(blkid -p -s LABEL -o value "$IMG")" NEWLABEL
	run -0 /usr/sbin/exfatlabel "$IMG"
	assert_line "label: NEWLABEL"
}

# full_root_image [CLUSTERS]: IMG becomes a 16 MiB volume of 512-byte
# clusters whose root directory has every entry in use: 16 entries, the
# label, bitmap and up-case, three files of 3 entries (names up to 15
# characters) and one of 4 (16 to 30). The file "one" takes CLUSTERS
# clusters (default 1).
full_root_image() {
	local tree=$BATS_TEST_TMPDIR/full
	rm -rf "$tree" "$IMG"
	mkdir -p "$tree"
	for f in one two three a-name-of-20-chars; do echo "$f" > "$tree/$f"; done
	head -c $((${1:-1} * 512)) /dev/urandom > "$tree/one"
	"$KBOX" mkfs.exfat -q -c 512 -d "$tree" "$IMG" 16M
	[ -z "$(loc type 0)" ]   # no end-of-directory mark: every entry is in use
}

@test "a full root directory grows by a cluster (bitmap, FAT) for a new entry; both fsck find it clean" {
	full_root_image
	run -0 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	local used; used=$(jq .clusters_used <<<"$output")
	local before; before=$(sum "$IMG")
	run -0 --separate-stderr kb tune.exfat -v -z "$BATS_TEST_TMPDIR/undo" -U random --json "$IMG"
	[[ $stderr == *"the root directory grew by cluster "* ]]
	jq -e '.root_grown and .changed == ["guid"]' <<<"$output"
	clean "$IMG"
	run -0 --separate-stderr "$KBOX" fsck.exfat -n --json "$IMG"
	jq -e --argjson u "$used" '.clusters_used == $u + 1 and .files == 4' <<<"$output"
	# VolumeDirty was set for the change and is clear again.
	[ $(( $(od -An -tu2 -j 106 -N2 "$IMG") & 2 )) -eq 0 ]
	run -0 kb tune.exfat -u "$IMG"
	[ -n "$output" ]
	# The files are still there, read by Debian's tools.
	if command -v /usr/sbin/fsck.exfat >/dev/null; then
		run -0 /usr/sbin/fsck.exfat -n "$IMG"
		assert_output --partial "files 4"
	fi
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$IMG"
	[ "$(sum "$IMG")" = "$before" ]
}

@test "growing the root sets the main boot sector's PercentInUse from the bitmap; 0xFF on a dirty volume" {
	debian dump.exfat
	# The file "one" takes enough clusters that the new cluster of the root
	# crosses a whole percent: floor(used * 100 / total) goes up by one.
	full_root_image
	local total used percent
	read -r total used < <(clusters_in_use)
	percent=$((used * 100 / total + 1))
	full_root_image $(((percent * total + 99) / 100 - 1 - used + 1))
	read -r total used < <(clusters_in_use)
	[ $(((used + 1) * 100 / total)) -eq "$percent" ] && [ $((used * 100 / total)) -eq $((percent - 1)) ]
	[ "$(percent_in_use 0)" -eq $((percent - 1)) ]
	cp "$IMG" "$BATS_TEST_TMPDIR/before.img"
	run -0 --separate-stderr kb tune.exfat -U random --json "$IMG"
	jq -e '.root_grown' <<<"$output"
	read -r total used < <(clusters_in_use)
	[ "$(percent_in_use 0)" -eq $((used * 100 / total)) ]
	[ "$(percent_in_use 0)" -eq "$percent" ]
	# The backup's PercentInUse is stale by definition and left as it was.
	[ "$(percent_in_use 12)" -eq $((percent - 1)) ]
	clean "$IMG"
	# On a volume already marked dirty the bitmap may be half-way through
	# another change: the count is not known (0xFF), and the mark stays.
	cp "$BATS_TEST_TMPDIR/before.img" "$IMG"
	poke 106 "$(printf %02x $(( $(od -An -tu1 -j 106 -N1 "$IMG") | 2 )))"
	run -0 --separate-stderr kb tune.exfat -U random --json "$IMG"
	jq -e '.root_grown' <<<"$output"
	[ "$(percent_in_use 0)" -eq 255 ]
	[ $(( $(od -An -tu2 -j 106 -N2 "$IMG") & 2 )) -eq 2 ]
	run -0 "$KBOX" fsck.exfat -y "$IMG"
	clean "$IMG"
}

@test "values print one a line, in the order asked, after the change" {
	# No GUID: -u prints an empty line, so the lines stay in step.
	diff <(kb tune.exfat -i -L After -l -u -I 7 "$IMG" 2>&1) <(printf '0x00000007\nAfter\n\n')
	run -0 --separate-stderr kb tune.exfat -v -L Again "$IMG"
	assert_equal "$output" ""
	assert_equal "$stderr" "tune.exfat: $IMG: label 'After' -> 'Again'"
}

# ---- undo files ----------------------------------------------------------

@test "undo: -z then fsck.exfat --rollback restores the image byte for byte" {
	local before; before=$(sum "$IMG")
	run -0 kb tune.exfat -z "$BATS_TEST_TMPDIR/undo" -L Changed -I 0x42 -U random "$IMG"
	[ "$(sum "$IMG")" != "$before" ]
	clean "$IMG"
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$IMG"
	assert_output --partial "restored"
	[ "$(sum "$IMG")" = "$before" ]
	run -0 kb tune.exfat -l -i "$IMG"
	assert_output $'START\n0x11223344'
	# The undo file may not be the image, nor need there be one without a change.
	run -2 kb tune.exfat -z "$BATS_TEST_TMPDIR/undo" -l "$IMG"
	assert_output --partial "-z goes with a change"
	run -1 kb tune.exfat -z "$IMG" -L X "$IMG"
	assert_output "tune.exfat: $IMG: the undo file would be $IMG itself"
	[ "$(sum "$IMG")" = "$before" ]
}

# ---- refusals: clear errors, nothing written -------------------------------

@test "bad labels, GUIDs and serials: one-line errors, exit 2, the image untouched" {
	local before; before=$(sum "$IMG")
	run -2 kb tune.exfat -L 123456789012 "$IMG"
	assert_output "tune.exfat: volume label '123456789012' is 12 UTF-16 units long; exFAT allows at most 11"
	run -2 kb tune.exfat -L "😀😀😀😀😀😀" "$IMG"
	assert_output --partial "is 12 UTF-16 units long"
	run -2 kb exfatlabel "$IMG" 123456789012
	assert_output "exfatlabel: volume label '123456789012' is 12 UTF-16 units long; exFAT allows at most 11"
	local c code
	for c in '"' '*' '/' ':' '<' '>' '?' '\' '|' $'\t' $'\x1f'; do
		code=$(printf 'U+%04X' "'$c")
		run -2 kb tune.exfat -L "a${c}b" "$IMG"
		assert_output "tune.exfat: volume label contains a character exFAT forbids ($code)"
		run -2 kb exfatlabel "$IMG" "a${c}b"
		assert_output "exfatlabel: volume label contains a character exFAT forbids ($code)"
	done
	run -2 kb tune.exfat -L $'ab\xff' "$IMG"
	assert_output "tune.exfat: volume label is not valid UTF-8 (byte 2)"
	for g in not-a-guid 0123456789abcdef0123456789abcde 0123456789abcdef0123456789abcdef00 x1234567-89ab-cdef-0123-456789abcdef ""; do
		run -2 kb tune.exfat -U "$g" "$IMG"
		assert_output "tune.exfat: invalid volume GUID '$g' (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, random or clear)"
	done
	for s in 0x100000000 4294967296 -1 abc 12abc ""; do
		run -2 kb tune.exfat -I "$s" "$IMG"
		assert_output "tune.exfat: invalid volume serial '$s' (0 to 0xffffffff, decimal or 0x hexadecimal)"
		[[ $s == -* ]] && continue   # an option to exfatlabel
		run -2 kb exfatlabel -i "$IMG" "$s"
		assert_output --partial "invalid volume serial '$s'"
	done
	# A bad value anywhere in the command: nothing else is written either.
	run -2 kb tune.exfat -I 5 -L 'bad:' "$IMG"
	[ "$(sum "$IMG")" = "$before" ]
}

@test "usage errors exit 2" {
	run -2 kb tune.exfat "$IMG"
	assert_line --index 0 "tune.exfat: nothing to do: give -l, -L, -i, -I, -u, -U or --json"
	run -2 kb tune.exfat -l
	assert_line --index 0 "tune.exfat: missing DEVICE or FILE"
	run -2 kb tune.exfat -l "$IMG" extra
	run -2 kb exfatlabel
	run -2 kb exfatlabel "$IMG" a b
	assert_line --index 0 "exfatlabel: unexpected argument 'b'"
	run -2 kb exfatlabel -x "$IMG"
}

@test "not exFAT, missing, a directory: exit 1 with the reason" {
	echo "just text" > "$BATS_TEST_TMPDIR/text"
	local before; before=$(sum "$BATS_TEST_TMPDIR/text")
	run -1 kb tune.exfat -L x "$BATS_TEST_TMPDIR/text"
	assert_output "tune.exfat: $BATS_TEST_TMPDIR/text: not an exFAT filesystem (10 bytes: too small for a boot sector)"
	[ "$(sum "$BATS_TEST_TMPDIR/text")" = "$before" ]
	truncate -s 16M "$BATS_TEST_TMPDIR/zero"
	run -1 kb exfatlabel "$BATS_TEST_TMPDIR/zero"
	assert_output "exfatlabel: $BATS_TEST_TMPDIR/zero: not an exFAT filesystem (no \"EXFAT\" signature in its boot sector)"
	mkfs.ext4 -q -F "$BATS_TEST_TMPDIR/zero" 2>/dev/null || true
	before=$(sum "$BATS_TEST_TMPDIR/zero")
	run -1 kb tune.exfat -I 1 "$BATS_TEST_TMPDIR/zero"
	assert_output --partial "not an exFAT filesystem"
	[ "$(sum "$BATS_TEST_TMPDIR/zero")" = "$before" ]
	run -1 kb tune.exfat -l "$BATS_TEST_TMPDIR/missing"
	assert_output "tune.exfat: $BATS_TEST_TMPDIR/missing: No such file or directory"
	run -1 kb exfatlabel "$BATS_TEST_TMPDIR"
	assert_output "exfatlabel: $BATS_TEST_TMPDIR is neither a block device nor a regular file"
}

@test "damaged volumes are read where possible and never changed; the error names fsck.exfat" {
	local before
	# A backup boot region that differs from the main one: readable, not changed.
	poke $((12 * 512 + 100)) 01
	before=$(sum "$IMG")
	run -0 kb tune.exfat -l "$IMG"
	run -1 kb tune.exfat -L x "$IMG"
	assert_output "tune.exfat: $IMG: the backup boot region is damaged (boot checksum sector does not match the region); fsck.exfat repairs it"
	[ "$(sum "$IMG")" = "$before" ]
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
	# A damaged main boot region: not read at all.
	poke 200 aa
	before=$(sum "$IMG")
	run -1 kb exfatlabel -i "$IMG" 5
	assert_output "exfatlabel: $IMG: the main boot region is damaged (boot checksum sector does not match the region); fsck.exfat repairs it"
	[ "$(sum "$IMG")" = "$before" ]
	cp --sparse=always "$BATS_FILE_TMPDIR/base.img" "$IMG"
	# The root directory's chain: a free FAT entry where its end mark belongs.
	local root; root=$(od -An -tu4 -j 96 -N4 "$IMG" | tr -d ' ')
	poke "$(loc fat "$root")" 00 00 00 00
	before=$(sum "$IMG")
	run -1 kb tune.exfat -U random "$IMG"
	assert_output "tune.exfat: $IMG: the root directory's cluster chain is broken (cluster 0x0); fsck.exfat repairs it"
	[ "$(sum "$IMG")" = "$before" ]
}

@test "an image locked by another program: a change is refused, printing warns" {
	require_cmd flock
	local before; before=$(sum "$IMG")
	( exec 9<>"$IMG"; flock -x 9; exec sleep 60 ) 3>&- &
	local holder=$!
	locked() { ! flock -n -s "$IMG" true; }
	wait_until 10 "the holder to lock $IMG" locked
	run kb tune.exfat -L x "$IMG"
	local set_status=$status set_out=$output
	run --separate-stderr kb tune.exfat -l "$IMG"
	local get_status=$status get_out=$output get_err=$stderr
	kill "$holder"; wait "$holder" 2>/dev/null || true
	[ "$set_status" -eq 1 ]
	[ "$set_out" = "tune.exfat: $IMG is being checked, repaired or changed by another program; refusing to change it" ]
	[ "$get_status" -eq 0 ] && [ "$get_out" = START ]
	[ "$get_err" = "tune.exfat: warning: $IMG is being changed by another program: what was read may be half-way" ]
	[ "$(sum "$IMG")" = "$before" ]
}

# ---- loop devices --------------------------------------------------------

@test "loop device: kbox sets, Debian and blkid read back; Debian sets, kbox reads" {
	require_root
	debian exfatlabel
	LOOP=$(losetup -f --show "$IMG")
	set_and_read_back "$LOOP" LoopLabel 0xabcdef01
	assert_equal "$(blkid -p -s LABEL -o value "$LOOP")" LoopLabel
	assert_equal "$(blkid -p -s UUID -o value "$LOOP")" ABCD-EF01
	/usr/sbin/exfatlabel "$LOOP" FromDebian >/dev/null
	/usr/sbin/exfatlabel -i "$LOOP" 0x600d >/dev/null
	run -0 kb exfatlabel "$LOOP"
	assert_output FromDebian
	run -0 kb tune.exfat -i "$LOOP"
	assert_output 0x0000600d
	local before; before=$(sum "$LOOP")
	run -0 kb tune.exfat -z "$BATS_TEST_TMPDIR/undo" -L Undo "$LOOP"
	run -0 "$KBOX" fsck.exfat --rollback "$BATS_TEST_TMPDIR/undo" "$LOOP"
	[ "$(sum "$LOOP")" = "$before" ]
	# The image behind the loop device is not a valid undo file either.
	run -1 kb tune.exfat -z "$IMG" -L x "$LOOP"
	assert_output --partial "the undo file backs $LOOP"
	[ "$(sum "$LOOP")" = "$before" ]
}

@test "a read-only loop device: a change is refused (exit 1), untouched; printing works" {
	require_root
	LOOP=$(losetup -r -f --show "$IMG")
	local before; before=$(sum "$LOOP")
	run -1 kb tune.exfat -L x "$LOOP"
	assert_output "tune.exfat: $LOOP is read-only; nothing can be written to it"
	run -1 kb exfatlabel -i "$LOOP" 1
	assert_output "exfatlabel: $LOOP is read-only; nothing can be written to it"
	run -0 kb tune.exfat -l -i "$LOOP"
	assert_output $'START\n0x11223344'
	[ "$(sum "$LOOP")" = "$before" ]
}

@test "a filesystem mounted through exfat-fuse is not changed (device or image); printing works" {
	require_root
	require_cmd mount.exfat-fuse
	[ -c /dev/fuse ] || skip "needs /dev/fuse"
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	LOOP=$(losetup -f --show "$IMG")
	mount.exfat-fuse "$LOOP" "$MNT" >/dev/null 2>&1 || fail "exfat-fuse mount failed"
	# exfat-fuse itself writes at mount and unmount (VolumeDirty): compare while mounted.
	sync
	local before; before=$(sum "$IMG")
	run -1 kb tune.exfat -L x "$LOOP"
	assert_output "tune.exfat: $LOOP is mounted on $MNT; refusing to change it (unmount it first)"
	run -1 kb exfatlabel "$IMG" x
	assert_output "exfatlabel: $IMG is mounted on $MNT; refusing to change it (unmount it first)"
	run -1 kb tune.exfat -U random "$IMG"
	run -0 kb exfatlabel "$LOOP"
	assert_output START
	sync
	[ "$(sum "$IMG")" = "$before" ]
	umount "$MNT"
	# exfat-fuse may hold the device for a moment after umount: the image is free.
	run -0 kb tune.exfat -L Unmounted "$IMG"
	clean "$IMG"
}

# ---- untrusted images ------------------------------------------------------

@test "the exfatprogs corruption corpus: reading and changing never crash (kbox-asan when built)" {
	require_shared exfat-corpus
	local bin=$KBOX dir img n=0
	[ -x "$KBOX_ROOT/kbox-asan" ] && bin=$KBOX_ROOT/kbox-asan
	for dir in "$SHARED"/exfat-corpus/*/; do
		[ -f "$dir/exfat.img.tar.xz" ] || continue
		rm -rf "$BATS_TEST_TMPDIR/c" && mkdir "$BATS_TEST_TMPDIR/c"
		tar -xf "$dir/exfat.img.tar.xz" -C "$BATS_TEST_TMPDIR/c"
		img=$BATS_TEST_TMPDIR/c/exfat.img
		for args in "--json" "-L Corpus -I 7 -U random" "-U clear"; do
			# shellcheck disable=SC2086
			run "$bin" tune.exfat $args "$img"
			[ "$status" -eq 0 ] || [ "$status" -eq 1 ] || fail "$dir: tune.exfat $args exited $status: $output"
			[[ $output != *Sanitizer* && $output != *"runtime error"* ]] || fail "$dir: $output"
			[ "$status" -eq 0 ] || [ "$(grep -c . <<<"$output")" -eq 1 ] || fail "$dir: not one line: $output"
		done
		n=$((n + 1))
	done
	[ "$n" -gt 0 ]
}

@test "libFuzzer: a short run over mutated volumes finds no crash, no clean volume made unclean, no inexact rollback" {
	require_cmd clang
	require_applet mkfs.exfat
	run make -s -C "$KBOX_ROOT/fuzz" build/exfat_label_fuzz
	[ "$status" -eq 0 ] || skip "cannot build the fuzzer here: ${output##*$'\n'}"
	bash "$KBOX_ROOT/fuzz/seeds.sh" "$KBOX" "$BATS_TEST_TMPDIR/seeds"
	[ -s "$BATS_TEST_TMPDIR/seeds/exfat_label/full" ]
	mkdir -p "$BATS_TEST_TMPDIR/corpus"
	run -0 env FSCK_FUZZ_STRICT=1 "$KBOX_ROOT/fuzz/build/exfat_label_fuzz" -max_total_time=8 -max_len=65536 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$BATS_TEST_TMPDIR/corpus" \
		"$BATS_TEST_TMPDIR/seeds/exfat_label"
	assert_output --partial "Done"
	assert_output --partial "stat::number_of_executed_units"
}
