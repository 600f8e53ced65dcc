/* Following a process tree through the proc connector; see procevents.h. */
#include "proc/procevents.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A report logged this long after its thread's exit event is not that thread's. */
#define EXIT_SLACK_NS 1000000000ULL

struct member {
	pid_t tid;             /* 0: free slot */
	pid_t tgid;
	uint64_t exit_ns;      /* 0 while alive */
};

struct kb_proc_tree {
	int fd;
	pid_t self, root;
	bool lost;
	struct member *slots;  /* open addressing, keyed by tid */
	size_t cap, used;
	/* Forks seen before the root was known (the root's own fork). */
	struct { pid_t parent_tgid, tid, tgid; } pending[8];
	unsigned n_pending;
	void (*on_process)(void *arg, pid_t tgid, pid_t parent_tgid);
	void *on_process_arg;
};

static struct member *slot_for(struct kb_proc_tree *t, pid_t tid)
{
	size_t i = ((size_t)tid * 2654435761u) & (t->cap - 1);
	while (t->slots[i].tid && t->slots[i].tid != tid)
		i = (i + 1) & (t->cap - 1);
	return &t->slots[i];
}

static int add_member(struct kb_proc_tree *t, pid_t tid, pid_t tgid)
{
	if ((t->used + 1) * 2 > t->cap) {
		struct member *old = t->slots;
		size_t old_cap = t->cap;
		t->cap = old_cap ? old_cap * 2 : 256;
		t->slots = calloc(t->cap, sizeof(*t->slots));
		if (!t->slots) {
			t->slots = old;
			t->cap = old_cap;
			return -1;
		}
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].tid)
				*slot_for(t, old[i].tid) = old[i];
		free(old);
	}
	struct member *m = slot_for(t, tid);
	if (!m->tid)
		t->used++;
	*m = (struct member){ .tid = tid, .tgid = tgid };
	return 0;
}

static bool is_member_tgid(struct kb_proc_tree *t, pid_t tgid)
{
	if (!t->cap)
		return false;
	struct member *m = slot_for(t, tgid);
	return m->tid == tgid && !m->exit_ns;
}

struct kb_proc_tree *kb_proc_tree_open(void)
{
	struct kb_proc_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->self = getpid();
	t->fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_CONNECTOR);
	if (t->fd < 0)
		goto fail;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
	if (bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	/* nlmsghdr, cn_msg, then the operation, back to back. */
	char req[NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(enum proc_cn_mcast_op))]
		__attribute__((aligned(NLMSG_ALIGNTO)));
	memset(req, 0, sizeof(req));
	struct nlmsghdr *nl = (struct nlmsghdr *)req;
	nl->nlmsg_len = sizeof(req);
	nl->nlmsg_type = NLMSG_DONE;
	struct cn_msg cn = { .id = { .idx = CN_IDX_PROC, .val = CN_VAL_PROC },
			     .len = sizeof(enum proc_cn_mcast_op) };
	enum proc_cn_mcast_op op = PROC_CN_MCAST_LISTEN;
	memcpy(NLMSG_DATA(nl), &cn, sizeof(cn));
	memcpy((char *)NLMSG_DATA(nl) + sizeof(cn), &op, sizeof(op));
	if (send(t->fd, req, sizeof(req), 0) < 0)
		goto fail;
	return t;
fail:;
	int e = errno;
	kb_proc_tree_close(t);
	errno = e;
	return NULL;
}

void kb_proc_tree_close(struct kb_proc_tree *t)
{
	if (!t)
		return;
	if (t->fd >= 0)
		close(t->fd);
	free(t->slots);
	free(t);
}

static void on_fork(struct kb_proc_tree *t, pid_t parent_tgid, pid_t tid, pid_t tgid)
{
	if (parent_tgid == t->self) {
		if (!t->root) {
			if (t->n_pending < sizeof(t->pending) / sizeof(t->pending[0]))
				t->pending[t->n_pending++] = (typeof(t->pending[0])){ parent_tgid, tid, tgid };
			return;
		}
		/* Ours: the root, and threads of orphans re-parented to us (subreaper). */
		if (tgid != t->root && !is_member_tgid(t, tgid))
			return;
	} else if (!is_member_tgid(t, parent_tgid) && !is_member_tgid(t, tgid)) {
		return;  /* (a new thread's parent_tgid is its own process) */
	}
	if (add_member(t, tid, tgid) < 0)
		t->lost = true;
	else if (tid == tgid && t->on_process)
		t->on_process(t->on_process_arg, tgid, parent_tgid);
}

void kb_proc_tree_set_root(struct kb_proc_tree *t, pid_t root)
{
	t->root = root;
	for (unsigned i = 0; i < t->n_pending; i++)
		on_fork(t, t->pending[i].parent_tgid, t->pending[i].tid, t->pending[i].tgid);
	t->n_pending = 0;
	/* The root itself, in case its fork event is still queued. */
	if (!is_member_tgid(t, root) && add_member(t, root, root) < 0)
		t->lost = true;
}

int kb_proc_tree_drain(struct kb_proc_tree *t)
{
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	for (;;) {
		ssize_t n = recv(t->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == ENOBUFS) {
				t->lost = true;
				continue;
			}
			return -1;
		}
		for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n);
		     nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg) + sizeof(struct proc_event)))
				continue;
			struct cn_msg cn;
			memcpy(&cn, NLMSG_DATA(nh), sizeof(cn));
			if (cn.id.idx != CN_IDX_PROC || cn.id.val != CN_VAL_PROC)
				continue;
			struct proc_event ev;
			memcpy(&ev, (char *)NLMSG_DATA(nh) + sizeof(cn), sizeof(ev));
			if (ev.what == PROC_EVENT_FORK) {
				on_fork(t, ev.event_data.fork.parent_tgid, ev.event_data.fork.child_pid,
					ev.event_data.fork.child_tgid);
			} else if (ev.what == PROC_EVENT_EXEC && t->on_process &&
				   is_member_tgid(t, ev.event_data.exec.process_tgid)) {
				t->on_process(t->on_process_arg, ev.event_data.exec.process_tgid, 0);
			} else if (ev.what == PROC_EVENT_EXIT && t->cap) {
				struct member *m = slot_for(t, ev.event_data.exit.process_pid);
				if (m->tid)
					m->exit_ns = ev.timestamp_ns ? ev.timestamp_ns : 1;
			}
		}
	}
}

int kb_proc_tree_fd(const struct kb_proc_tree *t)
{
	return t->fd;
}

void kb_proc_tree_on_process(struct kb_proc_tree *t,
			     void (*fn)(void *arg, pid_t tgid, pid_t parent_tgid), void *arg)
{
	t->on_process = fn;
	t->on_process_arg = arg;
}

bool kb_proc_tree_lost(const struct kb_proc_tree *t)
{
	return t->lost;
}

bool kb_proc_tree_lookup(struct kb_proc_tree *t, pid_t tid, uint64_t ts_ns, pid_t *tgid)
{
	if (!t->cap)
		return false;
	struct member *m = slot_for(t, tid);
	if (m->tid != tid)
		return false;
	if (m->exit_ns && ts_ns > m->exit_ns + EXIT_SLACK_NS)
		return false;
	*tgid = m->tgid;
	return true;
}
