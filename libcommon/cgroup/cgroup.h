/* cgroup v2: finding the mount, inspecting and configuring a cgroup, and
 * running a command that is born inside one (clone3 CLONE_INTO_CGROUP).
 *
 * Paths: a "cgroup" argument is always the absolute directory of the cgroup
 * (e.g. /sys/fs/cgroup/unified/build); kb_cgroup_resolve() turns a user's
 * name into one.  Functions return 0 on success and -1 with errno set on
 * failure.  Those taking a `struct kb_cgroup_err *` also fill it with one
 * sentence explaining the failure (which file, and why), ready to print.
 *
 * Running a command in a fresh cgroup and waiting for it:
 *
 *	struct kb_cgroup_mount m;
 *	struct kb_cgroup_err e;
 *	char cg[KB_CGROUP_PATH_MAX];
 *	if (kb_cgroup_find_mount(&m, NULL, &e) ||
 *	    kb_cgroup_create_unique(&m, "", "run", cg, sizeof(cg), &e))
 *		kb_die(1, "%s", e.msg);
 *	struct kb_cgroup_run r = { .mount = &m, .cgroup = cg, .argv = argv };
 *	if (kb_cgroup_spawn(&r, &e))
 *		kb_die(1, "%s", e.msg);
 *	int status = kb_cgroup_wait(&r);      // the command's exit status
 *	struct kb_cgroup_stats st;
 *	kb_cgroup_read_stats(cg, &st);        // cpu.stat, memory.peak, ...
 *	kb_cgroup_remove(cg, &e);             // kills leftovers, then rmdir
 */
#ifndef KBOX_CGROUP_H
#define KBOX_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#define KB_CGROUP_PATH_MAX 4096

struct kb_cgroup_err {
	char msg[1024];
};

/* ---- the cgroup2 mount ---------------------------------------------------- */

struct kb_cgroup_mount {
	char path[KB_CGROUP_PATH_MAX];  /* mount point, no trailing slash */
	char options[512];              /* superblock options ("rw,nsdelegate,..."),
	                                   read by kb_cgroup_mount_options */
	bool options_read;
};

/* Finds the cgroup2 mount: the one holding CGROUP when that is an absolute
 * path on a cgroup2 file system, else /sys/fs/cgroup when it is cgroup2
 * (pure v2), else /sys/fs/cgroup/unified (hybrid) — all checked with statfs,
 * which costs nothing — else the first cgroup2 mount of the mount table,
 * read with libmount.  CGROUP (the user's cgroup name) may be NULL.  ENOENT
 * when there is none. */
int kb_cgroup_find_mount(struct kb_cgroup_mount *m, const char *cgroup, struct kb_cgroup_err *e);
/* Uses DIR as the root (--root); it must be a cgroup2 directory. */
int kb_cgroup_use_root(struct kb_cgroup_mount *m, const char *dir, struct kb_cgroup_err *e);
/* The superblock options of the mount, read from the mount table (libmount)
 * on first use; "" when the root is not itself a mount point. */
const char *kb_cgroup_mount_options(struct kb_cgroup_mount *m);
/* True when the superblock carries the option (nsdelegate, memory_recursiveprot...). */
bool kb_cgroup_mount_has_option(struct kb_cgroup_mount *m, const char *option);

/* A user's cgroup name -> absolute directory: an absolute path already
 * inside the mount is kept, anything else is taken relative to the mount
 * ("/a/b" and "a/b" both mean MOUNT/a/b, as with cgexec).  ".." and "."
 * components are refused (EINVAL) so the result never leaves the mount. */
int kb_cgroup_resolve(const struct kb_cgroup_mount *m, const char *name,
		      char *out, size_t len, struct kb_cgroup_err *e);

/* ---- inspecting ----------------------------------------------------------- */

/* Reads a whole small control file (trailing newline removed) into buf. */
int kb_cgroup_read(const char *cgroup, const char *file, char *buf, size_t len);
/* Reads "KEY VALUE" lines (cpu.stat, memory.events, cgroup.events). */
int kb_cgroup_read_key(const char *cgroup, const char *file, const char *key, uint64_t *value);
/* True when `word` is one of the space-separated words of `list`. */
bool kb_cgroup_list_has(const char *list, const char *word);
/* The v1 hierarchy a controller is bound to (from /proc/cgroups):
 * > 0 bound to v1, 0 usable by v2, -1 unknown to this kernel. */
int kb_cgroup_v1_hierarchy(const char *controller);
/* Where a v1-bound controller is mounted ("" when not mounted, or when
 * libmount cannot be loaded: this only makes error messages precise). */
void kb_cgroup_v1_mount(const char *controller, char *out, size_t len);
/* The controllers bound to cgroup v1 hierarchies, space-separated. */
void kb_cgroup_v1_controllers(char *out, size_t len);
/* The caller's own cgroup (the "0::" line of /proc/self/cgroup), e.g. "/user.slice". */
int kb_cgroup_self(char *out, size_t len);
/* The parent directory of a cgroup, or "" for the mount root. */
void kb_cgroup_parent(const struct kb_cgroup_mount *m, const char *cgroup, char *out, size_t len);
/* True when the cgroup directory has FILE (cgroup.procs: the cgroup exists). */
bool kb_cgroup_has_file(const char *cgroup, const char *file);
/* Whether the kernel offers cgroup.kill (5.14), seen on the cgroup or, for
 * the root (which never has it), on a child: 1 yes, 0 no, -1 cannot tell. */
int kb_cgroup_has_kill(const char *cgroup);

/* ---- creating and removing -------------------------------------------------- */

/* mkdir -p under the mount.  *created (may be NULL) receives the topmost
 * directory this call made ("" if the cgroup existed), for kb_cgroup_remove. */
int kb_cgroup_create(const struct kb_cgroup_mount *m, const char *cgroup,
		     char *created, size_t len, struct kb_cgroup_err *e);
/* Creates MOUNT/PARENT/PREFIX.PID.N, a name nobody else uses. */
int kb_cgroup_create_unique(const struct kb_cgroup_mount *m, const char *parent,
			    const char *prefix, char *out, size_t len, struct kb_cgroup_err *e);
/* Kills every process in the cgroup and its descendants: cgroup.kill where
 * the kernel has it, else SIGKILL to each (through a pidfd), then waits until
 * the sub-tree is empty.  *killed (may be NULL) counts the processes found. */
int kb_cgroup_kill_all(const char *cgroup, unsigned *killed, struct kb_cgroup_err *e);
/* Kills what is left, then removes the cgroup and its descendants. */
int kb_cgroup_remove(const char *cgroup, struct kb_cgroup_err *e);
/* For a cgroup made by kb_cgroup_create, which reported `created` (its first
 * new directory, cgroup itself or an ancestor): removes cgroup as above, then
 * each created ancestor that is left empty. Processes and cgroups outside
 * cgroup are never touched. */
int kb_cgroup_remove_created(const char *cgroup, const char *created, struct kb_cgroup_err *e);

/* ---- configuring ------------------------------------------------------------ */

/* Checks that FILE is a control file that can be written at the cgroup as a
 * setting. Failures name the cause: no such file, controller not enabled in
 * the parent's cgroup.subtree_control, not available there, bound to cgroup
 * v1, or a core file that acts instead (cgroup.procs, .threads, .kill,
 * .subtree_control). */
int kb_cgroup_check_file(const struct kb_cgroup_mount *m, const char *cgroup,
			 const char *file, struct kb_cgroup_err *e);
/* Writes VALUE to FILE; failures are explained (invalid value, EACCES and
 * the delegation rule, EBUSY and the no-internal-process rule, ...). */
int kb_cgroup_write(const struct kb_cgroup_mount *m, const char *cgroup,
		    const char *file, const char *value, struct kb_cgroup_err *e);
/* Makes each controller of the space-separated list available at CGROUP by
 * writing "+NAME" into cgroup.subtree_control of every ancestor lacking it. */
int kb_cgroup_enable_controllers(const struct kb_cgroup_mount *m, const char *cgroup,
				 const char *controllers, struct kb_cgroup_err *e);
/* Checks each controller of the list is in CGROUP's cgroup.controllers. */
int kb_cgroup_check_controllers(const struct kb_cgroup_mount *m, const char *cgroup,
				const char *controllers, struct kb_cgroup_err *e);
/* Sets an extended attribute on the cgroup directory: KEY without a dot
 * means user.KEY, a full name (trusted.x, user.x) is used as given. */
int kb_cgroup_set_note(const char *cgroup, const char *key, const char *value,
		       struct kb_cgroup_err *e);

/* ---- statistics ------------------------------------------------------------- */

/* Each group's has_ flag says whether the kernel offered the file. */
struct kb_cgroup_stats {
	bool has_cpu;                   /* cpu.stat */
	uint64_t usage_usec, user_usec, system_usec;
	bool has_throttle;              /* cpu.stat lines of the cpu controller */
	uint64_t nr_periods, nr_throttled, throttled_usec;
	bool has_memory_peak;           /* memory.peak */
	uint64_t memory_peak;
	bool has_pids_peak;             /* pids.peak */
	uint64_t pids_peak;
	bool has_memory_events;         /* memory.events */
	uint64_t oom, oom_kill, max, high;
};
int kb_cgroup_read_stats(const char *cgroup, struct kb_cgroup_stats *st);

/* ---- running a command inside a cgroup -------------------------------------- */

struct kb_cgroup_run {
	/* set by the caller */
	const struct kb_cgroup_mount *mount;  /* for error diagnosis; may be NULL */
	const char *cgroup;             /* the cgroup the command is born in */
	char *const *argv;              /* argv[0] is looked up in PATH */
	bool fallback;                  /* without CLONE_INTO_CGROUP: the child moves
	                                   itself into cgroup.procs before exec */
	const int *forward;             /* signals to forward, 0-terminated; NULL: none */
	bool sample_memory;             /* sample memory.current while waiting */
	/* filled by kb_cgroup_spawn / kb_cgroup_wait */
	pid_t pid;
	int pidfd;
	bool used_fallback;             /* clone3 lacked CLONE_INTO_CGROUP */
	int exec_errno;                 /* the command could not be executed */
	int signal;                     /* the signal that killed it, or 0 */
	uint64_t wall_ns;               /* from spawn to exit */
	uint64_t memory_current_max;    /* the highest memory.current sampled */
	/* private */
	uint64_t start_ns;
	int sigfd;
	sigset_t saved_mask;
};

/* Starts argv inside r->cgroup with clone3(CLONE_INTO_CGROUP | CLONE_PIDFD).
 * The child keeps the caller's fds, environment, terminal and signal mask.
 * When the kernel lacks it (ENOSYS/EINVAL): fails with EOPNOTSUPP, or with
 * r->fallback forks and lets the child move itself (r->used_fallback).
 * A command that cannot be executed is not an error here: r->exec_errno is
 * set and kb_cgroup_wait returns 127 (not found) or 126.
 * Signals in r->forward are blocked in the caller from this call on and
 * forwarded to the child by kb_cgroup_wait. */
int kb_cgroup_spawn(struct kb_cgroup_run *r, struct kb_cgroup_err *e);
/* Waits on the pidfd, forwarding signals (a signal the terminal already sent
 * to the child's process group is not sent twice).  Returns the command's
 * exit status, 128+N when killed by signal N, 126/127 when it could not be
 * executed; restores the signal mask. */
int kb_cgroup_wait(struct kb_cgroup_run *r);

#endif
