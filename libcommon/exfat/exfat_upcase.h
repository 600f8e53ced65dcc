/* exFAT up-case tables: the specification's recommended (compressed) default
 * table, its expansion into a full 65,536-entry map, and name up-casing.
 * Kernel interface: none (data and computation only). */
#ifndef KBOX_EXFAT_UPCASE_H
#define KBOX_EXFAT_UPCASE_H

#include <stddef.h>
#include <stdint.h>

#define EXFAT_UPCASE_CHARS            65536u
#define EXFAT_UPCASE_DEFAULT_BYTES    5836u        /* 2,918 little-endian code units */
#define EXFAT_UPCASE_DEFAULT_CHECKSUM 0xE619D30Du  /* its TableChecksum */

/* Writes the recommended compressed table in on-disk byte order. */
void exfat_upcase_default_build(uint8_t out[EXFAT_UPCASE_DEFAULT_BYTES]);
/* The recommended table's mapping, expanded (map[c] = up-case of c). */
void exfat_upcase_default_map(uint16_t map[EXFAT_UPCASE_CHARS]);
/* Expands an on-disk table of len bytes (compressed or not: 0xFFFF followed
 * by N means N identity-mapped characters) into map; characters past the
 * table's end map to themselves. Returns 0, or -1 with a static reason in
 * *why (odd length, a run or table past U+FFFF). map is always fully set. */
int exfat_upcase_expand(const uint8_t *table, size_t len, uint16_t map[EXFAT_UPCASE_CHARS],
			const char **why);
/* out[i] = map[in[i]]; in and out may be the same buffer. */
void exfat_upcase_name(const uint16_t map[EXFAT_UPCASE_CHARS], const uint16_t *in, unsigned len,
		       uint16_t *out);

#endif
