/* libFuzzer target: the input is an undo file, rolled back onto a 64 KiB
 * device (first without, then with --force). A damaged file must be refused
 * before anything is written, and nothing may ever land outside the device.
 * The CRCs would stop almost every mutation at the first check, so when byte 40
 * (unused by the format) is odd the harness first makes the header's and each
 * record head's CRC right (the record walk itself is then what is tested). */
#include "blockdev/undo.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DEVICE_BYTES (64u << 10)

static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24; }
static uint32_t crc(const uint8_t *p, size_t n) { return (uint32_t)crc32(0, p, (uInt)n); }

/* Header: 64 bytes, CRC at 60. Records: 20 bytes, CRC at 20, then the
 * compressed block whose length is at 8. */
static void fix_crcs(uint8_t *d, size_t size)
{
	if (size < 64)
		return;
	put32(d + 60, crc(d, 60));
	for (size_t at = 64; at + 24 <= size; at += 24 + get32(d + at + 8)) {
		put32(d + at + 20, crc(d + at, 20));
		if (get32(d + at + 8) > size)
			break;
	}
}

static void fill(int fd)
{
	static uint8_t pattern[DEVICE_BYTES];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7);
	if (pwrite(fd, pattern, sizeof(pattern), 0) != (ssize_t)sizeof(pattern))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *d = malloc(size ? size : 1);
	memcpy(d, data, size);
	if (size > 40 && (d[40] & 1))
		fix_crcs(d, size);
	int undo = memfd_create("undo", 0), dev = memfd_create("device", 0);
	if (undo < 0 || dev < 0 || pwrite(undo, d, size, 0) != (ssize_t)size)
		abort();
	fill(dev);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", undo);

	struct kb_undo_info info;
	kb_undo_info(path, &info);
	struct kb_undo_result res;
	for (int force = 0; force <= 1; force++) {
		if (kb_undo_rollback(path, dev, DEVICE_BYTES, force, &res) < 0 && res.restored) {
			fprintf(stderr, "a refused rollback wrote %llu blocks\n", (unsigned long long)res.restored);
			abort();
		}
		struct stat st;
		if (fstat(dev, &st) < 0 || st.st_size != DEVICE_BYTES) {
			fprintf(stderr, "the device grew to %lld bytes\n", (long long)st.st_size);
			abort();
		}
	}
	close(undo);
	close(dev);
	free(d);
	return 0;
}
