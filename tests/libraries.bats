#!/usr/bin/env bats
# The shared libraries opened on first use: their .note.dlopen notes, which
# runs load which library (LD_DEBUG=files), and what an applet does when its
# library is missing (hidden by a bind mount in a private mount namespace).
load test_helper

setup() {
	WORK=$BATS_TEST_TMPDIR
}

# The libraries a run loaded with dlopen, one soname a line.
loaded_by() {
	LD_DEBUG=files "$@" 2>&1 >/dev/null | sed -n 's/.*file=\([^ ]*\) \[0\];  dynamically loaded by.*/\1/p'
}

# without_lib SONAME COMMAND...: runs COMMAND where SONAME's file reads as
# empty, as on a system without its package; the rest of the machine keeps it.
without_lib() {
	local soname=$1 path
	shift
	path=$("$KBOX" --libs | grep -m1 "/$soname\$") || { echo "$soname: not among kbox --libs" >&2; return 99; }
	path=$(readlink -f "$path")
	unshare -m sh -c 'mount --bind /dev/null "$1" && shift && exec "$@"' sh "$path" "$@"
}

# The one line a missing library is reported with.
missing_line() { # APPLET SONAME PURPOSE PACKAGE
	echo "^$1: $2 is needed to $3 but cannot be loaded: .*; install the $4 package\$"
}

@test "each library's .note.dlopen is an FDO note of type 0x407c0c0a holding a JSON array" {
	[ -n "$(kb --libs --json)" ] || skip "no applet with a library built"
	# readelf walks the notes by their sizes: each is one FDO note, whose
	# descriptor is its JSON and the NUL.
	mapfile -t sizes < <(readelf -n "$KBOX" | grep -oE 'FDO +0x[0-9a-f]+[^(]*\(0x407c0c0a\)' | awk '{print $2}')
	mapfile -t notes < <(kb --libs --json)
	assert_equal "${#sizes[@]}" "${#notes[@]}"
	for i in "${!notes[@]}"; do
		assert_equal "$((sizes[i]))" "$((${#notes[i]} + 1))"
		run jq -e 'length == 1 and (.[0] | (.soname | type) == "array" and (.soname | length) == 1
			and (.feature | type) == "string" and (.description | type) == "string"
			and (.priority | IN("required", "recommended", "suggested")))' <<<"${notes[i]}"
		assert_success
	done
	# One note per library.
	assert_equal "$(kb --libs --json | jq -r '.[].soname[]' | sort | uniq -d)" ""
}

@test "fsck.exfat -n and mkfs.exfat on image files load no library" {
	require_applet mkfs.exfat
	require_applet fsck.exfat
	# A new image is all holes: nothing to probe, nothing to ask libmount.
	run loaded_by "$KBOX" mkfs.exfat -q "$WORK/img" 64M
	assert_success
	assert_output ""
	run loaded_by "$KBOX" fsck.exfat -n "$WORK/img"
	assert_success
	assert_output ""
	# An image that holds data is probed for old signatures: libblkid, and it
	# alone (what LD_DEBUG reports is seen here).
	run loaded_by "$KBOX" mkfs.exfat -q "$WORK/img"
	assert_success
	assert_output "libblkid.so.1"
}

@test "cgexec-clone3 -g /ABS/PATH recognises cgroup2 by statfs and loads no libmount" {
	require_root
	require_applet cgexec-clone3
	require_cmd unshare
	# A mount namespace where cgroup2 is mounted only at an unusual place.
	mkdir "$WORK/cg2"
	cat >"$WORK/inside" <<-'EOF'
		set -e
		mount -t tmpfs none /sys/fs/cgroup
		mount -t cgroup2 none "$WORK/cg2"
		cg=kbox-libs-test-$$
		echo "absolute:"
		LD_DEBUG=files "$KBOX" cgexec-clone3 -c --rm -g "$WORK/cg2/$cg" -- sh -c 'cat /proc/self/cgroup' 2>&1 |
			grep -e 'dynamically loaded' -e '^0::' | sed 's/^ *[0-9][0-9]*:\t//'
		echo "relative:"
		LD_DEBUG=files "$KBOX" cgexec-clone3 -c --rm -g "$cg" -- true 2>&1 |
			grep 'dynamically loaded' | sed 's/^ *[0-9][0-9]*:\t//'
	EOF
	run env WORK="$WORK" unshare -m sh "$WORK/inside"
	assert_success
	# Found by statfs: the command ran in the cgroup, no library was loaded.
	assert_line --index 0 "absolute:"
	assert_line --index 1 --regexp '^0::/kbox-libs-test-[0-9]+$'
	assert_line --index 2 "relative:"
	# A relative name needs the mount table, which libmount reads.
	assert_line --index 3 --regexp '^file=libmount\.so\.1 \[0\];  dynamically loaded by '
	assert_equal "${#lines[@]}" 4
}

@test "mkfs.exfat without libblkid: one line, exit 1, the image unchanged" {
	require_root
	require_applet mkfs.exfat
	kb mkfs.exfat -q -L OLD "$WORK/img" 64M
	sum=$(sha256sum <"$WORK/img")
	run --separate-stderr without_lib libblkid.so.1 "$KBOX" mkfs.exfat -L NEW "$WORK/img"
	assert_failure 1
	assert_equal "$output" ""
	assert_equal "$(wc -l <<<"$stderr")" 1
	[[ $stderr =~ $(missing_line mkfs.exfat libblkid.so.1 "find old signatures" libblkid1) ]]
	assert_equal "$(sha256sum <"$WORK/img")" "$sum"
	# Grown to a SIZE and refused: the file goes back to its size.
	run without_lib libblkid.so.1 "$KBOX" mkfs.exfat "$WORK/img" 128M
	assert_failure 1
	assert_equal "$(sha256sum <"$WORK/img")" "$sum"
	# A new image holds no signature: no libblkid needed.
	run without_lib libblkid.so.1 "$KBOX" mkfs.exfat -q "$WORK/new" 64M
	assert_success
}

@test "mkfs.exfat -P without libfdisk: one line, exit 1, the image unchanged, a new one removed" {
	require_root
	require_applet mkfs.exfat
	kb mkfs.exfat -q "$WORK/img" 64M
	sum=$(sha256sum <"$WORK/img")
	run --separate-stderr without_lib libfdisk.so.1 "$KBOX" mkfs.exfat -P gpt "$WORK/img"
	assert_failure 1
	[[ $stderr =~ $(missing_line mkfs.exfat libfdisk.so.1 "write partition tables" libfdisk1) ]]
	assert_equal "$(sha256sum <"$WORK/img")" "$sum"
	run without_lib libfdisk.so.1 "$KBOX" mkfs.exfat -P mbr "$WORK/new" 64M
	assert_failure 1
	assert_file_not_exist "$WORK/new"
}

@test "fsck.exfat without libzstd: an undo file or a rollback exits 8 and writes nothing" {
	require_root
	require_applet fsck.exfat
	require_applet mkfs.exfat
	kb mkfs.exfat -q "$WORK/img" 64M
	kb fsck.exfat -y -z "$WORK/undo" "$WORK/img" >/dev/null
	sum=$(sha256sum <"$WORK/img")
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" fsck.exfat -y -z "$WORK/undo2" "$WORK/img"
	assert_failure 8
	[[ $stderr =~ $(missing_line fsck.exfat libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_file_not_exist "$WORK/undo2"
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" fsck.exfat --rollback "$WORK/undo" "$WORK/img"
	assert_failure 8
	[[ $stderr =~ $(missing_line fsck.exfat libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_equal "$(sha256sum <"$WORK/img")" "$sum"
	# A check alone needs no library.
	run without_lib libzstd.so.1 "$KBOX" fsck.exfat -n "$WORK/img"
	assert_success
}

@test "tune.exfat -z without libzstd: one line, exit 1, the image unchanged, no undo file" {
	require_root
	require_applet tune.exfat
	require_applet mkfs.exfat
	kb mkfs.exfat -q -L OLD "$WORK/img" 64M
	sum=$(sha256sum <"$WORK/img")
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" tune.exfat -L NEW -z "$WORK/undo" "$WORK/img"
	assert_failure 1
	[[ $stderr =~ $(missing_line tune.exfat libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_equal "$(sha256sum <"$WORK/img")" "$sum"
	assert_file_not_exist "$WORK/undo"
	# Without an undo file, no library is needed for an image.
	run loaded_by "$KBOX" tune.exfat -L NEW "$WORK/img"
	assert_success
	assert_output ""
}

@test "fsck.exfat on a loop device without libmount exits 8 before reading it" {
	require_root
	require_applet fsck.exfat
	require_applet mkfs.exfat
	kb mkfs.exfat -q "$WORK/img" 64M
	dev=$(losetup -f --show "$WORK/img")
	run --separate-stderr without_lib libmount.so.1 "$KBOX" fsck.exfat -n "$dev"
	losetup -d "$dev"
	assert_failure 8
	[[ $stderr =~ $(missing_line fsck.exfat libmount.so.1 "read the mount table" libmount1) ]]
}

@test "cgexec-clone3 without libmount, where only the mount table knows cgroup2: exit 125, nothing made" {
	require_root
	require_applet cgexec-clone3
	require_cmd unshare
	mkdir "$WORK/cg2"
	cat >"$WORK/inside" <<-'EOF'
		mount -t tmpfs none /sys/fs/cgroup || exit 99
		mount -t cgroup2 none "$WORK/cg2" || exit 99
		mount --bind /dev/null "$LIB" || exit 99
		"$KBOX" cgexec-clone3 -c -g kbox-libs-test -- true
		rc=$?
		ls "$WORK/cg2" | grep -x kbox-libs-test
		exit $rc
	EOF
	lib=$(readlink -f "$(kb --libs cgexec-clone3 | grep -m1 /libmount.so.1)")
	run --separate-stderr env WORK="$WORK" LIB="$lib" unshare -m sh "$WORK/inside"
	assert_failure 125
	assert_equal "$output" ""
	[[ $stderr =~ $(missing_line cgexec-clone3 libmount.so.1 "read the mount table" libmount1) ]]
}

@test "gpio-watch without libgpiod: one line, exit 1" {
	require_root
	require_applet gpio-watch
	run --separate-stderr without_lib libgpiod.so.2 "$KBOX" gpio-watch
	assert_failure 1
	[[ $stderr =~ $(missing_line gpio-watch libgpiod.so.2 "find GPIO chips and their lines" libgpiod2) ]]
}

@test "uffd-snapshot -z without libzstd: one line, exit 1, no core file, the process untouched" {
	require_root
	require_applet uffd-snapshot
	mkdir "$WORK/out"
	sleep 60 &
	pid=$!
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" uffd-snapshot -z -o "$WORK/out/core.zst" "$pid"
	state=$(awk '{print $3}' "/proc/$pid/stat")
	kill "$pid"
	assert_failure 1
	[[ $stderr =~ $(missing_line uffd-snapshot libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_equal "$(ls -A "$WORK/out")" ""
	assert_equal "$state" S
}

@test "exfat2img without libzstd: -z and a compressed restore stop with one line, nothing made or written" {
	require_root
	require_applet exfat2img
	require_applet mkfs.exfat
	kb mkfs.exfat -q "$WORK/img" 64M
	kb exfat2img -z -o "$WORK/meta.zst" "$WORK/img" >/dev/null
	cp "$WORK/img" "$WORK/target"
	sum=$(sha256sum <"$WORK/target")
	mkdir "$WORK/out"
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" exfat2img -z -o "$WORK/out/meta.zst" "$WORK/img"
	assert_failure 1
	[[ $stderr =~ $(missing_line exfat2img libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_equal "$(ls -A "$WORK/out")" ""
	run --separate-stderr without_lib libzstd.so.1 "$KBOX" exfat2img -r "$WORK/meta.zst" "$WORK/target"
	assert_failure 1
	[[ $stderr =~ $(missing_line exfat2img libzstd.so.1 "compress undo files, cores and metadata images" libzstd1) ]]
	assert_equal "$(sha256sum <"$WORK/target")" "$sum"
	# A sparse image, written and restored, and dump.exfat need no library on image files.
	run loaded_by "$KBOX" exfat2img -o "$WORK/out/meta.img" "$WORK/img"
	assert_success
	assert_output ""
	run loaded_by "$KBOX" exfat2img -r "$WORK/out/meta.img" "$WORK/target"
	assert_output ""
	run loaded_by "$KBOX" dump.exfat "$WORK/img"
	assert_output ""
}

@test "kbox --libs reports a library that cannot be loaded and lists the others" {
	require_root
	require_applet mkfs.exfat
	run --separate-stderr without_lib libfdisk.so.1 "$KBOX" --libs mkfs.exfat
	assert_failure 1
	[[ $stderr =~ $(missing_line kbox libfdisk.so.1 "write partition tables" libfdisk1) ]]
	assert_line --regexp '/libmount\.so\.1$'
	assert_line --regexp '/libblkid\.so\.1$'
	refute_line --regexp 'libfdisk'
}
