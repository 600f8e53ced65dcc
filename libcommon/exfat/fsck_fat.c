/* exFAT checker: the FAT and the allocation bitmap.
 *
 * Reads the active FAT (64 KiB at a time on first use when repairs may be
 * made; through a few small windows for a read-only check), checks its first
 * two entries, and writes back the pages repairs changed. With two FATs
 * (TexFAT), the one not in use (VolumeFlags ActiveFat) is compared with the
 * one in use and repaired from it, and every page written goes to both; so
 * does the other FAT's allocation bitmap, against the one in use. Reads the allocation
 * bitmap through its root directory entry (size, chain) and, once the walk
 * has claimed every cluster in use (fsck_claims.c), compares the two: a
 * cluster in use but marked free, a cluster marked used that no file owns
 * (an orphan: freed, or with -s kept in /LOST+FOUND, fsck_lost_found.c). */
#include "exfat/fsck_internal.h"

#include "exfat/exfat_upcase.h"

#include <endian.h>
#include <stdlib.h>
#include <string.h>

#define FAT_PAGE_ENTRIES 1024u           /* dirty tracking granularity: 4 KiB of FAT */
#define BM_READ_BYTES (64u << 10)       /* read-only bitmap check: bytes per read */
#define FAT_COMPARE_BYTES (256u << 10)  /* two FATs compared: bytes of each per read */

/* ---- the FAT ------------------------------------------------------------- */

/* A read-only check reads the FAT through FAT_WINDOWS windows of
 * FAT_WINDOW_ENTRIES entries, direct-mapped: its memory stays constant. */
static uint32_t fat_window_fetch(struct vol *v, uint32_t c)
{
	uint64_t w = c / FAT_WINDOW_ENTRIES;
	unsigned slot = (unsigned)(w % FAT_WINDOWS);
	uint32_t *win = v->fat_win + (size_t)slot * FAT_WINDOW_ENTRIES;
	uint64_t first = w * FAT_WINDOW_ENTRIES, entries = (uint64_t)v->cc + 2;
	uint64_t n = entries - first < FAT_WINDOW_ENTRIES ? entries - first : FAT_WINDOW_ENTRIES;
	v->fat_win_no[slot] = 0;
	if (fsck_dev_read(v, v->fat_off + first * 4, win, n * 4) < 0)
		return EXFAT_FAT_EOC;
	for (uint64_t k = 0; k < n; k++)
		win[k] = le32toh(win[k]);
	v->fat_win_no[slot] = w + 1;
	return win[c % FAT_WINDOW_ENTRIES];
}

/* Repairs keep the whole FAT, read on first use FAT_CHUNK_ENTRIES entries
 * (64 KiB) at a time into a zero-filled allocation: an empty volume costs
 * little time or memory, and a full one is still read in large sequential
 * reads. */
uint32_t fsck_fat_fetch(struct vol *v, uint32_t c)
{
	if (!v->fat)
		return fat_window_fetch(v, c);
	uint64_t chunk = c / FAT_CHUNK_ENTRIES;
	if (!v->fat_loaded[chunk]) {
		uint64_t first = chunk * FAT_CHUNK_ENTRIES, entries = (uint64_t)v->cc + 2;
		uint64_t n = entries - first < FAT_CHUNK_ENTRIES ? entries - first : FAT_CHUNK_ENTRIES;
		v->fat_loaded[chunk] = 1;
		if (fsck_dev_read(v, v->fat_off + first * 4, v->fat + first, n * 4) < 0)
			return EXFAT_FAT_EOC;
		for (uint64_t k = first; k < first + n; k++)
			v->fat[k] = le32toh(v->fat[k]);
	}
	return v->fat[c];
}

void fsck_fat_set(struct vol *v, uint32_t c, uint32_t value)
{
	if (!v->fat)
		return; /* read-only: no repair is ever written */
	fsck_fat_get(v, c);
	v->fat[c] = value;
	v->fat_dirty[c / FAT_PAGE_ENTRIES] = 1;
}

/* With two FATs, the one not in use must hold what the one in use holds:
 * both are read side by side in large pieces and compared entry by entry
 * (as on disk, before any repair); the repair rewrites every page that
 * differs from the FAT in use, as repaired. */
static void check_fat_copy(struct vol *v)
{
	const struct exfat_boot_sector *bs = v->bs;
	if (bs->number_of_fats != 2)
		return;
	bool second_active = exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT;
	v->fat_copy_off = ((uint64_t)exfat_le32(bs->fat_offset) + (second_active ? 0 : exfat_le32(bs->fat_length)))
			  << bs->sector_shift;
	uint64_t entries = (uint64_t)v->cc + 2, differ = 0, first = 0;
	uint8_t *diff = calloc(entries / FAT_PAGE_ENTRIES + 1, 1);
	uint32_t *in_use = malloc(FAT_COMPARE_BYTES), *copy = malloc(FAT_COMPARE_BYTES);
	if (!diff || !in_use || !copy) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	for (uint64_t at = 0, n; at < entries; at += n) {
		n = entries - at < FAT_COMPARE_BYTES / 4 ? entries - at : FAT_COMPARE_BYTES / 4;
		if (fsck_dev_read(v, v->fat_off + at * 4, in_use, n * 4) < 0 ||
		    fsck_dev_read(v, v->fat_copy_off + at * 4, copy, n * 4) < 0)
			goto out;
		if (!memcmp(in_use, copy, n * 4))
			continue;
		for (uint64_t k = 0; k < n; k++)
			if (in_use[k] != copy[k]) {
				if (!differ++)
					first = at + k;
				diff[(at + k) / FAT_PAGE_ENTRIES] = 1;
			}
	}
	if (differ && fsck_problem(v, "fat-copy", "", v->fat_copy_off + first * 4, true, "copy the FAT in use over it",
				   "the %s FAT (not in use) differs from the %s (in use) in %llu entries (first: entry %llu)",
				   second_active ? "first" : "second", second_active ? "second" : "first",
				   (unsigned long long)differ, (unsigned long long)first))
		for (uint64_t p = 0; p * FAT_PAGE_ENTRIES < entries; p++)
			if (diff[p]) {
				fsck_fat_get(v, (uint32_t)(p * FAT_PAGE_ENTRIES)); /* its chunk read in */
				v->fat_dirty[p] = 1;
			}
out:
	free(diff), free(in_use), free(copy);
}

int fsck_read_fat(struct vol *v)
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
	v->upcase = malloc(sizeof(*v->upcase));
	if ((read_only ? !v->fat_win : !v->fat || !v->fat_dirty || !v->fat_loaded) ||
	    !v->used || !v->used_pages || !v->upcase) {
		fsck_fail_op(v, "out of memory (%llu clusters)", (unsigned long long)v->cc);
		return -1;
	}
	/* FAT[1] comes from the window or chunk FAT[0] was read in. */
	uint32_t f0 = fsck_fat_fetch(v, 0), f1 = fsck_fat_get(v, 1);
	if (v->failed)
		return -1;
	if ((f0 & 0xFFFFFF00u) != 0xFFFFFF00u || f1 != EXFAT_FAT_EOC) {
		if (fsck_problem(v, "fat-head", "", v->fat_off, true, "set FAT[0] and FAT[1]",
				 "FAT[0] 0x%08x / FAT[1] 0x%08x, expected 0xfffffff8 / 0xffffffff", f0, f1)) {
			fsck_fat_set(v, 0, EXFAT_FAT_MEDIA);
			fsck_fat_set(v, 1, EXFAT_FAT_EOC);
		}
	}
	check_fat_copy(v);
	return v->failed ? -1 : 0;
}

int fsck_write_fat(struct vol *v)
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
		if (fsck_dev_write(v, v->fat_off + first * 4, page, n * 4) < 0 ||
		    (v->fat_copy_off && fsck_dev_write(v, v->fat_copy_off + first * 4, page, n * 4) < 0))
			return -1;
	}
	return 0;
}

/* ---- the allocation bitmap ----------------------------------------------- */

/* Root-only entries: allocation bitmap (here) and up-case table (fsck_dir.c). */
void fsck_load_bitmap(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	struct exfat_bitmap_entry *e = (struct exfat_bitmap_entry *)fsck_entry_at(d, i);
	uint64_t pos = fsck_entry_pos(d, i);
	uint64_t need = ((uint64_t)v->cc + 7) / 8;
	uint64_t len = exfat_le64(e->data_length);
	/* BitmapFlags bit 0 names the FAT a bitmap goes with. */
	bool two = v->bs->number_of_fats == 2;
	bool copy = two && (e->flags & 1) != !!(exfat_le16(v->bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	if (copy ? v->bm_copy_found : v->bm_found) {
		if (fsck_problem(v, "bitmap-duplicate", "/", pos, false, "delete the extra entry",
				 two ? "second allocation bitmap entry for the same FAT" : "second allocation bitmap entry (one FAT)"))
			fsck_delete_entries(d, i, 1);
		return;
	}
	if (len != need) {
		if (fsck_problem(v, "bitmap-size", "/", pos, true, "set the size it must have",
				 "allocation bitmap size %llu, expected %llu for %u clusters",
				 (unsigned long long)len, (unsigned long long)need, v->cc)) {
			e->data_length = htole64(need);
			fsck_touch(d, i, 1);
		}
	}
	struct chain ch;
	uint64_t want = (need + v->csize - 1) >> v->cshift;
	if (fsck_walk_chain(v, exfat_le32(e->first_cluster), false, want, 0, true, &ch) < 0)
		return;
	if (ch.count < want) {
		char why[200];
		fsck_describe_stop(v, &ch, why, sizeof(why));
		fsck_problem(v, "bitmap-chain", "/", pos, false, NULL, "%sallocation bitmap: %s",
			     copy ? "the other FAT's " : "", why);
		if (!copy)
			fsck_fail(v, "the allocation bitmap is unusable");
		free(ch.list);
		return;
	}
	if (ch.extra && fsck_problem(v, "chain-long", "/", pos, true, "end the chain at the bitmap size",
				     "allocation bitmap chain continues past %llu clusters", (unsigned long long)want))
		fsck_fat_set(v, ch.last, EXFAT_FAT_EOC);
	if (copy) {
		v->bm_copy_found = true;
		v->bm_copy_clusters = ch.list;
		v->bm_copy_count = ch.count;
		return;
	}
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
		fsck_fail_op(v, "out of memory");
		return;
	}
	for (uint32_t k = 0; k < ch.count;) {
		uint32_t run = 1;
		while (k + run < ch.count && ch.list[k + run] == ch.list[k] + run && run < 2048)
			run++;
		if (fsck_dev_read(v, fsck_cluster_pos(v, ch.list[k]), v->disk_bm + ((uint64_t)k << v->cshift),
				  (size_t)run << v->cshift) < 0)
			return;
		k += run;
	}
}

/* Clusters whose bit is set in a but not in b: count, and the first one.
 * Both have room for a whole last 64-bit word; bits past ClusterCount are
 * ignored. */
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
			x = fsck_claim_bad(v, w, x);
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
	    fsck_problem(v, "bitmap-free-in-use", "", fsck_cluster_pos(v, v->bm_first), true, "mark them used",
			 "%llu clusters in use are marked free in the allocation bitmap (first: %u)",
			 (unsigned long long)free_but_used, first_fbu) && v->disk_bm)
		bitmap_take(v, true);
	if (orphans &&
	    fsck_problem(v, "bitmap-orphan", "", fsck_cluster_pos(v, v->bm_first), !v->lost_extent,
			 "mark them free (-s keeps them in /LOST+FOUND)",
			 "%llu clusters marked used belong to no file (first: %u)",
			 (unsigned long long)orphans, first_orphan) && v->disk_bm)
		bitmap_take(v, false);
}

/* Whether len bytes (a multiple of 8) are all zero. */
static bool all_zero(const uint8_t *p, size_t len)
{
	uint64_t any = 0;
	for (size_t k = 0; k < len; k += 8) {
		uint64_t x;
		memcpy(&x, p + k, 8);
		any |= x;
	}
	return !any;
}

/* The read-only comparison: the on-disk bitmap is read in pieces of at
 * most BM_READ_BYTES into one small buffer and compared word by word with
 * the clusters in use; pages of used that no cluster touched count as zero
 * without being read. A hole of a sparse image (most of an empty volume's
 * bitmap) is not read either, however long: it is all free. Where a page
 * of used is untouched and the bitmap under it free (a hole, or zero
 * words: most of a bitmap that is not full), there is nothing to compare,
 * and the stretch is passed over whole. */
static void check_bitmap_streamed(struct vol *v)
{
	uint64_t words = ((uint64_t)v->cc + 63) / 64, w = 0;
	uint64_t orphans = 0, free_but_used = 0;
	uint32_t first_fbu = 0, first_orphan = 0;
	uint8_t *buf = malloc(BM_READ_BYTES + 8);
	if (!buf) {
		fsck_fail_op(v, "out of memory");
		return;
	}
	/* Bitmap bytes [run_at, run_end) lie contiguous on the device from run_pos. */
	uint64_t run_at = 0, run_end = 0, run_pos = 0;
	for (uint64_t at = 0; at < v->bm_bytes && w < words;) {
		if (at >= run_end) {
			uint32_t k = (uint32_t)(at >> v->cshift), n = 1;
			while (k + n < v->bm_count && v->bm_clusters[k + n] == v->bm_clusters[k] + n)
				n++;
			run_at = (uint64_t)k << v->cshift;
			run_end = (uint64_t)(k + n) << v->cshift;
			if (run_end > v->bm_bytes)
				run_end = v->bm_bytes;
			run_pos = fsck_cluster_pos(v, v->bm_clusters[k]);
		}
		/* Pieces start on a word: a hole ends on one or at the end. */
		uint64_t pos = run_pos + (at - run_at), end = run_pos + (run_end - run_at), data, stop, len;
		fsck_data_extent(v, pos, end, &data, &stop);
		bool hole = data == end || data - pos >= 8;
		if (hole) {
			len = data == end ? end - pos : (data - pos) & ~7ull;
		} else {
			len = stop - pos < BM_READ_BYTES ? stop - pos : BM_READ_BYTES;
			len = (len + 7) & ~7ull;
			if (len > end - pos)
				len = end - pos;
			memset(buf + len, 0, 8 - len % 8);
			if (fsck_dev_read_data(v, pos, buf, len) < 0)
				break;
		}
		uint64_t w0 = w, w_end = w0 + (len + 7) / 8 < words ? w0 + (len + 7) / 8 : words;
		for (; w < w_end; w++) {
			uint64_t disk = 0, in_use = 0;
			bool touched = v->used_pages[w * 8 / USED_PAGE_BYTES];
			if (!touched) {
				uint64_t next = (w * 8 / USED_PAGE_BYTES + 1) * USED_PAGE_BYTES / 8;
				uint64_t stop_w = next < w_end ? next : w_end;
				if (hole || all_zero(buf + (w - w0) * 8, (stop_w - w) * 8)) {
					w = stop_w - 1;
					continue;
				}
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
				orphan = fsck_claim_bad(v, w, orphan);
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
		at += len;
	}
	free(buf);
	if (v->failed)
		return;
	bitmap_problems(v, free_but_used, first_fbu, orphans, first_orphan);
	uint64_t claimed = count_used(v);
	v->r->clusters_used += claimed;
	/* Nothing is written: the bitmap marks what it was read with. */
	v->bm_used = claimed - free_but_used + orphans;
}

/* With two FATs, the other FAT's bitmap must hold what the bitmap in use
 * holds: both are compared as they are on the device, before this run
 * writes either. Returns true when it is to be rewritten whole. */
static bool check_bitmap_copy(struct vol *v)
{
	if (!v->bm_copy_found)
		return false;
	uint64_t differ = 0;
	uint32_t first = 0;
	uint8_t *in_use = malloc(v->csize), *copy = malloc(v->csize);
	if (!in_use || !copy) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	for (uint32_t k = 0; k < v->bm_count && k < v->bm_copy_count; k++) {
		uint64_t start = (uint64_t)k << v->cshift;
		uint64_t len = v->bm_bytes - start < v->csize ? v->bm_bytes - start : v->csize;
		if (fsck_dev_read(v, fsck_cluster_pos(v, v->bm_clusters[k]), in_use, len) < 0 ||
		    fsck_dev_read(v, fsck_cluster_pos(v, v->bm_copy_clusters[k]), copy, len) < 0)
			goto out;
		for (uint64_t i = 0; i < len; i++) {
			unsigned x = in_use[i] ^ copy[i];
			if (start + i == v->bm_bytes - 1 && v->cc % 8)
				x &= (1u << (v->cc % 8)) - 1;
			if (!x)
				continue;
			if (!differ)
				first = (uint32_t)((start + i) * 8 + (unsigned)__builtin_ctz(x)) + EXFAT_FIRST_CLUSTER;
			differ += (unsigned)__builtin_popcount(x);
		}
	}
out:
	free(in_use), free(copy);
	return differ && !v->failed &&
	       fsck_problem(v, "bitmap-copy", "", fsck_cluster_pos(v, v->bm_copy_clusters[0]), true,
			    "copy the one in use over it",
			    "the allocation bitmap of the FAT not in use differs from the one in use in %llu clusters (first: %u)",
			    (unsigned long long)differ, first);
}

void fsck_check_bitmap(struct vol *v)
{
	uint64_t free_but_used, orphans;
	uint32_t first_fbu = 0, first_orphan = 0;
	bool copy_whole = check_bitmap_copy(v);
	if (!v->disk_bm) {
		check_bitmap_streamed(v);
		return;
	}
	orphans = bits_only_in(v, v->disk_bm, v->used, true, &first_orphan);
	/* With -s the orphans become files, and the clusters of the new
	 * directory are marked in disk_bm: the bitmap to be written. */
	if (orphans && v->o->rescue && fsck_rescue_orphans(v, orphans, first_orphan))
		orphans = 0;
	if (v->failed)
		return;
	free_but_used = bits_only_in(v, v->used, v->disk_bm, false, &first_fbu);
	bitmap_problems(v, free_but_used, first_fbu, orphans, first_orphan);
	v->r->clusters_used += count_used(v);
	v->bm_used = exfat_bitmap_used(v->disk_bm, v->bm_bytes, 0, v->cc);
	/* Every change goes to the other FAT's bitmap too. */
	for (uint32_t c = 0; c < v->bm_count; c++) {
		if (v->bm_dirty[c])
			fsck_dev_write(v, fsck_cluster_pos(v, v->bm_clusters[c]), v->disk_bm + ((uint64_t)c << v->cshift), v->csize);
		if ((v->bm_dirty[c] || copy_whole) && c < v->bm_copy_count)
			fsck_dev_write(v, fsck_cluster_pos(v, v->bm_copy_clusters[c]), v->disk_bm + ((uint64_t)c << v->cshift),
				       v->csize);
	}
}
