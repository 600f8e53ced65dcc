/* The ptrace helper process of a snapshot (see snapshot_helper.h). */
#include "snapshot/snapshot_helper.h"
#include "base/clock.h"
#include "base/syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum msg_type { MSG_THREAD = 1, MSG_STOPPED, MSG_FAILED, MSG_RESUME, MSG_RESUMED, MSG_GO };

struct msg_hdr {
	int32_t type;
	int32_t err;            /* MSG_FAILED: errno; */
	int32_t stage;          /* MSG_FAILED: enum kb_helper_stage */
	int32_t count;          /* MSG_STOPPED: threads sent */
	uint64_t t[4];          /* interrupt, stopped, injected, resumed */
	int32_t early;
	int32_t pad;
};

/* One thread as the helper found it. The helper is a fork of the same
 * program, so struct kb_thread travels as it is; only its xstate pointer means
 * nothing on arrival: the contents follow in xstate[]. */
struct msg_thread {
	int32_t type;
	uint32_t xstate_len;
	struct kb_thread th;
	unsigned char xstate[];
};

#define MSG_MAX (sizeof(struct msg_thread) + 64 * 1024)

static int send_msg(int sock, const void *buf, size_t len, int fd)
{
	struct iovec iov = { (void *)buf, len };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof(ctl.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* Receives one message; *fd gets a passed descriptor (or -1). Returns the
 * length, 0 at end of stream, -1 with errno. timeout_ms < 0 waits forever. */
static ssize_t recv_msg(int sock, void *buf, size_t len, int *fd, int timeout_ms)
{
	if (fd)
		*fd = -1;
	struct pollfd p = { sock, POLLIN, 0 };
	int r;
	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return -1;
	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	struct iovec iov = { buf, len };
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	ssize_t n;
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int got;
			memcpy(&got, CMSG_DATA(c), sizeof(int));
			if (fd && *fd < 0)
				*fd = got;
			else
				close(got);
		}
	return n;
}

/* True once the parent has gone (its end of the socket closed). */
static bool parent_gone(int sock)
{
	struct pollfd p = { sock, 0, 0 };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

/* Chooses the thread to run the system calls in: one stopped by our
 * interrupt rather than for a signal, the thread group leader if possible. */
static struct kb_thread *pick_thread(struct kb_stopped *st)
{
	struct kb_thread *best = NULL;
	for (size_t i = 0; i < st->n; i++) {
		struct kb_thread *th = &st->t[i];
		if (th->pending_sig)
			continue;
		if (!best || th->tid == st->pid)
			best = th;
	}
	return best;
}

static _Noreturn void helper_main(int sock, pid_t pid, bool make_uffd, unsigned max_pause_ms)
{
	/* Nothing of the parent's but the socket: no descriptor of it (a
	 * userfaultfd, an output file) outlives the parent here. */
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			_exit(1);
		sock = 3;
	}
	if (close_range(4, ~0u, 0) < 0)
		for (int fd = 4; fd < 1024; fd++)
			close(fd);
	/* Only SIGKILL may stop us: every other signal would end the helper in
	 * the middle of changing the target's registers. */
	static const int async_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGUSR1,
					     SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU, SIGXCPU,
					     SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH };
	for (size_t i = 0; i < sizeof(async_signals) / sizeof(async_signals[0]); i++)
		signal(async_signals[i], SIG_IGN);
	struct msg_hdr fail = { .type = MSG_FAILED };
	struct kb_gadgets gadgets = { 0 };
	int pidfd = -1;
	if (make_uffd) {
		int found = kb_find_gadgets(pid, &gadgets);
		pidfd = kb_pidfd_open(pid, 0);
		if (found < 0 || pidfd < 0) {
			fail.err = pidfd < 0 ? errno : ENOEXEC;
			fail.stage = KB_HELPER_INJECT;
			send_msg(sock, &fail, sizeof(fail), -1);
			_exit(1);
		}
	}
	/* Spawned ahead of time: wait for the word (or the parent's end). */
	struct msg_hdr go;
	if (recv_msg(sock, &go, sizeof(go), NULL, -1) != (ssize_t)sizeof(go) || go.type != MSG_GO)
		_exit(0);
	struct msg_hdr ok = { .type = MSG_STOPPED };
	ok.t[0] = kb_monotonic_ns();
	struct kb_stopped st;
	if (kb_ptrace_stop_all(pid, &st, 2000) < 0) {
		fail.err = errno;
		fail.stage = KB_HELPER_STOP;
		send_msg(sock, &fail, sizeof(fail), -1);
		_exit(1);
	}
	ok.t[1] = kb_monotonic_ns();
	int myfd = -1;
	if (make_uffd) {
		struct kb_thread *th = pick_thread(&st);
		long fd = -ENOENT;
		const uint64_t args[6] = { O_CLOEXEC | O_NONBLOCK };
		if (!th || parent_gone(sock) ||
		    kb_ptrace_inject_syscall(th, &gadgets, SYS_userfaultfd, args, &fd) < 0 || fd < 0) {
			fail.err = !th ? ESRCH : fd < 0 && fd > -4096 ? (int)-fd : errno;
			fail.stage = KB_HELPER_INJECT;
			kb_ptrace_detach_all(&st);
			send_msg(sock, &fail, sizeof(fail), -1);
			_exit(1);
		}
		myfd = kb_pidfd_getfd(pidfd, (int)fd, 0);
		int getfd_err = errno;
		/* The target's own descriptor goes away in every case. */
		const uint64_t cargs[6] = { (uint64_t)fd };
		long ignored;
		int close_rc = kb_ptrace_inject_syscall(th, &gadgets, SYS_close, cargs, &ignored);
		if (myfd < 0 || close_rc < 0) {
			fail.err = myfd < 0 ? getfd_err : errno;
			fail.stage = KB_HELPER_GETFD;
			kb_ptrace_detach_all(&st);
			send_msg(sock, &fail, sizeof(fail), -1);
			_exit(1);
		}
	}
	ok.t[2] = kb_monotonic_ns();
	/* Registers etc. of every thread, then the descriptor. */
	unsigned char *buf = malloc(MSG_MAX);
	bool sent = buf != NULL;
	for (size_t i = 0; sent && i < st.n; i++) {
		struct kb_thread *th = &st.t[i];
		struct msg_thread *m = (struct msg_thread *)buf;
		memset(m, 0, sizeof(*m));
		m->type = MSG_THREAD;
		m->th = *th;
		m->xstate_len = th->xstate_len <= 64 * 1024 ? (uint32_t)th->xstate_len : 0;
		memcpy(m->xstate, th->xstate, m->xstate_len);
		sent = send_msg(sock, m, sizeof(*m) + m->xstate_len, -1) == 0;
	}
	ok.count = (int32_t)st.n;
	if (sent)
		sent = send_msg(sock, &ok, sizeof(ok), myfd) == 0;
	if (myfd >= 0)
		close(myfd);
	/* Hold the target until asked (or the parent is gone, or time is up). */
	struct msg_hdr req;
	ok.early = 1;
	if (sent) {
		/* poll takes an int, and a negative one waits for ever. */
		int timeout_ms = max_pause_ms > INT_MAX ? INT_MAX : (int)max_pause_ms;
		ssize_t n = recv_msg(sock, &req, sizeof(req), NULL, timeout_ms);
		if (n == (ssize_t)sizeof(req) && req.type == MSG_RESUME)
			ok.early = 0;
	}
	kb_ptrace_detach_all(&st);
	ok.t[3] = kb_monotonic_ns();
	ok.type = MSG_RESUMED;
	send_msg(sock, &ok, sizeof(ok), -1);
	_exit(0);
}

int kb_helper_spawn(pid_t pid, bool make_uffd, unsigned max_pause_ms, struct kb_helper *h)
{
	memset(h, 0, sizeof(*h));
	h->pid = -1;
	h->sock = -1;
	h->make_uffd = make_uffd;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid_t child = fork();
	if (child < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		errno = e;
		return -1;
	}
	if (child == 0) {
		close(sv[0]);
		helper_main(sv[1], pid, make_uffd, max_pause_ms);
	}
	close(sv[1]);
	h->pid = child;
	h->sock = sv[0];
	return 0;
}

int kb_helper_start(pid_t pid, bool make_uffd, unsigned max_pause_ms, struct kb_helper *h,
		    struct kb_stopped *st, int *uffd, enum kb_helper_stage *stage)
{
	*uffd = -1;
	*stage = KB_HELPER_STOP;
	memset(st, 0, sizeof(*st));
	if (kb_helper_spawn(pid, make_uffd, max_pause_ms, h) < 0)
		return -1;
	return kb_helper_begin(h, pid, st, uffd, stage);
}

int kb_helper_begin(struct kb_helper *h, pid_t pid, struct kb_stopped *st, int *uffd,
		    enum kb_helper_stage *stage)
{
	bool make_uffd = h->make_uffd;
	memset(st, 0, sizeof(*st));
	st->pid = pid;
	*uffd = -1;
	*stage = KB_HELPER_STOP;
	struct msg_hdr go = { .type = MSG_GO };
	if (send_msg(h->sock, &go, sizeof(go), -1) < 0) {
		int e = errno;
		kb_helper_abandon(h);
		errno = e;
		return -1;
	}
	unsigned char *buf = malloc(MSG_MAX);
	if (!buf) {
		kb_helper_abandon(h);
		errno = ENOMEM;
		return -1;
	}
	size_t cap = 0;
	int err = EPROTO;
	for (;;) {
		int fd;
		ssize_t n = recv_msg(h->sock, buf, MSG_MAX, &fd, -1);
		if (n <= 0) {
			err = n < 0 ? errno : EPIPE;
			break;
		}
		int32_t type;
		memcpy(&type, buf, sizeof(type));
		if (type == MSG_THREAD && (size_t)n >= sizeof(struct msg_thread)) {
			const struct msg_thread *m = (const struct msg_thread *)buf;
			if (st->n == cap) {
				cap = cap ? cap * 2 : 16;
				struct kb_thread *nt = realloc(st->t, cap * sizeof(*nt));
				if (!nt) {
					err = ENOMEM;
					break;
				}
				st->t = nt;
			}
			struct kb_thread *th = &st->t[st->n++];
			*th = m->th;
			th->xstate = NULL;
			th->xstate_len = 0;
			th->injected = false;
			size_t xl = (size_t)n - sizeof(*m);
			if (xl && xl == m->xstate_len && (th->xstate = malloc(xl)) != NULL) {
				memcpy(th->xstate, m->xstate, xl);
				th->xstate_len = xl;
			}
			continue;
		}
		if (type == MSG_STOPPED && (size_t)n == sizeof(struct msg_hdr)) {
			const struct msg_hdr *m = (const struct msg_hdr *)buf;
			h->t_interrupt = m->t[0];
			h->t_stopped = m->t[1];
			h->t_injected = m->t[2];
			if (make_uffd && fd < 0) {
				err = EPROTO;
				break;
			}
			*uffd = fd;
			free(buf);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		if (type == MSG_FAILED && (size_t)n == sizeof(struct msg_hdr)) {
			const struct msg_hdr *m = (const struct msg_hdr *)buf;
			err = m->err ? m->err : EIO;
			*stage = (enum kb_helper_stage)m->stage;
		}
		break;
	}
	free(buf);
	kb_stopped_free(st);
	kb_helper_abandon(h);
	errno = err;
	return -1;
}

int kb_helper_resume(struct kb_helper *h)
{
	struct msg_hdr req = { .type = MSG_RESUME }, rep;
	int rc = -1;
	/* A helper that let the target go at the pause limit has sent RESUMED
	 * and exited already: the request then fails, but the reply is there. */
	send_msg(h->sock, &req, sizeof(req), -1);
	errno = 0;
	if (recv_msg(h->sock, &rep, sizeof(rep), NULL, -1) == (ssize_t)sizeof(rep) && rep.type == MSG_RESUMED) {
		h->t_resumed = rep.t[3];
		h->resumed_early = rep.early;
		rc = 0;
	} else if (errno == 0) {
		errno = EPIPE;
	}
	int e = errno;
	kb_helper_abandon(h);
	errno = e;
	return rc;
}

void kb_helper_abandon(struct kb_helper *h)
{
	if (h->sock >= 0)
		close(h->sock);
	h->sock = -1;
	if (h->pid > 0) {
		int status;
		while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	h->pid = 0;
}
