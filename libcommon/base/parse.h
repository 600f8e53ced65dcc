/* Number, size and duration parsing with overflow checks.
 * Each returns 0 on success, -1 with errno set (EINVAL or ERANGE) otherwise.
 * Kernel interface: none. */
#ifndef KBOX_PARSE_H
#define KBOX_PARSE_H

#include <stdint.h>

/* Decimal, or hexadecimal with 0x; no sign, no trailing garbage. */
int kb_parse_u64(const char *s, uint64_t *out);
/* Like kb_parse_u64, then checks min <= value <= max (ERANGE otherwise). */
int kb_parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Integer with optional binary suffix K, M, G, T, P, E (case-insensitive,
 * optionally followed by "iB" or "B"): "512", "4K", "1MiB", "2T". */
int kb_parse_size(const char *s, uint64_t *out);
/* Duration in nanoseconds: a number (decimal fraction allowed) with a unit
 * ns, us, ms, s, m, h; a bare number is in default_unit_ns units. */
int kb_parse_duration(const char *s, uint64_t default_unit_ns, uint64_t *ns);
/* Formats a byte count as "1.5 GiB" into buf (at least 16 bytes). */
const char *kb_format_size(uint64_t bytes, char *buf, unsigned len);

#endif
