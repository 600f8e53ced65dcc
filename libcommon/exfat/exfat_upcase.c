/* The exFAT specification's recommended up-case table, generated from a
 * compact description of its mapping, and table expansion. */
#include "exfat/exfat_upcase.h"

#include <string.h>

#include "exfat/exfat.h"

/* Every character the recommended table maps to something other than itself:
 * characters first..last (every `step`-th one) map to c + delta. */
struct upcase_rule {
	uint16_t first, last;
	int32_t delta;
	uint8_t step;
};

static const struct upcase_rule default_rules[] = {
	{ 0x0061, 0x007a, -32, 1 }, { 0x00e0, 0x00f6, -32, 1 }, { 0x00f8, 0x00fe, -32, 1 },
	{ 0x00ff, 0x00ff, 121, 1 }, { 0x0101, 0x012f, -1, 2 }, { 0x0133, 0x0137, -1, 2 },
	{ 0x013a, 0x0148, -1, 2 }, { 0x014b, 0x0177, -1, 2 }, { 0x017a, 0x017e, -1, 2 },
	{ 0x0180, 0x0180, 195, 1 }, { 0x0183, 0x0185, -1, 2 }, { 0x0188, 0x0188, -1, 1 },
	{ 0x018c, 0x018c, -1, 1 }, { 0x0192, 0x0192, -1, 1 }, { 0x0195, 0x0195, 97, 1 },
	{ 0x0199, 0x0199, -1, 1 }, { 0x019a, 0x019a, 163, 1 }, { 0x019e, 0x019e, 130, 1 },
	{ 0x01a1, 0x01a5, -1, 2 }, { 0x01a8, 0x01a8, -1, 1 }, { 0x01ad, 0x01ad, -1, 1 },
	{ 0x01b0, 0x01b0, -1, 1 }, { 0x01b4, 0x01b6, -1, 2 }, { 0x01b9, 0x01b9, -1, 1 },
	{ 0x01bd, 0x01bd, -1, 1 }, { 0x01bf, 0x01bf, 56, 1 }, { 0x01c6, 0x01c6, -2, 1 },
	{ 0x01c9, 0x01c9, -2, 1 }, { 0x01cc, 0x01cc, -2, 1 }, { 0x01ce, 0x01dc, -1, 2 },
	{ 0x01dd, 0x01dd, -79, 1 }, { 0x01df, 0x01ef, -1, 2 }, { 0x01f3, 0x01f3, -2, 1 },
	{ 0x01f5, 0x01f5, -1, 1 }, { 0x01f9, 0x021f, -1, 2 }, { 0x0223, 0x0233, -1, 2 },
	{ 0x023a, 0x023a, 10795, 1 }, { 0x023c, 0x023c, -1, 1 }, { 0x023e, 0x023e, 10792, 1 },
	{ 0x0242, 0x0242, -1, 1 }, { 0x0247, 0x024f, -1, 2 }, { 0x0253, 0x0253, -210, 1 },
	{ 0x0254, 0x0254, -206, 1 }, { 0x0256, 0x0257, -205, 1 }, { 0x0259, 0x0259, -202, 1 },
	{ 0x025b, 0x025b, -203, 1 }, { 0x0260, 0x0260, -205, 1 }, { 0x0263, 0x0263, -207, 1 },
	{ 0x0268, 0x0268, -209, 1 }, { 0x0269, 0x0269, -211, 1 }, { 0x026b, 0x026b, 10743, 1 },
	{ 0x026f, 0x026f, -211, 1 }, { 0x0272, 0x0272, -213, 1 }, { 0x0275, 0x0275, -214, 1 },
	{ 0x027d, 0x027d, 10727, 1 }, { 0x0280, 0x0280, -218, 1 }, { 0x0283, 0x0283, -218, 1 },
	{ 0x0288, 0x0288, -218, 1 }, { 0x0289, 0x0289, -69, 1 }, { 0x028a, 0x028b, -217, 1 },
	{ 0x028c, 0x028c, -71, 1 }, { 0x0292, 0x0292, -219, 1 }, { 0x037b, 0x037d, 130, 1 },
	{ 0x03ac, 0x03ac, -38, 1 }, { 0x03ad, 0x03af, -37, 1 }, { 0x03b1, 0x03c1, -32, 1 },
	{ 0x03c2, 0x03c2, -31, 1 }, { 0x03c3, 0x03cb, -32, 1 }, { 0x03cc, 0x03cc, -64, 1 },
	{ 0x03cd, 0x03ce, -63, 1 }, { 0x03d9, 0x03ef, -1, 2 }, { 0x03f2, 0x03f2, 7, 1 },
	{ 0x03f8, 0x03f8, -1, 1 }, { 0x03fb, 0x03fb, -1, 1 }, { 0x0430, 0x044f, -32, 1 },
	{ 0x0450, 0x045f, -80, 1 }, { 0x0461, 0x0481, -1, 2 }, { 0x048b, 0x04bf, -1, 2 },
	{ 0x04c2, 0x04ce, -1, 2 }, { 0x04cf, 0x04cf, -15, 1 }, { 0x04d1, 0x0513, -1, 2 },
	{ 0x0561, 0x0586, -48, 1 }, { 0x1d7d, 0x1d7d, 3814, 1 }, { 0x1e01, 0x1e95, -1, 2 },
	{ 0x1ea1, 0x1ef9, -1, 2 }, { 0x1f00, 0x1f07, 8, 1 }, { 0x1f10, 0x1f15, 8, 1 },
	{ 0x1f20, 0x1f27, 8, 1 }, { 0x1f30, 0x1f37, 8, 1 }, { 0x1f40, 0x1f45, 8, 1 },
	{ 0x1f51, 0x1f57, 8, 2 }, { 0x1f60, 0x1f67, 8, 1 }, { 0x1f70, 0x1f71, 74, 1 },
	{ 0x1f72, 0x1f75, 86, 1 }, { 0x1f76, 0x1f77, 100, 1 }, { 0x1f78, 0x1f79, 128, 1 },
	{ 0x1f7a, 0x1f7b, 112, 1 }, { 0x1f7c, 0x1f7d, 126, 1 }, { 0x1f80, 0x1f87, 8, 1 },
	{ 0x1f90, 0x1f97, 8, 1 }, { 0x1fa0, 0x1fa7, 8, 1 }, { 0x1fb0, 0x1fb1, 8, 1 },
	{ 0x1fb3, 0x1fb3, 9, 1 }, { 0x1fcc, 0x1fcc, -9, 1 }, { 0x1fd0, 0x1fd1, 8, 1 },
	{ 0x1fe0, 0x1fe1, 8, 1 }, { 0x1fe5, 0x1fe5, 7, 1 }, { 0x1ffc, 0x1ffc, -9, 1 },
	{ 0x214e, 0x214e, -28, 1 }, { 0x2170, 0x217f, -16, 1 }, { 0x2184, 0x2184, -1, 1 },
	{ 0x24d0, 0x24e9, -26, 1 }, { 0x2c30, 0x2c5e, -48, 1 }, { 0x2c61, 0x2c61, -1, 1 },
	{ 0x2c68, 0x2c6c, -1, 2 }, { 0x2c76, 0x2c76, -1, 1 }, { 0x2c81, 0x2ce3, -1, 2 },
	{ 0x2d00, 0x2d25, -7264, 1 }, { 0xff41, 0xff5a, -32, 1 },
};

/* Where the recommended table's compressed form uses identity runs
 * (0xFFFF, count); everything else is stored one code unit per character. */
static const struct { uint16_t first, count; } default_runs[] = {
	{ 0x0587, 6134 }, { 0x2185, 843 }, { 0x24ea, 1862 }, { 0x2d26, 53787 },
};

static void map_clear(struct exfat_upcase_map *m)
{
	memset(m->page_of, 0, sizeof(m->page_of));
	memset(m->delta[0], 0, sizeof(m->delta[0]));
	m->npages = 1;
}

/* c maps to up: c's page gets a page of its own the first time one of its
 * characters does not map to itself. */
static void map_set(struct exfat_upcase_map *m, uint32_t c, uint16_t up)
{
	unsigned p = m->page_of[c >> 8];
	if (!p) {
		if (up == c)
			return;
		p = m->npages++;
		memset(m->delta[p], 0, sizeof(m->delta[p]));
		m->page_of[c >> 8] = (uint16_t)p;
	}
	m->delta[p][c & 255] = (uint16_t)(up - c);
}

void exfat_upcase_default_map(struct exfat_upcase_map *m)
{
	map_clear(m);
	for (size_t i = 0; i < sizeof(default_rules) / sizeof(default_rules[0]); i++) {
		const struct upcase_rule *r = &default_rules[i];
		for (uint32_t c = r->first; c <= r->last; c += r->step)
			map_set(m, c, (uint16_t)((int32_t)c + r->delta));
	}
}

void exfat_upcase_default_build(uint8_t out[EXFAT_UPCASE_DEFAULT_BYTES])
{
	static struct exfat_upcase_map map;
	exfat_upcase_default_map(&map);
	size_t pos = 0, run = 0;
	for (uint32_t c = 0; c < EXFAT_UPCASE_CHARS && pos + 2 <= EXFAT_UPCASE_DEFAULT_BYTES;) {
		if (run < sizeof(default_runs) / sizeof(default_runs[0]) && c == default_runs[run].first) {
			exfat_put_le16(out + pos, 0xFFFF);
			exfat_put_le16(out + pos + 2, default_runs[run].count);
			pos += 4;
			c += default_runs[run].count;
			run++;
			continue;
		}
		exfat_put_le16(out + pos, exfat_upcase_char(&map, (uint16_t)c));
		pos += 2;
		c++;
	}
}

int exfat_upcase_expand(const uint8_t *table, size_t len, struct exfat_upcase_map *m, const char **why)
{
	map_clear(m);
	*why = NULL;
	if (len % 2) {
		*why = "up-case table length is odd";
		return -1;
	}
	size_t units = len / 2;
	uint32_t c = 0;
	for (size_t i = 0; i < units; i++) {
		uint16_t v = exfat_get_le16(table + 2 * i);
		if (c >= EXFAT_UPCASE_CHARS) {
			*why = "up-case table maps more than 65536 characters";
			return -1;
		}
		if (v == 0xFFFF && i + 1 < units) {
			uint32_t count = exfat_get_le16(table + 2 * (i + 1));
			if (c + count > EXFAT_UPCASE_CHARS) {
				*why = "up-case table identity run goes past U+FFFF";
				return -1;
			}
			c += count;   /* already identity */
			i++;
			continue;
		}
		map_set(m, c++, v);
	}
	return 0;
}

void exfat_upcase_name(const struct exfat_upcase_map *m, const uint16_t *in, unsigned len, uint16_t *out)
{
	for (unsigned i = 0; i < len; i++)
		out[i] = exfat_upcase_char(m, in[i]);
}
