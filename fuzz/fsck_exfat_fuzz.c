/* libFuzzer target: the input is the start of a 1 MiB exFAT volume (the rest
 * reads as zeros). Each input is checked read-only, then repaired in place
 * (every repair accepted, through an undo file), then checked again. With
 * FSCK_FUZZ_STRICT set in the environment, a completed repair that leaves
 * anything for the second check to find is a failure too. */
#include "exfat/exfat_fsck.h"
#include "blockdev/undo.h"
#include "fuzz_volume.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define VOLUME_BYTES (1u << 20)

static enum exfat_fsck_decision accept_all(void *ctx, const struct exfat_fsck_problem *p)
{
	(void)ctx, (void)p;
	return EXFAT_FSCK_REPAIR;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > VOLUME_BYTES)
		return 0;
	int fd = fuzz_volume(data, size, VOLUME_BYTES), undo_fd = memfd_create("undo", 0);
	if (undo_fd < 0)
		abort();
	struct exfat_fsck_result r;
	struct exfat_fsck_opts check = { 0 };
	exfat_fsck_run(fd, VOLUME_BYTES, &check, &r);

	char undo_path[64];
	snprintf(undo_path, sizeof(undo_path), "/proc/self/fd/%d", undo_fd);
	struct exfat_fsck_opts repair = { .writable = true, .decide = accept_all };
	repair.undo = kb_undo_create(undo_path, fd, 4096, VOLUME_BYTES);
	int rc = exfat_fsck_run(fd, VOLUME_BYTES, &repair, &r);
	bool complete = rc == 0 && r.repaired == r.problems;
	if (repair.undo)
		kb_undo_close(repair.undo);
	exfat_fsck_run(fd, VOLUME_BYTES, &check, &r);
	if (complete && r.problems && getenv("FSCK_FUZZ_STRICT")) {
		fprintf(stderr, "repaired volume still has %u problems\n", r.problems);
		abort();
	}
	close(undo_fd);
	close(fd);
	return 0;
}
