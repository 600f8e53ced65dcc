/* The thread that reads the target's userfaultfd events. Before the pause a
 * write fault only releases its page (or huge page) and notes it, so that the
 * pause protects it again; after the pause it first copies the pages about to
 * be written, and what follows them, then releases them. Moves, discards and
 * unmaps (UFFD_EVENT_REMAP, _REMOVE, _UNMAP) are noted so that the copy
 * follows moved memory and knows what was lost. */
#include "snapshot/uffd_snapshot_engine.h"
#include "snapshot/uffd.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static void add_range(struct range **v, size_t *n, struct range r)
{
	struct range *nv = realloc(*v, (*n + 1) * sizeof(*nv));
	if (!nv)
		return;
	nv[(*n)++] = r;
	*v = nv;
}

static void mark_saved(struct saved_chunk *c, uint64_t a)
{
	unsigned bit = (unsigned)((a & (CHUNK - 1)) / PAGE);
	c->have[bit / 64] |= 1ull << (bit % 64);
}

/* Copies the pages of [start, end) (original addresses, within one chunk,
 * current address cur) that were neither copied in order nor ahead yet.
 * Called with e->lock held. */
static void save_ahead(struct engine *e, struct seg *s, uint64_t start, uint64_t end, uint64_t cur,
		       unsigned char *tmp)
{
	if (!s->saved)
		s->saved = calloc(chunk_count(s->m), sizeof(*s->saved));
	if (!s->saved)
		return;
	struct saved_chunk *c = &s->saved[chunk_index(s->m, start)];
	if (!c->data && !(c->data = snap_chunk_get(e)))
		return;
	uint64_t bad = 0;
	/* The usual case, nothing of the range taken yet: read it in place. */
	bool fresh = start >= s->done_upto && !e->nlost;
	for (uint64_t a = start; fresh && a < end; a += PAGE)
		fresh = !have_page(c, a);
	if (fresh) {
		if (snap_read_mem(e->pid, cur, c->data + (start & (CHUNK - 1)), end - start, &bad) < 0)
			return;
		for (uint64_t a = start; a < end; a += PAGE)
			mark_saved(c, a);
		e->pages_ahead += (end - start) / PAGE;
		return;
	}
	if (snap_read_mem(e->pid, cur, tmp, end - start, &bad) < 0)
		return;
	for (uint64_t a = start; a < end; a += PAGE) {
		if (a < s->done_upto || have_page(c, a) || snap_is_lost(e, a))
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
	uint64_t orig = snap_to_original(e, cur);
	struct seg *s = snap_find_seg(e, orig);
	if (s && s->how == COPY_PROTECTED) {
		uint64_t g = s->granule;
		uint64_t start = orig & ~(g - 1), end = start + g;
		/* Widen when nothing was moved (moves are rare). */
		if (!e->nremaps) {
			uint64_t unit = s->m->details.anon_huge || g > FAULT_UNIT ? CHUNK : FAULT_UNIT;
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

void *snap_fault_thread(void *arg)
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
					uint64_t o = snap_to_original(e, a), end = ev[i].end;
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
