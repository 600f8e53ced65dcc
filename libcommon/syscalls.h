/* Checked wrappers for raw system calls that glibc 2.36 does not wrap.
 * Each returns what the system call returns (-1 with errno on failure). */
#ifndef KBOX_SYSCALLS_H
#define KBOX_SYSCALLS_H

#include <sys/types.h>
#include <linux/sched.h>   /* struct clone_args, CLONE_* */

pid_t kb_clone3(struct clone_args *args, size_t size);
int kb_pidfd_open(pid_t pid, unsigned flags);
int kb_pidfd_getfd(int pidfd, int targetfd, unsigned flags);
int kb_pidfd_send_signal(int pidfd, int sig, unsigned flags);
int kb_userfaultfd(int flags);

#endif
