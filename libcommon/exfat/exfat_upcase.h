/* exFAT up-case tables: the specification's recommended (compressed) default
 * table, its expansion into a compact map, and name up-casing.
 * Kernel interface: none (data and computation only). */
#ifndef KBOX_EXFAT_UPCASE_H
#define KBOX_EXFAT_UPCASE_H

#include <stddef.h>
#include <stdint.h>

#define EXFAT_UPCASE_CHARS            65536u
#define EXFAT_UPCASE_DEFAULT_BYTES    5836u        /* 2,918 little-endian code units */
#define EXFAT_UPCASE_DEFAULT_CHECKSUM 0xE619D30Du  /* its TableChecksum */

#define EXFAT_UPCASE_PAGES            256u         /* of 256 characters each */

/* An expanded up-case table. Most characters map to themselves, so the map
 * holds, per page of 256 characters, what to add to each one (mod 65536),
 * and every page in which no character changes shares the all-zero page
 * delta[0] (the recommended table fills 14 others: 8 KiB in all). Pages
 * past npages are never written, so a heap-allocated map costs memory only
 * for the pages in use. */
struct exfat_upcase_map {
	uint16_t page_of[EXFAT_UPCASE_PAGES];  /* c >> 8 -> its page in delta */
	unsigned npages;
	uint16_t delta[EXFAT_UPCASE_PAGES + 1][256];
};

static inline uint16_t exfat_upcase_char(const struct exfat_upcase_map *m, uint16_t c)
{
	return (uint16_t)(c + m->delta[m->page_of[c >> 8]][c & 255]);
}

/* Writes the recommended compressed table in on-disk byte order. */
void exfat_upcase_default_build(uint8_t out[EXFAT_UPCASE_DEFAULT_BYTES]);
/* The recommended table's mapping. */
void exfat_upcase_default_map(struct exfat_upcase_map *m);
/* Expands an on-disk table of len bytes (compressed or not: 0xFFFF followed
 * by N means N identity-mapped characters) into m; characters past the
 * table's end map to themselves. Returns 0, or -1 with a static reason in
 * *why (odd length, a run or table past U+FFFF). m is always fully set. */
int exfat_upcase_expand(const uint8_t *table, size_t len, struct exfat_upcase_map *m, const char **why);
/* out[i] = up-case of in[i]; in and out may be the same buffer. */
void exfat_upcase_name(const struct exfat_upcase_map *m, const uint16_t *in, unsigned len, uint16_t *out);

#endif
