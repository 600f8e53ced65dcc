/* A volume's label, serial and GUID read and written in place (see
 * exfat_label.h).
 *
 * The root directory is read whole (at most 256 MiB, usually one cluster);
 * the FAT and the allocation bitmap are read only where a new cluster is
 * looked for (the whole bitmap then, to count the clusters in use for
 * PercentInUse). A write goes through the undo file first, when there is
 * one. */
#include "exfat/exfat_label.h"

#include "blockdev/blockdev.h"
#include "blockdev/mounted.h"
#include "blockdev/undo.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNDO_BLOCK 4096u

struct exfat_id_volume {
	int fd;
	char *path;
	bool writable;
	uint64_t dev_size;
	struct stat st;
	char *undo_path;
	struct kb_undo *undo;

	uint8_t *main, *backup;        /* the two boot regions, 12 sectors each */
	struct exfat_boot_sector *bs;  /* main's boot sector */
	const char *backup_why;        /* NULL: the backup is valid and equals the main region */
	unsigned ss, cshift;
	uint64_t csize, fat_off, heap_off;
	uint32_t cc;

	uint32_t *root;                /* the root directory's clusters */
	uint32_t root_count;
	uint8_t *dir;                  /* their content */
	uint32_t nentries;
	uint32_t eod;                  /* the end-of-directory mark (nentries: none) */
	bool junk_after_eod;
	int64_t label_at, guid_at, bitmap_at;   /* entry indices, -1: none */

	struct exfat_id id;
};

static int __attribute__((format(printf, 4, 5)))
fail(const struct exfat_id_volume *v, char *err, size_t err_len, const char *fmt, ...)
{
	int n = snprintf(err, err_len, "%s: ", v->path);
	if (n < 0 || (size_t)n >= err_len)
		n = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int read_at(struct exfat_id_volume *v, uint64_t off, void *buf, size_t len, char *err, size_t err_len)
{
	if (off > v->dev_size || len > v->dev_size - off)
		return fail(v, err, err_len, "the volume reaches past the end of the device (byte %llu of %llu)",
			    (unsigned long long)(off + len), (unsigned long long)v->dev_size);
	if (kb_pread_full(v->fd, buf, len, off) < 0)
		return fail(v, err, err_len, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
	return 0;
}

static int write_at(struct exfat_id_volume *v, uint64_t off, const void *buf, size_t len, char *err,
		    size_t err_len)
{
	if (off > v->dev_size || len > v->dev_size - off)
		return fail(v, err, err_len, "refusing to write past the end of the device (byte %llu)",
			    (unsigned long long)off);
	if (v->undo_path && !v->undo) {
		v->undo = kb_undo_create(v->undo_path, v->fd, UNDO_BLOCK, v->dev_size);
		if (!v->undo)
			return fail(v, err, err_len, "undo file %s: %s", v->undo_path, strerror(errno));
	}
	if (v->undo && kb_undo_save(v->undo, off, len) < 0)
		return fail(v, err, err_len, "undo file %s: %s", v->undo_path, strerror(errno));
	if (kb_pwrite_full(v->fd, buf, len, off) < 0)
		return fail(v, err, err_len, "write at byte %llu: %s", (unsigned long long)off, strerror(errno));
	return 0;
}

static int flush(struct exfat_id_volume *v, char *err, size_t err_len)
{
	if (fsync(v->fd) < 0)
		return fail(v, err, err_len, "fsync: %s", strerror(errno));
	return 0;
}

static bool cluster_ok(const struct exfat_id_volume *v, uint32_t c)
{
	return c >= EXFAT_FIRST_CLUSTER && (uint64_t)c < (uint64_t)v->cc + 2;
}

static uint64_t cluster_pos(const struct exfat_id_volume *v, uint32_t c)
{
	return v->heap_off + ((uint64_t)(c - EXFAT_FIRST_CLUSTER) << v->cshift);
}

static int fat_get(struct exfat_id_volume *v, uint32_t c, uint32_t *next, char *err, size_t err_len)
{
	uint8_t b[4];
	if (read_at(v, v->fat_off + (uint64_t)c * 4, b, 4, err, err_len) < 0)
		return -1;
	*next = exfat_get_le32(b);
	return 0;
}

static int fat_set(struct exfat_id_volume *v, uint32_t c, uint32_t value, char *err, size_t err_len)
{
	uint8_t b[4];
	exfat_put_le32(b, value);
	return write_at(v, v->fat_off + (uint64_t)c * 4, b, 4, err, err_len);
}

/* Follows a FAT chain from first: to its end mark, at most max clusters
 * (to_end), or exactly max clusters. A free, bad or out-of-range link, or
 * a chain longer than max (a loop), is an error naming `what`. */
static int read_chain(struct exfat_id_volume *v, uint32_t first, uint32_t max, bool to_end, const char *what,
		      uint32_t **out, uint32_t *count, char *err, size_t err_len)
{
	uint32_t *list = malloc(sizeof(uint32_t) * (size_t)max);
	uint32_t n = 0, c = first;
	if (!list)
		return fail(v, err, err_len, "out of memory");
	for (;;) {
		if (!cluster_ok(v, c) || n == max) {
			free(list);
			if (n == max)
				return fail(v, err, err_len, "the %s's cluster chain is too long or loops; "
					    "fsck.exfat repairs it", what);
			return fail(v, err, err_len, "the %s's cluster chain is broken (cluster 0x%x); "
				    "fsck.exfat repairs it", what, c);
		}
		list[n++] = c;
		if (!to_end && n == max)
			break;
		if (fat_get(v, c, &c, err, err_len) < 0) {
			free(list);
			return -1;
		}
		if (to_end && c == EXFAT_FAT_EOC)
			break;
	}
	*out = list;
	*count = n;
	return 0;
}

static uint8_t *entry_at(const struct exfat_id_volume *v, uint32_t i)
{
	return v->dir + (size_t)i * EXFAT_ENTRY_SIZE;
}

static uint64_t entry_pos(const struct exfat_id_volume *v, uint32_t i)
{
	uint32_t per_cluster = (uint32_t)(v->csize / EXFAT_ENTRY_SIZE);
	return cluster_pos(v, v->root[i / per_cluster]) + (uint64_t)(i % per_cluster) * EXFAT_ENTRY_SIZE;
}

/* Finds the label, GUID and bitmap entries and the end of the directory. */
static void scan_root(struct exfat_id_volume *v)
{
	v->label_at = v->guid_at = v->bitmap_at = -1;
	v->eod = v->nentries;
	for (uint32_t i = 0; i < v->nentries; i++) {
		uint8_t t = entry_at(v, i)[0];
		if (t == EXFAT_ENTRY_EOD) {
			v->eod = i;
			break;
		}
		if (t == EXFAT_ENTRY_LABEL && v->label_at < 0)
			v->label_at = i;
		else if (t == EXFAT_ENTRY_GUID && v->guid_at < 0)
			v->guid_at = i;
		else if (t == EXFAT_ENTRY_BITMAP && v->bitmap_at < 0 && !(entry_at(v, i)[1] & 1))
			v->bitmap_at = i;
	}
	for (uint32_t i = v->eod; i < v->nentries; i++)
		v->junk_after_eod |= entry_at(v, i)[0] != 0;

	struct exfat_id *id = &v->id;
	id->serial = exfat_le32(v->bs->volume_serial);
	id->has_label_entry = v->label_at >= 0;
	id->label_len = 0;
	if (v->label_at >= 0) {
		const struct exfat_label_entry *e = (const void *)entry_at(v, (uint32_t)v->label_at);
		id->label_len = e->char_count < EXFAT_MAX_LABEL_LEN ? e->char_count : EXFAT_MAX_LABEL_LEN;
		for (unsigned k = 0; k < id->label_len; k++)
			id->label[k] = exfat_get_le16(&e->label[k]);
	}
	id->has_guid = v->guid_at >= 0;
	if (id->has_guid)
		memcpy(id->guid, ((const struct exfat_guid_entry *)entry_at(v, (uint32_t)v->guid_at))->guid, 16);
}

static int read_boot(struct exfat_id_volume *v, char *err, size_t err_len)
{
	const size_t max = (size_t)EXFAT_BOOT_REGION_SECTORS * 4096;
	v->main = calloc(1, max);
	v->backup = calloc(1, max);
	if (!v->main || !v->backup)
		return fail(v, err, err_len, "out of memory");
	if (v->dev_size < 512)
		return fail(v, err, err_len, "not an exFAT filesystem (%llu bytes: too small for a boot sector)",
			    (unsigned long long)v->dev_size);
	if (read_at(v, 0, v->main, v->dev_size < max ? (size_t)v->dev_size : max, err, err_len) < 0)
		return -1;
	v->bs = (struct exfat_boot_sector *)v->main;
	if (memcmp(v->bs->fs_name, "EXFAT   ", 8))
		return fail(v, err, err_len, "not an exFAT filesystem (no \"EXFAT\" signature in its boot sector)");
	const char *why;
	if (v->bs->sector_shift < EXFAT_MIN_SECTOR_SHIFT || v->bs->sector_shift > EXFAT_MAX_SECTOR_SHIFT)
		why = "BytesPerSectorShift out of range 9..12";
	else if ((uint64_t)EXFAT_BOOT_REGION_SECTORS * 2 << v->bs->sector_shift > v->dev_size)
		why = "the device is too small for its two boot regions";
	else
		exfat_boot_region_check(v->main, 1u << v->bs->sector_shift, &why);
	if (why)
		return fail(v, err, err_len, "the main boot region is damaged (%s); fsck.exfat repairs it", why);
	v->ss = 1u << v->bs->sector_shift;
	size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * v->ss;
	if (read_at(v, rlen, v->backup, rlen, err, err_len) < 0)
		return -1;
	if (exfat_boot_region_check(v->backup, v->ss, &v->backup_why) == 0 &&
	    !exfat_boot_regions_equal(v->main, v->backup, v->ss))
		v->backup_why = "it differs from the main region";

	const struct exfat_boot_sector *bs = v->bs;
	v->cshift = bs->sector_shift + bs->cluster_shift;
	v->csize = exfat_cluster_size(bs);
	v->cc = exfat_le32(bs->cluster_count);
	v->heap_off = (uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift;
	uint64_t active = bs->number_of_fats == 2 && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	v->fat_off = ((uint64_t)exfat_le32(bs->fat_offset) + active * exfat_le32(bs->fat_length)) << bs->sector_shift;
	return 0;
}

static int read_root(struct exfat_id_volume *v, char *err, size_t err_len)
{
	uint64_t max = EXFAT_MAX_DIR_BYTES >> v->cshift;
	if (max > v->cc)
		max = v->cc;
	if (max == 0)
		max = 1;
	if (read_chain(v, exfat_le32(v->bs->root_cluster), (uint32_t)max, true, "root directory", &v->root,
		       &v->root_count, err, err_len) < 0)
		return -1;
	uint64_t bytes = (uint64_t)v->root_count << v->cshift;
	v->dir = malloc(bytes);
	if (!v->dir)
		return fail(v, err, err_len, "out of memory (root directory of %llu bytes)", (unsigned long long)bytes);
	for (uint32_t k = 0; k < v->root_count; k++)
		if (read_at(v, cluster_pos(v, v->root[k]), v->dir + ((uint64_t)k << v->cshift), v->csize, err,
			    err_len) < 0)
			return -1;
	v->nentries = (uint32_t)(bytes / EXFAT_ENTRY_SIZE);
	scan_root(v);
	return 0;
}

static void free_volume(struct exfat_id_volume *v)
{
	free(v->path), free(v->undo_path), free(v->main), free(v->backup), free(v->root), free(v->dir);
	free(v);
}

static struct exfat_id_volume *id_open(const char *path, bool writable, const char *undo_path,
				       bool *others_lock, char *err, size_t err_len)
{
	struct exfat_id_volume *v = calloc(1, sizeof(*v));
	if (!v || !(v->path = strdup(path)) || (undo_path && !(v->undo_path = strdup(undo_path)))) {
		snprintf(err, err_len, "%s: out of memory", path);
		if (v)
			free_volume(v);
		return NULL;
	}
	v->writable = writable;
	*others_lock = false;
	char where[PATH_MAX];
	int m;
	/* Mounted is said as such, before an exclusive open fails as busy. */
	if (writable && stat(path, &v->st) == 0 && (m = kb_mounted_at(&v->st, where, sizeof(where))) != 0) {
		if (m < 0)
			snprintf(err, err_len, "%s: cannot read the mount table: %s", path, strerror(errno));
		else
			snprintf(err, err_len, "%s is mounted on %s; refusing to change it (unmount it first)", path,
				 where);
		free_volume(v);
		return NULL;
	}
	v->fd = kb_dev_open(path, writable, &v->st);
	if (v->fd < 0) {
		if (errno == EINVAL)
			snprintf(err, err_len, "%s is neither a block device nor a regular file", path);
		else if (writable && errno == EBUSY)
			snprintf(err, err_len, "%s is in use (mounted, or held by another program); refusing to "
				 "change it", path);
		else if (writable && errno == EROFS)
			snprintf(err, err_len, "%s is read-only; nothing can be written to it", path);
		else
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
		free_volume(v);
		return NULL;
	}
	if (kb_dev_lock(v->fd, writable) < 0) {
		int e = errno;
		if (e != EWOULDBLOCK) {
			fail(v, err, err_len, "lock: %s", strerror(e));
			goto fail;
		}
		if (writable) {
			snprintf(err, err_len, "%s is being checked, repaired or changed by another program; "
				 "refusing to change it", path);
			goto fail;
		}
		*others_lock = true;
	}
	if (undo_path && kb_undo_path_check(undo_path, path, &v->st, err, err_len) < 0)
		goto fail;
	if (kb_dev_size(v->fd, &v->dev_size) < 0) {
		fail(v, err, err_len, "cannot get its size: %s", strerror(errno));
		goto fail;
	}
	if (read_boot(v, err, err_len) < 0 || read_root(v, err, err_len) < 0)
		goto fail;
	return v;
fail:
	close(v->fd);
	free_volume(v);
	return NULL;
}

/* ---- writing ------------------------------------------------------------- */

/* Entries a new label or GUID entry may take: unused ones before the end
 * mark, and the end mark and what follows it (all unused) unless something
 * was left after the mark. */
static uint32_t free_entries(const struct exfat_id_volume *v, uint32_t want, uint32_t *slots)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < v->nentries && n < want; i++) {
		if (i >= v->eod && v->junk_after_eod)
			break;
		if (i >= v->eod || !(entry_at(v, i)[0] & EXFAT_ENTRY_IN_USE))
			slots[n++] = i;
	}
	return n;
}

/* Reads the whole bitmap, a cluster at a time: *found gets the first
 * cluster free in both the bitmap and the FAT, *bm_byte_pos the byte offset
 * of its bitmap byte, *in_use how many clusters the bitmap gives as used. */
static int scan_bitmap(struct exfat_id_volume *v, uint32_t *found, uint64_t *bm_byte_pos, uint32_t *in_use,
		       char *err, size_t err_len)
{
	const struct exfat_bitmap_entry *e = (const void *)entry_at(v, (uint32_t)v->bitmap_at);
	uint64_t bytes = exfat_le64(e->data_length);
	if (bytes < ((uint64_t)v->cc + 7) / 8)
		return fail(v, err, err_len, "the allocation bitmap is too small (%llu bytes); fsck.exfat repairs it",
			    (unsigned long long)bytes);
	uint32_t nclusters = (uint32_t)((((uint64_t)v->cc + 7) / 8 + v->csize - 1) >> v->cshift);
	uint32_t *chain;
	uint32_t count;
	if (read_chain(v, exfat_le32(e->first_cluster), nclusters, false, "allocation bitmap", &chain, &count,
		       err, err_len) < 0)
		return -1;
	uint8_t *buf = malloc(v->csize);
	int rc = -1;
	*found = 0;
	*in_use = 0;
	if (!buf) {
		fail(v, err, err_len, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < count; k++) {
		if (read_at(v, cluster_pos(v, chain[k]), buf, v->csize, err, err_len) < 0)
			goto out;
		uint64_t first = ((uint64_t)k << v->cshift) * 8;   /* the index of this cluster's first bit */
		*in_use += (uint32_t)exfat_bitmap_used(buf, v->csize, first, v->cc);
		for (uint64_t b = 0; b < v->csize && first + b * 8 < v->cc && !*found; b++) {
			if (buf[b] == 0xff)
				continue;
			for (unsigned bit = 0; bit < 8; bit++) {
				uint64_t index = first + b * 8 + bit;
				uint32_t next;
				if (index >= v->cc)
					break;
				if (buf[b] & (1u << bit))
					continue;
				if (fat_get(v, (uint32_t)index + EXFAT_FIRST_CLUSTER, &next, err, err_len) < 0)
					goto out;
				if (next != EXFAT_FAT_FREE)
					continue;   /* marked free but linked: leave it to fsck */
				*found = (uint32_t)index + EXFAT_FIRST_CLUSTER;
				*bm_byte_pos = cluster_pos(v, chain[k]) + b;
				break;
			}
		}
	}
	rc = 0;
	if (!*found)
		rc = fail(v, err, err_len, "no free cluster to grow the root directory by: the volume is full");
	else
		*in_use += 1;   /* the one found, once it is taken */
out:
	free(buf);
	free(chain);
	return rc;
}

struct growth {
	uint32_t cluster;
	uint64_t bm_byte_pos;
	uint32_t in_use;           /* clusters in use once it is taken */
};

/* Checks that the change can be made whole; nothing is written. */
static int plan(struct exfat_id_volume *v, const struct exfat_id_change *c, uint32_t slots[2], struct growth *g,
		char *err, size_t err_len)
{
	if (v->backup_why)
		return fail(v, err, err_len, "the backup boot region is damaged (%s); fsck.exfat repairs it",
			    v->backup_why);
	uint32_t want = 0;
	want += c->set_label && v->label_at < 0 && c->label_len > 0;
	want += c->guid_change == EXFAT_GUID_SET && v->guid_at < 0;
	memset(g, 0, sizeof(*g));
	uint32_t got = free_entries(v, want, slots);
	if (got == want)
		return 0;
	if (v->junk_after_eod)
		return fail(v, err, err_len, "the root directory holds entries after its end mark; fsck.exfat "
			    "repairs it");
	if (v->bitmap_at < 0)
		return fail(v, err, err_len, "the root directory has no allocation bitmap entry; fsck.exfat "
			    "repairs it");
	if (v->bs->number_of_fats != 1)
		return fail(v, err, err_len, "the root directory is full, and growing it on a volume with two "
			    "FATs is not supported");
	if (((uint64_t)v->root_count + 1) << v->cshift > EXFAT_MAX_DIR_BYTES)
		return fail(v, err, err_len, "the root directory is full at its largest size (256 MiB)");
	if (scan_bitmap(v, &g->cluster, &g->bm_byte_pos, &g->in_use, err, err_len) < 0)
		return -1;
	/* The new cluster's entries follow the present ones. */
	for (uint32_t k = got; k < want; k++)
		slots[k] = v->nentries + (k - got);
	return 0;
}

/* The serial goes into both boot regions, each with its checksum sector
 * recomputed: the main first, so that a run stopped half-way leaves a main
 * region that fsck.exfat copies to the backup. */
static int write_serial(struct exfat_id_volume *v, uint32_t serial, char *err, size_t err_len)
{
	uint8_t *regions[2] = { v->main, v->backup };
	for (unsigned r = 0; r < 2; r++) {
		uint8_t *region = regions[r];
		uint64_t base = (uint64_t)r * EXFAT_BOOT_REGION_SECTORS * v->ss;
		((struct exfat_boot_sector *)region)->volume_serial = htole32(serial);
		uint8_t *sum = region + (size_t)EXFAT_BOOT_CHECKSUM_SECTOR * v->ss;
		exfat_fill_checksum_sector(sum, v->ss, exfat_boot_checksum(region, v->ss));
		if (write_at(v, base, region, v->ss, err, err_len) < 0 ||
		    write_at(v, base + (uint64_t)EXFAT_BOOT_CHECKSUM_SECTOR * v->ss, sum, v->ss, err, err_len) < 0)
			return -1;
	}
	return 0;
}

/* VolumeFlags and PercentInUse are outside the checksum, and the backup's
 * are stale by definition: only the main boot sector is written. */
static int write_flags(struct exfat_id_volume *v, uint16_t flags, char *err, size_t err_len)
{
	v->bs->volume_flags = htole16(flags);
	if (write_at(v, 0, v->main, v->ss, err, err_len) < 0)
		return -1;
	return flush(v, err, err_len);
}

/* Adds cluster g->cluster to the root directory: its content (all unused
 * entries) first, then the bitmap bit, then its end mark and the link to
 * it, so the volume is whole again at every step but the last two. */
static int grow_root(struct exfat_id_volume *v, const struct growth *g, char *err, size_t err_len)
{
	uint8_t *dir = realloc(v->dir, ((size_t)v->root_count + 1) << v->cshift);
	uint32_t *root = realloc(v->root, sizeof(uint32_t) * ((size_t)v->root_count + 1));
	if (dir)
		v->dir = dir;
	if (root)
		v->root = root;
	if (!dir || !root)
		return fail(v, err, err_len, "out of memory");
	uint8_t *fresh = v->dir + ((size_t)v->root_count << v->cshift);
	memset(fresh, 0, v->csize);
	uint8_t bm;
	uint32_t bit = (g->cluster - EXFAT_FIRST_CLUSTER) & 7;
	uint32_t last = v->root[v->root_count - 1];
	if (write_at(v, cluster_pos(v, g->cluster), fresh, v->csize, err, err_len) < 0 ||
	    read_at(v, g->bm_byte_pos, &bm, 1, err, err_len) < 0)
		return -1;
	bm |= (uint8_t)(1u << bit);
	if (write_at(v, g->bm_byte_pos, &bm, 1, err, err_len) < 0 ||
	    fat_set(v, g->cluster, EXFAT_FAT_EOC, err, err_len) < 0 || fat_set(v, last, g->cluster, err, err_len) < 0)
		return -1;
	v->root[v->root_count++] = g->cluster;
	v->nentries = (uint32_t)(((uint64_t)v->root_count << v->cshift) / EXFAT_ENTRY_SIZE);
	return 0;
}

static int write_entry(struct exfat_id_volume *v, uint32_t i, const void *e, char *err, size_t err_len)
{
	memcpy(entry_at(v, i), e, EXFAT_ENTRY_SIZE);
	return write_at(v, entry_pos(v, i), e, EXFAT_ENTRY_SIZE, err, err_len);
}

static int write_entries(struct exfat_id_volume *v, const struct exfat_id_change *c, const uint32_t slots[2],
			 char *err, size_t err_len)
{
	unsigned next_slot = 0;
	if (c->set_label && (v->label_at >= 0 || c->label_len > 0)) {
		struct exfat_label_entry e;
		exfat_build_label_entry(&e, c->label, c->label_len);
		uint32_t at = v->label_at >= 0 ? (uint32_t)v->label_at : slots[next_slot++];
		if (write_entry(v, at, &e, err, err_len) < 0)
			return -1;
	}
	if (c->guid_change == EXFAT_GUID_SET) {
		struct exfat_guid_entry e;
		exfat_build_guid_entry(&e, c->guid);
		uint32_t at = v->guid_at >= 0 ? (uint32_t)v->guid_at : slots[next_slot++];
		if (write_entry(v, at, &e, err, err_len) < 0)
			return -1;
	} else if (c->guid_change == EXFAT_GUID_CLEAR && v->guid_at >= 0) {
		uint8_t e[EXFAT_ENTRY_SIZE];
		memcpy(e, entry_at(v, (uint32_t)v->guid_at), EXFAT_ENTRY_SIZE);
		e[0] &= (uint8_t)~EXFAT_ENTRY_IN_USE;
		if (write_entry(v, (uint32_t)v->guid_at, e, err, err_len) < 0)
			return -1;
	}
	return 0;
}

static int id_write(struct exfat_id_volume *v, struct exfat_id_change *c, char *err, size_t err_len)
{
	uint32_t slots[2];
	struct growth g;
	c->grown_cluster = 0;
	if (!v->writable)
		return fail(v, err, err_len, "opened read-only");
	if (plan(v, c, slots, &g, err, err_len) < 0)
		return -1;
	if (c->set_serial && write_serial(v, c->serial, err, err_len) < 0)
		return -1;
	/* Growing takes several writes: VolumeDirty covers them, as a driver does. */
	uint16_t flags = exfat_le16(v->bs->volume_flags);
	bool mark = g.cluster && !(flags & EXFAT_FLAG_VOLUME_DIRTY);
	if (mark && write_flags(v, flags | EXFAT_FLAG_VOLUME_DIRTY, err, err_len) < 0)
		return -1;
	if (g.cluster && grow_root(v, &g, err, err_len) < 0)
		return -1;
	if (write_entries(v, c, slots, err, err_len) < 0 || flush(v, err, err_len) < 0)
		return -1;
	/* PercentInUse follows the new cluster: the bitmap's count, rounded
	 * down, or 0xFF ("not known") on a volume that was already dirty,
	 * whose bitmap may be half-way through another change. */
	if (g.cluster) {
		v->bs->percent_in_use = mark ? exfat_percent_in_use(g.in_use, v->cc) : 0xFF;
		if (write_flags(v, flags, err, err_len) < 0)
			return -1;
	}
	c->grown_cluster = g.cluster;
	scan_root(v);
	return 0;
}

static int id_close(struct exfat_id_volume *v, char *err, size_t err_len)
{
	int rc = 0;
	if (v->undo && kb_undo_close(v->undo) < 0)
		rc = fail(v, err, err_len, "undo file %s: %s", v->undo_path, strerror(errno));
	if (close(v->fd) < 0 && v->writable && rc == 0)
		rc = fail(v, err, err_len, "close: %s", strerror(errno));
	free_volume(v);
	return rc;
}

int exfat_id_apply(const char *path, struct exfat_id_change *change, const char *undo_path,
		   struct exfat_id *before, struct exfat_id *after, bool *others_lock, char *err, size_t err_len)
{
	struct exfat_id_volume *v = id_open(path, change != NULL, undo_path, others_lock, err, err_len);
	if (!v)
		return -1;
	*before = v->id;
	int rc = change ? id_write(v, change, err, err_len) : 0;
	*after = v->id;
	char close_err[512];
	if (id_close(v, close_err, sizeof(close_err)) < 0 && rc == 0) {
		snprintf(err, err_len, "%s", close_err);
		rc = -1;
	}
	return rc;
}
