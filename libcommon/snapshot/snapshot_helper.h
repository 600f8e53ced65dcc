/* The helper process that holds a target stopped with ptrace while a
 * snapshot is taken. It is a separate process so that the registers it
 * changes inside the target are always put back even if the process that
 * started it is killed: it ignores every catchable signal, finishes what it
 * is doing, and lets the target go when its parent goes away.
 * Kernel interface: ptrace (through ptrace_inject.h), pidfd_open and
 * pidfd_getfd to take the userfaultfd it creates inside the target, and a
 * socketpair to its parent. */
#ifndef KBOX_SNAPSHOT_HELPER_H
#define KBOX_SNAPSHOT_HELPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot/ptrace_inject.h"

struct kb_helper {
	pid_t pid;              /* the helper process */
	int sock;               /* SOCK_SEQPACKET to it */
	/* Timestamps (CLOCK_MONOTONIC ns) the helper reports. */
	uint64_t t_interrupt, t_stopped, t_injected, t_resumed;
	bool resumed_early;     /* it let the target go on its own (time limit) */
	bool make_uffd;
};

enum kb_helper_stage { KB_HELPER_STOP = 1, KB_HELPER_INJECT, KB_HELPER_GETFD };

/* Starts the helper, which stops every thread of pid, reads their state and,
 * with make_uffd, creates a userfaultfd(O_CLOEXEC|O_NONBLOCK) inside the
 * target. On success the threads are in *st (registers etc.; owned by the
 * caller) and *uffd is our copy of the descriptor (-1 without make_uffd).
 * On failure returns -1 with errno and *stage set; the target runs again. */
int kb_helper_start(pid_t pid, bool make_uffd, unsigned max_pause_ms, struct kb_helper *h,
		    struct kb_stopped *st, int *uffd, enum kb_helper_stage *stage);
/* The same in two steps: spawn the helper ahead of time (while this process
 * has a single thread and none of the descriptors the helper must not hold),
 * and later make it stop the target. */
int kb_helper_spawn(pid_t pid, bool make_uffd, unsigned max_pause_ms, struct kb_helper *h);
int kb_helper_begin(struct kb_helper *h, pid_t pid, struct kb_stopped *st, int *uffd,
		    enum kb_helper_stage *stage);
/* Asks the helper to let the target run and waits for it to exit. */
int kb_helper_resume(struct kb_helper *h);
/* Kills nothing: closing the socket makes the helper let the target go. */
void kb_helper_abandon(struct kb_helper *h);

#endif
