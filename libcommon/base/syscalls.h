/* Checked wrappers for raw system calls that glibc 2.36 does not wrap:
 * clone3, pidfd_open, pidfd_getfd, pidfd_send_signal and userfaultfd.
 * Each returns what the system call returns (-1 with errno on failure). */
#ifndef KBOX_SYSCALLS_H
#define KBOX_SYSCALLS_H

#include <sys/types.h>
#include <linux/sched.h>   /* struct clone_args, CLONE_* */

pid_t kb_clone3(struct clone_args *args, size_t size);
/* clone3 with CLONE_VM | CLONE_VFORK set by the caller (and a stack in
 * args): the child runs fn(arg) on that stack, sharing our memory, and exits
 * with its return value; we go on once it has exec'd or exited. No copy of
 * the address space, so much cheaper than a fork of a large process. fn may
 * only restore the signal mask, exec, note errno and return. x86-64 only:
 * elsewhere it fails with ENOSYS before any system call. */
pid_t kb_clone3_vfork(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);
int kb_pidfd_open(pid_t pid, unsigned flags);
int kb_pidfd_getfd(int pidfd, int targetfd, unsigned flags);
int kb_pidfd_send_signal(int pidfd, int sig, unsigned flags);
int kb_userfaultfd(int flags);

#endif
