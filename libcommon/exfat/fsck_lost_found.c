/* exFAT checker: orphan chains kept in /LOST+FOUND (-s).
 *
 * Clusters marked used in the allocation bitmap that no file owns are
 * followed through the FAT into chains; each chain becomes a file
 * FILEnnnnnnn.CHK in a new directory /LOST+FOUND (LOST+FOUND~N when the
 * name is taken), whose clusters and root directory entry set are allocated
 * from free clusters, in the bitmap being built, once there is room for all.
 * Reads and writes the FAT, the allocation bitmap and the root directory. */
#include "exfat/fsck_internal.h"

#include "exfat/exfat_upcase.h"

#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOST_FOUND_NAME "LOST+FOUND"

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

bool fsck_rescue_orphans(struct vol *v, uint64_t orphans, uint32_t first_orphan)
{
	uint64_t max_files = (EXFAT_MAX_DIR_BYTES / EXFAT_ENTRY_SIZE - 1) / 3;
	/* Room first: the directory's clusters at most (one file per orphan),
	 * and one more should the root need to grow. Without it the orphans
	 * are left as they are (not freed: -s asked to keep them). */
	uint64_t files_max = orphans < max_files ? orphans : max_files;
	uint64_t need = (((files_max * 3 + 1) * EXFAT_ENTRY_SIZE + v->csize - 1) >> v->cshift) + 1;
	if (free_clusters(v) < need) {
		fsck_problem(v, "bitmap-orphan", "", fsck_cluster_pos(v, v->bm_first), false, NULL,
			     "%llu clusters marked used belong to no file (first: %u); no room for "
			     "/LOST+FOUND (%llu free clusters needed)", (unsigned long long)orphans, first_orphan,
			     (unsigned long long)need);
		return true;
	}
	if (!fsck_problem(v, "bitmap-orphan", "", fsck_cluster_pos(v, v->bm_first), true,
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
		fsck_fail_op(v, "out of memory");
		goto out;
	}
#define ORPHAN(k) (exfat_bitmap_test(v->disk_bm, k) && !exfat_bitmap_test(v->used, k))
	for (uint32_t k = 0; k < v->cc; k++) {
		if (!ORPHAN(k))
			continue;
		uint32_t n = fsck_fat_get(v, k + EXFAT_FIRST_CLUSTER);
		if (fsck_cluster_ok(v, n) && n - EXFAT_FIRST_CLUSTER != k && ORPHAN(n - EXFAT_FIRST_CLUSTER))
			exfat_bitmap_set(has_pred, n - EXFAT_FIRST_CLUSTER);
	}
	uint64_t nfiles = 0;
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t k = 0; k < v->cc && nfiles < max_files; k++) {
			if (!ORPHAN(k) || (pass == 0 && exfat_bitmap_test(has_pred, k)))
				continue;
			uint32_t c = k + EXFAT_FIRST_CLUSTER, last = c, len = 0;
			while (fsck_cluster_ok(v, c) && ORPHAN(c - EXFAT_FIRST_CLUSTER)) {
				fsck_claim(v, c);
				last = c;
				len++;
				c = fsck_fat_get(v, c);
			}
			fsck_fat_set(v, last, EXFAT_FAT_EOC);
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
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < ndir; k++) {
		uint32_t c = fsck_alloc_cluster(v, &cursor);
		if (!c) {
			free(dir_clusters);
			fsck_fail(v, "no free cluster left for /LOST+FOUND");
			goto out;
		}
		if (prev)
			fsck_fat_set(v, prev, c);
		else
			first_dir = c;
		fsck_fat_set(v, c, EXFAT_FAT_EOC);
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
		fsck_dev_write(v, fsck_cluster_pos(v, dir_clusters[k]), dir + ((uint64_t)k << v->cshift), v->csize);
	free(dir_clusters);

	/* Its entry set in the root directory: in three free entries, or in a
	 * new cluster at the end of the root's chain. */
	uint64_t root_bytes = ((uint64_t)v->root_count << v->cshift);
	root = calloc(1, root_bytes + v->csize);
	if (!root) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	struct dir_job rj = { .clusters = v->root_clusters, .count = v->root_count };
	if (fsck_read_dir(v, &rj, root) < 0)
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
		uint32_t c = fsck_alloc_cluster(v, &cursor);
		if (!c) {
			fsck_fail(v, "no free cluster left for the root directory");
			goto out;
		}
		fsck_fat_set(v, v->root_clusters[v->root_count - 1], c);
		fsck_fat_set(v, c, EXFAT_FAT_EOC);
		memset(root + root_bytes, 0, v->csize);
		fsck_dev_write(v, fsck_cluster_pos(v, c), root + root_bytes, v->csize);
		slot = root_bytes;
		uint32_t *n = realloc(v->root_clusters, sizeof(uint32_t) * (v->root_count + 1));
		if (!n) {
			fsck_fail_op(v, "out of memory");
			goto out;
		}
		v->root_clusters = n;
		v->root_clusters[v->root_count++] = c;
	}
	memcpy(root + slot, set, count * EXFAT_ENTRY_SIZE);
	for (uint64_t k = slot >> v->cshift; k <= (slot + count * EXFAT_ENTRY_SIZE - 1) >> v->cshift; k++)
		fsck_dev_write(v, fsck_cluster_pos(v, v->root_clusters[k]), root + (k << v->cshift), v->csize);
	v->r->directories++;
	v->r->files += nfiles;
	fsck_note(v, "%llu orphan chains kept in /%s", (unsigned long long)nfiles, lf);
out:
	free(has_pred), free(heads), free(lengths), free(dir), free(root);
	return !v->failed;
}
