/* exFAT on-disk format: structures, constants, checksums, name hash,
 * geometry and directory entry helpers shared by mkfs.exfat and fsck.exfat.
 * Kernel interface: none; the format is read and written through blockdev.h.
 *
 * All multi-byte on-disk fields are little-endian; read them with
 * exfat_le16/32/64() and write them with exfat_put_le16/32/64() or the
 * htole*() macros. Every parser here takes an explicit buffer length and
 * bounds-checks, so it can be fed untrusted images.
 *
 * Related headers: exfat_upcase.h (default up-case table), utf.h (UTF-8 <->
 * UTF-16), blockdev.h (device I/O), fs_signatures.h (libblkid),
 * mounted.h (libmount), parttable.h (libfdisk). */
#ifndef KBOX_EXFAT_H
#define KBOX_EXFAT_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- sizes and limits --------------------------------------------------- */
#define EXFAT_ENTRY_SIZE          32u
#define EXFAT_BOOT_REGION_SECTORS 12u     /* main region; the backup follows */
#define EXFAT_BACKUP_BOOT_SECTOR  12u
#define EXFAT_BOOT_CHECKSUM_SECTOR 11u    /* within a region */
#define EXFAT_EXT_BOOT_SECTORS    8u      /* sectors 1..8 of a region */
#define EXFAT_MIN_SECTOR_SHIFT    9u
#define EXFAT_MAX_SECTOR_SHIFT    12u
#define EXFAT_MAX_CLUSTER_SHIFT   25u     /* sector shift + cluster shift <= 25 (32 MiB) */
#define EXFAT_FIRST_CLUSTER       2u
#define EXFAT_MAX_CLUSTER_COUNT   0xFFFFFFF5u   /* 2^32 - 11 */
#define EXFAT_MIN_VOLUME_BYTES    (1u << 20)
#define EXFAT_MAX_NAME_LEN        255u    /* UTF-16 code units */
#define EXFAT_NAME_CHARS_PER_ENTRY 15u
#define EXFAT_MAX_LABEL_LEN       11u     /* UTF-16 code units */
#define EXFAT_MAX_DIR_BYTES       (256u << 20)
#define EXFAT_MAX_SECONDARY       255u
#define EXFAT_REVISION            0x0100u

/* FAT entry values. */
#define EXFAT_FAT_FREE            0x00000000u
#define EXFAT_FAT_BAD             0xFFFFFFF7u
#define EXFAT_FAT_MEDIA           0xFFFFFFF8u   /* FAT[0] */
#define EXFAT_FAT_EOC             0xFFFFFFFFu   /* end of chain, and FAT[1] */

/* Boot sector VolumeFlags. */
#define EXFAT_FLAG_ACTIVE_FAT     0x0001u
#define EXFAT_FLAG_VOLUME_DIRTY   0x0002u
#define EXFAT_FLAG_MEDIA_FAILURE  0x0004u
#define EXFAT_FLAG_CLEAR_TO_ZERO  0x0008u

/* Directory entry types (EntryType byte: InUse 0x80, secondary 0x40,
 * benign 0x20, type code 0x1f). */
#define EXFAT_ENTRY_EOD           0x00u   /* end of directory */
#define EXFAT_ENTRY_IN_USE        0x80u
#define EXFAT_ENTRY_SECONDARY     0x40u
#define EXFAT_ENTRY_BENIGN        0x20u
#define EXFAT_ENTRY_BITMAP        0x81u
#define EXFAT_ENTRY_UPCASE        0x82u
#define EXFAT_ENTRY_LABEL         0x83u
#define EXFAT_ENTRY_FILE          0x85u
#define EXFAT_ENTRY_GUID          0xA0u
#define EXFAT_ENTRY_PADDING       0xA1u   /* TexFAT padding */
#define EXFAT_ENTRY_ACL           0xA2u   /* Windows CE access control */
#define EXFAT_ENTRY_STREAM        0xC0u
#define EXFAT_ENTRY_NAME          0xC1u
#define EXFAT_ENTRY_VENDOR_EXT    0xE0u
#define EXFAT_ENTRY_VENDOR_ALLOC  0xE1u

/* FileAttributes. */
#define EXFAT_ATTR_READ_ONLY      0x0001u
#define EXFAT_ATTR_HIDDEN         0x0002u
#define EXFAT_ATTR_SYSTEM         0x0004u
#define EXFAT_ATTR_DIRECTORY      0x0010u
#define EXFAT_ATTR_ARCHIVE        0x0020u
#define EXFAT_ATTR_VALID_MASK     0x0037u

/* GeneralSecondaryFlags. */
#define EXFAT_SF_ALLOC_POSSIBLE   0x01u
#define EXFAT_SF_NO_FAT_CHAIN     0x02u

/* ---- on-disk structures ------------------------------------------------- */
struct exfat_boot_sector {
	uint8_t  jump_boot[3];               /* EB 76 90 */
	char     fs_name[8];                 /* "EXFAT   " */
	uint8_t  must_be_zero[53];
	uint64_t partition_offset;           /* sectors */
	uint64_t volume_length;              /* sectors */
	uint32_t fat_offset;                 /* sectors */
	uint32_t fat_length;                 /* sectors */
	uint32_t cluster_heap_offset;        /* sectors */
	uint32_t cluster_count;
	uint32_t root_cluster;
	uint32_t volume_serial;
	uint16_t fs_revision;                /* 0x0100 */
	uint16_t volume_flags;               /* excluded from the boot checksum */
	uint8_t  sector_shift;               /* BytesPerSectorShift */
	uint8_t  cluster_shift;              /* SectorsPerClusterShift */
	uint8_t  number_of_fats;
	uint8_t  drive_select;               /* 0x80 */
	uint8_t  percent_in_use;             /* excluded from the boot checksum */
	uint8_t  reserved[7];
	uint8_t  boot_code[390];
	uint16_t boot_signature;             /* 0xAA55 */
} __attribute__((packed));

/* The generic 32-byte entry. */
struct exfat_entry {
	uint8_t type;
	uint8_t data[19];
	uint32_t first_cluster;              /* meaningful for bitmap/upcase/stream/vendor alloc */
	uint64_t data_length;
} __attribute__((packed));

struct exfat_bitmap_entry {             /* 0x81 */
	uint8_t  type;
	uint8_t  flags;                      /* bit 0: which FAT (second bitmap) */
	uint8_t  reserved[18];
	uint32_t first_cluster;
	uint64_t data_length;
} __attribute__((packed));

struct exfat_upcase_entry {             /* 0x82 */
	uint8_t  type;
	uint8_t  reserved1[3];
	uint32_t table_checksum;
	uint8_t  reserved2[12];
	uint32_t first_cluster;
	uint64_t data_length;
} __attribute__((packed));

struct exfat_label_entry {              /* 0x83 */
	uint8_t  type;
	uint8_t  char_count;
	uint16_t label[EXFAT_MAX_LABEL_LEN];
	uint8_t  reserved[8];
} __attribute__((packed));

struct exfat_file_entry {               /* 0x85 */
	uint8_t  type;
	uint8_t  secondary_count;
	uint16_t set_checksum;
	uint16_t attributes;
	uint16_t reserved1;
	uint32_t create_time;
	uint32_t modify_time;
	uint32_t access_time;
	uint8_t  create_10ms;
	uint8_t  modify_10ms;
	uint8_t  create_utc_offset;
	uint8_t  modify_utc_offset;
	uint8_t  access_utc_offset;
	uint8_t  reserved2[7];
} __attribute__((packed));

struct exfat_guid_entry {               /* 0xA0 */
	uint8_t  type;
	uint8_t  secondary_count;            /* 0 */
	uint16_t set_checksum;
	uint16_t flags;
	uint8_t  guid[16];
	uint8_t  reserved[10];
} __attribute__((packed));

struct exfat_stream_entry {             /* 0xC0 */
	uint8_t  type;
	uint8_t  flags;                      /* EXFAT_SF_* */
	uint8_t  reserved1;
	uint8_t  name_length;                /* UTF-16 code units */
	uint16_t name_hash;
	uint16_t reserved2;
	uint64_t valid_data_length;
	uint32_t reserved3;
	uint32_t first_cluster;
	uint64_t data_length;
} __attribute__((packed));

struct exfat_name_entry {               /* 0xC1 */
	uint8_t  type;
	uint8_t  flags;
	uint16_t name[EXFAT_NAME_CHARS_PER_ENTRY];
} __attribute__((packed));

struct exfat_vendor_ext_entry {         /* 0xE0 */
	uint8_t  type;
	uint8_t  flags;
	uint8_t  vendor_guid[16];
	uint8_t  vendor_defined[14];
} __attribute__((packed));

struct exfat_vendor_alloc_entry {       /* 0xE1 */
	uint8_t  type;
	uint8_t  flags;
	uint8_t  vendor_guid[16];
	uint16_t vendor_defined;
	uint32_t first_cluster;
	uint64_t data_length;
} __attribute__((packed));

_Static_assert(sizeof(struct exfat_boot_sector) == 512, "boot sector layout");
_Static_assert(sizeof(struct exfat_entry) == 32, "entry layout");
_Static_assert(sizeof(struct exfat_bitmap_entry) == 32, "bitmap entry layout");
_Static_assert(sizeof(struct exfat_upcase_entry) == 32, "upcase entry layout");
_Static_assert(sizeof(struct exfat_label_entry) == 32, "label entry layout");
_Static_assert(sizeof(struct exfat_file_entry) == 32, "file entry layout");
_Static_assert(sizeof(struct exfat_guid_entry) == 32, "guid entry layout");
_Static_assert(sizeof(struct exfat_stream_entry) == 32, "stream entry layout");
_Static_assert(sizeof(struct exfat_name_entry) == 32, "name entry layout");
_Static_assert(sizeof(struct exfat_vendor_ext_entry) == 32, "vendor ext layout");
_Static_assert(sizeof(struct exfat_vendor_alloc_entry) == 32, "vendor alloc layout");

/* ---- little-endian accessors (unaligned-safe) --------------------------- */
static inline uint16_t exfat_get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t exfat_get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t exfat_get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void exfat_put_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void exfat_put_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void exfat_put_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
/* For packed struct fields, by value: exfat_le32(bs->fat_offset). */
#define exfat_le16(v) le16toh(v)
#define exfat_le32(v) le32toh(v)
#define exfat_le64(v) le64toh(v)

/* ---- checksums and hash ------------------------------------------------- */
/* Boot region checksum over sectors 0..10 of a region (11 * sector_size bytes
 * at `region`), skipping VolumeFlags and PercentInUse of sector 0. */
uint32_t exfat_boot_checksum(const void *region, unsigned sector_size);
/* Fills a checksum sector with the checksum repeated (sector_size bytes). */
void exfat_fill_checksum_sector(void *sector, unsigned sector_size, uint32_t checksum);
/* The 32-bit rotating checksum used for the up-case TableChecksum; `seed`
 * allows streaming (start with 0). */
uint32_t exfat_checksum32(const void *buf, size_t len, uint32_t seed);
/* SetChecksum of an entry set: `count` 32-byte entries starting at the
 * primary, skipping bytes 2..3 of the primary. */
uint16_t exfat_set_checksum(const void *entries, unsigned count);
/* NameHash of an up-cased UTF-16 name (host-endian code units, already
 * converted with an up-case map). */
uint16_t exfat_name_hash(const uint16_t *upcased, unsigned len);

/* ---- boot sector -------------------------------------------------------- */
/* Checks a boot sector against the specification's field rules and internal
 * consistency (not the checksum, not the device size). Returns 0, or -1 with
 * a static one-line reason in *why. */
int exfat_boot_sector_check(const struct exfat_boot_sector *bs, const char **why);
/* Checks a whole boot region (12 sectors of ss bytes at `region`): its boot
 * sector as above and of sector size ss, the extended boot signatures and
 * the checksum sector. Returns 0, or -1 with a static reason in *why. */
int exfat_boot_region_check(const void *region, unsigned ss, const char **why);
/* Two boot regions of ss-byte sectors are equal but for VolumeFlags and
 * PercentInUse (which only the main region keeps up to date). */
bool exfat_boot_regions_equal(const void *a, const void *b, unsigned ss);
/* Handy derived values (only meaningful after a successful check). */
static inline unsigned exfat_sector_size(const struct exfat_boot_sector *bs) { return 1u << bs->sector_shift; }
static inline uint64_t exfat_cluster_size(const struct exfat_boot_sector *bs)
{ return 1ull << (bs->sector_shift + bs->cluster_shift); }
/* Byte offset of cluster c (>= 2) from the start of the volume. */
static inline uint64_t exfat_cluster_offset(const struct exfat_boot_sector *bs, uint32_t c)
{
	return ((uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift) +
	       ((uint64_t)(c - EXFAT_FIRST_CLUSTER) << (bs->sector_shift + bs->cluster_shift));
}
static inline bool exfat_cluster_valid(const struct exfat_boot_sector *bs, uint32_t c)
{ return c >= EXFAT_FIRST_CLUSTER && (uint64_t)c < (uint64_t)exfat_le32(bs->cluster_count) + 2; }

/* ---- geometry ----------------------------------------------------------- */
struct exfat_geometry_request {
	uint64_t volume_bytes;        /* size of the region to format */
	uint64_t partition_offset;    /* bytes from the start of the medium (for PartitionOffset) */
	unsigned sector_size;         /* 512..4096, power of two */
	uint64_t cluster_size;        /* 0: the specification's recommended default */
	uint64_t boundary_align;      /* 0: 1 MiB default (shrunk for tiny volumes) */
	bool pack_bitmap;             /* put the bitmap just below the aligned heap */
	uint32_t upcase_bytes;        /* size of the up-case table to place */
};

struct exfat_geometry {
	unsigned sector_shift, cluster_shift;   /* boot sector values */
	unsigned sector_size;
	uint64_t cluster_size;
	uint64_t boundary_align;
	uint64_t volume_length;       /* sectors */
	uint64_t partition_offset;    /* sectors */
	uint32_t fat_offset, fat_length;        /* sectors */
	uint32_t heap_offset;         /* sectors */
	uint32_t cluster_count;
	uint32_t bitmap_cluster, bitmap_clusters;
	uint64_t bitmap_bytes;
	uint32_t upcase_cluster, upcase_clusters;
	uint32_t root_cluster;        /* one cluster */
	uint32_t first_free_cluster;  /* after the root directory */
};

/* The specification's recommended cluster size for a volume of that size:
 * 512 B below 7 MiB, 4 KiB to 256 MiB, 32 KiB to 32 GiB, 128 KiB above
 * (never below the sector size). */
uint64_t exfat_default_cluster_size(uint64_t volume_bytes, unsigned sector_size);
/* Lays out a volume. Returns 0, or -1 with a one-line reason naming the
 * violated limit in err (err_len bytes). Nothing is written. */
int exfat_geometry_compute(const struct exfat_geometry_request *req, struct exfat_geometry *g,
			   char *err, size_t err_len);
/* Fills a boot sector from a geometry (VolumeFlags 0). */
void exfat_boot_sector_init(struct exfat_boot_sector *bs, const struct exfat_geometry *g,
			    uint32_t serial, uint8_t percent_in_use);
/* Builds a whole boot region (12 sectors: boot sector, 8 extended boot
 * sectors with their signatures, OEM and reserved sectors, checksum sector)
 * into `region` (12 * sector_size bytes). */
void exfat_boot_region_build(void *region, const struct exfat_boot_sector *bs, unsigned sector_size);

/* ---- timestamps --------------------------------------------------------- */
/* Converts Unix time to the exFAT (DOS-style) timestamp in UTC with its
 * 10 ms increment and UtcOffset byte (valid, offset 0). Times before 1980 or
 * after 2107 are clamped. */
void exfat_time_from_unix(int64_t sec, long nsec, uint32_t *stamp, uint8_t *ms10, uint8_t *utc_offset);
/* Converts back; returns -1 for an invalid timestamp (month 0, day 0, ...). */
int exfat_time_to_unix(uint32_t stamp, uint8_t ms10, uint8_t utc_offset, int64_t *sec, long *nsec);

/* ---- directory entry sets ----------------------------------------------- */
/* The characters the specification forbids in file names, and so in volume
 * labels: control characters and " * / : < > ? \ | */
static inline bool exfat_name_char_invalid(uint16_t c)
{
	return c < 0x20 || c == '"' || c == '*' || c == '/' || c == ':' || c == '<' || c == '>' ||
	       c == '?' || c == '\\' || c == '|';
}

/* Number of entries of a file's set for a name of name_len code units:
 * file + stream + ceil(name_len / 15) name entries. */
static inline unsigned exfat_set_entries(unsigned name_len)
{ return 2 + (name_len + EXFAT_NAME_CHARS_PER_ENTRY - 1) / EXFAT_NAME_CHARS_PER_ENTRY; }

struct exfat_file_info {
	const uint16_t *name;         /* host-endian UTF-16 */
	unsigned name_len;            /* 1..255 */
	uint16_t name_hash;           /* exfat_name_hash of the up-cased name */
	uint16_t attributes;
	uint32_t first_cluster;       /* 0 when data_length is 0 */
	uint64_t data_length, valid_data_length;
	bool contiguous;              /* NoFatChain */
	uint32_t create_time, modify_time, access_time;
	uint8_t create_10ms, modify_10ms;
	uint8_t create_utc, modify_utc, access_utc;
};
/* Writes a complete file entry set (with SetChecksum) into out, which has
 * room for exfat_set_entries(name_len) entries. Returns the entry count. */
unsigned exfat_build_file_set(void *out, const struct exfat_file_info *fi);

/* Parses the entry set starting at `entries` (avail entries available):
 * checks the primary is a file entry, SecondaryCount fits in avail and is
 * at least 2, the stream entry follows, NameLength fits the name entries.
 * Fills *fi (name points into name_buf, 255 units) and the set's stored and
 * computed checksums. Returns the set's entry count, or -1 with *why. */
int exfat_parse_file_set(const void *entries, unsigned avail, struct exfat_file_info *fi,
			 uint16_t name_buf[EXFAT_MAX_NAME_LEN], uint16_t *stored_checksum,
			 uint16_t *computed_checksum, const char **why);

/* Volume label entry from a UTF-16 label of at most 11 code units. */
void exfat_build_label_entry(struct exfat_label_entry *e, const uint16_t *label, unsigned len);
void exfat_build_bitmap_entry(struct exfat_bitmap_entry *e, uint32_t first_cluster, uint64_t bytes);
void exfat_build_upcase_entry(struct exfat_upcase_entry *e, uint32_t first_cluster, uint64_t bytes,
			      uint32_t checksum);
/* Volume GUID entry (a primary with no secondaries, checksummed). */
void exfat_build_guid_entry(struct exfat_guid_entry *e, const uint8_t guid[16]);

/* Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (hyphens optional) into the
 * on-disk GUID byte order (first three fields little-endian). 0 or -1. */
int exfat_guid_parse(const char *s, uint8_t guid[16]);
/* Formats on-disk GUID bytes as text (37 bytes). */
void exfat_guid_format(const uint8_t guid[16], char out[37]);

/* ---- allocation bitmap -------------------------------------------------- */
static inline bool exfat_bitmap_test(const uint8_t *bm, uint32_t index)
{ return bm[index >> 3] & (1u << (index & 7)); }
static inline void exfat_bitmap_set(uint8_t *bm, uint32_t index)
{ bm[index >> 3] |= (uint8_t)(1u << (index & 7)); }
static inline void exfat_bitmap_clear(uint8_t *bm, uint32_t index)
{ bm[index >> 3] &= (uint8_t)~(1u << (index & 7)); }
/* Clusters marked used in len bytes of an allocation bitmap whose first
 * byte holds the bit of cluster index first_bit (a multiple of 8): bits at
 * cluster_count and past it are not clusters, and are not counted. */
uint64_t exfat_bitmap_used(const uint8_t *bytes, size_t len, uint64_t first_bit, uint64_t cluster_count);
/* PercentInUse of a volume with `used` of its cluster_count clusters
 * allocated: the share rounded down, as the specification defines it (0xFF,
 * "not known", for a volume without clusters). */
static inline uint8_t exfat_percent_in_use(uint64_t used, uint64_t cluster_count)
{
	if (!cluster_count)
		return 0xFF;
	return (uint8_t)(used >= cluster_count ? 100 : used * 100 / cluster_count);
}

#endif
