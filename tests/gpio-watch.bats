#!/usr/bin/env bats
# gpio-watch on this host: option handling and the clean "no GPIO" error.
# Everything that needs GPIO chips runs in the VM: tests/vm/gpio-watch.bats.
load test_helper

setup() { require_applet gpio-watch; }

no_gpio_here() { ! compgen -G '/dev/gpiochip*' >/dev/null || skip "this host has GPIO chips"; }

@test "--help and -h anywhere print the usage, exit 0" {
	run kb gpio-watch --help
	assert_success
	assert_line --index 0 "Usage: gpio-watch [OPTIONS] [LINE...]"
	for opt in --chip --info --edges --bias --debounce --active-low --event-clock --consumer \
		--list --format --json --utc --localtime --num-events --idle-timeout --banner --quiet --exec; do
		assert_output --partial -- "$opt"
	done
	run kb gpio-watch -e both -h
	assert_success
	assert_line --index 0 "Usage: gpio-watch [OPTIONS] [LINE...]"
}

@test "--version and -V anywhere" {
	run kb gpio-watch -q -V
	assert_success
	assert_output --regexp '^gpio-watch \(kbox\) [0-9.]+$'
}

@test "bad options: one line naming the cause, exit 2" {
	while IFS='|' read -r args msg; do
		# shellcheck disable=SC2086
		run kb gpio-watch $args
		assert_failure 2
		assert_line --index 0 "gpio-watch: $msg"
		assert_line --index 1 "Try 'gpio-watch --help' for more information."
	done <<-'LIST'
	--bogus|unknown option '--bogus'
	-Z|unknown option '-Z'
	-e|option '-e' needs an argument
	--exec|option '--exec' needs an argument
	-e sideways|invalid edge: sideways
	-e none|invalid edge: none
	-e both -b up|invalid bias: up
	-e both -E wallclock|invalid event clock: wallclock
	-e both -p 5parsecs|invalid debounce period: 5parsecs
	-b pull-up|-b, -p, -l, -E and -C configure the edge request: they need -e
	-l|-b, -p, -l, -E and -C configure the edge request: they need -e
	-e both -C 0123456789abcdef0123456789abcdef|consumer name longer than 31 bytes: 0123456789abcdef0123456789abcdef
	--info=requested,bogus|invalid --info kind: bogus
	-n 0|invalid number of events: 0
	-n many|invalid number of events: many
	--idle-timeout 0|invalid idle timeout: 0
	--idle-timeout soon|invalid idle timeout: soon
	-F %o --json|--format and --json exclude each other
	--utc --localtime|--utc and --localtime exclude each other
	-L -e both|--list takes only -c, --json and lines
	LIST
}

@test "no GPIO chips: one-line error, exit 3" {
	no_gpio_here
	run kb gpio-watch
	assert_failure 3
	assert_output "gpio-watch: no GPIO chips found (no /dev/gpiochip*)"
	run kb gpio-watch -L --json
	assert_failure 3
	run kb gpio-watch -e both somename
	assert_failure 3
	assert_output "gpio-watch: no GPIO chips found (no /dev/gpiochip*)"
}

@test "the sanitizer build handles the same paths cleanly" {
	[ -x "$KBOX_ROOT/kbox-asan" ] || skip "kbox-asan not built (make asan)"
	"$KBOX_ROOT/kbox-asan" --list | grep -qx gpio-watch || skip "kbox-asan lacks gpio-watch"
	no_gpio_here
	run "$KBOX_ROOT/kbox-asan" gpio-watch -e both -p 1.5ms -F '%o %Q %%' --utc -n 3 -x true line
	assert_failure 3
	assert_output "gpio-watch: no GPIO chips found (no /dev/gpiochip*)"
}

@test "bash completion offers options and their values" {
	require_cmd bash
	run bash -c '
		source "$KBOX_ROOT/completions/gpio-watch"
		comp() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _gpio_watch; echo "${COMPREPLY[*]}"; }
		comp gpio-watch --ed
		comp gpio-watch -e ""
		comp gpio-watch -e both -b pull-
		comp gpio-watch --info requested,re
		comp gpio-watch -E h'
	assert_success
	assert_line -n 0 "--edges"
	assert_line -n 1 "rising falling both"
	assert_line -n 2 "pull-up pull-down"
	assert_line -n 3 "requested,requested requested,released requested,reconfigured"
	assert_line -n 4 "hte"
}
