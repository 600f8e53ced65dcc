# cgexec-clone3: a command born inside a cgroup v2, limits, notes and a report.
# Usage: bash tests/demo.d/cgexec-clone3.sh ./kbox   (root; uses a throw-away cgroup)
k=${1:-./kbox}
say() { printf '\n$ %s\n' "$*"; "$@" 2>&1; }
say "$k" cgexec-clone3 --info
if [ "$(id -u)" -ne 0 ]; then
	echo "(the rest needs root: it creates a cgroup)"
	exit 0
fi
cg=kbox-demo.$$
say "$k" cgexec-clone3 -c -g "$cg" --note purpose=demo -p cgroup.max.descendants=4 -- sh -c 'cat /proc/self/cgroup | grep ^0::'
say "$k" cgexec-clone3 -c --rm --stats -g "$cg/job" -- sh -c 'sleep 60 & echo "left a sleep behind"; exit 3'
echo "exit status: $?"
say "$k" cgexec-clone3 -g "$cg" -p memory.bogus=1 true
echo "exit status: $?"
say "$k" cgexec-clone3 --rm -g "$cg" -- true 2>/dev/null
root=$("$k" cgexec-clone3 --info --json | sed 's/.*"mount":"\([^"]*\)".*/\1/')
rmdir "$root/$cg"
