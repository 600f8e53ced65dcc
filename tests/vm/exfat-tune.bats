#!/usr/bin/env bats
# The Linux exfat driver (in the test VM) mounts volumes whose label, serial
# and GUID tune.exfat changed (on the host, and on a block device in the VM),
# util-linux blkid there reports the new values, and what the driver wrote
# afterwards passes both fsck.exfat on the host.
load test_helper

setup_file() {
	vm_require
	export IMGS=$BATS_FILE_TMPDIR
	# plain: a fresh volume relabelled; full: a root directory with no free
	# entry (512-byte clusters: label, bitmap, up-case, 3 files of 3 entries
	# and one of 4), so -U grows it by a cluster.
	"$KBOX" mkfs.exfat -q -L Before "$IMGS/plain.img" 64M
	"$KBOX" tune.exfat -L "Tuned ✓" -I 0x2468ace0 -U 01234567-89ab-cdef-0123-456789abcdef "$IMGS/plain.img"
	mkdir -p "$IMGS/tree"
	for f in one two three a-name-of-20-chars; do echo "$f" > "$IMGS/tree/$f"; done
	"$KBOX" mkfs.exfat -q -c 512 -d "$IMGS/tree" "$IMGS/full.img" 16M
	"$KBOX" tune.exfat -L Grown -U random "$IMGS/full.img"
	# util-linux blkid and its library, run from /files in the VM.
	local lib; lib=$(ldd "$(command -v blkid)" | awk '/libblkid/ { print $3 }')
	vm_run --disk "$IMGS/plain.img" --disk "$IMGS/full.img" --file "$(command -v blkid)" \
		--file "$(readlink -f "$lib")" --timeout 240 - <<-'EOF'
		mkdir -p /tmp/lib /mnt/x && ln -s /files/libblkid.so.1.* /tmp/lib/libblkid.so.1
		ids() {
			for tag in TYPE LABEL UUID; do
				echo "$tag=$(LD_LIBRARY_PATH=/tmp/lib /files/blkid -p -s "$tag" -o value "$1")" || return 1
			done
		}
		exercise() {
			ids "$1" && mount -t exfat "$1" /mnt/x && grep " /mnt/x " /proc/mounts && ls /mnt/x &&
				echo "written by the kernel driver" > /mnt/x/from-vm.txt && umount /mnt/x && ids "$1"
		}
		vm_case plain exercise /dev/vda
		vm_case full exercise /dev/vdb
		# tune.exfat on a block device under this kernel, then the driver again.
		vm_case in_vm eval 'tune.exfat -L InTheVM -I 0x13579bdf -U clear /dev/vda && exercise /dev/vda &&
			tune.exfat -l -i -u /dev/vda'
		vm_case dmesg eval 'dmesg | grep -i exfat'
	EOF
}

@test "the kernel driver mounts volumes after tune.exfat -L/-I/-U, blkid reports the new values, fsck agrees" {
	vm_result plain
	assert_success
	assert_line "TYPE=exfat"
	assert_line "LABEL=Tuned ✓"
	assert_line "UUID=2468-ACE0"
	assert_line --regexp '^/dev/vda /mnt/x exfat '
	vm_result full
	assert_success
	assert_line "LABEL=Grown"
	assert_line --regexp '^/dev/vdb /mnt/x exfat '
	for f in one two three a-name-of-20-chars; do assert_line "$f"; done
	vm_result in_vm
	assert_success
	assert_line "LABEL=InTheVM"
	assert_line "UUID=1357-9BDF"
	assert_line --regexp '^/dev/vda /mnt/x exfat '
	# tune.exfat -l -i -u, run last: the label and the serial (then an empty GUID line).
	[ "${lines[-1]}" = 0x13579bdf ] && [ "${lines[-2]}" = InTheVM ]
	vm_result dmesg
	refute_output --regexp '[Ee]rror|corrupt|invalid'
	for img in plain full; do
		run -0 "$KBOX" fsck.exfat -n "$IMGS/$img.img"
		if command -v /usr/sbin/fsck.exfat >/dev/null; then
			run -0 /usr/sbin/fsck.exfat -n "$IMGS/$img.img"
			assert_output --partial ": clean."
		fi
	done
	run -0 "$KBOX" tune.exfat -l -i -u "$IMGS/plain.img"
	assert_output $'InTheVM\n0x13579bdf'
}
