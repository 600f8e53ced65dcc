/* Volume label, serial and GUID (see exfat_label.h). */
#include "exfat/exfat_label.h"

#include "base/utf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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
