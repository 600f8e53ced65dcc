/* Gives an exFAT image the layout of a TexFAT volume, which no mkfs here
 * makes, so tests can damage what only such a volume has:
 *   exfat-craft IMAGE texfat   NumberOfFats 2: a second FAT (a copy of the
 *                              first, after it) and a second allocation bitmap
 *                              (a copy of the first in free clusters, its root
 *                              entry's BitmapFlags 1); both boot regions are
 *                              rewritten with their checksum
 *   exfat-craft IMAGE onefat   back to one FAT, the second bitmap's entry
 *                              removed, as exfat-fuse needs to mount it
 * The image must have room for the second FAT before the cluster heap. */
#include "blockdev/blockdev.h"
#include "exfat/exfat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fd;
static uint8_t region[EXFAT_BOOT_REGION_SECTORS * 4096];
static struct exfat_boot_sector *bs = (struct exfat_boot_sector *)region;
static unsigned ss;

static void die(const char *what)
{
	fprintf(stderr, "exfat-craft: %s\n", what);
	exit(1);
}

static void rd(void *buf, size_t len, uint64_t off)
{
	if (kb_pread_full(fd, buf, len, off) < 0)
		die("read failed");
}

static void wr(const void *buf, size_t len, uint64_t off)
{
	if (kb_pwrite_full(fd, buf, len, off) < 0)
		die("write failed");
}

static uint64_t fat_at(unsigned which, uint32_t c)
{
	return ((uint64_t)exfat_le32(bs->fat_offset) + which * (uint64_t)exfat_le32(bs->fat_length)) * ss + (uint64_t)c * 4;
}

static uint32_t fat_get(uint32_t c)
{
	uint8_t b[4];
	rd(b, 4, fat_at(0, c));
	return exfat_get_le32(b);
}

static void fat_set(uint32_t c, uint32_t value)
{
	uint8_t b[4];
	exfat_put_le32(b, value);
	wr(b, 4, fat_at(0, c));
}

/* The root directory's entries: the first of type `type` (with flags bit 0
 * equal to `flag`, for bitmaps), or with type 0 the end-of-directory mark. */
static uint64_t root_entry(uint8_t type, int flag)
{
	uint64_t cs = exfat_cluster_size(bs);
	uint8_t e[32];
	for (uint32_t c = exfat_le32(bs->root_cluster); exfat_cluster_valid(bs, c); c = fat_get(c))
		for (uint64_t k = 0; k < cs; k += 32) {
			uint64_t at = exfat_cluster_offset(bs, c) + k;
			rd(e, 32, at);
			if (e[0] == type && (flag < 0 || (e[1] & 1) == flag))
				return at;
			if (e[0] == 0)
				return type == 0 ? at : 0;
		}
	return 0;
}

static void write_boot(void)
{
	exfat_fill_checksum_sector(region + (size_t)EXFAT_BOOT_CHECKSUM_SECTOR * ss, ss, exfat_boot_checksum(region, ss));
	wr(region, (size_t)EXFAT_BOOT_REGION_SECTORS * ss, 0);
	wr(region, (size_t)EXFAT_BOOT_REGION_SECTORS * ss, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss);
}

static void texfat(void)
{
	uint64_t fat_len = (uint64_t)exfat_le32(bs->fat_length) * ss, cs = exfat_cluster_size(bs);
	if ((uint64_t)exfat_le32(bs->fat_offset) * ss + 2 * fat_len > (uint64_t)exfat_le32(bs->cluster_heap_offset) * ss)
		die("no room for a second FAT before the cluster heap");
	uint64_t at = root_entry(EXFAT_ENTRY_BITMAP, 0), end = root_entry(0, -1);
	if (!at || !end)
		die("no allocation bitmap entry, or no room in the root directory");
	struct exfat_bitmap_entry e;
	rd(&e, 32, at);
	uint64_t bytes = exfat_le64(e.data_length);
	uint32_t n = (uint32_t)((bytes + cs - 1) / cs);
	uint8_t *bm = malloc(n * cs);
	if (!bm)
		die("out of memory");
	for (uint32_t k = 0, c = exfat_le32(e.first_cluster); k < n; k++, c = fat_get(c))
		rd(bm + k * cs, cs, exfat_cluster_offset(bs, c));
	/* The copy's clusters: the first free ones, chained, marked in both. */
	uint32_t first = 0, prev = 0, got = 0;
	for (uint32_t k = 0; k < exfat_le32(bs->cluster_count) && got < n; k++) {
		if (exfat_bitmap_test(bm, k))
			continue;
		exfat_bitmap_set(bm, k);
		uint32_t c = k + EXFAT_FIRST_CLUSTER;
		if (prev)
			fat_set(prev, c);
		else
			first = c;
		prev = c, got++;
	}
	if (got < n)
		die("no room for a second allocation bitmap");
	fat_set(prev, EXFAT_FAT_EOC);
	for (uint32_t k = 0, c = exfat_le32(e.first_cluster); k < n; k++, c = fat_get(c))
		wr(bm + k * cs, cs, exfat_cluster_offset(bs, c));
	for (uint32_t k = 0, c = first; k < n; k++, c = fat_get(c))
		wr(bm + k * cs, cs, exfat_cluster_offset(bs, c));
	exfat_build_bitmap_entry(&e, first, bytes);
	e.flags = 1;
	wr(&e, 32, end);
	uint8_t *fat = malloc(fat_len);
	if (!fat)
		die("out of memory");
	rd(fat, fat_len, fat_at(0, 0));
	wr(fat, fat_len, fat_at(1, 0));
	bs->number_of_fats = 2;
	write_boot();
	free(fat), free(bm);
}

static void onefat(void)
{
	uint64_t at = root_entry(EXFAT_ENTRY_BITMAP, 1);
	if (at) {
		uint8_t deleted = EXFAT_ENTRY_BITMAP & (uint8_t)~EXFAT_ENTRY_IN_USE;
		wr(&deleted, 1, at);
	}
	bs->number_of_fats = 1;
	bs->volume_flags = htole16(exfat_le16(bs->volume_flags) & (uint16_t)~EXFAT_FLAG_ACTIVE_FAT);
	write_boot();
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: exfat-craft IMAGE texfat|onefat\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0)
		die("cannot open the image");
	rd(region, 512, 0);
	const char *why;
	if (exfat_boot_sector_check(bs, &why) < 0)
		die(why);
	ss = exfat_sector_size(bs);
	rd(region, (size_t)EXFAT_BOOT_REGION_SECTORS * ss, 0);
	if (!strcmp(argv[2], "texfat"))
		texfat();
	else if (!strcmp(argv[2], "onefat"))
		onefat();
	else
		die("unknown command");
	return close(fd) < 0;
}
