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

@test "make APPLETS=... builds only those applets and links only their libraries" {
	tmp=$BATS_TEST_TMPDIR
	# No applet at all: none of the libraries is linked.
	run make -C "$KBOX_ROOT" -s APPLETS= BUILD="$tmp/b0" OUT="$tmp/kbox0" "$tmp/kbox0"
	assert_success
	run "$tmp/kbox0" --list
	assert_success
	assert_output ""
	run ldd "$tmp/kbox0"
	refute_output --regexp 'lib(mount|blkid|gpiod|zstd|fdisk)'
	# One applet: exactly that one is listed.
	a=$(kb --list | head -1)
	[ -n "$a" ] || skip "no applets built"
	run make -C "$KBOX_ROOT" -s APPLETS="$a" BUILD="$tmp/b1" OUT="$tmp/kbox1" "$tmp/kbox1"
	assert_success
	run "$tmp/kbox1" --list
	assert_output "$a"
	# The exFAT tools need no GPIO and no zstd.
	if kb --list | grep -qx mkfs.exfat; then
		run make -C "$KBOX_ROOT" -s APPLETS=mkfs.exfat BUILD="$tmp/b2" OUT="$tmp/kbox2" "$tmp/kbox2"
		assert_success
		run ldd "$tmp/kbox2"
		refute_output --regexp 'lib(gpiod|zstd)'
	fi
	run make -C "$KBOX_ROOT" -s APPLETS=no-such BUILD="$tmp/b3" OUT="$tmp/kbox3" "$tmp/kbox3"
	assert_failure
	assert_output --partial 'unknown applet(s): no-such'
}
