/* Volume label, serial and GUID of an exFAT volume: read and write in place.
 *
 * Wraps the exFAT on-disk format where a volume names itself: the
 * VolumeSerialNumber of both boot regions (with their checksum sectors) and
 * the root directory's volume label and volume GUID entries. A label or GUID
 * entry the root directory lacks is written into a free entry, and the root
 * directory is grown by a cluster (FAT, allocation bitmap, the main boot
 * sector's PercentInUse) when it has none.
 * Labels are validated here for every tool that writes one (mkfs.exfat,
 * tune.exfat, exfatlabel). Every on-disk value is bounds-checked, so a
 * damaged or hostile image gives an error, never a crash.
 * Kernel interface: getrandom(2) for a random GUID; the volume is opened,
 * locked (flock), read and written through blockdev.h, its mount state
 * found through mounted.h. */
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
/* The label as UTF-8 (an unpaired surrogate becomes U+FFFD). */
#define EXFAT_LABEL_UTF8_MAX (EXFAT_MAX_LABEL_LEN * 3 + 1)
void exfat_label_to_utf8(const uint16_t *label, unsigned len, char out[EXFAT_LABEL_UTF8_MAX]);
/* A random (version 4) GUID in on-disk byte order, from getrandom(2). 0, or -1 with errno. */
int exfat_guid_random(uint8_t guid[16]);

/* What a volume calls itself. */
struct exfat_id {
	uint16_t label[EXFAT_MAX_LABEL_LEN];   /* host order; a longer on-disk count is cut to 11 */
	unsigned label_len;
	bool has_label_entry;
	uint32_t serial;
	bool has_guid;
	uint8_t guid[16];                      /* on-disk byte order */
};

enum exfat_guid_change { EXFAT_GUID_KEEP, EXFAT_GUID_SET, EXFAT_GUID_CLEAR };

struct exfat_id_change {
	bool set_label;                        /* label_len 0: an empty label */
	uint16_t label[EXFAT_MAX_LABEL_LEN];
	unsigned label_len;
	bool set_serial;
	uint32_t serial;
	enum exfat_guid_change guid_change;   /* CLEAR marks the GUID entry unused */
	uint8_t guid[16];
	/* Set by exfat_id_write: the cluster the root directory grew by, or 0. */
	uint32_t grown_cluster;
};

/* Reads what the block device or image at path calls itself into *before
 * and, with a change (NULL: none), makes it and reads it back into *after.
 *
 * For a change the device is opened exclusively and an image locked
 * (flock); one that is mounted, in use, read-only or locked by another
 * program is refused. Then the change is checked whole (both boot regions
 * valid and equal, a free entry or cluster for a new entry) before anything
 * is written: the serial into both boot regions, each with its checksum
 * sector, then the entries, then a flush. undo_path (or NULL) is checked
 * first and gets every block before it is overwritten, in fsck.exfat's undo
 * format. Without a change, *others_lock tells that another program held
 * the image locked (it may have been half-way through a change).
 *
 * Returns 0, or -1 with a one-line reason in err ("PATH: ..." or "PATH is
 * ..."); nothing is written when the change is refused. */
int exfat_id_apply(const char *path, struct exfat_id_change *change, const char *undo_path,
		   struct exfat_id *before, struct exfat_id *after, bool *others_lock, char *err, size_t err_len);

#endif
