/* --dirty: how fast a process writes to its memory, mapping by mapping. A
 * userfaultfd with UFFD_FEATURE_WP_ASYNC is created inside the target (by the
 * helper) and its writable mappings are write-protected; the kernel then only
 * marks the pages written, without faults, and PAGEMAP_SCAN on
 * /proc/PID/pagemap counts them and protects them again at each interval. */
#include "snapshot/uffd_snapshot.h"
#include "base/clock.h"
#include "snapshot/uffd.h"
#include "snapshot/uffd_snapshot_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
		snap_set_err(err, errlen,
			"--dirty is not available on this kernel: it needs userfaultfd WP_ASYNC and "
			"PAGEMAP_SCAN (Linux 6.7+)");
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	enum kb_snap_error target = snap_check_target(pid, err, errlen);
	if (target != KB_SNAP_OK)
		return target;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	int pm = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0) {
		snap_set_err(err, errlen, "opening %s: %s", path, strerror(errno));
		return errno == ENOENT ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_ACCESS;
	}
	struct kb_helper h;
	struct kb_stopped st;
	enum kb_helper_stage stage;
	int uffd = -1;
	if (kb_helper_start(pid, true, 10000, &h, &st, &uffd, &stage) < 0) {
		enum kb_snap_error e = snap_helper_error(pid, errno, stage, err, errlen);
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
		snap_set_err(err, errlen, "UFFDIO_API with WP_ASYNC: %s", strerror(errno));
		rc = KB_SNAP_ERR_UNSUPPORTED;
		goto out;
	}
	track_mappings(pid, uffd, &d);
	uint64_t start = kb_monotonic_ns();
	for (unsigned no = 1; (!count || no <= count) && !*stop; no++) {
		uint64_t deadline = start + interval_ns * no;
		struct timespec ts = { (time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u) };
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !*stop)
			;
		if (*stop)
			break;
		if (kill(pid, 0) < 0 && errno == ESRCH) {
			snap_set_err(err, errlen, "process %d exited", (int)pid);
			rc = KB_SNAP_ERR_GONE;
			break;
		}
		uint64_t now = kb_monotonic_ns();
		qsort(d.t, d.n, sizeof(*d.t), cmp_tracked);
		free(rep);
		rep = calloc(d.n ? d.n : 1, sizeof(*rep));
		if (!rep) {
			snap_set_err(err, errlen, "out of memory");
			rc = KB_SNAP_ERR_OTHER;
			break;
		}
		struct kb_dirty_report r = { .interval_no = no, .interval_ns = now - (deadline - interval_ns),
					     .m = rep, .n = d.n };
		for (size_t i = 0; i < d.n; i++) {
			int64_t pages = kb_pagemap_scan_written(pm, d.t[i].start, d.t[i].end, NULL, NULL);
			if (pages < 0 && errno == ENOTTY) {
				snap_set_err(err, errlen, "--dirty is not available on this kernel: no PAGEMAP_SCAN (Linux 6.7+)");
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
