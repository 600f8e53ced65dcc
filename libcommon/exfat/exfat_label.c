/* Volume labels and GUIDs as text (see exfat_label.h); no disk access here,
 * so mkfs.exfat links none of exfat_label_volume.c's. */
#include "exfat/exfat_label.h"

#include "base/utf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int exfat_label_from_utf8(const char *utf8, uint16_t label[EXFAT_MAX_LABEL_LEN], unsigned *len,
			  char *err, size_t err_len)
{
	size_t n, bad;
	if (kb_utf8_to_utf16(utf8, strlen(utf8), label, EXFAT_MAX_LABEL_LEN, &n, &bad) < 0) {
		if (errno == EILSEQ)
			snprintf(err, err_len, "volume label is not valid UTF-8 (byte %zu)", bad);
		else
			snprintf(err, err_len, "volume label '%s' is %zu UTF-16 units long; exFAT allows at most %u",
				 utf8, n, EXFAT_MAX_LABEL_LEN);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (exfat_name_char_invalid(label[i])) {
			snprintf(err, err_len, "volume label contains a character exFAT forbids (U+%04X)", label[i]);
			return -1;
		}
	}
	*len = (unsigned)n;
	return 0;
}

void exfat_label_to_utf8(const uint16_t *label, unsigned len, char out[EXFAT_LABEL_UTF8_MAX])
{
	size_t n;
	if (kb_utf16_to_utf8(label, len, out, EXFAT_LABEL_UTF8_MAX, &n, true) < 0)
		out[0] = '\0';
}

int exfat_guid_random(uint8_t guid[16])
{
	uint8_t b[16];
	for (size_t got = 0; got < sizeof(b);) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0 && errno != EINTR)
			return -1;
		got += n > 0 ? (size_t)n : 0;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);   /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
	/* Text order to on-disk order through the text form, as -U GUID goes. */
	char text[37];
	snprintf(text, sizeof(text), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return exfat_guid_parse(text, guid);
}
