/* splitlock-stat: who takes split locks and bus locks, and where in their code.
 * The kernel reports each trap in its log; this applet reads those reports,
 * attributes them to thread, process and code location, and aggregates them. */
#include "proc/elfsym.h"
#include "base/json.h"
#include "base/kbox.h"
#include "kmsg/kmsg.h"
#include "base/parse.h"
#include "proc/procevents.h"
#include "proc/procinfo.h"
#include "kmsg/splitlock.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAIL 1

/* The kernel's default printk rate limit for these reports: 10 per 5 s. */
#define RATELIMIT_BURST 10
#define RATELIMIT_WINDOW_US 5000000ULL

static const char usage[] =
	"Usage: splitlock-stat [status] [--kmsg FILE] [--json]\n"
	"       splitlock-stat watch [-n N] [-d TIME] [--since-boot] [--kmsg FILE] [--json]\n"
	"       splitlock-stat summary [-d TIME] [--since-boot] [--kmsg FILE] [--json]\n"
	"       splitlock-stat run [--json] [--] COMMAND [ARGS...]\n"
	"\n"
	"Reports x86 split-lock (#AC) and bus-lock (#DB) traps logged by the kernel,\n"
	"attributed to thread, process, binary+offset and symbol+offset.\n"
	"\n"
	"  status            detection support, kernel mode and sysctl (default)\n"
	"  watch             print one line per trap as the kernel reports it\n"
	"  summary           aggregate traps per process, thread and code location\n"
	"  run               run COMMAND, attribute traps of it and its descendants,\n"
	"                    print the summary and exit with COMMAND's status\n"
	"\n"
	"  -n, --count N     watch: stop after N traps\n"
	"  -d, --duration T  stop after T (e.g. 10s, 2m; a bare number is seconds)\n"
	"  -b, --since-boot  start at the oldest record in the kernel log\n"
	"  -k, --kmsg FILE   read a saved log (a /dev/kmsg or `dmesg -r` dump, - for\n"
	"                    stdin) instead of /dev/kmsg, up to its end\n"
	"      --no-resolve  do not look up threads and code in /proc\n"
	"  -j, --json        JSON output (watch: one object per line)\n"
	"  -h, --help        show this help;  -V, --version  show the version\n"
	"\n"
	"Exit status: 0 ok, 1 error (e.g. the kernel log is unreadable), 2 usage;\n"
	"run: COMMAND's status (127 not found, 126 not executable, 128+N killed).\n"
	"Reading /dev/kmsg needs CAP_SYSLOG when kernel.dmesg_restrict=1.\n";

enum command { CMD_STATUS, CMD_WATCH, CMD_SUMMARY, CMD_RUN };

struct options {
	enum command cmd;
	bool json;
	uint64_t count;          /* 0: unlimited */
	uint64_t duration_ns;    /* 0: unlimited */
	bool since_boot;
	const char *kmsg_file;
	bool resolve;
	char **command;          /* run */
};

/* One trap report, attributed as far as /proc allows. */
struct trap {
	struct kb_kmsg_record *rec;
	struct kb_sl_msg msg;
	bool attributed;
	const char *why_not;     /* when not attributed */
	pid_t tgid;
	char process[64];
	char exe[4096];
	struct kb_location loc;
};

struct counter {
	uint64_t count;
	uint64_t first_us, last_us;
};

struct process_stat { pid_t tgid; char name[64]; char *exe; struct counter c; };
struct thread_stat { pid_t tid, tgid; char name[64]; struct counter c; };
struct location_stat {
	char *binary; uint64_t binary_offset; bool mapped;
	char *symbol; uint64_t symbol_offset; pid_t tgid; struct counter c;
};

struct summary {
	uint64_t traps[2];            /* by enum kb_sl_kind */
	uint64_t suppressed[2];
	uint64_t unattributed;
	uint64_t guest_fatal;
	struct process_stat *procs; size_t n_procs;
	struct thread_stat *threads; size_t n_threads;
	struct location_stat *locs; size_t n_locs;
	/* Timestamps of the latest reports per kind, to tell when the kernel's
	 * rate limit may be dropping reports it has not yet counted. */
	uint64_t recent[2][RATELIMIT_BURST];
	unsigned n_recent[2];
	bool saturated[2];
	uint64_t first_us, last_us;
	bool any;
};

struct ctx {
	struct options *o;
	struct kb_kmsg log;
	bool live;
	struct kb_resolver *resolver;
	struct kb_json json;
	struct summary sum;
	struct kb_tracked *tracked;   /* run: only this process tree counts */
	struct kb_proc_tree *tree;    /* run: the tree's threads, from process events */
	int tree_errno;               /* why there are no process events */
	/* run: names and executables noted at exec, for processes gone by the
	 * time their report is read. */
	struct exec_note { pid_t tgid; char comm[64]; char *exe; } *notes;
	size_t n_notes;
	uint64_t watched;             /* traps printed (watch -n) */
	const char *blind;            /* live log: why the kernel reports nothing, if so */
	int perf_errno;               /* run: perf_event_open's answer */
	uint64_t suspended_us;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		kb_die(EXIT_FAIL, "out of memory");
	return p;
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	p = realloc(p, (n ? n : 1) * size);
	if (!p)
		kb_die(EXIT_FAIL, "out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		kb_die(EXIT_FAIL, "out of memory");
	return d;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The kernel's timestamps are microseconds since boot on its monotonic clock;
 * for the live log this gives the wall-clock time of a record. */
static void format_wall_time(uint64_t ts_us, char *buf, size_t len)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
	int64_t at = now_us - ((int64_t)monotonic_us() - (int64_t)ts_us);
	time_t sec = (time_t)(at / 1000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%06dZ", (int)(at % 1000000));
}

/* ---- attribution --------------------------------------------------------- */

static const struct exec_note *find_note(const struct ctx *c, pid_t tgid)
{
	for (size_t i = c->n_notes; i > 0; i--)
		if (c->notes[i - 1].tgid == tgid)
			return &c->notes[i - 1];
	return NULL;
}

/* A process of the tree was forked or exec'd: note what it is while it
 * exists (a forked child has its parent's executable and mappings). */
static void on_process(void *arg, pid_t tgid, pid_t parent_tgid)
{
	struct ctx *c = arg;
	char exe[4096];
	struct exec_note n = { .tgid = tgid };
	const struct exec_note *parent = parent_tgid ? find_note(c, parent_tgid) : NULL;
	if (kb_proc_comm(tgid, n.comm, sizeof(n.comm)) < 0 && !parent)
		return;
	if (kb_proc_exe(tgid, exe, sizeof(exe)) == 0)
		n.exe = xstrdup(exe);
	else
		n.exe = xstrdup(parent ? parent->exe : "");
	if (!n.comm[0] && parent)
		snprintf(n.comm, sizeof(n.comm), "%s", parent->comm);
	c->notes = xrealloc(c->notes, c->n_notes + 1, sizeof(*c->notes));
	c->notes[c->n_notes++] = n;
	if (parent_tgid)
		kb_resolver_inherit(c->resolver, tgid, parent_tgid);
	else
		kb_resolver_prime(c->resolver, tgid);
}

/* Whether a thread's name now is the one in a report: the kernel prints at
 * most TASK_COMM_LEN - 1 bytes, /proc may show a kernel thread's longer one. */
static bool same_comm(const char *now, const char *reported)
{
	size_t n = strlen(reported);
	return !strcmp(now, reported) || (n == 15 && !strncmp(now, reported, n));
}

/* Attributes a report to its thread's process and code location. known_tgid
 * (0 if unknown) is the process the thread belonged to per process events,
 * which still holds when the thread has since exited. */
static void attribute(struct ctx *c, struct trap *t, pid_t known_tgid)
{
	t->attributed = false;
	t->why_not = "not looked up (--no-resolve)";
	if (!c->o->resolve)
		return;
	struct kb_thread_info ti;
	pid_t tgid = known_tgid;
	if (kb_thread_info(t->msg.tid, &ti) < 0) {
		t->why_not = "thread exited before its report was read";
	} else if (t->rec->has_ts && ti.start_usec > c->suspended_us &&
		   ti.start_usec - c->suspended_us > t->rec->ts_usec + 50000) {
		/* A thread started after the report is a later thread with a reused id. */
		t->why_not = "thread id reused since the report";
	} else if (!c->live && !same_comm(ti.comm, t->msg.comm)) {
		/* A saved log may come from another boot, where the start-time test
		 * proves nothing; the name the kernel printed must match at least. */
		t->why_not = "the thread id now names another thread";
	} else if (!known_tgid) {
		tgid = ti.tgid;
	}
	if (!tgid)
		return;
	t->tgid = tgid;
	const struct exec_note *note = find_note(c, tgid);
	if (kb_proc_comm(tgid, t->process, sizeof(t->process)) < 0)
		snprintf(t->process, sizeof(t->process), "%s", note ? note->comm : "?");
	if (kb_proc_exe(tgid, t->exe, sizeof(t->exe)) < 0)
		snprintf(t->exe, sizeof(t->exe), "%s", note ? note->exe : "");
	/* #DB is a trap: the kernel reports the instruction after the locked
	 * one, so look the symbol up one byte earlier (a lock at a function's
	 * end stays in it). #AC is a fault: the address is the locked one. */
	uint64_t lookup = t->msg.address;
	if (t->msg.kind == KB_SL_BUS_LOCK && lookup)
		lookup--;
	if (kb_resolve(c->resolver, tgid, t->msg.address, lookup, &t->loc) < 0)
		memset(&t->loc, 0, sizeof(t->loc));
	t->attributed = true;
	t->why_not = NULL;
}

/* ---- aggregation --------------------------------------------------------- */

static void count(struct counter *k, uint64_t ts)
{
	if (k->count == 0 || ts < k->first_us)
		k->first_us = ts;
	if (ts > k->last_us)
		k->last_us = ts;
	k->count++;
}

static void note_rate(struct summary *s, enum kb_sl_kind kind, uint64_t ts)
{
	uint64_t *r = s->recent[kind];
	if (s->n_recent[kind] == RATELIMIT_BURST) {
		memmove(r, r + 1, (RATELIMIT_BURST - 1) * sizeof(*r));
		s->n_recent[kind]--;
	}
	r[s->n_recent[kind]++] = ts;
	s->saturated[kind] = s->n_recent[kind] == RATELIMIT_BURST &&
			     ts - r[0] < RATELIMIT_WINDOW_US;
}

static void summary_add_trap(struct summary *s, const struct trap *t)
{
	uint64_t ts = t->rec->ts_usec;
	enum kb_sl_kind kind = t->msg.kind;
	s->traps[kind]++;
	if (t->msg.guest_fatal)
		s->guest_fatal++;
	if (!s->any || ts < s->first_us)
		s->first_us = ts;
	if (ts > s->last_us)
		s->last_us = ts;
	s->any = true;
	note_rate(s, kind, ts);
	if (!t->attributed) {
		s->unattributed++;
		return;
	}
	size_t i;
	for (i = 0; i < s->n_procs && s->procs[i].tgid != t->tgid; i++)
		;
	if (i == s->n_procs) {
		s->procs = xrealloc(s->procs, s->n_procs + 1, sizeof(*s->procs));
		s->procs[i] = (struct process_stat){ .tgid = t->tgid, .exe = xstrdup(t->exe) };
		snprintf(s->procs[i].name, sizeof(s->procs[i].name), "%s", t->process);
		s->n_procs++;
	}
	count(&s->procs[i].c, ts);

	for (i = 0; i < s->n_threads && s->threads[i].tid != t->msg.tid; i++)
		;
	if (i == s->n_threads) {
		s->threads = xrealloc(s->threads, s->n_threads + 1, sizeof(*s->threads));
		s->threads[i] = (struct thread_stat){ .tid = t->msg.tid, .tgid = t->tgid };
		snprintf(s->threads[i].name, sizeof(s->threads[i].name), "%s", t->msg.comm);
		s->n_threads++;
	}
	count(&s->threads[i].c, ts);

	/* A code location is a binary and offset; anonymous code is per process. */
	const char *bin = t->loc.binary;
	for (i = 0; i < s->n_locs; i++) {
		struct location_stat *l = &s->locs[i];
		bool same_bin = (bin && l->binary && !strcmp(bin, l->binary)) ||
				(!bin && !l->binary && l->tgid == t->tgid);
		if (same_bin && l->mapped == t->loc.mapped &&
		    l->binary_offset == (t->loc.mapped ? t->loc.binary_offset : t->msg.address))
			break;
	}
	if (i == s->n_locs) {
		s->locs = xrealloc(s->locs, s->n_locs + 1, sizeof(*s->locs));
		s->locs[i] = (struct location_stat){
			.binary = xstrdup(bin), .mapped = t->loc.mapped,
			.binary_offset = t->loc.mapped ? t->loc.binary_offset : t->msg.address,
			.symbol = xstrdup(t->loc.symbol), .symbol_offset = t->loc.symbol_offset,
			.tgid = t->tgid };
		s->n_locs++;
	}
	count(&s->locs[i].c, ts);
}

static void summary_add_suppressed(struct summary *s, enum kb_sl_kind kind, uint64_t n)
{
	s->suppressed[kind] += n;
	s->saturated[kind] = false;   /* the kernel has accounted for that window */
	s->n_recent[kind] = 0;
}

static void summary_free(struct summary *s)
{
	for (size_t i = 0; i < s->n_procs; i++)
		free(s->procs[i].exe);
	for (size_t i = 0; i < s->n_locs; i++) {
		free(s->locs[i].binary);
		free(s->locs[i].symbol);
	}
	free(s->procs);
	free(s->threads);
	free(s->locs);
}

/* ---- output -------------------------------------------------------------- */

static void format_location(const struct trap *t, char *buf, size_t len)
{
	if (!t->attributed) {
		snprintf(buf, len, "-");
	} else if (!t->loc.mapped) {
		snprintf(buf, len, "(not mapped now)");
	} else if (!t->loc.binary) {
		snprintf(buf, len, "(anonymous)+0x%" PRIx64, t->loc.binary_offset);
	} else if (t->loc.symbol) {
		snprintf(buf, len, "%s+0x%" PRIx64 " %s+0x%" PRIx64, t->loc.binary,
			 t->loc.binary_offset, t->loc.symbol, t->loc.symbol_offset);
	} else {
		snprintf(buf, len, "%s+0x%" PRIx64 " ?", t->loc.binary, t->loc.binary_offset);
	}
}

static void print_trap_text(struct ctx *c, const struct trap *t)
{
	char loc[8192];
	format_location(t, loc, sizeof(loc));
	const struct kb_kmsg_record *r = t->rec;
	printf("[%5" PRIu64 ".%06" PRIu64 "] %s %s tid=%d (%s)", r->ts_usec / 1000000,
	       r->ts_usec % 1000000, kb_sl_kind_trap(t->msg.kind), kb_sl_kind_name(t->msg.kind),
	       (int)t->msg.tid, t->msg.comm);
	if (t->attributed)
		printf(" pid=%d (%s) exe=%s", (int)t->tgid, t->process, t->exe[0] ? t->exe : "?");
	printf(" addr=0x%" PRIx64 " %s", t->msg.address, loc);
	if (!t->attributed)
		printf(" [%s]", t->why_not);
	if (t->msg.guest_fatal)
		printf(" [guest split lock: SIGBUS sent]");
	putchar('\n');
	(void)c;
}

static void json_hex(struct kb_json *j, const char *key, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	kb_json_kv_string(j, key, buf);
}

static void print_trap_json(struct ctx *c, const struct trap *t)
{
	struct kb_json *j = &c->json;
	const struct kb_kmsg_record *r = t->rec;
	kb_json_begin_object(j);
	kb_json_kv_string(j, "type", "trap");
	if (r->has_seq)
		kb_json_kv_uint(j, "seq", r->seq);
	kb_json_kv_uint(j, "ts_us", r->ts_usec);
	if (c->live) {
		char when[64];
		format_wall_time(r->ts_usec, when, sizeof(when));
		kb_json_kv_string(j, "time", when);
	}
	kb_json_kv_string(j, "kind", kb_sl_kind_name(t->msg.kind));
	kb_json_kv_string(j, "trap", kb_sl_kind_trap(t->msg.kind));
	kb_json_kv_int(j, "tid", t->msg.tid);
	kb_json_kv_string(j, "thread", t->msg.comm);
	json_hex(j, "address", t->msg.address);
	kb_json_kv_bool(j, "attributed", t->attributed);
	if (t->msg.guest_fatal)
		kb_json_kv_bool(j, "guest_sigbus", true);
	if (t->attributed) {
		kb_json_kv_int(j, "pid", t->tgid);
		kb_json_kv_string(j, "process", t->process);
		kb_json_kv_string(j, "exe", t->exe[0] ? t->exe : NULL);
		kb_json_kv_bool(j, "mapped", t->loc.mapped);
		if (t->loc.mapped) {
			kb_json_kv_string(j, "binary", t->loc.binary);
			json_hex(j, "binary_offset", t->loc.binary_offset);
			kb_json_kv_string(j, "symbol", t->loc.symbol);
			if (t->loc.symbol)
				kb_json_kv_uint(j, "symbol_offset", t->loc.symbol_offset);
		}
	} else {
		kb_json_kv_string(j, "reason", t->why_not);
	}
	kb_json_end_object(j);
	kb_json_end_line(j);
}

static void print_suppressed(struct ctx *c, const struct kb_kmsg_record *r, const struct kb_sl_msg *m)
{
	if (c->o->json) {
		struct kb_json *j = &c->json;
		kb_json_begin_object(j);
		kb_json_kv_string(j, "type", "suppressed");
		if (r->has_seq)
			kb_json_kv_uint(j, "seq", r->seq);
		kb_json_kv_uint(j, "ts_us", r->ts_usec);
		kb_json_kv_string(j, "kind", kb_sl_kind_name(m->kind));
		kb_json_kv_uint(j, "count", m->suppressed);
		kb_json_end_object(j);
		kb_json_end_line(j);
	} else {
		printf("[%5" PRIu64 ".%06" PRIu64 "] %s the kernel suppressed %" PRIu64
		       " %s reports (rate limit; no process named)\n", r->ts_usec / 1000000,
		       r->ts_usec % 1000000, kb_sl_kind_trap(m->kind), m->suppressed,
		       kb_sl_kind_name(m->kind));
	}
	fflush(stdout);
}

/* The boot-time mode message (seen with --since-boot or in a saved log). */
static void print_mode(struct ctx *c, const struct kb_kmsg_record *r, const struct kb_sl_msg *m)
{
	if (c->o->json) {
		struct kb_json *j = &c->json;
		kb_json_begin_object(j);
		kb_json_kv_string(j, "type", "mode");
		if (r->has_seq)
			kb_json_kv_uint(j, "seq", r->seq);
		kb_json_kv_uint(j, "ts_us", r->ts_usec);
		kb_json_kv_string(j, "mode", kb_sl_mode_name(m->mode));
		kb_json_kv_string(j, "trap", m->mode_has_kind ? kb_sl_kind_trap(m->kind) : NULL);
		if (m->mode == KB_SL_MODE_RATELIMIT)
			kb_json_kv_uint(j, "ratelimit_per_sec", m->ratelimit);
		kb_json_end_object(j);
		kb_json_end_line(j);
	} else {
		printf("[%5" PRIu64 ".%06" PRIu64 "] kernel mode: %s", r->ts_usec / 1000000,
		       r->ts_usec % 1000000, kb_sl_mode_name(m->mode));
		if (m->mode_has_kind)
			printf(" (%s)", kb_sl_kind_trap(m->kind));
		if (m->mode == KB_SL_MODE_RATELIMIT)
			printf(", %u bus locks/s", m->ratelimit);
		putchar('\n');
	}
	fflush(stdout);
}

/* ---- the event loop ------------------------------------------------------ */

/* Handles one record; returns false when watch -n has printed enough. */
static bool handle_record(struct ctx *c, struct kb_kmsg_record *rec)
{
	/* Only the kernel's own records: user space may write to /dev/kmsg,
	 * but never with the kernel facility. (-1: a plain dmesg dump.) */
	if (rec->facility > 0)
		return true;
	struct trap t;
	memset(&t, 0, sizeof(t));
	t.rec = rec;
	kb_sl_parse_message(rec->message, &t.msg);
	if (t.msg.type == KB_SL_MSG_SUPPRESSED) {
		summary_add_suppressed(&c->sum, t.msg.kind, t.msg.suppressed);
		if (c->o->cmd == CMD_WATCH)
			print_suppressed(c, rec, &t.msg);
		return true;
	}
	if (t.msg.type == KB_SL_MSG_MODE) {
		if (c->o->cmd == CMD_WATCH)
			print_mode(c, rec, &t.msg);
		return true;
	}
	if (t.msg.type != KB_SL_MSG_TRAP)
		return true;
	if (c->tree) {
		/* run with process events: the tree's threads are known even after
		 * they exit (their fork events were queued before the trap). */
		pid_t tgid = 0;
		kb_proc_tree_drain(c->tree);
		if (!kb_proc_tree_lookup(c->tree, t.msg.tid, t.rec->ts_usec * 1000, &tgid) &&
		    !kb_proc_tree_lost(c->tree))
			return true;
		attribute(c, &t, tgid);
		if (!tgid && t.attributed && !kb_tracked_owns(c->tracked, t.tgid))
			return true;
	} else {
		attribute(c, &t, 0);
		/* run without process events: walk the live process tree; a report
		 * whose thread is gone cannot be placed and is counted apart. */
		if (c->tracked && t.attributed && !kb_tracked_owns(c->tracked, t.tgid))
			return true;
	}
	summary_add_trap(&c->sum, &t);
	if (c->o->cmd == CMD_WATCH) {
		if (c->o->json)
			print_trap_json(c, &t);
		else
			print_trap_text(c, &t);
		fflush(stdout);
		if (c->o->count && ++c->watched >= c->o->count)
			return false;
	}
	return true;
}

/* Reads records until the end (file, or live log with nothing new and no
 * following wanted), -n is reached, the duration ends or a signal arrives.
 * For run, also returns once the command has exited and the log is drained. */
static int event_loop(struct ctx *c, bool follow)
{
	struct kb_kmsg_record *rec = xcalloc(1, sizeof(*rec));
	uint64_t deadline = c->o->duration_ns ? monotonic_us() + c->o->duration_ns / 1000 : 0;
	bool command_done = false;
	int rc = 0;
	for (;;) {
		int r = 0;
		bool more = true;
		while (more && !stop_requested && (r = kb_kmsg_read(&c->log, rec)) > 0) {
			more = handle_record(c, rec);
			if (deadline && monotonic_us() >= deadline)
				break;
		}
		if (r < 0) {
			kb_warn_errno("reading the kernel log");
			rc = EXIT_FAIL;
			break;
		}
		if (!more || stop_requested || command_done)
			break;
		if (c->tracked)
			kb_tracked_reap_orphans(c->tracked);
		if (!c->live || !follow)
			break;
		int timeout = -1;
		if (deadline) {
			uint64_t now = monotonic_us();
			if (now >= deadline)
				break;
			uint64_t left_ms = (deadline - now + 999) / 1000;
			timeout = left_ms > 3600000 ? 3600000 : (int)left_ms;
		}
		int other[2] = { c->tracked ? c->tracked->pidfd : -1, c->tree ? kb_proc_tree_fd(c->tree) : -1 };
		bool ready[2];
		int w = kb_kmsg_wait(&c->log, other, ready, 2, timeout);
		if (w < 0 && errno != EINTR) {
			kb_warn_errno("waiting for the kernel log");
			rc = EXIT_FAIL;
			break;
		}
		if (ready[1])
			kb_proc_tree_drain(c->tree);
		/* The command's traps were logged before it exited: one more drain. */
		if (ready[0])
			command_done = true;
	}
	free(rec);
	return rc;
}

/* ---- summary output ------------------------------------------------------ */

static bool lower_bound(const struct ctx *c, const char **why, size_t *n)
{
	const struct summary *s = &c->sum;
	*n = 0;
	if (s->suppressed[0] + s->suppressed[1])
		why[(*n)++] = "the kernel suppressed reports (rate limit)";
	if (s->saturated[0] || s->saturated[1])
		why[(*n)++] = "the kernel's rate limit was reached; reports it drops are only counted at its next report";
	if (c->log.lost)
		why[(*n)++] = "records were overwritten in the ring buffer before they were read";
	if (s->traps[KB_SL_SPLIT_LOCK])
		why[(*n)++] = "#AC is reported once per thread by recent kernels";
	if (c->tracked && s->unattributed)
		why[(*n)++] = "reports of exited threads could not be placed";
	if (c->tree && kb_proc_tree_lost(c->tree))
		why[(*n)++] = "process events were lost (socket overflow)";
	if (c->blind)
		why[(*n)++] = c->blind;
	return *n > 0;
}

static void print_counter_json(struct kb_json *j, const struct counter *k)
{
	kb_json_kv_uint(j, "count", k->count);
	kb_json_kv_uint(j, "first_us", k->first_us);
	kb_json_kv_uint(j, "last_us", k->last_us);
}

static void print_summary_json(struct ctx *c, int exit_status)
{
	struct summary *s = &c->sum;
	struct kb_json *j = &c->json;
	const char *why[8];
	size_t n_why;
	bool lb = lower_bound(c, why, &n_why);
	kb_json_begin_object(j);
	kb_json_kv_uint(j, "traps", s->traps[0] + s->traps[1]);
	kb_json_kv_uint(j, "split_lock_traps", s->traps[KB_SL_SPLIT_LOCK]);
	kb_json_kv_uint(j, "bus_lock_traps", s->traps[KB_SL_BUS_LOCK]);
	kb_json_kv_bool(j, "exact", !lb);
	kb_json_key(j, "lower_bound_because");
	kb_json_begin_array(j);
	for (size_t i = 0; i < n_why; i++)
		kb_json_string(j, why[i]);
	kb_json_end_array(j);
	kb_json_kv_uint(j, "suppressed", s->suppressed[0] + s->suppressed[1]);
	kb_json_kv_uint(j, "lost_records", c->log.lost);
	kb_json_kv_uint(j, "unattributed", s->unattributed);
	if (s->any) {
		kb_json_kv_uint(j, "first_us", s->first_us);
		kb_json_kv_uint(j, "last_us", s->last_us);
	}
	if (c->tracked) {
		kb_json_kv_int(j, "command_pid", c->tracked->pid);
		kb_json_kv_int(j, "exit_status", exit_status);
		kb_json_kv_string(j, "perf_counters", c->perf_errno ? strerror(c->perf_errno)
				  : "present, split-lock events not used (model-specific)");
		kb_json_kv_string(j, "tracking", c->tree ? "process events" : "process tree walk");
		if (!c->tree)
			kb_json_kv_string(j, "process_events_error", strerror(c->tree_errno));
	}
	kb_json_key(j, "processes");
	kb_json_begin_array(j);
	for (size_t i = 0; i < s->n_procs; i++) {
		kb_json_begin_object(j);
		kb_json_kv_int(j, "pid", s->procs[i].tgid);
		kb_json_kv_string(j, "process", s->procs[i].name);
		kb_json_kv_string(j, "exe", s->procs[i].exe && *s->procs[i].exe ? s->procs[i].exe : NULL);
		print_counter_json(j, &s->procs[i].c);
		kb_json_end_object(j);
	}
	kb_json_end_array(j);
	kb_json_key(j, "threads");
	kb_json_begin_array(j);
	for (size_t i = 0; i < s->n_threads; i++) {
		kb_json_begin_object(j);
		kb_json_kv_int(j, "tid", s->threads[i].tid);
		kb_json_kv_int(j, "pid", s->threads[i].tgid);
		kb_json_kv_string(j, "thread", s->threads[i].name);
		print_counter_json(j, &s->threads[i].c);
		kb_json_end_object(j);
	}
	kb_json_end_array(j);
	kb_json_key(j, "locations");
	kb_json_begin_array(j);
	for (size_t i = 0; i < s->n_locs; i++) {
		struct location_stat *l = &s->locs[i];
		kb_json_begin_object(j);
		kb_json_kv_bool(j, "mapped", l->mapped);
		kb_json_kv_string(j, "binary", l->binary);
		json_hex(j, l->mapped ? "binary_offset" : "address", l->binary_offset);
		kb_json_kv_string(j, "symbol", l->symbol);
		if (l->symbol)
			kb_json_kv_uint(j, "symbol_offset", l->symbol_offset);
		print_counter_json(j, &l->c);
		kb_json_end_object(j);
	}
	kb_json_end_array(j);
	kb_json_end_object(j);
	kb_json_end_line(j);
}

static void ts_text(uint64_t us, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
}

static void print_summary_text(struct ctx *c, FILE *f)
{
	struct summary *s = &c->sum;
	const char *why[8];
	size_t n_why;
	bool lb = lower_bound(c, why, &n_why);
	uint64_t total = s->traps[0] + s->traps[1];
	fprintf(f, "%" PRIu64 " trap reports (%" PRIu64 " split_lock #AC, %" PRIu64 " bus_lock #DB): %s\n",
	       total, s->traps[KB_SL_SPLIT_LOCK], s->traps[KB_SL_BUS_LOCK],
	       lb ? "counts are lower bounds" : "counts are exact");
	for (size_t i = 0; i < n_why; i++)
		fprintf(f, "  lower bound: %s\n", why[i]);
	fprintf(f, "suppressed by the kernel: %" PRIu64 " (not attributable)\n",
	       s->suppressed[0] + s->suppressed[1]);
	if (c->log.lost)
		fprintf(f, "records lost to ring-buffer overwrite: %" PRIu64 "\n", c->log.lost);
	if (s->unattributed)
		fprintf(f, "reports not attributed (thread gone or not looked up): %" PRIu64 "\n", s->unattributed);
	if (!s->n_procs)
		return;
	char a[32], b[32];
	fprintf(f, "\nPROCESSES\n%8s %8s %-16s %-16s %-16s %s\n", "COUNT", "PID", "NAME", "FIRST", "LAST", "EXE");
	for (size_t i = 0; i < s->n_procs; i++) {
		ts_text(s->procs[i].c.first_us, a, sizeof(a));
		ts_text(s->procs[i].c.last_us, b, sizeof(b));
		fprintf(f, "%8" PRIu64 " %8d %-16s %-16s %-16s %s\n", s->procs[i].c.count, (int)s->procs[i].tgid,
		       s->procs[i].name, a, b, s->procs[i].exe && *s->procs[i].exe ? s->procs[i].exe : "?");
	}
	fprintf(f, "\nTHREADS\n%8s %8s %8s %-16s %-16s %s\n", "COUNT", "TID", "PID", "NAME", "FIRST", "LAST");
	for (size_t i = 0; i < s->n_threads; i++) {
		ts_text(s->threads[i].c.first_us, a, sizeof(a));
		ts_text(s->threads[i].c.last_us, b, sizeof(b));
		fprintf(f, "%8" PRIu64 " %8d %8d %-16s %-16s %s\n", s->threads[i].c.count, (int)s->threads[i].tid,
		       (int)s->threads[i].tgid, s->threads[i].name, a, b);
	}
	fprintf(f, "\nCODE LOCATIONS\n%8s %-40s %s\n", "COUNT", "SYMBOL", "BINARY+OFFSET");
	for (size_t i = 0; i < s->n_locs; i++) {
		struct location_stat *l = &s->locs[i];
		char sym[512];
		if (l->symbol)
			snprintf(sym, sizeof(sym), "%s+0x%" PRIx64, l->symbol, l->symbol_offset);
		else
			snprintf(sym, sizeof(sym), "?");
		if (!l->mapped)
			fprintf(f, "%8" PRIu64 " %-40s 0x%" PRIx64 " (not mapped now)\n", l->c.count, sym, l->binary_offset);
		else
			fprintf(f, "%8" PRIu64 " %-40s %s+0x%" PRIx64 "\n", l->c.count, sym,
			       l->binary ? l->binary : "(anonymous)", l->binary_offset);
	}
}

/* ---- subcommands --------------------------------------------------------- */

static const char *mode_meaning(const struct kb_sl_status *st)
{
	if (!st->log_found && st->cpuinfo_read && !st->split_lock_detect && !st->bus_lock_detect)
		return "this CPU (as the kernel sees it) cannot detect split or bus locks: nothing will be reported";
	switch (st->mode) {
	case KB_SL_MODE_OFF:
		return "detection is disabled: split locks run unnoticed";
	case KB_SL_MODE_WARN:
		return (st->log_found ? st->log_mode.kind == KB_SL_SPLIT_LOCK : st->split_lock_detect)
		       ? "a split lock traps (#AC) before it executes; the kernel logs it and slows the task down"
		       : "a bus lock traps (#DB) after it executed; the kernel logs it";
	case KB_SL_MODE_FATAL:
		return "a task taking a split lock is killed with SIGBUS";
	case KB_SL_MODE_RATELIMIT:
		return "bus locks are throttled system-wide to the given rate, and logged";
	default:
		return "the kernel's mode could not be determined";
	}
}

static int cmd_status(struct options *o)
{
	struct kb_sl_status st;
	kb_sl_status_read(&st, o->kmsg_file);
	/* A log the caller named must be readable, as for watch and summary. */
	if (o->kmsg_file && st.log_errno)
		kb_die(EXIT_FAIL, "%s: %s", o->kmsg_file, strerror(st.log_errno));
	bool capable = !st.cpuinfo_read || st.split_lock_detect || st.bus_lock_detect;
	const char *src = st.log_found ? "boot message" : !capable ? "CPU flags" : st.cmdline_option[0] ? "kernel command line"
			 : st.mode == KB_SL_MODE_UNKNOWN ? "unknown" : "kernel default";
	if (o->json) {
		struct kb_json j;
		kb_json_init(&j, stdout);
		kb_json_begin_object(&j);
		kb_json_key(&j, "cpu");
		kb_json_begin_object(&j);
		kb_json_kv_bool(&j, "known", st.cpuinfo_read);
		kb_json_kv_bool(&j, "split_lock_detect", st.split_lock_detect);
		kb_json_kv_bool(&j, "bus_lock_detect", st.bus_lock_detect);
		kb_json_end_object(&j);
		kb_json_kv_string(&j, "mode", kb_sl_mode_name(st.mode));
		if (st.mode == KB_SL_MODE_RATELIMIT)
			kb_json_kv_uint(&j, "ratelimit_per_sec", st.ratelimit);
		kb_json_kv_string(&j, "mode_source", src);
		kb_json_kv_string(&j, "meaning", mode_meaning(&st));
		kb_json_kv_string(&j, "cmdline_option", st.cmdline_option[0] ? st.cmdline_option : NULL);
		if (st.mitigate >= 0)
			kb_json_kv_int(&j, "split_lock_mitigate", st.mitigate);
		else
			kb_json_kv_string(&j, "split_lock_mitigate", NULL);
		kb_json_key(&j, "kernel_log");
		kb_json_begin_object(&j);
		kb_json_kv_bool(&j, "readable", st.log_errno == 0);
		if (st.log_errno)
			kb_json_kv_string(&j, "error", strerror(st.log_errno));
		kb_json_kv_bool(&j, "boot_message_found", st.log_found);
		kb_json_end_object(&j);
		kb_json_key(&j, "perf");
		kb_json_begin_object(&j);
		kb_json_kv_bool(&j, "hardware_counters", st.perf_errno == 0);
		if (st.perf_errno)
			kb_json_kv_string(&j, "error", strerror(st.perf_errno));
		kb_json_end_object(&j);
		kb_json_end_object(&j);
		kb_json_end_line(&j);
	} else {
		printf("cpu: split_lock_detect %s, bus_lock_detect %s%s\n",
		       st.split_lock_detect ? "yes" : "no", st.bus_lock_detect ? "yes" : "no",
		       st.cpuinfo_read ? "" : " (/proc/cpuinfo unreadable)");
		printf("mode: %s", kb_sl_mode_name(st.mode));
		if (st.mode == KB_SL_MODE_RATELIMIT)
			printf(" (%u bus locks/s)", st.ratelimit);
		printf(" (from the %s)\n  %s\n", src, mode_meaning(&st));
		printf("kernel command line: %s%s\n", st.cmdline_option[0] ? "split_lock_detect=" : "",
		       st.cmdline_option[0] ? st.cmdline_option : "no split_lock_detect= option");
		if (st.mitigate >= 0)
			printf("kernel.split_lock_mitigate: %d\n  %s\n", st.mitigate, st.mitigate
			       ? "a task taking a split lock (#AC) sleeps 10 ms, and such tasks run one at a time"
			       : "split locks are only logged, not slowed down");
		else
			printf("kernel.split_lock_mitigate: absent\n");
		if (st.log_errno == EPERM || st.log_errno == EACCES)
			printf("kernel log: not readable: %s (needs CAP_SYSLOG%s)\n", strerror(st.log_errno),
			       st.dmesg_restrict == 1 ? "; kernel.dmesg_restrict=1" : "");
		else if (st.log_errno)
			printf("kernel log: not readable: %s\n", strerror(st.log_errno));
		else if (st.log_found)
			printf("kernel log: boot message: \"%s\"\n", kb_sl_mode_name(st.log_mode.mode));
		else
			printf("kernel log: no split lock boot message%s\n",
			       st.mode == KB_SL_MODE_OFF ? "" : " (rotated out of the ring buffer?)");
		if (st.perf_errno)
			printf("perf: hardware counters unavailable (%s); counts come from the kernel log\n",
			       strerror(st.perf_errno));
		else
			printf("perf: hardware counters present; split-lock events are model-specific and not used\n");
	}
	return 0;
}

/* For the live log: notes when this kernel cannot report anything, so that
 * a count of zero is not taken for "no split locks". */
static void check_detection(struct ctx *c)
{
	struct kb_sl_status st;
	kb_sl_status_read(&st, NULL);
	c->perf_errno = st.perf_errno;
	if (st.cpuinfo_read && !st.split_lock_detect && !st.bus_lock_detect && !st.log_found)
		c->blind = "this CPU cannot detect split or bus locks: the kernel reports none";
	else if (st.mode == KB_SL_MODE_OFF)
		c->blind = "split lock detection is off: the kernel reports none";
	else if (st.mode == KB_SL_MODE_FATAL)
		c->blind = "fatal mode: offending tasks get SIGBUS and no report is logged";
}

static int open_log(struct ctx *c)
{
	struct options *o = c->o;
	if (o->kmsg_file) {
		if (kb_kmsg_open_file(&c->log, o->kmsg_file) < 0) {
			kb_warn_errno("%s", o->kmsg_file);
			return -1;
		}
		c->live = false;
		return 0;
	}
	if (kb_kmsg_open_live(&c->log, o->since_boot) < 0) {
		if (errno == EPERM || errno == EACCES)
			kb_warn("cannot read the kernel log /dev/kmsg: %s: reading it needs CAP_SYSLOG "
				"(kernel.dmesg_restrict is set)", strerror(errno));
		else
			kb_warn_errno("/dev/kmsg");
		return -1;
	}
	c->live = true;
	check_detection(c);
	return 0;
}

static void install_stop_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_DFL);
}

static int cmd_follow(struct ctx *c)
{
	if (open_log(c) < 0)
		return EXIT_FAIL;
	install_stop_handlers();
	/* summary --since-boot alone reads what is there; otherwise follow. */
	bool follow = c->o->cmd == CMD_WATCH || c->o->duration_ns || !c->o->since_boot;
	int rc = event_loop(c, follow);
	if (c->o->cmd == CMD_SUMMARY) {
		if (c->o->json)
			print_summary_json(c, 0);
		else
			print_summary_text(c, stdout);
	}
	return rc;
}

static int cmd_run(struct ctx *c)
{
	if (open_log(c) < 0)
		return EXIT_FAIL;
	struct kb_tracked tracked;
	/* Like time(1): the terminal's ^C goes to the command; we report after. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	/* Listen for process events before the command exists. */
	c->tree = kb_proc_tree_open();
	if (!c->tree)
		c->tree_errno = errno;
	if (kb_tracked_spawn(&tracked, c->o->command) < 0) {
		kb_warn_errno("cannot run %s", c->o->command[0]);
		return EXIT_FAIL;
	}
	c->tracked = &tracked;
	if (c->tree) {
		kb_proc_tree_set_root(c->tree, tracked.pid);
		kb_proc_tree_on_process(c->tree, on_process, c);
	}
	int rc = event_loop(c, true);
	int status = kb_tracked_wait(&tracked);
	if (status < 0) {
		kb_warn_errno("waiting for %s", c->o->command[0]);
		status = EXIT_FAIL;
	}
	if (c->o->json) {
		print_summary_json(c, status);
	} else {
		/* The command owns stdout; the report goes to stderr like time(1). */
		fflush(stdout);
		fprintf(stderr, "%s: %s exited with status %d\n", kb_name(), c->o->command[0], status);
		if (c->tree)
			fprintf(stderr, "tracking: process events (every thread of the tree, even after it exits)\n");
		else
			fprintf(stderr, "tracking: process tree walk at each report (process events unavailable: %s)\n",
				strerror(c->tree_errno));
		if (c->perf_errno)
			fprintf(stderr, "hardware counters: unavailable (%s); counts come from the kernel log\n",
				strerror(c->perf_errno));
		else
			fprintf(stderr, "hardware counters: present, but split-lock events are model-specific "
				"and not used; counts come from the kernel log\n");
		print_summary_text(c, stderr);
	}
	if (rc)
		kb_warn("the kernel log could not be read to the end; counts are incomplete");
	return status;
}

static enum command parse_command(const char *s, bool *matched)
{
	static const struct { const char *name; enum command cmd; } cmds[] = {
		{ "status", CMD_STATUS }, { "watch", CMD_WATCH },
		{ "summary", CMD_SUMMARY }, { "run", CMD_RUN },
	};
	for (size_t i = 0; i < KB_ARRAY_SIZE(cmds); i++) {
		if (!strcmp(s, cmds[i].name)) {
			*matched = true;
			return cmds[i].cmd;
		}
	}
	*matched = false;
	return CMD_STATUS;
}

static int splitlock_stat_main(int argc, char **argv)
{
	struct options o = { .cmd = CMD_STATUS, .resolve = true };
	int first = 1;
	if (argc > 1 && argv[1][0] != '-') {
		bool ok;
		o.cmd = parse_command(argv[1], &ok);
		if (!ok)
			kb_usage_error("unknown command '%s'", argv[1]);
		first = 2;
	}
	enum { OPT_NO_RESOLVE = 256 };
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "since-boot", no_argument, NULL, 'b' },
		{ "kmsg", required_argument, NULL, 'k' },
		{ "no-resolve", no_argument, NULL, OPT_NO_RESOLVE },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* getopt sees the options after the subcommand; '+' stops at COMMAND for run. */
	char **args = argv + first - 1;
	int nargs = argc - first + 1;
	args[0] = argv[0];
	optind = 1;
	int opt;
	while ((opt = getopt_long(nargs, args, "+n:d:bk:jhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (kb_parse_u64_range(optarg, 1, UINT64_MAX, &o.count) < 0)
				kb_usage_error("invalid count '%s'", optarg);
			break;
		case 'd':
			if (kb_parse_duration(optarg, 1000000000ULL, &o.duration_ns) < 0 || !o.duration_ns)
				kb_usage_error("invalid duration '%s'", optarg);
			break;
		case 'b': o.since_boot = true; break;
		case 'k': o.kmsg_file = optarg; break;
		case OPT_NO_RESOLVE: o.resolve = false; break;
		case 'j': o.json = true; break;
		case 'h': kb_help_exit();
		case 'V': kb_version_exit();
		default: kb_usage_error("bad option");
		}
	}
	char **rest = args + optind;
	int n_rest = nargs - optind;
	if (o.cmd == CMD_RUN) {
		if (n_rest < 1)
			kb_usage_error("run needs a COMMAND");
		if (o.kmsg_file || o.since_boot || o.count || o.duration_ns)
			kb_usage_error("run takes only --json and --no-resolve");
		o.command = rest;
	} else if (n_rest > 0) {
		kb_usage_error("unexpected argument '%s'", rest[0]);
	}
	if (o.cmd == CMD_STATUS && (o.count || o.duration_ns || o.since_boot))
		kb_usage_error("status takes only --json and --kmsg");
	if (o.cmd == CMD_SUMMARY && o.count)
		kb_usage_error("-n is for watch");
	if (o.kmsg_file && (o.duration_ns || o.since_boot))
		kb_usage_error("--kmsg reads a file to its end: no --duration or --since-boot");

	if (o.cmd == CMD_STATUS)
		return cmd_status(&o);

	struct ctx c;
	memset(&c, 0, sizeof(c));
	c.o = &o;
	c.log.fd = -1;
	c.suspended_us = kb_suspended_usec();
	c.resolver = kb_resolver_new();
	if (!c.resolver)
		kb_die(EXIT_FAIL, "out of memory");
	kb_json_init(&c.json, stdout);
	int rc = o.cmd == CMD_RUN ? cmd_run(&c) : cmd_follow(&c);
	kb_kmsg_close(&c.log);
	kb_proc_tree_close(c.tree);
	for (size_t i = 0; i < c.n_notes; i++)
		free(c.notes[i].exe);
	free(c.notes);
	kb_resolver_free(c.resolver);
	summary_free(&c.sum);
	return rc;
}

const struct applet applet_splitlock_stat = {
	.name = "splitlock-stat",
	.main = splitlock_stat_main,
	.summary = "show which threads take x86 split locks and bus locks, and where",
	.usage = usage,
	.dir = "bin",
};
