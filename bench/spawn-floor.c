/* The least any clone3 launcher can cost: open the cgroup, clone3 the child
 * straight into it, exec, wait; no options, no checks, no libraries but libc.
 * bench/cgexec-clone3.sh builds it twice (dynamically linked and static) and
 * shows it beside kbox and the shell way, so the ratios can be read against
 * what the method itself costs on the machine.
 * Usage: spawn-floor CGROUP-DIR COMMAND [ARGS...] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: spawn-floor CGROUP-DIR COMMAND [ARGS...]\n");
		return 2;
	}
	int cg = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		perror(argv[1]);
		return 1;
	}
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP | CLONE_VFORK;
	args.exit_signal = SIGCHLD;
	args.cgroup = (uint64_t)cg;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0) {
		perror("clone3");
		return 1;
	}
	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	int status;
	if (waitpid((pid_t)pid, &status, 0) < 0)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
