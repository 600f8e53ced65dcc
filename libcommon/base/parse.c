/* Number, size and duration parsing with overflow checks. */
#include "base/parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Parses leading digits; returns a pointer past them or NULL on no digits/overflow. */
static const char *parse_digits(const char *s, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isxdigit((unsigned char)s[2])) {
		base = 16;
		s += 2;
	}
	if (!isxdigit((unsigned char)*s) || (base == 10 && !isdigit((unsigned char)*s))) {
		errno = EINVAL;
		return NULL;
	}
	for (;; s++) {
		unsigned d;
		if (isdigit((unsigned char)*s))
			d = *s - '0';
		else if (base == 16 && isxdigit((unsigned char)*s))
			d = (tolower((unsigned char)*s) - 'a') + 10;
		else
			break;
		if (v > (UINT64_MAX - d) / base) {
			errno = ERANGE;
			return NULL;
		}
		v = v * base + d;
	}
	*out = v;
	return s;
}

int kb_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v;
	const char *end = s ? parse_digits(s, &v) : NULL;
	if (!end)
		return -1;
	if (*end) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

int kb_parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (kb_parse_u64(s, &v))
		return -1;
	if (v < min || v > max) {
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

int kb_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	uint64_t v;
	const char *end = s ? parse_digits(s, &v) : NULL;
	if (!end)
		return -1;
	unsigned shift = 0;
	if (*end) {
		const char *u = strchr(units, toupper((unsigned char)*end));
		if (!u || !*u) {
			errno = EINVAL;
			return -1;
		}
		shift = 10 * (unsigned)(u - units + 1);
		end++;
		if (!strcasecmp(end, "iB") || !strcasecmp(end, "B"))
			end += strlen(end);
		if (*end) {
			errno = EINVAL;
			return -1;
		}
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		errno = ERANGE;
		return -1;
	}
	*out = v << shift;
	return 0;
}

int kb_parse_duration(const char *s, uint64_t default_unit_ns, uint64_t *ns)
{
	static const struct { const char *name; uint64_t ns; } units[] = {
		{ "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", 1000000000ULL },
		{ "m", 60000000000ULL }, { "h", 3600000000000ULL },
	};
	uint64_t whole, frac = 0, frac_div = 1;
	const char *end = s ? parse_digits(s, &whole) : NULL;
	if (!end)
		return -1;
	if (*end == '.') {
		end++;
		if (!isdigit((unsigned char)*end)) {
			errno = EINVAL;
			return -1;
		}
		for (; isdigit((unsigned char)*end); end++) {
			if (frac_div < 1000000000000ULL) {
				frac = frac * 10 + (*end - '0');
				frac_div *= 10;
			}
		}
	}
	uint64_t unit = default_unit_ns;
	if (*end) {
		unit = 0;
		for (unsigned i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (!strcmp(end, units[i].name))
				unit = units[i].ns;
		if (!unit) {
			errno = EINVAL;
			return -1;
		}
	}
	if (whole > UINT64_MAX / unit) {
		errno = ERANGE;
		return -1;
	}
	uint64_t v = whole * unit;
	/* frac/frac_div of a unit; unit <= 3.6e12 and frac < 1e12 could overflow, so scale. */
	long double f = (long double)frac * unit / frac_div;
	if (v + (uint64_t)f < v) {
		errno = ERANGE;
		return -1;
	}
	*ns = v + (uint64_t)f;
	return 0;
}

const char *kb_format_size(uint64_t bytes, char *buf, unsigned len)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	double v = (double)bytes;
	while (v >= 1024 && i + 1 < sizeof(names) / sizeof(names[0])) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.*f %s", v < 10 ? 1 : 0, v, names[i]);
	return buf;
}
