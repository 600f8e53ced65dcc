/* exFAT checker: what its passes share, private to libcommon/exfat/.
 *
 * exfat_fsck.h is the checker's interface; this header is what its files
 * share with one another: the state of one run (struct vol: the volume's
 * geometry, the FAT, the clusters claimed so far, the allocation bitmap, the
 * walk's stack of directories), the problem-and-repair vocabulary every pass
 * reports through, and each pass's entry points. The passes:
 *   exfat_fsck.c       the driver: exfat_fsck_run(), problems, device access
 *   fsck_boot.c        boot region: main and backup boot sectors, checksums
 *   fsck_fat.c         the FAT, and the allocation bitmap against the chains
 *   fsck_claims.c      who owns each cluster: chains, loops, cross-links; a
 *                      claim that runs into a cluster already held waits
 *   fsck_conflicts.c   after the walk, which claim the evidence backs when
 *                      two claim the same clusters
 *   fsck_dir.c         the directory walk: entry sets, checksums, up-case table
 *   fsck_names.c       file names: invalid characters, duplicates, paths
 *   fsck_lost_found.c  -s: orphan chains kept as files in /LOST+FOUND
 * Kernel interface: none of its own (device access is exfat_fsck.c's, through
 * blockdev.h). */
#ifndef KBOX_EXFAT_FSCK_INTERNAL_H
#define KBOX_EXFAT_FSCK_INTERNAL_H

#include "exfat/exfat.h"
#include "exfat/exfat_fsck.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PATH_CAP 4096
#define FAT_WINDOWS 16u                  /* read-only check: FAT windows, direct-mapped */
#define FAT_WINDOW_ENTRIES 1024u         /* read-only check: FAT cached 4 KiB at a time */
#define FAT_CHUNK_ENTRIES 16384u         /* repairs: FAT read 64 KiB at a time, on first use */
#define USED_PAGE_BYTES 4096u            /* used bitmap pages never written read as zero */
#define MAX_UPCASE_BYTES (128u << 10)    /* a larger up-case table is damaged */

struct dir_ctx;   /* one directory being checked (below) */
struct exfat_upcase_map;  /* exfat_upcase.h */
struct fpath;     /* a file's path, built when a message needs it (below) */
struct claimant;  /* a file's claim on clusters, settled after the walk (below) */
struct claim_note;
struct later_eoc;

/* ---- the state of one run ------------------------------------------------ */

struct dir_job {
	char *path;
	uint32_t *clusters;
	uint32_t count;
	uint32_t depth;
};

struct vol {
	int fd;
	uint64_t dev_size;
	bool seek_holes;               /* a regular file: holes need not be read */
	const struct exfat_fsck_opts *o;
	struct exfat_fsck_result *r;
	bool quit, failed;

	uint8_t *boot;                 /* the region in use, 12 sectors */
	struct exfat_boot_sector *bs;  /* its sector 0 */
	unsigned ss;
	uint64_t csize;
	unsigned cshift;               /* log2 of the cluster size */
	uint32_t cc;                   /* ClusterCount */
	uint64_t fat_off;              /* bytes, the active FAT */
	uint64_t fat_copy_off;         /* bytes, the other FAT of two (TexFAT), or 0 */
	uint64_t heap_off;             /* bytes */
	uint16_t orig_flags;
	bool boot_writable;            /* main region valid (or restored): writes allowed */
	bool dirty_set;
	bool lost_extent;              /* a lost size's data was left unowned: orphans may be it */

	uint32_t *fat;                 /* host-endian copy, cc + 2 entries (NULL: read-only) */
	uint32_t *fat_win;             /* read-only: FAT_WINDOWS windows of the FAT */
	uint64_t fat_win_no[FAT_WINDOWS]; /* window number + 1 held by each slot, 0: none */
	uint8_t *fat_dirty;            /* one flag per FAT page */
	uint8_t *fat_loaded;           /* one flag per FAT chunk */
	uint8_t *used;                 /* clusters claimed by the walk (bit c - 2) */
	uint8_t *used_pages;           /* per USED_PAGE_BYTES of used: a bit was ever set */

	bool bm_found;
	uint32_t bm_first;
	uint64_t bm_bytes;
	uint8_t *disk_bm;              /* the on-disk bitmap: as read, then as to be written */
	uint8_t *bm_dirty;             /* per bitmap cluster: changed */
	uint32_t *bm_clusters;
	uint32_t bm_count;
	uint64_t bm_used;              /* once checked: clusters the bitmap marks used, as it is left */
	bool bm_copy_found;            /* two FATs: the other FAT's bitmap */
	uint32_t *bm_copy_clusters;
	uint32_t bm_copy_count;
	uint32_t *root_clusters;       /* the root directory's chain */
	uint32_t root_count;

	struct exfat_upcase_map *upcase;  /* the volume's up-case table, expanded */
	bool upcase_found;
	uint32_t upcase_first, upcase_count; /* the up-case table's chain, as held */
	uint64_t upcase_pos;           /* byte offset of its entry */
	unsigned upcase_against;       /* damaged: what weighs against its claim (CLAIM_*), else 0 */
	bool upcase_rewrite;           /* damaged: the default table is written once the claims are settled */

	/* Claims that ran into a cluster already held, settled after the walk
	 * (fsck_conflicts.c); what the walk saw against a file's claim, and
	 * holds changed since, by file entry; chain ends set once settled. */
	struct claimant *pending;
	size_t npending, cappending;
	struct claim_note *notes;
	size_t nnotes, capnotes;
	bool notes_sorted;
	struct later_eoc *eocs;
	size_t neocs, capeocs;
	unsigned settle_rounds;

	struct dir_job *stack;
	size_t nstack, capstack;
};

static inline bool fsck_cluster_ok(const struct vol *v, uint32_t c)
{
	return c >= EXFAT_FIRST_CLUSTER && (uint64_t)c < (uint64_t)v->cc + 2;
}

static inline uint64_t fsck_cluster_pos(const struct vol *v, uint32_t c)
{
	return v->heap_off + ((uint64_t)(c - EXFAT_FIRST_CLUSTER) << v->cshift);
}

/* ---- problems and repairs (exfat_fsck.c) --------------------------------- *
 * Every pass reports what it finds through fsck_problem(): a stable code
 * ("set-checksum", "cross-link", "bitmap-orphan", ...), the path and byte
 * offset of the damaged structure, what is wrong, and the repair (NULL: none
 * possible). `safe` marks a repair made without asking (-p). It returns true
 * only when the repair is to be made now: the caller's answer was yes, the
 * device is writable and the main boot region may be written. The pass then
 * changes its in-memory copy (directory buffer, FAT, bitmap), written back at
 * the end of its directory or of the run. */

/* Reports a problem; returns true when it is to be repaired now. */
bool __attribute__((format(printf, 7, 8)))
fsck_problem(struct vol *v, const char *code, const char *path, uint64_t offset, bool safe,
	     const char *repair, const char *fmt, ...);
/* A note that is not a problem (the volume was dirty, ...). */
void __attribute__((format(printf, 2, 3))) fsck_note(struct vol *v, const char *fmt, ...);
/* The run cannot go on: the volume is unusable (result->error says why). */
void __attribute__((format(printf, 2, 3))) fsck_fail(struct vol *v, const char *fmt, ...);
/* An I/O error or lack of memory, not damage. */
#define fsck_fail_op(v, ...) do { fsck_fail(v, __VA_ARGS__); (v)->r->operational = true; } while (0)

/* ---- device access (exfat_fsck.c) ---------------------------------------- */

/* The first extent of [off, end) that may hold data, [*data, *stop): the
 * holes of a sparse image read as zeros without being read. Both are end
 * when there is none; [off, end) when holes cannot be told. */
void fsck_data_extent(struct vol *v, uint64_t off, uint64_t end, uint64_t *data, uint64_t *stop);
/* Reads [off, off + len); past the end of the device reads as zeros. */
int fsck_dev_read(struct vol *v, uint64_t off, void *buf, size_t len);
/* The same into a buf that holds zeros: holes and the part past the end
 * are left as they are, untouched (a fresh calloc costs no page for them). */
int fsck_dev_read_zeroed(struct vol *v, uint64_t off, void *buf, size_t len);
/* The same without looking for holes: [off, off + len) holds data, as
 * fsck_data_extent() found. */
int fsck_dev_read_data(struct vol *v, uint64_t off, void *buf, size_t len);
/* Writes through the undo file, without setting the dirty mark. */
int fsck_raw_write(struct vol *v, uint64_t off, const void *buf, size_t len);
int fsck_flush(struct vol *v);
/* Sets the dirty mark (once), then writes through the undo file. */
int fsck_dev_write(struct vol *v, uint64_t off, const void *buf, size_t len);

/* ---- boot region (fsck_boot.c) ------------------------------------------- */

/* Picks and checks the boot region; sets the geometry in v. */
int fsck_check_boot(struct vol *v);

/* ---- FAT and allocation bitmap (fsck_fat.c) ------------------------------ */

/* Reads the active FAT's head; with two FATs, checks the other against it. */
int fsck_read_fat(struct vol *v);
/* Writes the FAT pages repairs changed, to both FATs when there are two. */
int fsck_write_fat(struct vol *v);
/* Reads the window or chunk holding FAT entry c; returns the entry. */
uint32_t fsck_fat_fetch(struct vol *v, uint32_t c);
/* FAT entry c. Every step of every chain comes here, so the case where the
 * entry is already in memory is inline. */
static inline uint32_t fsck_fat_get(struct vol *v, uint32_t c)
{
	if (v->fat) {
		if (v->fat_loaded[c / FAT_CHUNK_ENTRIES])
			return v->fat[c];
	} else {
		uint32_t w = c / FAT_WINDOW_ENTRIES;
		unsigned slot = w % FAT_WINDOWS;
		if (v->fat_win_no[slot] == (uint64_t)w + 1)
			return v->fat_win[(size_t)slot * FAT_WINDOW_ENTRIES + c % FAT_WINDOW_ENTRIES];
	}
	return fsck_fat_fetch(v, c);
}
void fsck_fat_set(struct vol *v, uint32_t c, uint32_t value);
/* The root directory's allocation bitmap entry (at entry i): its size and
 * chain; the bitmap is read unless the check is read-only. With two FATs,
 * the entry whose BitmapFlags name the other FAT is that FAT's bitmap: its
 * size and chain are checked and claimed. */
void fsck_load_bitmap(struct dir_ctx *d, uint32_t i);
/* After the walk: the on-disk bitmap against the clusters claimed; sets
 * v->bm_used from the bitmap as it is left (written, or as read). */
void fsck_check_bitmap(struct vol *v);

/* ---- cluster ownership (fsck_claims.c) ----------------------------------- *
 * A chain is followed and its clusters claimed by fsck_walk_chain(); where
 * and why it stopped is one of these kinds, reported under fsck_stop_code()
 * as the problem's code and fsck_describe_stop() as its message. A file's
 * chain that runs into a cluster another chain holds (CH_CROSS) is not cut
 * there and then: it waits as a claimant in v->pending, holding the clusters
 * before that one, until fsck_settle_claims() weighs both claims. */

enum chain_stop { CH_OK, CH_FIRST, CH_EARLY_END, CH_BROKEN, CH_LOOP, CH_CROSS, CH_TOO_LONG };

struct chain {
	uint32_t count;         /* clusters in the chain */
	uint32_t last;          /* its last cluster */
	uint32_t bad;           /* the value that stopped it */
	uint32_t marked_bad;    /* the cluster marked bad it ran into (claimed, not counted), or 0 */
	enum chain_stop stop;
	bool extra;             /* FAT chain continues past the clusters needed */
	uint32_t *list;         /* with collect: the claimed clusters */
};

/* A bitmap of claimed clusters (bit c - 2) and, optionally, one flag per
 * USED_PAGE_BYTES of it that had a bit set: v->used, or a scratch one. */
struct claim_map {
	uint8_t *bits;
	uint8_t *pages;
};

void fsck_mark_used(struct vol *v, uint32_t k);
void fsck_claim(struct vol *v, uint32_t c);
/* Follows and claims a chain of `want` clusters (0: up to the end-of-chain
 * mark, at most `max`). */
int fsck_walk_chain(struct vol *v, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		    bool collect, struct chain *ch);
/* The same in map m, going on from cluster `from` after the ch->count
 * clusters already walked (ch->last the last of them; from = first when
 * none). */
int fsck_walk_in(struct vol *v, struct claim_map m, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		 bool collect, uint32_t from, struct chain *ch);
/* The first n clusters of a chain walked before (claimed, loop-free), in a
 * new array; NULL when out of memory. */
uint32_t *fsck_chain_list(struct vol *v, uint32_t first, bool contiguous, uint32_t n);
const char *fsck_stop_code(enum chain_stop s);
void fsck_describe_stop(const struct vol *v, const struct chain *ch, char *buf, size_t len);
/* Clusters a stream of DataLength len claims (a directory's size rounded
 * as its check rounds it); 0: none. */
uint64_t fsck_stream_clusters(const struct vol *v, uint64_t len, bool is_dir);

/* The entry set of the stream entry being checked: where it starts and how
 * many entries it spans, and whether SetChecksum or SecondaryCount showed
 * its fields were damaged. */
struct set_at {
	uint32_t entry;
	uint32_t span;
	bool suspect;
};
/* The chain of the set's stream entry and its sizes: claims its clusters
 * (a directory's list in *dir_clusters). A chain that is broken or loops is
 * cut back to the clusters before; one that runs into a cluster another
 * chain holds waits in v->pending for fsck_settle_claims(), and so does a
 * file's NoFatChain extent when its entry set was damaged or it runs past
 * the heap (the bitmap then says where it ends), and a directory whose entry
 * set was damaged (read only once no other claim disputes its clusters). */
int fsck_check_stream_data(struct dir_ctx *d, const struct set_at *set, struct fpath *path, bool is_dir,
			   uint32_t **dir_clusters, uint32_t *dir_count, bool *changed);
/* After the walk stopped at ch: the repairs of a chain that ended before
 * its size, or goes on past it (reported once the claims are settled), and
 * of ValidDataLength, in the stream entry st of the file whose file entry
 * is at byte key. */
void fsck_stream_stop(struct vol *v, struct exfat_stream_entry *st, struct fpath *path, uint64_t pos, uint64_t key,
		      bool is_dir, const struct chain *ch, bool *changed);
/* Reports a chain going on past the want clusters its size needs, after
 * its last one; returns true when it is to be ended there. */
bool fsck_chain_long(struct vol *v, const char *path, uint64_t pos, uint32_t last, uint64_t want);
/* Of the unowned clusters in mask (bitmap word w), claims those marked bad;
 * returns the rest. */
uint64_t fsck_claim_bad(struct vol *v, uint64_t w, uint64_t mask);
/* Room for one more of the n items (each `size` bytes) of a growable array
 * of *cap: the array, grown if it had to be; NULL (the run failed, the
 * array kept) when out of memory. */
void *fsck_grow(struct vol *v, void *items, size_t *cap, size_t n, size_t size);
/* A free cluster (neither claimed nor marked in the bitmap being built, so
 * never an orphan's), claimed and marked; 0 when none is left. */
uint32_t fsck_alloc_cluster(struct vol *v, uint32_t *cursor);

/* ---- claims settled after the walk (fsck_conflicts.c) -------------------- */

/* What the walk saw against a claim (CLAIM_SUSPECT, CLAIM_CHAIN), and its
 * hold once settled (CLAIM_PENDING while it waits). */
enum {
	CLAIM_SUSPECT = 1,      /* its set's SetChecksum or SecondaryCount was wrong */
	CLAIM_CHAIN = 2,        /* its chain disagreed with its size (short, broken, loop, past it) */
	CLAIM_PENDING = 4,      /* waits in v->pending */
	CLAIM_CUT = 8,          /* cut back by a settled conflict */
	CLAIM_TAIL = 16,        /* a NoFatChain extent whose end waits for the bitmap */
	CLAIM_HOLD = 32,        /* a directory read only once the claims are settled */
};
#define CLAIM_HELD_ALL UINT32_MAX

struct claim_note {
	uint64_t key;           /* byte offset of the file entry */
	uint32_t held;          /* clusters it holds (CLAIM_HELD_ALL: its whole chain) */
	unsigned flags;
};

/* A file's claim, with what a repair after the walk needs to find its set. */
struct claimant {
	uint64_t key;           /* byte offset of its file entry */
	char *path;
	uint64_t *pos;          /* byte offset of each entry of its set */
	uint32_t span;
	uint32_t first;
	uint64_t want;          /* clusters its size needs */
	uint64_t len;           /* DataLength (a directory's rounded as checked) */
	bool contiguous, is_dir;
	uint32_t held;          /* clusters of its chain it holds */
	uint32_t last;          /* the last of them */
	uint32_t at;            /* pending: the cluster it ran into (else what stopped it) */
	enum chain_stop stop;   /* how its walk stopped */
	bool extra;             /* its FAT chain goes on past its size */
	unsigned flags;
};

/* A chain that goes on past its size, reported and ended once the claims
 * are settled (unless its file is cut back before). */
struct later_eoc {
	uint64_t key, pos;
	char *path;
	uint32_t last;
	uint64_t want;
};

/* Records what the walk saw against the claim of the file entry at key. */
int fsck_note_claim(struct vol *v, uint64_t key, unsigned flags, uint32_t held);
/* A chain that goes on past the want clusters after last: reported, and
 * ended there, once the claims are settled, unless the file is cut back. */
void fsck_end_chain_later(struct vol *v, uint64_t key, const char *path, uint64_t pos, uint32_t last, uint64_t want);
/* Settles the pending claims: returns true when directories were pushed
 * that the walk must now check. */
bool fsck_settle_claims(struct vol *v);
/* After the last settling: the chains that go on past their size. */
void fsck_claims_done(struct vol *v);
void fsck_claims_free(struct vol *v);

/* ---- file names (fsck_names.c) ------------------------------------------- */

/* The up-cased names of one directory, for case-insensitive duplicates:
 * an open-addressing table over one growing pool of code units. Each name
 * keeps the set that holds it, and whether that set's NameHash matched it
 * (when not, the name may be what was damaged). */
struct name_set {
	struct name_slot {
		uint32_t hash;
		uint16_t len;
		size_t at;          /* offset in pool */
		uint32_t owner;     /* entry index of the set that holds the name */
		bool suspect;       /* that set's NameHash did not match the name */
	} *slots;
	size_t cap, used;
	uint16_t *pool;
	size_t pool_used, pool_cap;
};

bool fsck_is_dot_name(const uint16_t *n, unsigned len);
bool fsck_name_contains(struct name_set *s, const uint16_t *up, unsigned len);
/* The slot holding the name, or NULL; valid until the next fsck_name_add. */
struct name_slot *fsck_name_holder(struct name_set *s, const uint16_t *up, unsigned len);
int fsck_name_add(struct name_set *s, const uint16_t *up, unsigned len, uint32_t owner, bool suspect);
void fsck_name_set_free(struct name_set *s);
/* NAME~N, unique in the directory within `cap` code units; 0: none fits. */
unsigned fsck_unique_name(struct vol *v, struct name_set *names, uint16_t *name, unsigned len, unsigned cap);
char *fsck_child_path(const char *parent, const uint16_t *name, unsigned len);

/* A file's path, built only when a message needs it. */
struct fpath {
	const char *dir;
	const uint16_t *name;
	unsigned len;
	char *s;
};

const char *fsck_fp(struct fpath *p);

/* ---- the directory walk (fsck_dir.c) ------------------------------------- */

struct dir_ctx {
	struct vol *v;
	const struct dir_job *job;
	uint8_t *buf;
	uint32_t nentries;
	uint8_t *dirty;          /* per cluster */
	struct name_set names;
	bool root;
};

uint8_t *fsck_entry_at(struct dir_ctx *d, uint32_t i);
/* The byte offset of entry i on the device. */
uint64_t fsck_entry_pos(struct dir_ctx *d, uint32_t i);
/* Entries [first, first + count) changed: their clusters are written back. */
void fsck_touch(struct dir_ctx *d, uint32_t first, uint32_t count);
void fsck_delete_entries(struct dir_ctx *d, uint32_t first, uint32_t count);
int fsck_push_dir(struct vol *v, char *path, uint32_t *clusters, uint32_t count, uint32_t depth);
/* Reads the directory's clusters into buf, which holds zeros (calloc): a
 * sparse image's holes are left as they are. */
int fsck_read_dir(struct vol *v, const struct dir_job *job, uint8_t *buf);
void fsck_check_dir(struct vol *v, struct dir_job *job, bool root);
/* Once the claims are settled: a damaged up-case table gets the default
 * one, in the clusters it still holds, then in free ones. */
void fsck_rewrite_upcase(struct vol *v);

/* ---- orphans kept in /LOST+FOUND (fsck_lost_found.c) --------------------- */

/* With -s: true when the orphans were dealt with (kept, or reported as
 * impossible to keep). */
bool fsck_rescue_orphans(struct vol *v, uint64_t orphans, uint32_t first_orphan);

#endif
