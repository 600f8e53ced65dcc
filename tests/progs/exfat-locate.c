/* Finds exFAT structures in an image so tests can damage exactly one of them:
 *   exfat-locate IMAGE entry PATH   byte offset of PATH's file entry, its first
 *                                   cluster, data length and entry count
 *   exfat-locate IMAGE fat N [F]    byte offset of FAT entry N (in FAT F: 0 the
 *                                   first, 1 the second)
 *   exfat-locate IMAGE cluster N    byte offset of cluster N
 *   exfat-locate IMAGE bitmap|upcase|root   byte offset of that structure's first cluster,
 *                                   and for bitmap/upcase also its entry's offset
 *   exfat-locate IMAGE bitmap N     the same for the N-th bitmap entry (from 0;
 *                                   two FATs have two)
 *   exfat-locate IMAGE type T       byte offset of the root's first entry of type T
 *                                   (0: the end-of-directory mark)
 *   exfat-locate IMAGE fixsum PATH|OFFSET  recomputes the SetChecksum of PATH's
 *                                   set (or the set at byte OFFSET) in place */
#include "blockdev/blockdev.h"
#include "exfat/exfat.h"
#include "base/utf.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fd;
static struct exfat_boot_sector bs;

static uint32_t next_cluster(uint32_t c)
{
	uint8_t b[4];
	uint64_t off = ((uint64_t)exfat_le32(bs.fat_offset) << bs.sector_shift) + (uint64_t)c * 4;
	if (kb_pread_full(fd, b, 4, off) < 0)
		return EXFAT_FAT_EOC;
	return exfat_get_le32(b);
}

/* Looks for entry type `type` (past `skip` others of that type), or the
 * file named `name`, in the directory starting at `first`; returns the
 * entry's byte offset or 0. */
static uint64_t find(uint32_t first, bool contiguous, uint8_t type, unsigned skip, const char *name,
		     uint8_t out[32 * 19])
{
	uint64_t cs = exfat_cluster_size(&bs);
	uint8_t *buf = malloc(cs);
	for (uint32_t c = first, n = 0; exfat_cluster_valid(&bs, c) && n < 65536; n++) {
		uint64_t base = exfat_cluster_offset(&bs, c);
		if (kb_pread_full(fd, buf, cs, base) < 0)
			break;
		for (uint64_t k = 0; k < cs; k += 32) {
			if (buf[k] == 0 && type == 0 && !name) {
				free(buf);
				return base + k;
			}
			if (buf[k] == 0)
				goto out;
			if (type && buf[k] == type && !skip--) {
				free(buf);
				return base + k;
			}
			if (name && buf[k] == EXFAT_ENTRY_FILE) {
				unsigned count = 1 + buf[k + 1];
				if (count > 19 || kb_pread_full(fd, out, count * 32, base + k) < 0)
					continue;
				struct exfat_file_info fi;
				uint16_t u[EXFAT_MAX_NAME_LEN], s1, s2;
				const char *why;
				char u8[800];
				if (exfat_parse_file_set(out, count, &fi, u, &s1, &s2, &why) < 0)
					continue;
				kb_utf16_to_utf8(fi.name, fi.name_len, u8, sizeof(u8), NULL, true);
				if (!strcmp(u8, name)) {
					free(buf);
					return base + k;
				}
			}
		}
		c = contiguous ? c + 1 : next_cluster(c);
	}
out:
	free(buf);
	return 0;
}

/* Resolves /a/b/c to its file entry; fills set (the entries). */
static uint64_t resolve(const char *path, uint8_t set[32 * 19])
{
	char *copy = strdup(path), *save = NULL;
	uint32_t dir = exfat_le32(bs.root_cluster);
	bool contiguous = false;
	uint64_t at = 0;
	for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		at = find(dir, contiguous, 0, 0, part, set);
		if (!at)
			break;
		const struct exfat_stream_entry *st = (const void *)(set + 32);
		dir = exfat_le32(st->first_cluster);
		contiguous = st->flags & EXFAT_SF_NO_FAT_CHAIN;
	}
	free(copy);
	return at;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: exfat-locate IMAGE entry|fat|cluster|bitmap|upcase|root|fixsum [ARG]\n");
		return 2;
	}
	const char *cmd = argv[2], *arg = argc > 3 ? argv[3] : "";
	fd = open(argv[1], !strcmp(cmd, "fixsum") ? O_RDWR : O_RDONLY);
	if (fd < 0 || kb_pread_full(fd, &bs, sizeof(bs), 0) < 0) {
		perror(argv[1]);
		return 1;
	}
	uint8_t set[32 * 19];
	uint32_t root = exfat_le32(bs.root_cluster);
	if (!strcmp(cmd, "entry") || !strcmp(cmd, "fixsum")) {
		uint64_t at = 0;
		if (!strcmp(cmd, "fixsum") && arg[0] >= '0' && arg[0] <= '9') {
			at = strtoull(arg, NULL, 0);
			if (kb_pread_full(fd, set, 32, at) < 0 || set[0] != EXFAT_ENTRY_FILE || set[1] > 18 ||
			    kb_pread_full(fd, set, 32u * (1 + set[1]), at) < 0)
				at = 0;
		} else {
			at = resolve(arg, set);
		}
		if (!at) {
			fprintf(stderr, "%s: not found\n", arg);
			return 1;
		}
		const struct exfat_stream_entry *st = (const void *)(set + 32);
		if (!strcmp(cmd, "fixsum")) {
			exfat_put_le16(set + 2, exfat_set_checksum(set, 1 + set[1]));
			return kb_pwrite_full(fd, set, 32, at) < 0;
		}
		printf("%" PRIu64 " %u %" PRIu64 " %u\n", at, exfat_le32(st->first_cluster),
		       exfat_le64(st->data_length), 1 + set[1]);
	} else if (!strcmp(cmd, "type")) {
		uint64_t at = find(root, false, (uint8_t)strtoul(arg, NULL, 0), 0, NULL, set);
		if (!at)
			return 1;
		printf("%" PRIu64 "\n", at);
	} else if (!strcmp(cmd, "fat")) {
		uint64_t which = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;
		printf("%" PRIu64 "\n", ((exfat_le32(bs.fat_offset) + which * exfat_le32(bs.fat_length)) << bs.sector_shift) +
					 (uint64_t)strtoull(arg, NULL, 0) * 4);
	} else if (!strcmp(cmd, "cluster")) {
		printf("%" PRIu64 "\n", exfat_cluster_offset(&bs, (uint32_t)strtoul(arg, NULL, 0)));
	} else if (!strcmp(cmd, "root")) {
		printf("%" PRIu64 "\n", exfat_cluster_offset(&bs, root));
	} else if (!strcmp(cmd, "bitmap") || !strcmp(cmd, "upcase")) {
		uint64_t at = find(root, false, !strcmp(cmd, "bitmap") ? EXFAT_ENTRY_BITMAP : EXFAT_ENTRY_UPCASE,
				   (unsigned)strtoul(arg, NULL, 0), NULL, set);
		if (!at || kb_pread_full(fd, set, 32, at) < 0)
			return 1;
		printf("%" PRIu64 " %" PRIu64 "\n", exfat_cluster_offset(&bs, exfat_get_le32(set + 20)), at);
	} else {
		fprintf(stderr, "exfat-locate: unknown command %s\n", cmd);
		return 2;
	}
	return 0;
}
