/* Prints the cgroup v2 path of the process ("0::" line of /proc/self/cgroup),
 * reading it as its very first action, before any library set-up could run.
 *   cgroup-probe           one line: PATH
 *   cgroup-probe fork N    forks N children first, then every process prints
 *                          "PID PATH"; the parent waits for the children. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void print_cgroup(int with_pid)
{
	char buf[4096];
	int fd = open("/proc/self/cgroup", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		_exit(3);
	buf[n] = '\0';
	char *line = strstr(buf, "0::");
	if (!line || (line != buf && line[-1] != '\n'))
		_exit(4);
	char out[4200];
	size_t len = strcspn(line + 3, "\n");
	int o = 0;
	if (with_pid) {
		/* /proc/self readlink gives the pid without getpid()'s libc state. */
		char pid[32];
		ssize_t pl = readlink("/proc/self", pid, sizeof(pid) - 1);
		if (pl <= 0)
			_exit(5);
		memcpy(out, pid, pl);
		out[pl] = ' ';
		o = pl + 1;
	}
	memcpy(out + o, line + 3, len);
	out[o + len] = '\n';
	if (write(1, out, o + len + 1) < 0)
		_exit(6);
}

int main(int argc, char **argv)
{
	if (argc == 1) {
		print_cgroup(0);
		return 0;
	}
	int n = argc == 3 && !strcmp(argv[1], "fork") ? atoi(argv[2]) : -1;
	if (n < 0 || n > 256)
		return 2;
	int i;
	for (i = 0; i < n; i++)
		if (fork() == 0) {
			print_cgroup(1);
			_exit(0);
		}
	print_cgroup(1);
	while (wait(NULL) > 0)
		;
	return 0;
}
