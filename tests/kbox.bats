#!/usr/bin/env bats
# The multicall dispatcher, the build and the install.
load test_helper

@test "kbox --version prints the version" {
	run kb --version
	assert_success
	assert_output --regexp '^kbox [0-9]+\.[0-9]+\.[0-9]+$'
}

@test "kbox --help lists every applet with a summary" {
	run kb --help
	assert_success
	assert_line --partial 'Usage: kbox APPLET'
	for a in $(kb --list); do
		assert_line --regexp "^  $a +[^ ]"
	done
}

@test "kbox --list-full gives bin/ or sbin/ for every applet of --list" {
	run kb --list-full
	assert_success
	[ -n "$output" ] || skip "no applets built"
	assert_equal "$(kb --list-full | sed 's,.*/,,')" "$(kb --list)"
	refute_line --regexp '^[^bs]|^(s?bin)/$'
}

@test "an unknown applet fails with one line and exit 127" {
	run -127 kb no-such-applet
	assert_failure 127
	assert_output 'kbox: applet not found: no-such-applet'
	ln -s "$KBOX" "$BATS_TEST_TMPDIR/frobnicate"
	run -127 "$BATS_TEST_TMPDIR/frobnicate"
	assert_failure 127
	assert_output 'kbox: applet not found: frobnicate'
}

@test "an unknown kbox option is a usage error (exit 2)" {
	run kb --bogus
	assert_failure 2
	assert_line --index 0 'kbox: unknown option: --bogus'
}

@test "kbox with no arguments prints usage on stderr and exits 2" {
	run --separate-stderr kb
	assert_failure 2
	assert_equal "$output" ""
}

@test "every applet answers --help on stdout and --version" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	for a in $(kb --list); do
		run --separate-stderr kb "$a" --help
		assert_success
		assert_equal "$stderr" ""
		[ -n "$output" ]
		run kb "$a" --version
		assert_success
		assert_output --regexp "^$a \(kbox\) [0-9.]+$"
	done
}

@test "every applet rejects an unknown option with a hint and its usage exit code" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	for a in $(kb --list); do
		run --separate-stderr kb "$a" --no-such-option
		[ "$status" -ne 0 ] && [ "$status" -ne 127 ]
		[[ "$stderr" == *"$a"* ]]
		assert_equal "$output" ""
	done
}

@test "kbox --install -s DIR makes symlinks that run the applets" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	dir=$BATS_TEST_TMPDIR/links
	mkdir "$dir"
	run kb --install -s "$dir"
	assert_success
	for a in $(kb --list); do
		assert_symlink_to "$(readlink -f "$KBOX")" "$dir/$a"
		run "$dir/$a" --version
		assert_success
		assert_output --regexp "^$a \(kbox\)"
	done
	# Running it again replaces its own links, but never a foreign file.
	run kb --install -s "$dir"
	assert_success
	a=$(kb --list | head -1)
	rm "$dir/$a" && echo keep > "$dir/$a"
	run kb --install -s "$dir"
	assert_failure 1
	assert_output --partial "exists and is not kbox"
	assert_equal "$(cat "$dir/$a")" keep
}

@test "kbox --install DIR makes hard links" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	dir=$BATS_TEST_TMPDIR/hard
	mkdir "$dir"
	cp "$KBOX" "$BATS_TEST_TMPDIR/kbox"
	run "$BATS_TEST_TMPDIR/kbox" --install "$dir"
	assert_success
	a=$(kb --list | head -1)
	[ "$(stat -c %i "$dir/$a")" = "$(stat -c %i "$BATS_TEST_TMPDIR/kbox")" ]
	run "$dir/$a" --version
	assert_success
}

@test "kbox --install on a missing directory fails clearly" {
	run kb --install /nonexistent/dir
	assert_failure 1
	assert_output --partial 'kbox: --install: /nonexistent/dir'
}

@test "make install into a DESTDIR installs the binary, links, man pages, completions" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	dest=$BATS_TEST_TMPDIR/dest
	run make -C "$KBOX_ROOT" -s install DESTDIR="$dest" PREFIX=/usr
	assert_success
	assert_file_executable "$dest/usr/bin/kbox"
	assert_file_exist "$dest/usr/share/man/man1/kbox.1"
	assert_file_exist "$dest/usr/share/bash-completion/completions/kbox"
	while read -r path; do
		assert_symlink_to "$dest/usr/bin/kbox" "$dest/usr/$path"
		name=${path##*/}
		run "$dest/usr/$path" --version
		assert_success
		assert_output --regexp "^$name \(kbox\)"
		ls "$dest/usr/share/man/man"?/"$name".[18] >/dev/null
	done < <(kb --list-full)
	# The exFAT tools live in sbin, like every mkfs/fsck.
	for a in mkfs.exfat fsck.exfat tune.exfat exfatlabel; do
		kb --list | grep -qx "$a" || continue
		assert_link_exist "$dest/usr/sbin/$a"
	done
}

@test "make install: NO_LINKS applets get no link and a kbox-APPLET man page; hook, dracut module, config; uninstall" {
	kb --list | grep -qx fsck.exfat || skip "fsck.exfat not built"
	dest=$BATS_TEST_TMPDIR/dest
	run make -C "$KBOX_ROOT" -s install DESTDIR="$dest" PREFIX=/usr NO_LINKS=fsck.exfat
	assert_success
	assert_not_exist "$dest/usr/sbin/fsck.exfat"
	assert_not_exist "$dest/usr/share/bash-completion/completions/fsck.exfat"
	assert_not_exist "$dest/usr/share/man/man8/fsck.exfat.8"
	run sed -n '/^\.SH NAME/{n;p;}' "$dest/usr/share/man/man8/kbox-fsck.exfat.8"
	assert_output --regexp '^kbox\\-fsck\.exfat \\- '
	assert_link_exist "$dest/usr/sbin/mkfs.exfat"
	# The builders read fixed places; the installed BINDIR is written in.
	run grep -x 'KBOX_BIN=/usr/bin/kbox' "$dest/usr/share/initramfs-tools/hooks/kbox" \
		"$dest/usr/lib/dracut/modules.d/90kbox/module-setup.sh"
	assert_success
	assert_file_executable "$dest/usr/share/initramfs-tools/hooks/kbox"
	assert_file_exist "$dest/etc/kbox/initramfs.conf"
	# An edited configuration survives install and uninstall.
	echo 'KBOX_APPLETS="fsck.exfat"' >>"$dest/etc/kbox/initramfs.conf"
	run make -C "$KBOX_ROOT" -s install DESTDIR="$dest" PREFIX=/usr NO_LINKS=fsck.exfat
	assert_success
	run grep -c KBOX_APPLETS= "$dest/etc/kbox/initramfs.conf"
	assert_output 2
	run make -C "$KBOX_ROOT" -s uninstall DESTDIR="$dest" PREFIX=/usr
	assert_success
	assert_file_exist "$dest/etc/kbox/initramfs.conf"
	run find "$dest" -not -type d -not -path "$dest/etc/kbox/initramfs.conf"
	assert_output ""
}

# The sonames a binary's .note.dlopen notes declare, sorted, one a line.
note_sonames() { readelf -p .note.dlopen "$1" 2>/dev/null | grep -o '"soname":\["[^"]*"' | cut -d'"' -f4 | sort; }
json_sonames() { jq -r '.[].soname[]' | sort; }

@test "kbox links the C library alone" {
	run ldd "$KBOX"
	assert_success
	refute_output --regexp 'lib(mount|blkid|fdisk|gpiod|zstd|selinux|pcre2|uuid)'
	assert_output --partial 'libc.so.6'
}

@test "kbox --libs prints the path of every library the applets may open, and of what they need" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	run --separate-stderr kb --libs
	assert_success
	assert_equal "$stderr" ""
	# Absolute paths of files that exist, each once; every declared soname among them.
	refute_line --regexp '^[^/]'
	assert_equal "$(printf '%s\n' "$output" | sort | uniq -d)" ""
	while read -r path; do assert_file_exist "$path"; done <<<"$output"
	for soname in $(note_sonames "$KBOX"); do
		assert_line --regexp "/$soname\$"
	done
	# What the libraries need in turn, which ldd of the library shows too.
	if kb --list | grep -qx mkfs.exfat; then
		run kb --libs mkfs.exfat
		assert_success
		for lib in $(ldd "$(kb --libs mkfs.exfat | grep -m1 /libmount.so.1)" | awk '$3 ~ /^\// {print $3}'); do
			[[ $lib == */libc.so.* ]] && continue
			assert_line "$lib"
		done
		refute_line --regexp 'libgpiod|libzstd'
	fi
	# An applet without libraries: nothing.
	if kb --list | grep -qx splitlock-stat; then
		run kb --libs splitlock-stat
		assert_success
		assert_output ""
	fi
}

@test "kbox --libs --json prints the notes as the binary holds them" {
	[ -n "$(kb --list)" ] || skip "no applets built"
	run kb --libs --json
	assert_success
	assert_equal "$output" "$(readelf -p .note.dlopen "$KBOX" | grep -o '\[{.*}\]$')"
	assert_equal "$(kb --libs --json | json_sonames)" "$(note_sonames "$KBOX")"
	if kb --list | grep -qx fsck.exfat; then
		assert_equal "$(kb --libs --json fsck.exfat | json_sonames | tr '\n' ' ')" "libmount.so.1 libzstd.so.1 "
		# The applets' libraries together, each note once.
		run kb --libs --json fsck.exfat mkfs.exfat fsck.exfat
		assert_equal "$(json_sonames <<<"$output" | tr '\n' ' ')" \
			"libblkid.so.1 libfdisk.so.1 libmount.so.1 libzstd.so.1 "
	fi
}

@test "kbox --libs: an unknown applet exits 127, an unknown option 2" {
	run -127 kb --libs no-such-applet
	assert_failure 127
	assert_output 'kbox: applet not found: no-such-applet'
	run kb --libs --bogus
	assert_failure 2
	assert_output 'kbox: --libs: unknown option: --bogus'
}

@test "make APPLETS=... builds only those applets and declares only their libraries" {
	tmp=$BATS_TEST_TMPDIR
	# One object directory for every variant, seeded from the main build when
	# there is one: then only the links are made.
	mkdir -p "$tmp/b"
	[ -d "$KBOX_ROOT/build/libcommon" ] && cp -a "$KBOX_ROOT/build/libcommon" "$KBOX_ROOT/build/applets" "$tmp/b/"
	build() { make -C "$KBOX_ROOT" -s APPLETS="$1" BUILD="$tmp/b" OUT="$tmp/kbox-$2" "$tmp/kbox-$2"; }
	# No applet at all: no note, no library.
	run build "" none
	assert_success
	run "$tmp/kbox-none" --list
	assert_success
	assert_output ""
	assert_equal "$(note_sonames "$tmp/kbox-none")" ""
	run "$tmp/kbox-none" --libs
	assert_success
	assert_output ""
	# Each applet alone: the notes linked with its code are the libraries the
	# full binary names for it (struct applet's libs), and it links libc alone.
	[ -n "$(kb --list)" ] || skip "no applets built"
	for a in $(kb --list); do
		run build "$a" "$a"
		assert_success
		run "$tmp/kbox-$a" --list
		assert_output "$a"
		assert_equal "$(note_sonames "$tmp/kbox-$a")" "$(kb --libs --json "$a" | json_sonames)"
		assert_equal "$("$tmp/kbox-$a" --libs --json | json_sonames)" "$(note_sonames "$tmp/kbox-$a")"
		run ldd "$tmp/kbox-$a"
		refute_output --regexp 'lib(mount|blkid|fdisk|gpiod|zstd)'
	done
	# The exFAT formatter: mount state, signatures, partition tables; no GPIO, no zstd.
	if kb --list | grep -qx mkfs.exfat; then
		assert_equal "$(note_sonames "$tmp/kbox-mkfs.exfat" | tr '\n' ' ')" \
			"libblkid.so.1 libfdisk.so.1 libmount.so.1 "
		run "$tmp/kbox-mkfs.exfat" --libs
		refute_output --regexp 'libgpiod|libzstd'
	fi
	run build no-such x
	assert_failure
	assert_output --partial 'unknown applet(s): no-such'
}
