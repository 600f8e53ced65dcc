# Sourced by the benches: the start-up of `kbox --version` beside a program
# that links libc alone and prints one line. Each round is one hyperfine run
# of both, side by side (which goes first alternates, against drift on a
# busy machine); prints the medians over the rounds and the median of the
# rounds' ratios (goal: <= 1.1).
# Usage: startup_bench KBOX   (STARTUP_ROUNDS, default 5; STARTUP_RUNS per
# command and round, default 200)
startup_bench() {
	local kbox=$1 rounds=${STARTUP_ROUNDS:-5} runs=${STARTUP_RUNS:-200} dir r k f ks= fs= ratios=
	for c in hyperfine jq bc "${CC:-cc}"; do
		command -v "$c" >/dev/null || { echo "start-up: needs $c (make deps)"; return 0; }
	done
	dir=$(mktemp -d)
	printf '#include <stdio.h>\nint main(void)\n{\n\tputs("libc-only 0.1.0");\n\treturn 0;\n}\n' >"$dir/libc-only.c"
	"${CC:-cc}" -O2 -o "$dir/libc-only" "$dir/libc-only.c"
	for ((r = 0; r < rounds; r++)); do
		if ((r % 2 == 0)); then set -- "$kbox --version" "$dir/libc-only"; else set -- "$dir/libc-only" "$kbox --version"; fi
		hyperfine -N -w 20 -r "$runs" --export-json "$dir/times.json" "$@" >/dev/null 2>&1 ||
			{ echo "start-up: hyperfine failed"; rm -rf "$dir"; return 1; }
		k=$(jq '.results[] | select(.command | endswith(" --version")) | .median * 1e6' "$dir/times.json")
		f=$(jq '.results[] | select(.command | endswith("/libc-only")) | .median * 1e6' "$dir/times.json")
		ks+=" $k" fs+=" $f" ratios+=" $(echo "$k / $f" | bc -l)"
	done
	rm -rf "$dir"
	startup_median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
	printf 'start-up: kbox --version %.0f µs, a libc-only program %.0f µs: %.2f× (goal ≤ 1.1; medians of %d rounds of %d runs)\n' \
		"$(startup_median "$ks")" "$(startup_median "$fs")" "$(startup_median "$ratios")" "$rounds" "$runs"
}
