/* Writing the core after the pause: headers and notes, then every dumped
 * mapping in address order. A protected mapping is copied chunk by chunk,
 * taking the pages the fault thread saved ahead of a write, and each chunk is
 * released (UFFDIO_WRITEPROTECT off) once copied; the others are read with
 * process_vm_readv. A target that exits or runs execve() meanwhile is noticed
 * and the core called incomplete. */
#include "snapshot/uffd_snapshot_engine.h"
#include "snapshot/uffd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Releases a range from the copying thread; the fault thread reads the
 * events that make the kernel answer EAGAIN meanwhile. */
static void release(struct engine *e, uint64_t start, uint64_t len)
{
	while (kb_uffd_writeprotect(e->uffd, start, len, false) < 0 && errno == EAGAIN && !e->stop) {
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
}

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
			snap_chunk_put(e, data);
			pthread_mutex_unlock(&e->lock);
			if (r < 0)
				return -2;
			a = next;
			continue;
		}
		pthread_mutex_unlock(&e->lock);
		/* Read what was not copied ahead (all of it, most of the time). */
		if (snap_read_original(e, a, buf, len, &bad) < 0)
			return -1;
		pthread_mutex_lock(&e->lock);
		c = s->saved ? &s->saved[chunk_index(s->m, a)] : NULL;
		for (uint64_t p = a; p < next; p += PAGE) {
			if (c && have_page(c, p)) {
				memcpy(buf + (p - a), c->data + (p & (CHUNK - 1)), PAGE);
			} else if (snap_is_lost(e, p)) {
				memset(buf + (p - a), 0, PAGE);
				e->pages_lost++;
			} else {
				stats->pages_background++;
			}
		}
		if (c) {
			snap_chunk_put(e, c->data);
			memset(c, 0, sizeof(*c));
		}
		s->done_upto = next;
		bool moved = snap_overlaps(e->remaps, e->nremaps, a, next);
		uint64_t cur = snap_to_current(e, a);
		pthread_mutex_unlock(&e->lock);
		e->pages_lost += bad;
		if (!moved) {
			release(e, cur, len);
		} else {
			for (uint64_t p = a; p < next; p += PAGE) {
				pthread_mutex_lock(&e->lock);
				cur = snap_to_current(e, p);
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
		if (snap_read_original(e, a, buf, len, &bad) < 0)
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
int snap_write_core(struct engine *e, struct writer *w, const struct kb_buf *hdr,
		    struct kb_snap_stats *stats, bool all_stopped, char *err, size_t errlen)
{
	unsigned char *buf = aligned_alloc(PAGE, CHUNK);
	if (!buf) {
		snap_set_err(err, errlen, "out of memory");
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
			snap_set_err(err, errlen, "process %d started another program (execve) during the "
				"copy; the core is incomplete", (int)e->pid);
			return KB_SNAP_ERR_GONE;
		}
	}
	if (rc == -1) {
		e->gone = true;
		snap_set_err(err, errlen, "process %d exited during the copy; the core is incomplete", (int)e->pid);
		return KB_SNAP_ERR_GONE;
	}
	if (rc == -2) {
		snap_set_err(err, errlen, "writing the core: %s", strerror(errno));
		return KB_SNAP_ERR_OUTPUT;
	}
	return KB_SNAP_OK;
}
