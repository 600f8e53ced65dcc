/* Reading small text files (/proc, /sys, cgroupfs) in one go. */
#ifndef KBOX_READFILE_H
#define KBOX_READFILE_H

#include <stddef.h>
#include <sys/types.h>

/* Reads at most cap-1 bytes of path into buf and NUL-terminates it (cap >= 1).
 * Returns the length read, or -1 with errno set. */
ssize_t kb_read_small_file(const char *path, char *buf, size_t cap);
/* Reads all of path into a malloc'd buffer, NUL-terminated, *len bytes
 * before the NUL: in reads of up to 64 KiB, growing the buffer as needed,
 * so a /proc table comes in one read rather than in st_blksize pieces.
 * Returns NULL with errno set. */
char *kb_read_file(const char *path, size_t *len);

#endif
