#!/usr/bin/env bats
# The Debian package (make deb) in a fresh bookworm root next to exfatprogs,
# with a kernel installed: no file conflicts, every link runs, the initramfs
# gets kbox, a file another hook placed is kept, purge leaves nothing. The
# tests run in order on one root. Needs the package (make deb); make check and
# make check-images run it.
load ../test_helper
load images

# Every path in the root but the package manager's own records and caches.
snapshot() {
	(cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
		-o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache -o -path ./var/log \
		-o -path ./root/kbox.deb \) -prune -o -print | LC_ALL=C sort)
}

# entry PATH: the initrd's listing line for PATH ("-rwxr-xr-x ... usr/bin/kbox",
# "lrwxrwxrwx ... usr/bin/gpio-watch -> /usr/bin/kbox"), empty when absent.
entry() {
	in_root "$ROOT" lsinitramfs -l "/boot/initrd.img-$KVER" | awk -v p="$1" '$9 == p'
}

setup_file() {
	images_require
	export ROOT=$BATS_FILE_TMPDIR/root OUT=$BATS_FILE_TMPDIR
	root_unpack initramfs-tools "$ROOT"
	KVER=$(root_kernel "$ROOT")
	export KVER
	cp "$KBOX_DEB" "$ROOT/root/kbox.deb"
	snapshot >"$OUT/before"
}

teardown_file() {
	root_drop "$ROOT"
}

@test "lintian: no errors, and no warnings that are not overridden with a reason" {
	run lintian --fail-on error,warning "$KBOX_DEB"
	[ "$status" -eq 0 ] || fail "lintian: $output"
	# Each override carries its reason on the line above it.
	run -0 awk '/^kbox: / && prev !~ /^#/ { print; bad = 1 } { prev = $0 } END { exit bad }' \
		"$KBOX_ROOT/debian/kbox.lintian-overrides"
}

@test "the libraries opened on first use are in Depends, Recommends or Suggests by their notes' priority" {
	run -0 dpkg-deb -f "$KBOX_DEB" Depends Recommends Suggests
	local fields=$output notes soname prio pkg allowed
	dpkg-deb --fsys-tarfile "$KBOX_DEB" | tar -xO ./usr/bin/kbox >"$OUT/kbox"
	chmod +x "$OUT/kbox"
	notes=$("$OUT/kbox" --libs --json)
	[ -n "$notes" ] || fail "kbox --libs --json printed nothing"
	while read -r prio soname; do
		# The package that built kbox had the library installed.
		pkg=$(dpkg -S "*/$soname" 2>/dev/null | head -n 1 | cut -d: -f1)
		[ -n "$pkg" ] || fail "no package installed here ships $soname"
		case $prio in
		required) allowed="Depends" ;;
		recommended) allowed="Depends|Recommends" ;;
		suggested) allowed="Depends|Recommends|Suggests" ;;
		*) fail "unknown priority '$prio' for $soname" ;;
		esac
		grep -qE "^($allowed): .*\\b$pkg\\b" <<<"$fields" || fail "$soname ($prio, package $pkg) is not in $allowed: $fields"
	done < <(jq -r '.[] | .priority + " " + .soname[0]' <<<"$notes")
}

@test "installs beside exfatprogs: no file of the package is another package's, exfatprogs' commands stay" {
	run -0 in_root "$ROOT" apt-get install -y -q /root/kbox.deb
	run -0 in_root "$ROOT" dpkg -L kbox
	local path owners
	while read -r path; do
		[ -d "$ROOT$path" ] && [ ! -L "$ROOT$path" ] && continue
		owners=$(in_root "$ROOT" dpkg -S "$path" | cut -d: -f1)
		[ "$owners" = kbox ] || fail "$path is also owned by: $owners"
	done <<<"$output"
	for path in $(in_root "$ROOT" dpkg -L exfatprogs | grep '/sbin/'); do
		run -0 in_root "$ROOT" dpkg -S "$path"
		assert_output --partial exfatprogs
		[ "$(readlink -f "$ROOT$path")" != "$ROOT/usr/bin/kbox" ] || fail "$path is kbox"
	done
}

@test "every applet link the package installs runs --version" {
	run -0 in_root "$ROOT" dpkg -L kbox
	local path n=0
	while read -r path; do
		[ -L "$ROOT$path" ] && [[ $path == /usr/bin/* || $path == /usr/sbin/* ]] || continue
		run -0 in_root "$ROOT" "$path" --version
		n=$((n + 1))
	done < <(in_root "$ROOT" dpkg -L kbox)
	[ "$n" -eq 4 ] || fail "expected 4 links (gpio-watch, cgexec-clone3, uffd-snapshot, splitlock-stat), ran $n"
	run -0 in_root "$ROOT" kbox --version
}

@test "the hook does nothing when kbox is not there" {
	mkdir "$ROOT/root/image"
	mv "$ROOT/usr/bin/kbox" "$ROOT/usr/bin/kbox.away"
	run in_root "$ROOT" env DESTDIR=/root/image verbose=n /usr/share/initramfs-tools/hooks/kbox
	mv "$ROOT/usr/bin/kbox.away" "$ROOT/usr/bin/kbox"
	assert_success
	run find "$ROOT/root/image" -mindepth 1
	assert_output ""
	rmdir "$ROOT/root/image"
}

@test "update-initramfs -u puts kbox and its links into the initrd" {
	run -0 in_root "$ROOT" update-initramfs -u -k "$KVER"
	run entry usr/bin/kbox
	assert_output --regexp '^-'
	run entry usr/sbin/fsck.exfat
	assert_output --regexp ' -> /usr/bin/kbox$'
	run entry usr/bin/gpio-watch
	assert_output --regexp ' -> /usr/bin/kbox$'
}

@test "a fsck.exfat another hook put into the image is kept, and replaced only when initramfs.conf asks" {
	# initramfs-tools' own fsck hook copies exfatprogs' fsck.exfat for FSTYPE=exfat.
	echo FSTYPE=exfat >"$ROOT/etc/initramfs-tools/conf.d/kbox-test-fstype"
	run -0 in_root "$ROOT" update-initramfs -u -k "$KVER"
	run entry usr/sbin/fsck.exfat
	assert_output --regexp '^-'
	refute_output --partial kbox
	run entry usr/sbin/mkfs.exfat
	assert_output --regexp ' -> /usr/bin/kbox$'
	sed -i 's/^KBOX_REPLACE=.*/KBOX_REPLACE="fsck.exfat"/' "$ROOT/etc/kbox/initramfs.conf"
	run -0 in_root "$ROOT" update-initramfs -u -k "$KVER"
	rm "$ROOT/etc/initramfs-tools/conf.d/kbox-test-fstype"
	run entry usr/sbin/fsck.exfat
	assert_output --regexp ' -> /usr/bin/kbox$'
}

@test "initramfs.conf chooses the applets: only their links and libraries go in" {
	sed -i 's/^KBOX_APPLETS=.*/KBOX_APPLETS="fsck.exfat"/' "$ROOT/etc/kbox/initramfs.conf"
	run -0 in_root "$ROOT" update-initramfs -u -k "$KVER"
	run entry usr/sbin/fsck.exfat
	assert_output --regexp ' -> /usr/bin/kbox$'
	run entry usr/bin/gpio-watch
	assert_output ""
	local lib
	for lib in $(in_root "$ROOT" kbox --libs gpio-watch); do
		grep -qxF "$lib" <(in_root "$ROOT" kbox --libs fsck.exfat) && continue
		lib=${lib#/}
		run entry "usr/${lib#usr/}"
		assert_output ""
	done
}

@test "apt-get purge kbox leaves nothing behind, and the hook is gone from the next image" {
	run -0 in_root "$ROOT" apt-get purge -y -q kbox
	run -1 in_root "$ROOT" dpkg -s kbox
	snapshot >"$OUT/after"
	run diff "$OUT/before" "$OUT/after"
	[ "$status" -eq 0 ] || fail "left behind or removed by install and purge: $output"
	run -0 in_root "$ROOT" update-initramfs -u -k "$KVER"
	run entry usr/bin/kbox
	assert_output ""
}
