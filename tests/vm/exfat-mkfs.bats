#!/usr/bin/env bats
# The Linux exfat driver (in the test VM) mounts volumes made by kbox's
# mkfs.exfat in several geometries, reads a -d populated tree back
# identical, and what it writes there passes Debian's fsck.exfat afterwards.
load test_helper

# name : mkfs options : SIZE  (each becomes one virtio disk, in this order)
GEOMETRIES=(
	"small::64M"
	"sect4k:-s 4096 -c 64K -L Sect4K:1G"
	"tinyclu:-c 512 --pack-bitmap -L Ünïcode:300M"
	"huge:-c 1M -U 01234567-89ab-cdef-0123-456789abcdef:2T"
	"gpt:-P gpt -L Parted:256M"
	"tree:-d @SRC@ -L Tree:64M"
)

setup_file() {
	vm_require
	export SRC=$BATS_FILE_TMPDIR/src IMGS=$BATS_FILE_TMPDIR
	mkdir -p "$SRC/sub/deeper" "$SRC/empty-dir"
	echo hello > "$SRC/a.txt"
	head -c 200000 /dev/urandom > "$SRC/sub/random.bin"
	: > "$SRC/empty"
	printf 'x' > "$SRC/ünïcödé 日本語 😀.txt"
	for i in $(seq 1 40); do echo "$i" > "$SRC/sub/deeper/f$i"; done
	touch -d '2021-03-04 05:06:08' "$SRC/sub/random.bin"
	touch -d '2000-01-02 03:04:06' "$SRC/a.txt"
	chmod 444 "$SRC/a.txt"

	local disks=() g name opts size
	for g in "${GEOMETRIES[@]}"; do
		IFS=: read -r name opts size <<<"$g"
		opts=${opts//@SRC@/$SRC}
		# shellcheck disable=SC2086
		"$KBOX" mkfs.exfat -q $opts "$IMGS/$name.img" "$size" ||
			{ echo "mkfs.exfat $opts $name.img $size failed" >&2; return 1; }
		disks+=(--disk "$IMGS/$name.img")
	done

	vm_run "${disks[@]}" --timeout 240 - <<-'EOF'
		# Disks in GEOMETRIES order; the gpt one is used through its partition.
		set -- small:vda sect4k:vdb tinyclu:vdc huge:vdd gpt:vde1 tree:vdf
		exercise() {
			dev=/dev/$1
			mkdir -p /mnt/x && mount -t exfat "$dev" /mnt/x || return 1
			grep " /mnt/x " /proc/mounts
			echo "written by the kernel driver" > /mnt/x/from-vm.txt &&
				mkdir -p /mnt/x/vmdir/nested &&
				head -c 3000000 /dev/urandom > /mnt/x/vmdir/blob &&
				for i in 1 2 3 4 5 6 7 8 9 10; do echo "$i" > "/mnt/x/vmdir/nested/small $i"; done &&
				sha256sum /mnt/x/vmdir/blob | cut -d' ' -f1 > /mnt/x/vmdir/blob.sum &&
				df -k /mnt/x | tail -1 &&
				umount /mnt/x
		}
		for pair in "$@"; do
			vm_case "mount_${pair%%:*}" exercise "${pair#*:}"
		done
		read_tree() {
			mount -t exfat -o ro /dev/vdf /mnt/x || return 1
			cd /mnt/x || return 1
			find . -mindepth 1 ! -name 'from-vm.txt' ! -path './vmdir*' | sort |
				while read -r p; do
					if [ -d "$p" ]; then echo "d|$p"; else
						echo "f|$p|$(stat -c '%s|%Y|%A' "$p")|$(sha256sum "$p" | cut -d' ' -f1)"; fi
				done
			cd / && umount /mnt/x
		}
		vm_case tree read_tree
	EOF
}

@test "the kernel exfat driver mounts and writes every kbox geometry" {
	for g in "${GEOMETRIES[@]}"; do
		name=${g%%:*}
		vm_result "mount_$name"
		[ "$status" -eq 0 ] || { echo "$name: $output $stderr"; return 1; }
		assert_output --partial " /mnt/x exfat "
	done
}

@test "what the kernel driver wrote passes Debian's fsck.exfat on the host" {
	require_cmd fsck.exfat
	for g in "${GEOMETRIES[@]}"; do
		name=${g%%:*}
		img=$IMGS/$name.img
		if [ "$name" = gpt ]; then
			# GPT partition 1 starts at 1 MiB; its end from the GPT entry.
			last=$(od -An -tu8 -j $((2 * 512 + 40)) -N8 "$img" | tr -d ' ')
			LOOP=$(losetup -f --show -o $((1 << 20)) --sizelimit $(((last + 1) * 512 - (1 << 20))) "$img")
			img=$LOOP
		fi
		run fsck.exfat -n "$img"
		[ -n "${LOOP:-}" ] && { losetup -d "$LOOP"; LOOP=; }
		[ "$status" -eq 0 ] || { echo "$name: $output"; return 1; }
		assert_output --regexp "clean\. directories [0-9]+, files [0-9]+"
		# vmdir, vmdir/nested + root; from-vm.txt, blob, blob.sum and 10 small files.
		[[ "$output" =~ directories\ ([0-9]+),\ files\ ([0-9]+) ]]
		[ "${BASH_REMATCH[1]}" -ge 3 ] && [ "${BASH_REMATCH[2]}" -ge 13 ]
	done
}

@test "a -d populated volume reads back identical through the kernel driver" {
	vm_result tree
	assert_success
	# Host: type|path|size|mtime|sha256; the VM adds the mode string before sha256.
	want=$(cd "$SRC" && find . -mindepth 1 | sort | while read -r p; do
		if [ -d "$p" ]; then echo "d|$p"; else
			echo "f|$p|$(stat -c '%s|%Y' "$p")|$(sha256sum "$p" | cut -d' ' -f1)"; fi
	done)
	got=$(awk -F'|' -v OFS='|' '$1 == "f" { print $1, $2, $3, $4, $6; next } { print }' <<<"$output")
	diff <(echo "$want") <(echo "$got")
	[ "$(grep -c '^f' <<<"$got")" -eq 44 ]
	# The read-only attribute: the driver drops the write bits.
	assert_line --regexp '^f\|\./a\.txt\|6\|[0-9]+\|-r-[^w]*\|'
	assert_line --regexp '^f\|\./sub/random\.bin\|200000\|[0-9]+\|-rw'
}
