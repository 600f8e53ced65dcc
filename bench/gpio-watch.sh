#!/usr/bin/env bash
# gpio-watch vs Debian's gpiomon (libgpiod 1.6) on one gpio-sim line in the
# test VM: a line is toggled for N edges, once as fast as the simulator takes
# writes and once with a 1 ms pause per write; for each tool: events reported,
# seqno gaps (gpio-watch; gpiomon 1.6 has no seqno), CPU time (user+sys) per
# event; then CPU used over 10 s of idle watching. Rounds alternate the
# tools; medians and ratios are printed.
#   bench/gpio-watch.sh [EDGES] [ROUNDS]      (defaults 2000 and 3)
# CPU is read from /proc/PID/stat once each tool is ready and again after
# the last event, so start-up costs stay out.
set -euo pipefail
cd "$(dirname "$0")/.."
edges=${1:-2000}
rounds=${2:-3}
gpiomon=$(command -v gpiomon) || { echo "bench: needs gpiomon (apt-get install gpiod)" >&2; exit 1; }
[ -x ./kbox ] && ./kbox --list | grep -qx gpio-watch || { echo "bench: build kbox first (make)" >&2; exit 1; }
[ -x build/tests/gpio-line ] || { echo "bench: build/tests/gpio-line missing (make)" >&2; exit 1; }

script=$(mktemp)
results=$(mktemp -d)
trap 'rm -rf "$script" "$results"' EXIT
cat >"$script" <<VMEOF
EDGES=$edges ROUNDS=$rounds
VMEOF
cat >>"$script" <<'VMEOF'
# gpiomon came in through --file; libgpiod.so.2, which it links, is in the
# VM already because kbox links it too.
export PATH=/files:$PATH
chip=$(gpiosim_create bench 1 pin)
pull=$(_gpiosim_line_dir bench bank0 0)/pull
# CPU ticks (user + sys, 1/100 s) a process has used so far.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
banner_printed() { grep -q watching /tmp/err 2>/dev/null; }
start_tool() { # TOOL [FORMAT]: starts it in the background as $p, returns when it is ready
	rm -f /tmp/ev /tmp/err
	if [ "$1" = gpio-watch ]; then
		gpio-watch --banner -e both -F '%q %Q' pin >/tmp/ev 2>/tmp/err &
		p=$!
		wait_until 10 "gpio-watch to print its banner" banner_printed || exit 1
	else
		gpiomon -F '%o %e' "${chip#/dev/}" 0 >/tmp/ev 2>/tmp/err &
		p=$!
	fi
	sleep 1        # gpiomon 1.6 says nothing once it is ready; settle both alike
}
stop_tool() { # TOOL: ends $p with SIGTERM, waiting 10 s at most
	kill -TERM $p
	wait_until 10 "$1 to exit on SIGTERM" ended $p || exit 1
	wait $p
}
run_tool() { # MODE PAUSE_US TOOL ROUND
	start_tool "$3"
	t0=$(ticks $p)
	gpio-line toggle "$pull" "$EDGES" "$2"
	sleep 2        # let the last events drain
	t1=$(ticks $p)
	stop_tool "$3"
	events=$(wc -l </tmp/ev)
	gaps=-
	[ "$3" = gpio-watch ] && gaps=$(awk 'NR > 1 && $1 != prev + 1 { g += $1 - prev - 1 } { prev = $1 } END { print g + 0 }' /tmp/ev)
	echo "$1 $3 $4 $events $(( (t1 - t0) * 10000 )) $gaps"
}
for mode in fast:0 paced:1000; do
	r=1
	while [ $r -le "$ROUNDS" ]; do
		run_tool "${mode%:*}" "${mode#*:}" gpio-watch $r
		run_tool "${mode%:*}" "${mode#*:}" gpiomon $r
		r=$((r + 1))
	done
done
for tool in gpio-watch gpiomon; do  # CPU over 10 s of watching while nothing happens
	start_tool $tool
	t0=$(ticks $p)
	sleep 10
	echo "idle $tool $(( ($(ticks $p) - t0) * 10000 ))"
	stop_tool $tool
done
VMEOF

echo "gpio-watch vs gpiomon $(dpkg-query -W -f='${Version}' gpiod 2>/dev/null): $edges edges per round, $rounds rounds, in the test VM (TCG)"
tests/vm/run --timeout 600 --file "$gpiomon" "$script" >"$results/out"
cat "$results/out" >&2

median() { sort -n | awk '{ a[NR] = $1 } END { if (!NR) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for mode in fast paced; do
	[ $mode = fast ] && echo "-- toggled as fast as the simulator takes writes (the kernel merges edges it has no time for):" ||
		echo "-- toggled with a 1 ms pause after each write:"
	for tool in gpio-watch gpiomon; do
		sel() { awk -v m=$mode -v t=$tool '$1 == m && $2 == t' "$results/out"; }
		ev=$(sel | awk '{ print $4 }' | median)
		cpu=$(sel | awk '{ print $5 }' | median)
		per=$(sel | awk '$4 > 0 { print $5 / $4 }' | median)
		gaps=$(sel | awk '{ print $6 }' | sort -u | tr '\n' ' ')
		printf '   %-10s events (median) %5s of %s   cpu %7s us   cpu/event %6.1f us   seqno gaps: %s\n' \
			"$tool" "$ev" "$edges" "$cpu" "$per" "$gaps"
		eval "per_${mode}_${tool//-/_}=$per"
	done
done
awk -v a="$per_fast_gpio_watch" -v b="$per_fast_gpiomon" -v c="$per_paced_gpio_watch" -v d="$per_paced_gpiomon" \
	'BEGIN { printf "cpu per event, gpiomon / gpio-watch:"
	       if (a > 0) printf " fast %.2f", b / a; else printf " fast n/a (too few events to measure)"
	       if (c > 0) printf ", paced %.2f", d / c
	       print "" }'
for tool in gpio-watch gpiomon; do
	echo "idle: $tool used $(awk -v t=$tool '$1 == "idle" && $2 == t { print $3 }' "$results/out") us of CPU in 10 s (1/100 s resolution)"
done
