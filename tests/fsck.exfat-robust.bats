#!/usr/bin/env bats
# fsck.exfat under the sanitizers: the corruption suite and the boot-region
# rebuild suite again with ./kbox-asan, and short libFuzzer runs over mutated
# volumes, undo files and saved kernel logs (`make fuzz` runs longer ones).
load test_helper

# asan_suite SUITE MIN: tests/SUITE passes with ./kbox-asan, at least MIN
# of its tests run.
asan_suite() {
	[ -x "$KBOX_ROOT/kbox-asan" ] || skip "kbox-asan not built (make asan)"
	[ "$KBOX" != "$KBOX_ROOT/kbox-asan" ] || skip "this run already uses kbox-asan"
	require_applet fsck.exfat
	run env KBOX="$KBOX_ROOT/kbox-asan" bats --tap "$KBOX_ROOT/tests/$1"
	echo "$output" | grep -E '^not ok' && fail "failures under kbox-asan"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^ok ')" -ge "$2" ]
}

@test "the corruption suite passes with the sanitizer build (kbox-asan)" {
	asan_suite fsck.exfat.bats 30
}

@test "the boot-region rebuild suite passes with the sanitizer build (kbox-asan)" {
	asan_suite fsck.exfat-boot.bats 8
}

# fuzz TARGET SECONDS: a short libFuzzer run of fuzz/build/TARGET from its seeds.
fuzz() {
	mkdir -p "$BATS_TEST_TMPDIR/corpus/$1"
	run -0 env FSCK_FUZZ_STRICT=1 "$KBOX_ROOT/fuzz/build/$1" -max_total_time="$2" -max_len=65536 \
		-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$BATS_TEST_TMPDIR/corpus/$1" \
		"$BATS_TEST_TMPDIR/seeds/${1%_fuzz}"
	assert_output --partial "Done"
	assert_output --partial "stat::number_of_executed_units"
}

@test "libFuzzer: short runs over mutated volumes, undo files and kernel logs find no crash, leak or hang" {
	require_cmd clang
	require_applet mkfs.exfat
	run make -s -C "$KBOX_ROOT/fuzz" all
	[ "$status" -eq 0 ] || skip "cannot build the fuzzers here: ${output##*$'\n'}"
	bash "$KBOX_ROOT/fuzz/seeds.sh" "$KBOX" "$BATS_TEST_TMPDIR/seeds"
	[ -s "$BATS_TEST_TMPDIR/seeds/undo/interrupted" ]
	fuzz fsck_exfat_fuzz 8
	fuzz undo_fuzz 4
	fuzz kmsg_fuzz 4
}
