/* /proc process and thread facts; see procinfo.h. */
#include "proc/procinfo.h"
#include "base/readfile.h"
#include "base/kbox.h"
#include "base/syscalls.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* A process that is gone reads as empty: say so with ESRCH. */
static ssize_t read_proc_file(pid_t pid, const char *name, char *buf, size_t cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	errno = 0;
	ssize_t len = kb_read_small_file(path, buf, cap);
	if (len == 0)
		errno = ESRCH;
	return len > 0 ? len : -1;
}

int kb_proc_comm(pid_t pid, char *buf, size_t len)
{
	char tmp[128];
	if (read_proc_file(pid, "comm", tmp, sizeof(tmp)) < 0)
		return -1;
	size_t n = strcspn(tmp, "\n");
	if (len == 0)
		return 0;
	if (n >= len)
		n = len - 1;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return 0;
}

int kb_proc_exe(pid_t pid, char *buf, size_t len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(path, buf, len - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

int kb_thread_info(pid_t tid, struct kb_thread_info *ti)
{
	char buf[4096];
	memset(ti, 0, sizeof(*ti));
	ti->tid = tid;
	if (read_proc_file(tid, "status", buf, sizeof(buf)) < 0)
		return -1;
	for (char *line = buf; line && *line; ) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!strncmp(line, "Tgid:", 5))
			ti->tgid = (pid_t)atoi(line + 5);
		else if (!strncmp(line, "PPid:", 5))
			ti->ppid = (pid_t)atoi(line + 5);
		line = next;
	}
	if (kb_proc_comm(tid, ti->comm, sizeof(ti->comm)) < 0)
		return -1;
	/* stat: "pid (comm) state ppid ..."; comm may hold ')' so use the last one.
	 * Field 22 is the start time in clock ticks since boot. */
	if (read_proc_file(tid, "stat", buf, sizeof(buf)) < 0)
		return -1;
	char *p = strrchr(buf, ')');
	if (!p || ti->tgid <= 0) {
		errno = EPROTO;
		return -1;
	}
	p += 2;
	ti->state = *p;
	for (int field = 3; field < 22 && p; field++) {
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	if (!p) {
		errno = EPROTO;
		return -1;
	}
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long ticks = strtoull(p, NULL, 10);
	ti->start_usec = ticks * (1000000ULL / (unsigned long long)(hz > 0 ? hz : 100));
	return 0;
}

uint64_t kb_suspended_usec(void)
{
	struct timespec b, m;
	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_MONOTONIC, &m);
	int64_t d = ((int64_t)b.tv_sec - m.tv_sec) * 1000000 + (b.tv_nsec - m.tv_nsec) / 1000;
	return d > 0 ? (uint64_t)d : 0;
}

int kb_tracked_spawn(struct kb_tracked *t, char *const argv[])
{
	t->pid = -1;
	t->pidfd = -1;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execvp(argv[0], argv);
		int e = errno;
		if (e == ENOENT && kb_command_file_exists(argv[0])) {
			kb_warn("%s: cannot execute: bad interpreter (its #! line names a missing program)",
				argv[0]);
			_exit(126);
		}
		kb_warn_errno("%s", argv[0]);
		_exit(e == ENOENT ? 127 : 126);
	}
	t->pid = pid;
	t->pidfd = kb_pidfd_open(pid, 0);
	if (t->pidfd < 0)
		return -1;
	return 0;
}

bool kb_tracked_owns(const struct kb_tracked *t, pid_t tgid)
{
	pid_t self = getpid();
	pid_t p = tgid;
	for (int depth = 0; depth < 4096 && p > 1; depth++) {
		if (p == t->pid || p == self)
			return p == t->pid || depth > 0;
		struct kb_thread_info ti;
		if (kb_thread_info(p, &ti) < 0)
			return false;
		p = ti.ppid;
	}
	return false;
}

void kb_tracked_reap_orphans(const struct kb_tracked *t)
{
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0 ||
		    si.si_pid == t->pid)
			return;
		waitpid(si.si_pid, NULL, 0);
	}
}

int kb_tracked_wait(struct kb_tracked *t)
{
	int status;
	while (waitpid(t->pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (t->pidfd >= 0)
		close(t->pidfd);
	t->pidfd = -1;
	kb_tracked_reap_orphans(t);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

bool kb_command_file_exists(const char *name)
{
	struct stat st;
	if (strchr(name, '/'))
		return stat(name, &st) == 0 && S_ISREG(st.st_mode);
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/bin:/usr/bin";
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		char full[4096];
		int n = snprintf(full, sizeof(full), "%.*s%s%s", (int)(end - p), p, end > p ? "/" : "", name);
		if (n > 0 && (size_t)n < sizeof(full) && stat(full, &st) == 0 && S_ISREG(st.st_mode))
			return true;
		if (!*end)
			return false;
		p = end;
	}
}
