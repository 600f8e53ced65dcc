/* exFAT checker: who owns each cluster, as the walk finds them.
 *
 * Every chain the checker follows (the root directory, the allocation bitmap
 * and up-case table, then each file and directory in walk order) claims its
 * clusters in the "used" bitmap as it goes. A chain that runs into a cluster
 * it claimed itself loops: it is cut back to the clusters before, as is one
 * that is broken or shorter than its size (its DataLength and ValidDataLength
 * shrink, its FAT chain ends). A file's chain that runs into a cluster
 * another chain holds is not cut there: which of the two claims the evidence
 * backs is only known once every claim has been seen, so it waits, holding
 * the clusters before that one, and fsck_conflicts.c settles it after the
 * walk. For the same reason a chain that goes on past its size is only ended
 * there once the claims are settled: the link past its end may be what
 * another file's chain rests on. A chain that reaches a cluster the FAT marks
 * bad ends before it; the bad cluster stays claimed, as do bad clusters no
 * file owns (not orphans).
 *
 * Reads the FAT (through fsck_fat.c) and the stream extension entries
 * (FirstCluster, DataLength, ValidDataLength, NoFatChain) of each file. */
#include "exfat/fsck_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Marking the page lets the bitmap comparison skip the pages (and their
 * page faults) that no claimed cluster ever touched. */
static void map_claim(struct claim_map m, uint32_t k)
{
	exfat_bitmap_set(m.bits, k);
	if (m.pages)
		m.pages[k / 8 / USED_PAGE_BYTES] = 1;
}

void fsck_mark_used(struct vol *v, uint32_t k)
{
	map_claim((struct claim_map){ v->used, v->used_pages }, k);
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

int fsck_walk_chain(struct vol *v, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		    bool collect, struct chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	return fsck_walk_in(v, (struct claim_map){ v->used, v->used_pages }, first, contiguous, want, max, collect,
			    first, ch);
}

/* With collect, ch->list gets the clusters claimed by this call. */
int fsck_walk_in(struct vol *v, struct claim_map m, uint32_t first, bool contiguous, uint64_t want, uint64_t max,
		 bool collect, uint32_t from, struct chain *ch)
{
	uint64_t limit = want ? want : max;
	uint32_t cap = 0, done = ch->count;
	ch->list = NULL;
	if (collect) {
		cap = (uint32_t)(limit - done < 64 ? limit - done : 64);
		ch->list = malloc(sizeof(uint32_t) * (cap ? cap : 1));
		if (!ch->list) {
			fsck_fail_op(v, "out of memory");
			return -1;
		}
	}
	uint32_t c = from, prev = ch->last;
	if (!fsck_cluster_ok(v, c)) {
		ch->stop = done ? CH_BROKEN : CH_FIRST;
		ch->bad = c;
		return 0;
	}
	for (;;) {
		if (exfat_bitmap_test(m.bits, c - EXFAT_FIRST_CLUSTER)) {
			ch->stop = in_own_chain(v, first, contiguous, ch->count, c) ? CH_LOOP : CH_CROSS;
			ch->bad = c;
			return 0;
		}
		map_claim(m, c - EXFAT_FIRST_CLUSTER);
		if (collect) {
			if (ch->count - done == cap) {
				uint32_t *n = realloc(ch->list, sizeof(uint32_t) * (size_t)cap * 2);
				if (!n) {
					fsck_fail_op(v, "out of memory");
					return -1;
				}
				ch->list = n, cap *= 2;
			}
			ch->list[ch->count - done] = c;
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

uint32_t *fsck_chain_list(struct vol *v, uint32_t first, bool contiguous, uint32_t n)
{
	uint32_t *list = malloc(sizeof(uint32_t) * (n ? n : 1));
	if (!list) {
		fsck_fail_op(v, "out of memory");
		return NULL;
	}
	for (uint32_t k = 0, c = first; k < n; k++) {
		list[k] = c;
		c = contiguous ? c + 1 : fsck_fat_get(v, c);
	}
	return list;
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

/* A directory's size as its check takes it: whole clusters, at most 256 MiB. */
static uint64_t dir_bytes(const struct vol *v, uint64_t len)
{
	return len > EXFAT_MAX_DIR_BYTES ? EXFAT_MAX_DIR_BYTES : (len + v->csize - 1) & ~(v->csize - 1);
}

uint64_t fsck_stream_clusters(const struct vol *v, uint64_t len, bool is_dir)
{
	if (is_dir)
		len = dir_bytes(v, len);
	return (len + v->csize - 1) >> v->cshift;
}

/* The chain's stop is evidence against the claim in a later conflict. */
static bool chain_disagrees(const struct chain *ch, uint64_t want)
{
	return ch->count < want || ch->extra;
}

/* A chain that ran into a cluster another chain holds (or an extent whose
 * end the bitmap is to say, kind CLAIM_TAIL, or a directory held back,
 * CLAIM_HOLD): it keeps the clusters before it, and waits with what a
 * repair after the walk needs. */
static int defer_claim(struct dir_ctx *d, const struct set_at *set, struct fpath *path, bool is_dir,
		       uint64_t want, const struct chain *ch, unsigned kind)
{
	struct vol *v = d->v;
	const struct exfat_stream_entry *st = (const void *)fsck_entry_at(d, set->entry + 1);
	struct claimant *grown = fsck_grow(v, v->pending, &v->cappending, v->npending, sizeof(*grown));
	if (!grown)
		return -1;
	v->pending = grown;
	struct claimant *c = &v->pending[v->npending];
	*c = (struct claimant){ .key = fsck_entry_pos(d, set->entry), .span = set->span,
				.first = exfat_le32(st->first_cluster), .want = want,
				.len = is_dir ? dir_bytes(v, exfat_le64(st->data_length)) : exfat_le64(st->data_length),
				.contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN, .is_dir = is_dir, .held = ch->count,
				.last = ch->last, .at = ch->bad, .stop = ch->stop, .extra = ch->extra,
				.flags = kind | (set->suspect ? CLAIM_SUSPECT : 0) };
	c->path = strdup(fsck_fp(path));
	c->pos = malloc(sizeof(uint64_t) * set->span);
	if (!c->path || !c->pos) {
		free(c->path), free(c->pos);
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	for (uint32_t k = 0; k < set->span; k++)
		c->pos[k] = fsck_entry_pos(d, set->entry + k);
	v->npending++;
	return fsck_note_claim(v, c->key, c->flags, kind == CLAIM_PENDING ? c->held : CLAIM_HELD_ALL);
}

/* Checks the chain of a stream entry and fixes its sizes; claims clusters.
 * For directories, *dir_clusters gets the list. */
int fsck_check_stream_data(struct dir_ctx *d, const struct set_at *set, struct fpath *path, bool is_dir,
			   uint32_t **dir_clusters, uint32_t *dir_count, bool *changed)
{
	struct vol *v = d->v;
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, set->entry + 1);
	uint64_t pos = fsck_entry_pos(d, set->entry + 1);
	uint64_t len = exfat_le64(st->data_length), vdl = exfat_le64(st->valid_data_length);
	uint32_t first = exfat_le32(st->first_cluster);
	bool contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;

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
	if (is_dir && (len & (v->csize - 1) || len > EXFAT_MAX_DIR_BYTES) &&
	    fsck_problem(v, "dir-size", fsck_fp(path), pos, false, "round the size to whole clusters",
			 "directory size %llu is not a multiple of the cluster size or above 256 MiB",
			 (unsigned long long)len)) {
		st->data_length = htole64(dir_bytes(v, len));
		*changed = true;
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
	uint64_t want = fsck_stream_clusters(v, len, is_dir);
	uint64_t key = fsck_entry_pos(d, set->entry);
	struct chain ch;
	if (fsck_walk_chain(v, first, contiguous, want, 0, is_dir, &ch) < 0)
		return -1;
	if (ch.stop == CH_CROSS) {
		free(ch.list);
		return defer_claim(d, set, path, is_dir, want, &ch, CLAIM_PENDING);
	}
	if (contiguous && !is_dir && ch.count && (set->suspect || ch.stop == CH_BROKEN))
		return defer_claim(d, set, path, is_dir, want, &ch, CLAIM_TAIL);
	if (is_dir && (set->suspect || chain_disagrees(&ch, want)) && ch.count) {
		/* Its first cluster, or a FAT entry of its chain, may be wrong:
		 * reading it as a directory now could take (and repair) another
		 * file's data for entries. A chain that disagrees with the size
		 * is evidence against it when another file claims its clusters. */
		free(ch.list);
		return defer_claim(d, set, path, is_dir, want, &ch,
				   CLAIM_HOLD | (chain_disagrees(&ch, want) ? CLAIM_CHAIN : 0));
	}
	unsigned against = (set->suspect ? CLAIM_SUSPECT : 0) | (chain_disagrees(&ch, want) ? CLAIM_CHAIN : 0);
	if (against && fsck_note_claim(v, key, against, CLAIM_HELD_ALL) < 0) {
		free(ch.list);
		return -1;
	}
	fsck_stream_stop(v, st, path, pos, key, is_dir, &ch, changed);
	if (is_dir) {
		*dir_clusters = ch.list;
		*dir_count = ch.count;
	} else {
		free(ch.list);
	}
	return 0;
}

void fsck_stream_stop(struct vol *v, struct exfat_stream_entry *st, struct fpath *path, uint64_t pos, uint64_t key,
		      bool is_dir, const struct chain *ch, bool *changed)
{
	uint64_t len = exfat_le64(st->data_length), vdl = exfat_le64(st->valid_data_length);
	bool contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;
	if (is_dir)
		len = dir_bytes(v, len);
	uint64_t want = (len + v->csize - 1) >> v->cshift;
	char why[200];
	if (ch->count < want) {
		uint64_t keep = (uint64_t)ch->count << v->cshift;
		if (keep > len)
			keep = len;
		fsck_describe_stop(v, ch, why, sizeof(why));
		char repair[64];
		snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)keep);
		if (fsck_problem(v, fsck_stop_code(ch->stop), fsck_fp(path), pos, false, repair, "%s", why)) {
			if (ch->count && !contiguous)
				fsck_fat_set(v, ch->last, EXFAT_FAT_EOC);
			st->data_length = htole64(keep);
			if (vdl > keep)
				st->valid_data_length = htole64(keep);
			if (!ch->count) {
				st->first_cluster = 0;
				st->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
			}
			*changed = true;
		}
	} else if (ch->extra) {
		fsck_end_chain_later(v, key, fsck_fp(path), pos, ch->last, want);
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
}

bool fsck_chain_long(struct vol *v, const char *path, uint64_t pos, uint32_t last, uint64_t want)
{
	uint32_t next = fsck_fat_get(v, last);
	if (next == EXFAT_FAT_FREE)
		return fsck_problem(v, "chain-long", path, pos, true, "end the chain at the file size",
				    "no end-of-chain mark after the %llu clusters the size needs (FAT entry of %u is 0, free)",
				    (unsigned long long)want, last);
	return fsck_problem(v, "chain-long", path, pos, true, "end the chain at the file size",
			    "cluster chain continues past the %llu clusters the size needs (FAT entry of %u is 0x%08x)",
			    (unsigned long long)want, last, next);
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

void *fsck_grow(struct vol *v, void *items, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return items;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *grown = realloc(items, ncap * size);
	if (!grown) {
		fsck_fail_op(v, "out of memory");
		return NULL;
	}
	*cap = ncap;
	return grown;
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
