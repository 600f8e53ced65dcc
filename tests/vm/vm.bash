# Bats helpers for tests that need a real Linux kernel with GPIO (gpio-sim),
# the exfat driver and a cgroup2 hierarchy owning memory, cpu and pids.
# A suite in tests/vm/ starts with `load test_helper` (tests/vm/test_helper.bash
# loads tests/test_helper.bash and this file); elsewhere: `load vm/vm`.
#
# vm_run [--disk IMG]... [--file PATH]... [--timeout S] SCRIPT|-
#   Boots the VM once (tests/vm/run; the cached kernel and initramfs come from
#   tests/vm/prepare) and runs SCRIPT ("-": stdin) with busybox sh inside.
#   Sets, like bats' `run`:  $output (stdout), $lines, $stderr, $stderr_lines,
#   $status (the script's exit status), and exports $VM_OUT_DIR, the host
#   folder holding stdout, stderr, status, console.log and every file the
#   script wrote into $VM_OUT. Call it directly (not through `run`).
#   Returns 0 when the script ran, whatever its status; when the VM could not
#   boot, timed out or its setup failed, prints why and returns 1 so the test
#   (or setup_file) fails. Skips only when qemu is not installed.
#     --disk IMG    raw image attached as /dev/vda, /dev/vdb... in order;
#                   inspect it on the host after vm_run returns
#     --file PATH   copied into the VM as /files/BASENAME
#     --timeout S   bound on the whole boot-and-run (default $KBOX_VM_TIMEOUT or 300)
#
# vm_result [NAME]
#   Without NAME: the whole script's results of the last vm_run again.
#   Sets $output, $lines, $stderr, $stderr_lines, $status from the case NAME
#   that the script ran with `vm_case NAME COMMAND...` in the last vm_run
#   (found through $VM_OUT_DIR, so setup_file can boot once for all tests).
#   Returns 1 with a message when that case did not run.
#
# Inside the VM (see tests/vm/run, tests/vm/inside.sh, tests/vm/gpiosim.sh):
#   PATH has kbox and its applets, build/tests/*, busybox; $KBOX is kbox;
#   $VM_OUT is the folder returned to the host; vm_case and the gpiosim_*
#   functions are defined; the working folder is /tmp (tmpfs).
#
# Typical suite:
#   setup_file() {
#       vm_run - <<-'EOF'
#           vm_case controllers cat /sys/fs/cgroup/cgroup.controllers
#       EOF
#   }
#   @test "cgroup2 has memory" {
#       vm_result controllers
#       assert_success
#       assert_output --partial memory
#   }

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vm_require() {
	command -v qemu-system-x86_64 >/dev/null 2>&1 || skip "needs qemu-system-x86_64 (make deps)"
}

# Reads NAME.out/.err/.status (or stdout/stderr/status) from $VM_OUT_DIR.
_vm_load() {
	local out=$1 err=$2 st=$3
	output=$(cat "$VM_OUT_DIR/$out")
	stderr=$(cat "$VM_OUT_DIR/$err")
	status=$(cat "$VM_OUT_DIR/$st")
	lines=() stderr_lines=()
	[ -n "$output" ] && mapfile -t lines <<<"$output"
	[ -n "$stderr" ] && mapfile -t stderr_lines <<<"$stderr"
	return 0
}

vm_run() {
	vm_require
	local dir rc
	dir=$(mktemp -d "${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}/vm.XXXXXX")
	"$VM_DIR/run" --out "$dir" "$@"
	rc=$?
	export VM_OUT_DIR=$dir
	if [ "$rc" -ne 0 ] || [ ! -f "$dir/status" ]; then
		echo "vm_run: the VM did not run the script (tests/vm/run exit $rc); see the messages above" >&2
		return 1
	fi
	_vm_load stdout stderr status
}

vm_result() {
	if [ $# -eq 0 ]; then
		[ -n "${VM_OUT_DIR-}" ] && [ -f "$VM_OUT_DIR/status" ] || { echo "vm_result: no VM run" >&2; return 1; }
		_vm_load stdout stderr status
		return
	fi
	local name=$1
	if [ -z "${VM_OUT_DIR-}" ] || [ ! -f "$VM_OUT_DIR/$name.status" ]; then
		echo "vm_result: case '$name' did not run in the VM${VM_OUT_DIR:+ (results: $VM_OUT_DIR)}" >&2
		if [ -n "${VM_OUT_DIR-}" ] && [ -s "$VM_OUT_DIR/stderr" ]; then
			echo "vm_result: the script's stderr ends with:" >&2
			tail -n 10 "$VM_OUT_DIR/stderr" | sed 's/^/  | /' >&2
		fi
		return 1
	fi
	_vm_load "$name.out" "$name.err" "$name.status"
}
