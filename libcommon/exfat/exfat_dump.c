/* Reading an exFAT volume without changing it (see exfat_dump.h). */
#include "exfat/exfat_dump.h"

#include "base/utf.h"
#include "blockdev/blockdev.h"
#include "blockdev/mounted.h"
#include "exfat/exfat_upcase.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAT_WINDOW_ENTRIES 1024u
#define MAX_UPCASE_BYTES (128u << 10)
#define BITMAP_BLOCK 512u               /* divides every cluster size */
#define BITMAP_READ (1u << 20)

/* ---- boot regions -------------------------------------------------------- */

static void check_region(const uint8_t *region, unsigned ss, struct exfat_region_state *st)
{
	const struct exfat_boot_sector *bs = (const void *)region;
	const char *why;
	st->sector_size = ss;
	st->computed_checksum = exfat_boot_checksum(region, ss);
	st->stored_checksum = exfat_get_le32(region + (size_t)EXFAT_BOOT_CHECKSUM_SECTOR * ss);
	/* The boot sector alone may be sound when the region around it is not. */
	st->sector_ok = exfat_boot_sector_check(bs, &why) == 0 && exfat_sector_size(bs) == ss;
	st->problem = exfat_boot_region_check(region, ss, &why) < 0 ? why : NULL;
}

static bool sector_shift_ok(unsigned shift)
{
	return shift >= EXFAT_MIN_SECTOR_SHIFT && shift <= EXFAT_MAX_SECTOR_SHIFT;
}

/* Reads the backup region: at sector 12 of the main region's sector size,
 * or, when that is unknown, of the size the backup itself declares. */
static int read_backup(struct exfat_reader *r, uint8_t *buf, unsigned main_ss)
{
	for (unsigned ss = main_ss ? main_ss : 512; ss <= 4096; ss *= 2) {
		if (exfat_reader_read(r, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, buf,
				      (size_t)EXFAT_BOOT_REGION_SECTORS * ss) < 0)
			return -1;
		const struct exfat_boot_sector *bs = (const void *)buf;
		if (main_ss || (sector_shift_ok(bs->sector_shift) && 1u << bs->sector_shift == ss)) {
			check_region(buf, ss, &r->backup);
			return 0;
		}
	}
	r->backup.problem = "no boot sector at any sector size";
	return 0;
}

int exfat_reader_open(struct exfat_reader *r, int fd, uint64_t dev_size, bool *not_exfat,
		      char *err, size_t err_len)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->dev_size = dev_size;
	if (not_exfat)
		*not_exfat = false;
	size_t max = (size_t)EXFAT_BOOT_REGION_SECTORS * 4096;
	uint8_t *mainr = malloc(max), *backup = malloc(max);
	r->fat_cache = malloc((size_t)FAT_WINDOW_ENTRIES * 4 * EXFAT_FAT_CACHE_SLOTS);
	int rc = -1;
	if (!mainr || !backup || !r->fat_cache) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	if (exfat_reader_read(r, 0, mainr, max) < 0) {
		snprintf(err, err_len, "read of the boot region: %s", strerror(errno));
		goto out;
	}
	memcpy(&r->main_bs, mainr, sizeof(r->main_bs));
	unsigned main_ss = sector_shift_ok(r->main_bs.sector_shift) ? 1u << r->main_bs.sector_shift : 0;
	check_region(mainr, main_ss ? main_ss : 512, &r->main);
	if (read_backup(r, backup, main_ss) < 0) {
		snprintf(err, err_len, "read of the backup boot region: %s", strerror(errno));
		goto out;
	}
	if (r->main.sector_ok && r->backup.sector_ok && r->main.sector_size == r->backup.sector_size)
		r->regions_differ = !exfat_boot_regions_equal(mainr, backup, r->main.sector_size);
	/* A sound region first, then one whose boot sector alone is sound. */
	bool main_clean = !r->main.problem, backup_clean = !r->backup.problem;
	if (main_clean || (!backup_clean && r->main.sector_ok)) {
		memcpy(&r->bs, mainr, sizeof(r->bs));
	} else if (r->backup.sector_ok) {
		memcpy(&r->bs, backup, sizeof(r->bs));
		r->backup_in_use = true;
	} else {
		const struct exfat_boot_sector *b = (const void *)backup;
		if (memcmp(r->main_bs.fs_name, "EXFAT   ", 8) && memcmp(b->fs_name, "EXFAT   ", 8)) {
			if (not_exfat)
				*not_exfat = true;
			snprintf(err, err_len, "not an exFAT filesystem (no EXFAT signature in either boot sector)");
		} else {
			snprintf(err, err_len, "both boot regions are damaged (main: %s; backup: %s)",
				 r->main.problem, r->backup.problem);
		}
		goto out;
	}
	const struct exfat_boot_sector *bs = &r->bs;
	r->sector_size = exfat_sector_size(bs);
	r->cluster_shift = bs->sector_shift + bs->cluster_shift;
	r->cluster_size = exfat_cluster_size(bs);
	r->cluster_count = exfat_le32(bs->cluster_count);
	r->heap_offset = (uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift;
	uint64_t fat_index = bs->number_of_fats == 2 && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	r->fat_offset = ((uint64_t)exfat_le32(bs->fat_offset) + fat_index * exfat_le32(bs->fat_length))
			<< bs->sector_shift;
	rc = 0;
out:
	free(mainr);
	free(backup);
	if (rc < 0) {
		free(r->fat_cache);
		r->fat_cache = NULL;
	}
	return rc;
}

int exfat_reader_open_path(struct exfat_reader *r, const char *path, bool *busy, char *mounted,
			   size_t mounted_len, char *err, size_t err_len)
{
	int fd = kb_dev_open_reading(path, busy, mounted, mounted_len);
	uint64_t size;
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path,
			 errno == EINVAL ? "neither a block device nor a regular file" : strerror(errno));
		return -1;
	}
	if (kb_dev_size(fd, &size) < 0) {
		snprintf(err, err_len, "%s: size: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	char why[256];
	if (exfat_reader_open(r, fd, size, NULL, why, sizeof(why)) < 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		close(fd);
		return -1;
	}
	r->owns_fd = true;
	return 0;
}

void exfat_reader_free(struct exfat_reader *r)
{
	free(r->fat_cache);
	r->fat_cache = NULL;
	if (r->owns_fd)
		close(r->fd);
	r->owns_fd = false;
}

int exfat_reader_read(struct exfat_reader *r, uint64_t off, void *buf, size_t len)
{
	size_t avail = off >= r->dev_size ? 0 : r->dev_size - off < len ? (size_t)(r->dev_size - off) : len;
	if (avail && kb_pread_full(r->fd, buf, avail, off) < 0) {
		if (!r->error)
			r->error = errno;
		return -1;
	}
	memset((uint8_t *)buf + avail, 0, len - avail);
	return 0;
}

uint32_t exfat_reader_fat(struct exfat_reader *r, uint32_t c)
{
	/* Direct-mapped windows of the FAT as it is on disk. */
	uint64_t window = c / FAT_WINDOW_ENTRIES;
	unsigned slot = (unsigned)(window % EXFAT_FAT_CACHE_SLOTS);
	uint8_t *bytes = r->fat_cache + (size_t)slot * FAT_WINDOW_ENTRIES * 4;
	if (r->fat_cache_tag[slot] != window + 1) {
		bool ok = exfat_reader_read(r, r->fat_offset + window * FAT_WINDOW_ENTRIES * 4, bytes,
					    FAT_WINDOW_ENTRIES * 4) == 0;
		r->fat_cache_tag[slot] = ok ? window + 1 : 0;
		if (!ok)
			return EXFAT_FAT_EOC;
	}
	return exfat_get_le32(bytes + (c % FAT_WINDOW_ENTRIES) * 4);
}

/* ---- cluster chains ------------------------------------------------------ */

static int chain_add(struct exfat_chain *ch, uint32_t c)
{
	struct exfat_run *last = ch->nruns ? &ch->runs[ch->nruns - 1] : NULL;
	if (last && (uint64_t)last->first + last->count == c) {
		last->count++;
	} else {
		if (ch->nruns == ch->cap) {
			size_t cap = ch->cap ? ch->cap * 2 : 8;
			struct exfat_run *n = realloc(ch->runs, cap * sizeof(*n));
			if (!n)
				return -1;
			ch->runs = n;
			ch->cap = cap;
		}
		ch->runs[ch->nruns++] = (struct exfat_run){ c, 1 };
	}
	ch->clusters++;
	return 0;
}

void exfat_chain_cut(struct exfat_chain *ch, uint64_t n)
{
	uint64_t kept = 0;
	size_t i = 0;
	for (; i < ch->nruns && kept < n; i++) {
		if (kept + ch->runs[i].count > n)
			ch->runs[i].count = (uint32_t)(n - kept);
		kept += ch->runs[i].count;
	}
	ch->nruns = i;
	ch->clusters = kept;
}

/* A loop of `cycle` clusters was seen: finds where it starts (the first
 * cluster visited twice) and cuts the chain just before the repeat. */
static void settle_loop(struct exfat_reader *r, uint32_t first, uint64_t cycle, struct exfat_chain *ch)
{
	uint32_t slow = first, fast = first;
	for (uint64_t k = 0; k < cycle; k++)
		fast = exfat_reader_fat(r, fast);
	uint64_t lead = 0;
	while (slow != fast && lead < ch->clusters) {
		slow = exfat_reader_fat(r, slow);
		fast = exfat_reader_fat(r, fast);
		lead++;
	}
	ch->value = slow;
	if (lead + cycle < ch->clusters)
		exfat_chain_cut(ch, lead + cycle);
}

static int by_first(const void *a, const void *b)
{
	const struct exfat_run *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Does a cluster appear twice in the chain's runs? */
static bool runs_overlap(const struct exfat_chain *ch)
{
	struct exfat_run *sorted = malloc(ch->nruns * sizeof(*sorted) + 1);
	bool overlap = false;
	if (!sorted)
		return false;
	memcpy(sorted, ch->runs, ch->nruns * sizeof(*sorted));
	qsort(sorted, ch->nruns, sizeof(*sorted), by_first);
	for (size_t i = 1; i < ch->nruns && !overlap; i++)
		overlap = (uint64_t)sorted[i - 1].first + sorted[i - 1].count > sorted[i].first;
	free(sorted);
	return overlap;
}

/* A chain stopped at its length repeats a cluster: then it loops for ever
 * (the FAT maps each cluster to one next), and Brent's method, which had
 * not met the loop yet, measures it now. */
static void find_loop(struct exfat_reader *r, uint32_t first, struct exfat_chain *ch)
{
	uint32_t saved = first, x = exfat_reader_fat(r, first);
	uint64_t power = 1, cycle = 1, steps = 0, bound = 2 * ch->clusters + 2;
	while (x != saved && steps++ < bound && !r->error) {
		if (cycle == power) {
			saved = x;
			power *= 2;
			cycle = 0;
		}
		x = exfat_reader_fat(r, x);
		cycle++;
	}
	if (x != saved)
		return;
	ch->end = EXFAT_CHAIN_LOOP;
	ch->longer = false;
	settle_loop(r, first, cycle, ch);
}

int exfat_chain_follow(struct exfat_reader *r, uint32_t first, bool contiguous, uint64_t want,
		       uint64_t max, struct exfat_chain *ch)
{
	memset(ch, 0, sizeof(*ch));
	if (!exfat_reader_cluster_ok(r, first)) {
		ch->end = EXFAT_CHAIN_FIRST_INVALID;
		ch->value = first;
		return 0;
	}
	uint64_t end = (uint64_t)r->cluster_count + 2;
	if (!max || max > r->cluster_count)
		max = r->cluster_count;
	if (contiguous) {
		uint64_t n = want ? want : 1;
		if (n > end - first) {
			n = end - first;
			ch->end = EXFAT_CHAIN_HEAP_END;
		}
		ch->runs = malloc(sizeof(*ch->runs));
		if (!ch->runs)
			return -1;
		ch->runs[0] = (struct exfat_run){ first, (uint32_t)n };
		ch->nruns = ch->cap = 1;
		ch->clusters = n;
		return 0;
	}
	uint64_t limit = want && want < max ? want : max;
	/* Brent's cycle finding: `saved` moves to the walk's position at each
	 * power of two, so a loop is met again within twice its length. */
	uint32_t c = first, saved = first;
	uint64_t power = 1, steps = 0;
	for (;;) {
		if (chain_add(ch, c) < 0)
			return -1;
		uint32_t next = exfat_reader_fat(r, c);
		if (r->error) {
			ch->end = EXFAT_CHAIN_IO;
			return 0;
		}
		if (ch->clusters >= limit) {
			if (next != EXFAT_FAT_EOC) {
				if (want && ch->clusters == want)
					ch->longer = true;
				else
					ch->end = EXFAT_CHAIN_TOO_LONG, ch->value = next;
				if (runs_overlap(ch))
					find_loop(r, first, ch);
			}
			return 0;
		}
		if (next == EXFAT_FAT_EOC) {
			ch->end = want ? EXFAT_CHAIN_EARLY_END : EXFAT_CHAIN_COMPLETE;
			return 0;
		}
		if (!exfat_reader_cluster_ok(r, next)) {
			ch->end = next == EXFAT_FAT_FREE ? EXFAT_CHAIN_FREE :
				  next == EXFAT_FAT_BAD ? EXFAT_CHAIN_BAD : EXFAT_CHAIN_INVALID;
			ch->value = next;
			return 0;
		}
		steps++;
		if (next == saved) {
			ch->end = EXFAT_CHAIN_LOOP;
			settle_loop(r, first, steps, ch);
			return 0;
		}
		if (steps == power) {
			saved = next;
			power *= 2;
			steps = 0;
		}
		c = next;
	}
}

void exfat_chain_free(struct exfat_chain *ch)
{
	free(ch->runs);
	memset(ch, 0, sizeof(*ch));
}

const char *exfat_chain_end_name(enum exfat_chain_end e)
{
	static const char *const names[] = {
		[EXFAT_CHAIN_COMPLETE] = "complete",
		[EXFAT_CHAIN_FIRST_INVALID] = "first-cluster-invalid",
		[EXFAT_CHAIN_EARLY_END] = "ends-early",
		[EXFAT_CHAIN_FREE] = "free-cluster",
		[EXFAT_CHAIN_BAD] = "bad-cluster",
		[EXFAT_CHAIN_INVALID] = "invalid-cluster",
		[EXFAT_CHAIN_LOOP] = "loop",
		[EXFAT_CHAIN_HEAP_END] = "past-heap-end",
		[EXFAT_CHAIN_TOO_LONG] = "too-long",
		[EXFAT_CHAIN_IO] = "read-error",
	};
	return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "?";
}

uint64_t exfat_chain_pos(const struct exfat_reader *r, const struct exfat_chain *ch, uint64_t at)
{
	uint64_t index = at >> r->cluster_shift;
	for (size_t i = 0; i < ch->nruns; i++) {
		if (index < ch->runs[i].count)
			return exfat_reader_cluster_pos(r, ch->runs[i].first + (uint32_t)index) +
			       (at & (r->cluster_size - 1));
		index -= ch->runs[i].count;
	}
	return 0;
}

/* Reads the chain's clusters into buf, a run at a time. */
static int read_chain(struct exfat_reader *r, const struct exfat_chain *ch, uint8_t *buf)
{
	uint64_t at = 0;
	for (size_t i = 0; i < ch->nruns; i++) {
		uint64_t len = (uint64_t)ch->runs[i].count << r->cluster_shift;
		if (exfat_reader_read(r, exfat_reader_cluster_pos(r, ch->runs[i].first), buf + at, len) < 0)
			return -1;
		at += len;
	}
	return 0;
}

/* ---- directories and entry sets ----------------------------------------- */

int exfat_dir_read(struct exfat_reader *r, uint32_t first, bool contiguous, uint64_t bytes,
		   struct exfat_dir *d)
{
	memset(d, 0, sizeof(*d));
	uint64_t max = EXFAT_MAX_DIR_BYTES >> r->cluster_shift;
	if (!max)
		max = 1;
	uint64_t want = bytes ? exfat_reader_clusters_for(r, bytes) : 0;
	if (want > max)
		want = max;
	if (exfat_chain_follow(r, first, contiguous, want, max, &d->chain) < 0) {
		errno = ENOMEM;
		return -1;
	}
	return exfat_dir_load(r, d);
}

int exfat_dir_load(struct exfat_reader *r, struct exfat_dir *d)
{
	uint64_t size = d->chain.clusters << r->cluster_shift;
	free(d->buf);
	d->buf = malloc(size ? size : 1);
	if (!d->buf) {
		exfat_dir_free(d);
		errno = ENOMEM;
		return -1;
	}
	if (read_chain(r, &d->chain, d->buf) < 0) {
		int e = errno;
		exfat_dir_free(d);
		errno = e;
		return -1;
	}
	d->entries = (uint32_t)(size / EXFAT_ENTRY_SIZE);
	return 0;
}

void exfat_dir_free(struct exfat_dir *d)
{
	exfat_chain_free(&d->chain);
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

static void parse_file_set(const struct exfat_dir *d, struct exfat_entry_set *s)
{
	const struct exfat_file_entry *f = (const void *)s->entries;
	s->attributes = exfat_le16(f->attributes);
	/* The stream entry is the one after the file entry, whatever
	 * SecondaryCount says: that is how every reader finds it. */
	if (s->index + 1 >= d->entries || exfat_dir_entry(d, s->index + 1)[0] != EXFAT_ENTRY_STREAM)
		return;
	const struct exfat_stream_entry *st = (const void *)exfat_dir_entry(d, s->index + 1);
	s->has_stream = true;
	s->stream_flags = st->flags;
	s->name_length = st->name_length;
	s->stored_hash = exfat_le16(st->name_hash);
	s->first_cluster = exfat_le32(st->first_cluster);
	s->data_length = exfat_le64(st->data_length);
	s->valid_data_length = exfat_le64(st->valid_data_length);
	while (s->name_entries < EXFAT_MAX_NAME_LEN / EXFAT_NAME_CHARS_PER_ENTRY + 1 &&
	       s->index + 2 + s->name_entries < d->entries &&
	       exfat_dir_entry(d, s->index + 2 + s->name_entries)[0] == EXFAT_ENTRY_NAME)
		s->name_entries++;
	unsigned len = s->name_entries * EXFAT_NAME_CHARS_PER_ENTRY;
	if (len > s->name_length)
		len = s->name_length;
	for (unsigned i = 0; i < len; i++) {
		const struct exfat_name_entry *ne =
			(const void *)exfat_dir_entry(d, s->index + 2 + i / EXFAT_NAME_CHARS_PER_ENTRY);
		s->name[i] = exfat_get_le16(&ne->name[i % EXFAT_NAME_CHARS_PER_ENTRY]);
	}
	s->name_len = len;
}

bool exfat_dir_next(const struct exfat_dir *d, uint32_t *pos, struct exfat_entry_set *s)
{
	for (; *pos < d->entries; (*pos)++) {
		const uint8_t *e = exfat_dir_entry(d, *pos);
		if (e[0] == EXFAT_ENTRY_EOD)
			return false;
		if (e[0] & EXFAT_ENTRY_IN_USE)
			break;
	}
	if (*pos >= d->entries)
		return false;
	const uint8_t *e = exfat_dir_entry(d, *pos);
	memset(s, 0, sizeof(*s));
	s->index = *pos;
	s->entries = e;
	s->type = e[0];
	s->count = 1;
	bool benign_primary = (e[0] & (EXFAT_ENTRY_SECONDARY | EXFAT_ENTRY_BENIGN)) == EXFAT_ENTRY_BENIGN;
	if (e[0] == EXFAT_ENTRY_FILE || benign_primary) {
		s->secondary_count = e[1];
		uint32_t n = 0;
		while (n < s->secondary_count && *pos + 1 + n < d->entries &&
		       (exfat_dir_entry(d, *pos + 1 + n)[0] & (EXFAT_ENTRY_IN_USE | EXFAT_ENTRY_SECONDARY)) ==
			       (EXFAT_ENTRY_IN_USE | EXFAT_ENTRY_SECONDARY))
			n++;
		s->count = 1 + n;
		s->stored_checksum = exfat_get_le16(e + 2);
		s->computed_checksum = exfat_set_checksum(e, s->count);
		s->checksum_ok = n == s->secondary_count && s->stored_checksum == s->computed_checksum;
	}
	if (e[0] == EXFAT_ENTRY_FILE)
		parse_file_set(d, s);
	*pos += s->count;
	return true;
}

void exfat_set_name_utf8(const struct exfat_entry_set *s, char *out, size_t cap)
{
	size_t len;
	if (kb_utf16_to_utf8(s->name, s->name_len, out, cap, &len, true) < 0 && cap)
		out[0] = '\0';
}

/* ---- the root directory -------------------------------------------------- */

static void load_upcase(struct exfat_reader *r, struct exfat_root *root)
{
	uint64_t len = exfat_le64(root->upcase.data_length);
	struct exfat_chain ch = { 0 };
	uint8_t *table = NULL;
	root->upcase_problem = NULL;
	if (!root->upcase_pos) {
		root->upcase_problem = "no up-case table entry";
	} else if (len == 0 || len > MAX_UPCASE_BYTES || len % 2) {
		root->upcase_problem = "up-case table size out of range";
	} else if (exfat_chain_follow(r, exfat_le32(root->upcase.first_cluster), false,
				      exfat_reader_clusters_for(r, len), 0, &ch) < 0 || !(table = malloc(len))) {
		root->upcase_problem = "out of memory";
	} else if (ch.clusters < exfat_reader_clusters_for(r, len)) {
		root->upcase_problem = "up-case table chain is broken";
	} else {
		for (uint64_t at = 0; at < len && !root->upcase_problem; at += r->cluster_size) {
			uint64_t n = len - at < r->cluster_size ? len - at : r->cluster_size;
			if (exfat_reader_read(r, exfat_chain_pos(r, &ch, at), table + at, n) < 0)
				root->upcase_problem = "up-case table unreadable";
		}
		if (!root->upcase_problem) {
			root->upcase_computed_checksum = exfat_checksum32(table, len, 0);
			if (root->upcase_computed_checksum != exfat_le32(root->upcase.table_checksum))
				root->upcase_problem = "up-case TableChecksum does not match";
			else if (exfat_upcase_expand(table, len, root->upcase_map, &root->upcase_problem) < 0 &&
				 !root->upcase_problem)
				root->upcase_problem = "up-case table invalid";
		}
	}
	if (root->upcase_problem)
		exfat_upcase_default_map(root->upcase_map);
	free(table);
	exfat_chain_free(&ch);
}

int exfat_root_load(struct exfat_reader *r, struct exfat_root *root)
{
	memset(root, 0, sizeof(*root));
	root->upcase_map = malloc(sizeof(*root->upcase_map));
	root->bm_block = malloc(BITMAP_BLOCK);
	if (!root->upcase_map || !root->bm_block) {
		exfat_root_free(root);
		errno = ENOMEM;
		return -1;
	}
	if (exfat_dir_read(r, exfat_le32(r->bs.root_cluster), false, 0, &root->dir) < 0) {
		int e = errno;
		exfat_root_free(root);
		errno = e;
		return -1;
	}
	for (uint32_t i = 0; i < root->dir.entries; i++) {
		const uint8_t *e = exfat_dir_entry(&root->dir, i);
		uint64_t pos = exfat_dir_entry_pos(r, &root->dir, i);
		if (e[0] == EXFAT_ENTRY_EOD)
			break;
		/* A label entry in use, or else one marked unused (no label). */
		bool label = e[0] == EXFAT_ENTRY_LABEL ||
			     (e[0] == (EXFAT_ENTRY_LABEL & ~EXFAT_ENTRY_IN_USE) && !root->label_pos);
		if (label && (!root->label_pos || root->label.type != EXFAT_ENTRY_LABEL))
			memcpy(&root->label, e, EXFAT_ENTRY_SIZE), root->label_pos = pos;
		else if (e[0] == EXFAT_ENTRY_BITMAP && !root->bitmap_pos)
			memcpy(&root->bitmap, e, EXFAT_ENTRY_SIZE), root->bitmap_pos = pos;
		else if (e[0] == EXFAT_ENTRY_UPCASE && !root->upcase_pos)
			memcpy(&root->upcase, e, EXFAT_ENTRY_SIZE), root->upcase_pos = pos;
		else if (e[0] == EXFAT_ENTRY_GUID && !root->guid_pos)
			memcpy(&root->guid, e, EXFAT_ENTRY_SIZE), root->guid_pos = pos;
	}
	uint64_t bm_bytes = ((uint64_t)r->cluster_count + 7) / 8;
	if (root->bitmap_pos &&
	    exfat_chain_follow(r, exfat_le32(root->bitmap.first_cluster), false,
			       exfat_reader_clusters_for(r, bm_bytes), 0, &root->bitmap_chain) < 0) {
		exfat_root_free(root);
		errno = ENOMEM;
		return -1;
	}
	load_upcase(r, root);
	return 0;
}

void exfat_root_free(struct exfat_root *root)
{
	exfat_dir_free(&root->dir);
	exfat_chain_free(&root->bitmap_chain);
	free(root->upcase_map);
	free(root->bm_block);
	memset(root, 0, sizeof(*root));
}

int exfat_root_bitmap_bit(struct exfat_reader *r, struct exfat_root *root, uint32_t c)
{
	if (!exfat_reader_cluster_ok(r, c))
		return -1;
	uint64_t bit = c - EXFAT_FIRST_CLUSTER, byte = bit / 8, block = byte / BITMAP_BLOCK;
	if (byte >= root->bitmap_chain.clusters << r->cluster_shift)
		return -1;
	if (root->bm_block_no != block + 1) {
		root->bm_block_no = 0;
		if (exfat_reader_read(r, exfat_chain_pos(r, &root->bitmap_chain, block * BITMAP_BLOCK),
				      root->bm_block, BITMAP_BLOCK) < 0)
			return -1;
		root->bm_block_no = block + 1;
	}
	return exfat_bitmap_test(root->bm_block, (uint32_t)(bit % (BITMAP_BLOCK * 8)));
}

uint64_t exfat_root_bitmap_used(struct exfat_reader *r, struct exfat_root *root)
{
	uint64_t bits = r->cluster_count, used = 0, at = 0;
	uint8_t *buf = malloc(BITMAP_READ);
	if (!buf)
		return 0;
	for (size_t i = 0; i < root->bitmap_chain.nruns && at < bits; i++) {
		uint64_t pos = exfat_reader_cluster_pos(r, root->bitmap_chain.runs[i].first);
		uint64_t left = (uint64_t)root->bitmap_chain.runs[i].count << r->cluster_shift;
		while (left && at < bits) {
			size_t n = left < BITMAP_READ ? (size_t)left : BITMAP_READ;
			if (exfat_reader_read(r, pos, buf, n) < 0)
				goto out;
			used += exfat_bitmap_used(buf, n, at, bits);
			at += (uint64_t)n * 8;
			pos += n;
			left -= n;
		}
	}
out:
	free(buf);
	return used;
}

/* ---- path lookup --------------------------------------------------------- */

static bool name_matches(const struct exfat_root *root, const struct exfat_entry_set *s,
			 const uint16_t *upcased, unsigned len)
{
	if (!s->has_stream || s->name_len != len)
		return false;
	for (unsigned i = 0; i < len; i++)
		if (exfat_upcase_char(root->upcase_map, s->name[i]) != upcased[i])
			return false;
	return true;
}

int exfat_lookup(struct exfat_reader *r, const struct exfat_root *root, const char *path,
		 struct exfat_dir *dir, struct exfat_entry_set *set, char *err, size_t err_len)
{
	const char *p = path;
	while (*p == '/')
		p++;
	if (!*p)
		return 0;
	struct exfat_dir cur;
	if (exfat_dir_read(r, exfat_le32(r->bs.root_cluster), false, 0, &cur) < 0) {
		snprintf(err, err_len, "cannot read the root directory: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		size_t len = strcspn(p, "/");
		int upto = (int)(p - path + len);      /* the path up to this component */
		uint16_t name[EXFAT_MAX_NAME_LEN];
		size_t units;
		if (kb_utf8_to_utf16(p, len, name, EXFAT_MAX_NAME_LEN, &units, NULL) < 0) {
			snprintf(err, err_len, "%.*s: %s", upto, path,
				 errno == EILSEQ ? "not valid UTF-8" : "name longer than 255 UTF-16 units");
			break;
		}
		exfat_upcase_name(root->upcase_map, name, (unsigned)units, name);
		struct exfat_entry_set s;
		bool found = false;
		for (uint32_t pos = 0; !found && exfat_dir_next(&cur, &pos, &s);)
			found = s.type == EXFAT_ENTRY_FILE && name_matches(root, &s, name, (unsigned)units);
		if (!found) {
			snprintf(err, err_len, "%.*s: no such file or directory", upto, path);
			break;
		}
		p += len;
		while (*p == '/')
			p++;
		if (!*p) {
			*dir = cur;
			*set = s;
			return 1;
		}
		if (!exfat_set_is_dir(&s)) {
			snprintf(err, err_len, "%.*s: not a directory", upto, path);
			break;
		}
		struct exfat_dir next = { 0 };
		if (s.data_length && exfat_dir_read(r, s.first_cluster, s.stream_flags & EXFAT_SF_NO_FAT_CHAIN,
						    s.data_length, &next) < 0) {
			snprintf(err, err_len, "cannot read directory %.*s: %s", upto, path,
				 strerror(errno));
			break;
		}
		exfat_dir_free(&cur);
		cur = next;
	}
	exfat_dir_free(&cur);
	return -1;
}
