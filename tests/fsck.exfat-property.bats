#!/usr/bin/env bats
# fsck.exfat's repairs over seeded random bit flips in the metadata of a
# populated volume (tests/fsck.exfat-property.sh): a dozen seeds here,
# `make check-property SEEDS=500` for a long run.
load test_helper

@test "property: bit flips in metadata repair to a volume kbox and Debian find clean, every file not hit kept" {
	require_applet fsck.exfat
	require_applet mkfs.exfat
	run "$KBOX_ROOT/tests/fsck.exfat-property.sh" -s 1 -n 12
	[ "$status" -ne 77 ] || skip "${output##*$'\n'}"
	[ "$status" -eq 0 ] || fail "$output"
	assert_line --regexp '^seeds 12 \(from 1\), fsck.exfat -y exit codes'
	assert_line --regexp '^files compared after repairs: [1-9][0-9]*; failing seeds: 0$'
}
