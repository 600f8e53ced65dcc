/* Process and thread facts from /proc: names, thread group, parent, start
 * time, executable. Each returns 0, or -1 with errno (ENOENT/ESRCH: gone). */
#ifndef KBOX_PROCINFO_H
#define KBOX_PROCINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kb_thread_info {
	pid_t tid;
	pid_t tgid;
	pid_t ppid;                 /* of the thread group */
	char comm[64];              /* the thread's own name */
	uint64_t start_usec;        /* start time, microseconds since boot (CLOCK_BOOTTIME) */
	char state;                 /* 'R', 'S', 'Z', ... */
};

int kb_thread_info(pid_t tid, struct kb_thread_info *ti);
/* /proc/PID/comm without the newline. */
int kb_proc_comm(pid_t pid, char *buf, size_t len);
/* The target of /proc/PID/exe (may end in " (deleted)"). */
int kb_proc_exe(pid_t pid, char *buf, size_t len);
/* Whether execvp() would find NAME as a file: NAME itself when it holds a
 * '/', else in a directory of $PATH. Tells "command not found" from a file
 * whose #! interpreter is missing, when both fail with ENOENT. */
bool kb_command_file_exists(const char *name);
/* Microseconds that CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC (time suspended). */
uint64_t kb_suspended_usec(void);

/* Running a command whose whole process tree is tracked: the caller becomes
 * a child subreaper (orphaned descendants are re-parented to it instead of
 * init), so ancestry walks from any descendant end at the command or at the
 * caller. */
struct kb_tracked {
	pid_t pid;
	int pidfd;                  /* readable when the command exits */
};
/* Forks and execs argv[0] (PATH search). A failed exec exits 127 (126 when
 * not executable) after a one-line error. Returns 0 or -1 with errno. */
int kb_tracked_spawn(struct kb_tracked *t, char *const argv[]);
/* True when thread group tgid is the command or one of its descendants. */
bool kb_tracked_owns(const struct kb_tracked *t, pid_t tgid);
/* Reaps exited orphans re-parented to us (not the command itself). */
void kb_tracked_reap_orphans(const struct kb_tracked *t);
/* Waits for the command; returns its exit status as a shell would
 * (128 + signal when killed), or -1 with errno. */
int kb_tracked_wait(struct kb_tracked *t);

#endif
