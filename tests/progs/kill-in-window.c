/* Runs COMMAND (an uffd-snapshot of TARGET) and kills its helper process
 * with SIGKILL at the moment a thread of TARGET is stopped inside a system
 * call the helper made it run (userfaultfd or close, as shown by
 * /proc/TARGET/task/TID/syscall): the worst moment for the target.
 *
 * kill-in-window TARGET COMMAND [ARGS...]
 * Exit 0: killed in that window; 1: the command ended first; 2: error. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t first_child(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	int child = 0;
	if (f) {
		if (fscanf(f, "%d", &child) != 1)
			child = 0;
		fclose(f);
	}
	return child;
}

/* Whether a thread of target is stopped in an injected system call. */
static int in_injected_call(pid_t target)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)target);
	DIR *d = opendir(path);
	if (!d)
		return 0;
	int found = 0;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char sp[320], line[64];
		snprintf(sp, sizeof(sp), "/proc/%d/task/%s/syscall", (int)target, de->d_name);
		FILE *f = fopen(sp, "r");
		if (!f)
			continue;
		long nr;
		if (fgets(line, sizeof(line), f) && sscanf(line, "%ld ", &nr) == 1)
			found = nr == SYS_userfaultfd || nr == SYS_close;
		fclose(f);
	}
	closedir(d);
	return found;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: kill-in-window TARGET COMMAND [ARGS...]\n");
		return 2;
	}
	pid_t target = (pid_t)atoi(argv[1]);
	pid_t cmd = fork();
	if (cmd < 0)
		return 2;
	if (cmd == 0) {
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	int hit = 0, status;
	while (!hit) {
		pid_t helper = first_child(cmd);
		if (helper > 0 && in_injected_call(target)) {
			kill(helper, SIGKILL);
			hit = 1;
			break;
		}
		if (waitpid(cmd, &status, WNOHANG) == cmd)
			return 1;
	}
	waitpid(cmd, &status, 0);
	return 0;
}
