# Sourced (busybox sh) before every script run in the test VM; see vm.bash.
#
# vm_case NAME COMMAND [ARG]...
#   Runs COMMAND in a subshell with its stdout, stderr and exit status saved as
#   $VM_OUT/NAME.{out,err,status}; the host reads them with vm_result NAME.
#   Lets one boot serve several bats tests. Returns COMMAND's status.
#   COMMAND may be a shell function or `eval 'CODE'`; a `sh -c` child does not
#   see these helpers unless it sources $VM_LIB/inside.sh itself.
vm_case() {
	_vm_case_name=$1
	shift
	("$@") >"$VM_OUT/$_vm_case_name.out" 2>"$VM_OUT/$_vm_case_name.err"
	_vm_case_status=$?
	echo "$_vm_case_status" >"$VM_OUT/$_vm_case_name.status"
	return "$_vm_case_status"
}

. "$VM_LIB/gpiosim.sh"
# wait_until SECONDS WHAT COMMAND [ARG]...: the tests' bounded wait (tests/wait.sh).
. "$VM_LIB/wait.sh"
