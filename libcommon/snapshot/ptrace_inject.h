/* Stopping every thread of a process with ptrace, reading their registers,
 * and running a system call inside it (x86-64 only). */
#ifndef KBOX_PTRACE_INJECT_H
#define KBOX_PTRACE_INJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

struct kb_thread {
	pid_t tid;
	int pending_sig;          /* stopped in signal-delivery-stop for it; 0 otherwise */
	struct user_regs_struct regs;     /* as found at the stop */
	struct user_fpregs_struct fpregs;
	bool fp_valid;
	uint64_t sigmask;
	unsigned char *xstate;    /* NT_X86_XSTATE contents, malloc'd */
	size_t xstate_len;
	bool injected;            /* registers were changed and must be put back */
};

struct kb_stopped {
	pid_t pid;
	struct kb_thread *t;
	size_t n;
};

/* Seizes and interrupts every thread of pid (re-reading /proc/PID/task until
 * no new thread appears) and reads their registers. On failure every thread
 * seized so far is detached again. Errors: ESRCH (process gone), EPERM,
 * ETIMEDOUT (a thread did not stop within timeout_ms). */
int kb_ptrace_stop_all(pid_t pid, struct kb_stopped *st, unsigned timeout_ms);

/* Code in the target used to run a system call inside it. */
struct kb_gadgets {
	uint64_t syscall;       /* a `syscall` instruction */
	uint64_t syscall_ret;   /* `syscall; ret`, or 0 */
	uint64_t sigreturn;     /* `mov $15,%rax; syscall` (rt_sigreturn), or 0 */
};

/* Finds the gadgets in pid's executable mappings ([vdso] first). Returns 0 if
 * at least a `syscall` instruction was found, -1 otherwise. */
int kb_find_gadgets(pid_t pid, struct kb_gadgets *g);

/* Runs system call nr with up to 6 arguments in thread th (stopped by
 * kb_ptrace_stop_all) by pointing its instruction pointer at a `syscall`
 * instruction, with every signal blocked; puts the registers and signal mask
 * back afterwards (restartable system calls the thread was in are set up to
 * restart). *result is the raw return value (-errno on error).
 * With the `syscall; ret` and rt_sigreturn gadgets, a signal frame holding
 * the thread's own state is first written below its stack, so that if the
 * tracer dies in the middle, the thread runs the call, returns into
 * rt_sigreturn and goes on exactly where it was.
 * Returns -1 with errno if ptrace itself failed (the thread died). */
int kb_ptrace_inject_syscall(struct kb_thread *th, const struct kb_gadgets *g, long nr,
			     const uint64_t args[6], long *result);

/* Lets every thread run again (delivering signals they were stopped for) and
 * frees st. Threads that exited meanwhile are skipped. */
void kb_ptrace_detach_all(struct kb_stopped *st);
void kb_stopped_free(struct kb_stopped *st);

/* What /proc/PID/exe is: an x86-64 ELF (the only layout written here),
 * another program, or nothing (a kernel thread, or a zombie); -1 with errno
 * when it cannot be read (EACCES/EPERM: ptrace access refused; ESRCH: no such
 * process). */
enum kb_process_kind { KB_PROCESS_X86_64, KB_PROCESS_OTHER, KB_PROCESS_KERNEL_THREAD, KB_PROCESS_ZOMBIE };
int kb_process_kind(pid_t pid, enum kb_process_kind *kind);

#endif
