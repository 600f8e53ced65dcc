/* Raw system calls glibc 2.36 lacks. */
#include "base/syscalls.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t kb_clone3(struct clone_args *args, size_t size)
{
	return (pid_t)syscall(SYS_clone3, args, size);
}

pid_t kb_clone3_vfork(struct clone_args *args, size_t size, int (*fn)(void *), void *arg)
{
#if defined(__x86_64__)
	/* The child returns from the system call on the new stack, where no C
	 * frame of ours exists: it must call fn and exit without returning. */
	long ret;
	register int (*fn_reg)(void *) __asm__("r8") = fn;
	register void *arg_reg __asm__("r9") = arg;
	__asm__ volatile("syscall\n\t"
			 "testq %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xorl %%ebp, %%ebp\n\t"
			 "movq %%r9, %%rdi\n\t"
			 "callq *%%r8\n\t"
			 "movl %%eax, %%edi\n\t"
			 "movl %[exit_nr], %%eax\n\t"
			 "syscall\n\t"
			 "ud2\n"
			 "1:"
			 : "=a"(ret)
			 : "0"((long)SYS_clone3), "D"(args), "S"(size), "r"(fn_reg), "r"(arg_reg),
			   [exit_nr] "i"(SYS_exit)
			 : "rcx", "r11", "memory", "cc");
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return (pid_t)ret;
#else
	(void)args;
	(void)size;
	(void)fn;
	(void)arg;
	errno = ENOSYS;
	return -1;
#endif
}

int kb_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(SYS_pidfd_open, pid, flags);
}

int kb_pidfd_getfd(int pidfd, int targetfd, unsigned flags)
{
	return (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, flags);
}

int kb_pidfd_send_signal(int pidfd, int sig, unsigned flags)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, flags);
}

int kb_userfaultfd(int flags)
{
	return (int)syscall(SYS_userfaultfd, flags);
}
