/* /bin/sh -c with per-run environment, tracked by pidfd. */
#include "base/shellcmd.h"
#include "base/syscalls.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int kb_shellcmd_start(struct kb_shellcmd *c, const char *cmd, char *const *env,
		      const char *const *unset)
{
	c->pid = -1;
	c->pidfd = -1;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (; unset && *unset; unset++)
			unsetenv(*unset);
		for (; env && *env; env++)
			putenv(*env);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	c->pid = pid;
	c->pidfd = kb_pidfd_open(pid, 0);
	if (c->pidfd < 0) {
		int e = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		c->pid = -1;
		errno = e;
		return -1;
	}
	return 0;
}

int kb_shellcmd_wait(struct kb_shellcmd *c)
{
	int status = -1;
	if (c->pid > 0) {
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	c->pid = -1;
	c->pidfd = -1;
	return status;
}
