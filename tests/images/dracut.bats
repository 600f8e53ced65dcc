#!/usr/bin/env bats
# kbox's dracut module, proven by booting: dracut builds images in a bookworm
# root with the package installed, qemu boots them with the VM harness's
# kernel, and inside.sh runs kbox from the image before the root is mounted.
# Slow: run by `make check-images`, not `make check`.
load ../test_helper
load images

# --no-hostonly: the root is a chroot, whose "host" is the build machine.
build_image() {
	in_root "$ROOT" dracut --quiet --force --no-hostonly --add kboxtest --kver "$KVER" "$1"
}

setup_file() {
	images_require
	export ROOT=$BATS_FILE_TMPDIR/root OUT=$BATS_FILE_TMPDIR
	root_unpack dracut "$ROOT"
	root_add_gpio_sim "$ROOT"
	KVER=$(root_kernel "$ROOT")
	export KVER
	install -D -m 0755 "$IMAGES_HERE/inside.sh" "$ROOT/etc/kbox-test/inside.sh"
	cp -r "$IMAGES_HERE/scaffold/dracut-99kboxtest" "$ROOT/usr/lib/dracut/modules.d/99kboxtest"

	build_image /boot/without-kbox.img
	cp "$KBOX_DEB" "$ROOT/root/kbox.deb"
	in_root "$ROOT" dpkg -i /root/kbox.deb >"$OUT/dpkg.log" 2>&1 || { cat "$OUT/dpkg.log" >&2; return 1; }
	build_image /boot/with-kbox.img
	in_root "$ROOT" kbox --list >"$OUT/kbox.list"

	test_volume "$OUT/disk.img" "$OUT/sums"
	boot_image "$ROOT/boot/with-kbox.img" "$OUT/disk.img" "$OUT/boot" 2>"$OUT/boot.err" || true

	echo "# dracut image: $(stat -c %s "$ROOT/boot/without-kbox.img") bytes without kbox," \
		"$(stat -c %s "$ROOT/boot/with-kbox.img") with" >&3
	echo "# dracut boot: volume repaired $(repaired_at "$OUT/boot" || echo '?') s after the" \
		"kernel started (guest clock); boot and checks $(cat "$OUT/boot/boot-seconds") s (host clock)" >&3
}

boot_ok() {
	[ -s "$OUT/boot/results" ] || fail "the image did not report: $(cat "$OUT/boot.err")"
}

@test "dracut takes the kbox module by itself: kbox, the libraries kbox --libs names, a link per applet" {
	run -0 in_root "$ROOT" lsinitrd /boot/with-kbox.img
	local listing=$output lib name
	grep -qE ' usr/bin/kbox$' <<<"$listing" || fail "no usr/bin/kbox in the image"
	for lib in $(in_root "$ROOT" kbox --libs); do
		grep -qE " (usr/)?lib/.*/${lib##*/}( ->|\$)" <<<"$listing" || fail "$lib is not in the image"
	done
	while IFS=/ read -r dir name; do
		grep -qE " usr/$dir/$name -> /usr/bin/kbox\$" <<<"$listing" || fail "no link usr/$dir/$name -> /usr/bin/kbox"
	done < <(in_root "$ROOT" kbox --list-full)
	run -0 in_root "$ROOT" lsinitrd /boot/without-kbox.img
	refute_output --partial usr/bin/kbox
}

@test "booted: fsck.exfat -p repairs the volume, the exfat driver reads every file, gpio-watch -L lists the chip" {
	boot_ok
	run judge "$OUT/boot" "$OUT/sums" "$(cat "$OUT/kbox.list")"
	[ "$status" -eq 0 ] || fail "checks failed inside the image: $output"
	run -0 "$KBOX" fsck.exfat -n "$OUT/disk.img"
}

@test "booted: kbox --list in the image names every applet the package has" {
	boot_ok
	run -0 result "$OUT/boot" kbox-list
	assert_equal "$(sed 1d <<<"$output")" "$(cat "$OUT/kbox.list")"
}
