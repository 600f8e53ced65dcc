/* A consistent core dump of a running process with a short pause: stop it
 * (ptrace, through snapshot_helper.h), write-protect its memory through a
 * userfaultfd created inside it (uffd.h), let it run, and copy the memory
 * (process_vm_readv) while copying first any page it is about to write. Also
 * measures how fast a process dirties its memory (PAGEMAP_SCAN).
 * The engine is split by phase; libcommon/snapshot/README.md names the files. */
#ifndef KBOX_UFFD_SNAPSHOT_H
#define KBOX_UFFD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What to dump, like /proc/PID/coredump_filter. */
#define KB_DUMP_ANON_PRIVATE   (1u << 0)
#define KB_DUMP_ANON_SHARED    (1u << 1)
#define KB_DUMP_FILE_PRIVATE   (1u << 2)
#define KB_DUMP_FILE_SHARED    (1u << 3)
#define KB_DUMP_ELF_HEADERS    (1u << 4)
#define KB_DUMP_HUGETLB_PRIVATE (1u << 5)
#define KB_DUMP_HUGETLB_SHARED (1u << 6)
#define KB_DUMP_EVERYTHING     (~0u)   /* --all: every readable mapping */

struct kb_snap_opts {
	pid_t pid;
	unsigned filter;          /* KB_DUMP_* bits */
	bool stopped_copy;        /* no userfaultfd: copy everything while stopped */
	unsigned max_pause_ms;    /* the helper resumes the target after this, failing the dump
	                             (0: 10 s; at most INT_MAX ms, about 24.8 days) */
	/* Sink for the core file's bytes, in order. Returns 0 or -1 with errno. */
	int (*write)(void *arg, const void *buf, size_t len);
	void *write_arg;
	/* Called now and then during the copy (may be NULL). */
	void (*progress)(void *arg, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct kb_snap_stats {
	uint64_t first_pause_ns; /* the first stop, to create the userfaultfd */
	uint64_t inject_ns;      /* userfaultfd created inside the target and taken */
	uint64_t protect_running_ns; /* register + write-protect while the target runs */
	uint64_t pages_reprotected; /* written meanwhile, protected again at the pause */
	/* The pause (the instant the core shows): */
	uint64_t stop_ns;        /* PTRACE_INTERRUPT of the first thread until all stopped */
	uint64_t protect_ns;     /* protecting what is left, copying what cannot be */
	uint64_t stopped_copy_ns;/* mappings copied while stopped */
	uint64_t resume_ns;      /* detach */
	uint64_t pause_ns;       /* first interrupt until the last thread runs again */
	uint64_t copy_ns;        /* background copy and write */
	uint64_t total_ns;
	size_t threads, mappings, mappings_dumped, mappings_protected;
	uint64_t core_bytes;     /* size of the (uncompressed) core */
	uint64_t pages_ahead;    /* copied first because the target was about to write them */
	uint64_t pages_background, pages_stopped;
	uint64_t pages_lost;     /* unmapped or discarded by the target before they were copied */
};

enum kb_snap_error {
	KB_SNAP_OK = 0,
	KB_SNAP_ERR_ACCESS,      /* ptrace refused */
	KB_SNAP_ERR_GONE,        /* no such process, or it exited during the dump */
	KB_SNAP_ERR_UFFD_DENIED, /* the target may not create a userfaultfd */
	KB_SNAP_ERR_UNSUPPORTED, /* kernel or target lacks something needed */
	KB_SNAP_ERR_OUTPUT,      /* writing the core failed */
	KB_SNAP_ERR_OTHER,
};

/* Writes the core through opts->write. On failure returns the error kind and
 * a one-line message in err; the target keeps running in every case. */
enum kb_snap_error kb_snapshot(const struct kb_snap_opts *opts, struct kb_snap_stats *stats,
			       char *err, size_t errlen);

/* --dirty: pages written per interval, per mapping. */
struct kb_dirty_mapping {
	uint64_t start, end;
	const char *path;        /* "" for anonymous */
	uint64_t pages;          /* written during the last interval */
};
struct kb_dirty_report {
	unsigned interval_no;
	uint64_t interval_ns;    /* measured length of the interval */
	uint64_t pages;          /* total written */
	struct kb_dirty_mapping *m;
	size_t n;
};
/* Measures count intervals of interval_ns each (count 0: until *stop is set),
 * calling report after each. Uses UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN. */
enum kb_snap_error kb_dirty_track(pid_t pid, uint64_t interval_ns, unsigned count,
				  volatile int *stop,
				  void (*report)(void *arg, const struct kb_dirty_report *r),
				  void *arg, char *err, size_t errlen);

#endif
