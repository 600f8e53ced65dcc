#!/usr/bin/env bash
# Makes fuzzing seeds: small exFAT volumes (512-byte clusters, 4 KiB alignment,
# so every structure lies in the first 48 KiB) cut to their first 48 KiB.
# usage: seeds.sh KBOX OUTDIR
set -eu
kbox=$1 out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/tree/dir/sub"
echo hello > "$tmp/tree/a.txt"
printf '%s\n' one two three > "$tmp/tree/dir/b.txt"
head -c 3000 /dev/zero | tr '\0' x > "$tmp/tree/dir/sub/c.bin"
for i in 1 2 3 4 5 6; do echo "$i" > "$tmp/tree/dir/n$i"; done
"$kbox" mkfs.exfat -q -b 4K -c 512 "$tmp/empty.img" 1M
"$kbox" mkfs.exfat -q -b 4K -c 512 -L seed -d "$tmp/tree" "$tmp/tree.img" 1M
"$kbox" mkfs.exfat -q -b 4K -c 1K -s 1024 -d "$tmp/tree" "$tmp/tree1k.img" 1M
for img in "$tmp"/*.img; do
	head -c 49152 "$img" > "$out/$(basename "$img" .img)"
done
