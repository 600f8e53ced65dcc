/* Write-protecting a foreign process's memory for a snapshot, through the
 * userfaultfd taken from inside it (UFFDIO_REGISTER and UFFDIO_WRITEPROTECT,
 * wrapped in uffd.c). While the target runs, each writable mapping the core
 * takes whole is registered and protected in pieces; at the pause, the pages
 * it wrote meanwhile are protected again, mappings not yet protected are
 * protected whole, and writable ones that cannot be protected are copied
 * while the target is stopped. */
#include "snapshot/uffd_snapshot_engine.h"
#include "snapshot/uffd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROTECT_PIECE (64ull << 20) /* per ioctl while running: mmap_lock held briefly */

static uint64_t granule_of(const struct kb_mapping *m)
{
	return m->details.kernel_page_size > PAGE ? m->details.kernel_page_size : PAGE;
}

/* While the target runs: register and write-protect each mapping that will
 * most likely be protected at the pause (maps read after the first stop). */
void snap_protect_running(struct engine *e, const struct kb_maps *maps, unsigned filter)
{
	for (size_t i = 0; i < maps->n && !e->stop; i++) {
		const struct kb_mapping *m = &maps->v[i];
		uint64_t len = m->end - m->start, g = granule_of(m);
		if (!m->w || !strcmp(m->path, "[vsyscall]") || g > CHUNK || snap_dump_size(m, filter) != len)
			continue;
		if (kb_uffd_register_wp(e->uffd, m->start, len) < 0)
			continue;
		/* Releasing single pages would split transparent huge pages. */
		struct pre_range pr = { m->start, m->end, m->inode, m->details.anon_huge ? CHUNK : g, false };
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
	if (!pr || snap_overlaps(e->changed, e->nchanged, s->m->start, s->m->end))
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
int snap_protect_all(struct engine *e, bool use_uffd, struct kb_snap_stats *stats)
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
		if (snap_read_mem(e->pid, s->m->start, s->stopped_data, s->dump_len, &bad) < 0)
			return -1;
		e->pages_lost += bad;
		s->how = COPY_STOPPED;
		stats->pages_stopped += s->dump_len / PAGE;
	}
	return 0;
}
