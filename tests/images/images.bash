# Helpers for tests/images/*.bats: Debian roots from tests/images/roots, the
# package from `make deb`, initramfs images built inside the roots by Debian's
# own tools, and qemu boots of them with the VM harness's kernel.
#
#   images_require                  fails (never skips) without root, qemu, mmdebstrap
#                                   or the package; sets KBOX_DEB
#   root_unpack FLAVOUR DIR         a fresh copy of the cached root in a tmpfs mounted on
#                                   DIR, its builder set to take only the kernel modules
#                                   asked for (scaffold/)
#   root_drop DIR                   unmounts it (teardown_file)
#   in_root DIR COMMAND...          COMMAND chrooted in DIR, with /proc, /sys, /dev
#   root_kernel DIR                 the kernel version installed in DIR
#   root_add_gpio_sim DIR           the harness's gpio-sim.ko as an installed module
#   test_volume IMG SUMS            an exFAT volume made by kbox mkfs.exfat with one
#                                   known fault that fsck -p repairs; SUMS gets the
#                                   expected "SHA256  ./PATH" lines, sorted
#   boot_image INITRD DISK OUT      boots INITRD with the volume DISK; OUT gets
#                                   results (inside.sh's report), console.log and,
#                                   by the host's clock, repaired-seconds and
#                                   boot-seconds
#   judge OUT SUMS KBOX_LIST        every check of inside.sh passed (else says which)
#   result OUT NAME                 one check's "STATUS" line and output
# and, inside tests: assert_kbox_in_listing, assert_booted_ok, print_figures.

IMAGES_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
IMAGES_BOOT_TIMEOUT=${KBOX_IMAGES_TIMEOUT:-300}

images_require() {
	[ "$(id -u)" = 0 ] || { echo "the image tests need root" >&2; return 1; }
	local cmd
	for cmd in qemu-system-x86_64 mmdebstrap unshare chroot; do
		command -v "$cmd" >/dev/null || { echo "missing $cmd (run: make deps)" >&2; return 1; }
	done
	KBOX_DEB=$(ls "$KBOX_ROOT"/build/deb/kbox_*.deb 2>/dev/null | head -n 1)
	[ -f "$KBOX_DEB" ] || { echo "no package in build/deb (run: make deb)" >&2; return 1; }
	export KBOX_DEB
}

# The root lives in a tmpfs: unpacking its 650 MB onto the disk and deleting
# them took 13 s with the machine loaded, in memory under 2 s. root_drop (in
# teardown_file) unmounts it; should that not run, bats' removal of its
# temporary folder still empties it.
root_unpack() {
	local tarball
	tarball=$("$IMAGES_HERE/roots" "$1") || return 1
	mkdir -p "$2" && mount -t tmpfs -o size=3g,mode=0755 kbox-images "$2" || return 1
	tar -xf "$tarball" -C "$2" || return 1
	case $1 in
	initramfs-tools) install -m 0644 "$IMAGES_HERE/scaffold/initramfs-tools.conf" \
		"$2/etc/initramfs-tools/conf.d/kbox-test" ;;
	dracut) install -m 0644 "$IMAGES_HERE/scaffold/dracut.conf" "$2/etc/dracut.conf.d/90-kbox-test.conf" ;;
	esac
}

root_drop() {
	mountpoint -q "$1" || return 0
	umount "$1" 2>/dev/null || umount -l "$1"
}

# A private mount namespace: the mounts go away with the command.
in_root() {
	local dir=$1
	shift
	unshare --mount --propagation private -- sh -c '
		r=$1; shift
		mount --rbind /dev "$r/dev" && mount -t proc proc "$r/proc" &&
		mount --rbind /sys "$r/sys" && mount -t tmpfs tmpfs "$r/tmp" || exit 125
		exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
			LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' sh "$dir" "$@"
}

root_kernel() {
	ls "$1/lib/modules" | head -n 1
}

# gpio-sim is not in Debian's kernels; the VM harness builds it for this very
# kernel, and here it becomes an installed module that the builders can find.
root_add_gpio_sim() {
	local harness kver
	harness=$("$KBOX_ROOT/tests/vm/prepare") || return 1
	kver=$(root_kernel "$1")
	mkdir -p "$1/lib/modules/$kver/updates"
	cp "$harness/../modules/gpio_sim.ko" "$1/lib/modules/$kver/updates/gpio-sim.ko" &&
		in_root "$1" depmod "$kver"
}

test_volume() {
	local img=$1 sums=$2 tree
	tree=$(mktemp -d "${BATS_FILE_TMPDIR:-/tmp}/tree.XXXXXX")
	mkdir -p "$tree/etc" "$tree/data/deep/er"
	echo "kbox image test" >"$tree/README"
	head -c 300000 /dev/urandom >"$tree/data/random.bin"
	head -c 70000 /dev/urandom >"$tree/data/deep/er/small.bin"
	seq 1 20000 >"$tree/etc/numbers.txt"
	: >"$tree/empty"
	(cd "$tree" && find . -type f -print0 | xargs -0 sha256sum | LC_ALL=C sort -k2) >"$sums"
	rm -f "$img"
	truncate -s 64M "$img"
	"$KBOX" mkfs.exfat -q -d "$tree" "$img" >/dev/null || return 1
	# The fault: the first cluster of a file marked free in the allocation
	# bitmap, which fsck -p repairs (the kernel could hand it out again).
	local first bm byte v
	first=$("$KBOX_TESTBIN/exfat-locate" "$img" entry /data/random.bin | cut -d' ' -f2)
	bm=$("$KBOX_TESTBIN/exfat-locate" "$img" bitmap | cut -d' ' -f1)
	byte=$((bm + (first - 2) / 8))
	v=$(od -An -tu1 -j "$byte" -N1 "$img" | tr -d ' ')
	printf "\\x$(printf %02x $((v & ~(1 << ((first - 2) % 8)) & 255)))" |
		dd of="$img" bs=1 seek="$byte" conv=notrunc status=none
	rm -rf "$tree"
}

boot_image() {
	local initrd=$1 disk=$2 out=$3 harness
	harness=$("$KBOX_ROOT/tests/vm/prepare") || return 1
	mkdir -p "$out"
	rm -f "$out/results.img"
	truncate -s 4M "$out/results.img"
	local qemu=(qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp 2 -m 768
		-nodefaults -no-user-config -display none -no-reboot
		-kernel "$harness/vmlinux" -initrd "$initrd"
		-append "console=ttyS0 quiet loglevel=4 panic=1 root=/dev/vda ro mitigations=off tsc=reliable no_timer_check rd.shell=0 rd.emergency=poweroff"
		-drive "file=$disk,format=raw,if=virtio"
		-drive "file=$out/results.img,format=raw,if=virtio"
		-serial "file:$out/console.log" -monitor none)
	[ -f /usr/share/qemu/qboot.rom ] && qemu+=(-bios /usr/share/qemu/qboot.rom)
	# Timed on the host: under TCG the guest's clock can be far off. The
	# loop ends with qemu, which timeout bounds.
	local t0 now status
	t0=$(date +%s%N)
	: >"$out/console.log"
	timeout -k 10 "$IMAGES_BOOT_TIMEOUT" "${qemu[@]}" </dev/null >"$out/qemu.log" 2>&1 &
	local pid=$!
	rm -f "$out/repaired-seconds"
	while kill -0 "$pid" 2>/dev/null; do
		if [ ! -e "$out/repaired-seconds" ] && grep -q '^kbox-test: fsck done' "$out/console.log"; then
			now=$(date +%s%N)
			echo $(((now - t0) / 1000000)) | awk '{ printf "%.1f\n", $1 / 1000 }' >"$out/repaired-seconds"
		fi
		sleep 0.2
	done
	wait "$pid"
	status=$?
	now=$(date +%s%N)
	echo $(((now - t0) / 1000000)) | awk '{ printf "%.1f\n", $1 / 1000 }' >"$out/boot-seconds"
	tr -d '\000' <"$out/results.img" >"$out/results"
	if [ "$status" = 124 ] || [ "$status" = 137 ]; then
		echo "boot of $initrd timed out after ${IMAGES_BOOT_TIMEOUT}s; console ends:" >&2
		tail -n 15 "$out/console.log" >&2
		return 1
	fi
	if [ ! -s "$out/results" ]; then
		echo "boot of $initrd wrote no results (qemu exit $status); console ends:" >&2
		tail -n 15 "$out/console.log" >&2
		return 1
	fi
}

result() {
	awk -v n="$2" '/^@@ / { on = ($2 == n); if (on) print $3; next } on' "$1/results"
}

# Each failed check is named on stderr; the status is the number of failures.
judge() {
	local out=$1 sums=$2 list=$3 bad=0 status
	_want() { # NAME STATUS WHY
		status=$(result "$out" "$1" | head -n 1)
		if [ "$status" != "$2" ]; then
			echo "check $1: exit ${status:-(not run)}, wanted $2 ($3): $(result "$out" "$1" | sed 1d | head -n 5 | tr '\n' ' ')" >&2
			bad=$((bad + 1))
		fi
	}
	_want which-fsck 0 "fsck.exfat resolves"
	if [ "$(result "$out" which-fsck | sed -n 2p)" != /usr/bin/kbox ]; then
		echo "check which-fsck: fsck.exfat in the image is $(result "$out" which-fsck | sed -n 2p), not kbox" >&2
		bad=$((bad + 1))
	fi
	_want fsck-console 4 "fsck without a mode on the console, as dracut runs it, checks only"
	_want fsck-repair 1 "fsck -p repairs the volume"
	_want fsck-clean 0 "the repaired volume checks clean"
	_want mount 0 "the kernel exfat driver mounts it"
	_want sums 0 "every file is read"
	if ! diff <(result "$out" sums | sed 1d | LC_ALL=C sort -k2) "$sums" >&2; then
		echo "check sums: the files read in the VM differ from those written (above)" >&2
		bad=$((bad + 1))
	fi
	_want gpio-watch 0 "gpio-watch -L lists the chips"
	if ! result "$out" gpio-watch | grep -q kbox-image-test; then
		echo "check gpio-watch: the simulated chip 'kbox-image-test' is not listed" >&2
		bad=$((bad + 1))
	fi
	_want kbox-list 0 "kbox --list"
	if [ "$(result "$out" kbox-list | sed 1d)" != "$list" ]; then
		echo "check kbox-list: the image's kbox lists '$(result "$out" kbox-list | sed 1d | tr '\n' ' ')', wanted '$(tr '\n' ' ' <<<"$list")'" >&2
		bad=$((bad + 1))
	fi
	return "$bad"
}


# The checks both builders' suites make (they run inside bats tests).

# assert_kbox_in_listing LISTING: an image listing (lsinitramfs -l, lsinitrd)
# holds usr/bin/kbox, every library `kbox --libs` names in $ROOT and a link
# to kbox per applet.
assert_kbox_in_listing() {
	local lib dir name
	grep -qE ' usr/bin/kbox$' <<<"$1" || fail "no usr/bin/kbox in the image"
	for lib in $(in_root "$ROOT" kbox --libs); do
		grep -qE " (usr/)?lib/.*/${lib##*/}( ->|\$)" <<<"$1" || fail "$lib is not in the image"
	done
	while IFS=/ read -r dir name; do
		grep -qE " usr/$dir/$name -> /usr/bin/kbox\$" <<<"$1" || fail "no link usr/$dir/$name -> /usr/bin/kbox"
	done < <(in_root "$ROOT" kbox --list-full)
}

# assert_booted_ok OUT: the boot reported, every check of inside.sh passed,
# and the host finds the volume repaired.
assert_booted_ok() {
	[ -s "$1/results" ] || fail "the image did not report: $(cat "$1.err")"
	run judge "$1" "$OUT/sums" "$(cat "$OUT/kbox.list")"
	[ "$status" -eq 0 ] || fail "checks failed inside the image: $output"
	run -0 "$KBOX" fsck.exfat -n "$OUT/disk.img"
}

# print_figures NAME WITHOUT WITH BOOT_OUT: sizes and times, as TAP comments.
print_figures() {
	echo "# $1 image: $(stat -c %s "$2") bytes without kbox, $(stat -c %s "$3") with" >&3
	echo "# $1 boot: volume repaired $(cat "$4/repaired-seconds" 2>/dev/null || echo '?') s after qemu" \
		"started, powered off after $(cat "$4/boot-seconds" 2>/dev/null || echo '?') s (host clock);" \
		"the guest's clock said $(sed -n 's/^@@ uptime-repaired //p' "$4/results" 2>/dev/null) s" >&3
}
