/* exFAT checker: conflicting claims, settled by evidence after the walk.
 *
 * The walk (fsck_claims.c) claims clusters first come, first served, but a
 * file whose chain runs into a cluster another chain already holds does not
 * lose it there: it waits, holding the clusters before that one. Once the
 * walk is done, a census (a second pass over the directories walked, made
 * only when something waits) finds which claim holds each such cluster, and
 * the two claims are weighed, heaviest evidence against first:
 *   1. its entry set's checksum was wrong, its chain disagreed with its size
 *      (ended before it, went on past it, was broken or looped), or it was
 *      already cut back in an earlier conflict;
 *   2. the chain, or the NoFatChain extent, runs onto the first clusters of
 *      other files whose entry sets are intact (the more, the heavier): it
 *      goes past its own clusters;
 *   3. the clusters it alone claims that the allocation bitmap marks free
 *      (the more, the heavier).
 * (A FAT link gone astray shows first as a chain that disagrees with its
 * size; a NoFatChain extent has nothing but its first cluster and the
 * bitmap to say where its clusters end.)
 * The claim with the heavier evidence against it is cut back to the last
 * cluster it really owns (before the conflict, and for a NoFatChain extent
 * before the clusters the bitmap marks free there); the other keeps all of
 * its clusters, and the check goes on with them. A file whose entry, chain
 * and bitmap agree is never cut back in favour of one that does not.
 * When nothing weighs against either, the two chains truly share clusters
 * (a cross-link): the waiting file gets a copy of the shared clusters in free
 * ones, so both keep their data; with no room for it, it is cut back, and
 * the bytes lost are said. When the evidence weighs the same against both,
 * the claim against which more of the kinds in 1 speak is cut back, and
 * when that is even too, the later claim (in walk order). The root
 * directory, the allocation bitmap and the up-case table, a cluster marked
 * bad, and a directory already checked never give up clusters; an up-case
 * table found damaged (its TableChecksum, size or chain) is weighed like a
 * damaged entry set instead (its chain may have gone astray into a file's),
 * since the default table replaces it once settled (fsck_rewrite_upcase()).
 *
 * Memory: nothing per cluster while the walk runs; a few bitmaps of the
 * cluster count while settling. Repairs go through the undo file like every
 * other: the entry sets are read back and rewritten in place. */
#include "exfat/fsck_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define MAX_SETTLE_ROUNDS 64
#define BM_CACHE_BYTES 4096u

/* ---- notes: what the walk saw against a claim ------------------------------ */

static int note_cmp(const void *a, const void *b)
{
	const struct claim_note *x = a, *y = b;
	return x->key < y->key ? -1 : x->key > y->key;
}

static struct claim_note *note_find(struct vol *v, uint64_t key)
{
	if (!v->nnotes)
		return NULL;
	if (!v->notes_sorted) {
		qsort(v->notes, v->nnotes, sizeof(*v->notes), note_cmp);
		v->notes_sorted = true;
	}
	struct claim_note want = { .key = key };
	return bsearch(&want, v->notes, v->nnotes, sizeof(*v->notes), note_cmp);
}

int fsck_note_claim(struct vol *v, uint64_t key, unsigned flags, uint32_t held)
{
	struct claim_note *grown = fsck_grow(v, v->notes, &v->capnotes, v->nnotes, sizeof(*grown));
	if (!grown)
		return -1;
	v->notes = grown;
	v->notes[v->nnotes++] = (struct claim_note){ key, held, flags };
	v->notes_sorted = false;
	return 0;
}

/* Updates (or adds) the note of the file entry at key. */
static void note_set(struct vol *v, uint64_t key, unsigned add, unsigned clear, uint32_t held)
{
	struct claim_note *n = note_find(v, key);
	if (!n) {
		fsck_note_claim(v, key, add, held);
		return;
	}
	n->flags = (n->flags | add) & ~clear;
	n->held = held;
}

void fsck_end_chain_later(struct vol *v, uint64_t key, const char *path, uint64_t pos, uint32_t last, uint64_t want)
{
	struct later_eoc *grown = fsck_grow(v, v->eocs, &v->capeocs, v->neocs, sizeof(*grown));
	char *p = grown ? strdup(path) : NULL;
	if (!grown)
		return;
	v->eocs = grown;
	if (!p) {
		fsck_fail_op(v, "out of memory");
		return;
	}
	v->eocs[v->neocs++] = (struct later_eoc){ key, pos, p, last, want };
}

void fsck_claims_done(struct vol *v)
{
	for (size_t k = 0; k < v->neocs; k++) {
		struct later_eoc *e = &v->eocs[k];
		struct claim_note *n = note_find(v, e->key);
		if ((!n || !(n->flags & CLAIM_CUT)) && fsck_chain_long(v, e->path, e->pos, e->last, e->want))
			fsck_fat_set(v, e->last, EXFAT_FAT_EOC);
		free(e->path);
	}
	v->neocs = 0;
}

static void claimant_free(struct claimant *c)
{
	free(c->path), free(c->pos);
	c->path = NULL, c->pos = NULL;
}

void fsck_claims_free(struct vol *v)
{
	for (size_t k = 0; k < v->npending; k++)
		claimant_free(&v->pending[k]);
	for (size_t k = 0; k < v->neocs; k++)
		free(v->eocs[k].path);
	free(v->pending), free(v->notes), free(v->eocs);
	v->pending = NULL, v->notes = NULL, v->eocs = NULL;
	v->npending = v->nnotes = v->neocs = 0;
}

/* ---- what settling needs: a scratch map, the on-disk bitmap --------------- */

struct settle {
	struct claim_map scratch;      /* all clear between uses */
	uint8_t bm_cache[BM_CACHE_BYTES];
	uint64_t bm_cache_at;          /* byte of the bitmap held + 1, 0: none */
};

static void scratch_clear(struct settle *st, const uint32_t *list, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++)
		exfat_bitmap_clear(st->scratch.bits, list[k] - EXFAT_FIRST_CLUSTER);
}

static void scratch_mark(struct settle *st, const uint32_t *list, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++)
		exfat_bitmap_set(st->scratch.bits, list[k] - EXFAT_FIRST_CLUSTER);
}

/* Is cluster c marked used in the allocation bitmap on the device? (A
 * read-only check holds no copy of it: it is read a piece at a time.) */
static bool disk_bit(struct vol *v, struct settle *st, uint32_t c)
{
	uint32_t k = c - EXFAT_FIRST_CLUSTER;
	if (v->disk_bm)
		return exfat_bitmap_test(v->disk_bm, k);
	uint64_t byte = k / 8, piece = v->csize < BM_CACHE_BYTES ? v->csize : BM_CACHE_BYTES;
	uint64_t start = byte / piece * piece;
	if (st->bm_cache_at != start + 1) {
		uint32_t ci = (uint32_t)(start >> v->cshift);
		if (ci >= v->bm_count ||
		    fsck_dev_read(v, fsck_cluster_pos(v, v->bm_clusters[ci]) + (start & (v->csize - 1)), st->bm_cache,
				  piece) < 0)
			return true; /* unknown: counts as marked */
		st->bm_cache_at = start + 1;
	}
	return st->bm_cache[byte - start] & (1u << (k & 7));
}

/* ---- the census: who holds each cluster a waiting claim ran into ---------- */

struct holder {
	struct claimant c;             /* path NULL for a volume structure */
	const char *what;              /* its path, or which structure */
	uint32_t *list;                /* the clusters it holds */
	bool fixed;                    /* never cut back (structure, directory already checked) */
	bool bad;                      /* a cluster marked bad */
	bool upcase;                   /* the up-case table, damaged: weighed like a file */
	uint32_t pending;              /* its index in v->pending, or NONE */
	bool changed;                  /* its hold changed in this round */
};

struct target {
	uint32_t at, pending;
};

struct census {
	struct claim_map seen;         /* the holds, claimed again */
	uint8_t *firsts;               /* first clusters of intact entry sets */
	uint8_t *targets;              /* clusters waiting claims ran into */
	struct target *tg;             /* the same, sorted, with their claims */
	size_t ntg;
	struct holder *h;
	size_t nh, caph;
	uint32_t *holder_of;           /* per pending claim: its holder, or NONE */
	uint32_t *index_in;            /* per pending claim: its cluster's index in the holder's list */
	uint32_t *self;                /* per pending claim: the holder it is itself, or NONE */
	bool *changed;                 /* per pending claim: settled or moved on in this round */
};

static int target_cmp(const void *a, const void *b)
{
	const struct target *x = a, *y = b;
	return x->at < y->at ? -1 : x->at > y->at;
}

static void census_free(struct census *cs)
{
	for (size_t k = 0; k < cs->nh; k++) {
		free(cs->h[k].list);
		if (cs->h[k].pending == NONE)
			claimant_free(&cs->h[k].c);
	}
	free(cs->h), free(cs->seen.bits), free(cs->firsts), free(cs->targets), free(cs->tg);
	free(cs->holder_of), free(cs->index_in), free(cs->self), free(cs->changed);
	memset(cs, 0, sizeof(*cs));
}

static bool bit(const uint8_t *map, uint32_t c)
{
	return exfat_bitmap_test(map, c - EXFAT_FIRST_CLUSTER);
}

/* The claim h holds list[k], a cluster waiting claims ran into. */
static void attach(struct census *cs, uint32_t h, uint32_t k)
{
	uint32_t at = cs->h[h].list[k];
	size_t lo = 0, hi = cs->ntg;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (cs->tg[mid].at < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < cs->ntg && cs->tg[lo].at == at; lo++) {
		uint32_t p = cs->tg[lo].pending;
		if (cs->holder_of[p] == NONE && cs->self[p] != h)
			cs->holder_of[p] = h, cs->index_in[p] = k;
	}
}

/* A claim's held clusters, claimed again in the census: when it holds a
 * target, it becomes a holder (taking list and c; else both are freed). */
static int census_hold(struct vol *v, struct census *cs, struct holder *tmpl, uint32_t *list, uint32_t n)
{
	uint32_t h = NONE;
	for (uint32_t k = 0; k < n; k++) {
		exfat_bitmap_set(cs->seen.bits, list[k] - EXFAT_FIRST_CLUSTER);
		if (!bit(cs->targets, list[k]))
			continue;
		if (h == NONE) {
			struct holder *grown = fsck_grow(v, cs->h, &cs->caph, cs->nh, sizeof(*grown));
			if (!grown)
				return -1;
			cs->h = grown;
			h = (uint32_t)cs->nh++;
			cs->h[h] = *tmpl;
			cs->h[h].list = list;
			cs->h[h].c.held = n;
			cs->h[h].c.last = list[n - 1];
			if (tmpl->pending != NONE)
				cs->self[tmpl->pending] = h;
		}
		attach(cs, h, k);
	}
	return h == NONE ? 0 : 1;
}

/* A volume structure's clusters; against: what weighs against its claim (a
 * damaged up-case table, to be rewritten), else it never gives them up. */
static int census_structure(struct vol *v, struct census *cs, const uint32_t *src, uint32_t n, const char *what,
			    unsigned against)
{
	if (!n)
		return 0;
	uint32_t *list = malloc(sizeof(uint32_t) * n);
	if (!list) {
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	memcpy(list, src, sizeof(uint32_t) * n);
	if (!against)
		exfat_bitmap_set(cs->firsts, list[0] - EXFAT_FIRST_CLUSTER);
	struct holder t = { .c = { .first = list[0], .flags = against }, .what = what, .fixed = !against,
			    .upcase = against != 0, .pending = NONE };
	int rc = census_hold(v, cs, &t, list, n);
	if (rc <= 0)
		free(list);
	return rc < 0 ? -1 : 0;
}

static uint32_t pending_index(const struct vol *v, uint64_t key)
{
	for (size_t k = 0; k < v->npending; k++)
		if (v->pending[k].key == key)
			return (uint32_t)k;
	return NONE;
}

/* The byte offset of entry i of a directory whose clusters are job's. */
static uint64_t job_entry_pos(const struct vol *v, const struct dir_job *job, uint32_t i)
{
	uint64_t byte = (uint64_t)i * EXFAT_ENTRY_SIZE;
	return fsck_cluster_pos(v, job->clusters[byte >> v->cshift]) + (byte & (v->csize - 1));
}

/* The file entry set at entry i of a directory in the census: its claim
 * claimed again, and a directory it holds pushed to be read. */
static int census_set(struct vol *v, struct census *cs, const struct dir_job *job, const uint8_t *buf, uint32_t i,
		      uint32_t nentries, struct dir_job **stack, size_t *nstack, size_t *capstack)
{
	const uint8_t *fe = buf + (size_t)i * EXFAT_ENTRY_SIZE;
	const struct exfat_stream_entry *st = (const void *)(fe + EXFAT_ENTRY_SIZE);
	bool is_dir = exfat_get_le16(fe + 4) & EXFAT_ATTR_DIRECTORY;
	uint64_t len = exfat_le64(st->data_length);
	uint32_t first = exfat_le32(st->first_cluster);
	uint64_t want = fsck_stream_clusters(v, len, is_dir);
	if (!want || !first)
		return 0;
	uint64_t key = job_entry_pos(v, job, i);
	struct claim_note *note = note_find(v, key);
	unsigned flags = note ? note->flags : 0;
	if (!(flags & (CLAIM_SUSPECT | CLAIM_CUT)) && fsck_cluster_ok(v, first))
		exfat_bitmap_set(cs->firsts, first - EXFAT_FIRST_CLUSTER);
	uint64_t bound = note && note->held != CLAIM_HELD_ALL ? note->held : want;
	if (!bound)
		return 0;
	bool contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;
	struct chain ch = { 0 };
	if (fsck_walk_in(v, cs->seen, first, contiguous, bound, 0, true, first, &ch) < 0)
		return -1;
	if (!ch.count) {
		free(ch.list);
		return 0;
	}
	/* The name, for messages. */
	uint16_t name[EXFAT_MAX_NAME_LEN + 15];
	unsigned names = 0;
	while (i + 2 + names < nentries && names < 17 && fe[(2 + names) * EXFAT_ENTRY_SIZE] == EXFAT_ENTRY_NAME) {
		const struct exfat_name_entry *ne = (const void *)(fe + (2 + names) * EXFAT_ENTRY_SIZE);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++)
			name[names * EXFAT_NAME_CHARS_PER_ENTRY + c] = exfat_get_le16(&ne->name[c]);
		names++;
	}
	unsigned nl = st->name_length < names * EXFAT_NAME_CHARS_PER_ENTRY ? st->name_length
									      : names * EXFAT_NAME_CHARS_PER_ENTRY;
	char *path = fsck_child_path(job->path, name, nl ? nl : 1);
	uint32_t span = 1 + fe[1];
	if (span < 2 || i + span > nentries)
		span = 2 + names;
	uint64_t *pos = malloc(sizeof(uint64_t) * span);
	if (!path || !pos) {
		free(path), free(pos), free(ch.list);
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	for (uint32_t k = 0; k < span; k++)
		pos[k] = job_entry_pos(v, job, i + k);
	uint32_t pend = flags & CLAIM_PENDING ? pending_index(v, key) : NONE;
	struct holder t = { .c = { .key = key, .path = path, .pos = pos, .span = span, .first = first, .want = want,
				   .len = len, .contiguous = contiguous, .is_dir = is_dir, .flags = flags },
			    .what = path, .fixed = is_dir && pend == NONE && !(flags & CLAIM_HOLD), .pending = pend };
	if (pend != NONE) {
		/* A waiting claim's record stays the one settled. */
		free(path), free(pos);
		t.c = v->pending[pend];
		t.what = t.c.path;
	}
	if (ch.marked_bad && bit(cs->targets, ch.marked_bad)) {
		uint32_t *one = malloc(sizeof(uint32_t));
		struct holder b = { .c = { .first = ch.marked_bad }, .what = "a cluster marked bad", .fixed = true,
				    .bad = true, .pending = NONE };
		if (!one || (*one = ch.marked_bad, census_hold(v, cs, &b, one, 1)) <= 0)
			free(one);
	}
	int held = census_hold(v, cs, &t, ch.list, ch.count);
	if (held < 0)
		return -1;
	bool descend = is_dir && !(flags & (CLAIM_PENDING | CLAIM_HOLD));
	if (descend) {
		struct dir_job *grown = fsck_grow(v, *stack, capstack, *nstack, sizeof(*grown));
		if (!grown)
			goto drop;
		*stack = grown;
		char *dpath = strdup(t.what);
		uint32_t *clusters = held ? fsck_chain_list(v, first, contiguous, ch.count) : ch.list;
		if (!dpath || !clusters) {
			free(dpath);
			if (held)
				free(clusters);
			fsck_fail_op(v, "out of memory");
			goto drop;
		}
		(*stack)[(*nstack)++] = (struct dir_job){ dpath, clusters, ch.count, 0 };
		if (!held)
			ch.list = NULL;
	}
drop:
	if (!held) {
		free(ch.list);
		if (pend == NONE)
			claimant_free(&t.c);
	}
	return v->failed ? -1 : 0;
}

/* Every claim held, claimed again: the volume's structures, then the tree
 * as walked (waiting directories are not read: the walk has not read them). */
static int census_run(struct vol *v, struct census *cs)
{
	memset(cs, 0, sizeof(*cs));
	size_t bytes = ((uint64_t)v->cc + 7) / 8 + 8, np = v->npending;
	cs->seen.bits = calloc(bytes, 1);
	cs->firsts = calloc(bytes, 1);
	cs->targets = calloc(bytes, 1);
	cs->tg = malloc(sizeof(*cs->tg) * np);
	cs->holder_of = malloc(sizeof(uint32_t) * np);
	cs->index_in = malloc(sizeof(uint32_t) * np);
	cs->self = malloc(sizeof(uint32_t) * np);
	cs->changed = calloc(np, sizeof(bool));
	if (!cs->seen.bits || !cs->firsts || !cs->targets || !cs->tg || !cs->holder_of || !cs->index_in || !cs->self ||
	    !cs->changed) {
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	for (size_t k = 0; k < np; k++) {
		cs->holder_of[k] = cs->self[k] = NONE;
		if (!(v->pending[k].flags & CLAIM_PENDING))
			continue;
		cs->tg[cs->ntg++] = (struct target){ v->pending[k].at, (uint32_t)k };
		if (fsck_cluster_ok(v, v->pending[k].at))
			exfat_bitmap_set(cs->targets, v->pending[k].at - EXFAT_FIRST_CLUSTER);
	}
	qsort(cs->tg, cs->ntg, sizeof(*cs->tg), target_cmp);

	uint32_t *upcase = v->upcase_count ? fsck_chain_list(v, v->upcase_first, false, v->upcase_count) : NULL;
	int rc = census_structure(v, cs, v->root_clusters, v->root_count, "the root directory", 0);
	if (!rc)
		rc = census_structure(v, cs, v->bm_clusters, v->bm_count, "the allocation bitmap", 0);
	if (!rc)
		rc = census_structure(v, cs, v->bm_copy_clusters, v->bm_copy_count, "the other FAT's allocation bitmap", 0);
	if (!rc && upcase)
		rc = census_structure(v, cs, upcase, v->upcase_count, "the up-case table", v->upcase_against);
	free(upcase);
	if (rc < 0 || v->failed)
		return -1;

	struct dir_job *stack = malloc(sizeof(*stack));
	size_t nstack = 0, capstack = 1;
	char *root = strdup("/");
	uint32_t *rootc = malloc(sizeof(uint32_t) * (v->root_count ? v->root_count : 1));
	if (!stack || !root || !rootc) {
		free(stack), free(root), free(rootc);
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	memcpy(rootc, v->root_clusters, sizeof(uint32_t) * v->root_count);
	stack[nstack++] = (struct dir_job){ root, rootc, v->root_count, 0 };
	while (nstack && !v->failed) {
		struct dir_job job = stack[--nstack];
		uint64_t dbytes = (uint64_t)job.count << v->cshift;
		uint8_t *buf = calloc(1, dbytes ? dbytes : 1);
		uint32_t n = (uint32_t)(dbytes / EXFAT_ENTRY_SIZE);
		if (!buf)
			fsck_fail_op(v, "out of memory");
		else if (fsck_read_dir(v, &job, buf) == 0)
			for (uint32_t i = 0; i < n && buf[(size_t)i * EXFAT_ENTRY_SIZE] != EXFAT_ENTRY_EOD; i++) {
				const uint8_t *e = buf + (size_t)i * EXFAT_ENTRY_SIZE;
				if (e[0] == EXFAT_ENTRY_FILE && i + 2 < n && e[EXFAT_ENTRY_SIZE] == EXFAT_ENTRY_STREAM &&
				    e[2 * EXFAT_ENTRY_SIZE] == EXFAT_ENTRY_NAME &&
				    census_set(v, cs, &job, buf, i, n, &stack, &nstack, &capstack) < 0)
					break;
			}
		free(buf), free(job.path), free(job.clusters);
	}
	for (size_t k = 0; k < nstack; k++)
		free(stack[k].path), free(stack[k].clusters);
	free(stack);
	return v->failed ? -1 : 0;
}

/* ---- weighing two claims --------------------------------------------------- */

/* One of the two claims in a conflict. */
struct side {
	struct claimant *c;
	const char *what;
	uint32_t *list;                /* the holder: the clusters it holds; the waiting one: its whole chain */
	uint32_t n;
	uint32_t idx;                  /* the index of the contested cluster in list */
	uint32_t first_hit;            /* index (> 0) of the first intact file's first cluster in list, or NONE */
	uint32_t firsts;               /* how many such first clusters list holds */
	uint32_t clear;                /* clusters it alone claims, marked free in the bitmap */
	unsigned flags;
	bool fixed, bad, upcase;
};

/* The evidence against a claim, heaviest first, as the place it is in. */
enum against { AGAINST_NOTHING, AGAINST_ENTRY, AGAINST_FIRSTS, AGAINST_BITMAP };

/* Which of the two claims fails the evidence: 1 when a does, -1 when b
 * does, 0 when it weighs the same against both; *why says what decided. */
static int weigh(const struct side *a, const struct side *b, enum against *why)
{
	const unsigned entry = CLAIM_SUSPECT | CLAIM_CHAIN | CLAIM_CUT;
	bool ea = a->flags & entry, eb = b->flags & entry;
	if (ea != eb)
		return *why = AGAINST_ENTRY, ea ? 1 : -1;
	if (a->firsts != b->firsts)
		return *why = AGAINST_FIRSTS, a->firsts > b->firsts ? 1 : -1;
	if (a->clear != b->clear)
		return *why = AGAINST_BITMAP, a->clear > b->clear ? 1 : -1;
	/* Still even: one damage explains a claim against which both its
	 * checksum and its chain speak (a wrong first cluster); the other's
	 * one kind of evidence needs one of its own. */
	int ka = __builtin_popcount(a->flags & entry), kb = __builtin_popcount(b->flags & entry);
	if (ka != kb)
		return *why = AGAINST_ENTRY, ka > kb ? 1 : -1;
	*why = ea || a->firsts || a->clear ? AGAINST_ENTRY : AGAINST_NOTHING;
	return 0;
}

/* The first clusters of other intact files in the claim's list. */
static void count_firsts(const struct census *cs, struct side *s)
{
	s->first_hit = NONE;
	s->firsts = 0;
	for (uint32_t k = 1; k < s->n; k++)
		if (bit(cs->firsts, s->list[k]) && s->list[k] != s->c->first) {
			if (s->first_hit == NONE)
				s->first_hit = k;
			s->firsts++;
		}
}

/* Clusters of a (list, n) not in the scratch map and marked free. */
static uint32_t clear_alone(struct vol *v, struct settle *st, const uint32_t *list, uint32_t n)
{
	uint32_t clear = 0;
	for (uint32_t k = 0; k < n; k++)
		if (!bit(st->scratch.bits, list[k]) && !disk_bit(v, st, list[k]))
			clear++;
	return clear;
}

/* Where a claim that fails the evidence is cut: before the contested
 * cluster or the other file's first cluster, and for a NoFatChain extent
 * (which has no links to say so) before the clusters marked free there. */
static uint32_t keep_of(struct vol *v, struct settle *st, const struct side *s)
{
	uint32_t keep = s->first_hit < s->idx ? s->first_hit : s->idx;
	if (s->c->contiguous)
		while (keep && !disk_bit(v, st, s->list[keep - 1]))
			keep--;
	return keep;
}

/* Why the claim s is the one cut back, against the other o: what decided
 * (AGAINST_NOTHING when the evidence weighed the same), said by the fact
 * that tells most: another file's first cluster it runs onto, if any. */
static void describe(const struct side *s, const struct side *o, enum against why, char *buf, size_t len)
{
	uint32_t x = s->list[s->idx];
	if (why != AGAINST_NOTHING && s->firsts > o->firsts) {
		uint32_t f = s->list[s->first_hit];
		const char *whose = f == o->c->first ? o->what : "another file";
		if (s->c->contiguous)
			snprintf(buf, len, "its size reaches past its own clusters: cluster %u (after %u clusters) "
				 "is the first cluster of %s", f, s->first_hit, whose);
		else
			snprintf(buf, len, "its cluster chain runs onto the first cluster %u of %s (after %u clusters)",
				 f, whose, s->first_hit);
	} else if (why == AGAINST_ENTRY || why == AGAINST_BITMAP) {
		snprintf(buf, len, "cluster %u (after %u clusters) is also claimed by %s, and %s %s", x, s->idx, o->what,
			 s->upcase ? "its" : "this file's",
			 why == AGAINST_BITMAP ? "clusters are marked free in the allocation bitmap" :
			 s->flags & CLAIM_SUSPECT ? (s->upcase ? "TableChecksum does not match its contents" :
						    "entry set had a wrong checksum") :
			 s->flags & CLAIM_CHAIN ? "cluster chain disagrees with its size" :
			 "claim was already cut back for running past its own clusters");
	} else {
		snprintf(buf, len, "cluster %u (after %u clusters) already belongs to %s", x, s->idx, o->what);
	}
}

/* ---- repairs made after the walk ------------------------------------------- */

/* The claimant's entry set, read back from the device. */
static uint8_t *read_set(struct vol *v, const struct claimant *c)
{
	uint8_t *set = malloc((size_t)c->span * EXFAT_ENTRY_SIZE);
	if (!set) {
		fsck_fail_op(v, "out of memory");
		return NULL;
	}
	for (uint32_t k = 0; k < c->span; k++)
		if (fsck_dev_read(v, c->pos[k], set + (size_t)k * EXFAT_ENTRY_SIZE, EXFAT_ENTRY_SIZE) < 0) {
			free(set);
			return NULL;
		}
	return set;
}

/* Writes back its file and stream entries, with the set's checksum. */
static void write_set(struct vol *v, const struct claimant *c, uint8_t *set)
{
	exfat_put_le16(set + 2, exfat_set_checksum(set, c->span));
	if (fsck_dev_write(v, c->pos[0], set, EXFAT_ENTRY_SIZE) == 0)
		fsck_dev_write(v, c->pos[1], set + EXFAT_ENTRY_SIZE, EXFAT_ENTRY_SIZE);
}

static uint64_t kept_bytes(const struct vol *v, const struct claimant *c, uint32_t keep)
{
	uint64_t bytes = (uint64_t)keep << v->cshift;
	return bytes < c->len ? bytes : c->len;
}

static void push_dir(struct vol *v, const struct claimant *c, uint32_t *list, uint32_t n)
{
	char *path = strdup(c->path);
	if (!path) {
		free(list);
		fsck_fail_op(v, "out of memory");
		return;
	}
	fsck_push_dir(v, path, list, n, 0);
}

/* A waiting claim is settled: it holds held clusters from now on. */
static void settle_pending(struct vol *v, struct census *cs, uint32_t p, unsigned add)
{
	struct claimant *c = &v->pending[p];
	c->flags &= ~(unsigned)CLAIM_PENDING;
	note_set(v, c->key, add, CLAIM_PENDING, c->held);
	if (c->is_dir && c->held) {
		uint32_t *list = fsck_chain_list(v, c->first, c->contiguous, c->held);
		if (list)
			push_dir(v, c, list, c->held);
	}
	if (cs) {
		cs->changed[p] = true;
		if (cs->self[p] != NONE)
			cs->h[cs->self[p]].changed = true;
	}
}

/* Cuts the claim of s back to keep clusters: its entry (when write), its
 * FAT chain's end, and the clusters it held past them, no longer its. */
static void cut(struct vol *v, const struct side *s, uint32_t held, uint32_t keep, bool write)
{
	struct claimant *c = s->c;
	for (uint32_t k = keep; k < held && k < s->n; k++)
		exfat_bitmap_clear(v->used, s->list[k] - EXFAT_FIRST_CLUSTER);
	c->held = keep;
	if (keep)
		c->last = s->list[keep - 1];
	if (s->upcase) {
		/* Its entry is made anew with the default table, once settled. */
		v->upcase_count = keep;
		if (write && keep)
			fsck_fat_set(v, s->list[keep - 1], EXFAT_FAT_EOC);
		return;
	}
	note_set(v, c->key, CLAIM_CUT, 0, keep);
	if (!write)
		return;
	uint8_t *set = read_set(v, c);
	if (!set)
		return;
	struct exfat_stream_entry *se = (struct exfat_stream_entry *)(set + EXFAT_ENTRY_SIZE);
	uint64_t bytes = kept_bytes(v, c, keep);
	se->data_length = htole64(bytes);
	if (c->is_dir || exfat_le64(se->valid_data_length) > bytes)
		se->valid_data_length = htole64(bytes);
	if (!keep) {
		se->first_cluster = 0;
		se->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
	} else if (!c->contiguous) {
		fsck_fat_set(v, s->list[keep - 1], EXFAT_FAT_EOC);
	}
	write_set(v, c, set);
	free(set);
}

/* Reports and cuts back the claim that fails the evidence; returns whether
 * it was cut (or, checking only, would be). */
static bool cut_loser(struct vol *v, struct settle *st, const struct side *s, const struct side *o, uint32_t held,
		      enum against decided)
{
	char why[320], repair[64];
	uint32_t keep = decided == AGAINST_NOTHING ? s->idx : keep_of(v, st, s);
	describe(s, o, decided, why, sizeof(why));
	bool fix;
	if (s->upcase) {
		if (keep)
			snprintf(repair, sizeof(repair), "end its chain after %u clusters", keep);
		else
			snprintf(repair, sizeof(repair), "give all its clusters up");
		fix = fsck_problem(v, "cross-link", "/", v->upcase_pos, false, repair, "up-case table: %s", why);
	} else {
		snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)kept_bytes(v, s->c, keep));
		fix = fsck_problem(v, "cross-link", s->c->path, s->c->pos[1], false, repair, "%s", why);
	}
	if (fix || !v->o->writable)
		cut(v, s, held, keep, fix);
	return fix || !v->o->writable;
}

/* The waiting claim c, when nothing can be weighed against the claim that
 * holds the cluster it ran into: cut back where it stopped, as the walk
 * alone would, and settled. */
static void cut_where_stopped(struct vol *v, struct census *cs, uint32_t p)
{
	struct claimant *c = &v->pending[p];
	char repair[64];
	snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)kept_bytes(v, c, c->held));
	if (fsck_problem(v, "cross-link", c->path, c->pos[1], false, repair,
			 "cluster %u (after %u clusters) already belongs to another file", c->at, c->held)) {
		struct side s = { .c = c, .n = c->held };
		s.list = fsck_chain_list(v, c->first, c->contiguous, c->held);
		if (s.list)
			cut(v, &s, c->held, c->held, true);
		free(s.list);
	}
	settle_pending(v, cs, p, 0);
}

/* Is there room for need free clusters (neither claimed nor marked used)? */
static bool room_for(struct vol *v, struct settle *st, uint64_t need)
{
	uint64_t n = 0;
	for (uint32_t k = 0; k < v->cc && n < need; k++)
		if (!exfat_bitmap_test(v->used, k) && !disk_bit(v, st, k + EXFAT_FIRST_CLUSTER))
			n++;
	return n >= need;
}

/* Gives the waiting claim p its own copy of the clusters from its index
 * idx on, in free clusters, linked as a FAT chain; a chain shorter than the
 * size has the size cut to it. */
static void copy_shared(struct vol *v, struct side *p)
{
	struct claimant *c = p->c;
	uint32_t need = p->n - p->idx, cursor = 0, prev = p->idx ? p->list[p->idx - 1] : 0;
	uint8_t *buf = malloc(v->csize), *set = read_set(v, c);
	if (!buf || !set) {
		if (!buf)
			fsck_fail_op(v, "out of memory");
		free(buf), free(set);
		return;
	}
	struct exfat_stream_entry *se = (struct exfat_stream_entry *)(set + EXFAT_ENTRY_SIZE);
	if (c->contiguous) {
		/* Its clusters are no longer in one run: a FAT chain says so. */
		for (uint32_t k = 0; k + 1 < p->idx; k++)
			fsck_fat_set(v, p->list[k], p->list[k + 1]);
		se->flags &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
	}
	uint32_t done = 0;
	for (; done < need && !v->failed; done++) {
		uint32_t copy = fsck_alloc_cluster(v, &cursor);
		if (!copy || fsck_dev_read(v, fsck_cluster_pos(v, p->list[p->idx + done]), buf, v->csize) < 0 ||
		    fsck_dev_write(v, fsck_cluster_pos(v, copy), buf, v->csize) < 0)
			break;
		if (prev) {
			fsck_fat_set(v, prev, copy);
		} else {
			se->first_cluster = htole32(copy);
			c->first = copy;
		}
		p->list[p->idx + done] = copy;
		prev = copy;
	}
	if (prev)
		fsck_fat_set(v, prev, EXFAT_FAT_EOC);
	uint64_t bytes = kept_bytes(v, c, p->idx + done);
	if (bytes < exfat_le64(se->data_length)) {
		se->data_length = htole64(bytes);
		if (c->is_dir || exfat_le64(se->valid_data_length) > bytes)
			se->valid_data_length = htole64(bytes);
	}
	write_set(v, c, set);
	free(buf), free(set);
	c->contiguous = false;
	c->held = p->idx + done;
	c->last = prev;
}

/* ---- settling -------------------------------------------------------------- */

/* Goes on walking the waiting claim p from the cluster it ran into. */
static void resume(struct vol *v, struct census *cs, uint32_t p)
{
	struct claimant *c = &v->pending[p];
	struct chain ch = { .count = c->held, .last = c->last };
	if (fsck_walk_in(v, (struct claim_map){ v->used, v->used_pages }, c->first, c->contiguous, c->want, 0, false,
			 c->at, &ch) < 0)
		return;
	cs->changed[p] = true;
	if (cs->self[p] != NONE)
		cs->h[cs->self[p]].changed = true;
	if (ch.stop == CH_CROSS) {
		if (ch.count == c->held && ch.bad == c->at) {
			/* Held by something the census does not see. */
			cut_where_stopped(v, cs, p);
			return;
		}
		c->held = ch.count, c->last = ch.last, c->at = ch.bad;
		note_set(v, c->key, 0, 0, c->held);
		return;
	}
	c->held = ch.count;
	uint8_t *set = read_set(v, c);
	if (!set)
		return;
	bool changed = false;
	struct fpath fp = { .dir = c->path, .s = c->path };
	fsck_stream_stop(v, (struct exfat_stream_entry *)(set + EXFAT_ENTRY_SIZE), &fp, c->pos[1], c->key, c->is_dir,
			 &ch, &changed);
	if (changed)
		write_set(v, c, set);
	free(set);
	settle_pending(v, cs, p, ch.count < c->want || ch.extra ? CLAIM_CHAIN : 0);
}

/* Is path below directory dir ("dir/...")? */
static bool below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && path[n] == '/';
}

/* The waiting claim p against the claim h holding the cluster it ran into. */
static void decide(struct vol *v, struct settle *st, struct census *cs, uint32_t p, uint32_t h)
{
	struct claimant *c = &v->pending[p];
	struct holder *hd = &cs->h[h];
	struct side P = { .c = c, .what = c->path, .idx = c->held, .flags = c->flags };
	struct side H = { .c = &hd->c, .what = hd->what, .list = hd->list, .n = hd->c.held, .idx = cs->index_in[p],
			  .flags = hd->c.flags, .fixed = hd->fixed, .bad = hd->bad, .upcase = hd->upcase };
	if (hd->pending != NONE)
		H.c = &v->pending[hd->pending];
	struct chain ch = { 0 };
	if (fsck_walk_in(v, st->scratch, c->first, c->contiguous, c->want, 0, true, c->first, &ch) < 0)
		return;
	P.list = ch.list, P.n = ch.count;
	scratch_clear(st, ch.list, ch.count);
	if (ch.marked_bad)
		exfat_bitmap_clear(st->scratch.bits, ch.marked_bad - EXFAT_FIRST_CLUSTER);
	if (ch.count < c->want || ch.extra)
		P.flags |= CLAIM_CHAIN;
	if (P.idx >= P.n || P.list[P.idx] != c->at) {
		/* Its chain no longer reaches that cluster the same way: walk on. */
		free(P.list);
		resume(v, cs, p);
		return;
	}
	count_firsts(cs, &P);
	if (!H.bad)
		count_firsts(cs, &H);
	else
		H.first_hit = NONE;
	scratch_mark(st, P.list, P.n);
	H.clear = clear_alone(v, st, H.list, H.n);
	scratch_clear(st, P.list, P.n);
	scratch_mark(st, H.list, H.n);
	P.clear = clear_alone(v, st, P.list, P.n);
	scratch_clear(st, H.list, H.n);

	enum against why;
	int fails = weigh(&P, &H, &why);
	/* A claim whose entry set lies in the other's clusters (a directory
	 * below it runs into them: a loop) cannot take them: cutting the other
	 * back would cut it off as well, and leave its clusters owned by none. */
	bool inside = !H.bad && H.c->path && below(c->path, H.c->path);
	cs->changed[p] = true;
	if (cs->self[p] != NONE)
		cs->h[cs->self[p]].changed = true;
	if (inside || H.bad || fails > 0 || (fails == 0 && why != AGAINST_NOTHING)) {
		/* The waiting claim fails the evidence (or as much as the other). */
		cut_loser(v, st, &P, &H, c->held, inside || H.bad || fails == 0 ? AGAINST_NOTHING : why);
		settle_pending(v, cs, p, 0);
	} else if (!H.fixed && fails < 0) {
		hd->changed = true;
		if (cut_loser(v, st, &H, &P, H.n, why)) {
			if (hd->pending != NONE)
				settle_pending(v, cs, hd->pending, 0);
			cs->changed[p] = false;
			resume(v, cs, p);
		} else {
			settle_pending(v, cs, p, 0);
		}
	} else {
		/* Both claims rest on agreeing evidence (a true cross-link), or
		 * the one that fails it never gives clusters up. */
		uint32_t need = P.n - P.idx;
		char msg[320], repair[160];
		snprintf(msg, sizeof(msg), "shares %u cluster%s from cluster %u (after %u clusters) with %s%s", need,
			 need == 1 ? "" : "s", c->at, P.idx, H.what,
			 fails ? "" : "; both files' entries, chains and bitmap agree");
		if (room_for(v, st, need)) {
			int n = snprintf(repair, sizeof(repair), "copy the shared cluster%s (%llu bytes) to free ones for this file",
					 need == 1 ? "" : "s", (unsigned long long)need << v->cshift);
			if (P.n < c->want && n > 0 && (size_t)n < sizeof(repair))
				snprintf(repair + n, sizeof(repair) - (size_t)n, ", and truncate it to %llu bytes where its chain ends",
					 (unsigned long long)kept_bytes(v, c, P.n));
			if (fsck_problem(v, "cross-link", c->path, c->pos[1], false, repair, "%s", msg)) {
				copy_shared(v, &P);
				note_set(v, c->key, 0, 0, c->held);
			}
			settle_pending(v, cs, p, 0);
		} else {
			uint64_t keep = kept_bytes(v, c, P.idx);
			snprintf(repair, sizeof(repair), "truncate to %llu bytes, losing %llu bytes: no free clusters "
				 "to copy the shared ones to", (unsigned long long)keep, (unsigned long long)(c->len - keep));
			if (fsck_problem(v, "cross-link", c->path, c->pos[1], false, repair, "%s", msg))
				cut(v, &P, c->held, P.idx, true);
			settle_pending(v, cs, p, 0);
		}
	}
	free(P.list);
}

/* Too many rounds: what still waits is cut back where it stopped. */
static void give_up(struct vol *v)
{
	for (uint32_t p = 0; p < v->npending && !v->failed; p++)
		if (v->pending[p].flags & CLAIM_PENDING)
			cut_where_stopped(v, NULL, p);
}

/* The repairs of a claim's stop and sizes, as the walk would have made
 * them, once it is settled. */
static void stream_stop_later(struct vol *v, struct claimant *c)
{
	uint8_t *set = read_set(v, c);
	if (!set)
		return;
	struct chain ch = { .count = c->held, .last = c->last, .bad = c->at, .stop = c->stop, .extra = c->extra };
	struct fpath fp = { .dir = c->path, .s = c->path };
	bool changed = false;
	fsck_stream_stop(v, (struct exfat_stream_entry *)(set + EXFAT_ENTRY_SIZE), &fp, c->pos[1], c->key, c->is_dir,
			 &ch, &changed);
	if (changed)
		write_set(v, c, set);
	free(set);
}

/* A file's NoFatChain extent whose entry set was damaged, or which runs
 * past the heap: the clusters at its end that the bitmap marks free are not
 * its own (with nothing else to say so, the bitmap alone cuts nothing). */
static void settle_tail(struct vol *v, struct settle *st, struct claimant *c)
{
	c->flags &= ~(unsigned)CLAIM_TAIL;
	struct claim_note *n = note_find(v, c->key);
	if (n && n->flags & CLAIM_CUT)
		return; /* cut back by a conflict, to what the bitmap marks */
	uint32_t keep = c->held;
	while (keep && !disk_bit(v, st, c->first + keep - 1))
		keep--;
	if (keep && keep < c->held) {
		char repair[64];
		snprintf(repair, sizeof(repair), "truncate to %llu bytes", (unsigned long long)kept_bytes(v, c, keep));
		bool fix = fsck_problem(v, "extent-free", c->path, c->pos[1], false, repair,
					"its size reaches past its own clusters: the last %u of the %u clusters from %u "
					"are marked free in the allocation bitmap", c->held - keep, c->held, c->first);
		if (fix || !v->o->writable) {
			struct side s = { .c = c, .n = c->held };
			s.list = fsck_chain_list(v, c->first, true, c->held);
			if (s.list)
				cut(v, &s, c->held, keep, fix);
			free(s.list);
			return;
		}
	}
	stream_stop_later(v, c);
}

/* A directory held back because its entry set was damaged: no claim
 * disputes its clusters now (or it was cut back to those none disputes),
 * so it is read. */
static void settle_hold(struct vol *v, struct claimant *c)
{
	c->flags &= ~(unsigned)CLAIM_HOLD;
	struct claim_note *n = note_find(v, c->key);
	if (n && n->flags & CLAIM_CUT)
		c->held = n->held;
	else
		stream_stop_later(v, c);
	if (c->held) {
		uint32_t *list = fsck_chain_list(v, c->first, c->contiguous, c->held);
		if (list)
			push_dir(v, c, list, c->held);
	}
}

static bool waiting(const struct vol *v)
{
	for (size_t k = 0; k < v->npending; k++)
		if (v->pending[k].flags & CLAIM_PENDING)
			return true;
	return false;
}

static void drop_settled(struct vol *v)
{
	size_t n = 0;
	for (size_t k = 0; k < v->npending; k++) {
		if (v->pending[k].flags & (CLAIM_PENDING | CLAIM_TAIL | CLAIM_HOLD))
			v->pending[n++] = v->pending[k];
		else
			claimant_free(&v->pending[k]);
	}
	v->npending = n;
}

bool fsck_settle_claims(struct vol *v)
{
	if (!v->npending)
		return false;
	struct settle *st = calloc(1, sizeof(*st));
	if (st)
		st->scratch.bits = calloc(((uint64_t)v->cc + 7) / 8 + 8, 1);
	if (!st || !st->scratch.bits) {
		free(st);
		fsck_fail_op(v, "out of memory");
		return false;
	}
	while (waiting(v) && !v->failed && !v->quit) {
		if (++v->settle_rounds > MAX_SETTLE_ROUNDS) {
			give_up(v);
			drop_settled(v);
			break;
		}
		struct census cs;
		if (census_run(v, &cs) < 0) {
			census_free(&cs);
			break;
		}
		for (uint32_t p = 0; p < v->npending && !v->failed && !v->quit; p++) {
			uint32_t h = cs.holder_of[p];
			if (cs.changed[p] || !(v->pending[p].flags & CLAIM_PENDING) || (h != NONE && cs.h[h].changed))
				continue;
			if (h == NONE)
				resume(v, &cs, p);
			else
				decide(v, st, &cs, p, h);
		}
		census_free(&cs);
		drop_settled(v);
		if (v->nstack)
			break; /* the census only counts directories the walk has read */
	}
	/* Once no claim waits: the extents whose end the bitmap says, and the
	 * directories held back, now read. */
	if (!v->nstack && !waiting(v))
		for (size_t k = 0; k < v->npending && !v->failed && !v->quit; k++) {
			if (v->pending[k].flags & CLAIM_TAIL)
				settle_tail(v, st, &v->pending[k]);
			else if (v->pending[k].flags & CLAIM_HOLD)
				settle_hold(v, &v->pending[k]);
		}
	drop_settled(v);
	free(st->scratch.bits);
	free(st);
	return v->nstack > 0;
}
