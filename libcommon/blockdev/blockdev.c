/* Block device and image file I/O. */
#include "blockdev/blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kb_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int kb_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int kb_dev_size(int fd, uint64_t *bytes)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, bytes) < 0 ? -1 : 0;
	if (S_ISREG(st.st_mode)) {
		*bytes = (uint64_t)st.st_size;
		return 0;
	}
	errno = EINVAL;
	return -1;
}

int kb_dev_sector_size(int fd, unsigned *bytes)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISBLK(st.st_mode)) {
		int ss;
		if (ioctl(fd, BLKSSZGET, &ss) < 0)
			return -1;
		*bytes = (unsigned)ss;
		return 0;
	}
	*bytes = 512;
	return 0;
}

int kb_dev_open(const char *path, bool rw, struct stat *st)
{
	struct stat pre;
	if (stat(path, &pre) < 0)
		return -1;
	if (!S_ISBLK(pre.st_mode) && !S_ISREG(pre.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	int flags = O_CLOEXEC | (!rw ? O_RDONLY : O_RDWR | (S_ISBLK(pre.st_mode) ? O_EXCL : 0));
	int fd = open(path, flags);
	if (fd < 0)
		return -1;
	/* A read-only block device opens read-write and fails only at the first
	 * write; say so now. */
	int ro = 0;
	if (rw && S_ISBLK(pre.st_mode) && ioctl(fd, BLKROGET, &ro) == 0 && ro) {
		close(fd);
		errno = EROFS;
		return -1;
	}
	if (fstat(fd, st) < 0 || (st->st_mode & S_IFMT) != (pre.st_mode & S_IFMT)) {
		int e = errno ? errno : EINVAL;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int kb_dev_lock(int fd, bool exclusive)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode))
		return 0;
	return flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB);
}

int kb_dev_discard(int fd, uint64_t off, uint64_t len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISBLK(st.st_mode)) {
		errno = EOPNOTSUPP;
		return -1;
	}
	uint64_t range[2] = { off, len };
	return ioctl(fd, BLKDISCARD, range) < 0 ? -1 : 0;
}

static int write_zeros(int fd, uint64_t off, uint64_t len, uint64_t *written)
{
	static const size_t chunk = 1u << 20;
	void *zero = calloc(1, chunk);
	if (!zero)
		return -1;
	int rc = 0;
	while (len) {
		size_t n = len < chunk ? (size_t)len : chunk;
		if (kb_pwrite_full(fd, zero, n, off) < 0) {
			rc = -1;
			break;
		}
		if (written)
			*written += n;
		off += n;
		len -= n;
	}
	free(zero);
	return rc;
}

static int zero_file_extent(int fd, uint64_t off, uint64_t len, uint64_t *written)
{
	if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	return write_zeros(fd, off, len, written);
}

int kb_zero_range(int fd, uint64_t off, uint64_t len, uint64_t *written)
{
	struct stat st;
	if (len == 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return -1;
	if (S_ISBLK(st.st_mode)) {
		/* BLKZEROOUT wants logical-block alignment: plain writes for the
		 * unaligned head and tail, the ioctl for the middle. */
		unsigned ss;
		if (kb_dev_sector_size(fd, &ss) < 0)
			return -1;
		uint64_t start = (off + ss - 1) / ss * ss, end = (off + len) / ss * ss;
		if (start >= end)
			return write_zeros(fd, off, len, written);
		if (write_zeros(fd, off, start - off, written) < 0 ||
		    write_zeros(fd, end, off + len - end, written) < 0)
			return -1;
		uint64_t range[2] = { start, end - start };
		if (ioctl(fd, BLKZEROOUT, range) == 0)
			return 0;
		return write_zeros(fd, start, end - start, written);
	}
	uint64_t end = off + len;
	if (end > (uint64_t)st.st_size)
		end = (uint64_t)st.st_size;   /* past the end of a file reads as zeros */
	uint64_t pos = off;
	while (pos < end) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)   /* only a hole up to the end of the file */
				return 0;
			/* No SEEK_DATA support: treat the whole rest as data. */
			return zero_file_extent(fd, pos, end - pos, written);
		}
		if ((uint64_t)data >= end)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		if (zero_file_extent(fd, (uint64_t)data, stop - (uint64_t)data, written) < 0)
			return -1;
		pos = stop;
	}
	return 0;
}

int kb_range_has_data(int fd, uint64_t off, uint64_t len)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 1;
	if (off >= (uint64_t)st.st_size || len == 0)
		return 0;
	off_t data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? 0 : 1;
	return (uint64_t)data < off + len;
}
