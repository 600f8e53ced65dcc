#!/usr/bin/env bats
# kbox's initramfs-tools hook, proven by booting: mkinitramfs builds images in
# a bookworm root with the package installed, qemu boots them with the VM
# harness's kernel, and inside.sh runs kbox from the image before the root is
# mounted. One image has a library left out and must fail. Needs the package
# (make deb); make check and make check-images run it.
load ../test_helper
load images

setup_file() {
	images_require
	export ROOT=$BATS_FILE_TMPDIR/root OUT=$BATS_FILE_TMPDIR
	root_unpack initramfs-tools "$ROOT"
	root_add_gpio_sim "$ROOT"
	KVER=$(root_kernel "$ROOT")
	export KVER
	local s=$IMAGES_HERE/scaffold
	install -D -m 0755 "$IMAGES_HERE/inside.sh" "$ROOT/etc/kbox-test/inside.sh"
	install -D -m 0755 "$s/initramfs-tools-hook" "$ROOT/etc/initramfs-tools/hooks/kbox-test"
	install -D -m 0755 "$s/initramfs-tools-premount" "$ROOT/etc/initramfs-tools/scripts/local-premount/kbox-test"

	in_root "$ROOT" mkinitramfs -o /boot/without-kbox.img "$KVER"
	# Installing the package runs update-initramfs -u (its initramfs
	# trigger): /boot/initrd.img-KVER is the image with kbox.
	cp "$KBOX_DEB" "$ROOT/root/kbox.deb"
	in_root "$ROOT" dpkg -i /root/kbox.deb >"$OUT/dpkg.log" 2>&1 || { cat "$OUT/dpkg.log" >&2; return 1; }
	grep -q "Generating /boot/initrd.img-$KVER" "$OUT/dpkg.log" ||
		{ echo "installing the package did not rebuild the initrd:" >&2; cat "$OUT/dpkg.log" >&2; return 1; }
	export WITH=/boot/initrd.img-$KVER
	in_root "$ROOT" kbox --libs gpio-watch >"$ROOT/etc/kbox-test/drop"
	install -m 0755 "$s/initramfs-tools-drop" "$ROOT/etc/initramfs-tools/hooks/kbox-test-drop"
	in_root "$ROOT" mkinitramfs -o /boot/without-gpiod.img "$KVER"
	rm "$ROOT/etc/initramfs-tools/hooks/kbox-test-drop"
	in_root "$ROOT" kbox --list >"$OUT/kbox.list"

	test_volume "$OUT/disk.img" "$OUT/sums"
	cp "$OUT/disk.img" "$OUT/disk-neg.img"
	# Side by side: each boot spends most of its time on one CPU.
	boot_image "$ROOT$WITH" "$OUT/disk.img" "$OUT/boot" 2>"$OUT/boot.err" &
	boot_image "$ROOT/boot/without-gpiod.img" "$OUT/disk-neg.img" "$OUT/neg" 2>"$OUT/neg.err" &
	wait

	print_figures initramfs-tools "$ROOT/boot/without-kbox.img" "$ROOT$WITH" "$OUT/boot"
}

teardown_file() {
	root_drop "$ROOT"
}

@test "mkinitramfs puts kbox, the libraries kbox --libs names and a link per applet into the image" {
	run -0 in_root "$ROOT" lsinitramfs -l "$WITH"
	assert_kbox_in_listing "$output"
	run -0 in_root "$ROOT" lsinitramfs /boot/without-kbox.img
	refute_output --partial usr/bin/kbox
}

@test "booted: fsck on the console checks only, fsck.exfat -p repairs, the exfat driver reads every file, gpio-watch -L lists the chip, kbox --list" {
	assert_booted_ok "$OUT/boot"
}

@test "an image with gpio-watch's library left out fails the checks, at gpio-watch only" {
	[ -s "$OUT/neg/results" ] || fail "the image did not report: $(cat "$OUT/neg.err")"
	[ -s "$ROOT/etc/kbox-test/drop" ] || fail "kbox --libs gpio-watch named no library"
	run judge "$OUT/neg" "$OUT/sums" "$(cat "$OUT/kbox.list")"
	[ "$status" -ne 0 ] || fail "every check passed without $(cat "$ROOT/etc/kbox-test/drop")"
	assert_output --partial "check gpio-watch"
	# Only the applet that needs the library fails: kbox itself and the others run.
	refute_output --regexp "check (which-fsck|fsck-console|fsck-repair|fsck-clean|mount|sums|kbox-list)"
}
