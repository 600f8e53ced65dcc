/* The state the pieces of the snapshot engine share, and the functions one
 * piece calls in another: uffd_snapshot.c (the sequence), uffd_snapshot_protect.c
 * (write-protection), uffd_snapshot_faults.c (the fault thread),
 * uffd_snapshot_copy.c (writing the core), uffd_snapshot_memory.c (reading the
 * target's memory), uffd_snapshot_dirty.c (--dirty). Internal to snapshot/:
 * applets include uffd_snapshot.h. Kernel interfaces: those of uffd.h,
 * ptrace_inject.h and procmaps.h, and process_vm_readv. */
#ifndef KBOX_UFFD_SNAPSHOT_ENGINE_H
#define KBOX_UFFD_SNAPSHOT_ENGINE_H

#include "snapshot/elfcore.h"
#include "snapshot/procmaps.h"
#include "snapshot/snapshot_helper.h"
#include "snapshot/uffd_snapshot.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PAGE 4096ull
#define CHUNK (2ull << 20)   /* copy and release unit: one huge page */
/* What a write fault copies and releases: small enough that the writer waits
 * little, large enough that a sequential writer faults rarely. */
#define FAULT_UNIT (256ull << 10)
#define POOL_MAX 32          /* chunk buffers kept for reuse */

enum copy_how { COPY_LATER, COPY_PROTECTED, COPY_STOPPED };

/* Pages of one CHUNK-aligned chunk copied before the process wrote them. */
struct saved_chunk {
	unsigned char *data;    /* CHUNK bytes, indexed from the chunk's start */
	uint64_t have[CHUNK / PAGE / 64];
};

static inline size_t chunk_index(const struct kb_mapping *m, uint64_t a)
{
	return (size_t)((a - (m->start & ~(CHUNK - 1))) / CHUNK);
}

static inline size_t chunk_count(const struct kb_mapping *m)
{
	return (size_t)((((m->end + CHUNK - 1) & ~(CHUNK - 1)) - (m->start & ~(CHUNK - 1))) / CHUNK);
}

static inline bool have_page(const struct saved_chunk *c, uint64_t a)
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

struct writer {
	const struct kb_snap_opts *o;
	uint64_t done, total, last_progress;
};

/* uffd_snapshot.c */
/* Formats the one-line message of a failure into err. */
void snap_set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bytes of mapping m the core takes under filter (KB_DUMP_* bits). */
uint64_t snap_dump_size(const struct kb_mapping *m, unsigned filter);
/* The error kind and message for a failure of the helper at stage. */
enum kb_snap_error snap_helper_error(pid_t pid, int errnum, enum kb_helper_stage stage, char *err,
				     size_t errlen);
/* Whether pid exists, may be inspected, and is an x86-64 user-space program. */
enum kb_snap_error snap_check_target(pid_t pid, char *err, size_t errlen);

/* uffd_snapshot_memory.c: addresses are the pause's ("original") unless
 * called current. */
uint64_t snap_to_current(const struct engine *e, uint64_t a);
uint64_t snap_to_original(const struct engine *e, uint64_t a);
bool snap_overlaps(const struct range *v, size_t n, uint64_t start, uint64_t end);
/* Discarded or unmapped by the target before it was copied. */
bool snap_is_lost(const struct engine *e, uint64_t a);
/* Reads at a current address; unreadable pages become zeros, counted in
 * *bad. -1 (ESRCH) only when the process is gone. */
int snap_read_mem(pid_t pid, uint64_t addr, unsigned char *buf, uint64_t len, uint64_t *bad);
int snap_read_original(struct engine *e, uint64_t addr, unsigned char *buf, uint64_t len,
		       uint64_t *bad);
/* The dumped mapping holding original address a, or NULL. */
struct seg *snap_find_seg(struct engine *e, uint64_t a);
/* A CHUNK-sized buffer from the pool, and back (under e->lock). */
unsigned char *snap_chunk_get(struct engine *e);
void snap_chunk_put(struct engine *e, unsigned char *p);
void snap_free_engine(struct engine *e);

/* uffd_snapshot_protect.c */
/* While the target runs: register and write-protect the writable mappings
 * the core will most likely take whole. */
void snap_protect_running(struct engine *e, const struct kb_maps *maps, unsigned filter);
/* At the pause: protect or copy every dumped writable mapping and leave the
 * running mode. Returns 0 or -1 with errno (ESRCH: the process is gone). */
int snap_protect_all(struct engine *e, bool use_uffd, struct kb_snap_stats *stats);

/* uffd_snapshot_faults.c: the thread serving e's userfaultfd until e->stop. */
void *snap_fault_thread(void *arg);

/* uffd_snapshot_copy.c: writes hdr and every dumped mapping through w.
 * Returns KB_SNAP_OK or the error kind with err set. */
int snap_write_core(struct engine *e, struct writer *w, const struct kb_buf *hdr,
		    struct kb_snap_stats *stats, bool all_stopped, char *err, size_t errlen);

#endif
