#!/usr/bin/env bash
# mkfs.exfat: kbox vs Debian's exfatprogs side by side on fresh sparse images
# of 1 GiB, 64 GiB and 2 TiB (median of N runs, time ratio, allocated bytes),
# then -d on a tree of 20,000 small files (vs exfatprogs + exfat-fuse + cp,
# the way to get the same image without -d).
# usage: bench/mkfs.exfat.sh [RUNS]   (KBOX=path to use another build)
set -euo pipefail
cd "$(dirname "$0")/.."
KBOX=${KBOX:-./kbox}
KBOX=$(realpath "$KBOX")
RUNS=${1:-11}
command -v mkfs.exfat >/dev/null || { echo "bench: needs Debian's exfatprogs (make deps)"; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/kbox-bench-mkfs.XXXXXX")
trap 'mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"; [ -n "${loop:-}" ] && losetup -d "$loop"; rm -rf "$work"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e6 }'; }

# time_pair SIZE: formats a fresh sparse image RUNS times with each tool,
# alternating so that load changes hit both alike; prints "kbox_ns debian_ns
# kbox_bytes debian_bytes" (medians; allocated bytes of the last images).
time_pair() {
	local size=$1 i t0 t1 kb db
	: > "$work/k.times"; : > "$work/d.times"
	for ((i = 0; i < RUNS; i++)); do
		rm -f "$work/k.img" "$work/d.img"
		truncate -s "$size" "$work/k.img" "$work/d.img"
		t0=$(now_ns); "$KBOX" mkfs.exfat -q "$work/k.img" >/dev/null; t1=$(now_ns)
		echo $((t1 - t0)) >> "$work/k.times"
		t0=$(now_ns); mkfs.exfat "$work/d.img" >/dev/null; t1=$(now_ns)
		echo $((t1 - t0)) >> "$work/d.times"
	done
	kb=$(allocated "$work/k.img"); db=$(allocated "$work/d.img")
	rm -f "$work/k.img" "$work/d.img"
	echo "$(median < "$work/k.times") $(median < "$work/d.times") $kb $db"
}

allocated() { echo $(( $(stat -c '%b * %B' "$1") )); }

echo "mkfs.exfat on fresh sparse images, median of $RUNS runs (kbox vs exfatprogs $(mkfs.exfat -V 2>&1 | sed -n 's/.*version : //p' | head -1))"
printf '%-6s %12s %12s %8s %14s %14s\n' size kbox_ms debian_ms ratio kbox_bytes debian_bytes
for size in 1G 64G 2T; do
	read -r k d kb db < <(time_pair "$size")
	printf '%-6s %12s %12s %7.2fx %14s %14s\n' "$size" "$(ms "$k")" "$(ms "$d")" \
		"$(awk -v a="$k" -v b="$d" 'BEGIN { print a / b }')" "$kb" "$db"
done
echo
echo "-d with 20,000 small files (100 directories x 200 files, 1..4096 bytes) into a 4 GiB image"
src=$work/src
for ((d = 0; d < 100; d++)); do
	mkdir -p "$src/dir$d"
	for ((f = 0; f < 200; f++)); do
		head -c $(( (d * 200 + f) % 4096 + 1 )) /dev/zero > "$src/dir$d/file$f"
	done
done
runs=$(( RUNS < 5 ? RUNS : 5 ))
kd=$(for ((i = 0; i < runs; i++)); do
	rm -f "$work/img"
	t0=$(now_ns); "$KBOX" mkfs.exfat -q -d "$src" "$work/img" 4G; t1=$(now_ns)
	echo $((t1 - t0))
done | median)
printf 'kbox mkfs.exfat -d:                      %10s ms (median of %d), image %s bytes allocated\n' \
	"$(ms "$kd")" "$runs" "$(allocated "$work/img")"
if [ "$(id -u)" -eq 0 ] && command -v mount.exfat-fuse >/dev/null && [ -c /dev/fuse ]; then
	rm -f "$work/img"; truncate -s 4G "$work/img"
	mkdir -p "$work/mnt"
	t0=$(now_ns)
	mkfs.exfat "$work/img" >/dev/null
	loop=$(losetup -f --show "$work/img")
	mount.exfat-fuse "$loop" "$work/mnt" >/dev/null 2>&1
	cp -a "$src/." "$work/mnt/"
	umount "$work/mnt"
	losetup -d "$loop"; loop=
	t1=$(now_ns)
	printf 'exfatprogs mkfs + exfat-fuse + cp -a:     %10s ms (one run); ratio %.3fx\n' \
		"$(ms $((t1 - t0)))" "$(awk -v a="$kd" -v b=$((t1 - t0)) 'BEGIN { print a / b }')"
else
	echo "(exfat-fuse comparison skipped: needs root, exfat-fuse and /dev/fuse)"
fi
