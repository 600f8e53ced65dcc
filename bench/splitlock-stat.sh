#!/usr/bin/env bash
# splitlock-stat benchmarks (run by `make bench`):
#  1. reading the whole kernel ring buffer (summary --since-boot), next to
#     `dmesg -r` reading the same buffer;
#  2. parsing a large saved log with many trap reports (--kmsg --no-resolve),
#     next to grep counting the same reports;
#  3. CPU used by `watch` while the log is quiet (it blocks in poll).
set -eu
cd "$(dirname "$0")/.."
k=./kbox
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { jq -r '.results[] | "\(.command)\t\(.median * 1000 | . * 1000 | round / 1000) ms"' "$1"; }

if [ -r /dev/kmsg ] && $k splitlock-stat summary --since-boot >/dev/null 2>&1; then
	echo "-- whole ring buffer: $(dmesg -r 2>/dev/null | wc -l) records"
	hyperfine -N -w 3 -r 30 --export-json "$tmp/ring.json" \
		"$k splitlock-stat summary --since-boot" "dmesg -r" >/dev/null
	median "$tmp/ring.json"
	jq -r '.results as $r | "ratio splitlock-stat/dmesg: \($r[0].median / $r[1].median * 100 | round / 100)"' "$tmp/ring.json"
else
	echo "-- whole ring buffer: /dev/kmsg not readable (needs CAP_SYSLOG), skipped"
fi

# A saved log the size of a large ring buffer: 100000 records, one in ten a trap.
awk 'BEGIN { for (i = 0; i < 100000; i++) {
	if (i % 10 == 0) printf "4,%d,%d,-;x86/split lock detection: #DB: worker-%d/%d took a bus_lock trap at address: 0x%x\n", i, i * 1000, i % 7, 1000 + i % 7, 4198400 + i % 13;
	else printf "6,%d,%d,-;some driver: an ordinary message number %d of the kernel log\n", i, i * 1000, i; } }' >"$tmp/big.kmsg"
echo "-- saved log: $(wc -l <"$tmp/big.kmsg") records, $(du -h "$tmp/big.kmsg" | cut -f1)"
hyperfine -N -w 2 -r 15 --export-json "$tmp/big.json" \
	"$k splitlock-stat summary --no-resolve --kmsg $tmp/big.kmsg" \
	"grep -c 'took a bus_lock trap' $tmp/big.kmsg" >/dev/null
median "$tmp/big.json"
jq -r '.results as $r | "ratio splitlock-stat/grep: \($r[0].median / $r[1].median * 100 | round / 100)"' "$tmp/big.json"

if [ -r /dev/kmsg ]; then
	secs=3
	echo "-- watch idle for ${secs}s"
	TIMEFORMAT="watch: %R s elapsed, %U s user, %S s system CPU"
	time $k splitlock-stat watch -d ${secs}s >/dev/null
fi
