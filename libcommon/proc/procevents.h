/* The kernel's process events connector (netlink, CN_IDX_PROC): every fork,
 * clone and exit with its thread and thread-group ids, as it happens. Used to
 * follow one process tree so that a thread id still maps to its process after
 * the thread has exited. Needs CAP_NET_ADMIN and CONFIG_PROC_EVENTS. */
#ifndef KBOX_PROCEVENTS_H
#define KBOX_PROCEVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct kb_proc_tree;

/* Starts listening (before the tree's root is created, so nothing is missed).
 * Returns NULL with errno set when the connector is unavailable. */
struct kb_proc_tree *kb_proc_tree_open(void);
void kb_proc_tree_close(struct kb_proc_tree *t);
/* The tree's root: a child of the caller, created after kb_proc_tree_open. */
void kb_proc_tree_set_root(struct kb_proc_tree *t, pid_t root);
/* Reads every pending event. Returns 0, or -1 with errno. When the kernel
 * dropped events (the socket overflowed), kb_proc_tree_lost turns true. */
int kb_proc_tree_drain(struct kb_proc_tree *t);
/* The descriptor to poll for pending events. */
int kb_proc_tree_fd(const struct kb_proc_tree *t);
/* Called by kb_proc_tree_drain for each new process (parent_tgid set) and
 * each exec (parent_tgid 0) in the tree: the moment to note a short-lived
 * process's executable and mappings while they exist. */
void kb_proc_tree_on_process(struct kb_proc_tree *t,
			     void (*fn)(void *arg, pid_t tgid, pid_t parent_tgid), void *arg);
bool kb_proc_tree_lost(const struct kb_proc_tree *t);
/* Whether thread tid belonged to the tree at monotonic time ts_ns (it was
 * created in the tree, and had not exited long before); sets *tgid. */
bool kb_proc_tree_lookup(struct kb_proc_tree *t, pid_t tid, uint64_t ts_ns, pid_t *tgid);

#endif
