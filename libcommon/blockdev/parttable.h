/* Partition tables through libfdisk: one partition covering a whole disk
 * or image, for a filesystem to be made inside it. Kernel interface: the
 * device's sectors and the kernel's re-read of its partition table, both done
 * by libfdisk. */
#ifndef KBOX_PARTTABLE_H
#define KBOX_PARTTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kb_parttable_kind { KB_PT_MBR, KB_PT_GPT };

/* Lays out a table of `kind` with a single partition from the first aligned
 * sector (1 MiB) to the end, typed `mbr_type` (e.g. 0x07) for MBR or
 * `gpt_type` (a type GUID string) for GPT, on fd (path is for messages).
 * sector_size is the logical sector size to assume for a regular file.
 * With write, the table is written and, on a block device, the kernel is
 * asked to re-read it (a busy device is not an error); without, nothing is
 * written (a dry run to learn the partition's place). *start and *size get
 * the partition in bytes. Returns 0, or -1 with a one-line reason in err
 * (libfdisk that cannot be loaded is one). */
int kb_parttable_single(int fd, const char *path, enum kb_parttable_kind kind, unsigned sector_size,
			unsigned mbr_type, const char *gpt_type, bool write, uint64_t *start,
			uint64_t *size, char *err, size_t err_len);

#endif
