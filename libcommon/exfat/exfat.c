/* exFAT on-disk format helpers: checksums, boot region, geometry, timestamps,
 * directory entry sets. Pure computation on buffers; no I/O here. */
#include "exfat/exfat.h"

#include <ctype.h>
#include <stdio.h>
#include <time.h>

/* ---- checksums ---------------------------------------------------------- */
uint32_t exfat_checksum32(const void *buf, size_t len, uint32_t seed)
{
	const uint8_t *p = buf;
	uint32_t sum = seed;
	for (size_t i = 0; i < len; i++)
		sum = ((sum << 31) | (sum >> 1)) + p[i];
	return sum;
}

uint32_t exfat_boot_checksum(const void *region, unsigned sector_size)
{
	const uint8_t *p = region;
	size_t len = (size_t)sector_size * EXFAT_BOOT_CHECKSUM_SECTOR;
	uint32_t sum = 0;
	for (size_t i = 0; i < len; i++) {
		/* VolumeFlags (106, 107) and PercentInUse (112) change at run time. */
		if (i == 106 || i == 107 || i == 112)
			continue;
		sum = ((sum << 31) | (sum >> 1)) + p[i];
	}
	return sum;
}

void exfat_fill_checksum_sector(void *sector, unsigned sector_size, uint32_t checksum)
{
	uint8_t *p = sector;
	for (unsigned i = 0; i + 4 <= sector_size; i += 4)
		exfat_put_le32(p + i, checksum);
}

/* Rotate right by one, then add: the 16-bit checksum step (unsigned math:
 * a uint16_t shifted would be promoted to int and could overflow). */
static inline uint16_t rotate16(uint16_t sum, unsigned byte)
{
	uint32_t s = sum;
	return (uint16_t)(((s << 15) | (s >> 1)) + byte);
}

uint16_t exfat_set_checksum(const void *entries, unsigned count)
{
	const uint8_t *p = entries;
	size_t len = (size_t)count * EXFAT_ENTRY_SIZE;
	if (!len)
		return 0;
	/* Bytes 2 and 3 are the SetChecksum field itself: skipped outside the
	 * loop so that the loop has no branch. */
	uint16_t sum = rotate16(rotate16(0, p[0]), p[1]);
	for (size_t i = 4; i < len; i++)
		sum = rotate16(sum, p[i]);
	return sum;
}

uint16_t exfat_name_hash(const uint16_t *upcased, unsigned len)
{
	uint16_t hash = 0;
	for (unsigned i = 0; i < len; i++) {
		hash = rotate16(hash, upcased[i] & 0xff);
		hash = rotate16(hash, upcased[i] >> 8);
	}
	return hash;
}

/* ---- boot sector -------------------------------------------------------- */
int exfat_boot_sector_check(const struct exfat_boot_sector *bs, const char **why)
{
	static const uint8_t jump[3] = { 0xEB, 0x76, 0x90 };
#define FAIL(msg) do { *why = msg; return -1; } while (0)
	if (memcmp(bs->fs_name, "EXFAT   ", 8))
		FAIL("no exFAT signature (FileSystemName is not \"EXFAT   \")");
	if (memcmp(bs->jump_boot, jump, 3))
		FAIL("bad JumpBoot (not EB 76 90)");
	for (unsigned i = 0; i < sizeof(bs->must_be_zero); i++)
		if (bs->must_be_zero[i])
			FAIL("MustBeZero area is not zero");
	if (exfat_le16(bs->boot_signature) != 0xAA55)
		FAIL("bad boot signature (not 0xAA55)");
	if (bs->sector_shift < EXFAT_MIN_SECTOR_SHIFT || bs->sector_shift > EXFAT_MAX_SECTOR_SHIFT)
		FAIL("BytesPerSectorShift out of range 9..12");
	if (bs->cluster_shift > EXFAT_MAX_CLUSTER_SHIFT - bs->sector_shift)
		FAIL("cluster size above 32 MiB (SectorsPerClusterShift too large)");
	if ((exfat_le16(bs->fs_revision) >> 8) != 1)
		FAIL("unsupported FileSystemRevision (not 1.x)");
	if (bs->number_of_fats != 1 && bs->number_of_fats != 2)
		FAIL("NumberOfFats is not 1 or 2");

	uint64_t vol_len = exfat_le64(bs->volume_length);
	uint64_t fat_off = exfat_le32(bs->fat_offset);
	uint64_t fat_len = exfat_le32(bs->fat_length);
	uint64_t heap_off = exfat_le32(bs->cluster_heap_offset);
	uint64_t count = exfat_le32(bs->cluster_count);
	uint64_t root = exfat_le32(bs->root_cluster);
	unsigned spc_shift = bs->cluster_shift;

	if (vol_len < ((uint64_t)EXFAT_MIN_VOLUME_BYTES >> bs->sector_shift))
		FAIL("VolumeLength below 1 MiB");
	if (fat_off < 24)
		FAIL("FatOffset inside the boot regions");
	if (fat_len == 0)
		FAIL("FatLength is 0");
	if (count > EXFAT_MAX_CLUSTER_COUNT)
		FAIL("ClusterCount above 2^32-11");
	if (fat_len << bs->sector_shift < (count + 2) * 4)
		FAIL("FatLength too small for ClusterCount");
	if (heap_off < fat_off + fat_len * bs->number_of_fats)
		FAIL("ClusterHeapOffset overlaps the FAT");
	if (heap_off >= vol_len)
		FAIL("ClusterHeapOffset beyond VolumeLength");
	if (heap_off + (count << spc_shift) > vol_len)
		FAIL("cluster heap extends beyond VolumeLength");
	if (fat_off + fat_len * bs->number_of_fats > vol_len)
		FAIL("FAT extends beyond VolumeLength");
	if (root < EXFAT_FIRST_CLUSTER || root >= count + 2)
		FAIL("FirstClusterOfRootDirectory out of range");
	if (bs->percent_in_use > 100 && bs->percent_in_use != 0xFF)
		FAIL("PercentInUse above 100");
	*why = NULL;
	return 0;
#undef FAIL
}

void exfat_boot_sector_init(struct exfat_boot_sector *bs, const struct exfat_geometry *g,
			    uint32_t serial, uint8_t percent_in_use)
{
	memset(bs, 0, sizeof(*bs));
	bs->jump_boot[0] = 0xEB;
	bs->jump_boot[1] = 0x76;
	bs->jump_boot[2] = 0x90;
	memcpy(bs->fs_name, "EXFAT   ", 8);
	bs->partition_offset = htole64(g->partition_offset);
	bs->volume_length = htole64(g->volume_length);
	bs->fat_offset = htole32(g->fat_offset);
	bs->fat_length = htole32(g->fat_length);
	bs->cluster_heap_offset = htole32(g->heap_offset);
	bs->cluster_count = htole32(g->cluster_count);
	bs->root_cluster = htole32(g->root_cluster);
	bs->volume_serial = htole32(serial);
	bs->fs_revision = htole16(EXFAT_REVISION);
	bs->sector_shift = (uint8_t)g->sector_shift;
	bs->cluster_shift = (uint8_t)g->cluster_shift;
	bs->number_of_fats = 1;
	bs->drive_select = 0x80;
	bs->percent_in_use = percent_in_use;
	/* Boot code: a tight loop (hlt; jmp back) so a BIOS that jumps here halts. */
	bs->boot_code[0] = 0xF4;
	bs->boot_code[1] = 0xEB;
	bs->boot_code[2] = 0xFD;
	bs->boot_signature = htole16(0xAA55);
}

void exfat_boot_region_build(void *region, const struct exfat_boot_sector *bs, unsigned sector_size)
{
	uint8_t *p = region;
	memset(p, 0, (size_t)sector_size * EXFAT_BOOT_REGION_SECTORS);
	memcpy(p, bs, sizeof(*bs));
	/* Extended boot sectors end with the signature AA550000. */
	for (unsigned s = 1; s <= EXFAT_EXT_BOOT_SECTORS; s++)
		exfat_put_le32(p + (size_t)s * sector_size + sector_size - 4, 0xAA550000u);
	uint32_t sum = exfat_boot_checksum(p, sector_size);
	exfat_fill_checksum_sector(p + (size_t)EXFAT_BOOT_CHECKSUM_SECTOR * sector_size, sector_size, sum);
}

int exfat_boot_region_check(const void *region_buf, unsigned ss, const char **why)
{
	const uint8_t *region = region_buf;
	const struct exfat_boot_sector *bs = region_buf;
	if (exfat_boot_sector_check(bs, why) < 0)
		return -1;
	if (exfat_sector_size(bs) != ss) {
		*why = "sector size differs";
		return -1;
	}
	for (unsigned s = 1; s <= EXFAT_EXT_BOOT_SECTORS; s++)
		if (exfat_get_le32(region + (s + 1) * ss - 4) != 0xAA550000u) {
			*why = "an extended boot sector has no 0xAA550000 signature";
			return -1;
		}
	uint32_t sum = exfat_boot_checksum(region, ss);
	const uint8_t *cs = region + EXFAT_BOOT_CHECKSUM_SECTOR * ss;
	for (unsigned k = 0; k < ss; k += 4)
		if (exfat_get_le32(cs + k) != sum) {
			*why = "boot checksum sector does not match the region";
			return -1;
		}
	return 0;
}

bool exfat_boot_regions_equal(const void *a_buf, const void *b_buf, unsigned ss)
{
	/* All but VolumeFlags (106, 107) and PercentInUse (112). */
	const uint8_t *a = a_buf, *b = b_buf;
	size_t len = (size_t)EXFAT_BOOT_REGION_SECTORS * ss;
	return !memcmp(a, b, 106) && !memcmp(a + 108, b + 108, 4) && !memcmp(a + 113, b + 113, len - 113);
}

/* ---- geometry ----------------------------------------------------------- */
static uint64_t round_up(uint64_t v, uint64_t align)
{
	return (v + align - 1) / align * align;
}

static unsigned log2_exact(uint64_t v)
{
	unsigned s = 0;
	while ((1ull << s) < v)
		s++;
	return s;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

uint64_t exfat_default_cluster_size(uint64_t volume_bytes, unsigned sector_size)
{
	uint64_t cs;
	if (volume_bytes < (7ull << 20))
		cs = 512;
	else if (volume_bytes <= (256ull << 20))
		cs = 4096;
	else if (volume_bytes <= (32ull << 30))
		cs = 32768;
	else
		cs = 131072;
	return cs < sector_size ? sector_size : cs;
}

/* One layout attempt with a fixed boundary. */
static int layout(const struct exfat_geometry_request *req, uint64_t boundary,
		  struct exfat_geometry *g, char *err, size_t err_len)
{
	const uint64_t ss = g->sector_size, cs = g->cluster_size;
	uint64_t vol = req->volume_bytes / ss * ss;
	uint64_t start = req->partition_offset;   /* alignment is relative to the medium */

	/* FAT right after the two boot regions, on the boundary. */
	uint64_t fat_off = round_up(start + 24 * ss, boundary) - start;
	/* Enough FAT for every cluster the volume could hold, in whole clusters. */
	uint64_t max_clusters = vol / cs;
	uint64_t fat_bytes = round_up(max_clusters * 4, cs);
	uint64_t heap_off, count;
	for (;;) {
		heap_off = round_up(start + fat_off + fat_bytes, boundary) - start;
		if (heap_off >= vol) {
			snprintf(err, err_len, "volume too small: %llu bytes leave no room for the "
				 "cluster heap after the FAT (boundary %llu, cluster size %llu)",
				 (unsigned long long)vol, (unsigned long long)boundary,
				 (unsigned long long)cs);
			return -1;
		}
		count = (vol - heap_off) / cs;
		/* FAT[0] and FAT[1] are not clusters; grow the FAT if they do not fit. */
		if ((count + 2) * 4 <= fat_bytes)
			break;
		fat_bytes += cs;
	}
	if (req->pack_bitmap) {
		/* Pull the heap start back by the bitmap's clusters so that the
		 * clusters after the bitmap start on the boundary. The bitmap grows
		 * with the count, so settle it by iterating. */
		for (int i = 0; i < 4; i++) {
			uint64_t bm_clusters = round_up((count + 7) / 8, cs) / cs;
			uint64_t aligned = round_up(start + fat_off + fat_bytes, boundary) - start;
			uint64_t cand = aligned - bm_clusters * cs;
			if (cand < fat_off + fat_bytes || cand == heap_off)
				break;
			uint64_t cand_count = (vol - cand) / cs;
			if ((cand_count + 2) * 4 > fat_bytes)
				break;
			heap_off = cand;
			count = cand_count;
		}
	}
	if (count > EXFAT_MAX_CLUSTER_COUNT) {
		snprintf(err, err_len, "cluster size %llu too small for %llu bytes: %llu clusters exceed "
			 "the exFAT limit of 2^32-11; use a larger cluster size",
			 (unsigned long long)cs, (unsigned long long)vol, (unsigned long long)count);
		return -1;
	}
	uint64_t bitmap_bytes = (count + 7) / 8;
	uint64_t bitmap_clusters = round_up(bitmap_bytes, cs) / cs;
	uint64_t upcase_clusters = round_up(req->upcase_bytes, cs) / cs;
	/* Bitmap, up-case table, root directory and at least one free cluster. */
	if (count < bitmap_clusters + upcase_clusters + 2) {
		snprintf(err, err_len, "volume too small: %llu clusters of %llu bytes cannot hold the "
			 "bitmap, up-case table and root directory",
			 (unsigned long long)count, (unsigned long long)cs);
		return -1;
	}
	if ((fat_off >> g->sector_shift) > UINT32_MAX || (heap_off >> g->sector_shift) > UINT32_MAX ||
	    (fat_bytes >> g->sector_shift) > UINT32_MAX) {
		snprintf(err, err_len, "layout does not fit the 32-bit sector fields of the boot sector; "
			 "use a larger cluster size or smaller boundary");
		return -1;
	}
	g->boundary_align = boundary;
	g->volume_length = vol / ss;
	g->partition_offset = start / ss;
	g->fat_offset = (uint32_t)(fat_off / ss);
	g->fat_length = (uint32_t)(fat_bytes / ss);
	g->heap_offset = (uint32_t)(heap_off / ss);
	g->cluster_count = (uint32_t)count;
	g->bitmap_bytes = bitmap_bytes;
	g->bitmap_cluster = EXFAT_FIRST_CLUSTER;
	g->bitmap_clusters = (uint32_t)bitmap_clusters;
	g->upcase_cluster = g->bitmap_cluster + g->bitmap_clusters;
	g->upcase_clusters = (uint32_t)upcase_clusters;
	g->root_cluster = g->upcase_cluster + g->upcase_clusters;
	g->first_free_cluster = g->root_cluster + 1;
	return 0;
}

int exfat_geometry_compute(const struct exfat_geometry_request *req, struct exfat_geometry *g,
			   char *err, size_t err_len)
{
	memset(g, 0, sizeof(*g));
	unsigned ss = req->sector_size;
	if (!is_pow2(ss) || ss < 512 || ss > 4096) {
		snprintf(err, err_len, "sector size %u is not a power of two between 512 and 4096", ss);
		return -1;
	}
	if (req->volume_bytes < EXFAT_MIN_VOLUME_BYTES) {
		snprintf(err, err_len, "volume too small: %llu bytes, exFAT needs at least 1 MiB",
			 (unsigned long long)req->volume_bytes);
		return -1;
	}
	if (req->partition_offset % ss) {
		snprintf(err, err_len, "partition offset %llu is not a multiple of the sector size %u",
			 (unsigned long long)req->partition_offset, ss);
		return -1;
	}
	uint64_t cs = req->cluster_size ? req->cluster_size
					 : exfat_default_cluster_size(req->volume_bytes, ss);
	if (!is_pow2(cs) || cs < 512 || cs > (32u << 20)) {
		snprintf(err, err_len, "cluster size %llu is not a power of two between 512 and 32M",
			 (unsigned long long)cs);
		return -1;
	}
	if (cs < ss) {
		snprintf(err, err_len, "cluster size %llu is smaller than the sector size %u",
			 (unsigned long long)cs, ss);
		return -1;
	}
	uint64_t boundary = req->boundary_align ? req->boundary_align : (1u << 20);
	if (!is_pow2(boundary) || boundary < ss) {
		snprintf(err, err_len, "boundary alignment %llu is not a power of two of at least the "
			 "sector size %u", (unsigned long long)boundary, ss);
		return -1;
	}
	g->sector_size = ss;
	g->sector_shift = log2_exact(ss);
	g->cluster_size = cs;
	g->cluster_shift = log2_exact(cs) - g->sector_shift;
	if (layout(req, boundary, g, err, err_len) == 0)
		return 0;
	/* A small volume cannot afford 1 MiB alignment; without an explicit -b
	 * fall back to cluster (then sector) alignment rather than refusing. */
	if (!req->boundary_align) {
		if (cs < boundary && layout(req, cs, g, err, err_len) == 0)
			return 0;
		if (layout(req, ss, g, err, err_len) == 0)
			return 0;
	}
	return -1;
}

/* ---- timestamps --------------------------------------------------------- */
void exfat_time_from_unix(int64_t sec, long nsec, uint32_t *stamp, uint8_t *ms10, uint8_t *utc_offset)
{
	/* 1980-01-01 .. 2107-12-31 23:59:58 UTC */
	const int64_t min = 315532800, max = 4354819198;
	if (sec < min) {
		sec = min;
		nsec = 0;
	} else if (sec > max) {
		sec = max;
		nsec = 0;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	gmtime_r(&t, &tm);
	*stamp = (uint32_t)(tm.tm_year - 80) << 25 | (uint32_t)(tm.tm_mon + 1) << 21 |
		 (uint32_t)tm.tm_mday << 16 | (uint32_t)tm.tm_hour << 11 |
		 (uint32_t)tm.tm_min << 5 | (uint32_t)(tm.tm_sec / 2);
	/* 10 ms units past the even second, 0..199. */
	*ms10 = (uint8_t)((tm.tm_sec % 2) * 100 + nsec / 10000000);
	*utc_offset = 0x80;   /* valid, UTC */
}

int exfat_time_to_unix(uint32_t stamp, uint8_t ms10, uint8_t utc_offset, int64_t *sec, long *nsec)
{
	struct tm tm = {
		.tm_year = (int)(stamp >> 25) + 80,
		.tm_mon = (int)((stamp >> 21) & 0x0f) - 1,
		.tm_mday = (int)((stamp >> 16) & 0x1f),
		.tm_hour = (int)((stamp >> 11) & 0x1f),
		.tm_min = (int)((stamp >> 5) & 0x3f),
		.tm_sec = (int)(stamp & 0x1f) * 2,
	};
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 58 || ms10 > 199)
		return -1;
	int64_t t = (int64_t)timegm(&tm);
	t += ms10 / 100;
	if (utc_offset & 0x80) {
		/* 7-bit signed count of 15-minute intervals east of UTC. */
		int off = utc_offset & 0x7f;
		if (off & 0x40)
			off -= 0x80;
		t -= (int64_t)off * 15 * 60;
	}
	*sec = t;
	*nsec = (long)(ms10 % 100) * 10000000;
	return 0;
}

/* ---- directory entries -------------------------------------------------- */
unsigned exfat_build_file_set(void *out, const struct exfat_file_info *fi)
{
	unsigned n = exfat_set_entries(fi->name_len);
	memset(out, 0, (size_t)n * EXFAT_ENTRY_SIZE);
	struct exfat_file_entry *f = out;
	struct exfat_stream_entry *s = (struct exfat_stream_entry *)((uint8_t *)out + EXFAT_ENTRY_SIZE);
	f->type = EXFAT_ENTRY_FILE;
	f->secondary_count = (uint8_t)(n - 1);
	f->attributes = htole16(fi->attributes);
	f->create_time = htole32(fi->create_time);
	f->modify_time = htole32(fi->modify_time);
	f->access_time = htole32(fi->access_time);
	f->create_10ms = fi->create_10ms;
	f->modify_10ms = fi->modify_10ms;
	f->create_utc_offset = fi->create_utc;
	f->modify_utc_offset = fi->modify_utc;
	f->access_utc_offset = fi->access_utc;
	s->type = EXFAT_ENTRY_STREAM;
	s->flags = EXFAT_SF_ALLOC_POSSIBLE | (fi->contiguous ? EXFAT_SF_NO_FAT_CHAIN : 0);
	s->name_length = (uint8_t)fi->name_len;
	s->name_hash = htole16(fi->name_hash);
	s->valid_data_length = htole64(fi->valid_data_length);
	s->first_cluster = htole32(fi->first_cluster);
	s->data_length = htole64(fi->data_length);
	for (unsigned i = 0; i < n - 2; i++) {
		struct exfat_name_entry *ne =
			(struct exfat_name_entry *)((uint8_t *)out + (size_t)(2 + i) * EXFAT_ENTRY_SIZE);
		ne->type = EXFAT_ENTRY_NAME;
		for (unsigned k = 0; k < EXFAT_NAME_CHARS_PER_ENTRY; k++) {
			unsigned idx = i * EXFAT_NAME_CHARS_PER_ENTRY + k;
			if (idx < fi->name_len)
				exfat_put_le16(&ne->name[k], fi->name[idx]);
		}
	}
	f->set_checksum = htole16(exfat_set_checksum(out, n));
	return n;
}

int exfat_parse_file_set(const void *entries, unsigned avail, struct exfat_file_info *fi,
			 uint16_t name_buf[EXFAT_MAX_NAME_LEN], uint16_t *stored_checksum,
			 uint16_t *computed_checksum, const char **why)
{
	const uint8_t *p = entries;
	memset(fi, 0, sizeof(*fi));
	if (avail < 1 || p[0] != EXFAT_ENTRY_FILE) {
		*why = "not a file entry";
		return -1;
	}
	const struct exfat_file_entry *f = entries;
	unsigned n = 1u + f->secondary_count;
	if (f->secondary_count < 2) {
		*why = "SecondaryCount below 2";
		return -1;
	}
	if (n > avail) {
		*why = "entry set runs past the end of the directory";
		return -1;
	}
	const uint8_t *sp = p + EXFAT_ENTRY_SIZE;
	if (sp[0] != EXFAT_ENTRY_STREAM) {
		*why = "file entry not followed by a stream extension entry";
		return -1;
	}
	const struct exfat_stream_entry *s = (const void *)sp;
	fi->attributes = exfat_le16(f->attributes);
	fi->create_time = exfat_le32(f->create_time);
	fi->modify_time = exfat_le32(f->modify_time);
	fi->access_time = exfat_le32(f->access_time);
	fi->create_10ms = f->create_10ms;
	fi->modify_10ms = f->modify_10ms;
	fi->create_utc = f->create_utc_offset;
	fi->modify_utc = f->modify_utc_offset;
	fi->access_utc = f->access_utc_offset;
	fi->contiguous = s->flags & EXFAT_SF_NO_FAT_CHAIN;
	fi->name_len = s->name_length;
	fi->name_hash = exfat_le16(s->name_hash);
	fi->valid_data_length = exfat_le64(s->valid_data_length);
	fi->first_cluster = exfat_le32(s->first_cluster);
	fi->data_length = exfat_le64(s->data_length);
	fi->name = name_buf;
	*stored_checksum = exfat_le16(f->set_checksum);
	*computed_checksum = exfat_set_checksum(p, n);
	if (fi->name_len == 0) {
		*why = "NameLength is 0";
		return -1;
	}
	/* Name entries follow the stream entry, one per 15 code units. */
	unsigned need = (fi->name_len + EXFAT_NAME_CHARS_PER_ENTRY - 1) / EXFAT_NAME_CHARS_PER_ENTRY;
	if (2 + need > n) {
		*why = "NameLength needs more file name entries than SecondaryCount holds";
		return -1;
	}
	for (unsigned i = 0; i < need; i++) {
		const struct exfat_name_entry *ne = (const void *)(p + (size_t)(2 + i) * EXFAT_ENTRY_SIZE);
		if (ne->type != EXFAT_ENTRY_NAME) {
			*why = "missing file name entry";
			return -1;
		}
		for (unsigned k = 0; k < EXFAT_NAME_CHARS_PER_ENTRY; k++) {
			unsigned idx = i * EXFAT_NAME_CHARS_PER_ENTRY + k;
			if (idx < fi->name_len)
				name_buf[idx] = exfat_get_le16(&ne->name[k]);
		}
	}
	*why = NULL;
	return (int)n;
}

void exfat_build_label_entry(struct exfat_label_entry *e, const uint16_t *label, unsigned len)
{
	memset(e, 0, sizeof(*e));
	e->type = EXFAT_ENTRY_LABEL;
	if (len > EXFAT_MAX_LABEL_LEN)
		len = EXFAT_MAX_LABEL_LEN;
	e->char_count = (uint8_t)len;
	for (unsigned i = 0; i < len; i++)
		exfat_put_le16(&e->label[i], label[i]);
}

void exfat_build_bitmap_entry(struct exfat_bitmap_entry *e, uint32_t first_cluster, uint64_t bytes)
{
	memset(e, 0, sizeof(*e));
	e->type = EXFAT_ENTRY_BITMAP;
	e->first_cluster = htole32(first_cluster);
	e->data_length = htole64(bytes);
}

void exfat_build_upcase_entry(struct exfat_upcase_entry *e, uint32_t first_cluster, uint64_t bytes,
			      uint32_t checksum)
{
	memset(e, 0, sizeof(*e));
	e->type = EXFAT_ENTRY_UPCASE;
	e->table_checksum = htole32(checksum);
	e->first_cluster = htole32(first_cluster);
	e->data_length = htole64(bytes);
}

void exfat_build_guid_entry(struct exfat_guid_entry *e, const uint8_t guid[16])
{
	memset(e, 0, sizeof(*e));
	e->type = EXFAT_ENTRY_GUID;
	memcpy(e->guid, guid, 16);
	e->set_checksum = htole16(exfat_set_checksum(e, 1));
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int exfat_guid_parse(const char *s, uint8_t guid[16])
{
	uint8_t b[16];
	unsigned n = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '-')
			continue;
		int hi = hexval(p[0]);
		int lo = hi < 0 ? -1 : hexval(p[1]);
		if (lo < 0 || n >= 16)
			return -1;
		b[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	if (n != 16)
		return -1;
	/* Text order to on-disk order: Data1 (4), Data2 (2), Data3 (2) little-endian. */
	static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	for (unsigned i = 0; i < 16; i++)
		guid[i] = b[order[i]];
	return 0;
}

void exfat_guid_format(const uint8_t g[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12],
		 g[13], g[14], g[15]);
}

uint64_t exfat_bitmap_used(const uint8_t *bytes, size_t len, uint64_t first_bit, uint64_t cluster_count)
{
	if (first_bit >= cluster_count)
		return 0;
	uint64_t bits = cluster_count - first_bit;   /* clusters from first_bit on */
	if (len > (bits + 7) / 8)
		len = (size_t)((bits + 7) / 8);
	uint64_t used = 0;
	size_t k = 0;
	for (; k + 8 <= len; k += 8) {
		uint64_t x;
		memcpy(&x, bytes + k, 8);
		used += (uint64_t)__builtin_popcountll(x);
	}
	for (; k < len; k++)
		used += (uint64_t)__builtin_popcount(bytes[k]);
	/* The last byte's bits past the last cluster. */
	if (len && bits < (uint64_t)len * 8)
		used -= (uint64_t)__builtin_popcount(bytes[len - 1] >> (bits % 8));
	return used;
}
