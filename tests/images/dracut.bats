#!/usr/bin/env bats
# kbox's dracut module, proven by booting: dracut builds images in a bookworm
# root with the package installed, qemu boots them with the VM harness's
# kernel, and inside.sh runs kbox from the image before the root is mounted.
# Needs the package (make deb); make check and make check-images run it.
load ../test_helper
load images


setup_file() {
	images_require
	export ROOT=$BATS_FILE_TMPDIR/root OUT=$BATS_FILE_TMPDIR
	root_unpack dracut "$ROOT"
	root_add_gpio_sim "$ROOT"
	KVER=$(root_kernel "$ROOT")
	export KVER
	install -D -m 0755 "$IMAGES_HERE/inside.sh" "$ROOT/etc/kbox-test/inside.sh"
	cp -r "$IMAGES_HERE/scaffold/dracut-99kboxtest" "$ROOT/usr/lib/dracut/modules.d/99kboxtest"
	# Every image gets the test's module.
	echo 'add_dracutmodules+=" kboxtest "' >>"$ROOT/etc/dracut.conf.d/90-kbox-test.conf"

	in_root "$ROOT" dracut --quiet --force --kver "$KVER" /boot/without-kbox.img
	# Installing the package rebuilds /boot/initrd.img-KVER (its initramfs
	# trigger): that is the image with kbox.
	cp "$KBOX_DEB" "$ROOT/root/kbox.deb"
	in_root "$ROOT" dpkg -i /root/kbox.deb >"$OUT/dpkg.log" 2>&1 || { cat "$OUT/dpkg.log" >&2; return 1; }
	grep -q "Generating /boot/initrd.img-$KVER" "$OUT/dpkg.log" ||
		{ echo "installing the package did not rebuild the initrd:" >&2; cat "$OUT/dpkg.log" >&2; return 1; }
	export WITH=/boot/initrd.img-$KVER
	in_root "$ROOT" kbox --list >"$OUT/kbox.list"

	test_volume "$OUT/disk.img" "$OUT/sums"
	boot_image "$ROOT$WITH" "$OUT/disk.img" "$OUT/boot" 2>"$OUT/boot.err" || true

	print_figures dracut "$ROOT/boot/without-kbox.img" "$ROOT$WITH" "$OUT/boot"
}

teardown_file() {
	root_drop "$ROOT"
}

@test "dracut takes the kbox module by itself: kbox, the libraries kbox --libs names, a link per applet" {
	run -0 in_root "$ROOT" lsinitrd "$WITH"
	assert_kbox_in_listing "$output"
	run -0 in_root "$ROOT" lsinitrd /boot/without-kbox.img
	refute_output --partial usr/bin/kbox
}

@test "booted: fsck on the console checks only, fsck.exfat -p repairs, the exfat driver reads every file, gpio-watch -L lists the chip, kbox --list" {
	assert_booted_ok "$OUT/boot"
}
