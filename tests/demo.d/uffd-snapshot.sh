# uffd-snapshot: dump a busy multi-threaded program with a short pause, check
# the core is consistent and look at it with gdb. Run as root from the tree.
k=${1:-./kbox}
t=build/tests/snap-target
[ -x "$t" ] || { echo "(build/tests/snap-target missing: run make)"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "(needs root)"; exit 0; }
dir=$(mktemp -d)
"$t" --mib 64 --threads 3 --layout "$dir/layout" >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
. tests/wait.sh
wait_until 30 "snap-target to start" test -e "$dir/layout" || exit 1
echo "\$ $k uffd-snapshot -v -o core $pid"
"$k" uffd-snapshot -v -o "$dir/core" "$pid"
echo "\$ snap-check core   # every page agrees with the threads' own records"
build/tests/snap-check "$dir/core" "$dir/layout"
if command -v gdb >/dev/null; then
	echo "\$ gdb -batch -ex 'print *snap_accounts' -ex 'info threads' $t core"
	gdb -batch -nx -ex 'print *snap_accounts' -ex 'info threads' "$t" "$dir/core" 2>/dev/null |
		grep -E '^\$|^ +[0-9]|^\*'
fi
echo "\$ $k uffd-snapshot --dirty 500ms,2 $pid"
"$k" uffd-snapshot --dirty 500ms,2 "$pid" | grep -v '^  .*lib'
