/* Damages an exFAT image the way the property test needs: random bit flips in
 * its metadata, chosen by a seed, and which files each flip may cost.
 *   exfat-flip IMAGE SEED [FLIPS]
 * flips FLIPS bits (default: 1 to 4, by the seed), each in one of the boot
 * regions, the FAT, the allocation bitmap, the up-case table or a directory
 * cluster (mostly where something is in use: FAT entries of chains, bits of
 * clusters in use, entry sets), and prints
 *   flip OFFSET BIT REGION OWNER     for each flip (OWNER: the path whose
 *                                    metadata it hit, "-" for none, "volume"
 *                                    for the boot region, bitmap, up-case table)
 *   hit PATH                         for each file whose own metadata was
 *                                    hit: its entry set, its chain's FAT
 *                                    entries, its clusters' bitmap bits, or
 *                                    those of a directory above it.
 * The image must be clean when it is read (its tree is mapped first, through
 * exfat_dump.h's reader). */
#include "blockdev/blockdev.h"
#include "exfat/exfat_dump.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NO_OWNER (-1)
#define VOLUME_OWNER (-2)

enum kind { ROOT, VOLUME_FILE, DIR, FILE_ };   /* VOLUME_FILE: bitmap, up-case table */

struct item {
	enum kind kind;
	char *path;
	bool contiguous;
	bool hit;
};

struct entry_owner {
	uint64_t pos;
	int item;
};

struct map {
	struct exfat_reader *r;
	struct item *items;
	size_t nitems, capitems;
	int *cluster_owner;            /* per cluster c - 2: item index, or NO_OWNER */
	struct entry_owner *entries;   /* every entry of every set */
	size_t nentries, capentries;
	uint32_t *dir_clusters;        /* every directory cluster, the root's too */
	size_t ndirc, capdirc;
	const struct exfat_chain *bitmap; /* the allocation bitmap's chain */
	uint32_t upcase;               /* the up-case table's first cluster, and its size */
	uint64_t upcase_bytes;
	uint32_t *chained;             /* clusters whose FAT entry is part of a chain */
	size_t nchained, capchained;
	uint32_t *owned;               /* clusters in use */
	size_t nowned, capowned;
};

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	p = realloc(p, *cap * size);
	if (!p) {
		perror("exfat-flip");
		exit(1);
	}
	return p;
}

/* One item of the tree: its kind and path, the byte offsets of its entries
 * (count of them) and its chain. */
static void record(struct map *m, enum kind kind, const char *path, const uint64_t *entry_pos, unsigned count,
		   const struct exfat_chain *ch, bool contiguous)
{
	m->items = grow(m->items, &m->capitems, m->nitems, sizeof(*m->items));
	int idx = (int)m->nitems++;
	int owner = kind == VOLUME_FILE ? VOLUME_OWNER : idx;
	m->items[idx] = (struct item){ kind, strdup(path), contiguous, false };
	for (unsigned k = 0; k < count; k++) {
		m->entries = grow(m->entries, &m->capentries, m->nentries, sizeof(*m->entries));
		m->entries[m->nentries++] = (struct entry_owner){ entry_pos[k], owner };
	}
	for (size_t run = 0; run < ch->nruns; run++)
		for (uint32_t c = ch->runs[run].first; c < ch->runs[run].first + ch->runs[run].count; c++) {
			m->cluster_owner[c - EXFAT_FIRST_CLUSTER] = owner;
			m->owned = grow(m->owned, &m->capowned, m->nowned, sizeof(uint32_t));
			m->owned[m->nowned++] = c;
			if (!contiguous) {
				m->chained = grow(m->chained, &m->capchained, m->nchained, sizeof(uint32_t));
				m->chained[m->nchained++] = c;
			}
			if (kind == ROOT || kind == DIR) {
				m->dir_clusters = grow(m->dir_clusters, &m->capdirc, m->ndirc, sizeof(uint32_t));
				m->dir_clusters[m->ndirc++] = c;
			}
		}
}

/* Records every entry set of directory d (at path), and walks into the
 * directories among them. */
static int map_dir(struct map *m, const char *path, const struct exfat_dir *d, unsigned depth)
{
	struct exfat_reader *r = m->r;
	struct exfat_entry_set s;
	for (uint32_t pos = 0; exfat_dir_next(d, &pos, &s);) {
		if (s.type != EXFAT_ENTRY_FILE || !s.has_stream)
			continue;
		uint64_t entry_pos[EXFAT_MAX_SECONDARY + 1];
		for (uint32_t k = 0; k < s.count; k++)
			entry_pos[k] = exfat_dir_entry_pos(r, d, s.index + k);
		char name[3 * EXFAT_MAX_NAME_LEN + 1], child[4096];
		exfat_set_name_utf8(&s, name, sizeof(name));
		snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ? path : "", name);
		bool contiguous = s.stream_flags & EXFAT_SF_NO_FAT_CHAIN;
		struct exfat_dir sub = { 0 };
		if (exfat_set_is_dir(&s) && s.data_length && depth < 64) {
			if (exfat_dir_read(r, s.first_cluster, contiguous, s.data_length, &sub) < 0)
				return -1;
			record(m, DIR, child, entry_pos, s.count, &sub.chain, contiguous);
			int rc = map_dir(m, child, &sub, depth + 1);
			exfat_dir_free(&sub);
			if (rc < 0)
				return -1;
			continue;
		}
		if (s.data_length && exfat_chain_follow(r, s.first_cluster, contiguous,
							exfat_reader_clusters_for(r, s.data_length), 0, &sub.chain) < 0)
			return -1;
		record(m, exfat_set_is_dir(&s) ? DIR : FILE_, child, entry_pos, s.count, &sub.chain, contiguous);
		exfat_chain_free(&sub.chain);
	}
	return 0;
}

/* The whole tree: the root directory, its bitmap and up-case table, then
 * every entry set below it. */
static int map_tree(struct map *m, struct exfat_root *root)
{
	struct exfat_reader *r = m->r;
	struct exfat_chain upcase = { 0 };
	uint64_t up_bytes = exfat_le64(root->upcase.data_length);
	if (!root->bitmap_pos || !root->upcase_pos || !root->bitmap_chain.clusters ||
	    exfat_chain_follow(r, exfat_le32(root->upcase.first_cluster), false, exfat_reader_clusters_for(r, up_bytes),
			       0, &upcase) < 0 || !upcase.clusters)
		return -1;
	record(m, ROOT, "/", NULL, 0, &root->dir.chain, false);
	record(m, VOLUME_FILE, "", &root->bitmap_pos, 1, &root->bitmap_chain, false);
	record(m, VOLUME_FILE, "", &root->upcase_pos, 1, &upcase, false);
	m->bitmap = &root->bitmap_chain;
	m->upcase = upcase.runs[0].first;
	m->upcase_bytes = up_bytes;
	exfat_chain_free(&upcase);
	return map_dir(m, "/", &root->dir, 0);
}

static uint64_t rng_state;

/* splitmix64 */
static uint64_t rnd(uint64_t below)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	return below ? z % below : z;
}

static int entry_owner_at(const struct map *m, uint64_t off)
{
	for (size_t k = 0; k < m->nentries; k++)
		if (off >= m->entries[k].pos && off < m->entries[k].pos + EXFAT_ENTRY_SIZE)
			return m->entries[k].item;
	return NO_OWNER;
}

static int cluster_owner(const struct map *m, uint32_t c)
{
	return exfat_reader_cluster_ok(m->r, c) ? m->cluster_owner[c - EXFAT_FIRST_CLUSTER] : NO_OWNER;
}

struct flip {
	uint64_t off;
	unsigned bit;
	const char *region;
	int owner;                     /* item index, NO_OWNER or VOLUME_OWNER */
};

/* Picks one bit to flip. */
static void pick(const struct map *m, struct flip *f)
{
	const struct exfat_reader *r = m->r;
	unsigned ss = r->sector_size;
	f->bit = (unsigned)rnd(8);
	f->owner = NO_OWNER;
	switch (rnd(5)) {
	case 0: {
		uint64_t base = rnd(2) ? (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss : 0;
		f->off = base + (rnd(2) ? rnd(120) : rnd((uint64_t)EXFAT_BOOT_REGION_SECTORS * ss));
		f->region = "boot";
		f->owner = VOLUME_OWNER;
		return;
	}
	case 1: {
		uint32_t c = m->nchained && rnd(5) ? m->chained[rnd(m->nchained)] : (uint32_t)rnd((uint64_t)r->cluster_count + 2);
		f->off = r->fat_offset + (uint64_t)c * 4 + rnd(4);
		f->region = "fat";
		int o = c < EXFAT_FIRST_CLUSTER ? VOLUME_OWNER : cluster_owner(m, c);
		/* A contiguous file's FAT entries are not read. */
		f->owner = o >= 0 && m->items[o].contiguous ? NO_OWNER : o;
		return;
	}
	case 2: {
		uint32_t k = rnd(5) ? m->owned[rnd(m->nowned)] - EXFAT_FIRST_CLUSTER : (uint32_t)rnd(r->cluster_count);
		f->off = exfat_chain_pos(r, m->bitmap, k / 8);
		f->bit = k % 8;
		f->region = "bitmap";
		f->owner = cluster_owner(m, k + EXFAT_FIRST_CLUSTER);
		return;
	}
	case 3:
		f->off = exfat_reader_cluster_pos(r, m->upcase) +
			 rnd(m->upcase_bytes < r->cluster_size ? m->upcase_bytes : r->cluster_size);
		f->region = "upcase";
		f->owner = VOLUME_OWNER;
		return;
	default:
		if (rnd(10) < 7)
			f->off = m->entries[rnd(m->nentries)].pos + rnd(EXFAT_ENTRY_SIZE);
		else
			f->off = exfat_reader_cluster_pos(r, m->dir_clusters[rnd(m->ndirc)]) + rnd(r->cluster_size);
		f->region = "dir";
		f->owner = entry_owner_at(m, f->off);
		return;
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: exfat-flip IMAGE SEED [FLIPS]\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	struct exfat_reader r;
	struct exfat_root root;
	char err[256];
	if (exfat_reader_open(&r, fd, (uint64_t)st.st_size, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "exfat-flip: %s: %s\n", argv[1], err);
		return 1;
	}
	struct map m = { .r = &r, .cluster_owner = malloc(sizeof(int) * ((size_t)r.cluster_count + 1)) };
	for (uint32_t k = 0; m.cluster_owner && k <= r.cluster_count; k++)
		m.cluster_owner[k] = NO_OWNER;
	if (!m.cluster_owner || exfat_root_load(&r, &root) < 0 || map_tree(&m, &root) < 0 || !m.nentries) {
		fprintf(stderr, "exfat-flip: %s: cannot map the tree\n", argv[1]);
		return 1;
	}
	rng_state = strtoull(argv[2], NULL, 0) * 0x2545F4914F6CDD1Dull + 1;
	unsigned flips = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 0) : 1 + (unsigned)rnd(4);
	for (unsigned n = 0; n < flips; n++) {
		struct flip f;
		pick(&m, &f);
		uint8_t b;
		if (kb_pread_full(fd, &b, 1, f.off) < 0)
			return 1;
		b ^= (uint8_t)(1u << f.bit);
		if (kb_pwrite_full(fd, &b, 1, f.off) < 0)
			return 1;
		printf("flip %" PRIu64 " %u %s %s\n", f.off, f.bit, f.region,
		       f.owner == VOLUME_OWNER ? "volume" : f.owner == NO_OWNER ? "-" : m.items[f.owner].path);
		if (f.owner >= 0)
			m.items[f.owner].hit = true;
	}
	/* A hit directory takes everything under it along. */
	for (size_t d = 0; d < m.nitems; d++) {
		if (!m.items[d].hit || (m.items[d].kind != DIR && m.items[d].kind != ROOT))
			continue;
		size_t len = strlen(m.items[d].path);
		for (size_t k = 0; k < m.nitems; k++)
			if (m.items[d].kind == ROOT ||
			    (!strncmp(m.items[k].path, m.items[d].path, len) && m.items[k].path[len] == '/'))
				m.items[k].hit = true;
	}
	for (size_t k = 0; k < m.nitems; k++)
		if (m.items[k].hit && m.items[k].kind == FILE_)
			printf("hit %s\n", m.items[k].path);
	return fsync(fd) < 0 || close(fd) < 0;
}
