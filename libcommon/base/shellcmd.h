/* Running a user's shell command per event: `/bin/sh -c CMD` with extra
 * environment variables, watched through a pidfd so an event loop can poll
 * for its end. */
#ifndef KBOX_SHELLCMD_H
#define KBOX_SHELLCMD_H

#include <sys/types.h>

struct kb_shellcmd {
	pid_t pid;
	int pidfd;      /* readable once the command has exited */
};

/* Starts /bin/sh -c cmd. env is a NULL-terminated list of "NAME=VALUE"
 * strings set in the child; each name in unset (NULL-terminated, may be
 * NULL) is removed first. The child gets an empty signal mask and default
 * SIGINT/SIGTERM/SIGPIPE handling. stdout is flushed first so output stays
 * in order. Returns 0, or -1 with errno. */
int kb_shellcmd_start(struct kb_shellcmd *c, const char *cmd, char *const *env,
		      const char *const *unset);
/* Reaps the command (blocking if it still runs): its wait status, or -1. */
int kb_shellcmd_wait(struct kb_shellcmd *c);

#endif
