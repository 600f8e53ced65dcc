/* The exFAT fuzz targets' volume: a memfd of `bytes` bytes that starts with
 * the input (the rest reads as zeros). Kernel interface: memfd_create(2). */
#ifndef KBOX_FUZZ_VOLUME_H
#define KBOX_FUZZ_VOLUME_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* The descriptor; aborts when the memfd cannot be made. */
static inline int fuzz_volume(const uint8_t *data, size_t size, size_t bytes)
{
	int fd = memfd_create("volume", 0);
	if (fd < 0 || ftruncate(fd, (off_t)bytes) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	return fd;
}

#endif
