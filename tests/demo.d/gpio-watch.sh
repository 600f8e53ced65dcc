# gpio-watch: one stream of GPIO line-info changes and edges.
k=${1:-./kbox}
say() { printf '\n$ %s\n' "$*"; "$@"; }
say "$k" gpio-watch --help | head -n 12
if compgen -G '/dev/gpiochip*' >/dev/null; then
	say "$k" gpio-watch -L
	say "$k" gpio-watch --idle-timeout 2s
else
	# No GPIO here: the error is one line with a documented exit status (3).
	say "$k" gpio-watch --idle-timeout 2s
	echo "(exit status $?)"
fi
true
