/* Drives libcommon's exFAT core from the command line for the bats suites:
 *   exfat-core-test upcase-default         compressed default table to stdout
 *   exfat-core-test upcase-checksum FILE   TableChecksum of a table file
 *   exfat-core-test upcase-map CHAR...     up-case of code points (hex)
 *   exfat-core-test utf8 STRING            UTF-16 code units (hex), or the error
 *   exfat-core-test name-hash STRING       NameHash of the up-cased name
 *   exfat-core-test boot IMAGE             checks the main boot region
 *   exfat-core-test geometry BYTES SECTOR CLUSTER [pack]   layout or the error
 *   exfat-core-test ls IMAGE               walks the tree: one line per entry
 *   exfat-core-test bitmap-used HEX FIRST COUNT   clusters marked in bitmap bytes
 *   exfat-core-test percent USED COUNT     PercentInUse */
#include "exfat/exfat.h"
#include "exfat/exfat_upcase.h"
#include "blockdev/blockdev.h"
#include "base/utf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct exfat_upcase_map map;

static int cmd_boot(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	struct exfat_boot_sector bs;
	if (kb_pread_full(fd, &bs, sizeof(bs), 0) < 0) {
		perror(path);
		return 1;
	}
	const char *why;
	if (exfat_boot_sector_check(&bs, &why) < 0) {
		printf("invalid: %s\n", why);
		return 1;
	}
	unsigned ss = exfat_sector_size(&bs);
	uint8_t *region = malloc((size_t)ss * 12);
	if (!region || kb_pread_full(fd, region, (size_t)ss * 12, 0) < 0) {
		perror(path);
		return 1;
	}
	uint32_t sum = exfat_boot_checksum(region, ss);
	uint32_t stored = exfat_get_le32(region + (size_t)11 * ss);
	printf("sector %u cluster %" PRIu64 " clusters %u heap %u fat %u+%u checksum %s\n", ss,
	       exfat_cluster_size(&bs), exfat_le32(bs.cluster_count), exfat_le32(bs.cluster_heap_offset),
	       exfat_le32(bs.fat_offset), exfat_le32(bs.fat_length), sum == stored ? "ok" : "bad");
	free(region);
	close(fd);
	return sum == stored ? 0 : 1;
}

/* ---- ls: a bounded walk of the directory tree through the parsers ---- */
struct image {
	int fd;
	struct exfat_boot_sector bs;
	uint8_t *fat;        /* whole FAT, read once */
	uint64_t fat_bytes;
};

static uint32_t fat_next(const struct image *im, uint32_t c)
{
	if ((uint64_t)c * 4 + 4 > im->fat_bytes)
		return EXFAT_FAT_EOC;
	return exfat_get_le32(im->fat + (uint64_t)c * 4);
}

/* Reads a directory (chain or contiguous) into a buffer; NULL on error. */
static uint8_t *read_dir(const struct image *im, uint32_t first, uint64_t len, bool contiguous,
			 uint64_t *out_len)
{
	uint64_t cs = exfat_cluster_size(&im->bs);
	uint64_t max = contiguous ? (len + cs - 1) / cs : EXFAT_MAX_DIR_BYTES / cs;
	uint8_t *buf = NULL;
	uint64_t n = 0;
	for (uint32_t c = first; n < max && exfat_cluster_valid(&im->bs, c); n++) {
		uint8_t *nb = realloc(buf, (n + 1) * cs);
		if (!nb || kb_pread_full(im->fd, nb + n * cs, cs, exfat_cluster_offset(&im->bs, c)) < 0) {
			free(nb ? nb : buf);
			return NULL;
		}
		buf = nb;
		c = contiguous ? c + 1 : fat_next(im, c);
	}
	*out_len = n * cs;
	return buf;
}

static void list_dir(const struct image *im, const char *prefix, uint32_t first, uint64_t len,
		     bool contiguous, int depth)
{
	uint64_t blen;
	uint8_t *d = read_dir(im, first, len, contiguous, &blen);
	if (!d || depth > 32) {
		printf("%s: unreadable directory\n", prefix);
		free(d);
		return;
	}
	unsigned count = (unsigned)(blen / EXFAT_ENTRY_SIZE);
	for (unsigned i = 0; i < count;) {
		const uint8_t *e = d + (size_t)i * EXFAT_ENTRY_SIZE;
		if (e[0] == EXFAT_ENTRY_EOD)
			break;
		if (e[0] == EXFAT_ENTRY_LABEL) {
			const struct exfat_label_entry *l = (const void *)e;
			uint16_t u[EXFAT_MAX_LABEL_LEN];
			unsigned n = l->char_count > EXFAT_MAX_LABEL_LEN ? EXFAT_MAX_LABEL_LEN : l->char_count;
			for (unsigned k = 0; k < n; k++)
				u[k] = exfat_get_le16(&l->label[k]);
			char s[64];
			kb_utf16_to_utf8(u, n, s, sizeof(s), NULL, true);
			printf("label '%s'\n", s);
		} else if (e[0] == EXFAT_ENTRY_GUID) {
			char g[37];
			exfat_guid_format(((const struct exfat_guid_entry *)e)->guid, g);
			printf("guid %s checksum %s\n", g,
			       exfat_set_checksum(e, 1) == exfat_get_le16(e + 2) ? "ok" : "bad");
		} else if (e[0] == EXFAT_ENTRY_FILE) {
			struct exfat_file_info fi;
			uint16_t name[EXFAT_MAX_NAME_LEN], stored, computed;
			const char *why;
			int n = exfat_parse_file_set(e, count - i, &fi, name, &stored, &computed, &why);
			if (n < 0) {
				printf("%s: bad entry set: %s\n", prefix, why);
				i++;
				continue;
			}
			char u8[EXFAT_MAX_NAME_LEN * 3 + 1], path[4096];
			kb_utf16_to_utf8(name, fi.name_len, u8, sizeof(u8), NULL, true);
			snprintf(path, sizeof(path), "%s/%s", prefix, u8);
			int64_t sec;
			long ns;
			if (exfat_time_to_unix(fi.modify_time, fi.modify_10ms, fi.modify_utc, &sec, &ns) < 0)
				sec = -1;
			printf("%s %s%s size %" PRIu64 " mtime %" PRId64 " checksum %s\n", path,
			       fi.attributes & EXFAT_ATTR_DIRECTORY ? "dir" : "file",
			       fi.attributes & EXFAT_ATTR_READ_ONLY ? " ro" : "", fi.data_length, sec,
			       stored == computed ? "ok" : "bad");
			if (fi.attributes & EXFAT_ATTR_DIRECTORY)
				list_dir(im, path, fi.first_cluster, fi.data_length, fi.contiguous, depth + 1);
			i += (unsigned)n;
			continue;
		}
		i++;
	}
	free(d);
}

static int cmd_ls(const char *path)
{
	struct image im = { .fd = open(path, O_RDONLY) };
	const char *why;
	if (im.fd < 0 || kb_pread_full(im.fd, &im.bs, sizeof(im.bs), 0) < 0) {
		perror(path);
		return 1;
	}
	if (exfat_boot_sector_check(&im.bs, &why) < 0) {
		printf("invalid: %s\n", why);
		return 1;
	}
	im.fat_bytes = (uint64_t)exfat_le32(im.bs.fat_length) << im.bs.sector_shift;
	/* Only the part of the FAT that can matter: count + 2 entries. */
	uint64_t need = ((uint64_t)exfat_le32(im.bs.cluster_count) + 2) * 4;
	if (im.fat_bytes > need)
		im.fat_bytes = need;
	im.fat = malloc(im.fat_bytes);
	if (!im.fat || kb_pread_full(im.fd, im.fat, im.fat_bytes,
				     (uint64_t)exfat_le32(im.bs.fat_offset) << im.bs.sector_shift) < 0) {
		perror(path);
		return 1;
	}
	list_dir(&im, "", exfat_le32(im.bs.root_cluster), 0, false, 0);
	free(im.fat);
	close(im.fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		goto usage;
	const char *cmd = argv[1];
	if (!strcmp(cmd, "upcase-default")) {
		uint8_t t[EXFAT_UPCASE_DEFAULT_BYTES];
		exfat_upcase_default_build(t);
		return fwrite(t, 1, sizeof(t), stdout) == sizeof(t) ? 0 : 1;
	}
	if (!strcmp(cmd, "upcase-checksum") && argc == 3) {
		static uint8_t buf[1 << 20];
		int fd = open(argv[2], O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
		if (n < 0) {
			perror(argv[2]);
			return 1;
		}
		const char *why;
		int rc = exfat_upcase_expand(buf, (size_t)n, &map, &why);
		printf("%08" PRIX32 " %s\n", exfat_checksum32(buf, (size_t)n, 0), rc ? why : "valid");
		return rc ? 1 : 0;
	}
	if (!strcmp(cmd, "upcase-map")) {
		exfat_upcase_default_map(&map);
		for (int i = 2; i < argc; i++)
			printf("%04X\n", exfat_upcase_char(&map, (uint16_t)strtoul(argv[i], NULL, 16)));
		return 0;
	}
	if (!strcmp(cmd, "utf8") && argc == 3) {
		uint16_t out[300];
		size_t n, bad = 0;
		if (kb_utf8_to_utf16(argv[2], strlen(argv[2]), out, 255, &n, &bad) < 0) {
			printf("error %s units %zu offset %zu\n", errno == EILSEQ ? "EILSEQ" : "ENAMETOOLONG",
			       n, bad);
			return 1;
		}
		for (size_t i = 0; i < n; i++)
			printf("%s%04X", i ? " " : "", out[i]);
		char back[1024];
		size_t blen;
		if (kb_utf16_to_utf8(out, n, back, sizeof(back), &blen, false) < 0 ||
		    strcmp(back, argv[2])) {
			printf(" roundtrip-mismatch\n");
			return 1;
		}
		printf("\n");
		return 0;
	}
	if (!strcmp(cmd, "name-hash") && argc == 3) {
		uint16_t name[300];
		size_t n;
		if (kb_utf8_to_utf16(argv[2], strlen(argv[2]), name, 255, &n, NULL) < 0)
			return 1;
		exfat_upcase_default_map(&map);
		exfat_upcase_name(&map, name, (unsigned)n, name);
		printf("%04X\n", exfat_name_hash(name, (unsigned)n));
		return 0;
	}
	if (!strcmp(cmd, "ls") && argc == 3)
		return cmd_ls(argv[2]);
	if (!strcmp(cmd, "boot") && argc == 3)
		return cmd_boot(argv[2]);
	if (!strcmp(cmd, "bitmap-used") && argc == 5) {
		/* HEX: the bitmap's bytes, two hex digits each, the first first. */
		uint8_t bytes[256];
		size_t len = strlen(argv[2]) / 2;
		if (len > sizeof(bytes))
			goto usage;
		for (size_t k = 0; k < len; k++) {
			char pair[3] = { argv[2][2 * k], argv[2][2 * k + 1], 0 };
			bytes[k] = (uint8_t)strtoul(pair, NULL, 16);
		}
		printf("%" PRIu64 "\n", exfat_bitmap_used(bytes, len, strtoull(argv[3], NULL, 0),
							  strtoull(argv[4], NULL, 0)));
		return 0;
	}
	if (!strcmp(cmd, "percent") && argc == 4) {
		printf("%u\n", exfat_percent_in_use(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0)));
		return 0;
	}
	if (!strcmp(cmd, "geometry") && argc >= 5) {
		struct exfat_geometry_request req = {
			.volume_bytes = strtoull(argv[2], NULL, 0),
			.sector_size = (unsigned)strtoul(argv[3], NULL, 0),
			.cluster_size = strtoull(argv[4], NULL, 0),
			.pack_bitmap = argc > 5 && !strcmp(argv[5], "pack"),
			.upcase_bytes = EXFAT_UPCASE_DEFAULT_BYTES,
		};
		struct exfat_geometry g;
		char err[256];
		if (exfat_geometry_compute(&req, &g, err, sizeof(err)) < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		printf("cluster %" PRIu64 " fat_offset %u fat_length %u heap %u clusters %u bitmap %u "
		       "upcase %u root %u\n", g.cluster_size, g.fat_offset, g.fat_length, g.heap_offset,
		       g.cluster_count, g.bitmap_cluster, g.upcase_cluster, g.root_cluster);
		return 0;
	}
usage:
	fprintf(stderr, "usage: exfat-core-test upcase-default|upcase-checksum|upcase-map|utf8|"
			"name-hash|boot|geometry|bitmap-used|percent ...\n");
	return 2;
}
