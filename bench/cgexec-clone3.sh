#!/usr/bin/env bash
# Spawn cost of starting `true` inside a cgroup, side by side in one run:
#   kbox cgexec-clone3 -g CG true          (clone3 CLONE_INTO_CGROUP)
#   sh -c 'echo $$ >CG/cgroup.procs; exec true'   (the shell way: move, then exec)
#   cgexec -g CONTROLLER:CG true           (libcgroup's cgexec, where it works)
#   bench/spawn-floor CG true              (the method's floor: clone3 into CG,
#                                           exec, wait, nothing else; libc only,
#                                           dynamically linked and static)
# On the host (whatever its cgroup2 layout), then in the test VM (pure cgroup2,
# where Debian's cgexec works) when tests/vm can boot.  Rounds alternate the
# tools; each prints the median per-spawn time and the ratio to kbox.
# Then kbox --version beside a libc-only program (bench/startup.bash).
# Environment: N (spawns per round, default 200), ROUNDS (default 5), N_VM
# (spawns per round in the VM, where TCG makes each one slow; default 40),
# BENCH_VM=0 to skip the VM part.  Needs root.  The host's load average is printed
# with each part: the machine may be shared.
set -eu
cd "$(dirname "$0")/.."
KBOX=${KBOX:-$PWD/kbox}
N=${N:-200}
ROUNDS=${ROUNDS:-5}

# Median of the per-spawn times (µs) of ROUNDS rounds of N spawns each.
# Usage: measure NAME COMMAND... ; results in the arrays times_NAME.
declare -A samples
bench_round() {
	local name=$1; shift
	local t0 t1 i
	t0=$(date +%s%N)
	for ((i = 0; i < N; i++)); do "$@" >/dev/null || { echo "bench: $name failed: $*" >&2; return 1; }; done
	t1=$(date +%s%N)
	samples[$name]+=" $(( (t1 - t0) / N / 1000 ))"
}

median() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

report() {
	local base; base=$(median "${samples[kbox]}")
	printf '%-34s %10s %8s\n' tool "µs/spawn" "÷ kbox"
	local name m
	for name in "$@"; do
		[ -n "${samples[$name]:-}" ] || continue
		m=$(median "${samples[$name]}")
		printf '%-34s %10d %8.2f\n' "$name" "$m" "$(awk -v a="$m" -v b="$base" 'BEGIN {print a / b}')"
	done
	printf 'kbox ÷ shell way: %.2f' "$(awk -v a="$base" -v b="$(median "${samples[shell]}")" 'BEGIN {print a / b}')"
	[ -n "${samples[cgexec]:-}" ] && printf ', kbox ÷ cgexec: %.2f' \
		"$(awk -v a="$base" -v b="$(median "${samples[cgexec]}")" 'BEGIN {print a / b}')"
	echo
}

# How the method itself compares with the shell way, whatever the tool.
floor_ratios() {
	local sh; sh=$(median "${samples[shell]}")
	local name
	for name in "floor, libc only" "floor, static"; do
		[ -n "${samples[$name]:-}" ] || continue
		printf '%s ÷ shell way: %.2f' "$name" \
			"$(awk -v a="$(median "${samples[$name]}")" -v b="$sh" 'BEGIN {print a / b}')"
		[ -z "${samples[cgexec]:-}" ] || printf ', ÷ cgexec: %.2f' \
			"$(awk -v a="$(median "${samples[$name]}")" -v b="$(median "${samples[cgexec]}")" 'BEGIN {print a / b}')"
		echo
	done
}

# ---- on the host ------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || { echo "bench: cgexec-clone3 needs root" >&2; exit 0; }
root=$(findmnt -n -t cgroup2 -o TARGET /sys/fs/cgroup 2>/dev/null ||
       findmnt -n -t cgroup2 -o TARGET /sys/fs/cgroup/unified 2>/dev/null ||
       findmnt -n -t cgroup2 -o TARGET | head -1)
[ -n "$root" ] || { echo "bench: no cgroup2 mount" >&2; exit 0; }
rel=kbox-bench.$$
cg=$root/$rel
mkdir "$cg"
trap 'rmdir "$cg" 2>/dev/null || true' EXIT

# The floor program, dynamically linked (libc only) and static.
floor=$(mktemp -d)
trap 'rm -rf "$floor"; rmdir "$cg" 2>/dev/null || true' EXIT
${CC:-cc} -O2 -o "$floor/dynamic" bench/spawn-floor.c
${CC:-cc} -O2 -static -o "$floor/static" bench/spawn-floor.c

echo "host: $(uname -r), cgroup2 at $root, $N spawns x $ROUNDS rounds into $cg, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cgexec_ok=
if command -v cgexec >/dev/null && cgexec -g "hugetlb:$rel" true 2>/dev/null; then cgexec_ok=1
else echo "host: Debian's cgexec fails on this layout ($(cgexec -g "hugetlb:$rel" true 2>&1 | head -1)); compared in the VM below"; fi
for ((r = 0; r < ROUNDS; r++)); do
	bench_round kbox "$KBOX" cgexec-clone3 -g "$rel" /bin/true
	bench_round shell sh -c "echo \$\$ >$cg/cgroup.procs; exec /bin/true"
	[ -z "$cgexec_ok" ] || bench_round cgexec cgexec -g "hugetlb:$rel" /bin/true
	bench_round "floor, libc only" "$floor/dynamic" "$cg" /bin/true
	bench_round "floor, static" "$floor/static" "$cg" /bin/true
	bench_round "kbox --version (start-up alone)" "$KBOX" --version
	bench_round "/bin/true alone" /bin/true
done
report kbox shell cgexec "floor, libc only" "floor, static" "kbox --version (start-up alone)" "/bin/true alone"
floor_ratios
echo "host: load average $(cut -d' ' -f1-3 /proc/loadavg) after"
. bench/startup.bash
startup_bench "$KBOX"

# ---- in the VM (pure cgroup2: Debian's cgexec works there) ---------------------
if [ "${BENCH_VM:-1}" = 0 ] || ! command -v qemu-system-x86_64 >/dev/null || [ ! -x tests/vm/run ]; then
	echo "vm: skipped (BENCH_VM=0, or no qemu / tests/vm)"
	exit 0
fi
# cgexec and its library, copied under the names the loader looks for.
libdir=$(mktemp -d)
cp "$floor/static" "$libdir/spawn-floor"
cp "$floor/dynamic" "$libdir/spawn-floor-dynamic"
files=(--file "$libdir/spawn-floor" --file "$libdir/spawn-floor-dynamic")
if command -v cgexec >/dev/null; then
	cp -L "$(command -v cgexec)" "$libdir/cgexec"
	files+=(--file "$libdir/cgexec")
	for lib in $(ldd "$(command -v cgexec)" | awk '$3 ~ /^\// && !/libc\.so/ {print $3}'); do
		cp -L "$lib" "$libdir/${lib##*/}"
		files+=(--file "$libdir/${lib##*/}")
	done
fi
echo
script=$(mktemp)
trap 'rm -rf "$script" "$libdir" "$floor"; rmdir "$cg" 2>/dev/null || true' EXIT
{
	echo "N=${N_VM:-40} ROUNDS=$ROUNDS"
	declare -f median
	cat <<-'EOF'
		mkdir /sys/fs/cgroup/bench
		cgexec_cmd() { LD_LIBRARY_PATH=/files /files/cgexec "$@"; }
		# busybox date has no %N: /proc/uptime counts centiseconds.
		centis() { read up _ </proc/uptime; echo "${up%.*}${up#*.}"; }
		round() {
			name=$1; shift
			t0=$(centis); i=0
			while [ $i -lt $N ]; do "$@" || { echo "vm: $name failed" >&2; return 1; }; i=$((i + 1)); done
			t1=$(centis)
			eval "s_$name=\"\$s_$name $(( (t1 - t0) * 10000 / N ))\""
		}
		cgexec_ok=
		[ -x /files/cgexec ] && cgexec_cmd -g memory:bench true && cgexec_ok=1
		r=0
		while [ $r -lt $ROUNDS ]; do
			round kbox kbox cgexec-clone3 -g bench /bin/true
			round shell sh -c 'echo $$ >/sys/fs/cgroup/bench/cgroup.procs; exec /bin/true'
			[ -z "$cgexec_ok" ] || round cgexec cgexec_cmd -g memory:bench /bin/true
			round floor_dynamic /files/spawn-floor-dynamic /sys/fs/cgroup/bench /bin/true
			round floor_static /files/spawn-floor /sys/fs/cgroup/bench /bin/true
			round kbox_version kbox --version
			r=$((r + 1))
		done
		echo "vm: $(uname -r), pure cgroup2, $N spawns x $ROUNDS rounds"
		for name in kbox shell cgexec floor_dynamic floor_static kbox_version; do
			eval "v=\$s_$name"
			[ -z "$v" ] || echo "$name $(median "$v")"
		done
		true
	EOF
} >"$script"
echo "vm: host load average $(cut -d' ' -f1-3 /proc/loadavg) before the VM starts"
if out=$(tests/vm/run --timeout 600 "${files[@]}" "$script"); then
	samples=()
	while read -r name m; do
		case $name in
		vm:) echo "$name $m" ;;
		kbox_version) samples["kbox --version (start-up alone)"]=" $m" ;;
		floor_dynamic) samples["floor, libc only"]=" $m" ;;
		floor_static) samples["floor, static"]=" $m" ;;
		*) samples[$name]=" $m" ;;
		esac
	done <<<"$out"
	[ -n "${samples[cgexec]:-}" ] || echo "vm: cgexec did not run there"
	report kbox shell cgexec "floor, libc only" "floor, static" "kbox --version (start-up alone)"
	floor_ratios
	echo "vm: host load average $(cut -d' ' -f1-3 /proc/loadavg) after"
else
	echo "vm: the VM run failed; see above"
fi
