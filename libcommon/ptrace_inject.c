/* ptrace-based stopping and system-call injection (x86-64). */
#include "ptrace_inject.h"
#include "procmaps.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif
#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

/* Kernel-internal restart codes a system call interrupted by a stop returns. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516
#define NR_restart_syscall 219

#define XSTATE_MAX (64 * 1024)

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* waitpid for one tracee with a deadline; returns the pid, 0 on timeout, -1. */
static pid_t wait_tid(pid_t tid, int *status, uint64_t deadline_ns)
{
	unsigned spins = 0;
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		if (r != 0)
			return r;
		if (now_ns() > deadline_ns)
			return 0;
		if (++spins < 200) {
			sched_yield();
		} else {
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
	}
}

static bool thread_is_zombie(pid_t pid, pid_t tid)
{
	struct kb_proc_stat st;
	if (kb_proc_stat(pid, tid, &st) < 0)
		return true;    /* gone */
	return st.state == 'Z' || st.state == 'X';
}

static int read_thread_state(struct kb_thread *th, unsigned char *scratch)
{
	if (ptrace(PTRACE_GETREGS, th->tid, NULL, &th->regs) < 0)
		return -1;
	th->fp_valid = ptrace(PTRACE_GETFPREGS, th->tid, NULL, &th->fpregs) == 0;
	if (ptrace(PTRACE_GETSIGMASK, th->tid, (void *)sizeof(th->sigmask), &th->sigmask) < 0)
		th->sigmask = 0;
	struct iovec iov = { scratch, XSTATE_MAX };
	if (ptrace(PTRACE_GETREGSET, th->tid, (void *)NT_X86_XSTATE, &iov) == 0 && iov.iov_len) {
		th->xstate = malloc(iov.iov_len);
		if (th->xstate) {
			memcpy(th->xstate, scratch, iov.iov_len);
			th->xstate_len = iov.iov_len;
		}
	}
	return 0;
}

static bool have_tid(const struct kb_stopped *st, pid_t tid)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->t[i].tid == tid)
			return true;
	return false;
}

int kb_ptrace_stop_all(pid_t pid, struct kb_stopped *st, unsigned timeout_ms)
{
	memset(st, 0, sizeof(*st));
	st->pid = pid;
	size_t cap = 0;
	int err = 0;
	unsigned char *scratch = malloc(XSTATE_MAX);
	if (!scratch)
		return -1;
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		pid_t *tids;
		size_t ntids, added = 0;
		if (kb_proc_tids(pid, &tids, &ntids) < 0) {
			err = errno == ENOENT ? ESRCH : errno;
			goto fail;
		}
		size_t first_new = st->n;
		for (size_t i = 0; i < ntids; i++) {
			pid_t tid = tids[i];
			if (have_tid(st, tid) || thread_is_zombie(pid, tid))
				continue;
			if (ptrace(PTRACE_SEIZE, tid, NULL, (void *)PTRACE_O_TRACESYSGOOD) < 0) {
				if (errno == ESRCH)
					continue;   /* exited meanwhile */
				err = errno;
				free(tids);
				goto fail;
			}
			if (st->n == cap) {
				cap = cap ? cap * 2 : 16;
				struct kb_thread *nt = realloc(st->t, cap * sizeof(*nt));
				if (!nt) {
					ptrace(PTRACE_DETACH, tid, NULL, NULL);
					err = ENOMEM;
					free(tids);
					goto fail;
				}
				st->t = nt;
			}
			memset(&st->t[st->n], 0, sizeof(st->t[0]));
			st->t[st->n++].tid = tid;
			ptrace(PTRACE_INTERRUPT, tid, NULL, NULL);
			added++;
		}
		free(tids);
		/* Collect the stops of the threads seized in this round. */
		for (size_t i = first_new; i < st->n;) {
			struct kb_thread *th = &st->t[i];
			int status;
			pid_t r = wait_tid(th->tid, &status, deadline);
			if (r == 0) {
				err = ETIMEDOUT;
				goto fail;
			}
			if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
				/* The thread is gone: drop it. */
				st->t[i] = st->t[--st->n];
				continue;
			}
			if (!WIFSTOPPED(status)) {
				continue;
			}
			if (status >> 16 == 0) {
				/* Signal-delivery-stop: keep the signal for later. */
				th->pending_sig = WSTOPSIG(status);
			}
			if (read_thread_state(th, scratch) < 0) {
				if (errno == ESRCH) {
					st->t[i] = st->t[--st->n];
					continue;
				}
				err = errno;
				goto fail;
			}
			i++;
		}
		if (added == 0)
			break;
	}
	free(scratch);
	if (st->n == 0) {
		errno = ESRCH;
		return -1;
	}
	return 0;
fail:
	free(scratch);
	kb_ptrace_detach_all(st);
	errno = err;
	return -1;
}

static bool in_restartable_syscall(const struct user_regs_struct *r)
{
	long ax = (long)r->rax;
	return (long)r->orig_rax >= 0 &&
	       (ax == -ERESTARTSYS || ax == -ERESTARTNOINTR || ax == -ERESTARTNOHAND ||
		ax == -ERESTART_RESTARTBLOCK);
}

/* The registers to resume with after an injection: the original ones, with
 * an interrupted system call set up to run again (the kernel would do this
 * on the way out of the original stop, but not after a syscall-exit stop). */
static struct user_regs_struct resume_regs(const struct user_regs_struct *orig)
{
	struct user_regs_struct r = *orig;
	if (in_restartable_syscall(orig)) {
		r.rax = (long)orig->rax == -ERESTART_RESTARTBLOCK ? NR_restart_syscall : orig->orig_rax;
		r.rip -= 2;
	}
	return r;
}

/* Resumes th to its next syscall stop (entry or exit). */
static int run_to_syscall_stop(pid_t tid)
{
	for (;;) {
		if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0)
			return -1;
		int status;
		pid_t r = wait_tid(tid, &status, now_ns() + 5000000000ull);
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (r < 0)
			return -1;
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			errno = ESRCH;
			return -1;
		}
		if (WIFSTOPPED(status) && WSTOPSIG(status) == (SIGTRAP | 0x80))
			return 0;
		/* Any other stop (a group stop, an interrupt): keep going; every
		 * signal is blocked, so no signal is lost by resuming with 0. */
	}
}

int kb_ptrace_inject_syscall(struct kb_thread *th, uint64_t gadget, long nr,
			     const uint64_t args[6], long *result)
{
	uint64_t all = ~0ull;
	struct user_regs_struct r = th->regs;
	r.rip = gadget;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1;  /* no system call to restart at this stop */
	r.rdi = args[0];
	r.rsi = args[1];
	r.rdx = args[2];
	r.r10 = args[3];
	r.r8 = args[4];
	r.r9 = args[5];
	if (ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof(all), &all) < 0)
		return -1;
	th->injected = true;
	int saved_errno = 0;
	struct user_regs_struct out;
	if (ptrace(PTRACE_SETREGS, th->tid, NULL, &r) < 0 || run_to_syscall_stop(th->tid) < 0 ||
	    run_to_syscall_stop(th->tid) < 0 || ptrace(PTRACE_GETREGS, th->tid, NULL, &out) < 0)
		saved_errno = errno;
	else
		*result = (long)out.rax;
	/* Put everything back, whatever happened. */
	struct user_regs_struct back = resume_regs(&th->regs);
	int rc = ptrace(PTRACE_SETREGS, th->tid, NULL, &back);
	if (rc == 0)
		rc = ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof(th->sigmask), &th->sigmask);
	if (rc < 0 && !saved_errno)
		saved_errno = errno;
	if (saved_errno) {
		errno = saved_errno;
		return -1;
	}
	return 0;
}

void kb_ptrace_detach_all(struct kb_stopped *st)
{
	for (size_t i = 0; i < st->n; i++)
		ptrace(PTRACE_DETACH, st->t[i].tid, NULL, (void *)(long)st->t[i].pending_sig);
	kb_stopped_free(st);
}

void kb_stopped_free(struct kb_stopped *st)
{
	for (size_t i = 0; i < st->n; i++)
		free(st->t[i].xstate);
	free(st->t);
	st->t = NULL;
	st->n = 0;
}

static uint64_t find_in_mapping(pid_t pid, const struct kb_mapping *m)
{
	size_t len = (size_t)(m->end - m->start);
	if (len > (1u << 20))
		len = 1u << 20;
	unsigned char *buf = malloc(len);
	if (!buf)
		return 0;
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)m->start, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	uint64_t found = 0;
	for (ssize_t i = 0; i + 1 < n; i++)
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			found = m->start + (uint64_t)i;
			break;
		}
	free(buf);
	return found;
}

uint64_t kb_find_syscall_insn(pid_t pid)
{
	struct kb_maps maps;
	if (kb_procmaps_read(pid, &maps) < 0)
		return 0;
	uint64_t found = 0;
	for (size_t i = 0; i < maps.n && !found; i++)
		if (!strcmp(maps.v[i].path, "[vdso]"))
			found = find_in_mapping(pid, &maps.v[i]);
	for (size_t i = 0; i < maps.n && !found; i++)
		if (maps.v[i].x && maps.v[i].r && !kb_mapping_is_unreadable_special(&maps.v[i]))
			found = find_in_mapping(pid, &maps.v[i]);
	kb_procmaps_free(&maps);
	return found;
}

bool kb_process_is_x86_64(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	Elf64_Ehdr eh;
	bool ok = read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
		  eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64;
	close(fd);
	return ok;
}
