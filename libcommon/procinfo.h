/* Process and thread facts from /proc: names, thread group, parent, start
 * time, executable. Each returns 0, or -1 with errno (ENOENT/ESRCH: gone). */
#ifndef KBOX_PROCINFO_H
#define KBOX_PROCINFO_H

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
/* Microseconds that CLOCK_BOOTTIME is ahead of CLOCK_MONOTONIC (time suspended). */
uint64_t kb_suspended_usec(void);

#endif
