#!/usr/bin/env bash
# gpio-watch vs Debian's gpiomon (libgpiod 1.6) on one gpio-sim line in the
# test VM: a line is toggled as fast as the simulator allows for N edges;
# for each tool: events reported, seqno gaps (gpio-watch; gpiomon 1.6 has no
# seqno), CPU time (user+sys, from wait4) per event; then CPU used over 10 s of
# idle watching. Rounds alternate the tools; medians and ratios are printed.
#   bench/gpio-watch.sh [EDGES] [ROUNDS]      (defaults 4000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."
edges=${1:-4000}
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
# gpiomon and its library came in through --file (libgpiod.so.2 is also
# what kbox links, so it is in the VM already).
export PATH=/files:$PATH
chip=$(gpiosim_create bench 1 pin)
pull=$(_gpiosim_line_dir bench bank0 0)/pull
banner_wait() { # FILE PID
	i=0
	until grep -q watching "$1" 2>/dev/null || [ $i -ge 200 ]; do sleep 0.05; i=$((i + 1)); done
}
run_tool() { # TOOL ROUND
	rm -f /tmp/ev /tmp/err
	if [ "$1" = gpio-watch ]; then
		gpio-line measure gpio-watch --banner -e both -F '%q %Q' pin >/tmp/ev 2>/tmp/err &
		m=$!
		banner_wait /tmp/err
	else
		gpio-line measure gpiomon -F '%o %e' "${chip#/dev/}" 0 >/tmp/ev 2>/tmp/err &
		m=$!
		sleep 1    # gpiomon 1.6 says nothing once it is ready
	fi
	gpio-line toggle "$pull" "$EDGES"
	sleep 2        # let the last events drain
	kill -TERM "$m"
	wait "$m"
	events=$(wc -l </tmp/ev)
	cpu=$(awk '/^cpu_us/ { print $2 + $3 }' /tmp/err)
	gaps=-
	[ "$1" = gpio-watch ] && gaps=$(awk 'NR > 1 && $1 != prev + 1 { g += $1 - prev - 1 } { prev = $1 } END { print g + 0 }' /tmp/ev)
	echo "edge $1 $2 $events $cpu $gaps"
}
r=1
while [ $r -le "$ROUNDS" ]; do
	run_tool gpio-watch $r
	run_tool gpiomon $r
	r=$((r + 1))
done
idle() { # TOOL: CPU over 10 s of watching with nothing happening
	if [ "$1" = gpio-watch ]; then
		gpio-line measure gpio-watch --banner -e both pin >/dev/null 2>/tmp/err &
	else
		gpio-line measure gpiomon "${chip#/dev/}" 0 >/dev/null 2>/tmp/err &
	fi
	m=$!
	sleep 10
	kill -TERM "$m"
	wait "$m"
	echo "idle $1 $(awk '/^cpu_us/ { print $2 + $3 }' /tmp/err)"
}
idle gpio-watch
idle gpiomon
VMEOF

echo "gpio-watch vs gpiomon $(dpkg-query -W -f='${Version}' gpiod 2>/dev/null): $edges edges per round, $rounds rounds, in the test VM (TCG)"
tests/vm/run --timeout 600 --file "$gpiomon" "$script" >"$results/out"
cat "$results/out" >&2

median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for tool in gpio-watch gpiomon; do
	ev=$(awk -v t=$tool '$1 == "edge" && $2 == t { print $4 }' "$results/out" | median)
	cpu=$(awk -v t=$tool '$1 == "edge" && $2 == t { print $5 }' "$results/out" | median)
	per=$(awk -v t=$tool '$1 == "edge" && $2 == t && $4 > 0 { print $5 / $4 }' "$results/out" | median)
	gaps=$(awk -v t=$tool '$1 == "edge" && $2 == t { print $6 }' "$results/out" | sort -u | tr '\n' ' ')
	idle=$(awk -v t=$tool '$1 == "idle" && $2 == t { print $3 }' "$results/out")
	printf '%-10s median events %s/%s  median cpu %s us  median cpu/event %.1f us  seqno gaps: %s idle cpu (10 s): %s us\n' \
		"$tool" "$ev" "$edges" "$cpu" "$per" "$gaps" "$idle"
	eval "per_${tool//-/_}=$per"
done
awk -v a="$per_gpio_watch" -v b="$per_gpiomon" 'BEGIN { if (a > 0) printf "cpu per event: gpiomon / gpio-watch = %.2f\n", b / a }'
