# splitlock-stat: what this machine can detect, then a tiny program taking a few
# split locks under `run` (attributed only where the CPU reports them).
k=${1:-./kbox}
say() { printf '\n$ %s\n' "$*"; "$@"; }
say "$k" splitlock-stat status
prog=build/tests/splitlock-prog
if [ -x "$prog" ] && [ "$(id -u)" -eq 0 ]; then
	say "$k" splitlock-stat run -- "$prog" -n 1 -t 2
else
	echo "(run needs root to read /dev/kmsg and build/tests/splitlock-prog; skipped)"
fi
say "$k" splitlock-stat summary --no-resolve --kmsg tests/fixtures/splitlock-stat/forms.kmsg
