# gpio-watch scenarios, run inside the test VM (busybox sh) by
# tests/vm/gpio-watch.bats; each `vm_case NAME FUNCTION` leaves NAME.out,
# NAME.err and NAME.status for the host to judge. Times below are pauses that
# order events, never measurements.
#
# Chips (gpio-sim): gpiochip0 "sim-alpha" 8 lines: 0 foo, 3 bar, 5 shared
#                   gpiochip1 4 lines: 0 baz, 2 shared
#                   gpiochip2 70 lines, unnamed

# Thin shorthands over tests/vm/gpiosim.sh for one-bank devices.
sim_chip() { # DEV NUM_LINES [LABEL] [OFFSET=LINE_NAME]...
	_d=$1
	gpiosim_new "$1" && gpiosim_bank "$1" bank0 "$2" "$3" || return 1
	shift 3
	for _spec; do gpiosim_name "$_d" bank0 "${_spec%%=*}" "${_spec#*=}" || return 1; done
	gpiosim_live "$_d" >/dev/null
}
sim_pull() { gpiosim_pull "$1" bank0 "$2" "${3#pull-}"; }
sim_value() { gpiosim_value "$1" bank0 "$2"; }
sim_pull_attr() { echo "$(_gpiosim_line_dir "$1" bank0 "$2")/pull"; }

# watch NAME ARGS...: gpio-watch --banner ARGS in the background, output in
# /tmp/NAME.{out,err}; returns once its banner says every watch is in place.
watch() {
	_w=$1
	shift
	gpio-watch --banner "$@" >"/tmp/$_w.out" 2>"/tmp/$_w.err" &
	W=$!
	wait_until 20 "gpio-watch $* to print its banner" banner_or_end "$_w" || return 1
	grep -q "watching" "/tmp/$_w.err" ||
		{ echo "gpio-watch $* ended before watching: $(cat "/tmp/$_w.err")" >&2; return 1; }
}
banner_or_end() { grep -q "watching" "/tmp/$1.err" 2>/dev/null || ! kill -0 "$W" 2>/dev/null; }

# wait_lines FILE N: until FILE has N lines (bounded).
wait_lines() { wait_until 20 "$2 lines in $1" has_lines "$1" "$2"; }
has_lines() { [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }

# done_watch NAME [SIGNAL]: (signal and) wait for the watcher (bounded), then
# print its stdout, "exit=STATUS", and its stderr on stderr.
done_watch() {
	[ -n "${2-}" ] && kill "-$2" "$W"
	(sleep 15 && kill -KILL "$W") 2>/dev/null &
	_k=$!
	wait "$W"
	_rc=$?
	kill "$_k" 2>/dev/null
	cat "/tmp/$1.out"
	echo "exit=$_rc"
	cat "/tmp/$1.err" >&2
}

hold() { gpio-line hold "$@"; }
# Puts a line back to low whatever a request's bias did to it.
low() { sim_pull "$1" "$2" pull-up; sim_pull "$1" "$2" pull-down; }

# ---- chips and listing ---------------------------------------------------

sim_chip alpha 8 sim-alpha 0=foo 3=bar 5=shared
sim_chip beta 4 "" 0=baz 2=shared
sim_chip gamma 70 ""

list_text() { gpio-watch -L; }
list_json() { gpio-watch -L --json; }
list_some() { gpio-watch -L baz gpiochip0:3; }
list_used() {
	gpio-line hold /dev/gpiochip0 3 consumer=holder request=in+pull-up+active-low echo=held wait >/tmp/h.out &
	_h=$!
	wait_lines /tmp/h.out 1
	gpio-watch -L -c gpiochip0 3
	_rc=$?
	kill "$_h"
	wait "$_h"
	return $_rc
}

# ---- info events -----------------------------------------------------------

info_kinds() {
	watch ik -n 3 -F '%E|%C|%a' foo || return 99
	hold /dev/gpiochip0 0 consumer=c1 request=in sleep=50 config=out+active-low+open-drain sleep=50 release
	done_watch ik
}
info_default() {
	watch id -n 2 foo || return 99
	hold /dev/gpiochip0 0 consumer=c1 request=in+pull-down release
	done_watch id
}
filter_requested() {
	watch fr --info=requested -n 2 -F '%E %C' foo || return 99
	hold /dev/gpiochip0 0 consumer=one request=in release consumer=two request=in release
	done_watch fr
}
filter_released_reconfigured() {
	watch frr --info=released,reconfigured -n 2 -F '%E %C' foo || return 99
	hold /dev/gpiochip0 0 consumer=x request=in config=out release
	done_watch frr
}
two_chips() {
	watch tc -n 4 -F '%c %o %l %E' foo baz || return 99
	hold /dev/gpiochip0 0 request=in release
	hold /dev/gpiochip1 0 request=in release
	done_watch tc
}
chip_offset() {
	watch co -n 1 -F '%c %o %l %E' gpiochip1:2 || return 99
	hold /dev/gpiochip1 2 request=in
	done_watch co
}
chip_option() {
	watch cop -n 2 -F '%c %o %l %E' -c gpiochip0 1 2 || return 99
	hold /dev/gpiochip0 2 request=in
	hold /dev/gpiochip0 1 request=in
	done_watch cop
}
chip_label() {
	watch cl -n 1 -F '%c %o %l' -c sim-alpha 3 || return 99
	hold /dev/gpiochip0 3 request=in
	done_watch cl
}
chip_number() {
	watch cn -n 2 -F '%c %o %l' -c 1 0 /dev/gpiochip0:5 || return 99
	hold /dev/gpiochip1 0 request=in
	hold /dev/gpiochip0 5 request=in
	done_watch cn
}
time_order() {
	# The watcher is stopped while two chips report, so one wake-up finds
	# both fds ready: the later chip's event happened first and comes first.
	watch to -n 2 -F '%c %o %E' -c 1 0 /dev/gpiochip0:5 || return 99
	kill -STOP "$W"
	hold /dev/gpiochip1 0 request=in
	hold /dev/gpiochip0 5 request=in
	kill -CONT "$W"
	done_watch to
}
name_first_match() {
	watch nf -n 1 -F '%c %o %l' shared || return 99
	hold /dev/gpiochip1 2 request=in
	hold /dev/gpiochip0 5 request=in
	done_watch nf
}
all_lines() {
	watch al -n 2 -F '%c %o %E' || return 99
	hold /dev/gpiochip2 69 request=in
	hold /dev/gpiochip1 3 request=in
	done_watch al
}
kbox_requester() {
	watch kr -n 2 -F '%E %C %a' foo || return 99
	_first=$W
	watch krb -e both -C edgewatch -b pull-down foo || return 99
	done_watch krb TERM >/dev/null
	W=$_first
	done_watch kr
}

# ---- edges -----------------------------------------------------------------

# foo_up_down_twice: foo rises and falls twice, a pause after each change.
foo_up_down_twice() {
	for p in pull-up pull-down pull-up pull-down; do sim_pull alpha 0 $p; sleep 0.05; done
}
edges_both() {
	low alpha 0
	watch eb -e both -n 4 -F '%o %E %e %q %Q' foo || return 99
	foo_up_down_twice
	done_watch eb
}
# edges_one_kind NAME EDGE: gpio-watch -e EDGE on foo while it rises and falls twice.
edges_one_kind() {
	low alpha 0
	watch "$1" -e "$2" -n 2 -F '%E %Q' foo || return 99
	foo_up_down_twice
	done_watch "$1"
}
edges_rising() { edges_one_kind er rising; }
edges_falling() { edges_one_kind ef falling; }
seqno_two_lines() {
	low alpha 0
	low alpha 3
	watch sq -e both -n 4 -F '%l %E %q %Q' foo bar || return 99
	sim_pull alpha 0 pull-up; sleep 0.05
	sim_pull alpha 3 pull-up; sleep 0.05
	sim_pull alpha 0 pull-down; sleep 0.05
	sim_pull alpha 3 pull-down; sleep 0.05
	done_watch sq
}
# A glitch much shorter than the debounce period is not reported; a level
# held longer is, once. The watch ends on SIGINT once the held level is seen
# (an idle timeout would race the slow steps of a loaded VM).
debounce() {
	low alpha 0
	watch db -e both -p 200ms -F '%E %a' foo || return 99
	gpio-line toggle "$(sim_pull_attr alpha 0)" 2
	sleep 0.6
	sim_pull alpha 0 pull-up
	wait_lines /tmp/db.out 1
	sleep 0.4
	done_watch db INT
	sim_pull alpha 0 pull-down
}
no_debounce() {
	low alpha 0
	watch ndb -e both -F '%E' foo || return 99
	gpio-line toggle "$(sim_pull_attr alpha 0)" 2
	wait_lines /tmp/ndb.out 2
	done_watch ndb INT
}
bias_pull_up() {
	low alpha 3
	watch bu -e both -b pull-up bar || return 99
	echo "value=$(sim_value alpha 3)"
	gpio-watch -L -c 0 3
	done_watch bu TERM
}
bias_pull_down() {
	watch bd -e both -b pull-down bar || return 99
	echo "value=$(sim_value alpha 3)"
	done_watch bd TERM
}
active_low() {
	low alpha 0
	watch alw -e both -l -n 2 -F '%E %a' foo || return 99
	sim_pull alpha 0 pull-up; sleep 0.05
	sim_pull alpha 0 pull-down
	done_watch alw
}
clock_realtime() {
	low alpha 0
	watch crt -e both -E realtime -n 1 -F '%S %a' foo || return 99
	sim_pull alpha 0 pull-up
	done_watch crt
	echo "now=$(date +%s)"
	sim_pull alpha 0 pull-down
}
clock_monotonic() {
	low alpha 0
	watch cmo -e both -n 1 -F '%S' foo || return 99
	sim_pull alpha 0 pull-up
	done_watch cmo
	echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
	sim_pull alpha 0 pull-down
}
clock_hte() { gpio-watch -e both -E hte foo; }
many_lines() {
	watch ml -e both -n 1 -F '%c %o %E' -c gpiochip2 || return 99
	sim_pull gamma 69 pull-up
	done_watch ml
}

# ---- output ------------------------------------------------------------------

format_info() {
	watch fi -n 1 -F '[%o|%l|%c|%e|%E|%C|%a|%%|%x|%q|%Q|%S] %' foo || return 99
	hold /dev/gpiochip0 0 consumer=fmt request=in+pull-up+active-low
	done_watch fi
}
format_edge() {
	low alpha 0
	watch fe -e both -C fmtc -n 1 -F '%o %l %c %e %E %C %q %Q' foo || return 99
	sim_pull alpha 0 pull-up
	done_watch fe
	sim_pull alpha 0 pull-down
}
format_unnamed() {
	watch fu -n 1 -F '%o %l' -c gpiochip0 1 || return 99
	hold /dev/gpiochip0 1 request=in
	done_watch fu
}
time_utc() {
	watch tu --utc -n 1 foo || return 99
	hold /dev/gpiochip0 0 request=in
	done_watch tu
	echo "now=$(date -u +%Y-%m-%dT%H:%M)"
}
time_local() {
	watch tl --localtime -n 1 -F '%L %U' foo || return 99
	hold /dev/gpiochip0 0 request=in
	done_watch tl
}
json_info() {
	watch ji --json -n 3 foo || return 99
	hold /dev/gpiochip0 0 consumer=js request=in+pull-up sleep=50 config=out+active-low sleep=50 release
	done_watch ji
}
json_edge() {
	low alpha 0
	watch je --json --utc -e both -n 2 foo || return 99
	sim_pull alpha 0 pull-up; sleep 0.05
	sim_pull alpha 0 pull-down
	done_watch je
}
json_removed() {
	sim_chip delta 2 "" 0=dl
	watch jr --json dl || return 99
	gpiosim_unplug delta
	done_watch jr
	gpiosim_remove delta
}
num_events() {
	watch ne -n 2 -F '%E' foo || return 99
	hold /dev/gpiochip0 0 request=in config=out release
	done_watch ne
}
idle_timeout() {
	watch it --idle-timeout 300ms foo || return 99
	done_watch it
}
quiet() {
	watch q -q -n 1 foo || return 99
	hold /dev/gpiochip0 0 request=in
	done_watch q
}

# ---- --exec ------------------------------------------------------------------

exec_env() {
	rm -f /tmp/env.log
	watch xe -n 2 -x 'echo "$GPIO_CHIP|$GPIO_CHIP_LABEL|$GPIO_OFFSET|$GPIO_NAME|$GPIO_EVENT|$GPIO_EVENT_NUM|$GPIO_CONSUMER|$GPIO_USED|$GPIO_DIRECTION|$GPIO_BIAS|$GPIO_ACTIVE_LOW|$GPIO_CLOCK|${GPIO_SEQNO-unset}|$GPIO_TIMESTAMP_NS" >>/tmp/env.log' -q foo || return 99
	hold /dev/gpiochip0 0 consumer=envc request=in+pull-up+active-low release
	done_watch xe
	cat /tmp/env.log
}
exec_edge_env() {
	low alpha 0
	rm -f /tmp/env2.log
	watch xee -e rising -n 1 -q -x 'echo "$GPIO_EVENT|$GPIO_SEQNO|$GPIO_LINE_SEQNO|$GPIO_EDGE|$GPIO_CONSUMER" >>/tmp/env2.log' foo || return 99
	sim_pull alpha 0 pull-up
	done_watch xee
	cat /tmp/env2.log
	sim_pull alpha 0 pull-down
}
# A slow command: events keep coming meanwhile, none is lost, order is kept.
exec_order() {
	low alpha 0
	rm -f /tmp/order.log
	watch xo -e both -n 10 -q -x 'sleep 0.2; echo "$GPIO_EVENT $GPIO_LINE_SEQNO" >>/tmp/order.log' foo || return 99
	gpio-line toggle "$(sim_pull_attr alpha 0)" 10 20000
	done_watch xo
	cat /tmp/order.log
}

# ---- hot-unplug, signals, errors -------------------------------------------------

unplug_one() {
	watch u1 -F '%c %o %E' foo baz || return 99
	gpiosim_unplug beta
	wait_lines /tmp/u1.out 1
	hold /dev/gpiochip0 0 request=in
	wait_lines /tmp/u1.out 3
	done_watch u1 TERM
	gpiosim_live beta >/dev/null
}
unplug_all() {
	sim_chip eps 2 "" 0=e0
	sim_chip zeta 2 "" 0=z0
	watch ua -e both -F '%c %o %E' e0 z0 || return 99
	gpiosim_unplug eps
	wait_lines /tmp/ua.out 1
	sim_pull zeta 0 pull-up
	wait_lines /tmp/ua.out 2
	gpiosim_unplug zeta
	done_watch ua
}
busy() {
	gpio-line hold /dev/gpiochip0 0 consumer=holder request=in echo=held wait >/tmp/b.out &
	_h=$!
	wait_lines /tmp/b.out 1
	gpio-watch -e both foo
	_rc=$?
	kill "$_h"
	wait "$_h"
	return $_rc
}
sigterm_releases() {
	watch st -e both foo || return 99
	hold /dev/gpiochip0 0 request=in
	echo "while watched: $?"
	done_watch st TERM
	hold /dev/gpiochip0 0 request=in
	echo "after: $?"
}
sigint_releases() {
	watch si -e both -x 'true' foo bar || return 99
	done_watch si INT
	hold /dev/gpiochip0 0,3 request=in
	echo "after: $?"
}
unknown_line() { gpio-watch nosuchline; }
unknown_chip() { gpio-watch -c nosuchchip 1; }
unknown_chip_colon() { gpio-watch gpiochip9:1; }
bad_offset() { gpio-watch gpiochip0:8; }
bare_offset() { gpio-watch 3; }
no_access() {
	chmod 0600 /dev/gpiochip*
	gpio-line runas 1000 gpio-watch foo
}

for case in list_text list_json list_some list_used \
	info_kinds info_default filter_requested filter_released_reconfigured two_chips \
	chip_offset chip_option chip_label chip_number time_order name_first_match all_lines kbox_requester \
	edges_both edges_rising edges_falling seqno_two_lines debounce no_debounce \
	bias_pull_up bias_pull_down active_low clock_realtime clock_monotonic clock_hte many_lines \
	format_info format_edge format_unnamed time_utc time_local json_info json_edge json_removed \
	num_events idle_timeout quiet exec_env exec_edge_env exec_order \
	unplug_one unplug_all busy sigterm_releases sigint_releases \
	unknown_line unknown_chip unknown_chip_colon bad_offset bare_offset no_access; do
	vm_case "$case" "$case"
done
echo "scenarios done"
