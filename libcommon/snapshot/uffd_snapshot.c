/* The snapshot engine (see uffd_snapshot.h).
 *
 * Order of events: classify the mappings (smaps, before stopping anything);
 * a first short stop creates a userfaultfd inside the target; while the
 * target runs again we register and write-protect the writable mappings we
 * dump, merely releasing (and noting) the pages it writes meanwhile. The
 * second stop is the instant the core shows: protect again the pages noted,
 * copy the writable mappings that cannot be protected, read the threads'
 * registers, and let the target go. Then one thread serves write faults (copy
 * the page, release it) while the main thread copies everything in order,
 * releasing each chunk as soon as it is copied. Write-protecting a large
 * mapping takes tens of milliseconds, so doing it before the pause keeps the
 * pause short. */
#include "snapshot/uffd_snapshot.h"
#include "snapshot/elfcore.h"
#include "snapshot/procmaps.h"
#include "snapshot/ptrace_inject.h"
#include "snapshot/snapshot_helper.h"
#include "snapshot/uffd.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ull
#define CHUNK (2ull << 20)   /* copy and release unit: one huge page */
/* What a write fault copies and releases: small enough that the writer waits
 * little, large enough that a sequential writer faults rarely. */
#define FAULT_UNIT (256ull << 10)
#define POOL_MAX 32          /* chunk buffers kept for reuse */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

enum copy_how { COPY_LATER, COPY_PROTECTED, COPY_STOPPED };

/* Pages of one CHUNK-aligned chunk copied before the process wrote them. */
struct saved_chunk {
	unsigned char *data;    /* CHUNK bytes, indexed from the chunk's start */
	uint64_t have[CHUNK / PAGE / 64];
};

static size_t chunk_index(const struct kb_mapping *m, uint64_t a)
{
	return (size_t)((a - (m->start & ~(CHUNK - 1))) / CHUNK);
}

static size_t chunk_count(const struct kb_mapping *m)
{
	return (size_t)((((m->end + CHUNK - 1) & ~(CHUNK - 1)) - (m->start & ~(CHUNK - 1))) / CHUNK);
}

static bool have_page(const struct saved_chunk *c, uint64_t a)
{
	unsigned bit = (unsigned)((a & (CHUNK - 1)) / PAGE);
	return c->data && (c->have[bit / 64] >> (bit % 64) & 1);
}

struct seg {
	struct kb_mapping *m;
	uint64_t dump_len;      /* bytes written: whole mapping, one page, or 0 */
	enum copy_how how;
	unsigned char *stopped_data;
	uint64_t granule;       /* write-protection unit */
	uint64_t done_upto;     /* protected: everything below was copied */
	struct saved_chunk *saved; /* protected: per CHUNK, copies taken ahead of writes */
};

struct range {
	uint64_t start, end, to;
};

/* A mapping registered and write-protected while the target ran. */
struct pre_range {
	uint64_t start, end, inode;
	uint64_t granule;       /* what a write fault releases meanwhile */
	bool used;              /* its protection carried over to the pause */
};

struct engine {
	pid_t pid;
	int uffd;
	pthread_mutex_t lock;
	/* Before the pause (under lock): faults only release and are noted. */
	bool pre;
	struct pre_range *prot;
	size_t nprot;
	struct range *dirty;    /* released while running: protect again at the pause */
	size_t ndirty;
	struct range *changed;  /* moved, unmapped or discarded while running */
	size_t nchanged;
	struct range *pre_pending; /* releases refused (EAGAIN) while running */
	size_t npre_pending;
	struct seg *segs;
	size_t nsegs;
	struct range *remaps;   /* moves by mremap, in order: [start,end) -> to */
	size_t nremaps;
	struct range *lost;     /* discarded or unmapped before copied (original addresses) */
	size_t nlost;
	volatile int stop;
	struct range *pending;  /* releases the fault thread must retry */
	size_t npending;
	bool gone;              /* the target exited */
	int mem_fd;             /* /proc/PID/mem opened at the pause: bound to that address space */
	uint64_t probe;         /* an address readable at the pause */
	unsigned char *pool[POOL_MAX]; /* freed chunk buffers (no page faults on reuse) */
	size_t npool;
	uint64_t pages_ahead, pages_lost;
};

/* ---- classification --------------------------------------------------- */

static bool is_anon_shared(const struct kb_mapping *m)
{
	/* Shared anonymous memory shows as a deleted file ("/dev/zero (deleted)",
	 * "/memfd:x (deleted)", "/SYSV... (deleted)"). */
	size_t l = strlen(m->path);
	return m->path[0] == '\0' || (l > 10 && !strcmp(m->path + l - 10, " (deleted)")) ||
	       !strncmp(m->path, "/SYSV", 5) || !strncmp(m->path, "/dev/zero", 9);
}

/* Bytes of mapping m the kernel would dump under filter (vma_dump_size). */
static uint64_t dump_size(const struct kb_mapping *m, unsigned filter)
{
	uint64_t whole = m->end - m->start;
	if (!m->r || kb_mapping_is_unreadable_special(m))
		return 0;
	if (filter == KB_DUMP_EVERYTHING || !strcmp(m->path, "[vdso]"))
		return whole;
	if (m->dontdump || m->io)
		return 0;
	if (m->hugetlb)
		return filter & (m->shared ? KB_DUMP_HUGETLB_SHARED : KB_DUMP_HUGETLB_PRIVATE) ? whole : 0;
	if (m->shared)
		return filter & (is_anon_shared(m) ? KB_DUMP_ANON_SHARED : KB_DUMP_FILE_SHARED) ? whole : 0;
	bool file = kb_mapping_is_file(m);
	/* Private memory that was written to (anonymous pages). */
	bool written = !file || (m->have_smaps ? m->anonymous > 0 : m->w);
	if (written && (filter & KB_DUMP_ANON_PRIVATE))
		return whole;
	if (!file)
		return 0;
	if (filter & KB_DUMP_FILE_PRIVATE)
		return whole;
	if ((filter & KB_DUMP_ELF_HEADERS) && m->offset == 0 && m->elf_header)
		return PAGE;
	return 0;
}

/* Pre-stop details (smaps, ELF headers) carried over to the maps read while
 * stopped, for mappings that did not change in between. */
static void carry_over(struct kb_maps *now, const struct kb_maps *before)
{
	for (size_t i = 0; i < now->n; i++) {
		struct kb_mapping *m = &now->v[i];
		struct kb_mapping *b = kb_procmaps_find((struct kb_maps *)before, m->start);
		if (!b || b->start != m->start || b->end != m->end || b->inode != m->inode)
			continue;
		m->have_smaps = b->have_smaps;
		m->anonymous = b->anonymous;
		m->anon_huge = b->anon_huge;
		m->kernel_page_size = b->kernel_page_size;
		m->dontdump = b->dontdump;
		m->io = b->io;
		m->hugetlb = b->hugetlb;
		m->elf_header = b->elf_header;
	}
}

static void find_elf_headers(pid_t pid, struct kb_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++) {
		struct kb_mapping *m = &maps->v[i];
		if (!kb_mapping_is_file(m) || m->offset != 0 || !m->r)
			continue;
		unsigned char magic[SELFMAG];
		struct iovec l = { magic, SELFMAG }, r = { (void *)(uintptr_t)m->start, SELFMAG };
		m->elf_header = process_vm_readv(pid, &l, 1, &r, 1, 0) == SELFMAG &&
				!memcmp(magic, ELFMAG, SELFMAG);
	}
}

/* ---- reading the target's memory -------------------------------------- */

/* Current address of original address a, following mremap moves. */
static uint64_t to_current(const struct engine *e, uint64_t a)
{
	for (size_t i = 0; i < e->nremaps; i++)
		if (a >= e->remaps[i].start && a < e->remaps[i].end)
			a = a - e->remaps[i].start + e->remaps[i].to;
	return a;
}

static uint64_t to_original(const struct engine *e, uint64_t a)
{
	for (size_t i = e->nremaps; i-- > 0;) {
		uint64_t len = e->remaps[i].end - e->remaps[i].start;
		if (a >= e->remaps[i].to && a < e->remaps[i].to + len)
			a = a - e->remaps[i].to + e->remaps[i].start;
	}
	return a;
}

static bool overlaps(const struct range *v, size_t n, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].start < end && start < v[i].end)
			return true;
	return false;
}

static bool is_lost(const struct engine *e, uint64_t a)
{
	return overlaps(e->lost, e->nlost, a, a + 1);
}

/* Reads len bytes at current address addr; pages that cannot be read (gone)
 * become zeros and are counted in *bad. Returns -1 (ESRCH) if the process
 * itself is gone. */
static int read_mem(pid_t pid, uint64_t addr, unsigned char *buf, uint64_t len, uint64_t *bad)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = process_vm_readv(pid, &l, 1, &r, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && errno == ESRCH)
		return -1;
	uint64_t off = n > 0 ? (uint64_t)n / PAGE * PAGE : 0;
	for (; off < len; off += PAGE) {
		struct iovec l1 = { buf + off, PAGE }, r1 = { (void *)(uintptr_t)(addr + off), PAGE };
		if (process_vm_readv(pid, &l1, 1, &r1, 1, 0) == (ssize_t)PAGE)
			continue;
		if (errno == ESRCH)
			return -1;
		memset(buf + off, 0, PAGE);
		(*bad)++;
	}
	return 0;
}

/* Reads original range [addr, addr+len) (page-aligned), following moves. */
static int read_original(struct engine *e, uint64_t addr, unsigned char *buf, uint64_t len,
			 uint64_t *bad)
{
	pthread_mutex_lock(&e->lock);
	bool moved = overlaps(e->remaps, e->nremaps, addr, addr + len);
	uint64_t cur = to_current(e, addr);
	pthread_mutex_unlock(&e->lock);
	if (!moved)
		return read_mem(e->pid, cur, buf, len, bad);
	for (uint64_t off = 0; off < len; off += PAGE) {
		pthread_mutex_lock(&e->lock);
		cur = to_current(e, addr + off);
		pthread_mutex_unlock(&e->lock);
		if (read_mem(e->pid, cur, buf + off, PAGE, bad) < 0)
			return -1;
	}
	return 0;
}

static struct seg *find_seg(struct engine *e, uint64_t a)
{
	size_t lo = 0, hi = e->nsegs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct seg *s = &e->segs[mid];
		if (a < s->m->start)
			hi = mid;
		else if (a >= s->m->end)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

/* ---- the fault-serving thread ----------------------------------------- */

static void add_range(struct range **v, size_t *n, struct range r)
{
	struct range *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return;
	nv[(*n)++] = r;
	*v = nv;
}

/* Copies the pages of [start, end) (original addresses, within one chunk,
 * current address cur) that were neither copied in order nor ahead yet.
 * Called with e->lock held. */
/* Chunk buffers, under e->lock. */
static unsigned char *chunk_get(struct engine *e)
{
	return e->npool ? e->pool[--e->npool] : aligned_alloc(PAGE, CHUNK);
}

static void chunk_put(struct engine *e, unsigned char *p)
{
	if (p && e->npool < POOL_MAX)
		e->pool[e->npool++] = p;
	else
		free(p);
}

static void mark_saved(struct saved_chunk *c, uint64_t a)
{
	unsigned bit = (unsigned)((a & (CHUNK - 1)) / PAGE);
	c->have[bit / 64] |= 1ull << (bit % 64);
}

static void save_ahead(struct engine *e, struct seg *s, uint64_t start, uint64_t end, uint64_t cur,
		       unsigned char *tmp)
{
	if (!s->saved)
		s->saved = calloc(chunk_count(s->m), sizeof(*s->saved));
	if (!s->saved)
		return;
	struct saved_chunk *c = &s->saved[chunk_index(s->m, start)];
	if (!c->data && !(c->data = chunk_get(e)))
		return;
	uint64_t bad = 0;
	/* The usual case, nothing of the range taken yet: read it in place. */
	bool fresh = start >= s->done_upto && !e->nlost;
	for (uint64_t a = start; fresh && a < end; a += PAGE)
		fresh = !have_page(c, a);
	if (fresh) {
		if (read_mem(e->pid, cur, c->data + (start & (CHUNK - 1)), end - start, &bad) < 0)
			return;
		for (uint64_t a = start; a < end; a += PAGE)
			mark_saved(c, a);
		e->pages_ahead += (end - start) / PAGE;
		return;
	}
	if (read_mem(e->pid, cur, tmp, end - start, &bad) < 0)
		return;
	for (uint64_t a = start; a < end; a += PAGE) {
		if (a < s->done_upto || have_page(c, a) || is_lost(e, a))
			continue;
		memcpy(c->data + (a & (CHUNK - 1)), tmp + (a - start), PAGE);
		mark_saved(c, a);
		e->pages_ahead++;
	}
}

/* A write fault: copy what follows it up to FAULT_UNIT (the process is
 * likely to go on writing there; a whole huge page where it has them) and
 * release it, which wakes the writer. */
static void serve_wp_fault(struct engine *e, uint64_t addr, unsigned char *tmp)
{
	uint64_t cur = addr & ~(PAGE - 1), len = PAGE;
	pthread_mutex_lock(&e->lock);
	uint64_t orig = to_original(e, cur);
	struct seg *s = find_seg(e, orig);
	if (s && s->how == COPY_PROTECTED) {
		uint64_t g = s->granule;
		uint64_t start = orig & ~(g - 1), end = start + g;
		/* Widen when nothing was moved (moves are rare). */
		if (!e->nremaps) {
			uint64_t unit = s->m->anon_huge || g > FAULT_UNIT ? CHUNK : FAULT_UNIT;
			start = orig & ~(unit - 1);
			end = start + unit;
			if (start < s->m->start)
				start = s->m->start;
			if (end > s->m->end)
				end = s->m->end;
			if (start < s->done_upto)
				start = s->done_upto > orig ? orig & ~(g - 1) : s->done_upto;
		}
		cur -= orig - start;
		len = end - start;
		if (end > s->done_upto)
			save_ahead(e, s, start, end, cur, tmp);
	}
	pthread_mutex_unlock(&e->lock);
	/* Releasing wakes the writer. EAGAIN: an event must be read first (by
	 * this very thread), so retry after reading; other errors mean the range
	 * is gone. */
	if (kb_uffd_writeprotect(e->uffd, cur, len, false) < 0 && errno == EAGAIN)
		add_range(&e->pending, &e->npending, (struct range){ cur, cur + len, 0 });
}

/* Releases a range from the copying thread; the fault thread reads the
 * events that make the kernel answer EAGAIN meanwhile. */
static void release(struct engine *e, uint64_t start, uint64_t len)
{
	while (kb_uffd_writeprotect(e->uffd, start, len, false) < 0 && errno == EAGAIN && !e->stop) {
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

/* Before the pause, under e->lock: a write fault releases its page (or its
 * huge page) at once and notes it; moves and unmaps are noted so that the
 * mappings they touch are protected again whole at the pause. */
static void pre_event(struct engine *e, const struct kb_uffd_event *ev)
{
	switch (ev->kind) {
	case KB_UFFD_WP_FAULT: {
		uint64_t g = PAGE, lo = 0, hi = UINT64_MAX;
		for (size_t i = 0; i < e->nprot; i++)
			if (ev->addr >= e->prot[i].start && ev->addr < e->prot[i].end) {
				g = e->prot[i].granule;
				lo = e->prot[i].start;
				hi = e->prot[i].end;
				break;
			}
		uint64_t start = ev->addr & ~(g - 1), end = start + g;
		if (start < lo)
			start = lo;
		if (end > hi)
			end = hi;
		/* Noted before it is released: the pause protects it again. */
		struct range *last = e->ndirty ? &e->dirty[e->ndirty - 1] : NULL;
		if (last && last->end == start)
			last->end = end;
		else
			add_range(&e->dirty, &e->ndirty, (struct range){ start, end, 0 });
		if (kb_uffd_writeprotect(e->uffd, start, end - start, false) < 0 && errno == EAGAIN)
			add_range(&e->pre_pending, &e->npre_pending, (struct range){ start, end, 0 });
		break;
	}
	case KB_UFFD_REMAP:
		add_range(&e->changed, &e->nchanged, (struct range){ ev->addr, ev->end, 0 });
		add_range(&e->changed, &e->nchanged,
			  (struct range){ ev->to, ev->to + (ev->end - ev->addr), 0 });
		break;
	case KB_UFFD_REMOVE:
	case KB_UFFD_UNMAP:
		add_range(&e->changed, &e->nchanged, (struct range){ ev->addr, ev->end, 0 });
		break;
	default:
		break;
	}
}

/* Retries releases refused (EAGAIN) while an event was pending; keeps those
 * refused again. */
static void retry_releases(int uffd, struct range *v, size_t *n)
{
	for (size_t i = 0; i < *n;) {
		if (kb_uffd_writeprotect(uffd, v[i].start, v[i].end - v[i].start, false) < 0 &&
		    errno == EAGAIN) {
			i++;
			continue;
		}
		v[i] = v[--*n];
	}
}

static void *fault_thread(void *arg)
{
	struct engine *e = arg;
	struct kb_uffd_event ev[64];
	/* The target waits for this thread at each fault: ahead of the copy and
	 * the compressors when allowed (privileged); as it is otherwise. */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -10);
	unsigned char *tmp = malloc(CHUNK);
	if (!tmp)
		return NULL;
	while (!e->stop) {
		struct pollfd p = { e->uffd, POLLIN, 0 };
		int r = poll(&p, 1, e->npending || e->npre_pending ? 1 : 20);
		/* Events are read and handled under the lock before the pause, so
		 * that the pause sees every one read before it. */
		pthread_mutex_lock(&e->lock);
		if (e->pre) {
			int n = r > 0 ? kb_uffd_read_events(e->uffd, ev, 64) : 0;
			retry_releases(e->uffd, e->pre_pending, &e->npre_pending);
			for (int i = 0; i < n; i++)
				pre_event(e, &ev[i]);
			pthread_mutex_unlock(&e->lock);
			if (n < 0)
				break;
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		int n = r > 0 ? kb_uffd_read_events(e->uffd, ev, 64) : 0;
		if (n < 0)
			break;
		retry_releases(e->uffd, e->pending, &e->npending);
		for (int i = 0; i < n; i++) {
			switch (ev[i].kind) {
			case KB_UFFD_WP_FAULT:
				serve_wp_fault(e, ev[i].addr, tmp);
				break;
			case KB_UFFD_REMAP:
				pthread_mutex_lock(&e->lock);
				add_range(&e->remaps, &e->nremaps,
					  (struct range){ ev[i].addr, ev[i].end, ev[i].to });
				pthread_mutex_unlock(&e->lock);
				break;
			case KB_UFFD_REMOVE:
			case KB_UFFD_UNMAP:
				pthread_mutex_lock(&e->lock);
				for (uint64_t a = ev[i].addr; a < ev[i].end;) {
					/* Record in original addresses, one piece per move. */
					uint64_t o = to_original(e, a), end = ev[i].end;
					for (size_t k = 0; k < e->nremaps; k++) {
						uint64_t to = e->remaps[k].to,
							 te = to + e->remaps[k].end - e->remaps[k].start;
						if (a < to && end > to)
							end = to;
						if (a >= to && a < te && end > te)
							end = te;
					}
					add_range(&e->lost, &e->nlost, (struct range){ o, o + (end - a), 0 });
					a = end;
				}
				pthread_mutex_unlock(&e->lock);
				break;
			default:
				break;
			}
		}
	}
	free(tmp);
	return NULL;
}

/* ---- writing ---------------------------------------------------------- */

struct writer {
	const struct kb_snap_opts *o;
	uint64_t done, total, last_progress;
};

static int out(struct writer *w, const void *buf, size_t len)
{
	if (w->o->write(w->o->write_arg, buf, len) < 0)
		return -1;
	w->done += len;
	if (w->o->progress && (w->done - w->last_progress >= (64u << 20) || w->done == w->total)) {
		w->last_progress = w->done;
		w->o->progress(w->o->progress_arg, w->done, w->total);
	}
	return 0;
}

/* Copies one protected mapping chunk by chunk, using the copies taken ahead
 * of writes, and releasing each chunk once copied. */
static int copy_protected(struct engine *e, struct seg *s, struct writer *w, unsigned char *buf,
			  struct kb_snap_stats *stats)
{
	uint64_t a = s->m->start;
	while (a < s->m->end) {
		uint64_t next = (a + CHUNK) & ~(CHUNK - 1);
		if (next > s->m->end)
			next = s->m->end;
		uint64_t len = next - a, bad = 0;
		pthread_mutex_lock(&e->lock);
		struct saved_chunk *c = s->saved ? &s->saved[chunk_index(s->m, a)] : NULL;
		bool all_saved = c && c->data;
		for (uint64_t p = a; all_saved && p < next; p += PAGE)
			all_saved = have_page(c, p);
		if (all_saved) {
			/* Copied ahead whole, and released by the fault thread: write
			 * the copy as it is. */
			unsigned char *data = c->data;
			memset(c, 0, sizeof(*c));
			s->done_upto = next;
			pthread_mutex_unlock(&e->lock);
			int r = out(w, data + (a & (CHUNK - 1)), len);
			pthread_mutex_lock(&e->lock);
			chunk_put(e, data);
			pthread_mutex_unlock(&e->lock);
			if (r < 0)
				return -2;
			a = next;
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		/* Read what was not copied ahead (all of it, most of the time). */
		if (read_original(e, a, buf, len, &bad) < 0)
			return -1;
		pthread_mutex_lock(&e->lock);
		c = s->saved ? &s->saved[chunk_index(s->m, a)] : NULL;
		for (uint64_t p = a; p < next; p += PAGE) {
			if (c && have_page(c, p)) {
				memcpy(buf + (p - a), c->data + (p & (CHUNK - 1)), PAGE);
			} else if (is_lost(e, p)) {
				memset(buf + (p - a), 0, PAGE);
				e->pages_lost++;
			} else {
				stats->pages_background++;
			}
		}
		if (c) {
			chunk_put(e, c->data);
			memset(c, 0, sizeof(*c));
		}
		s->done_upto = next;
		bool moved = overlaps(e->remaps, e->nremaps, a, next);
		uint64_t cur = to_current(e, a);
		pthread_mutex_unlock(&e->lock);
		e->pages_lost += bad;
		if (!moved) {
			release(e, cur, len);
		} else {
			for (uint64_t p = a; p < next; p += PAGE) {
				pthread_mutex_lock(&e->lock);
				cur = to_current(e, p);
				pthread_mutex_unlock(&e->lock);
				release(e, cur, PAGE);
			}
		}
		if (out(w, buf, len) < 0)
			return -2;
		a = next;
	}
	return 0;
}

static int copy_plain(struct engine *e, struct seg *s, struct writer *w, unsigned char *buf,
		      struct kb_snap_stats *stats, bool stopped)
{
	for (uint64_t a = s->m->start; a < s->m->start + s->dump_len;) {
		uint64_t len = s->m->start + s->dump_len - a;
		if (len > CHUNK)
			len = CHUNK;
		uint64_t bad = 0;
		if (read_original(e, a, buf, len, &bad) < 0)
			return -1;
		e->pages_lost += bad;
		if (stopped)
			stats->pages_stopped += len / PAGE;
		else
			stats->pages_background += len / PAGE;
		if (out(w, buf, len) < 0)
			return -2;
		a += len;
	}
	return 0;
}

/* Whether the address space of the pause is still the process's: after an
 * execve() the descriptor opened at the pause reads nothing. */
static bool same_program(const struct engine *e)
{
	unsigned char b;
	return e->mem_fd < 0 || pread(e->mem_fd, &b, 1, (off_t)e->probe) == 1;
}

/* Writes the whole core: headers and notes, then every dumped mapping. */
static int write_core(struct engine *e, struct writer *w, const struct kb_buf *hdr,
		      struct kb_snap_stats *stats, bool all_stopped, char *err, size_t errlen)
{
	unsigned char *buf = aligned_alloc(PAGE, CHUNK);
	if (!buf) {
		set_err(err, errlen, "out of memory");
		return KB_SNAP_ERR_OTHER;
	}
	int rc = 0;
	if (out(w, hdr->p, hdr->len) < 0)
		rc = -2;
	for (size_t i = 0; i < e->nsegs && rc == 0; i++) {
		struct seg *s = &e->segs[i];
		if (!s->dump_len)
			continue;
		if (s->how == COPY_STOPPED) {
			if (out(w, s->stopped_data, s->dump_len) < 0)
				rc = -2;
			free(s->stopped_data);
			s->stopped_data = NULL;
		} else if (s->how == COPY_PROTECTED) {
			rc = copy_protected(e, s, w, buf, stats);
		} else {
			rc = copy_plain(e, s, w, buf, stats, all_stopped);
		}
		if (rc == 0 && !same_program(e))
			rc = -3;
	}
	free(buf);
	if ((rc == -3 || rc == -1) && !same_program(e)) {
		/* Gone, or a new address space: an exited process has none. */
		unsigned char b;
		struct iovec l = { &b, 1 }, r = { (void *)(uintptr_t)e->probe, 1 };
		if (process_vm_readv(e->pid, &l, 1, &r, 1, 0) < 0 && errno == ESRCH) {
			rc = -1;
		} else {
			set_err(err, errlen, "process %d started another program (execve) during the "
				"copy; the core is incomplete", (int)e->pid);
			return KB_SNAP_ERR_GONE;
		}
	}
	if (rc == -1) {
		e->gone = true;
		set_err(err, errlen, "process %d exited during the copy; the core is incomplete", (int)e->pid);
		return KB_SNAP_ERR_GONE;
	}
	if (rc == -2) {
		set_err(err, errlen, "writing the core: %s", strerror(errno));
		return KB_SNAP_ERR_OUTPUT;
	}
	return KB_SNAP_OK;
}

/* ---- the snapshot ------------------------------------------------------ */

/* "cannot VERB process PID: why", with the ptrace rule when access was refused. */
static enum kb_snap_error access_error(pid_t pid, const char *verb, int errnum, char *err, size_t errlen)
{
	bool refused = errnum == EPERM || errnum == EACCES;
	set_err(err, errlen, "cannot %s process %d: %s%s", verb, (int)pid, strerror(errnum),
		refused ? " (same rules as gdb: the same user and kernel.yama.ptrace_scope, "
			  "or CAP_SYS_PTRACE)" : "");
	return refused ? KB_SNAP_ERR_ACCESS : KB_SNAP_ERR_OTHER;
}

static enum kb_snap_error helper_error(pid_t pid, int errnum, enum kb_helper_stage stage, char *err,
				       size_t errlen)
{
	if (stage == KB_HELPER_STOP) {
		if (errnum == ESRCH) {
			set_err(err, errlen, "no such process: %d", (int)pid);
			return KB_SNAP_ERR_GONE;
		}
		char *status;
		long tracer = 0;
		if (errnum == EPERM && kb_proc_read_file(pid, "status", &status, NULL) == 0) {
			char *t = strstr(status, "TracerPid:");
			tracer = t ? strtol(t + 10, NULL, 10) : 0;
			free(status);
		}
		if (tracer > 0) {
			set_err(err, errlen, "process %d is already traced by process %ld (a debugger?)",
				(int)pid, tracer);
			return KB_SNAP_ERR_ACCESS;
		}
		return access_error(pid, "stop", errnum, err, errlen);
	}
	if (errnum == EPERM) {
		set_err(err, errlen,
			"process %d may not create a userfaultfd (vm.unprivileged_userfaultfd=0 and it "
			"lacks CAP_SYS_PTRACE); allow it with 'sysctl vm.unprivileged_userfaultfd=1', "
			"or use --stopped to copy while it is stopped",
			(int)pid);
		return KB_SNAP_ERR_UFFD_DENIED;
	}
	if (errnum == ESRCH) {
		set_err(err, errlen, "process %d exited while it was stopped", (int)pid);
		return KB_SNAP_ERR_GONE;
	}
	if (errnum == ENOSYS) {
		set_err(err, errlen, "this kernel has no userfaultfd; use --stopped");
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	set_err(err, errlen, "cannot create a userfaultfd in process %d: %s", (int)pid,
		strerror(errnum));
	return KB_SNAP_ERR_OTHER;
}

#define PROTECT_PIECE (64ull << 20) /* per ioctl while running: mmap_lock held briefly */

static uint64_t granule_of(const struct kb_mapping *m)
{
	return m->kernel_page_size > PAGE ? m->kernel_page_size : PAGE;
}

/* While the target runs: register and write-protect each mapping that will
 * most likely be protected at the pause (maps read after the first stop). */
static void protect_running(struct engine *e, const struct kb_maps *maps, unsigned filter)
{
	for (size_t i = 0; i < maps->n && !e->stop; i++) {
		const struct kb_mapping *m = &maps->v[i];
		uint64_t len = m->end - m->start, g = granule_of(m);
		if (!m->w || !strcmp(m->path, "[vsyscall]") || g > CHUNK || dump_size(m, filter) != len)
			continue;
		if (kb_uffd_register_wp(e->uffd, m->start, len) < 0)
			continue;
		/* Releasing single pages would split transparent huge pages. */
		struct pre_range pr = { m->start, m->end, m->inode, m->anon_huge ? CHUNK : g, false };
		pthread_mutex_lock(&e->lock);
		struct pre_range *np = realloc(e->prot, (e->nprot + 1) * sizeof(*np));
		if (np) {
			e->prot = np;
			e->prot[e->nprot++] = pr;
		}
		pthread_mutex_unlock(&e->lock);
		if (!np) {
			kb_uffd_unregister(e->uffd, m->start, len);
			continue;
		}
		for (uint64_t a = m->start; a < m->end;) {
			uint64_t n = m->end - a < PROTECT_PIECE ? m->end - a : PROTECT_PIECE;
			if (kb_uffd_writeprotect(e->uffd, a, n, true) == 0) {
				a += n;
				continue;
			}
			if (errno != EAGAIN || e->stop) {
				/* Left out: the pause protects it whole if it is dumped. */
				pthread_mutex_lock(&e->lock);
				e->nprot--;
				pthread_mutex_unlock(&e->lock);
				kb_uffd_unregister(e->uffd, m->start, len);
				break;
			}
			struct timespec ts = { 0, 20000 };
			nanosleep(&ts, NULL);
		}
	}
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* At the pause, under e->lock: a mapping protected while running, untouched
 * since, needs only the pages released meanwhile protected again. Returns 1
 * if s is protected now, 0 if not applicable, -1 on EAGAIN (retry). */
static int carry_protection(struct engine *e, struct seg *s, uint64_t *pages)
{
	struct pre_range *pr = NULL;
	for (size_t i = 0; i < e->nprot && !pr; i++)
		if (e->prot[i].start <= s->m->start && s->m->end <= e->prot[i].end &&
		    e->prot[i].inode == s->m->inode)
			pr = &e->prot[i];
	if (!pr || overlaps(e->changed, e->nchanged, s->m->start, s->m->end))
		return 0;
	for (size_t i = 0; i < e->ndirty; i++) {
		uint64_t a = e->dirty[i].start > s->m->start ? e->dirty[i].start : s->m->start;
		uint64_t b = e->dirty[i].end < s->m->end ? e->dirty[i].end : s->m->end;
		if (a >= b)
			continue;
		if (kb_uffd_writeprotect(e->uffd, a, b - a, true) < 0)
			return errno == EAGAIN ? -1 : 0;
		*pages += (b - a) / PAGE;
	}
	pr->used = true;
	return 1;
}

/* Protects or copies each dumped writable mapping while the target is
 * stopped. Returns 0 or -1 (process gone; err set). */
static int protect_all(struct engine *e, bool use_uffd, struct kb_snap_stats *stats)
{
	/* First what was protected while running, then leave the running mode,
	 * all under the lock: no fault may be released unnoted in between. */
	for (bool again = use_uffd; again;) {
		again = false;
		uint64_t pages = 0;
		pthread_mutex_lock(&e->lock);
		if (e->ndirty)
			qsort(e->dirty, e->ndirty, sizeof(*e->dirty), cmp_range);
		for (size_t i = 0; i < e->nsegs && !again; i++) {
			struct seg *s = &e->segs[i];
			s->how = COPY_LATER;
			if (!s->dump_len || !s->m->w || s->dump_len != s->m->end - s->m->start)
				continue;
			int r = carry_protection(e, s, &pages);
			if (r < 0)
				again = true;
			else if (r > 0) {
				s->how = COPY_PROTECTED;
				s->done_upto = s->m->start;
			}
		}
		if (!again) {
			e->pre = false;
			e->npre_pending = 0;
			stats->pages_reprotected = pages;
		}
		pthread_mutex_unlock(&e->lock);
		if (again) {
			/* An event is pending: let the fault thread read it. */
			struct timespec ts = { 0, 50000 };
			nanosleep(&ts, NULL);
		}
	}
	for (size_t i = 0; i < e->nsegs; i++) {
		struct seg *s = &e->segs[i];
		s->granule = granule_of(s->m);
		if (!s->dump_len || !s->m->w)
			continue;
		if (s->how == COPY_PROTECTED) {
			stats->mappings_protected++;
			continue;
		}
		uint64_t len = s->m->end - s->m->start;
		if (use_uffd && s->dump_len == len && s->granule <= CHUNK && kb_uffd_register_wp(e->uffd, s->m->start, len) == 0) {
			if (kb_uffd_writeprotect(e->uffd, s->m->start, len, true) == 0) {
				s->how = COPY_PROTECTED;
				s->done_upto = s->m->start;
				stats->mappings_protected++;
				continue;
			}
			kb_uffd_unregister(e->uffd, s->m->start, len);
		}
		if (!use_uffd)
			continue;   /* everything is copied before resuming anyway */
		/* Writable but not protectable (file-backed private data): copy now. */
		s->stopped_data = malloc(s->dump_len);
		if (!s->stopped_data) {
			errno = ENOMEM;
			return -1;
		}
		uint64_t bad = 0;
		if (read_mem(e->pid, s->m->start, s->stopped_data, s->dump_len, &bad) < 0)
			return -1;
		e->pages_lost += bad;
		s->how = COPY_STOPPED;
		stats->pages_stopped += s->dump_len / PAGE;
	}
	return 0;
}

static void free_engine(struct engine *e)
{
	for (size_t i = 0; i < e->nsegs; i++) {
		struct seg *s = &e->segs[i];
		free(s->stopped_data);
		if (s->saved) {
			size_t n = chunk_count(s->m);
			for (size_t k = 0; k < n; k++)
				free(s->saved[k].data);
			free(s->saved);
		}
	}
	while (e->npool)
		free(e->pool[--e->npool]);
	free(e->segs);
	free(e->remaps);
	free(e->lost);
	free(e->pending);
	free(e->prot);
	free(e->dirty);
	free(e->changed);
	free(e->pre_pending);
	pthread_mutex_destroy(&e->lock);
}

/* Whether pid can be snapshot at all: it exists, the caller may inspect it,
 * and it is an x86-64 user-space program. */
static enum kb_snap_error check_target(pid_t pid, char *err, size_t errlen)
{
	enum kb_process_kind kind;
	if (kb_process_kind(pid, &kind) < 0) {
		if (errno == ESRCH) {
			set_err(err, errlen, "no such process: %d", (int)pid);
			return KB_SNAP_ERR_GONE;
		}
		return access_error(pid, "inspect", errno, err, errlen);
	}
	if (pid == getpid()) {
		/* Its own helper would stop the process that must answer it. */
		set_err(err, errlen, "process %d is uffd-snapshot itself", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	if (kind == KB_PROCESS_ZOMBIE) {
		set_err(err, errlen, "process %d has exited (a zombie its parent has not reaped)", (int)pid);
		return KB_SNAP_ERR_GONE;
	}
	if (kind == KB_PROCESS_KERNEL_THREAD) {
		set_err(err, errlen, "process %d is a kernel thread: it has no user memory to snapshot", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	if (kind != KB_PROCESS_X86_64) {
		set_err(err, errlen, "process %d is not an x86-64 program", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	return KB_SNAP_OK;
}

enum kb_snap_error kb_snapshot(const struct kb_snap_opts *o, struct kb_snap_stats *stats,
			       char *err, size_t errlen)
{
	memset(stats, 0, sizeof(*stats));
	uint64_t t0 = mono_ns();
	pid_t pid = o->pid;
	enum kb_snap_error target = check_target(pid, err, errlen);
	if (target != KB_SNAP_OK)
		return target;
	bool use_uffd = !o->stopped_copy;
	uint64_t features = 0, wanted = 0;
	if (use_uffd) {
		if (kb_uffd_probe_features(&features) < 0) {
			set_err(err, errlen, "userfaultfd is not available: %s; use --stopped", strerror(errno));
			return KB_SNAP_ERR_UNSUPPORTED;
		}
		if (!(features & KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
			set_err(err, errlen, "this kernel has no userfaultfd write-protection (5.7+); use --stopped");
			return KB_SNAP_ERR_UNSUPPORTED;
		}
		wanted = features & (KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP | KB_UFFD_FEATURE_WP_UNPOPULATED |
				     KB_UFFD_FEATURE_WP_HUGETLBFS_SHMEM | KB_UFFD_FEATURE_EVENT_REMAP |
				     KB_UFFD_FEATURE_EVENT_REMOVE | KB_UFFD_FEATURE_EVENT_UNMAP);
	}
	/* Details that need no stop: smaps and ELF headers. */
	struct kb_maps before = { 0 }, maps = { 0 };
	if (kb_procmaps_read(pid, &before) < 0) {
		set_err(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(errno));
		return errno == ENOENT || errno == ESRCH ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_ACCESS;
	}
	kb_procmaps_add_smaps(pid, &before);
	find_elf_headers(pid, &before);

	struct engine e = { .pid = pid, .uffd = -1, .mem_fd = -1 };
	pthread_mutex_init(&e.lock, NULL);
	struct kb_helper h;
	struct kb_stopped st;
	enum kb_helper_stage stage;
	enum kb_snap_error rc = KB_SNAP_OK;
	struct kb_buf notes = { 0 }, hdr = { 0 };
	struct kb_core_segment *cs = NULL;
	bool helper_running = false, thread_running = false, helper2_spawned = false;
	pthread_t thr;
	struct writer w = { .o = o };

	unsigned max_pause_ms = o->max_pause_ms ? o->max_pause_ms : 10000;
	/* The helper of the pause is spawned now, before this process has a
	 * second thread or the userfaultfd: it inherits neither. */
	struct kb_helper pause_helper;
	if (kb_helper_spawn(pid, false, max_pause_ms, &pause_helper) < 0) {
		set_err(err, errlen, "cannot start a helper process: %s", strerror(errno));
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	helper2_spawned = true;
	if (use_uffd) {
		/* First stop: only to create the userfaultfd inside the target. */
		if (kb_helper_start(pid, true, max_pause_ms, &h, &st, &e.uffd, &stage) < 0) {
			rc = helper_error(pid, errno, stage, err, errlen);
			goto out;
		}
		kb_stopped_free(&st);
		stats->inject_ns = h.t_injected - h.t_stopped;
		if (kb_helper_resume(&h) < 0 || h.resumed_early) {
			set_err(err, errlen, h.resumed_early ? "the first stop reached the pause limit (--max-pause)"
							     : "the helper process ended unexpectedly");
			rc = KB_SNAP_ERR_OTHER;
			goto out;
		}
		stats->first_pause_ns = h.t_resumed - h.t_interrupt;
		if (kb_uffd_api(e.uffd, wanted, KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL) < 0) {
			set_err(err, errlen, "UFFDIO_API: %s", strerror(errno));
			rc = KB_SNAP_ERR_UNSUPPORTED;
			goto out;
		}
		e.pre = true;
		if (pthread_create(&thr, NULL, fault_thread, &e) != 0) {
			set_err(err, errlen, "cannot start a thread");
			rc = KB_SNAP_ERR_OTHER;
			goto out;
		}
		thread_running = true;
		struct kb_maps running = { 0 };
		uint64_t t_run = mono_ns();
		if (kb_procmaps_read(pid, &running) == 0) {
			carry_over(&running, &before);
			protect_running(&e, &running, o->filter);
			kb_procmaps_free(&running);
		}
		stats->protect_running_ns = mono_ns() - t_run;
	}
	/* The pause: the instant the core shows. */
	int no_uffd;
	h = pause_helper;
	helper2_spawned = false;
	if (kb_helper_begin(&h, pid, &st, &no_uffd, &stage) < 0) {
		rc = helper_error(pid, errno, stage, err, errlen);
		goto out;
	}
	helper_running = true;
	uint64_t t_prot = mono_ns();
	stats->threads = st.n;
	if (kb_procmaps_read(pid, &maps) < 0) {
		set_err(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(errno));
		rc = KB_SNAP_ERR_GONE;
		goto out;
	}
	carry_over(&maps, &before);
	if (use_uffd) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
		e.mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		for (size_t i = 0; i < maps.n && !e.probe; i++)
			if (maps.v[i].r && !kb_mapping_is_unreadable_special(&maps.v[i]))
				e.probe = maps.v[i].start;
	}
	e.segs = calloc(maps.n ? maps.n : 1, sizeof(*e.segs));
	cs = calloc(maps.n ? maps.n : 1, sizeof(*cs));
	if (!e.segs || !cs) {
		set_err(err, errlen, "out of memory");
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	size_t ncs = 0;
	for (size_t i = 0; i < maps.n; i++) {
		struct kb_mapping *m = &maps.v[i];
		if (!strcmp(m->path, "[vsyscall]"))
			continue;   /* above the user address space; gdb knows it */
		struct seg *s = &e.segs[e.nsegs++];
		s->m = m;
		s->dump_len = dump_size(m, o->filter);
		cs[ncs++] = (struct kb_core_segment){ .vaddr = m->start, .memsz = m->end - m->start,
						      .filesz = s->dump_len,
						      .flags = (m->r ? PF_R : 0) | (m->w ? PF_W : 0) |
							       (m->x ? PF_X : 0) };
		stats->mappings_dumped += s->dump_len > 0;
	}
	stats->mappings = e.nsegs;
	if (protect_all(&e, use_uffd, stats) < 0) {
		set_err(err, errlen, "process %d: %s", (int)pid, errno == ESRCH ? "exited" : strerror(errno));
		rc = errno == ESRCH ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_OTHER;
		goto out;
	}
	uint64_t t_copied = mono_ns();
	stats->protect_ns = t_copied - t_prot;
	if (kb_core_build_notes(pid, &st, &maps, &notes) < 0 ||
	    (stats->core_bytes = kb_core_layout(cs, ncs, &notes, &hdr)) == 0) {
		set_err(err, errlen, "building the core headers: %s", strerror(errno));
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	w.total = stats->core_bytes;
	if (!use_uffd) {
		/* No write-protection: everything is copied while stopped. */
		rc = write_core(&e, &w, &hdr, stats, true, err, errlen);
		stats->stopped_copy_ns = mono_ns() - t_copied;
		if (rc != KB_SNAP_OK)
			goto out;
	}
	uint64_t t_res = mono_ns();
	int resume_rc = kb_helper_resume(&h);
	helper_running = false;
	stats->resume_ns = mono_ns() - t_res;
	if (resume_rc < 0 || h.resumed_early) {
		set_err(err, errlen,
			h.resumed_early ? "the target was released at the pause limit (--max-pause); the core "
					  "would not be consistent"
					: "the helper process ended unexpectedly");
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	stats->stop_ns = h.t_stopped - h.t_interrupt;
	stats->pause_ns = h.t_resumed - h.t_interrupt;
	if (use_uffd) {
		/* Mappings protected while running that the core does not take
		 * from under protection (whichever way it was protected at the
		 * pause): let the target write there freely. */
		for (size_t i = 0; i < e.nprot; i++)
			for (size_t k = 0; k < e.nsegs && !e.prot[i].used; k++)
				e.prot[i].used = e.segs[k].how == COPY_PROTECTED &&
						 e.segs[k].m->start < e.prot[i].end &&
						 e.prot[i].start < e.segs[k].m->end;
		for (size_t i = 0; i < e.nprot; i++)
			if (!e.prot[i].used)
				kb_uffd_unregister(e.uffd, e.prot[i].start, e.prot[i].end - e.prot[i].start);
		uint64_t t_copy = mono_ns();
		rc = write_core(&e, &w, &hdr, stats, false, err, errlen);
		stats->copy_ns = mono_ns() - t_copy;
	}
out:
	if (helper_running)
		kb_helper_abandon(&h);
	if (helper2_spawned)
		kb_helper_abandon(&pause_helper);
	if (thread_running) {
		e.stop = 1;
		pthread_join(thr, NULL);
	}
	/* Closing the last descriptor releases every protection left. */
	if (e.uffd >= 0)
		close(e.uffd);
	if (e.mem_fd >= 0)
		close(e.mem_fd);
	stats->pages_ahead = e.pages_ahead;
	stats->pages_lost = e.pages_lost;
	stats->total_ns = mono_ns() - t0;
	kb_stopped_free(&st);
	kb_buf_free(&notes);
	kb_buf_free(&hdr);
	free(cs);
	free_engine(&e);
	kb_procmaps_free(&maps);
	kb_procmaps_free(&before);
	return rc;
}

/* ---- --dirty ------------------------------------------------------------ */

struct tracked {
	uint64_t start, end;
	char *path;
	bool seen;
};

struct dirty_state {
	struct tracked *t;
	size_t n;
};

/* Registers writable private or anonymous mappings not tracked yet and
 * forgets those that are gone. */
static void track_mappings(pid_t pid, int uffd, struct dirty_state *d)
{
	struct kb_maps maps;
	if (kb_procmaps_read(pid, &maps) < 0)
		return;
	for (size_t i = 0; i < d->n; i++)
		d->t[i].seen = false;
	for (size_t i = 0; i < maps.n; i++) {
		struct kb_mapping *m = &maps.v[i];
		if (!m->w || kb_mapping_is_unreadable_special(m))
			continue;
		bool known = false;
		for (size_t k = 0; k < d->n && !known; k++)
			if (d->t[k].start == m->start && d->t[k].end == m->end) {
				d->t[k].seen = known = true;
			}
		if (known)
			continue;
		uint64_t len = m->end - m->start;
		if (kb_uffd_register_wp(uffd, m->start, len) < 0)
			continue;
		if (kb_uffd_writeprotect(uffd, m->start, len, true) < 0) {
			kb_uffd_unregister(uffd, m->start, len);
			continue;
		}
		struct tracked *nt = realloc(d->t, (d->n + 1) * sizeof(*nt));
		if (!nt)
			break;
		d->t = nt;
		d->t[d->n++] = (struct tracked){ m->start, m->end, strdup(m->path), true };
	}
	for (size_t i = 0; i < d->n;) {
		if (d->t[i].seen) {
			i++;
			continue;
		}
		free(d->t[i].path);
		d->t[i] = d->t[--d->n];
	}
	kb_procmaps_free(&maps);
}

static int cmp_tracked(const void *a, const void *b)
{
	const struct tracked *x = a, *y = b;
	return x->start < y->start ? -1 : x->start > y->start;
}

enum kb_snap_error kb_dirty_track(pid_t pid, uint64_t interval_ns, unsigned count,
				  volatile int *stop,
				  void (*report)(void *arg, const struct kb_dirty_report *r),
				  void *arg, char *err, size_t errlen)
{
	uint64_t features = 0;
	if (kb_uffd_probe_features(&features) < 0 || !(features & KB_UFFD_FEATURE_WP_ASYNC)) {
		set_err(err, errlen,
			"--dirty is not available on this kernel: it needs userfaultfd WP_ASYNC and "
			"PAGEMAP_SCAN (Linux 6.7+)");
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	enum kb_snap_error target = check_target(pid, err, errlen);
	if (target != KB_SNAP_OK)
		return target;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	int pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		set_err(err, errlen, "opening %s: %s", path, strerror(errno));
		return errno == ENOENT ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_ACCESS;
	}
	struct kb_helper h;
	struct kb_stopped st;
	enum kb_helper_stage stage;
	int uffd = -1;
	if (kb_helper_start(pid, true, 10000, &h, &st, &uffd, &stage) < 0) {
		enum kb_snap_error e = helper_error(pid, errno, stage, err, errlen);
		close(pm);
		return e;
	}
	kb_stopped_free(&st);
	/* Nothing needs to be consistent here: let the process run at once. */
	kb_helper_resume(&h);
	enum kb_snap_error rc = KB_SNAP_OK;
	struct dirty_state d = { 0 };
	struct kb_dirty_mapping *rep = NULL;
	uint64_t wanted = KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP | KB_UFFD_FEATURE_WP_ASYNC |
			  (features & KB_UFFD_FEATURE_WP_UNPOPULATED);
	if (kb_uffd_api(uffd, wanted, KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP | KB_UFFD_FEATURE_WP_ASYNC, NULL) < 0) {
		set_err(err, errlen, "UFFDIO_API with WP_ASYNC: %s", strerror(errno));
		rc = KB_SNAP_ERR_UNSUPPORTED;
		goto out;
	}
	track_mappings(pid, uffd, &d);
	uint64_t start = mono_ns();
	for (unsigned no = 1; (!count || no <= count) && !*stop; no++) {
		uint64_t deadline = start + interval_ns * no;
		struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !*stop)
			;
		if (*stop)
			break;
		if (kill(pid, 0) < 0 && errno == ESRCH) {
			set_err(err, errlen, "process %d exited", (int)pid);
			rc = KB_SNAP_ERR_GONE;
			break;
		}
		uint64_t now = mono_ns();
		qsort(d.t, d.n, sizeof(*d.t), cmp_tracked);
		free(rep);
		rep = calloc(d.n ? d.n : 1, sizeof(*rep));
		if (!rep) {
			set_err(err, errlen, "out of memory");
			rc = KB_SNAP_ERR_OTHER;
			break;
		}
		struct kb_dirty_report r = { .interval_no = no, .interval_ns = now - (deadline - interval_ns),
					     .m = rep, .n = d.n };
		for (size_t i = 0; i < d.n; i++) {
			int64_t pages = kb_pagemap_scan_written(pm, d.t[i].start, d.t[i].end, NULL, NULL);
			if (pages < 0 && errno == ENOTTY) {
				set_err(err, errlen, "--dirty is not available on this kernel: no PAGEMAP_SCAN (Linux 6.7+)");
				rc = KB_SNAP_ERR_UNSUPPORTED;
				goto out;
			}
			rep[i] = (struct kb_dirty_mapping){ d.t[i].start, d.t[i].end, d.t[i].path ? d.t[i].path : "",
							    pages > 0 ? (uint64_t)pages : 0 };
			r.pages += rep[i].pages;
		}
		report(arg, &r);
		track_mappings(pid, uffd, &d);
	}
out:
	free(rep);
	for (size_t i = 0; i < d.n; i++)
		free(d.t[i].path);
	free(d.t);
	close(uffd);
	close(pm);
	return rc;
}
