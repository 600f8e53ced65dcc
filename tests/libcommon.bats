#!/usr/bin/env bats
# libcommon's parsers and JSON writer, through build/tests/libcommon-test.
load test_helper

t() { "$KBOX_TESTBIN/libcommon-test" "$@"; }

@test "sizes take K/M/G/T/P/E suffixes, with or without iB/B" {
	run t size 0;      assert_output 0
	run t size 4K;     assert_output 4096
	run t size 4k;     assert_output 4096
	run t size 1MiB;   assert_output 1048576
	run t size 3GB;    assert_output 3221225472
	run t size 2T;     assert_output 2199023255552
	run t size 1P;     assert_output 1125899906842624
	run t size 15E;    assert_output 17293822569102704640
	run t size 0x200;  assert_output 512
}

@test "sizes reject garbage and overflow" {
	for bad in "" K 1X 1.5G -1 " 1" "1 " 4KX 1iB 0x; do
		run t size "$bad"
		assert_failure 1
		assert_output "error EINVAL"
	done
	run t size 16E;                     assert_output "error ERANGE"
	run t size 18446744073709551616;    assert_output "error ERANGE"
	run t u64 18446744073709551615;     assert_output 18446744073709551615
}

@test "durations take ns/us/ms/s/m/h and fractions; bare numbers use the default unit" {
	run t duration 10;      assert_output 10000000
	run t duration 10us;    assert_output 10000
	run t duration 1.5s;    assert_output 1500000000
	run t duration 2m;      assert_output 120000000000
	run t duration 0.25ms;  assert_output 250000
	run t duration 5x;      assert_output "error EINVAL"
	run t duration 1.;      assert_output "error EINVAL"
	run t duration 99999999999999h; assert_output "error ERANGE"
}

@test "JSON strings escape quotes, backslashes and control characters" {
	run t json-string 'a"b\x5cc\x01\x1f\x7f'
	assert_success
	assert_output '{"s":"a\"b\\c\u0001\u001f\u007f","n":8}'
	run t json-string 'tab\x09nl\x0a'
	assert_output '{"s":"tab\tnl\n","n":7}'
}

@test "JSON strings keep valid UTF-8 and replace invalid bytes with U+FFFD" {
	run t json-string 'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80'
	assert_output '{"s":"café € 😀","n":14}'
	for bad in '\xff' '\xc0\xaf' '\xed\xa0\x80' '\xf4\x90\x80\x80' '\xe2\x82' '\x80'; do
		run t json-string "x${bad}y"
		assert_success
		echo "$output" | jq -e '.s | startswith("x") and endswith("y") and contains("\ufffd")'
		[[ "$output" == *'\ufffd'* ]]
	done
}
