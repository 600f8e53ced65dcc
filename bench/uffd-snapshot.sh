#!/usr/bin/env bash
# uffd-snapshot vs gcore on a busy 1 GiB process, side by side in one run:
# the longest stall the process saw, wall time and MB/s, with and without
# compression, to the disk and to tmpfs (/dev/shm: what each tool does
# without the disk's speed in the way); medians of RUNS runs and ratios.
# Needs root and gdb (gcore). Every wait is bounded: a measured command
# gets RUN_LIMIT seconds (default 600), then the bench stops saying which.
# Usage: bench/uffd-snapshot.sh [MIB] [RUNS]
set -eu
cd "$(dirname "$0")/.."
. tests/wait.sh
MIB=${1:-1024}
RUNS=${2:-3}
KBOX=${KBOX:-./kbox}
RUN_LIMIT=${RUN_LIMIT:-600}
command -v gcore >/dev/null || { echo "bench: needs gcore (package gdb)"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root"; exit 0; }
command -v zstd >/dev/null || { echo "bench: needs zstd"; exit 0; }

dir=$(mktemp -d)
shm=$(mktemp -d /dev/shm/kbox-bench.XXXXXX)
target=
# Under set -e: nothing here may fail before the folders are removed.
cleanup() {
	if [ -n "$target" ]; then
		kill -KILL "$target" 2>/dev/null || true
		wait "$target" 2>/dev/null || true
	fi
	rm -rf "$dir" "$shm"
}
trap cleanup EXIT

build/tests/snap-target --mib "$MIB" --threads 1 --layout "$dir/layout" >"$dir/target.out" &
target=$!
wait_until 60 "snap-target to fill $MIB MiB and write its layout" test -e "$dir/layout" || exit 1
sleep 1

# stall: asks the target for (and resets) the longest gap between its writes.
stalls_reported() { [ "$(grep -c stall_ms "$dir/target.out" || true)" -gt "$1" ]; }
stall() {
	local n
	n=$(grep -c stall_ms "$dir/target.out" || true)
	kill -USR1 "$target"
	wait_until 30 "snap-target to report its longest stall (SIGUSR1)" stalls_reported "$n" || exit 1
	tail -n 1 "$dir/target.out" | awk '{print $2}'
}

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# bounded COMMAND...: COMMAND, killed after RUN_LIMIT seconds (exit 124).
bounded() { timeout -k 10 "$RUN_LIMIT" "$@"; }

# run NAME COMMAND...: one measured run; appends "stall_ms wall_s bytes" to $dir/NAME.
run() {
	local name=$1; shift
	rm -f "$dir"/core* "$shm"/core*
	stall >/dev/null
	local t0 t1 rc=0
	t0=$(now)
	"$@" >/dev/null 2>"$dir/err" || rc=$?
	t1=$(now)
	local what=$*
	what=${what#bounded }
	case $rc in
	0) ;;
	124 | 137) echo "bench: $name: $what did not end within $RUN_LIMIT s" >&2; exit 1 ;;
	*) echo "bench: $name: $what failed (exit $rc): $(tail -n 3 "$dir/err")" >&2; exit 1 ;;
	esac
	local s
	s=$(stall)
	local bytes
	bytes=$(stat -c %s "$dir"/core* "$shm"/core* 2>/dev/null | head -n 1)
	echo "$s $(echo "$t1 - $t0" | bc -l) ${bytes:-0}" >>"$dir/$name"
}

# kbox fsyncs its file before renaming it; gcore's file is synced too, so
# that both wall times include getting the data to disk.
gcore_sync() { bounded gcore -o "$dir/core" "$target" && bounded sync "$dir/core.$target"; }
gcore_zstd() {
	bounded gcore -o "$dir/core" "$target" &&
		bounded zstd -q -T0 --rm "$dir/core.$target" -o "$dir/core.zst" && bounded sync "$dir/core.zst"
}

for i in $(seq "$RUNS"); do
	run kbox bounded "$KBOX" uffd-snapshot -o "$dir/core" "$target"
	run gcore gcore_sync
	run kbox_z bounded "$KBOX" uffd-snapshot -z -o "$dir/core.zst" "$target"
	run gcore_z gcore_zstd
	run kbox_shm bounded "$KBOX" uffd-snapshot -o "$shm/core" "$target"
	run gcore_shm bounded gcore -o "$shm/core" "$target"
done

col() { awk -v c="$2" '{print $c}' "$dir/$1" | median; }
printf '%s MiB busy target, median of %s runs\n' "$MIB" "$RUNS"
printf '%-22s %14s %10s %10s %12s\n' tool "longest stall" "wall" "MB/s" "file size"
for t in kbox gcore kbox_z gcore_z kbox_shm gcore_shm; do
	s=$(col $t 1) w=$(col $t 2) b=$(col $t 3)
	label=$t
	case $t in
	kbox) label="kbox uffd-snapshot" ;;
	kbox_z) label="kbox uffd-snapshot -z" ;;
	gcore) label="gcore (+ sync)" ;;
	gcore_z) label="gcore + zstd -T0" ;;
	kbox_shm) label="kbox to tmpfs" ;;
	gcore_shm) label="gcore to tmpfs" ;;
	esac
	printf '%-22s %11.1f ms %8.3f s %10.0f %10.1f MB\n' "$label" "$s" "$w" \
		"$(echo "$MIB * 1.048576 / $w" | bc -l)" "$(echo "$b / 1000000" | bc -l)"
	eval "stall_$t=$s wall_$t=$w"
done
printf 'ratios (gcore / kbox): stall %.0fx, wall %.2fx; compressed: stall %.0fx, wall %.2fx; tmpfs: stall %.0fx, wall %.2fx\n' \
	"$(echo "$stall_gcore / $stall_kbox" | bc -l)" "$(echo "$wall_gcore / $wall_kbox" | bc -l)" \
	"$(echo "$stall_gcore_z / $stall_kbox_z" | bc -l)" "$(echo "$wall_gcore_z / $wall_kbox_z" | bc -l)" \
	"$(echo "$stall_gcore_shm / $stall_kbox_shm" | bc -l)" "$(echo "$wall_gcore_shm / $wall_kbox_shm" | bc -l)"
