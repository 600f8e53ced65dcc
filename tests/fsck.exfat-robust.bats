#!/usr/bin/env bats
# fsck.exfat under the sanitizers: the whole corruption suite again with
# ./kbox-asan, and a short libFuzzer run over mutated volumes (`make fuzz`
# runs a longer one).
load test_helper

@test "the corruption suite passes with the sanitizer build (kbox-asan)" {
	[ -x "$KBOX_ROOT/kbox-asan" ] || skip "kbox-asan not built (make asan)"
	[ "$KBOX" != "$KBOX_ROOT/kbox-asan" ] || skip "this run already uses kbox-asan"
	require_applet fsck.exfat
	run env KBOX="$KBOX_ROOT/kbox-asan" bats --tap "$KBOX_ROOT/tests/fsck.exfat.bats"
	echo "$output" | grep -E '^not ok' && fail "failures under kbox-asan"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | grep -c '^ok ')" -ge 30 ]
}

@test "libFuzzer: a short run over mutated volumes finds no crash, leak or hang" {
	require_cmd clang
	require_applet mkfs.exfat
	run make -s -C "$KBOX_ROOT/fuzz" all
	[ "$status" -eq 0 ] || skip "cannot build the fuzzer here: ${output##*$'\n'}"
	bash "$KBOX_ROOT/fuzz/seeds.sh" "$KBOX" "$BATS_TEST_TMPDIR/seeds"
	mkdir "$BATS_TEST_TMPDIR/corpus"
	run -0 "$KBOX_ROOT/fuzz/build/fsck_exfat_fuzz" -max_total_time=8 -max_len=65536 -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 "$BATS_TEST_TMPDIR/corpus" "$BATS_TEST_TMPDIR/seeds"
	assert_output --partial "Done"
	assert_output --partial "stat::number_of_executed_units"
}
