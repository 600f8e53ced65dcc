#!/bin/sh
# Runs inside an initramfs built by mkinitramfs or dracut (from a
# local-premount script or a pre-mount hook that the image tests add), with
# only what the image holds: kbox and its links as the hook or module put
# them. Expects the exFAT test volume on /dev/vda and writes its results, as
# text, onto the raw disk /dev/vdb, then powers the VM off. The host judges.
#
# Results: one block per check,
#   @@ NAME STATUS
#   ...the check's stdout and stderr...
# and "@@ uptime-start S" / "@@ uptime-repaired S" (seconds since boot, by
# the guest's clock).
PATH=/sbin:/usr/sbin:/bin:/usr/bin
export PATH
results=/run/kbox-test.results
: >"$results"

check() { # NAME COMMAND...
	name=$1
	shift
	"$@" >/run/kbox-test.out 2>&1
	echo "@@ $name $?" >>"$results"
	cat /run/kbox-test.out >>"$results"
}

# Prints "SHA256  ./PATH" for every file under the current directory.
walk() {
	for f in "$1"/* "$1"/.[!.]*; do
		if [ -d "$f" ] && [ ! -L "$f" ]; then
			walk "$f"
		elif [ -f "$f" ]; then
			sha256sum "$f"
		fi
	done
}
sums() { (cd /kbox-test-mnt && walk .); }

uptime() { read -r up _ </proc/uptime && echo "$up"; }

# As dracut 059 checks a filesystem it has no fsck driver for (fs-lib.sh,
# fsck_drv_std): `fsck DEVICE` without -a, on the console, which is a terminal
# but no controlling one. No one can answer there: it must check only (exit 4)
# and leave the fault for -p. Without util-linux's fsck in the image,
# fsck.exfat is run the same way.
console_fsck() {
	if command -v fsck >/dev/null; then set -- fsck /dev/vda; else set -- fsck.exfat /dev/vda; fi
	echo "$*"
	"$@" </dev/console >/dev/console 2>&1
}

echo "@@ uptime-start $(uptime)" >>"$results"
check which-fsck readlink -f "$(command -v fsck.exfat)"
check fsck-console console_fsck
check fsck-repair fsck.exfat -p /dev/vda
echo "@@ uptime-repaired $(uptime)" >>"$results"
# The host times this line on the serial console: under TCG the guest's
# clock can be far off.
echo "kbox-test: fsck done" >/dev/console
check fsck-clean fsck.exfat -n /dev/vda
modprobe exfat
mkdir -p /kbox-test-mnt
check mount mount -t exfat -o ro /dev/vda /kbox-test-mnt
check sums sums
umount /kbox-test-mnt

modprobe configfs
mkdir -p /sys/kernel/config
mount -t configfs configfs /sys/kernel/config 2>/dev/null
modprobe gpio-sim
sim=/sys/kernel/config/gpio-sim/kboxtest
mkdir "$sim" "$sim/bank0" && echo 4 >"$sim/bank0/num_lines" &&
	echo kbox-image-test >"$sim/bank0/label" && echo 1 >"$sim/live"
check gpio-watch gpio-watch -L
check kbox-list kbox --list

cat "$results" >/dev/vdb
sync
echo "kbox-test: results written" >/dev/console
echo o >/proc/sysrq-trigger
sleep 30
