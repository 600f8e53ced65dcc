/* Reading an exFAT volume without changing it, for the tools that describe
 * or copy its metadata (dump.exfat, exfat2img): the boot regions and which
 * one is usable, FAT lookups, cluster chains as runs, directories and the
 * entry sets in them, the root's bitmap, up-case and label entries, path
 * lookup and the allocation bitmap's bits.
 *
 * Reads go through an open descriptor and never past its size (what lies
 * beyond reads as zeros); every on-disk value is range-checked before it is
 * used, so a damaged or hostile image is described, never trusted.
 * Kernel interface: none of its own; reads are pread(2) through blockdev.h,
 * and exfat_reader_open_path opens the device with kb_dev_open_reading
 * (mounted.h). */
#ifndef KBOX_EXFAT_DUMP_H
#define KBOX_EXFAT_DUMP_H

#include "exfat/exfat.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXFAT_FAT_CACHE_SLOTS 16u

/* What is wrong with one boot region (NULL: nothing). */
struct exfat_region_state {
	const char *problem;           /* first problem found, or NULL */
	bool sector_ok;                /* the boot sector's fields pass the checks */
	unsigned sector_size;          /* the size it was read with */
	uint32_t stored_checksum;      /* first word of its checksum sector */
	uint32_t computed_checksum;
};

struct exfat_reader {
	int fd;
	uint64_t dev_size;
	struct exfat_boot_sector main_bs;      /* sector 0 as found */
	struct exfat_boot_sector bs;           /* the boot sector in use */
	struct exfat_region_state main, backup;
	bool backup_in_use;            /* the main region was unusable */
	bool regions_differ;           /* both read, not equal (VolumeFlags and PercentInUse aside) */
	unsigned sector_size;
	unsigned cluster_shift;        /* log2 of the cluster size in bytes */
	uint64_t cluster_size;
	uint32_t cluster_count;
	uint64_t fat_offset;           /* bytes, the active FAT */
	uint64_t heap_offset;          /* bytes */
	int error;                     /* errno of the first failed read, 0: none */
	bool owns_fd;                  /* exfat_reader_free closes fd */
	uint8_t *fat_cache;            /* EXFAT_FAT_CACHE_SLOTS windows of 1024 entries, as on disk */
	uint64_t fat_cache_tag[EXFAT_FAT_CACHE_SLOTS];  /* window number + 1, 0: empty */
};

/* Opens the volume on fd (dev_size bytes): reads both boot regions and takes
 * the first one whose boot sector passes exfat_boot_sector_check, preferring
 * one with a good checksum. Returns 0, or -1 with a one-line reason in err;
 * *not_exfat (if not NULL) tells that neither region has the exFAT name. */
int exfat_reader_open(struct exfat_reader *r, int fd, uint64_t dev_size, bool *not_exfat,
		      char *err, size_t err_len);
/* The same for the block device or image file at path, opened read-only
 * (see kb_dev_open_reading for *busy and mounted); the reader owns the
 * descriptor. On failure err names path. */
int exfat_reader_open_path(struct exfat_reader *r, const char *path, bool *busy, char *mounted,
			   size_t mounted_len, char *err, size_t err_len);
void exfat_reader_free(struct exfat_reader *r);
/* Reads [off, off + len); what lies past the device's end reads as zeros.
 * 0, or -1 with errno (also kept in r->error). */
int exfat_reader_read(struct exfat_reader *r, uint64_t off, void *buf, size_t len);
/* FAT entry of cluster c (c < cluster count + 2), host-endian; a read
 * error gives EXFAT_FAT_EOC and sets r->error. */
uint32_t exfat_reader_fat(struct exfat_reader *r, uint32_t c);
static inline bool exfat_reader_cluster_ok(const struct exfat_reader *r, uint32_t c)
{ return c >= EXFAT_FIRST_CLUSTER && (uint64_t)c < (uint64_t)r->cluster_count + 2; }
static inline uint64_t exfat_reader_cluster_pos(const struct exfat_reader *r, uint32_t c)
{ return r->heap_offset + ((uint64_t)(c - EXFAT_FIRST_CLUSTER) << r->cluster_shift); }
/* Clusters needed for `bytes` bytes (rounded up, without overflow). */
static inline uint64_t exfat_reader_clusters_for(const struct exfat_reader *r, uint64_t bytes)
{ return (bytes >> r->cluster_shift) + ((bytes & (r->cluster_size - 1)) != 0); }

/* ---- cluster chains ------------------------------------------------------ */
struct exfat_run {
	uint32_t first, count;
};

enum exfat_chain_end {
	EXFAT_CHAIN_COMPLETE,          /* end-of-chain mark, or all clusters asked for */
	EXFAT_CHAIN_FIRST_INVALID,     /* the first cluster is outside the heap */
	EXFAT_CHAIN_EARLY_END,         /* end-of-chain mark before the clusters asked for */
	EXFAT_CHAIN_FREE,              /* a FAT entry of 0 inside the chain */
	EXFAT_CHAIN_BAD,               /* a cluster of the chain is marked bad */
	EXFAT_CHAIN_INVALID,           /* a FAT entry points outside the heap */
	EXFAT_CHAIN_LOOP,              /* the chain comes back to a cluster of its own */
	EXFAT_CHAIN_HEAP_END,          /* contiguous: runs past the last cluster */
	EXFAT_CHAIN_TOO_LONG,          /* no end-of-chain mark within the limit */
	EXFAT_CHAIN_IO,                /* the FAT could not be read */
};

struct exfat_chain {
	struct exfat_run *runs;
	size_t nruns, cap;
	uint64_t clusters;             /* in all runs */
	enum exfat_chain_end end;
	uint32_t value;                /* the FAT value (or first cluster) that ended it */
	bool longer;                   /* all clusters asked for were found, and the FAT
					  chain goes on after them (no end-of-chain mark) */
};

/* Follows the chain from `first`: `want` clusters (0: up to the end-of-chain
 * mark, at most `max`; max 0: the cluster count). contiguous follows
 * NoFatChain: want clusters in a row. Loops are found without marking
 * anything. Returns 0 (ch->end says how it ended), -1 only for ENOMEM. */
int exfat_chain_follow(struct exfat_reader *r, uint32_t first, bool contiguous, uint64_t want,
		       uint64_t max, struct exfat_chain *ch);
void exfat_chain_free(struct exfat_chain *ch);
/* Keeps the first n clusters of the chain. */
void exfat_chain_cut(struct exfat_chain *ch, uint64_t n);
/* Stable short name of an end: "complete", "loop", ... */
const char *exfat_chain_end_name(enum exfat_chain_end e);
/* Device byte offset of byte `at` of the chain's data (at < clusters * cluster size). */
uint64_t exfat_chain_pos(const struct exfat_reader *r, const struct exfat_chain *ch, uint64_t at);

/* ---- directories and entry sets ----------------------------------------- */
struct exfat_dir {
	struct exfat_chain chain;
	uint8_t *buf;                  /* the chain's clusters, read */
	uint32_t entries;              /* 32-byte entries in buf */
};

/* Reads a directory: the clusters `bytes` bytes need (its DataLength; 0: up
 * to the end-of-chain mark, as for the root), at most 256 MiB. 0, or -1 with
 * errno (ENOMEM, or the read error). */
int exfat_dir_read(struct exfat_reader *r, uint32_t first, bool contiguous, uint64_t bytes,
		   struct exfat_dir *d);
/* Reads the clusters of d->chain (followed, and perhaps cut, by the caller)
 * into d->buf; on failure frees d. 0, or -1 with errno. */
int exfat_dir_load(struct exfat_reader *r, struct exfat_dir *d);
void exfat_dir_free(struct exfat_dir *d);
static inline const uint8_t *exfat_dir_entry(const struct exfat_dir *d, uint32_t i)
{ return d->buf + (size_t)i * EXFAT_ENTRY_SIZE; }
static inline uint64_t exfat_dir_entry_pos(const struct exfat_reader *r, const struct exfat_dir *d, uint32_t i)
{ return exfat_chain_pos(r, &d->chain, (uint64_t)i * EXFAT_ENTRY_SIZE); }

/* An entry set as found: a primary with the secondaries that follow it, or
 * a lone entry (a secondary outside any set is one too). */
struct exfat_entry_set {
	uint32_t index;                /* entry index of its first entry */
	uint32_t count;                /* entries that belong: 1 + the secondaries present,
					  at most SecondaryCount */
	const uint8_t *entries;        /* into the directory's buffer */
	uint8_t type;
	unsigned secondary_count;      /* as declared (0 for types without one) */
	bool checksum_ok;              /* SetChecksum matches the declared set (file and
					  benign primaries; false when the set is cut short) */
	uint16_t stored_checksum, computed_checksum;
	/* A file's set (type 0x85): */
	bool has_stream;               /* its second entry is a stream extension */
	uint16_t attributes;
	uint8_t stream_flags;
	unsigned name_length;          /* NameLength as stored */
	uint16_t stored_hash;
	uint32_t first_cluster;
	uint64_t data_length, valid_data_length;
	unsigned name_entries;         /* file name entries present */
	uint16_t name[EXFAT_MAX_NAME_LEN]; /* host-endian */
	unsigned name_len;             /* units of name filled: NameLength, cut to the entries present */
};
static inline bool exfat_set_is_dir(const struct exfat_entry_set *s)
{ return s->type == EXFAT_ENTRY_FILE && (s->attributes & EXFAT_ATTR_DIRECTORY); }

/* The next entry set at or after entry *pos, skipping unused entries; stops
 * at the end-of-directory mark. Returns true with *s filled and *pos moved
 * past it, false at the end. */
bool exfat_dir_next(const struct exfat_dir *d, uint32_t *pos, struct exfat_entry_set *s);
/* The name as UTF-8 (invalid UTF-16 shown as U+FFFD) into out (cap bytes). */
void exfat_set_name_utf8(const struct exfat_entry_set *s, char *out, size_t cap);

/* ---- the root directory -------------------------------------------------- */
struct exfat_root {
	struct exfat_dir dir;
	/* The first entry of each kind (the label: in use, or else marked
	 * unused); their device offsets (0: none). */
	struct exfat_label_entry label;
	struct exfat_bitmap_entry bitmap;
	struct exfat_upcase_entry upcase;
	struct exfat_guid_entry guid;
	uint64_t label_pos, bitmap_pos, upcase_pos, guid_pos;
	/* The allocation bitmap's chain (empty without a bitmap entry). */
	struct exfat_chain bitmap_chain;
	/* The up-case map names are compared with: the volume's table, or the
	 * default one when upcase_problem says why not. */
	struct exfat_upcase_map *upcase_map;
	const char *upcase_problem;
	uint32_t upcase_computed_checksum;
	/* A block of the bitmap kept for exfat_root_bitmap_bit. */
	uint8_t *bm_block;
	uint64_t bm_block_no;          /* block number + 1, 0: none */
};

/* Reads the root directory and its bitmap, up-case and label entries, and
 * loads the up-case map. 0, or -1 with errno (ENOMEM or a read error). */
int exfat_root_load(struct exfat_reader *r, struct exfat_root *root);
void exfat_root_free(struct exfat_root *root);
/* Cluster c's bit in the allocation bitmap: 1 in use, 0 free, -1 unknown
 * (no bitmap, beyond its chain, or a read error). */
int exfat_root_bitmap_bit(struct exfat_reader *r, struct exfat_root *root, uint32_t c);
/* Clusters marked in use in the bitmap (bits 0..cluster count - 1). */
uint64_t exfat_root_bitmap_used(struct exfat_reader *r, struct exfat_root *root);

/* Finds PATH (components separated by '/', compared through the up-case
 * map): returns 1 with *dir holding the directory that has it and *set its
 * entry set; 0 for the root itself (dir and set untouched); -1 with a
 * one-line reason in err. The caller frees dir. */
int exfat_lookup(struct exfat_reader *r, const struct exfat_root *root, const char *path,
		 struct exfat_dir *dir, struct exfat_entry_set *set, char *err, size_t err_len);

#endif
