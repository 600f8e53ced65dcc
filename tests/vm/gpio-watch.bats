#!/usr/bin/env bats
# gpio-watch against a real kernel's GPIO character devices (gpio-sim in the
# test VM). One boot runs every scenario of gpio-watch.d/scenarios.sh; each
# test here judges one scenario's output. Chips in the VM:
#   gpiochip0 "sim-alpha" 8 lines (0 foo, 3 bar, 5 shared), gpiochip1 4 lines
#   (0 baz, 2 shared), gpiochip2 70 unnamed lines.
load test_helper

setup_file() {
	require_applet gpio-watch
	# One virtual CPU: the harness kernel (6.1) races when a gpio-sim chip is
	# removed while a line of it is requested for edges (unplug_all): the
	# removal reads /proc/irq/N twice while gpio-watch, told of the removal,
	# frees that irq, and the kernel oopses in remove_proc_entry. On one CPU
	# the two cannot interleave there.
	vm_run --smp 1 --timeout 280 "$BATS_TEST_DIRNAME/gpio-watch.d/scenarios.sh"
	[ "$status" -eq 0 ] && [ "${lines[-1]}" = "scenarios done" ] || {
		echo "scenario script failed (status $status): $stderr" >&2
		return 1
	}
}

setup() { require_applet gpio-watch; }

# vm_result plus: the watcher's final "exit=N" line as $watch_exit.
result() {
	vm_result "$1"
	watch_exit=$(printf '%s\n' "$output" | sed -n 's/^exit=//p' | tail -n 1)
}

@test "-L lists every chip with label, line count, names, state" {
	result list_text
	assert_success
	assert_line 'gpiochip0 "sim-alpha" 8 lines'
	assert_line 'gpiochip1 "gpio-sim.1-node0" 4 lines'
	assert_line 'gpiochip2 "gpio-sim.2-node0" 70 lines'
	assert_line "$(printf '\t0\t"foo"\tunused\tinput')"
	assert_line "$(printf '\t1\t-\tunused\tinput')"
	assert_line "$(printf '\t69\t-\tunused\tinput')"
	[ "${#lines[@]}" -eq $((3 + 8 + 4 + 70)) ]
}

@test "-L --json: one valid object per chip, parsed by jq" {
	require_cmd jq
	result list_json
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	run jq -r '"\(.chip) \(.label) \(.num_lines) \(.lines | length) \(.lines[0].name) \(.lines[1].name) \(.lines[0].used) \(.lines[0].direction)"' <<<"$output"
	assert_line -n 0 "gpiochip0 sim-alpha 8 8 foo null false input"
	assert_line -n 1 "gpiochip1 gpio-sim.1-node0 4 4 baz null false input"
	assert_line -n 2 "gpiochip2 gpio-sim.2-node0 70 70 null null false input"
}

@test "-L with lines lists only those" {
	result list_some
	assert_success
	assert_equal "$output" "$(printf 'gpiochip0 "sim-alpha" 8 lines\n\t3\t"bar"\tunused\tinput\ngpiochip1 "gpio-sim.1-node0" 4 lines\n\t0\t"baz"\tunused\tinput')"
}

@test "-L shows another process's consumer, bias and active-low" {
	result list_used
	assert_success
	assert_line "$(printf '\t3\t"bar"\t"holder"\tinput bias=pull-up active-low')"
}

@test "requested, reconfigured and released are reported with consumer and attributes" {
	result info_kinds
	assert_equal "$watch_exit" 0
	assert_line -n 0 "requested|c1|input"
	assert_line -n 1 "reconfigured|c1|output drive=open-drain active-low"
	assert_line -n 2 "released|unused|output"
}

@test "default output: timestamp, chip, offset, quoted name, event, details" {
	result info_default
	assert_equal "$watch_exit" 0
	assert_line -n 0 --regexp '^[0-9]+\.[0-9]{9} gpiochip0 0 "foo" requested consumer="c1" input bias=pull-down$'
	assert_line -n 1 --regexp '^[0-9]+\.[0-9]{9} gpiochip0 0 "foo" released input$'
}

@test "--info=requested reports only requests" {
	result filter_requested
	assert_equal "$watch_exit" 0
	assert_equal "$(head -n 2 <<<"$output")" "$(printf 'requested one\nrequested two')"
}

@test "--info=released,reconfigured leaves out requests" {
	result filter_released_reconfigured
	assert_equal "$watch_exit" 0
	assert_equal "$(head -n 2 <<<"$output")" "$(printf 'reconfigured x\nreleased unused')"
}

@test "line names on two chips are watched together" {
	result two_chips
	assert_equal "$watch_exit" 0
	assert_equal "$(head -n 4 <<<"$output")" "$(printf 'gpiochip0 0 foo requested\ngpiochip0 0 foo released\ngpiochip1 0 baz requested\ngpiochip1 0 baz released')"
	assert_equal "$stderr" "gpio-watch: watching 2 lines on 2 chips"
}

@test "CHIP:OFFSET selects a line" {
	result chip_offset
	assert_line -n 0 "gpiochip1 2 shared requested"
	assert_equal "$watch_exit" 0
}

@test "-c CHIP with bare offsets" {
	result chip_option
	assert_line -n 0 "gpiochip0 2 unnamed requested"
	assert_line -n 1 "gpiochip0 2 unnamed released"
	assert_equal "$watch_exit" 0
}

@test "-c takes a chip label" {
	result chip_label
	assert_line -n 0 "gpiochip0 3 bar"
	assert_equal "$watch_exit" 0
}

@test "-c takes a chip number; /dev/gpiochipN:OFFSET works alongside" {
	result chip_number
	assert_line -n 0 "gpiochip1 0 baz"
	assert_line -n 1 "gpiochip1 0 baz"
	assert_equal "$watch_exit" 0
}

@test "events read in one wake-up from several chips come out in time order" {
	result time_order
	assert_line -n 0 "gpiochip1 0 requested"
	assert_line -n 1 "gpiochip1 0 released"
	assert_equal "$watch_exit" 0
}

@test "a name on several chips means the first chip's line" {
	result name_first_match
	assert_line -n 0 "gpiochip0 5 shared"
	assert_equal "$watch_exit" 0
}

@test "no LINE: every line of every chip" {
	result all_lines
	assert_line -n 0 "gpiochip2 69 requested"
	assert_line -n 1 "gpiochip2 69 released"
	assert_equal "$stderr" "gpio-watch: watching 82 lines on 3 chips"
}

@test "another gpio-watch's edge request shows up with its consumer (-C) and bias" {
	result kbox_requester
	assert_line -n 0 "requested edgewatch input bias=pull-down edge=both"
	assert_line -n 1 "released unused input"
	assert_equal "$watch_exit" 0
}

@test "-e both: rising and falling edges with seqno and line_seqno" {
	result edges_both
	assert_equal "$output" "$(printf '0 rising 1 1 1\n0 falling 2 2 2\n0 rising 1 3 3\n0 falling 2 4 4\nexit=0')"
}

@test "-e rising reports only rising edges" {
	result edges_rising
	assert_equal "$output" "$(printf 'rising 1\nrising 2\nexit=0')"
}

@test "-e falling reports only falling edges" {
	result edges_falling
	assert_equal "$output" "$(printf 'falling 1\nfalling 2\nexit=0')"
}

@test "seqno counts the request, line_seqno each line" {
	result seqno_two_lines
	assert_equal "$output" "$(printf 'foo rising 1 1\nbar rising 2 1\nfoo falling 3 2\nbar falling 4 2\nexit=0')"
}

@test "-p debounce: a short glitch is suppressed, a held level reported once" {
	result debounce
	assert_equal "$output" "$(printf 'rising input edge=both debounce=200000us\nexit=0')"
}

@test "without debounce the same glitch is reported" {
	result no_debounce
	assert_equal "$watch_exit" 0
	[ "${#lines[@]}" -ge 2 ]
}

@test "-b pull-up biases the line high and shows in the line info" {
	result bias_pull_up
	assert_line -n 0 "value=1"
	assert_line "$(printf '\t3\t"bar"\t"gpio-watch"\tinput bias=pull-up edge=both')"
	assert_equal "$watch_exit" 0
}

@test "-b pull-down biases the line low" {
	result bias_pull_down
	assert_line -n 0 "value=0"
	assert_equal "$watch_exit" 0
}

@test "-l active-low inverts edges" {
	result active_low
	assert_equal "$output" "$(printf 'falling input edge=both active-low\nrising input edge=both active-low\nexit=0')"
}

@test "-E realtime stamps edges with the wall clock" {
	result clock_realtime
	assert_line -n 0 --regexp '^[0-9]+\.[0-9]{9} input edge=both clock=realtime$'
	ts=${lines[0]%%.*}
	now=$(sed -n 's/^now=//p' <<<"$output")
	[ $((now - ts)) -ge 0 ] && [ $((now - ts)) -le 60 ]
}

@test "edges default to the monotonic clock" {
	result clock_monotonic
	ts=${lines[0]%%.*}
	up=$(sed -n 's/^uptime=//p' <<<"$output")
	up=${up%%.*}
	[ "$ts" -le "$up" ] && [ $((up - ts)) -le 60 ]
}

@test "-E hte without a timestamp engine: one-line error" {
	result clock_hte
	assert_failure 1
	assert_equal "$stderr" "gpio-watch: /dev/gpiochip0: requesting lines for edge events: Operation not supported"
}

@test "more than 64 lines are requested in several requests" {
	result many_lines
	assert_line -n 0 "gpiochip2 69 rising"
	assert_equal "$stderr" "gpio-watch: watching 70 lines on 1 chip, edges: both"
}

@test "--format: every specifier, %%, unknown ones as typed, a trailing %" {
	result format_info
	assert_line -n 0 --regexp '^\[0\|foo\|gpiochip0\|1\|requested\|fmt\|input bias=pull-up active-low\|%\|%x\|-\|-\|[0-9]+\.[0-9]{9}\] %$'
}

@test "--format on edges: %e %E %C %q %Q" {
	result format_edge
	assert_equal "$output" "$(printf '0 foo gpiochip0 1 rising fmtc 1 1\nexit=0')"
}

@test "--format %l of an unnamed line" {
	result format_unnamed
	assert_line -n 0 "1 unnamed"
}

@test "--utc prints ISO 8601 UTC timestamps" {
	result time_utc
	assert_line -n 0 --regexp '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{9}Z gpiochip0 0 "foo" requested consumer="gpio-line" input$'
	now=$(sed -n 's/^now=//p' <<<"$output")
	[[ ${lines[0]} == "${now:0:13}"* ]]
}

@test "%L local time (no Z) and %U UTC" {
	result time_local
	assert_line -n 0 --regexp '^[0-9-]{10}T[0-9:]{8}\.[0-9]{9} [0-9-]{10}T[0-9:]{8}\.[0-9]{9}Z$'
}

@test "--json info events parse with jq and carry the line's state" {
	require_cmd jq
	result json_info
	assert_equal "$watch_exit" 0
	run jq -r '"\(.type) \(.event) \(.chip) \(.label) \(.offset) \(.name) \(.consumer) \(.used) \(.direction) \(.active_low) \(.bias) \(.clock) \(.timestamp_ns > 0)"' < <(grep '^{' <<<"$output")
	assert_line -n 0 "info requested gpiochip0 sim-alpha 0 foo js true input false pull-up monotonic true"
	assert_line -n 1 "info reconfigured gpiochip0 sim-alpha 0 foo js true output true as-is monotonic true"
	assert_line -n 2 "info released gpiochip0 sim-alpha 0 foo null false output false as-is monotonic true"
}

@test "--json edge events carry seqno, line_seqno and --utc time" {
	require_cmd jq
	result json_edge
	run jq -r '"\(.type) \(.event) \(.offset) \(.seqno) \(.line_seqno) \(.time | test("Z$"))"' < <(grep '^{' <<<"$output")
	assert_line -n 0 "edge rising 0 1 1 true"
	assert_line -n 1 "edge falling 0 2 2 true"
}

@test "--json chip-removed event" {
	require_cmd jq
	result json_removed
	run jq -r '"\(.type) \(.event) \(.chip) \(.offset)"' < <(grep '^{' <<<"$output")
	assert_output --regexp '^chip chip-removed gpiochip[0-9]+ null$'
}

@test "-n N exits 0 after N events" {
	result num_events
	assert_equal "$output" "$(printf 'requested\nreconfigured\nexit=0')"
}

@test "--idle-timeout exits 0 when nothing happens" {
	result idle_timeout
	assert_equal "$output" "exit=0"
}

@test "-q prints nothing, -n still counts" {
	result quiet
	assert_equal "$output" "exit=0"
}

@test "--banner goes to stderr once every watch is in place" {
	result two_chips
	assert_equal "$stderr" "gpio-watch: watching 2 lines on 2 chips"
	refute_output --partial watching
}

@test "--exec gets the event in GPIO_* variables" {
	result exec_env
	assert_line -n 0 "exit=0"
	assert_line -n 1 --regexp '^gpiochip0\|sim-alpha\|0\|foo\|requested\|1\|envc\|1\|input\|pull-up\|1\|monotonic\|unset\|[0-9]+$'
	assert_line -n 2 --regexp '^gpiochip0\|sim-alpha\|0\|foo\|released\|2\|\|0\|input\|as-is\|0\|monotonic\|unset\|[0-9]+$'
}

@test "--exec on edges: GPIO_SEQNO, GPIO_LINE_SEQNO, GPIO_EDGE" {
	result exec_edge_env
	assert_equal "$output" "$(printf 'exit=0\nrising|1|1|rising|gpio-watch')"
}

@test "--exec runs a slow command for every event, in order, none dropped" {
	result exec_order
	assert_equal "$output" "$(printf 'exit=0\nrising 1\nfalling 2\nrising 3\nfalling 4\nrising 5\nfalling 6\nrising 7\nfalling 8\nrising 9\nfalling 10')"
}

@test "hot-unplug of one chip: chip-removed, the other chip still watched" {
	result unplug_one
	assert_equal "$output" "$(printf 'gpiochip1 - chip-removed\ngpiochip0 0 requested\ngpiochip0 0 released\nexit=0')"
}

@test "hot-unplug of every chip ends with exit 6 (with lines requested for edges)" {
	result unplug_all
	assert_line -n 0 --regexp '^gpiochip[0-9]+ - chip-removed$'
	assert_line -n 1 --regexp '^gpiochip[0-9]+ 0 rising$'
	assert_line -n 2 --regexp '^gpiochip[0-9]+ - chip-removed$'
	assert_equal "$watch_exit" 6
	[[ $stderr == *"gpio-watch: every watched chip was removed"* ]]
}

@test "a busy line is an error naming its consumer (exit 4)" {
	result busy
	assert_failure 4
	[[ $stderr == *'gpio-watch: line gpiochip0:0 ("foo") is busy (consumer "holder")'* ]]
}

@test "SIGTERM: exit 0 and the lines are free again" {
	result sigterm_releases
	assert_line "while watched: 3"
	assert_line "exit=0"
	assert_line "after: 0"
}

@test "SIGINT: exit 0 and the lines are free again" {
	result sigint_releases
	assert_line "exit=0"
	assert_line "after: 0"
}

@test "unknown line name: exit 3" {
	result unknown_line
	assert_failure 3
	assert_equal "$stderr" "gpio-watch: line not found: nosuchline"
}

@test "unknown chip: exit 3" {
	result unknown_chip
	assert_failure 3
	assert_equal "$stderr" "gpio-watch: chip not found: nosuchchip"
	result unknown_chip_colon
	assert_failure 3
	assert_equal "$stderr" "gpio-watch: chip not found: gpiochip9 (in gpiochip9:1)"
}

@test "offset out of range, or a bare offset without a chip: exit 3" {
	result bad_offset
	assert_failure 3
	assert_equal "$stderr" "gpio-watch: offset 8 out of range: gpiochip0 has 8 lines"
	result bare_offset
	assert_failure 3
	assert_equal "$stderr" "gpio-watch: line not found: 3 (an offset needs -c CHIP or CHIP:OFFSET)"
}

@test "no permission on /dev/gpiochipN: exit 5 naming the device" {
	result no_access
	assert_failure 5
	assert_equal "$stderr" "gpio-watch: /dev/gpiochip0: Permission denied"
}

@test "bash completion reads chip names, labels and line names from the listing" {
	require_cmd bash
	result list_text
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/listing"
	run bash -c '
		source "$KBOX_ROOT/completions/gpio-watch"
		# the listing the VM printed stands in for running gpio-watch -L here
		listing=$1; _gpio_watch_list() { cat "$listing"; }
		comp() { COMP_WORDS=("${@:2}"); COMP_CWORD=$(($# - 2)); COMPREPLY=(); _gpio_watch; echo "${COMPREPLY[*]}"; }
		comp "$1" gpio-watch -c ""
		comp "$1" gpio-watch -c sim
		comp "$1" gpio-watch ""
		comp "$1" gpio-watch -e both s' _ "$BATS_TEST_TMPDIR/listing"
	assert_success
	assert_line -n 0 "gpiochip0 sim-alpha gpiochip1 gpio-sim.1-node0 gpiochip2 gpio-sim.2-node0"
	assert_line -n 1 "sim-alpha"
	assert_line -n 2 "bar baz foo shared"
	assert_line -n 3 "shared"
}
