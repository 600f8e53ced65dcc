/* The target's memory as it was at the pause: addresses of the pause
 * followed through the mremap moves seen since, ranges the target discarded
 * or unmapped before they were copied, reads with process_vm_readv (pages
 * that cannot be read become zeros), the pool of chunk buffers, and freeing
 * the engine. */
#include "snapshot/uffd_snapshot_engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* Current address of original address a, following mremap moves. */
uint64_t snap_to_current(const struct engine *e, uint64_t a)
{
	for (size_t i = 0; i < e->nremaps; i++)
		if (a >= e->remaps[i].start && a < e->remaps[i].end)
			a = a - e->remaps[i].start + e->remaps[i].to;
	return a;
}

uint64_t snap_to_original(const struct engine *e, uint64_t a)
{
	for (size_t i = e->nremaps; i-- > 0;) {
		uint64_t len = e->remaps[i].end - e->remaps[i].start;
		if (a >= e->remaps[i].to && a < e->remaps[i].to + len)
			a = a - e->remaps[i].to + e->remaps[i].start;
	}
	return a;
}

bool snap_overlaps(const struct range *v, size_t n, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].start < end && start < v[i].end)
			return true;
	return false;
}

bool snap_is_lost(const struct engine *e, uint64_t a)
{
	return snap_overlaps(e->lost, e->nlost, a, a + 1);
}

/* Reads len bytes at current address addr; pages that cannot be read (gone)
 * become zeros and are counted in *bad. Returns -1 (ESRCH) if the process
 * itself is gone. */
int snap_read_mem(pid_t pid, uint64_t addr, unsigned char *buf, uint64_t len, uint64_t *bad)
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
int snap_read_original(struct engine *e, uint64_t addr, unsigned char *buf, uint64_t len,
		       uint64_t *bad)
{
	pthread_mutex_lock(&e->lock);
	bool moved = snap_overlaps(e->remaps, e->nremaps, addr, addr + len);
	uint64_t cur = snap_to_current(e, addr);
	pthread_mutex_unlock(&e->lock);
	if (!moved)
		return snap_read_mem(e->pid, cur, buf, len, bad);
	for (uint64_t off = 0; off < len; off += PAGE) {
		pthread_mutex_lock(&e->lock);
		cur = snap_to_current(e, addr + off);
		pthread_mutex_unlock(&e->lock);
		if (snap_read_mem(e->pid, cur, buf + off, PAGE, bad) < 0)
			return -1;
	}
	return 0;
}

struct seg *snap_find_seg(struct engine *e, uint64_t a)
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

/* Chunk buffers, under e->lock. */
unsigned char *snap_chunk_get(struct engine *e)
{
	return e->npool ? e->pool[--e->npool] : aligned_alloc(PAGE, CHUNK);
}

void snap_chunk_put(struct engine *e, unsigned char *p)
{
	if (p && e->npool < POOL_MAX)
		e->pool[e->npool++] = p;
	else
		free(p);
}

void snap_free_engine(struct engine *e)
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
