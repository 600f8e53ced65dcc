#!/usr/bin/env bats
# The VM harness itself: one boot checks GPIO through gpio-sim, the exfat
# kernel driver against an image made on the host, cgroup2 controllers and
# the plumbing of vm_run (disks, output, status).
load test_helper

setup_file() {
	vm_require
	export EXFAT_IMG=$BATS_FILE_TMPDIR/exfat.img RAW_IMG=$BATS_FILE_TMPDIR/raw.img
	export HOST_WROTE=0
	truncate -s 64M "$EXFAT_IMG"
	truncate -s 1M "$RAW_IMG"
	if command -v mkfs.exfat >/dev/null; then
		mkfs.exfat -L KBOXVM "$EXFAT_IMG" >/dev/null
		# exfat-fuse wants a block device when run as root.
		if command -v mount.exfat-fuse >/dev/null && [ -c /dev/fuse ] && [ "$(id -u)" = 0 ]; then
			local loop mnt=$BATS_FILE_TMPDIR/host-mnt
			mkdir -p "$mnt"
			loop=$(losetup -f --show "$EXFAT_IMG")
			if mount.exfat-fuse "$loop" "$mnt" >/dev/null 2>&1; then
				echo "written on the host" >"$mnt/from-host.txt" && HOST_WROTE=1
				umount "$mnt"
			fi
			losetup -d "$loop"
		fi
	fi

	vm_run --disk "$EXFAT_IMG" --disk "$RAW_IMG" - <<-'EOF'
		# Two chips in one device (banks) plus a second device.
		create_chips() {
			gpiosim_new multi && gpiosim_bank multi bank0 8 left && gpiosim_bank multi bank1 3 right &&
				gpiosim_name multi bank0 0 reset && gpiosim_name multi bank0 5 led &&
				gpiosim_name multi bank1 2 button && gpiosim_live multi &&
				gpiosim_create single 4 alpha - gamma delta
		}
		vm_case gpio_create create_chips
		vm_case gpio_info_bank0 gpio-probe info "$(gpiosim_chip multi bank0)"
		vm_case gpio_info_bank1 gpio-probe info "$(gpiosim_chip multi bank1)"
		vm_case gpio_info_single gpio-probe info "$(gpiosim_chip single bank0)"
		vm_case gpio_nodes ls /dev/
		chip=$(gpiosim_chip single bank0)

		show_line2() { echo "sysfs $(gpiosim_value single bank0 2) chardev $(gpio-probe get "$chip" 2)"; }
		pull_line2() {
			show_line2 && gpiosim_pull single bank0 2 up && show_line2 &&
				gpiosim_pull single bank0 2 down && show_line2
		}
		vm_case gpio_pull pull_line2

		watch_line3() {
			gpio-probe watch "$chip" 3 2 20000 >/tmp/watch.out &
			watcher=$!
			ready_or_end() { grep -q ready /tmp/watch.out || ! kill -0 $watcher 2>/dev/null; }
			wait_until 20 "gpio-probe watch to be ready" ready_or_end
			gpiosim_pull single bank0 3 up && gpiosim_pull single bank0 3 down
			wait $watcher
			rc=$?
			cat /tmp/watch.out
			return $rc
		}
		vm_case gpio_events watch_line3

		unplug() {
			gpiosim_unplug single && ! test -e "$chip" && ls /dev/ | grep gpiochip &&
				gpiosim_remove single && gpiosim_remove multi && ! ls /dev/ | grep gpiochip
		}
		vm_case gpio_unplug unplug

		mkdir -p /mnt/exfat
		vm_case exfat_mount eval 'mount -t exfat /dev/vda /mnt/exfat && grep " /mnt/exfat " /proc/mounts'
		vm_case exfat_read cat /mnt/exfat/from-host.txt
		vm_case exfat_write eval '
			echo "written by the kernel driver" >/mnt/exfat/from-vm.txt && mkdir /mnt/exfat/dir &&
			head -c 3000000 /dev/urandom >/mnt/exfat/dir/blob && md5sum /mnt/exfat/dir/blob | cut -d" " -f1 &&
			umount /mnt/exfat'

		vm_case cgroup_controllers cat /sys/fs/cgroup/cgroup.controllers
		vm_case cgroup_subtree cat /sys/fs/cgroup/cgroup.subtree_control
		# A child cgroup limited to one task cannot fork.
		limited_child() {
			mkdir /sys/fs/cgroup/probe && cd /sys/fs/cgroup/probe && ls memory.max cpu.max pids.max &&
				echo 1 >pids.max && echo 64M >memory.max && cat memory.max || return 1
			sh -c 'echo $$ >/sys/fs/cgroup/probe/cgroup.procs && echo joined && /bin/true && /bin/true' 2>&1
			echo "fork status $?"
		}
		vm_case cgroup_child limited_child

		vm_case disks eval 'cat /sys/block/vda/size /sys/block/vdb/size && echo raw-disk-ok >/dev/vdb && sync'
		vm_case kbox kbox --version
		echo "to stdout"
		echo "to stderr" >&2
		exit 7
	EOF
}

@test "vm_run returns the script's stdout, stderr and exit status" {
	vm_result
	assert_equal "$status" 7
	assert_output "to stdout"
	assert_equal "$stderr" "to stderr"
}

@test "kbox runs inside the VM" {
	vm_result kbox
	assert_success
	assert_output --partial "kbox "
}

@test "gpio-sim banks become /dev/gpiochipN with the configured line names" {
	vm_result gpio_create
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	vm_result gpio_info_bank0
	assert_success
	assert_line --index 0 --regexp '^chip gpiochip[0-9]+ left 8$'
	assert_line --index 1 "line 0 reset input"
	assert_line --index 2 "line 1 - input"
	assert_line --index 6 "line 5 led input"
	vm_result gpio_info_bank1
	assert_success
	assert_line --index 0 --regexp '^chip gpiochip[0-9]+ right 3$'
	assert_line --index 3 "line 2 button input"
	vm_result gpio_info_single
	assert_success
	assert_line --index 0 --regexp '^chip gpiochip[0-9]+ gpio-sim\.[0-9]+-node0 4$'
	assert_line --index 1 "line 0 alpha input"
	assert_line --index 3 "line 2 gamma input"
	assert_line --index 4 "line 3 delta input"
	vm_result gpio_nodes
	assert_success
	[ "$(grep -c '^gpiochip[0-9]' <<<"$output")" -eq 3 ]
}

@test "a pull change on a gpio-sim line is seen as a value change" {
	vm_result gpio_pull
	assert_success
	assert_line --index 0 "sysfs 0 chardev 0"
	assert_line --index 1 "sysfs 1 chardev 1"
	assert_line --index 2 "sysfs 0 chardev 0"
}

@test "pull changes arrive as edge events on the chardev" {
	vm_result gpio_events
	assert_success
	assert_output "$(printf 'ready\nrising\nfalling')"
}

@test "live=0 unplugs the chip and removal cleans up" {
	vm_result gpio_unplug
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	assert_line --regexp '^gpiochip[0-9]+$'
}

@test "an exFAT image made on the host mounts with the kernel driver" {
	require_cmd mkfs.exfat
	vm_result exfat_mount
	assert_success
	assert_output --regexp '^/dev/vda /mnt/exfat exfat '
}

@test "a file written on the host is read in the VM" {
	[ "$HOST_WROTE" = 1 ] || skip "needs exfat-fuse, /dev/fuse and root on the host"
	vm_result exfat_read
	assert_success
	assert_output "written on the host"
}

@test "files written by the kernel driver read back on the host, fsck clean" {
	require_cmd fsck.exfat
	require_cmd mount.exfat-fuse
	require_root
	[ -c /dev/fuse ] || skip "needs /dev/fuse"
	vm_result exfat_write
	assert_success
	local vm_md5=$output
	run fsck.exfat -n "$EXFAT_IMG"
	assert_success
	assert_output --partial clean
	local loop mnt=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$mnt"
	loop=$(losetup -f --show "$EXFAT_IMG")
	run mount.exfat-fuse -o ro "$loop" "$mnt"
	if [ "$status" -ne 0 ]; then
		losetup -d "$loop"
		fail "exfat-fuse mount failed: $output"
	fi
	local text md5
	text=$(cat "$mnt/from-vm.txt")
	md5=$(md5sum <"$mnt/dir/blob" | cut -d' ' -f1)
	umount "$mnt"
	losetup -d "$loop"
	assert_equal "$text" "written by the kernel driver"
	assert_equal "$md5" "$vm_md5"
}

@test "cgroup2 in the VM offers memory, cpu and pids, enabled for children" {
	vm_result cgroup_controllers
	assert_success
	for c in memory cpu pids; do assert_output --regexp "(^| )$c( |$)"; done
	vm_result cgroup_subtree
	assert_success
	for c in memory cpu pids; do assert_output --regexp "(^| )$c( |$)"; done
}

@test "a child cgroup enforces its limits" {
	vm_result cgroup_child
	assert_success
	assert_line "memory.max"
	assert_line "67108864"
	assert_line joined
	refute_line "fork status 0"
	assert_line --regexp '^fork status [1-9]'
}

@test "--disk images are /dev/vda, /dev/vdb in order and keep what the VM wrote" {
	vm_result disks
	assert_success
	assert_line --index 0 $((64 * 2048))
	assert_line --index 1 2048
	[ "$(head -c 11 "$RAW_IMG")" = raw-disk-ok ]
}

@test "a missing kernel package fails with a clear message" {
	KBOX_VM_KERNEL=0.0.0-0-nosuch run "$VM_DIR/run" - <<<'true'
	assert_equal "$status" 125
	assert_output --partial "linux-image-0.0.0-0-nosuch is unknown to apt"
}

@test "a hung VM is stopped at the timeout and reported" {
	run "$VM_DIR/run" --timeout 4 - <<<'sleep 600'
	assert_equal "$status" 125
	assert_output --partial "VM timed out after 4s"
}

@test "kbox fsck.exfat finds the kernel driver's image clean" {
	require_applet fsck.exfat
	vm_result exfat_write
	assert_success
	run "$KBOX" fsck.exfat -n "$EXFAT_IMG"
	assert_success
	assert_output --partial "clean"
}
