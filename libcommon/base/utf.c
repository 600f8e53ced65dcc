/* UTF-8 <-> UTF-16 conversion. */
#include "base/utf.h"

#include <errno.h>

/* Decodes one code point at in[*i]; returns it, or -1 for invalid input. */
static int32_t decode_utf8(const unsigned char *in, size_t len, size_t *i)
{
	unsigned char b = in[*i];
	uint32_t cp;
	unsigned extra;
	if (b < 0x80) {
		(*i)++;
		return b;
	} else if ((b & 0xE0) == 0xC0) {
		cp = b & 0x1F;
		extra = 1;
	} else if ((b & 0xF0) == 0xE0) {
		cp = b & 0x0F;
		extra = 2;
	} else if ((b & 0xF8) == 0xF0) {
		cp = b & 0x07;
		extra = 3;
	} else {
		return -1;
	}
	if (len - *i <= extra)
		return -1;
	for (unsigned k = 1; k <= extra; k++) {
		unsigned char c = in[*i + k];
		if ((c & 0xC0) != 0x80)
			return -1;
		cp = cp << 6 | (c & 0x3F);
	}
	static const uint32_t min_for_len[4] = { 0, 0x80, 0x800, 0x10000 };
	if (cp < min_for_len[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*i += extra + 1;
	return (int32_t)cp;
}

int kb_utf8_to_utf16(const char *in, size_t len, uint16_t *out, size_t cap, size_t *out_len,
		     size_t *bad_offset)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		size_t at = i;
		int32_t cp = decode_utf8(s, len, &i);
		if (cp < 0) {
			if (bad_offset)
				*bad_offset = at;
			*out_len = n;
			errno = EILSEQ;
			return -1;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			if (n < cap)
				out[n] = (uint16_t)(0xD800 | (cp >> 10));
			if (n + 1 < cap)
				out[n + 1] = (uint16_t)(0xDC00 | (cp & 0x3FF));
			n += 2;
		} else {
			if (n < cap)
				out[n] = (uint16_t)cp;
			n++;
		}
	}
	*out_len = n;
	if (n > cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int put_utf8(uint32_t cp, char *out, size_t cap, size_t *n)
{
	unsigned char buf[4];
	unsigned k;
	if (cp < 0x80) {
		buf[0] = (unsigned char)cp;
		k = 1;
	} else if (cp < 0x800) {
		buf[0] = (unsigned char)(0xC0 | cp >> 6);
		buf[1] = (unsigned char)(0x80 | (cp & 0x3F));
		k = 2;
	} else if (cp < 0x10000) {
		buf[0] = (unsigned char)(0xE0 | cp >> 12);
		buf[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		buf[2] = (unsigned char)(0x80 | (cp & 0x3F));
		k = 3;
	} else {
		buf[0] = (unsigned char)(0xF0 | cp >> 18);
		buf[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		buf[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		buf[3] = (unsigned char)(0x80 | (cp & 0x3F));
		k = 4;
	}
	if (*n + k + 1 > cap)
		return -1;
	for (unsigned i = 0; i < k; i++)
		out[(*n)++] = (char)buf[i];
	return 0;
}

int kb_utf16_to_utf8(const uint16_t *in, size_t len, char *out, size_t cap, size_t *out_len,
		     bool lossy)
{
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < len; i++) {
		uint32_t cp = in[i];
		if (cp >= 0xD800 && cp <= 0xDBFF && i + 1 < len && in[i + 1] >= 0xDC00 &&
		    in[i + 1] <= 0xDFFF) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (in[i + 1] - 0xDC00);
			i++;
		} else if (cp >= 0xD800 && cp <= 0xDFFF) {
			if (!lossy) {
				errno = EILSEQ;
				rc = -1;
				break;
			}
			cp = 0xFFFD;
		}
		if (put_utf8(cp, out, cap, &n) < 0) {
			errno = ENAMETOOLONG;
			rc = -1;
			break;
		}
	}
	if (cap)
		out[n < cap ? n : cap - 1] = '\0';
	if (out_len)
		*out_len = n;
	return rc;
}
