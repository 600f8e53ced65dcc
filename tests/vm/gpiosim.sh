# gpio-sim helpers for scripts run in the test VM (busybox sh); sourced there
# automatically (tests/vm/inside.sh). A simulated device DEV is a configfs
# folder /sys/kernel/config/gpio-sim/DEV holding banks; each bank becomes one
# GPIO chip (/dev/gpiochipN) when the device goes live. Lines are driven from
# the "outside" through sysfs: `pull` sets what an input line reads, `value`
# is the line's current level. Every function returns non-zero with a message
# on stderr when the kernel refuses.
#
#   gpiosim_create DEV NUM_LINES [LINE_NAME|-]...
#       one-bank device, lines named in order ("-" leaves a line unnamed),
#       made live; prints /dev/gpiochipN
#   gpiosim_new DEV                          start an (offline) device
#   gpiosim_bank DEV BANK NUM_LINES [LABEL]  add bank BANK (a word, e.g. bank0)
#   gpiosim_name DEV BANK LINE NAME          name line LINE (offset) of BANK
#   gpiosim_hog DEV BANK LINE CONSUMER input|output-high|output-low
#   gpiosim_live DEV                         make DEV live; prints each bank's
#                                            /dev/gpiochipN, banks in name order
#   gpiosim_chip DEV BANK                    prints BANK's /dev/gpiochipN
#   gpiosim_pull DEV BANK LINE up|down       drive an input line from outside
#   gpiosim_value DEV BANK LINE              prints the line's level, 0 or 1
#   gpiosim_unplug DEV                       live=0: the chips vanish (hot-unplug)
#   gpiosim_remove DEV                       unplug and delete the configuration

GPIOSIM_CONFIG=/sys/kernel/config/gpio-sim

_gpiosim_write() { # VALUE FILE
	if ! { echo "$1" >"$2"; } 2>/dev/null; then
		echo "gpiosim: cannot write '$1' to $2" >&2
		return 1
	fi
}

gpiosim_new() {
	mkdir "$GPIOSIM_CONFIG/$1" || { echo "gpiosim: cannot create device $1" >&2; return 1; }
}

gpiosim_bank() {
	mkdir "$GPIOSIM_CONFIG/$1/$2" || { echo "gpiosim: cannot create bank $1/$2" >&2; return 1; }
	_gpiosim_write "$3" "$GPIOSIM_CONFIG/$1/$2/num_lines" || return 1
	[ -z "${4-}" ] || _gpiosim_write "$4" "$GPIOSIM_CONFIG/$1/$2/label"
}

gpiosim_name() {
	mkdir -p "$GPIOSIM_CONFIG/$1/$2/line$3" &&
		_gpiosim_write "$4" "$GPIOSIM_CONFIG/$1/$2/line$3/name"
}

gpiosim_hog() {
	mkdir -p "$GPIOSIM_CONFIG/$1/$2/line$3/hog" &&
		_gpiosim_write "$4" "$GPIOSIM_CONFIG/$1/$2/line$3/hog/name" &&
		_gpiosim_write "$5" "$GPIOSIM_CONFIG/$1/$2/line$3/hog/direction"
}

gpiosim_chip() {
	_gpiosim_name=$(cat "$GPIOSIM_CONFIG/$1/$2/chip_name" 2>/dev/null)
	case $_gpiosim_name in
	gpiochip*) echo "/dev/$_gpiosim_name" ;;
	*) echo "gpiosim: $1/$2 is not live" >&2; return 1 ;;
	esac
}

gpiosim_live() {
	_gpiosim_write 1 "$GPIOSIM_CONFIG/$1/live" || return 1
	for _gpiosim_bank in "$GPIOSIM_CONFIG/$1"/*/; do
		[ -f "$_gpiosim_bank/num_lines" ] || continue
		_gpiosim_bank=${_gpiosim_bank%/}
		gpiosim_chip "$1" "${_gpiosim_bank##*/}" || return 1
	done
}

gpiosim_create() {
	_gpiosim_dev=$1 _gpiosim_lines=$2
	shift 2
	gpiosim_new "$_gpiosim_dev" && gpiosim_bank "$_gpiosim_dev" bank0 "$_gpiosim_lines" || return 1
	_gpiosim_line=0
	for _gpiosim_n in "$@"; do
		if [ "$_gpiosim_n" != - ]; then
			gpiosim_name "$_gpiosim_dev" bank0 "$_gpiosim_line" "$_gpiosim_n" || return 1
		fi
		_gpiosim_line=$((_gpiosim_line + 1))
	done
	gpiosim_live "$_gpiosim_dev"
}

# The sysfs folder of one simulated line: /sys/devices/platform/DEV_NAME/gpiochipN/sim_gpioLINE
_gpiosim_line_dir() {
	_gpiosim_chip=$(gpiosim_chip "$1" "$2") || return 1
	echo "/sys/devices/platform/$(cat "$GPIOSIM_CONFIG/$1/dev_name")/${_gpiosim_chip#/dev/}/sim_gpio$3"
}

gpiosim_pull() {
	case $4 in
	up | down) ;;
	*) echo "gpiosim: pull must be up or down, not '$4'" >&2; return 1 ;;
	esac
	_gpiosim_dir=$(_gpiosim_line_dir "$1" "$2" "$3") || return 1
	_gpiosim_write "pull-$4" "$_gpiosim_dir/pull"
}

gpiosim_value() {
	_gpiosim_dir=$(_gpiosim_line_dir "$1" "$2" "$3") || return 1
	cat "$_gpiosim_dir/value"
}

gpiosim_unplug() {
	_gpiosim_write 0 "$GPIOSIM_CONFIG/$1/live"
}

gpiosim_remove() {
	[ -d "$GPIOSIM_CONFIG/$1" ] || return 0
	[ "$(cat "$GPIOSIM_CONFIG/$1/live")" = 0 ] || gpiosim_unplug "$1" || return 1
	# configfs folders go bottom-up: hogs, lines, banks, the device.
	for _gpiosim_d in "$GPIOSIM_CONFIG/$1"/*/*/hog "$GPIOSIM_CONFIG/$1"/*/line* "$GPIOSIM_CONFIG/$1"/*/ "$GPIOSIM_CONFIG/$1"; do
		[ -d "$_gpiosim_d" ] && rmdir "$_gpiosim_d"
	done
	[ ! -d "$GPIOSIM_CONFIG/$1" ] || { echo "gpiosim: cannot remove $1" >&2; return 1; }
}
