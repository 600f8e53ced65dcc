/* What the pieces of kb_snapshot() share (uffd_snapshot.c, uffd_snapshot_memory.c,
 * uffd_snapshot_protect.c, uffd_snapshot_faults.c, uffd_snapshot_copy.c,
 * uffd_snapshot_dirty.c): the engine state and the functions one piece calls in
 * another. Internal to snapshot/; applets include uffd_snapshot.h. */
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
void snap_set_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t snap_dump_size(const struct kb_mapping *m, unsigned filter);
enum kb_snap_error snap_helper_error(pid_t pid, int errnum, enum kb_helper_stage stage, char *err,
				     size_t errlen);
enum kb_snap_error snap_check_target(pid_t pid, char *err, size_t errlen);

/* uffd_snapshot_memory.c */
uint64_t snap_to_current(const struct engine *e, uint64_t a);
uint64_t snap_to_original(const struct engine *e, uint64_t a);
bool snap_overlaps(const struct range *v, size_t n, uint64_t start, uint64_t end);
bool snap_is_lost(const struct engine *e, uint64_t a);
int snap_read_mem(pid_t pid, uint64_t addr, unsigned char *buf, uint64_t len, uint64_t *bad);
int snap_read_original(struct engine *e, uint64_t addr, unsigned char *buf, uint64_t len,
		       uint64_t *bad);
struct seg *snap_find_seg(struct engine *e, uint64_t a);
unsigned char *snap_chunk_get(struct engine *e);
void snap_chunk_put(struct engine *e, unsigned char *p);
void snap_free_engine(struct engine *e);

/* uffd_snapshot_protect.c */
void snap_protect_running(struct engine *e, const struct kb_maps *maps, unsigned filter);
int snap_protect_all(struct engine *e, bool use_uffd, struct kb_snap_stats *stats);

/* uffd_snapshot_faults.c */
void *snap_fault_thread(void *arg);

/* uffd_snapshot_copy.c */
int snap_write_core(struct engine *e, struct writer *w, const struct kb_buf *hdr,
		    struct kb_snap_stats *stats, bool all_stopped, char *err, size_t errlen);

#endif
