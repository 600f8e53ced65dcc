#!/usr/bin/env bash
# fsck.exfat -n: kbox vs Debian's exfatprogs, side by side, on populated images
# built reproducibly (kbox mkfs.exfat -d from generated trees; fragmented files
# appended round-robin through exfat-fuse when run as root; and, as root, a
# Debian-made 8 GiB volume whose 20,000 files were all written through
# exfat-fuse, so each has a FAT chain, as on a card). Prints median time
# and peak RSS of each, and the ratios (kbox / exfatprogs).
# Images are kept in $KBOX_BENCH_DIR (default /var/tmp/kbox-bench) for reruns.
# Then kbox --version beside a libc-only program (bench/startup.bash).
set -eu
cd "$(dirname "$0")/.."
KBOX=${KBOX:-$PWD/kbox}
PEER=${PEER:-/usr/sbin/fsck.exfat}
DIR=${KBOX_BENCH_DIR:-/var/tmp/kbox-bench}
RUNS=${RUNS:-15}
for c in hyperfine jq /usr/bin/time "$PEER"; do
	command -v "$c" >/dev/null || { echo "bench: needs $c (make deps)"; exit 1; }
done
mkdir -p "$DIR"

# tree DIR DIRS FILES_PER_DIR: small files whose content is their own path.
make_tree() {
	local root=$1 dirs=$2 per=$3 d f
	[ -f "$root.done" ] && return
	rm -rf "$root"; mkdir -p "$root"
	for ((d = 0; d < dirs; d++)); do
		mkdir "$root/dir$d"
		for ((f = 0; f < per; f++)); do echo "dir$d/file_$f" > "$root/dir$d/file_$f.txt"; done
	done
	touch "$root.done"
}

image_100k() {
	local img=$DIR/100k-files-64G.img
	if [ ! -f "$img.done" ]; then
		make_tree "$DIR/tree-100k" 1000 100
		rm -f "$img"; "$KBOX" mkfs.exfat -q --volume-serial 1 -d "$DIR/tree-100k" "$img" 64G
		touch "$img.done"
	fi
	echo "$img"
}

image_20k() {
	local img=$DIR/20k-files-8G.img
	if [ ! -f "$img.done" ]; then
		make_tree "$DIR/tree-20k" 200 100
		mkdir -p "$DIR/tree-20k/large"
		head -c 512M /dev/zero | tr '\0' 'L' > "$DIR/tree-20k/large/large.bin"
		rm -f "$img"; "$KBOX" mkfs.exfat -q --volume-serial 2 -d "$DIR/tree-20k" "$img" 8G
		rm -f "$DIR/tree-20k/large/large.bin"; rm -f "$DIR/tree-20k.done"
		if [ "$(id -u)" -eq 0 ] && command -v mount.exfat-fuse >/dev/null; then
			# Fragmented files: 16 files grown 64 KiB at a time, in turn.
			local mnt=$DIR/mnt dev r f
			mkdir -p "$mnt"; dev=$(losetup -f --show "$img")
			mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1
			mkdir -p "$mnt/fragmented"
			for ((r = 0; r < 64; r++)); do
				for ((f = 0; f < 16; f++)); do
					head -c 65536 /dev/zero | tr '\0' 'F' >> "$mnt/fragmented/frag$f.bin"
				done
			done
			umount "$mnt"; losetup -d "$dev"
		else
			echo "bench: not root or no exfat-fuse: the 8 GiB image has no fragmented files" >&2
		fi
		touch "$img.done"
	fi
	echo "$img"
}

# The usual card: Debian's mkfs.exfat (32 KiB clusters at 8 GiB), then 20,000
# files of 33-96 KiB in 100 directories written through exfat-fuse on a loop
# device. Each directory's files get their first cluster in one pass and the
# rest in a second, so every file is fragmented and has a FAT chain (a file
# written in one go stays contiguous, NoFatChain). Deterministic, sequential
# (exfat-fuse serialises its requests: parallel writers were slower), about a
# minute; bash builtins write, so no process is started per file.
image_chained() {
	local img=$DIR/20k-chained-8G.img
	if [ ! -f "$img.done" ]; then
		if [ "$(id -u)" -ne 0 ] || ! command -v mount.exfat-fuse >/dev/null; then
			echo "bench: not root or no exfat-fuse: no FAT-chained image" >&2
			return
		fi
		local mnt=$DIR/mnt.$$ dev d f n head rest i
		rm -f "$img"; truncate -s 8G "$img"
		/usr/sbin/mkfs.exfat "$img" >/dev/null
		mkdir -p "$mnt"; dev=$(losetup -f --show "$img")
		mount.exfat-fuse "$dev" "$mnt" >/dev/null 2>&1
		head=$(printf '%32768s' '' | tr ' ' c); rest=$head$head
		for ((d = 0; d < 100; d++)); do
			mkdir "$mnt/dir$d"
			for ((f = 0; f < 200; f++)); do printf '%s' "$head" > "$mnt/dir$d/file_$f.txt"; done
			for ((f = 0; f < 200; f++)); do
				n=$(((d * 200 + f) * 7919 % 65536 + 1))
				printf '%s' "${rest:0:n}" >> "$mnt/dir$d/file_$f.txt"
			done
		done
		umount "$mnt"; losetup -d "$dev"; rmdir "$mnt"
		# exfat-fuse may still be writing after umount returns: the loop
		# device goes away when it closes it.
		for ((i = 0; i < 600; i++)); do
			losetup "$dev" 2>/dev/null | grep -qF "($img)" || break
			sleep 0.1
		done
		[ "$i" -lt 600 ] || { echo "bench: exfat-fuse did not release $dev within 60 s" >&2; exit 1; }
		touch "$img.done"
	fi
	echo "$img"
}

image_2t() {
	local img=$DIR/empty-2T.img
	[ -f "$img.done" ] || { rm -f "$img"; "$KBOX" mkfs.exfat -q --volume-serial 3 "$img" 2T; touch "$img.done"; }
	echo "$img"
}

median_ms() { # hyperfine json, command index
	jq -r ".results[$2].median * 1000" "$1"
}
cpu_ms() { # mean user + system time
	jq -r "(.results[$2].user + .results[$2].system) * 1000" "$1"
}

peak_rss_kb() { # median of 5 runs
	local i
	for i in 1 2 3 4 5; do /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; done | sort -n | sed -n 3p
}

# row NAME KBOX_CMD PEER_CMD: times both side by side, then their peak RSS;
# prints one row of the table.
row() {
	local name=$1 kcmd=$2 pcmd=$3 json kt pt kc pc kr pr
	json=$(mktemp)
	hyperfine -N -w 3 -r "$RUNS" --export-json "$json" "$kcmd" "$pcmd" >/dev/null 2>&1
	kt=$(median_ms "$json" 0); pt=$(median_ms "$json" 1)
	kc=$(cpu_ms "$json" 0); pc=$(cpu_ms "$json" 1)
	rm -f "$json"
	kr=$(peak_rss_kb $kcmd); pr=$(peak_rss_kb $pcmd)
	printf '%-20s %9.1f %9.1f %6.2f  %9.1f %9.1f %6.2f  %9d %9d %6.2f\n' "$name" \
		"$kt" "$pt" "$(echo "$kt / $pt" | bc -l)" "$kc" "$pc" "$(echo "$kc / $pc" | bc -l)" \
		"$kr" "$pr" "$(echo "$kr / $pr" | bc -l)"
}

# One bench at a time: images are built once, and two runs side by side
# would time each other.
exec 9>>"$DIR/.lock"
flock -w 1800 9 || { echo "bench: another run held $DIR/.lock for 30 minutes" >&2; exit 1; }

printf '%-20s %9s %9s %6s  %9s %9s %6s  %9s %9s %6s\n' image "kbox ms" "peer ms" ratio \
	"kbox cpu" "peer cpu" ratio "kbox KiB" "peer KiB" ratio
for make in image_100k image_20k image_chained image_2t; do
	img=$($make)
	[ -n "$img" ] || continue
	# Both must agree the image is clean before timing.
	"$KBOX" fsck.exfat -n "$img" >/dev/null
	"$PEER" -n "$img" >/dev/null 2>&1
	row "$(basename "$img" .img)" "$KBOX fsck.exfat -n $img" "$PEER -n $img"
done
echo "(ms: median wall time of $RUNS runs after 3 warm-ups; cpu: mean user+system ms; KiB: median peak RSS"
echo " of 5 runs; ratio = kbox / $PEER; goal: time <= 0.5, RSS <= 1.0)"
. bench/startup.bash
startup_bench "$KBOX"
