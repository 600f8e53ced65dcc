/* UTF-8 <-> UTF-16 conversion with strict validation.
 * UTF-16 code units are host-endian here; on-disk order is handled by the
 * format code. Kernel interface: none. */
#ifndef KBOX_UTF_H
#define KBOX_UTF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Converts len bytes of UTF-8. Rejects (errno EILSEQ) overlong forms,
 * encoded surrogates, code points above U+10FFFF and truncated sequences;
 * *bad_offset (if not NULL) gets the offending byte offset. *out_len always
 * gets the number of code units the whole input needs, so a caller can say
 * how much too long it is; if that exceeds cap, returns -1 with errno
 * ENAMETOOLONG (out holds the first cap units). Returns 0 on success. */
int kb_utf8_to_utf16(const char *in, size_t len, uint16_t *out, size_t cap, size_t *out_len,
		     size_t *bad_offset);
/* Converts len UTF-16 code units to NUL-terminated UTF-8 in out (cap bytes,
 * 3 * len + 1 always suffices). An unpaired surrogate is an error (EILSEQ)
 * unless lossy, which writes U+FFFD instead. Returns 0, or -1 with errno
 * EILSEQ or ENAMETOOLONG (out too small). *out_len excludes the NUL. */
int kb_utf16_to_utf8(const uint16_t *in, size_t len, char *out, size_t cap, size_t *out_len,
		     bool lossy);

#endif
