/* ptrace-based stopping and system-call injection (x86-64). */
#include "snapshot/ptrace_inject.h"
#include "base/clock.h"
#include "proc/procinfo.h"
#include "snapshot/procmaps.h"

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

/* waitpid for one tracee with a deadline; returns the pid, 0 on timeout, -1. */
static pid_t wait_tid(pid_t tid, int *status, uint64_t deadline_ns)
{
	unsigned spins = 0;
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		if (r != 0)
			return r;
		if (kb_monotonic_ns() > deadline_ns)
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
	uint64_t deadline = kb_monotonic_ns() + (uint64_t)timeout_ms * 1000000u;
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
		pid_t r = wait_tid(tid, &status, kb_monotonic_ns() + 5000000000ull);
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

/* The kernel's x86-64 signal frame, as rt_sigreturn reads it. */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip,
		eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate;
	uint64_t reserved1[8];
};
struct k_ucontext {
	uint64_t uc_flags, uc_link;
	uint64_t ss_sp;
	int32_t ss_flags, pad;
	uint64_t ss_size;
	struct k_sigcontext uc_mcontext;
	uint64_t uc_sigmask;
};
struct k_rt_sigframe {
	uint64_t pretcode;      /* where `ret` goes: the rt_sigreturn gadget */
	struct k_ucontext uc;
	unsigned char info[128];
};
_Static_assert(sizeof(struct k_sigcontext) == 256, "sigcontext layout");
_Static_assert(sizeof(struct k_ucontext) == 304, "ucontext layout");

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#ifndef FP_XSTATE_MAGIC1
#define FP_XSTATE_MAGIC1 0x46505853u
#define FP_XSTATE_MAGIC2 0x46505845u
#endif
#define SW_BYTES_OFFSET 464     /* struct _fpx_sw_bytes in the FXSAVE area */

/* Writes below th's stack (past the red zone) a signal frame that restores
 * regs, th's signal mask and its XSAVE state. Returns the frame's address
 * (the stack pointer to inject with), or 0 if it cannot be done. */
static uint64_t write_landing(struct kb_thread *th, const struct kb_gadgets *g,
			      const struct user_regs_struct *regs)
{
	if (!g->syscall_ret || !g->sigreturn || !th->xstate || th->xstate_len < 576 ||
	    th->xstate_len > 65536)
		return 0;
	/* The XSAVE image ptrace gives (standard format) with, in place of the
	 * XCR0 value ptrace keeps in the software-reserved bytes, what a signal
	 * frame carries there: magics and sizes. */
	uint32_t xstate_size = (uint32_t)th->xstate_len;
	uint64_t xcr0;
	memcpy(&xcr0, th->xstate + SW_BYTES_OFFSET, 8);
	if (!xcr0)
		return 0;
	unsigned char *xs = malloc(xstate_size + 4);
	if (!xs)
		return 0;
	memcpy(xs, th->xstate, xstate_size);
	uint32_t sw[12] = { FP_XSTATE_MAGIC1, xstate_size + 4, (uint32_t)xcr0, (uint32_t)(xcr0 >> 32),
			    xstate_size };
	memcpy(xs + SW_BYTES_OFFSET, sw, sizeof(sw));
	uint32_t magic2 = FP_XSTATE_MAGIC2;
	memcpy(xs + xstate_size, &magic2, 4);
	uint64_t fp = (regs->rsp - 128 - (xstate_size + 4)) & ~63ull;   /* XRSTOR: 64-byte aligned */
	uint64_t frame = ((fp - sizeof(struct k_rt_sigframe)) & ~15ull) - 8;
	struct k_rt_sigframe f;
	memset(&f, 0, sizeof(f));
	f.pretcode = g->sigreturn;
	f.uc.uc_flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	f.uc.ss_flags = 3;      /* invalid: rt_sigreturn leaves the alternate stack as it is */
	struct k_sigcontext *sc = &f.uc.uc_mcontext;
	*sc = (struct k_sigcontext){ regs->r8, regs->r9, regs->r10, regs->r11, regs->r12, regs->r13,
				     regs->r14, regs->r15, regs->rdi, regs->rsi, regs->rbp, regs->rbx,
				     regs->rdx, regs->rax, regs->rcx, regs->rsp, regs->rip,
				     regs->eflags, (uint16_t)regs->cs, 0, 0, (uint16_t)regs->ss,
				     0, 0, 0, 0, fp, { 0 } };
	f.uc.uc_sigmask = th->sigmask;
	struct iovec local[2] = { { &f, sizeof(f) }, { xs, xstate_size + 4 } };
	struct iovec remote[2] = { { (void *)(uintptr_t)frame, sizeof(f) },
				   { (void *)(uintptr_t)fp, xstate_size + 4 } };
	ssize_t want = (ssize_t)(sizeof(f) + xstate_size + 4);
	ssize_t n = process_vm_writev(th->tid, local, 2, remote, 2, 0);
	free(xs);
	return n == want ? frame : 0;
}

int kb_ptrace_inject_syscall(struct kb_thread *th, const struct kb_gadgets *g, long nr,
			     const uint64_t args[6], long *result)
{
	uint64_t all = ~0ull;
	struct user_regs_struct back = resume_regs(&th->regs);
	struct user_regs_struct r = th->regs;
	uint64_t frame = write_landing(th, g, &back);
	r.rip = frame ? g->syscall_ret : g->syscall;
	if (frame)
		r.rsp = frame;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1;  /* no system call to restart at this stop */
	r.rdi = args[0];
	r.rsi = args[1];
	r.rdx = args[2];
	r.r10 = args[3];
	r.r8 = args[4];
	r.r9 = args[5];
	/* Registers first, mask last, and the reverse when putting them back:
	 * whenever we might die, the thread either is untouched or finds the
	 * frame (which restores the mask too). */
	th->injected = true;
	if (ptrace(PTRACE_SETREGS, th->tid, NULL, &r) < 0)
		return -1;
	int saved_errno = 0;
	struct user_regs_struct out;
	if (ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof(all), &all) < 0 ||
	    run_to_syscall_stop(th->tid) < 0 || run_to_syscall_stop(th->tid) < 0 ||
	    ptrace(PTRACE_GETREGS, th->tid, NULL, &out) < 0)
		saved_errno = errno;
	else
		*result = (long)out.rax;
	/* Put everything back, whatever happened. */
	int rc = ptrace(PTRACE_SETSIGMASK, th->tid, (void *)sizeof(th->sigmask), &th->sigmask);
	if (rc == 0)
		rc = ptrace(PTRACE_SETREGS, th->tid, NULL, &back);
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

/* Looks for the gadgets g lacks in one mapping. */
static void find_in_mapping(pid_t pid, const struct kb_mapping *m, struct kb_gadgets *g)
{
	static const unsigned char sigreturn[] = { 0x48, 0xc7, 0xc0, 0x0f, 0, 0, 0, 0x0f, 0x05 };
	size_t len = (size_t)(m->end - m->start);
	if (len > (8u << 20))
		len = 8u << 20;
	unsigned char *buf = malloc(len);
	if (!buf)
		return;
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)m->start, len };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	for (ssize_t i = 0; i + 1 < n && !(g->syscall && g->syscall_ret && g->sigreturn); i++) {
		if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
			if (!g->syscall)
				g->syscall = m->start + (uint64_t)i;
			if (!g->syscall_ret && i + 2 < n && buf[i + 2] == 0xc3)
				g->syscall_ret = m->start + (uint64_t)i;
		}
		if (!g->sigreturn && i + (ssize_t)sizeof(sigreturn) <= n &&
		    !memcmp(buf + i, sigreturn, sizeof(sigreturn)))
			g->sigreturn = m->start + (uint64_t)i;
	}
	free(buf);
}

int kb_find_gadgets(pid_t pid, struct kb_gadgets *g)
{
	memset(g, 0, sizeof(*g));
	struct kb_maps maps;
	if (kb_procmaps_read(pid, &maps) < 0)
		return -1;
	for (size_t i = 0; i < maps.n; i++)
		if (!strcmp(maps.v[i].path, "[vdso]"))
			find_in_mapping(pid, &maps.v[i], g);
	for (size_t i = 0; i < maps.n && !(g->syscall && g->syscall_ret && g->sigreturn); i++)
		if (maps.v[i].x && maps.v[i].r && !kb_mapping_is_unreadable_special(&maps.v[i]) &&
		    strcmp(maps.v[i].path, "[vdso]"))
			find_in_mapping(pid, &maps.v[i], g);
	kb_procmaps_free(&maps);
	return g->syscall ? 0 : -1;
}

int kb_process_kind(pid_t pid, enum kb_process_kind *kind)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT) {
			/* No exe link: a kernel thread or a zombie; no process: gone. */
			struct kb_thread_info ti;
			if (kb_thread_info(pid, &ti) == 0) {
				*kind = ti.state == 'Z' || ti.state == 'X' ? KB_PROCESS_ZOMBIE
									   : KB_PROCESS_KERNEL_THREAD;
				return 0;
			}
			e = ESRCH;
		}
		errno = e;
		return -1;
	}
	Elf64_Ehdr eh;
	bool x86 = read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
		   eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_machine == EM_X86_64;
	close(fd);
	*kind = x86 ? KB_PROCESS_X86_64 : KB_PROCESS_OTHER;
	return 0;
}
