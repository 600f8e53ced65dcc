#!/usr/bin/env bats
# libcommon's exFAT on-disk core (libcommon/exfat/, base/utf.c) through
# build/tests/exfat-core-test.
load test_helper

t() { "$KBOX_TESTBIN/exfat-core-test" "$@"; }
# bitmap_used BYTES:FIRST:COUNT, percent USED:COUNT: the table rows of
# outputs_are, split into the command's arguments.
bitmap_used() { t bitmap-used ${1//:/ }; }
percent() { t percent ${1//:/ }; }

@test "the default up-case table has the specification's size and TableChecksum" {
	t upcase-default > "$BATS_TEST_TMPDIR/up"
	run stat -c %s "$BATS_TEST_TMPDIR/up"
	assert_output 5836
	run t upcase-checksum "$BATS_TEST_TMPDIR/up"
	assert_success
	assert_output "E619D30D valid"
}

@test "the default up-case table is byte-identical to the one exfatprogs writes" {
	require_cmd mkfs.exfat
	img=$BATS_TEST_TMPDIR/ref.img
	truncate -s 8M "$img"
	mkfs.exfat "$img" >/dev/null
	# 8 MiB: 4 KiB clusters, heap at sector 4096, up-case table in cluster 3.
	dd if="$img" of="$BATS_TEST_TMPDIR/ref-up" bs=1 skip=$((4096 * 512 + 4096)) count=5836 status=none
	t upcase-default > "$BATS_TEST_TMPDIR/up"
	cmp "$BATS_TEST_TMPDIR/up" "$BATS_TEST_TMPDIR/ref-up"
}

@test "up-case mapping: ASCII, Latin-1, Greek final sigma, fullwidth, identity" {
	run t upcase-map 61 7A E9 FF 3C2 3C3 FF41 41 4E00
	assert_output "$(printf '%s\n' 0041 005A 00C9 0178 03A3 03A3 FF21 0041 4E00)"
}

@test "a malformed up-case table is rejected, not overrun" {
	printf '\x41' > "$BATS_TEST_TMPDIR/odd"
	run t upcase-checksum "$BATS_TEST_TMPDIR/odd"
	assert_failure
	assert_output --partial "odd"
	# An identity run past U+FFFF.
	printf '\xff\xff\xff\xff\xff\xff\x02\x00' > "$BATS_TEST_TMPDIR/run"
	run t upcase-checksum "$BATS_TEST_TMPDIR/run"
	assert_failure
	assert_output --partial "past U+FFFF"
}

@test "UTF-8 to UTF-16: BMP, astral (surrogate pair), round trip" {
	run t utf8 "héllo😀"
	assert_success
	assert_output "0068 00E9 006C 006C 006F D83D DE00"
}

@test "invalid UTF-8 is rejected with its offset: overlong, surrogate, truncated, > U+10FFFF" {
	run t utf8 $'ab\xc0\xaf';         assert_output "error EILSEQ units 2 offset 2"
	run t utf8 $'\xed\xa0\x80';       assert_output "error EILSEQ units 0 offset 0"
	run t utf8 $'x\xe2\x82';          assert_output "error EILSEQ units 1 offset 1"
	run t utf8 $'\xf4\x90\x80\x80';   assert_output "error EILSEQ units 0 offset 0"
	run t utf8 $'\xff';               assert_output "error EILSEQ units 0 offset 0"
}

@test "too long UTF-8 reports the units needed" {
	run t utf8 "$(printf 'é%.0s' $(seq 300))"
	assert_failure
	assert_output "error ENAMETOOLONG units 300 offset 0"
}

@test "name hash is computed on the up-cased name" {
	run t name-hash abc;  a=$output
	run t name-hash ABC;  assert_output "$a"
	run t name-hash abd;  refute_output "$a"
}

@test "geometry follows exfatprogs' layout for default and packed bitmaps" {
	run t geometry $((8 << 20)) 512 0
	assert_output "cluster 4096 fat_offset 2048 fat_length 16 heap 4096 clusters 1536 bitmap 2 upcase 3 root 5"
	run t geometry $((1 << 30)) 512 0 pack
	assert_output "cluster 32768 fat_offset 2048 fat_length 256 heap 4032 clusters 32705 bitmap 2 upcase 3 root 4"
	run t geometry $((40 << 30)) 512 0 pack
	assert_output "cluster 131072 fat_offset 2048 fat_length 2560 heap 5888 clusters 327657 bitmap 2 upcase 3 root 4"
}

@test "geometry refuses impossible combinations, naming the limit" {
	run t geometry $((64 << 40)) 4096 512
	assert_output --partial "smaller than the sector size 4096"
	run t geometry $((64 << 40)) 512 4096
	assert_output --partial "2^32-11"
	run t geometry $((1 << 19)) 512 0
	assert_output --partial "at least 1 MiB"
	run t geometry $((1 << 30)) 512 3000
	assert_output --partial "not a power of two"
	run t geometry $((1 << 30)) 8192 0
	assert_output --partial "sector size 8192"
}

@test "a small volume falls back from 1 MiB alignment rather than failing" {
	run t geometry $((2 << 20)) 512 0
	assert_success
	assert_output --partial "cluster 512"
}

@test "a bitmap's used clusters: bits at ClusterCount and past it are not counted" {
	# bytes (the first holds clusters FIRST..FIRST+7), FIRST, ClusterCount: used
	outputs_are bitmap_used <<-'END'
	ffff:0:16                  16
	ffff:0:12                  12
	ff0f:0:9                   9
	0180:0:16                  2
	0180:0:15                  1
	ff:8:12                    4
	ff:16:12                   0
	ffffffffffffffffff:0:72    72
	ffffffffffffffffff:0:65    65
	ffffffffffffffff01:0:70    65
	5500000000000000aa:64:136  8
	END
}

@test "PercentInUse is the share of clusters in use rounded down; 0xFF without clusters" {
	outputs_are percent <<-'END'
	0:100        0
	99:100       99
	1999:2000    99
	2000:2000    100
	1:3          33
	2:3          66
	1:0          255
	END
}
