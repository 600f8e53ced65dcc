/* Block device and image file I/O: full reads/writes at offsets, sizes,
 * sector size, discard, and zeroing ranges while writing as little as
 * possible. Each returns 0, or -1 with errno set.
 * Kernel interface: pread/pwrite and fstat; on block devices the ioctls
 * BLKGETSIZE64, BLKSSZGET, BLKROGET, BLKDISCARD and BLKZEROOUT; on image files
 * fallocate (FALLOC_FL_ZERO_RANGE, FALLOC_FL_PUNCH_HOLE). */
#ifndef KBOX_BLOCKDEV_H
#define KBOX_BLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* Reads exactly len bytes at off; a short read (end of file) is EIO. */
int kb_pread_full(int fd, void *buf, size_t len, uint64_t off);
/* Writes exactly len bytes at off, retrying partial writes and EINTR. */
int kb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* Size in bytes: BLKGETSIZE64 for a block device, st_size for a file. */
int kb_dev_size(int fd, uint64_t *bytes);
/* Logical sector size: BLKSSZGET for a block device, 512 for a file. */
int kb_dev_sector_size(int fd, unsigned *bytes);
/* Opens a block device or regular file, read-only or for reading and
 * writing; for writing a block device is opened O_EXCL so one that is mounted
 * or otherwise in use fails with EBUSY. *st gets its fstat. Other file types
 * (directories, FIFOs...) fail with EINVAL. */
int kb_dev_open(const char *path, bool rw, struct stat *st);
/* An image file has no O_EXCL: two programs writing one would interleave.
 * Takes a BSD lock on a regular file (exclusive for writers, shared for
 * readers), without waiting: -1 with EWOULDBLOCK when another holds a
 * conflicting one. Block devices (O_EXCL does it) are left alone: 0. */
int kb_dev_lock(int fd, bool exclusive);
/* BLKDISCARD over [off, off+len) of a block device; EOPNOTSUPP when the
 * device (or a regular file) does not support it. */
int kb_dev_discard(int fd, uint64_t off, uint64_t len);
/* Makes [off, off+len) read back as zeros. Regular file: only the ranges
 * that hold data (SEEK_DATA) are touched, with FALLOC_FL_ZERO_RANGE, then
 * hole punching, then plain zero writes; holes are left alone. Block
 * device: BLKZEROOUT, then plain zero writes. *written (if not NULL) is
 * increased by the bytes written as plain zeros. */
int kb_zero_range(int fd, uint64_t off, uint64_t len, uint64_t *written);

/* 0 when [off, off+len) of a regular file holds no data at all (only holes
 * or past the end: it reads as zeros without reading), 1 otherwise (data
 * found, a block device, or no SEEK_DATA support). */
int kb_range_has_data(int fd, uint64_t off, uint64_t len);

#endif
