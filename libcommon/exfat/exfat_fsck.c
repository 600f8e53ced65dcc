/* exFAT checker and repairer (see exfat_fsck.h).
 *
 * One pass: boot region, FAT (read whole, in large sequential reads), root
 * directory (bitmap and up-case entries first), then every directory once,
 * depth first with an explicit stack; each cluster is claimed in a "used"
 * bitmap so loops and cross-links are found without revisiting anything.
 * Repairs change in-memory copies; directory clusters are written back when
 * their directory is done, the FAT and allocation bitmap at the end.
 * VolumeDirty is set before the first write and cleared after the last. */
#include "exfat/exfat_fsck.h"

#include "blockdev/blockdev.h"
#include "exfat/exfat.h"
#include "exfat/exfat_upcase.h"
#include "blockdev/undo.h"
#include "base/utf.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PATH_CAP 4096
#define FAT_PAGE_ENTRIES 1024u           /* dirty tracking granularity: 4 KiB of FAT */
#define FAT_CHUNK_ENTRIES 16384u         /* read granularity: 64 KiB of FAT */
#define FAT_WINDOW_ENTRIES 1024u         /* read-only check: FAT cached 4 KiB at a time */
#define FAT_WINDOWS 16u                  /* ... in this many direct-mapped windows */
#define USED_PAGE_BYTES 4096u            /* used bitmap pages never written read as zero */
#define BM_READ_BYTES (64u << 10)       /* read-only bitmap check: bytes per read */
#define MAX_UPCASE_BYTES (128u << 10)
#define LOST_FOUND_NAME "LOST+FOUND"

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
	uint32_t *root_clusters;       /* the root directory's chain */
	uint32_t root_count;

	uint16_t *upcase;              /* 65536-entry map */
	bool upcase_found;

	struct dir_job *stack;
	size_t nstack, capstack;
};

/* ---- problems ------------------------------------------------------------ */

/* Reports a problem; returns true when it is to be repaired now. */
static bool __attribute__((format(printf, 7, 8)))
problem(struct vol *v, const char *code, const char *path, uint64_t offset, bool safe,
	const char *repair, const char *fmt, ...)
{
	struct exfat_fsck_problem p = { .code = code, .path = path ? path : "", .offset = offset,
					.repair = repair, .safe = safe };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p.message, sizeof(p.message), fmt, ap);
	va_end(ap);
	v->r->problems++;
	enum exfat_fsck_decision d = EXFAT_FSCK_SKIP;
	if (!v->quit && v->o->decide)
		d = v->o->decide(v->o->ctx, &p);
	if (d == EXFAT_FSCK_QUIT) {
		v->quit = true;
		v->r->cancelled = true;
	}
	bool fix = d == EXFAT_FSCK_REPAIR && v->o->writable && v->boot_writable && !v->failed && repair;
	if (fix)
		v->r->repaired++;
	if (v->o->report)
		v->o->report(v->o->ctx, &p, fix);
	return fix;
}

static void __attribute__((format(printf, 2, 3))) note(struct vol *v, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v->o->note)
		v->o->note(v->o->ctx, msg);
}

static void __attribute__((format(printf, 2, 3))) fail(struct vol *v, const char *fmt, ...)
{
	if (v->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->r->error, sizeof(v->r->error), fmt, ap);
	va_end(ap);
	v->failed = true;
	v->r->fatal = true;
}

/* An I/O error or lack of memory, not damage. */
#define fail_op(v, ...) do { fail(v, __VA_ARGS__); (v)->r->operational = true; } while (0)

/* ---- device access ------------------------------------------------------- */

/* Reads [off, off+len); anything past the end of the device reads as zeros. */
/* Reads [off, off + len) of a regular file: holes are zeros by
 * definition, so only the data extents are read. A sparse image keeps
 * little more than the written part of each directory cluster, FAT and
 * bitmap, and reading the rest would only copy zeros. Returns -1 with
 * errno on a read error, 1 when holes cannot be found (then read it all). */
static int read_data_extents(struct vol *v, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t pos = off, end = off + len;
	while (pos < end) {
		off_t data = lseek(v->fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return pos == off ? 1 : kb_pread_full(v->fd, buf + (pos - off), end - pos, pos);
		if (data < 0 || (uint64_t)data >= end) {
			memset(buf + (pos - off), 0, end - pos);
			return 0;
		}
		memset(buf + (pos - off), 0, (uint64_t)data - pos);
		off_t hole = lseek(v->fd, data, SEEK_HOLE);
		uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		if (kb_pread_full(v->fd, buf + ((uint64_t)data - off), stop - (uint64_t)data, (uint64_t)data) < 0)
			return -1;
		pos = stop;
	}
	return 0;
}

#define SPARSE_READ_MIN (64u << 10)       /* smaller reads are not worth two lseeks */

/* [off, off + len) is known to read as zeros without reading it. */
static bool is_hole(struct vol *v, uint64_t off, uint64_t len)
{
	if (!v->seek_holes || off + len > v->dev_size)
		return false;
	off_t data = lseek(v->fd, (off_t)off, SEEK_DATA);
	return (data < 0 && errno == ENXIO) || (data >= 0 && (uint64_t)data >= off + len);
}

static int dev_read(struct vol *v, uint64_t off, void *buf, size_t len)
{
	size_t avail = off >= v->dev_size ? 0 : (v->dev_size - off < len ? (size_t)(v->dev_size - off) : len);
	int rc = 1;
	if (avail >= SPARSE_READ_MIN && v->seek_holes) {
		rc = read_data_extents(v, off, buf, avail);
		if (rc == 1)
			v->seek_holes = false;
	}
	if (avail && rc == 1)
		rc = kb_pread_full(v->fd, buf, avail, off);
	if (avail && rc < 0) {
		fail_op(v, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
		return -1;
	}
	memset((uint8_t *)buf + avail, 0, len - avail);
	return 0;
}

static int raw_write(struct vol *v, uint64_t off, const void *buf, size_t len)
{
	if (v->failed)
		return -1;
	if (off > v->dev_size || len > v->dev_size - off) {
		fail_op(v, "refusing to write past the end of the device (byte %llu)", (unsigned long long)off);
		return -1;
	}
	if (v->o->undo && kb_undo_save(v->o->undo, off, len) < 0) {
		fail_op(v, "undo file: %s", strerror(errno));
		return -1;
	}
	if (kb_pwrite_full(v->fd, buf, len, off) < 0) {
		fail_op(v, "write at byte %llu: %s", (unsigned long long)off, strerror(errno));
		return -1;
	}
	v->r->wrote = true;
	return 0;
}

static int flush(struct vol *v)
{
	if (fsync(v->fd) < 0) {
		fail_op(v, "fsync: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* VolumeDirty goes to disk (and is flushed) before any other change. */
static int mark_dirty(struct vol *v)
{
	if (v->dirty_set)
		return 0;
	v->bs->volume_flags = htole16(exfat_le16(v->bs->volume_flags) | EXFAT_FLAG_VOLUME_DIRTY);
	if (raw_write(v, 0, v->boot, v->ss) < 0 || flush(v) < 0)
		return -1;
	v->dirty_set = true;
	return 0;
}

static int dev_write(struct vol *v, uint64_t off, const void *buf, size_t len)
{
	if (mark_dirty(v) < 0)
		return -1;
	return raw_write(v, off, buf, len);
}

/* ---- clusters and the FAT ------------------------------------------------ */

static bool cluster_ok(const struct vol *v, uint32_t c)
{
	return c >= EXFAT_FIRST_CLUSTER && (uint64_t)c < (uint64_t)v->cc + 2;
}

static uint64_t cluster_pos(const struct vol *v, uint32_t c)
{
	return v->heap_off + ((uint64_t)(c - EXFAT_FIRST_CLUSTER) << v->cshift);
}

static bool is_used(const struct vol *v, uint32_t c)
{
	return exfat_bitmap_test(v->used, c - EXFAT_FIRST_CLUSTER);
}

/* Marking the page lets the bitmap comparison skip the pages (and their
 * page faults) that no claimed cluster ever touched. */
static void mark_used(struct vol *v, uint32_t k)
{
	exfat_bitmap_set(v->used, k);
	v->used_pages[k / 8 / USED_PAGE_BYTES] = 1;
}

static void claim(struct vol *v, uint32_t c)
{
	mark_used(v, c - EXFAT_FIRST_CLUSTER);
}

/* The FAT is read on first use, FAT_CHUNK_ENTRIES entries (256 KiB) at a
 * time, into a zero-filled allocation: an empty volume costs little time or
 * memory, and a full one is still read in large sequential reads. */
static uint32_t fat_get_cached(struct vol *v, uint32_t c)
{
	uint64_t w = c / FAT_WINDOW_ENTRIES;
	unsigned slot = (unsigned)(w % FAT_WINDOWS);
	uint32_t *win = v->fat_win + (size_t)slot * FAT_WINDOW_ENTRIES;
	if (v->fat_win_no[slot] != w + 1) {
		uint64_t first = w * FAT_WINDOW_ENTRIES, entries = (uint64_t)v->cc + 2;
		uint64_t n = entries - first < FAT_WINDOW_ENTRIES ? entries - first : FAT_WINDOW_ENTRIES;
		v->fat_win_no[slot] = 0;
		if (dev_read(v, v->fat_off + first * 4, win, n * 4) < 0)
			return EXFAT_FAT_EOC;
		for (uint64_t k = 0; k < n; k++)
			win[k] = le32toh(win[k]);
		v->fat_win_no[slot] = w + 1;
	}
	return win[c % FAT_WINDOW_ENTRIES];
}

static uint32_t fat_get(struct vol *v, uint32_t c)
{
	if (!v->fat)
		return fat_get_cached(v, c);
	uint64_t chunk = c / FAT_CHUNK_ENTRIES;
	if (!v->fat_loaded[chunk]) {
		uint64_t first = chunk * FAT_CHUNK_ENTRIES, entries = (uint64_t)v->cc + 2;
		uint64_t n = entries - first < FAT_CHUNK_ENTRIES ? entries - first : FAT_CHUNK_ENTRIES;
		v->fat_loaded[chunk] = 1;
		if (dev_read(v, v->fat_off + first * 4, v->fat + first, n * 4) < 0)
			return EXFAT_FAT_EOC;
		for (uint64_t k = first; k < first + n; k++)
			v->fat[k] = le32toh(v->fat[k]);
	}
	return v->fat[c];
}

static void fat_set(struct vol *v, uint32_t c, uint32_t value)
{
	if (!v->fat)
		return; /* read-only: no repair is ever written */
	fat_get(v, c);
	v->fat[c] = value;
	v->fat_dirty[c / FAT_PAGE_ENTRIES] = 1;
}

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

/* Was c claimed by the chain [first, ...) walked so far (count clusters)? */
static bool in_own_chain(const struct vol *v, uint32_t first, bool contiguous, uint32_t count, uint32_t c)
{
	if (contiguous)
		return c >= first && c - first < count;
	uint32_t x = first;
	for (uint32_t i = 0; i < count && cluster_ok(v, x); i++, x = fat_get((struct vol *)v, x))
		if (x == c)
			return true;
	return false;
}

/* Follows and claims a chain of `want` clusters (0: up to the end-of-chain
 * mark, at most `max`). */
static int walk_chain(struct vol *v, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		      bool collect, struct chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	uint64_t limit = want ? want : max;
	uint32_t cap = 0;
	if (collect) {
		cap = (uint32_t)(limit < 64 ? limit : 64);
		ch->list = malloc(sizeof(uint32_t) * (cap ? cap : 1));
		if (!ch->list) {
			fail_op(v, "out of memory");
			return -1;
		}
	}
	uint32_t c = first, prev = 0;
	if (!cluster_ok(v, c)) {
		ch->stop = CH_FIRST;
		ch->bad = c;
		return 0;
	}
	for (;;) {
		if (is_used(v, c)) {
			ch->stop = in_own_chain(v, first, contiguous, ch->count, c) ? CH_LOOP : CH_CROSS;
			ch->bad = c;
			return 0;
		}
		claim(v, c);
		if (collect) {
			if (ch->count == cap) {
				uint32_t *n = realloc(ch->list, sizeof(uint32_t) * (size_t)cap * 2);
				if (!n) {
					fail_op(v, "out of memory");
					return -1;
				}
				ch->list = n, cap *= 2;
			}
			ch->list[ch->count] = c;
		}
		ch->count++;
		ch->last = c;
		uint32_t next = contiguous ? c + 1 : fat_get(v, c);
		if (ch->count == limit) {
			if (want && !contiguous && next != EXFAT_FAT_EOC)
				ch->extra = true;
			else if (!want && !contiguous && next != EXFAT_FAT_EOC) {
				ch->stop = CH_TOO_LONG;
				ch->bad = next;
			}
			return 0;
		}
		if (!contiguous && next == EXFAT_FAT_EOC) {
			if (want)
				ch->stop = CH_EARLY_END;
			return 0;
		}
		if (!cluster_ok(v, next)) {
			ch->stop = CH_BROKEN;
			ch->bad = next;
			if (next == EXFAT_FAT_BAD && !contiguous) {
				/* The mark is on c: c itself is bad, and the chain ends
				 * before it. It stays claimed, so it stays allocated. */
				ch->count--;
				ch->last = prev;
				ch->marked_bad = c;
				if (!ch->count)
					ch->stop = CH_FIRST, ch->bad = c;
			}
			return 0;
		}
		prev = c;
		c = next;
	}
}

static const char *stop_code(enum chain_stop s)
{
	switch (s) {
	case CH_FIRST: return "first-cluster";
	case CH_EARLY_END: return "chain-short";
	case CH_BROKEN: return "chain-broken";
	case CH_LOOP: return "chain-loop";
	case CH_CROSS: return "cross-link";
	case CH_TOO_LONG: return "chain-long";
	default: return "chain";
	}
}

static void describe_stop(const struct vol *v, const struct chain *ch, char *buf, size_t len)
{
	switch (ch->stop) {
	case CH_FIRST:
		if (ch->marked_bad)
			snprintf(buf, len, "first cluster %u is marked bad", ch->marked_bad);
		else
			snprintf(buf, len, "first cluster %u is outside the cluster heap (2..%u)", ch->bad, v->cc + 1);
		break;
	case CH_EARLY_END:
		snprintf(buf, len, "cluster chain ends after %u clusters, shorter than the size", ch->count);
		break;
	case CH_BROKEN:
		if (ch->marked_bad)
			snprintf(buf, len, "cluster chain reaches cluster %u, marked bad, after %u clusters",
				 ch->marked_bad, ch->count);
		else
			snprintf(buf, len, "cluster chain broken after %u clusters: FAT entry of cluster %u is 0x%08x",
				 ch->count, ch->last, ch->bad);
		break;
	case CH_LOOP:
		snprintf(buf, len, "cluster chain loops back to cluster %u after %u clusters", ch->bad, ch->count);
		break;
	case CH_CROSS:
		snprintf(buf, len, "cluster %u (after %u clusters) already belongs to another file", ch->bad, ch->count);
		break;
	case CH_TOO_LONG:
		snprintf(buf, len, "cluster chain longer than %u clusters", ch->count);
		break;
	default:
		snprintf(buf, len, "cluster chain damaged");
	}
}

/* ---- paths and names ----------------------------------------------------- */

static char *child_path(const char *parent, const uint16_t *name, unsigned len)
{
	char utf8[EXFAT_MAX_NAME_LEN * 3 + 1];
	size_t n = 0;
	if (kb_utf16_to_utf8(name, len, utf8, sizeof(utf8), &n, true) < 0)
		snprintf(utf8, sizeof(utf8), "?");
	for (char *c = utf8; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?'; /* printable paths in messages */
	size_t plen = strlen(parent);
	if (plen + 1 + strlen(utf8) + 1 > PATH_CAP)
		return strdup(parent);
	size_t cap = plen + strlen(utf8) + 2;
	char *p = malloc(cap);
	if (!p)
		return NULL;
	memcpy(p, parent, plen);
	size_t at = plen;
	if (!plen || parent[plen - 1] != '/')
		p[at++] = '/';
	memcpy(p + at, utf8, strlen(utf8) + 1);
	return p;
}

static bool invalid_char(uint16_t c)
{
	return c < 0x20 || c == '"' || c == '*' || c == '/' || c == ':' || c == '<' || c == '>' ||
	       c == '?' || c == '\\' || c == '|';
}

static bool is_dot_name(const uint16_t *n, unsigned len)
{
	return (len == 1 && n[0] == '.') || (len == 2 && n[0] == '.' && n[1] == '.');
}

/* The up-cased names of one directory, for case-insensitive duplicates:
 * an open-addressing table over one growing pool of code units. */
struct name_set {
	struct name_slot {
		uint32_t hash;
		uint16_t len;
		size_t at;          /* offset in pool */
	} *slots;
	size_t cap, used;
	uint16_t *pool;
	size_t pool_used, pool_cap;
};

static uint32_t fnv(const uint16_t *n, unsigned len)
{
	uint32_t h = 2166136261u;
	for (unsigned i = 0; i < len; i++)
		h = (h ^ n[i]) * 16777619u;
	return h | 1;
}

static struct name_slot *name_find(struct name_set *s, const uint16_t *up, unsigned len, uint32_t h)
{
	size_t i = h & (s->cap - 1);
	while (s->slots[i].hash) {
		if (s->slots[i].hash == h && s->slots[i].len == len && !memcmp(s->pool + s->slots[i].at, up, len * 2))
			return &s->slots[i];
		i = (i + 1) & (s->cap - 1);
	}
	return &s->slots[i];
}

static bool name_contains(struct name_set *s, const uint16_t *up, unsigned len)
{
	return s->cap && name_find(s, up, len, fnv(up, len))->hash;
}

static int name_add(struct name_set *s, const uint16_t *up, unsigned len)
{
	if ((s->used + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct name_slot *old = s->slots;
		size_t ocap = s->cap;
		s->slots = calloc(ncap, sizeof(*s->slots));
		if (!s->slots) {
			s->slots = old;
			return -1;
		}
		s->cap = ncap;
		for (size_t i = 0; i < ocap; i++)
			if (old[i].hash) {
				size_t k = old[i].hash & (ncap - 1);
				while (s->slots[k].hash)
					k = (k + 1) & (ncap - 1);
				s->slots[k] = old[i];
			}
		free(old);
	}
	uint32_t h = fnv(up, len);
	struct name_slot *slot = name_find(s, up, len, h);
	if (slot->hash)
		return 0;
	if (s->pool_used + len > s->pool_cap) {
		size_t ncap = s->pool_cap ? s->pool_cap * 2 : 4096;
		while (ncap < s->pool_used + len)
			ncap *= 2;
		uint16_t *n = realloc(s->pool, ncap * sizeof(uint16_t));
		if (!n)
			return -1;
		s->pool = n, s->pool_cap = ncap;
	}
	memcpy(s->pool + s->pool_used, up, len * 2);
	*slot = (struct name_slot){ h, (uint16_t)len, s->pool_used };
	s->pool_used += len;
	s->used++;
	return 0;
}

static void name_set_free(struct name_set *s)
{
	free(s->slots);
	free(s->pool);
	memset(s, 0, sizeof(*s));
}

/* Makes a name unique in the directory (and valid) within `cap` code units:
 * NAME~N, shortening NAME when there is no room. Returns the new length, 0
 * when nothing fits. */
static unsigned unique_name(struct vol *v, struct name_set *names, uint16_t *name, unsigned len, unsigned cap)
{
	uint16_t base[EXFAT_MAX_NAME_LEN], cand[EXFAT_MAX_NAME_LEN], up[EXFAT_MAX_NAME_LEN];
	memcpy(base, name, len * 2);
	for (unsigned n = 1; n < 100000; n++) {
		char suffix[16];
		unsigned slen = (unsigned)snprintf(suffix, sizeof(suffix), "~%u", n);
		if (slen >= cap)
			return 0;
		unsigned keep = len + slen <= cap ? len : cap - slen;
		memcpy(cand, base, keep * 2);
		for (unsigned i = 0; i < slen; i++)
			cand[keep + i] = (uint8_t)suffix[i];
		unsigned clen = keep + slen;
		exfat_upcase_name(v->upcase, cand, clen, up);
		if (!name_contains(names, up, clen)) {
			memcpy(name, cand, clen * 2);
			return clen;
		}
	}
	return 0;
}

/* A file's path, built only when a message needs it. */
struct fpath {
	const char *dir;
	const uint16_t *name;
	unsigned len;
	char *s;
};

static const char *fp(struct fpath *p)
{
	if (!p->s)
		p->s = child_path(p->dir, p->name, p->len);
	return p->s ? p->s : p->dir;
}

/* ---- directory entries --------------------------------------------------- */

struct dir_ctx {
	struct vol *v;
	const struct dir_job *job;
	uint8_t *buf;
	uint32_t nentries;
	uint8_t *dirty;          /* per cluster */
	struct name_set names;
	bool root;
};

static uint8_t *entry_at(struct dir_ctx *d, uint32_t i)
{
	return d->buf + (size_t)i * EXFAT_ENTRY_SIZE;
}

static uint64_t entry_pos(struct dir_ctx *d, uint32_t i)
{
	uint64_t byte = (uint64_t)i * EXFAT_ENTRY_SIZE;
	return cluster_pos(d->v, d->job->clusters[byte >> d->v->cshift]) + (byte & (d->v->csize - 1));
}

static void touch(struct dir_ctx *d, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count && i < d->nentries; i++)
		d->dirty[((uint64_t)i * EXFAT_ENTRY_SIZE) >> d->v->cshift] = 1;
}

static void delete_entries(struct dir_ctx *d, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count && i < d->nentries; i++) {
		uint8_t *t = entry_at(d, i);
		/* Type 0x80 without InUse would read as an end-of-directory mark. */
		*t = *t & (uint8_t)~EXFAT_ENTRY_IN_USE ? *t & (uint8_t)~EXFAT_ENTRY_IN_USE : 0x01;
	}
	touch(d, first, count);
}

static int push_dir(struct vol *v, char *path, uint32_t *clusters, uint32_t count, uint32_t depth)
{
	if (v->nstack == v->capstack) {
		size_t ncap = v->capstack ? v->capstack * 2 : 16;
		struct dir_job *n = realloc(v->stack, ncap * sizeof(*n));
		if (!n) {
			fail_op(v, "out of memory");
			free(path), free(clusters);
			return -1;
		}
		v->stack = n, v->capstack = ncap;
	}
	v->stack[v->nstack++] = (struct dir_job){ path, clusters, count, depth };
	return 0;
}

/* Field checks of a timestamp (no time zone conversion needed). */
static bool timestamp_ok(uint32_t stamp, uint8_t ms10, uint8_t utc)
{
	static const uint8_t days[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned sec2 = stamp & 31, min = stamp >> 5 & 63, hour = stamp >> 11 & 31;
	unsigned day = stamp >> 16 & 31, month = stamp >> 21 & 15, year = 1980 + (stamp >> 25);
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (ms10 > 199 || sec2 > 29 || min > 59 || hour > 23 || month < 1 || month > 12 || day < 1 ||
	    day > days[month - 1] || (month == 2 && day == 29 && !leap))
		return false;
	if (utc & 0x80) {
		int off = (int8_t)(uint8_t)(utc << 1) >> 1;
		if (off < -48 || off > 56)
			return false;
	}
	return true;
}

#define DEFAULT_STAMP 0x00210000u /* 1980-01-01 00:00:00 */

static void check_timestamps(struct dir_ctx *d, uint32_t i, struct fpath *path, bool *changed)
{
	uint8_t *e = entry_at(d, i);
	/* Byte offsets in the file entry: time, 10 ms increment (0: none), UTC offset. */
	static const struct { uint8_t stamp, ms10, utc; const char *what; } t[3] = {
		{ offsetof(struct exfat_file_entry, create_time), offsetof(struct exfat_file_entry, create_10ms),
		  offsetof(struct exfat_file_entry, create_utc_offset), "creation" },
		{ offsetof(struct exfat_file_entry, modify_time), offsetof(struct exfat_file_entry, modify_10ms),
		  offsetof(struct exfat_file_entry, modify_utc_offset), "modification" },
		{ offsetof(struct exfat_file_entry, access_time), 0,
		  offsetof(struct exfat_file_entry, access_utc_offset), "access" },
	};
	for (int k = 0; k < 3; k++) {
		uint32_t stamp = exfat_get_le32(e + t[k].stamp);
		uint8_t ms = t[k].ms10 ? e[t[k].ms10] : 0;
		if (timestamp_ok(stamp, ms, e[t[k].utc]))
			continue;
		if (!problem(d->v, "timestamp", fp(path), entry_pos(d, i), true, "set a valid time",
			     "invalid %s time 0x%08x (10ms %u, UTC offset 0x%02x)", t[k].what, stamp, ms, e[t[k].utc]))
			continue;
		uint32_t good = DEFAULT_STAMP;
		for (int o = 0; o < 3; o++)
			if (o != k && timestamp_ok(exfat_get_le32(e + t[o].stamp), 0, 0)) {
				good = exfat_get_le32(e + t[o].stamp);
				break;
			}
		exfat_put_le32(e + t[k].stamp, good);
		if (t[k].ms10)
			e[t[k].ms10] = 0;
		e[t[k].utc] = 0;
		*changed = true;
	}
}

/* Checks the chain of a stream entry and fixes its sizes; claims clusters.
 * For directories, *dir_clusters gets the list. */
static int check_stream_data(struct dir_ctx *d, uint32_t si, struct fpath *path, bool is_dir,
			     uint32_t **dir_clusters, uint32_t *dir_count, bool *changed)
{
	struct vol *v = d->v;
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)entry_at(d, si);
	uint64_t pos = entry_pos(d, si);
	uint64_t len = exfat_le64(st->data_length), vdl = exfat_le64(st->valid_data_length);
	uint32_t first = exfat_le32(st->first_cluster);
	bool contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;
	char why[200];

	*dir_clusters = NULL;
	*dir_count = 0;
	if (len == 0) {
		/* A cluster in the heap may start a chain of real data (a lost size):
		 * letting it go is not for -p, which leaves it for -y or -s. */
		if (first != 0 && problem(v, "first-cluster", fp(path), pos, !cluster_ok(v, first),
					  "set the first cluster to 0",
					  "empty %s has first cluster %u", is_dir ? "directory" : "file", first)) {
			st->first_cluster = 0;
			st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			*changed = true;
		} else if (first != 0 && cluster_ok(v, first)) {
			/* Left as it is, its data shows up as orphans: -p must not free
			 * them behind the skipped repair. (Claiming the chain instead
			 * could make a later file that now owns those clusters look
			 * cross-linked, and a contiguous file has no chain to follow.) */
			v->lost_extent = true;
		}
		if (vdl != 0 && problem(v, "valid-length", fp(path), pos, true, "set ValidDataLength to 0",
					"ValidDataLength %llu of an empty file", (unsigned long long)vdl)) {
			st->valid_data_length = 0;
			*changed = true;
		}
		return 0;
	}
	if (is_dir && (len & (v->csize - 1) || len > EXFAT_MAX_DIR_BYTES)) {
		uint64_t fixed = len > EXFAT_MAX_DIR_BYTES ? EXFAT_MAX_DIR_BYTES : (len + v->csize - 1) & ~(v->csize - 1);
		if (problem(v, "dir-size", fp(path), pos, false, "round the size to whole clusters",
			    "directory size %llu is not a multiple of the cluster size or above 256 MiB",
			    (unsigned long long)len)) {
			st->data_length = htole64(fixed);
			*changed = true;
		}
		len = fixed;
	}
	if (first == 0) {
		if (problem(v, "first-cluster", fp(path), pos, false, "truncate to 0 bytes",
			    "size %llu but no first cluster", (unsigned long long)len)) {
			st->data_length = 0, st->valid_data_length = 0;
			st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			*changed = true;
		}
		return 0;
	}
	uint64_t want = (len + v->csize - 1) >> v->cshift;
	struct chain ch;
	if (walk_chain(v, first, contiguous, want, 0, is_dir, &ch) < 0)
		return -1;
	if (ch.count < want) {
		uint64_t keep = (uint64_t)ch.count << v->cshift;
		if (keep > len)
			keep = len;
		describe_stop(v, &ch, why, sizeof(why));
		char repair[64];
		snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)keep);
		if (problem(v, stop_code(ch.stop), fp(path), pos, false, repair, "%s", why)) {
			if (ch.count && !contiguous)
				fat_set(v, ch.last, EXFAT_FAT_EOC);
			st->data_length = htole64(keep);
			if (vdl > keep)
				st->valid_data_length = htole64(keep);
			if (!ch.count) {
				st->first_cluster = 0;
				st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			}
			*changed = true;
			len = keep;
		}
	} else if (ch.extra) {
		uint32_t next = fat_get(v, ch.last);
		if (next == EXFAT_FAT_FREE ? problem(v, "chain-long", fp(path), pos, true, "end the chain at the file size",
						     "no end-of-chain mark after the %llu clusters the size needs "
						     "(FAT entry of %u is 0, free)", (unsigned long long)want, ch.last)
					   : problem(v, "chain-long", fp(path), pos, true, "end the chain at the file size",
						     "cluster chain continues past the %llu clusters the size needs "
						     "(FAT entry of %u is 0x%08x)", (unsigned long long)want, ch.last, next))
			fat_set(v, ch.last, EXFAT_FAT_EOC);
	}
	vdl = exfat_le64(st->valid_data_length);
	len = exfat_le64(st->data_length);
	if (is_dir ? vdl != len : vdl > len) {
		if (problem(v, "valid-length", fp(path), pos, true, "set ValidDataLength to DataLength",
			    "ValidDataLength %llu %s DataLength %llu", (unsigned long long)vdl,
			    is_dir ? "differs from" : "exceeds", (unsigned long long)len)) {
			st->valid_data_length = htole64(len);
			*changed = true;
		}
	}
	if (is_dir) {
		*dir_clusters = ch.list;
		*dir_count = ch.count;
	} else {
		free(ch.list);
	}
	return 0;
}

/* Rewrites the name entries of a set with `name` (len units). */
static void store_name(struct dir_ctx *d, uint32_t i, unsigned names, const uint16_t *name, unsigned len)
{
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)entry_at(d, i + 1);
	for (unsigned k = 0; k < names; k++) {
		struct exfat_name_entry *ne = (struct exfat_name_entry *)entry_at(d, i + 2 + k);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++) {
			unsigned at = k * EXFAT_NAME_CHARS_PER_ENTRY + c;
			exfat_put_le16(&ne->name[c], at < len ? name[at] : 0);
		}
	}
	st->name_length = (uint8_t)len;
}

/* Checks the file entry set at entry i; returns the number of entries it spans. */
static uint32_t check_file_set(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	const char *dpath = d->job->path;
	uint8_t *fe_raw = entry_at(d, i);
	struct exfat_file_entry *fe = (struct exfat_file_entry *)fe_raw;
	uint64_t pos = entry_pos(d, i);
	unsigned sc = fe->secondary_count;

	if (i + 1 >= d->nentries || entry_at(d, i + 1)[0] != EXFAT_ENTRY_STREAM) {
		if (problem(v, "stream-missing", dpath, pos, false, "delete the entry",
			    "file entry without a stream extension entry (next entry type 0x%02x)",
			    i + 1 < d->nentries ? entry_at(d, i + 1)[0] : 0))
			delete_entries(d, i, 1);
		return 1;
	}
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)entry_at(d, i + 1);
	/* Name entries follow the stream; then benign secondaries. */
	unsigned names = 0, benign = 0;
	while (i + 2 + names < d->nentries && names < 17 && entry_at(d, i + 2 + names)[0] == EXFAT_ENTRY_NAME)
		names++;
	while (i + 2 + names + benign < d->nentries && 1 + names + benign < EXFAT_MAX_SECONDARY &&
	       (entry_at(d, i + 2 + names + benign)[0] & 0xE0) == 0xE0 && 1 + names + benign < sc)
		benign++;
	bool changed = false;
	if (benign && problem(v, "vendor-entry", dpath, entry_pos(d, i + 2 + names), false, "delete them",
			      "%u benign secondary (vendor) entries in a file's set, first type 0x%02x; "
			      "exfatprogs and older Linux drivers reject such sets", benign,
			      entry_at(d, i + 2 + names)[0])) {
		delete_entries(d, i + 2 + names, benign);
		benign = 0;
		changed = true;
	}
	unsigned actual = 1 + names + benign;
	uint32_t span = 1 + actual;

	uint16_t name[EXFAT_MAX_NAME_LEN + 15];
	for (unsigned k = 0; k < names; k++) {
		struct exfat_name_entry *ne = (struct exfat_name_entry *)entry_at(d, i + 2 + k);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++)
			name[k * EXFAT_NAME_CHARS_PER_ENTRY + c] = exfat_get_le16(&ne->name[c]);
	}
	unsigned cap = names * EXFAT_NAME_CHARS_PER_ENTRY;
	if (cap > EXFAT_MAX_NAME_LEN)
		cap = EXFAT_MAX_NAME_LEN;
	unsigned nl = st->name_length;
	struct fpath path = { dpath, name, 0, NULL };

	/* The set's checksum as stored, over what SecondaryCount covers. */
	bool csum_bad = false;
	uint16_t stored = exfat_le16(fe->set_checksum);
	if (i + 1 + sc <= d->nentries && sc >= 2)
		csum_bad = exfat_set_checksum(fe_raw, 1 + sc) != stored;

	if (names == 0) {
		/* No name at all: give it one in a new name entry is impossible
		 * without space, so the set cannot be kept. */
		if (problem(v, "name-missing", dpath, pos, false, "delete the entry set",
			    "file entry set without a file name entry"))
			delete_entries(d, i, 2);
		return 2;
	}
	if (nl == 0 || nl > cap || nl <= (names - 1) * EXFAT_NAME_CHARS_PER_ENTRY) {
		unsigned real = 0;
		while (real < cap && name[real])
			real++;
		if (real == 0)
			real = 1, name[0] = '_';
		unsigned need = (real + EXFAT_NAME_CHARS_PER_ENTRY - 1) / EXFAT_NAME_CHARS_PER_ENTRY;
		if (problem(v, "name-length", dpath, pos, true, "set NameLength from the name entries",
			    "NameLength %u does not match %u name entries (name has %u characters)", nl, names, real)) {
			st->name_length = (uint8_t)real;
			if (!name[0])
				name[0] = '_';
			changed = true;
		}
		nl = real;
		if (need < names) {
			/* The trailing name entries hold nothing: they leave the set. */
			if (problem(v, "secondary-count", dpath, pos, true, "drop the empty name entries",
				    "%u name entries for a %u-character name", names, nl))
				delete_entries(d, i + 2 + need, names - need + benign);
			names = need;
			benign = 0;
			actual = 1 + names;
			span = 1 + actual;
			changed = true;
		}
	}
	path.len = nl;
	if (sc != actual) {
		if (problem(v, "secondary-count", fp(&path), pos, true, "set SecondaryCount to the entries present",
			    "SecondaryCount %u, but the set has %u secondary entries", sc, actual)) {
			fe->secondary_count = (uint8_t)actual;
			changed = true;
		}
	} else if (csum_bad) {
		if (problem(v, "set-checksum", fp(&path), pos, true, "recompute the checksum",
			    "SetChecksum 0x%04x, expected 0x%04x", stored, exfat_set_checksum(fe_raw, span)))
			changed = true;
	}

	/* Names: invalid characters, dots, hash, duplicates. */
	bool bad_chars = false;
	for (unsigned c = 0; c < nl; c++)
		bad_chars |= invalid_char(name[c]);
	uint16_t newname[EXFAT_MAX_NAME_LEN];
	memcpy(newname, name, nl * 2);
	unsigned newlen = nl;
	bool rename = false;
	if (bad_chars || is_dot_name(name, nl)) {
		for (unsigned c = 0; c < newlen; c++)
			if (invalid_char(newname[c]) || is_dot_name(name, nl))
				newname[c] = '_';
		rename = true;
	}
	uint16_t up[EXFAT_MAX_NAME_LEN];
	exfat_upcase_name(v->upcase, newname, newlen, up);
	if (name_contains(&d->names, up, newlen)) {
		newlen = unique_name(v, &d->names, newname, newlen, cap);
		rename = true;
	}
	if (rename) {
		char *np = newlen ? child_path(dpath, newname, newlen) : NULL;
		const char *code = bad_chars ? "invalid-name" : is_dot_name(name, nl) ? "dot-name" : "duplicate-name";
		char repair[PATH_CAP + 16];
		snprintf(repair, sizeof(repair), "rename to %s", np ? np : "?");
		if (newlen && problem(v, code, fp(&path), pos, false, repair, "%s", bad_chars ? "name has invalid characters" :
				      is_dot_name(name, nl) ? "name is \".\" or \"..\"" :
				      "name already used in this directory (ignoring case)")) {
			store_name(d, i, names, newname, newlen);
			memcpy(name, newname, newlen * 2);
			nl = newlen;
			changed = true;
			free(path.s);
			path.s = np;
			path.len = nl;
			np = NULL;
		} else if (!newlen) {
			problem(v, code, fp(&path), pos, false, NULL, "name cannot be made valid and unique");
		}
		free(np);
		exfat_upcase_name(v->upcase, name, nl, up);
	}
	if (name_add(&d->names, up, nl) < 0)
		fail_op(v, "out of memory");
	uint16_t hash = exfat_name_hash(up, nl);
	if (exfat_le16(st->name_hash) != hash &&
	    problem(v, "name-hash", fp(&path), pos, true, "recompute the hash",
		    "NameHash 0x%04x, expected 0x%04x", exfat_le16(st->name_hash), hash)) {
		st->name_hash = htole16(hash);
		changed = true;
	}

	check_timestamps(d, i, &path, &changed);
	bool is_dir = exfat_le16(fe->attributes) & EXFAT_ATTR_DIRECTORY;
	uint32_t *clusters = NULL, count = 0;
	check_stream_data(d, i + 1, &path, is_dir, &clusters, &count, &changed);

	if (changed) {
		fe->set_checksum = htole16(exfat_set_checksum(fe_raw, span));
		touch(d, i, span);
	}
	if (is_dir) {
		v->r->directories++;
		if (count) {
			fp(&path);
			if (!path.s) {
				fail_op(v, "out of memory");
				free(clusters);
				return span;
			}
			push_dir(v, path.s, clusters, count, d->job->depth + 1);
			path.s = NULL;
		} else {
			free(clusters);
		}
	} else {
		v->r->files++;
	}
	free(path.s);
	return span;
}

/* Root-only entries: allocation bitmap and up-case table. */
static void load_bitmap(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	struct exfat_bitmap_entry *e = (struct exfat_bitmap_entry *)entry_at(d, i);
	uint64_t pos = entry_pos(d, i);
	uint64_t need = ((uint64_t)v->cc + 7) / 8;
	uint64_t len = exfat_le64(e->data_length);
	if (v->bm_found) {
		if (problem(v, "bitmap-duplicate", "/", pos, false, "delete the extra entry",
			    "second allocation bitmap entry (one FAT)"))
			delete_entries(d, i, 1);
		return;
	}
	if (len != need) {
		if (problem(v, "bitmap-size", "/", pos, true, "set the size it must have",
			    "allocation bitmap size %llu, expected %llu for %u clusters",
			    (unsigned long long)len, (unsigned long long)need, v->cc)) {
			e->data_length = htole64(need);
			touch(d, i, 1);
		}
	}
	struct chain ch;
	uint64_t want = (need + v->csize - 1) >> v->cshift;
	if (walk_chain(v, exfat_le32(e->first_cluster), false, want, 0, true, &ch) < 0)
		return;
	if (ch.count < want) {
		char why[200];
		describe_stop(v, &ch, why, sizeof(why));
		problem(v, "bitmap-chain", "/", pos, false, NULL, "allocation bitmap: %s", why);
		fail(v, "the allocation bitmap is unusable");
		free(ch.list);
		return;
	}
	if (ch.extra && problem(v, "chain-long", "/", pos, true, "end the chain at the bitmap size",
				"allocation bitmap chain continues past %llu clusters", (unsigned long long)want))
		fat_set(v, ch.last, EXFAT_FAT_EOC);
	v->bm_found = true;
	v->bm_first = exfat_le32(e->first_cluster);
	v->bm_bytes = need;
	v->bm_clusters = ch.list;
	v->bm_count = ch.count;
	/* A check that cannot write compares the bitmap piece by piece at the
	 * end (check_bitmap_streamed) instead of holding all of it. */
	if (!v->o->writable && !v->o->rescue)
		return;
	v->disk_bm = calloc(1, ch.count * v->csize + 8);
	v->bm_dirty = calloc(ch.count, 1);
	if (!v->disk_bm || !v->bm_dirty) {
		fail_op(v, "out of memory");
		return;
	}
	for (uint32_t k = 0; k < ch.count;) {
		uint32_t run = 1;
		while (k + run < ch.count && ch.list[k + run] == ch.list[k] + run && run < 2048)
			run++;
		if (dev_read(v, cluster_pos(v, ch.list[k]), v->disk_bm + ((uint64_t)k << v->cshift),
			     (size_t)run << v->cshift) < 0)
			return;
		k += run;
	}
}

static int write_default_upcase(struct vol *v, const uint32_t *clusters, uint32_t count)
{
	uint8_t table[EXFAT_UPCASE_DEFAULT_BYTES];
	exfat_upcase_default_build(table);
	uint64_t done = 0;
	uint8_t *buf = calloc(1, v->csize);
	if (!buf)
		return -1;
	for (uint32_t k = 0; k < count && done < sizeof(table); k++) {
		memset(buf, 0, v->csize);
		uint64_t n = sizeof(table) - done < v->csize ? sizeof(table) - done : v->csize;
		memcpy(buf, table + done, n);
		if (dev_write(v, cluster_pos(v, clusters[k]), buf, v->csize) < 0)
			break;
		done += n;
	}
	free(buf);
	return done == sizeof(table) ? 0 : -1;
}

static void load_upcase(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	struct exfat_upcase_entry *e = (struct exfat_upcase_entry *)entry_at(d, i);
	uint64_t pos = entry_pos(d, i);
	uint64_t len = exfat_le64(e->data_length);
	if (v->upcase_found) {
		if (problem(v, "upcase-duplicate", "/", pos, false, "delete the extra entry",
			    "second up-case table entry"))
			delete_entries(d, i, 1);
		return;
	}
	v->upcase_found = true;
	uint64_t want = len ? (len + v->csize - 1) >> v->cshift : 1;
	if (want > (MAX_UPCASE_BYTES >> v->cshift) + 1)
		want = (MAX_UPCASE_BYTES >> v->cshift) + 1;
	struct chain ch;
	if (walk_chain(v, exfat_le32(e->first_cluster), false, want, 0, true, &ch) < 0) {
		exfat_upcase_default_map(v->upcase);
		return;
	}
	const char *why = NULL;
	char reason[200] = "";
	uint8_t *table = NULL;
	if (ch.count < want) {
		describe_stop(v, &ch, reason, sizeof(reason));
	} else if (len == 0 || len > MAX_UPCASE_BYTES) {
		snprintf(reason, sizeof(reason), "size %llu out of range", (unsigned long long)len);
	} else if (!(table = malloc(len))) {
		fail_op(v, "out of memory");
		exfat_upcase_default_map(v->upcase);
	} else {
		/* Only the table's own bytes, not the rest of its last cluster. */
		for (uint32_t k = 0; k < ch.count && ((uint64_t)k << v->cshift) < len; k++) {
			uint64_t at = (uint64_t)k << v->cshift;
			if (dev_read(v, cluster_pos(v, ch.list[k]), table + at,
				     len - at < v->csize ? len - at : v->csize) < 0)
				break;
		}
		uint32_t sum = exfat_checksum32(table, len, 0);
		if (sum != exfat_le32(e->table_checksum))
			snprintf(reason, sizeof(reason), "TableChecksum 0x%08x, computed 0x%08x",
				 exfat_le32(e->table_checksum), sum);
		else if (exfat_upcase_expand(table, len, v->upcase, &why) < 0)
			snprintf(reason, sizeof(reason), "%s", why);
	}
	free(table);
	if (ch.extra && problem(v, "chain-long", "/", pos, true, "end the chain at the table size",
				"up-case table chain continues past %llu clusters", (unsigned long long)want))
		fat_set(v, ch.last, EXFAT_FAT_EOC);
	if (reason[0]) {
		exfat_upcase_default_map(v->upcase);
		uint64_t room = (uint64_t)ch.count << v->cshift;
		bool fits = room >= EXFAT_UPCASE_DEFAULT_BYTES;
		if (problem(v, "upcase-table", "/", pos, false, fits ? "write the default up-case table" : NULL,
			    "up-case table damaged: %s", reason) &&
		    write_default_upcase(v, ch.list, ch.count) == 0) {
			uint32_t used = (EXFAT_UPCASE_DEFAULT_BYTES + v->csize - 1) >> v->cshift;
			exfat_build_upcase_entry(e, exfat_le32(e->first_cluster), EXFAT_UPCASE_DEFAULT_BYTES,
						 EXFAT_UPCASE_DEFAULT_CHECKSUM);
			if (used < ch.count)
				fat_set(v, ch.list[used - 1], EXFAT_FAT_EOC);
			/* Clusters past the new end are no longer the table's. */
			for (uint32_t k = used; k < ch.count; k++)
				exfat_bitmap_clear(v->used, ch.list[k] - EXFAT_FIRST_CLUSTER);
			touch(d, i, 1);
		}
	}
	free(ch.list);
}

static void check_label(struct dir_ctx *d, uint32_t i)
{
	struct exfat_label_entry *e = (struct exfat_label_entry *)entry_at(d, i);
	if (e->char_count > EXFAT_MAX_LABEL_LEN &&
	    problem(d->v, "label-length", "/", entry_pos(d, i), true, "cut the label to 11 characters",
		    "volume label length %u above 11", e->char_count)) {
		e->char_count = EXFAT_MAX_LABEL_LEN;
		touch(d, i, 1);
	}
}

static void check_guid(struct dir_ctx *d, uint32_t i)
{
	uint8_t *e = entry_at(d, i);
	struct exfat_guid_entry *g = (struct exfat_guid_entry *)e;
	uint16_t want = exfat_set_checksum(e, 1);
	if (g->secondary_count == 0 && exfat_le16(g->set_checksum) != want &&
	    problem(d->v, "set-checksum", "/", entry_pos(d, i), true, "recompute the checksum",
		    "volume GUID entry SetChecksum 0x%04x, expected 0x%04x", exfat_le16(g->set_checksum), want)) {
		g->set_checksum = htole16(want);
		touch(d, i, 1);
	}
}

static int read_dir(struct vol *v, const struct dir_job *job, uint8_t *buf)
{
	for (uint32_t k = 0; k < job->count;) {
		uint32_t run = 1;
		while (k + run < job->count && job->clusters[k + run] == job->clusters[k] + run && run < 2048)
			run++;
		if (dev_read(v, cluster_pos(v, job->clusters[k]), buf + ((uint64_t)k << v->cshift),
			     (size_t)run << v->cshift) < 0)
			return -1;
		k += run;
	}
	return 0;
}

static void write_dir(struct dir_ctx *d)
{
	struct vol *v = d->v;
	for (uint32_t k = 0; k < d->job->count; k++)
		if (d->dirty[k])
			dev_write(v, cluster_pos(v, d->job->clusters[k]), d->buf + ((uint64_t)k << v->cshift), v->csize);
}

/* Entries past the end-of-directory mark are unused by definition: every
 * implementation stops reading at the mark, so they are zeroed. */
static void check_after_end(struct dir_ctx *d, uint32_t eod)
{
	uint32_t junk = 0, live = 0;
	for (uint32_t k = eod + 1; k < d->nentries; k++) {
		uint8_t t = entry_at(d, k)[0];
		junk += t != 0;
		live += (t & EXFAT_ENTRY_IN_USE) != 0;
	}
	if (junk && problem(d->v, "entry-after-end", d->job->path, entry_pos(d, eod), !live,
			    "zero them", "%u entries after the end-of-directory mark (%u marked in use)", junk, live)) {
		for (uint32_t k = eod + 1; k < d->nentries; k++)
			if (entry_at(d, k)[0]) {
				memset(entry_at(d, k), 0, EXFAT_ENTRY_SIZE);
				touch(d, k, 1);
			}
	}
}

static void check_dir(struct vol *v, struct dir_job *job, bool root)
{
	struct dir_ctx d = { .v = v, .job = job, .root = root };
	uint64_t bytes = (uint64_t)job->count << v->cshift;
	d.buf = malloc(bytes);
	d.dirty = calloc(job->count, 1);
	d.nentries = (uint32_t)(bytes / EXFAT_ENTRY_SIZE);
	if (!d.buf || !d.dirty) {
		fail_op(v, "out of memory");
		goto out;
	}
	if (read_dir(v, job, d.buf) < 0)
		goto out;
	if (root) {
		/* The bitmap and up-case table come before any name is checked. */
		for (uint32_t i = 0; i < d.nentries && entry_at(&d, i)[0] != EXFAT_ENTRY_EOD; i++) {
			uint8_t t = entry_at(&d, i)[0];
			if (t == EXFAT_ENTRY_BITMAP)
				load_bitmap(&d, i);
			else if (t == EXFAT_ENTRY_UPCASE)
				load_upcase(&d, i);
		}
		if (!v->bm_found && !v->failed) {
			problem(v, "bitmap-missing", "/", cluster_pos(v, job->clusters[0]), false, NULL,
				"no allocation bitmap entry in the root directory");
			fail(v, "the allocation bitmap is missing");
		}
		if (!v->upcase_found) {
			/* The map is otherwise set by load_upcase, from the table or
			 * the default one; it is only needed from here on. */
			exfat_upcase_default_map(v->upcase);
			problem(v, "upcase-missing", "/", cluster_pos(v, job->clusters[0]), false, NULL,
				"no up-case table entry in the root directory");
		}
	}
	for (uint32_t i = 0; i < d.nentries && !v->failed && !v->quit;) {
		uint8_t t = entry_at(&d, i)[0];
		if (t == EXFAT_ENTRY_EOD) {
			check_after_end(&d, i);
			break;
		}
		if (!(t & EXFAT_ENTRY_IN_USE)) {
			i++;
			continue;
		}
		switch (t) {
		case EXFAT_ENTRY_FILE:
			i += check_file_set(&d, i);
			continue;
		case EXFAT_ENTRY_BITMAP:
		case EXFAT_ENTRY_UPCASE:
			if (!root && problem(v, "misplaced-entry", job->path, entry_pos(&d, i), false,
					     "delete the entry", "%s entry outside the root directory",
					     t == EXFAT_ENTRY_BITMAP ? "allocation bitmap" : "up-case table"))
				delete_entries(&d, i, 1);
			i++;
			continue;
		case EXFAT_ENTRY_LABEL:
			if (root)
				check_label(&d, i);
			else if (problem(v, "misplaced-entry", job->path, entry_pos(&d, i), true, "delete the entry",
					 "volume label entry outside the root directory"))
				delete_entries(&d, i, 1);
			i++;
			continue;
		case EXFAT_ENTRY_GUID:
			if (!root)
				break;
			check_guid(&d, i);
			i++;
			continue;
		}
		if (t & EXFAT_ENTRY_SECONDARY) {
			/* A secondary entry with no primary before it. */
			if (problem(v, "orphan-entry", job->path, entry_pos(&d, i), true, "delete the entry",
				    "secondary entry type 0x%02x outside any entry set", t))
				delete_entries(&d, i, 1);
			i++;
		} else if (t & EXFAT_ENTRY_BENIGN) {
			/* Benign primaries other than the root's volume GUID: the
			 * specification lets readers skip them, but no other
			 * implementation accepts them, so they are reported. */
			if (problem(v, "unknown-entry", job->path, entry_pos(&d, i), false, "delete the entry",
				    "unknown benign primary entry type 0x%02x", t))
				delete_entries(&d, i, 1);
			i++;
		} else {
			if (problem(v, "unknown-entry", job->path, entry_pos(&d, i), false, "delete the entry",
				    "unknown critical entry type 0x%02x", t))
				delete_entries(&d, i, 1);
			i++;
		}
	}
	if (!v->failed)
		write_dir(&d);
out:
	name_set_free(&d.names);
	free(d.buf);
	free(d.dirty);
}

/* ---- boot region --------------------------------------------------------- */

static int check_region(const uint8_t *region, unsigned ss, const char **why)
{
	const struct exfat_boot_sector *bs = (const void *)region;
	if (exfat_boot_sector_check(bs, why) < 0)
		return -1;
	if (exfat_sector_size(bs) != ss) {
		*why = "sector size differs";
		return -1;
	}
	for (unsigned s = 1; s <= EXFAT_EXT_BOOT_SECTORS; s++)
		if (exfat_get_le32(region + (s + 1) * ss - 4) != 0xAA550000u) {
			*why = "an extended boot sector has no 0xAA550000 signature";
			return -1;
		}
	uint32_t sum = exfat_boot_checksum(region, ss);
	const uint8_t *cs = region + EXFAT_BOOT_CHECKSUM_SECTOR * ss;
	for (unsigned k = 0; k < ss; k += 4)
		if (exfat_get_le32(cs + k) != sum) {
			*why = "boot checksum sector does not match the region";
			return -1;
		}
	return 0;
}

/* The regions equal except for VolumeFlags and PercentInUse. */
static bool regions_equal(const uint8_t *a, const uint8_t *b, unsigned ss)
{
	for (size_t k = 0; k < (size_t)EXFAT_BOOT_REGION_SECTORS * ss; k++)
		if (a[k] != b[k] && k != 106 && k != 107 && k != 112)
			return false;
	return true;
}

static int check_boot(struct vol *v)
{
	const size_t max = (size_t)EXFAT_BOOT_REGION_SECTORS * 4096;
	uint8_t *mainr = malloc(max), *backup = malloc(max);
	int rc = -1;
	if (!mainr || !backup) {
		fail_op(v, "out of memory");
		goto out;
	}
	if (dev_read(v, 0, mainr, max) < 0)
		goto out;
	const char *main_why = NULL, *backup_why = NULL;
	const struct exfat_boot_sector *mbs = (const void *)mainr;
	unsigned ss = 0;
	bool main_ok = false, backup_ok = false;
	if (mbs->sector_shift >= EXFAT_MIN_SECTOR_SHIFT && mbs->sector_shift <= EXFAT_MAX_SECTOR_SHIFT) {
		ss = 1u << mbs->sector_shift;
		main_ok = check_region(mainr, ss, &main_why) == 0;
	} else {
		main_why = "BytesPerSectorShift out of range 9..12";
	}
	/* The backup follows the main region; its sector size is its own. */
	for (unsigned s = ss ? ss : 512; s <= 4096; s *= 2) {
		if (dev_read(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * s, backup, (size_t)EXFAT_BOOT_REGION_SECTORS * s) < 0)
			goto out;
		const struct exfat_boot_sector *b = (const void *)backup;
		if (b->sector_shift == __builtin_ctz(s) || ss) {
			backup_ok = check_region(backup, s, &backup_why) == 0;
			if (backup_ok || ss) {
				if (!ss || backup_ok)
					ss = backup_ok ? s : ss;
				break;
			}
		}
	}
	if (!backup_ok && !backup_why)
		backup_why = "no valid boot sector";
	if (!main_ok && !backup_ok) {
		bool sig = !memcmp(mbs->fs_name, "EXFAT   ", 8) || !memcmp(((struct exfat_boot_sector *)backup)->fs_name, "EXFAT   ", 8);
		v->r->not_exfat = !sig;
		if (sig)
			fail(v, "both boot regions are damaged (main: %s; backup: %s)", main_why, backup_why);
		else
			/* Whatever else is wrong, the missing name is what says so. */
			fail(v, "not an exFAT filesystem (no \"EXFAT\" signature in either boot sector)");
		goto out;
	}
	v->ss = ss;
	size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * ss;
	v->boot = malloc(rlen);
	if (!v->boot) {
		fail_op(v, "out of memory");
		goto out;
	}
	v->boot_writable = true;
	if (!main_ok || (v->o->use_backup && backup_ok && !regions_equal(mainr, backup, ss))) {
		memcpy(v->boot, backup, rlen);
		v->bs = (struct exfat_boot_sector *)v->boot;
		if (problem(v, "boot-region", "", 0, true, "restore the main boot region from the backup",
			    main_ok ? "main boot region differs from the backup (-b uses the backup)"
				    : "main boot region damaged: %s", main_why)) {
			v->bs->volume_flags = htole16(exfat_le16(v->bs->volume_flags) | EXFAT_FLAG_VOLUME_DIRTY);
			if (raw_write(v, 0, v->boot, rlen) < 0 || flush(v) < 0)
				goto out;
			v->dirty_set = true;
		} else {
			v->boot_writable = false; /* no other write over a damaged main region */
		}
	} else {
		memcpy(v->boot, mainr, rlen);
		v->bs = (struct exfat_boot_sector *)v->boot;
		if (!backup_ok) {
			if (problem(v, "backup-boot-region", "", (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, true,
				    "rewrite the backup from the main region", "backup boot region damaged: %s", backup_why))
				dev_write(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, v->boot, rlen);
		} else if (!regions_equal(mainr, backup, ss)) {
			if (problem(v, "backup-boot-region", "", (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, true,
				    "rewrite the backup from the main region",
				    "backup boot region differs from the main region"))
				dev_write(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, v->boot, rlen);
		}
	}
	struct exfat_boot_sector *bs = v->bs;
	v->orig_flags = exfat_le16(bs->volume_flags) & (uint16_t)~(v->dirty_set ? EXFAT_FLAG_VOLUME_DIRTY : 0);
	v->csize = exfat_cluster_size(bs);
	v->cshift = bs->sector_shift + bs->cluster_shift;
	v->cc = exfat_le32(bs->cluster_count);
	v->heap_off = (uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift;
	uint64_t fat_index = bs->number_of_fats == 2 && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	v->fat_off = ((uint64_t)exfat_le32(bs->fat_offset) + fat_index * exfat_le32(bs->fat_length)) << bs->sector_shift;
	v->r->cluster_count = v->cc;
	v->r->cluster_size = v->csize;
	uint64_t vol_bytes = exfat_le64(bs->volume_length) << bs->sector_shift;
	uint64_t heap_end = v->heap_off + ((uint64_t)v->cc << v->cshift);
	if (vol_bytes > v->dev_size) {
		problem(v, "volume-length", "", 0, false, NULL,
			"VolumeLength %llu bytes is larger than the device (%llu bytes)",
			(unsigned long long)vol_bytes, (unsigned long long)v->dev_size);
		if (heap_end > v->dev_size) {
			fail(v, "the cluster heap extends past the end of the device");
			goto out;
		}
	}
	if (exfat_le16(bs->volume_flags) & EXFAT_FLAG_VOLUME_DIRTY && !v->dirty_set)
		note(v, "the volume is marked dirty (not cleanly unmounted)");
	if (exfat_le16(bs->volume_flags) & EXFAT_FLAG_MEDIA_FAILURE)
		note(v, "the volume is marked as having had media failures");
	rc = 0;
out:
	free(mainr);
	free(backup);
	return rc;
}

/* ---- FAT, bitmap and the end -------------------------------------------- */

static int read_fat(struct vol *v)
{
	uint64_t entries = (uint64_t)v->cc + 2;
	/* A check that cannot write needs no copy of the FAT: a few small
	 * windows over it, as chains are walked, keep its memory constant. */
	bool read_only = !v->o->writable && !v->o->rescue;
	if (read_only) {
		v->fat_win = malloc((size_t)FAT_WINDOWS * FAT_WINDOW_ENTRIES * 4);
	} else {
		v->fat = calloc(entries, 4);
		v->fat_dirty = calloc(entries / FAT_PAGE_ENTRIES + 1, 1);
		v->fat_loaded = calloc(entries / FAT_CHUNK_ENTRIES + 1, 1);
	}
	v->used = calloc(((uint64_t)v->cc + 7) / 8 + 8, 1);
	v->used_pages = calloc(((uint64_t)v->cc + 7) / 8 / USED_PAGE_BYTES + 1, 1);
	v->upcase = malloc(EXFAT_UPCASE_CHARS * sizeof(uint16_t));
	if ((read_only ? !v->fat_win : !v->fat || !v->fat_dirty || !v->fat_loaded) ||
	    !v->used || !v->used_pages || !v->upcase) {
		fail_op(v, "out of memory (%llu clusters)", (unsigned long long)v->cc);
		return -1;
	}
	uint32_t f0 = fat_get(v, 0), f1 = fat_get(v, 1);
	if (v->failed)
		return -1;
	if ((f0 & 0xFFFFFF00u) != 0xFFFFFF00u || f1 != EXFAT_FAT_EOC) {
		if (problem(v, "fat-head", "", v->fat_off, true, "set FAT[0] and FAT[1]",
			    "FAT[0] 0x%08x / FAT[1] 0x%08x, expected 0xfffffff8 / 0xffffffff", f0, f1)) {
			fat_set(v, 0, EXFAT_FAT_MEDIA);
			fat_set(v, 1, EXFAT_FAT_EOC);
		}
	}
	return 0;
}

static int write_fat(struct vol *v)
{
	uint64_t entries = (uint64_t)v->cc + 2;
	uint32_t page[FAT_PAGE_ENTRIES];
	if (!v->fat)
		return 0;
	for (uint64_t p = 0; p * FAT_PAGE_ENTRIES < entries; p++) {
		if (!v->fat_dirty[p])
			continue;
		uint64_t first = p * FAT_PAGE_ENTRIES;
		uint64_t n = entries - first < FAT_PAGE_ENTRIES ? entries - first : FAT_PAGE_ENTRIES;
		for (uint64_t k = 0; k < n; k++)
			page[k] = htole32(v->fat[first + k]);
		if (dev_write(v, v->fat_off + first * 4, page, n * 4) < 0)
			return -1;
	}
	return 0;
}

/* A free cluster (not used, not marked in the bitmap being built), claimed
 * and marked; 0 when the volume is full. */
static uint32_t alloc_cluster(struct vol *v, uint32_t *cursor)
{
	for (; *cursor < v->cc; (*cursor)++) {
		uint32_t k = *cursor;
		if (!exfat_bitmap_test(v->used, k) && !exfat_bitmap_test(v->disk_bm, k)) {
			mark_used(v, k);
			exfat_bitmap_set(v->disk_bm, k);
			v->bm_dirty[(k / 8) >> v->cshift] = 1;
			return k + EXFAT_FIRST_CLUSTER;
		}
	}
	return 0;
}

static void utf16_from_ascii(uint16_t *out, const char *s)
{
	while (*s)
		*out++ = (uint8_t)*s++;
}

/* Builds a file (or directory) entry set named `ascii` into out. */
static unsigned build_set(struct vol *v, void *out, const char *ascii, uint16_t attributes, uint32_t first,
			  uint64_t bytes)
{
	uint16_t name[32], up[32];
	unsigned len = (unsigned)strlen(ascii);
	utf16_from_ascii(name, ascii);
	exfat_upcase_name(v->upcase, name, len, up);
	struct exfat_file_info fi = { .name = name, .name_len = len, .name_hash = exfat_name_hash(up, len),
				      .attributes = attributes, .first_cluster = first, .data_length = bytes,
				      .valid_data_length = bytes };
	exfat_time_from_unix(time(NULL), 0, &fi.create_time, &fi.create_10ms, &fi.create_utc);
	fi.modify_time = fi.access_time = fi.create_time;
	fi.modify_10ms = fi.create_10ms;
	fi.modify_utc = fi.access_utc = fi.create_utc;
	return exfat_build_file_set(out, &fi);
}

/* Is `ascii` (case-insensitively) a name in the directory buffer? */
static bool dir_has_name(struct vol *v, const uint8_t *buf, uint64_t bytes, const char *ascii)
{
	uint16_t want[32], name[EXFAT_MAX_NAME_LEN], stored, computed;
	unsigned len = (unsigned)strlen(ascii);
	utf16_from_ascii(want, ascii);
	exfat_upcase_name(v->upcase, want, len, want);
	for (uint64_t k = 0; k + EXFAT_ENTRY_SIZE <= bytes && buf[k]; k += EXFAT_ENTRY_SIZE) {
		struct exfat_file_info fi;
		const char *why;
		if (buf[k] != EXFAT_ENTRY_FILE ||
		    exfat_parse_file_set(buf + k, (unsigned)((bytes - k) / EXFAT_ENTRY_SIZE), &fi, name, &stored,
					 &computed, &why) < 0 || fi.name_len != len)
			continue;
		exfat_upcase_name(v->upcase, name, len, name);
		if (!memcmp(name, want, len * 2))
			return true;
	}
	return false;
}

/* Orphan chains (marked used, owned by nothing) become files
 * /LOST+FOUND/FILEnnnnnnn.CHK: one per chain, in a new directory. */
/* Clusters neither allocated on disk nor claimed (the full bitmap is read). */
static uint64_t free_clusters(const struct vol *v)
{
	uint64_t n = 0, words = ((uint64_t)v->cc + 63) / 64;
	for (uint64_t w = 0; w < words; w++) {
		uint64_t disk, in_use;
		memcpy(&disk, v->disk_bm + w * 8, 8);
		memcpy(&in_use, v->used + w * 8, 8);
		uint64_t taken = le64toh(disk) | le64toh(in_use);
		if (w == words - 1 && v->cc % 64)
			taken |= ~((1ull << (v->cc % 64)) - 1);
		n += 64 - (unsigned)__builtin_popcountll(taken);
	}
	return n;
}

static bool rescue_orphans(struct vol *v, uint64_t orphans, uint32_t first_orphan)
{
	uint64_t max_files = (EXFAT_MAX_DIR_BYTES / EXFAT_ENTRY_SIZE - 1) / 3;
	/* Room first: the directory's clusters at most (one file per orphan),
	 * and one more should the root need to grow. Without it the orphans
	 * are left as they are (not freed: -s asked to keep them). */
	uint64_t files_max = orphans < max_files ? orphans : max_files;
	uint64_t need = (((files_max * 3 + 1) * EXFAT_ENTRY_SIZE + v->csize - 1) >> v->cshift) + 1;
	if (free_clusters(v) < need) {
		problem(v, "bitmap-orphan", "", cluster_pos(v, v->bm_first), false, NULL,
			"%llu clusters marked used belong to no file (first: %u); no room for "
			"/LOST+FOUND (%llu free clusters needed)", (unsigned long long)orphans, first_orphan,
			(unsigned long long)need);
		return true;
	}
	if (!problem(v, "bitmap-orphan", "", cluster_pos(v, v->bm_first), true,
		     "keep them in /LOST+FOUND", "%llu clusters marked used belong to no file (first: %u)",
		     (unsigned long long)orphans, first_orphan))
		return false;
	/* Heads: orphans no other orphan's FAT entry points to; then whatever
	 * is left (cycles). */
	uint8_t *has_pred = calloc(((uint64_t)v->cc + 7) / 8 + 1, 1);
	uint32_t *heads = malloc(sizeof(uint32_t) * (orphans < max_files ? orphans : max_files));
	uint32_t *lengths = malloc(sizeof(uint32_t) * (orphans < max_files ? orphans : max_files));
	uint8_t *dir = NULL, *root = NULL;
	if (!has_pred || !heads || !lengths) {
		fail_op(v, "out of memory");
		goto out;
	}
#define ORPHAN(k) (exfat_bitmap_test(v->disk_bm, k) && !exfat_bitmap_test(v->used, k))
	for (uint32_t k = 0; k < v->cc; k++) {
		if (!ORPHAN(k))
			continue;
		uint32_t n = fat_get(v, k + EXFAT_FIRST_CLUSTER);
		if (cluster_ok(v, n) && n - EXFAT_FIRST_CLUSTER != k && ORPHAN(n - EXFAT_FIRST_CLUSTER))
			exfat_bitmap_set(has_pred, n - EXFAT_FIRST_CLUSTER);
	}
	uint64_t nfiles = 0;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t k = 0; k < v->cc && nfiles < max_files; k++) {
			if (!ORPHAN(k) || (pass == 0 && exfat_bitmap_test(has_pred, k)))
				continue;
			uint32_t c = k + EXFAT_FIRST_CLUSTER, last = c, len = 0;
			while (cluster_ok(v, c) && ORPHAN(c - EXFAT_FIRST_CLUSTER)) {
				claim(v, c);
				last = c;
				len++;
				c = fat_get(v, c);
			}
			fat_set(v, last, EXFAT_FAT_EOC);
			heads[nfiles] = k + EXFAT_FIRST_CLUSTER;
			lengths[nfiles++] = len;
		}
#undef ORPHAN
	/* The directory's clusters, chained. */
	uint64_t dir_bytes = ((nfiles * 3 + 1) * EXFAT_ENTRY_SIZE + v->csize - 1) & ~(v->csize - 1);
	uint32_t ndir = (uint32_t)(dir_bytes >> v->cshift), cursor = 0, first_dir = 0, prev = 0;
	uint32_t *dir_clusters = calloc(ndir, sizeof(uint32_t));
	dir = calloc(1, dir_bytes);
	if (!dir_clusters || !dir) {
		free(dir_clusters);
		fail_op(v, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < ndir; k++) {
		uint32_t c = alloc_cluster(v, &cursor);
		if (!c) {
			free(dir_clusters);
			fail(v, "no free cluster left for /LOST+FOUND");
			goto out;
		}
		if (prev)
			fat_set(v, prev, c);
		else
			first_dir = c;
		fat_set(v, c, EXFAT_FAT_EOC);
		dir_clusters[k] = prev = c;
	}
	uint8_t *at = dir;
	for (uint64_t f = 0; f < nfiles; f++) {
		char name[32];
		snprintf(name, sizeof(name), "FILE%07u.CHK", (unsigned)((f + 1) % 10000000u));
		at += build_set(v, at, name, EXFAT_ATTR_ARCHIVE, heads[f], (uint64_t)lengths[f] << v->cshift) *
		      EXFAT_ENTRY_SIZE;
	}
	for (uint32_t k = 0; k < ndir; k++)
		dev_write(v, cluster_pos(v, dir_clusters[k]), dir + ((uint64_t)k << v->cshift), v->csize);
	free(dir_clusters);

	/* Its entry set in the root directory: in three free entries, or in a
	 * new cluster at the end of the root's chain. */
	uint64_t root_bytes = ((uint64_t)v->root_count << v->cshift);
	root = malloc(root_bytes + v->csize);
	if (!root) {
		fail_op(v, "out of memory");
		goto out;
	}
	struct dir_job rj = { .clusters = v->root_clusters, .count = v->root_count };
	if (read_dir(v, &rj, root) < 0)
		goto out;
	char lf[24] = LOST_FOUND_NAME;
	for (unsigned n = 1; dir_has_name(v, root, root_bytes, lf) && n < 1000; n++)
		snprintf(lf, sizeof(lf), "%s~%u", LOST_FOUND_NAME, n);
	uint8_t set[EXFAT_ENTRY_SIZE * 4];
	unsigned count = build_set(v, set, lf, EXFAT_ATTR_DIRECTORY, first_dir, dir_bytes);
	uint64_t slot = UINT64_MAX, run = 0;
	for (uint64_t k = 0; k + EXFAT_ENTRY_SIZE <= root_bytes; k += EXFAT_ENTRY_SIZE) {
		run = root[k] & EXFAT_ENTRY_IN_USE ? 0 : run + 1;
		if (run == count) {
			slot = k - (count - 1) * EXFAT_ENTRY_SIZE;
			break;
		}
		if (!root[k] && (root_bytes - k) / EXFAT_ENTRY_SIZE >= count) {
			slot = k; /* at the end mark: everything after it is free */
			break;
		}
	}
	if (slot == UINT64_MAX) {
		uint32_t c = alloc_cluster(v, &cursor);
		if (!c) {
			fail(v, "no free cluster left for the root directory");
			goto out;
		}
		fat_set(v, v->root_clusters[v->root_count - 1], c);
		fat_set(v, c, EXFAT_FAT_EOC);
		memset(root + root_bytes, 0, v->csize);
		dev_write(v, cluster_pos(v, c), root + root_bytes, v->csize);
		slot = root_bytes;
		uint32_t *n = realloc(v->root_clusters, sizeof(uint32_t) * (v->root_count + 1));
		if (!n) {
			fail_op(v, "out of memory");
			goto out;
		}
		v->root_clusters = n;
		v->root_clusters[v->root_count++] = c;
	}
	memcpy(root + slot, set, count * EXFAT_ENTRY_SIZE);
	for (uint64_t k = slot >> v->cshift; k <= (slot + count * EXFAT_ENTRY_SIZE - 1) >> v->cshift; k++)
		dev_write(v, cluster_pos(v, v->root_clusters[k]), root + (k << v->cshift), v->csize);
	v->r->directories++;
	v->r->files += nfiles;
	note(v, "%llu orphan chains kept in /%s", (unsigned long long)nfiles, lf);
out:
	free(has_pred), free(heads), free(lengths), free(dir), free(root);
	return !v->failed;
}

/* Clusters whose bit is set in a but not in b: count, and the first one.
 * Both have room for a whole last 64-bit word; bits past ClusterCount are
 * ignored. */
/* Of the clusters in mask (bitmap word w: allocated, owned by no file), the
 * ones the FAT marks bad are not orphans: they stay allocated, claimed as
 * the bad-cluster list's. Returns mask without them. */
static uint64_t claim_bad(struct vol *v, uint64_t w, uint64_t mask)
{
	for (uint64_t m = mask; m; m &= m - 1) {
		uint32_t k = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(m));
		if (fat_get(v, k + EXFAT_FIRST_CLUSTER) == EXFAT_FAT_BAD) {
			mark_used(v, k);
			mask &= ~(1ull << (k % 64));
		}
	}
	return mask;
}

/* Clusters set in a but not in b (the first in *first); with skip_bad, those
 * the FAT marks bad are claimed instead of counted (a: disk_bm, b: used). */
static uint64_t bits_only_in(struct vol *v, const uint8_t *a, const uint8_t *b, bool skip_bad, uint32_t *first)
{
	uint64_t n = 0, words = ((uint64_t)v->cc + 63) / 64;
	for (uint64_t w = 0; w < words; w++) {
		uint64_t x, y;
		memcpy(&x, a + w * 8, 8);
		memcpy(&y, b + w * 8, 8);
		x = le64toh(x) & ~le64toh(y);
		if (w == words - 1 && v->cc % 64)
			x &= (1ull << (v->cc % 64)) - 1;
		if (x && skip_bad)
			x = claim_bad(v, w, x);
		if (!x)
			continue;
		if (!n)
			*first = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(x)) + EXFAT_FIRST_CLUSTER;
		n += (unsigned)__builtin_popcountll(x);
	}
	return n;
}

/* Sets (or clears) in disk_bm every cluster set (or not set) in used. */
static void bitmap_take(struct vol *v, bool set)
{
	uint64_t bytes = ((uint64_t)v->cc + 7) / 8;
	for (uint64_t i = 0; i < bytes; i++) {
		uint8_t keep = i == bytes - 1 && v->cc % 8 ? (uint8_t)~((1u << (v->cc % 8)) - 1) : 0;
		uint8_t b = set ? v->disk_bm[i] | v->used[i] : v->disk_bm[i] & (v->used[i] | keep);
		if (b != v->disk_bm[i]) {
			v->disk_bm[i] = b;
			v->bm_dirty[i >> v->cshift] = 1;
		}
	}
}

static uint64_t count_used(const struct vol *v)
{
	uint64_t n = 0, words = ((uint64_t)v->cc + 63) / 64;
	for (uint64_t w = 0; w < words; w++) {
		if (!v->used_pages[w * 8 / USED_PAGE_BYTES]) {
			w = ((w * 8 / USED_PAGE_BYTES + 1) * USED_PAGE_BYTES) / 8 - 1;
			continue;
		}
		uint64_t x;
		memcpy(&x, v->used + w * 8, 8);
		n += (unsigned)__builtin_popcountll(x);
	}
	return n;
}

static void bitmap_problems(struct vol *v, uint64_t free_but_used, uint32_t first_fbu,
			    uint64_t orphans, uint32_t first_orphan)
{
	if (free_but_used &&
	    problem(v, "bitmap-free-in-use", "", cluster_pos(v, v->bm_first), true, "mark them used",
		    "%llu clusters in use are marked free in the allocation bitmap (first: %u)",
		    (unsigned long long)free_but_used, first_fbu) && v->disk_bm)
		bitmap_take(v, true);
	if (orphans &&
	    problem(v, "bitmap-orphan", "", cluster_pos(v, v->bm_first), !v->lost_extent,
		    "mark them free (-s keeps them in /LOST+FOUND)",
		    "%llu clusters marked used belong to no file (first: %u)",
		    (unsigned long long)orphans, first_orphan) && v->disk_bm)
		bitmap_take(v, false);
}

/* The read-only comparison: the on-disk bitmap is read in large runs into
 * one small buffer and compared word by word with the clusters in use;
 * pages of used that no cluster touched count as zero without being read. */
static void check_bitmap_streamed(struct vol *v)
{
	uint64_t words = ((uint64_t)v->cc + 63) / 64, w = 0;
	uint64_t orphans = 0, free_but_used = 0;
	uint32_t first_fbu = 0, first_orphan = 0;
	size_t cap = BM_READ_BYTES > v->csize ? BM_READ_BYTES : v->csize;
	uint8_t *buf = malloc(cap + 8);
	if (!buf) {
		fail_op(v, "out of memory");
		return;
	}
	for (uint32_t k = 0; k < v->bm_count && w < words;) {
		uint32_t run = 1;
		while (k + run < v->bm_count && v->bm_clusters[k + run] == v->bm_clusters[k] + run &&
		       ((uint64_t)(run + 1) << v->cshift) <= cap)
			run++;
		uint64_t len = (uint64_t)run << v->cshift, start = (uint64_t)k << v->cshift;
		if (len > v->bm_bytes - start)
			len = v->bm_bytes - start;
		/* A hole in a sparse image: no cluster marked there, nothing to
		 * read, and only the touched pages of used to look at. */
		bool hole = is_hole(v, cluster_pos(v, v->bm_clusters[k]), len);
		memset(buf + len, 0, 8 - len % 8);
		if (!hole && dev_read(v, cluster_pos(v, v->bm_clusters[k]), buf, len) < 0)
			break;
		uint64_t w0 = w, w_end = w0 + (len + 7) / 8 < words ? w0 + (len + 7) / 8 : words;
		for (; w < w_end; w++) {
			uint64_t disk = 0, in_use = 0;
			bool touched = v->used_pages[w * 8 / USED_PAGE_BYTES];
			if (hole && !touched) {
				uint64_t next = (w * 8 / USED_PAGE_BYTES + 1) * USED_PAGE_BYTES / 8;
				w = (next < w_end ? next : w_end) - 1;
				continue;
			}
			if (!hole) {
				memcpy(&disk, buf + (w - w0) * 8, 8);
				disk = le64toh(disk);
			}
			if (touched) {
				memcpy(&in_use, v->used + w * 8, 8);
				in_use = le64toh(in_use);
			}
			if (w == words - 1 && v->cc % 64)
				disk &= (1ull << (v->cc % 64)) - 1;
			uint64_t orphan = disk & ~in_use, missing = in_use & ~disk;
			if (orphan)
				orphan = claim_bad(v, w, orphan);
			if (orphan) {
				if (!orphans)
					first_orphan = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(orphan)) + EXFAT_FIRST_CLUSTER;
				orphans += (unsigned)__builtin_popcountll(orphan);
			}
			if (missing) {
				if (!free_but_used)
					first_fbu = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(missing)) + EXFAT_FIRST_CLUSTER;
				free_but_used += (unsigned)__builtin_popcountll(missing);
			}
		}
		k += run;
	}
	free(buf);
	if (v->failed)
		return;
	bitmap_problems(v, free_but_used, first_fbu, orphans, first_orphan);
	v->r->clusters_used += count_used(v);
}

static void check_bitmap(struct vol *v)
{
	uint64_t free_but_used, orphans;
	uint32_t first_fbu = 0, first_orphan = 0;
	if (!v->disk_bm) {
		check_bitmap_streamed(v);
		return;
	}
	orphans = bits_only_in(v, v->disk_bm, v->used, true, &first_orphan);
	/* With -s the orphans become files, and the clusters of the new
	 * directory are marked in disk_bm: the bitmap to be written. */
	if (orphans && v->o->rescue && rescue_orphans(v, orphans, first_orphan))
		orphans = 0;
	if (v->failed)
		return;
	free_but_used = bits_only_in(v, v->used, v->disk_bm, false, &first_fbu);
	bitmap_problems(v, free_but_used, first_fbu, orphans, first_orphan);
	v->r->clusters_used += count_used(v);
	for (uint32_t c = 0; c < v->bm_count; c++)
		if (v->bm_dirty[c])
			dev_write(v, cluster_pos(v, v->bm_clusters[c]), v->disk_bm + ((uint64_t)c << v->cshift), v->csize);
}

static void finish(struct vol *v)
{
	struct exfat_boot_sector *bs = v->bs;
	unsigned percent = v->cc ? (unsigned)(v->r->clusters_used * 100 / v->cc) : 0;
	if (bs->percent_in_use != 0xFF && bs->percent_in_use > 100 &&
	    problem(v, "percent-in-use", "", 112, true, "set it from the bitmap",
		    "PercentInUse %u above 100", bs->percent_in_use)) {
		bs->percent_in_use = (uint8_t)percent;
		mark_dirty(v); /* sector 0 is written again when the mark is cleared */
	}
	write_fat(v);
	/* A complete repair-mode check that found nothing settles a dirty mark
	 * left by an unclean unmount or an interrupted run. */
	if (!v->dirty_set && !v->failed && !v->quit && !v->r->problems && v->o->writable &&
	    v->boot_writable && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_VOLUME_DIRTY)) {
		bs->volume_flags = htole16(exfat_le16(bs->volume_flags) & (uint16_t)~EXFAT_FLAG_VOLUME_DIRTY);
		if (raw_write(v, 0, v->boot, v->ss) == 0 && flush(v) == 0)
			note(v, "the dirty mark was cleared: the volume checked clean");
		return;
	}
	if (!v->dirty_set || v->failed)
		return;
	if (flush(v) < 0)
		return;
	/* Everything is on disk: the volume is consistent again, unless a
	 * problem was left as it is. */
	uint16_t flags = v->orig_flags;
	if (v->r->repaired == v->r->problems && !v->quit)
		flags &= (uint16_t)~EXFAT_FLAG_VOLUME_DIRTY;
	else
		flags |= EXFAT_FLAG_VOLUME_DIRTY;
	bs->volume_flags = htole16(flags);
	if (raw_write(v, 0, v->boot, v->ss) == 0)
		flush(v);
}

static void free_vol(struct vol *v)
{
	for (size_t k = 0; k < v->nstack; k++)
		free(v->stack[k].path), free(v->stack[k].clusters);
	free(v->stack);
	free(v->boot), free(v->fat), free(v->fat_win), free(v->fat_dirty), free(v->fat_loaded), free(v->used), free(v->used_pages);
	free(v->disk_bm), free(v->bm_dirty), free(v->bm_clusters), free(v->upcase), free(v->root_clusters);
}

/* Whether the caller asked the run to stop (opts->cancel); it then ends as
 * after a quit answer. */
static bool cancelled(struct vol *v)
{
	if (!v->quit && v->o->cancel && *v->o->cancel) {
		v->quit = true;
		v->r->cancelled = true;
	}
	return v->quit;
}

int exfat_fsck_run(int fd, uint64_t dev_size, const struct exfat_fsck_opts *opts,
		   struct exfat_fsck_result *result)
{
	struct vol v = { .fd = fd, .dev_size = dev_size, .o = opts, .r = result };
	struct stat st;
	memset(result, 0, sizeof(*result));
	v.seek_holes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (check_boot(&v) < 0 || read_fat(&v) < 0)
		goto done;

	/* The root directory: a chain with no size, at most 256 MiB. */
	uint32_t root = exfat_le32(v.bs->root_cluster);
	struct chain ch;
	if (walk_chain(&v, root, false, 0, EXFAT_MAX_DIR_BYTES >> v.cshift, true, &ch) < 0)
		goto done;
	if (ch.stop != CH_OK) {
		char why[200];
		describe_stop(&v, &ch, why, sizeof(why));
		if (!ch.count) {
			problem(&v, "root", "/", 0, false, NULL, "root directory: %s", why);
			fail(&v, "the root directory is unusable");
			free(ch.list);
			goto done;
		}
		if (problem(&v, stop_code(ch.stop), "/", cluster_pos(&v, root), false,
			    "end the root directory's chain there", "root directory: %s", why))
			fat_set(&v, ch.last, EXFAT_FAT_EOC);
	}
	v.root_clusters = malloc(sizeof(uint32_t) * ch.count);
	if (!v.root_clusters) {
		fail_op(&v, "out of memory");
		free(ch.list);
		goto done;
	}
	memcpy(v.root_clusters, ch.list, sizeof(uint32_t) * ch.count);
	v.root_count = ch.count;
	char *rp = strdup("/");
	if (!rp || push_dir(&v, rp, ch.list, ch.count, 0) < 0)
		goto done;
	v.r->directories = 1;
	bool root_done = false;
	uint64_t dirs_done = 0;
	while (v.nstack && !v.failed && !v.quit && !cancelled(&v)) {
		struct dir_job job = v.stack[--v.nstack];
		check_dir(&v, &job, !root_done);
		root_done = true;
		free(job.path), free(job.clusters);
		dirs_done++;
		if (opts->progress)
			opts->progress(opts->ctx, dirs_done, v.r->directories, v.r->files);
	}
	cancelled(&v); /* a late stop is taken here, where the FAT is written */
	if (v.quit && !v.failed) {
		/* Repairs already made stay whole (a truncated size with its
		 * end-of-chain mark); the dirty mark stays for the next check. */
		write_fat(&v);
		if (v.dirty_set)
			flush(&v);
	}
	if (v.failed || v.quit)
		goto done;
	check_bitmap(&v);
	if (!v.failed)
		finish(&v);
done:
	if (v.failed && v.dirty_set)
		fsync(fd); /* the dirty mark stays: the volume needs another check */
	free_vol(&v);
	return v.failed ? -1 : 0;
}
