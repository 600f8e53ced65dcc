/* libFuzzer target: the input is the start of a 1 MiB exFAT volume (the rest
 * reads as zeros). Its label, serial and GUID are read, then changed through
 * an undo file (a new label and GUID, which may need a new root cluster), and
 * the undo file is rolled back. Never a crash; the rollback must give back
 * the volume byte for byte; and with FSCK_FUZZ_STRICT set, a volume that
 * fsck finds clean must still be clean after a change that succeeded. */
#include "blockdev/undo.h"
#include "exfat/exfat_fsck.h"
#include "exfat/exfat_label.h"
#include "fuzz_volume.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VOLUME_BYTES (1u << 20)

static unsigned problems(int fd)
{
	struct exfat_fsck_opts check = { 0 };
	struct exfat_fsck_result r;
	return exfat_fsck_run(fd, VOLUME_BYTES, &check, &r) < 0 ? 1000 : r.problems;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t before[VOLUME_BYTES], after[VOLUME_BYTES];
	if (size > VOLUME_BYTES)
		return 0;
	int fd = fuzz_volume(data, size, VOLUME_BYTES), undo_fd = memfd_create("undo", 0);
	if (undo_fd < 0)
		abort();
	char path[64], undo_path[64], err[512];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	snprintf(undo_path, sizeof(undo_path), "/proc/self/fd/%d", undo_fd);
	struct exfat_id was, now;
	bool others;
	if (exfat_id_apply(path, NULL, NULL, &was, &now, &others, err, sizeof(err)) < 0)
		goto out;
	bool clean = problems(fd) == 0;
	if (pread(fd, before, VOLUME_BYTES, 0) != VOLUME_BYTES)
		abort();
	struct exfat_id_change c = { .set_label = true, .label_len = 3, .label = { 'n', 'e', 'w' },
				     .set_serial = true, .serial = 0x12345678, .guid_change = EXFAT_GUID_SET,
				     .guid = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } };
	if (exfat_id_apply(path, &c, undo_path, &was, &now, &others, err, sizeof(err)) < 0)
		goto out;
	if (clean && problems(fd) && getenv("FSCK_FUZZ_STRICT")) {
		fprintf(stderr, "a clean volume has problems after the change\n");
		abort();
	}
	struct kb_undo_result res;
	if (kb_undo_rollback(undo_path, fd, VOLUME_BYTES, false, &res) < 0 ||
	    pread(fd, after, VOLUME_BYTES, 0) != VOLUME_BYTES || memcmp(before, after, VOLUME_BYTES)) {
		fprintf(stderr, "the rollback did not give the volume back\n");
		abort();
	}
out:
	close(undo_fd);
	close(fd);
	return 0;
}
