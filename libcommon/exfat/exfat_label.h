/* Volume label, serial and GUID of an exFAT volume: read and write in place.
 *
 * Wraps the exFAT on-disk format where a volume names itself: the
 * VolumeSerialNumber of both boot regions (with their checksum sectors) and
 * the root directory's volume label and volume GUID entries. Labels are
 * validated here for every tool that writes one (mkfs.exfat, tune.exfat,
 * exfatlabel). */
#ifndef KBOX_EXFAT_LABEL_H
#define KBOX_EXFAT_LABEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exfat/exfat.h"

/* Converts a UTF-8 label to at most 11 UTF-16 units (host order) and checks
 * it holds no character exFAT forbids in names. Returns 0, or -1 with a
 * one-line reason in err ("volume label ...: why"). */
int exfat_label_from_utf8(const char *utf8, uint16_t label[EXFAT_MAX_LABEL_LEN], unsigned *len,
			  char *err, size_t err_len);

#endif
