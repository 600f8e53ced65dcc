/* Drives libcommon's exFAT core from the command line for the bats suites:
 *   exfat-core-test upcase-default         compressed default table to stdout
 *   exfat-core-test upcase-checksum FILE   TableChecksum of a table file
 *   exfat-core-test upcase-map CHAR...     up-case of code points (hex)
 *   exfat-core-test utf8 STRING            UTF-16 code units (hex), or the error
 *   exfat-core-test name-hash STRING       NameHash of the up-cased name
 *   exfat-core-test boot IMAGE             checks the main boot region
 *   exfat-core-test geometry BYTES SECTOR CLUSTER [pack]   layout or the error */
#include "exfat.h"
#include "exfat_upcase.h"
#include "blockdev.h"
#include "utf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint16_t map[EXFAT_UPCASE_CHARS];

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
		int rc = exfat_upcase_expand(buf, (size_t)n, map, &why);
		printf("%08" PRIX32 " %s\n", exfat_checksum32(buf, (size_t)n, 0), rc ? why : "valid");
		return rc ? 1 : 0;
	}
	if (!strcmp(cmd, "upcase-map")) {
		exfat_upcase_default_map(map);
		for (int i = 2; i < argc; i++)
			printf("%04X\n", map[strtoul(argv[i], NULL, 16) & 0xFFFF]);
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
		exfat_upcase_default_map(map);
		exfat_upcase_name(map, name, (unsigned)n, name);
		printf("%04X\n", exfat_name_hash(name, (unsigned)n));
		return 0;
	}
	if (!strcmp(cmd, "boot") && argc == 3)
		return cmd_boot(argv[2]);
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
			"name-hash|boot|geometry ...\n");
	return 2;
}
