/* exFAT checker: who owns each cluster, and which file gives one up.
 *
 * Every chain the checker follows (the root directory, the allocation bitmap
 * and up-case table, then each file and directory in walk order) claims its
 * clusters in the "used" bitmap as it goes, so a cluster is owned by the
 * first chain that reaches it. A chain that runs into a cluster already
 * claimed is a cross-link (another file's) or a loop (its own); either way
 * it stops there, and the repair cuts that later file back to the clusters
 * it had before: its FAT chain ends, its DataLength and ValidDataLength
 * shrink (check_stream_data). The earlier owner keeps the cluster whole.
 * A chain that reaches a cluster the FAT marks bad ends before it; the bad
 * cluster stays claimed, as do bad clusters no file owns (not orphans).
 *
 * Reads the FAT (through fsck_fat.c) and the stream extension entries
 * (FirstCluster, DataLength, ValidDataLength, NoFatChain) of each file. */
#include "exfat/fsck_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_used(const struct vol *v, uint32_t c)
{
	return exfat_bitmap_test(v->used, c - EXFAT_FIRST_CLUSTER);
}

/* Marking the page lets the bitmap comparison skip the pages (and their
 * page faults) that no claimed cluster ever touched. */
void fsck_mark_used(struct vol *v, uint32_t k)
{
	exfat_bitmap_set(v->used, k);
	v->used_pages[k / 8 / USED_PAGE_BYTES] = 1;
}

void fsck_claim(struct vol *v, uint32_t c)
{
	fsck_mark_used(v, c - EXFAT_FIRST_CLUSTER);
}

/* Was c claimed by the chain [first, ...) walked so far (count clusters)? */
static bool in_own_chain(const struct vol *v, uint32_t first, bool contiguous, uint32_t count, uint32_t c)
{
	if (contiguous)
		return c >= first && c - first < count;
	uint32_t x = first;
	for (uint32_t i = 0; i < count && fsck_cluster_ok(v, x); i++, x = fsck_fat_get((struct vol *)v, x))
		if (x == c)
			return true;
	return false;
}

/* Follows and claims a chain of `want` clusters (0: up to the end-of-chain
 * mark, at most `max`). */
int fsck_walk_chain(struct vol *v, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		      bool collect, struct chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	uint64_t limit = want ? want : max;
	uint32_t cap = 0;
	if (collect) {
		cap = (uint32_t)(limit < 64 ? limit : 64);
		ch->list = malloc(sizeof(uint32_t) * (cap ? cap : 1));
		if (!ch->list) {
			fsck_fail_op(v, "out of memory");
			return -1;
		}
	}
	uint32_t c = first, prev = 0;
	if (!fsck_cluster_ok(v, c)) {
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
		fsck_claim(v, c);
		if (collect) {
			if (ch->count == cap) {
				uint32_t *n = realloc(ch->list, sizeof(uint32_t) * (size_t)cap * 2);
				if (!n) {
					fsck_fail_op(v, "out of memory");
					return -1;
				}
				ch->list = n, cap *= 2;
			}
			ch->list[ch->count] = c;
		}
		ch->count++;
		ch->last = c;
		uint32_t next = contiguous ? c + 1 : fsck_fat_get(v, c);
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
		if (!fsck_cluster_ok(v, next)) {
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

const char *fsck_stop_code(enum chain_stop s)
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

void fsck_describe_stop(const struct vol *v, const struct chain *ch, char *buf, size_t len)
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

/* Checks the chain of a stream entry and fixes its sizes; claims clusters.
 * For directories, *dir_clusters gets the list. */
int fsck_check_stream_data(struct dir_ctx *d, uint32_t si, struct fpath *path, bool is_dir,
			     uint32_t **dir_clusters, uint32_t *dir_count, bool *changed)
{
	struct vol *v = d->v;
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, si);
	uint64_t pos = fsck_entry_pos(d, si);
	uint64_t len = exfat_le64(st->data_length), vdl = exfat_le64(st->valid_data_length);
	uint32_t first = exfat_le32(st->first_cluster);
	bool contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;
	char why[200];

	*dir_clusters = NULL;
	*dir_count = 0;
	if (len == 0) {
		/* A cluster in the heap may start a chain of real data (a lost size):
		 * letting it go is not for -p, which leaves it for -y or -s. */
		if (first != 0 && fsck_problem(v, "first-cluster", fsck_fp(path), pos, !fsck_cluster_ok(v, first),
					       "set the first cluster to 0",
					       "empty %s has first cluster %u", is_dir ? "directory" : "file", first)) {
			st->first_cluster = 0;
			st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			*changed = true;
		} else if (first != 0 && fsck_cluster_ok(v, first)) {
			/* Left as it is, its data shows up as orphans: -p must not free
			 * them behind the skipped repair. (Claiming the chain instead
			 * could make a later file that now owns those clusters look
			 * cross-linked, and a contiguous file has no chain to follow.) */
			v->lost_extent = true;
		}
		if (vdl != 0 && fsck_problem(v, "valid-length", fsck_fp(path), pos, true, "set ValidDataLength to 0",
					     "ValidDataLength %llu of an empty file", (unsigned long long)vdl)) {
			st->valid_data_length = 0;
			*changed = true;
		}
		return 0;
	}
	if (is_dir && (len & (v->csize - 1) || len > EXFAT_MAX_DIR_BYTES)) {
		uint64_t fixed = len > EXFAT_MAX_DIR_BYTES ? EXFAT_MAX_DIR_BYTES : (len + v->csize - 1) & ~(v->csize - 1);
		if (fsck_problem(v, "dir-size", fsck_fp(path), pos, false, "round the size to whole clusters",
				 "directory size %llu is not a multiple of the cluster size or above 256 MiB",
				 (unsigned long long)len)) {
			st->data_length = htole64(fixed);
			*changed = true;
		}
		len = fixed;
	}
	if (first == 0) {
		if (fsck_problem(v, "first-cluster", fsck_fp(path), pos, false, "truncate to 0 bytes",
				 "size %llu but no first cluster", (unsigned long long)len)) {
			st->data_length = 0, st->valid_data_length = 0;
			st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			*changed = true;
		}
		return 0;
	}
	uint64_t want = (len + v->csize - 1) >> v->cshift;
	struct chain ch;
	if (fsck_walk_chain(v, first, contiguous, want, 0, is_dir, &ch) < 0)
		return -1;
	if (ch.count < want) {
		uint64_t keep = (uint64_t)ch.count << v->cshift;
		if (keep > len)
			keep = len;
		fsck_describe_stop(v, &ch, why, sizeof(why));
		char repair[64];
		snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)keep);
		if (fsck_problem(v, fsck_stop_code(ch.stop), fsck_fp(path), pos, false, repair, "%s", why)) {
			if (ch.count && !contiguous)
				fsck_fat_set(v, ch.last, EXFAT_FAT_EOC);
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
		uint32_t next = fsck_fat_get(v, ch.last);
		if (next == EXFAT_FAT_FREE ? fsck_problem(v, "chain-long", fsck_fp(path), pos, true, "end the chain at the file size",
							  "no end-of-chain mark after the %llu clusters the size needs "
							  "(FAT entry of %u is 0, free)", (unsigned long long)want, ch.last)
					   : fsck_problem(v, "chain-long", fsck_fp(path), pos, true, "end the chain at the file size",
							  "cluster chain continues past the %llu clusters the size needs "
							  "(FAT entry of %u is 0x%08x)", (unsigned long long)want, ch.last, next))
			fsck_fat_set(v, ch.last, EXFAT_FAT_EOC);
	}
	vdl = exfat_le64(st->valid_data_length);
	len = exfat_le64(st->data_length);
	if (is_dir ? vdl != len : vdl > len) {
		if (fsck_problem(v, "valid-length", fsck_fp(path), pos, true, "set ValidDataLength to DataLength",
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

/* Of the clusters in mask (bitmap word w: allocated, owned by no file), the
 * ones the FAT marks bad are not orphans: they stay allocated, claimed as
 * the bad-cluster list's. Returns mask without them. */
uint64_t fsck_claim_bad(struct vol *v, uint64_t w, uint64_t mask)
{
	for (uint64_t m = mask; m; m &= m - 1) {
		uint32_t k = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(m));
		if (fsck_fat_get(v, k + EXFAT_FIRST_CLUSTER) == EXFAT_FAT_BAD) {
			fsck_mark_used(v, k);
			mask &= ~(1ull << (k % 64));
		}
	}
	return mask;
}

uint32_t fsck_alloc_cluster(struct vol *v, uint32_t *cursor)
{
	for (; *cursor < v->cc; (*cursor)++) {
		uint32_t k = *cursor;
		if (!exfat_bitmap_test(v->used, k) && !exfat_bitmap_test(v->disk_bm, k)) {
			fsck_mark_used(v, k);
			exfat_bitmap_set(v->disk_bm, k);
			v->bm_dirty[(k / 8) >> v->cshift] = 1;
			return k + EXFAT_FIRST_CLUSTER;
		}
	}
	return 0;
}
