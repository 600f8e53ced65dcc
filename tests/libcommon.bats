#!/usr/bin/env bats
# libcommon's parsers and JSON writer, through build/tests/libcommon-test.
load test_helper

t() { "$KBOX_TESTBIN/libcommon-test" "$@"; }

@test "sizes take K/M/G/T/P/E suffixes, with or without iB/B" {
	outputs_are t size <<-'END'
	0      0
	4K     4096
	4k     4096
	1MiB   1048576
	3GB    3221225472
	2T     2199023255552
	1P     1125899906842624
	15E    17293822569102704640
	0x200  512
	END
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
	outputs_are t duration <<-'END'
	10               10000000
	10us             10000
	1.5s             1500000000
	2m               120000000000
	0.25ms           250000
	5x               error EINVAL
	1.               error EINVAL
	99999999999999h  error ERANGE
	END
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
