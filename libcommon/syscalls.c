/* Raw system calls glibc 2.36 lacks. */
#include "syscalls.h"

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

pid_t kb_clone3(struct clone_args *args, size_t size)
{
	return (pid_t)syscall(SYS_clone3, args, size);
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
