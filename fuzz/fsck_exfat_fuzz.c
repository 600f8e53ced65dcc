/* libFuzzer target: the input is the start of a 1 MiB exFAT volume (the rest
 * reads as zeros). Each input is checked read-only, then repaired in place
 * (every repair accepted, through an undo file of 512-byte blocks), then
 * checked again. With FSCK_FUZZ_STRICT set in the environment, a repair that
 * completes (every problem repaired: fsck -y's exit 0 or 1) must converge,
 * and must have written only what a repair may write:
 *   - the second check finds nothing;
 *   - the undo file, rolled back, gives the input again byte for byte (no
 *     write went around it);
 *   - nothing changed outside the boot regions, the FATs and the cluster
 *     heap, and nothing but VolumeFlags when no repair was made;
 *   - in the heap, a cluster that changed is one the repaired volume uses for
 *     metadata (a directory, the bitmap, the up-case table: as exfat2img
 *     finds them), or one its bitmap marks used that the input's bitmap had
 *     free (a copy of a shared cluster): no file's data and no cluster left
 *     free was written. */
#include "exfat/exfat_fsck.h"
#include "exfat/exfat_dump.h"
#include "exfat/exfat_metaimage.h"
#include "blockdev/blockdev.h"
#include "blockdev/undo.h"
#include "fuzz_volume.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VOLUME_BYTES (1u << 20)
#define UNDO_BLOCK 512u

static uint8_t before[VOLUME_BYTES], after[VOLUME_BYTES], rolled[VOLUME_BYTES];

static enum exfat_fsck_decision accept_all(void *ctx, const struct exfat_fsck_problem *p)
{
	(void)ctx, (void)p;
	return EXFAT_FSCK_REPAIR;
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* Cluster c's bit in the input's allocation bitmap, read where the repaired
 * volume keeps its bitmap (the repair never moves it): 1 used, 0 free. */
static bool used_before(const struct exfat_reader *r, const struct exfat_root *root, uint32_t c)
{
	uint64_t byte = (uint64_t)(c - EXFAT_FIRST_CLUSTER) / 8;
	if (byte >= root->bitmap_chain.clusters << r->cluster_shift)
		return true;
	uint64_t at = exfat_chain_pos(r, &root->bitmap_chain, byte);
	return at >= VOLUME_BYTES || before[at] & (1u << ((c - EXFAT_FIRST_CLUSTER) % 8));
}

static bool changed(uint64_t off, uint64_t len)
{
	return off < VOLUME_BYTES && memcmp(before + off, after + off, len < VOLUME_BYTES - off ? len : VOLUME_BYTES - off);
}

static void check_writes(int fd, const char *undo_path, unsigned repaired)
{
	if (kb_pread_full(fd, after, VOLUME_BYTES, 0) < 0)
		abort();
	int copy = memfd_create("rolled", 0);
	struct kb_undo_result res;
	if (copy < 0 || kb_pwrite_full(copy, after, VOLUME_BYTES, 0) < 0)
		abort();
	if (kb_undo_rollback(undo_path, copy, VOLUME_BYTES, false, &res) < 0)
		fail("the undo file of a completed repair does not roll back");
	if (kb_pread_full(copy, rolled, VOLUME_BYTES, 0) < 0)
		abort();
	close(copy);
	for (size_t k = 0; k < VOLUME_BYTES; k++)
		if (rolled[k] != before[k])
			fail("byte %zu changed without its block in the undo file", k);

	if (!repaired) {
		for (size_t k = 0; k < VOLUME_BYTES; k++)
			if (before[k] != after[k] && k != 106 && k != 107)
				fail("no repair made, but byte %zu changed", k);
		return;
	}
	struct exfat_reader r;
	struct exfat_root root;
	struct exfat_metaimage m;
	char err[256];
	if (exfat_reader_open(&r, fd, VOLUME_BYTES, NULL, err, sizeof(err)) < 0)
		fail("the repaired volume cannot be read: %s", err);
	if (exfat_root_load(&r, &root) < 0 || exfat_metaimage_scan(&r, &m, err, sizeof(err)) < 0)
		abort();
	const struct exfat_boot_sector *bs = &r.bs;
	uint64_t boot_end = 2ull * EXFAT_BOOT_REGION_SECTORS << bs->sector_shift;
	uint64_t fat_start = (uint64_t)exfat_le32(bs->fat_offset) << bs->sector_shift;
	uint64_t fat_end = fat_start + ((uint64_t)exfat_le32(bs->fat_length) * bs->number_of_fats << bs->sector_shift);
	uint64_t heap_end = r.heap_offset + ((uint64_t)r.cluster_count << r.cluster_shift);
	for (uint64_t k = 0; k < VOLUME_BYTES; k++)
		if (before[k] != after[k] && k >= boot_end && !(k >= fat_start && k < fat_end) &&
		    !(k >= r.heap_offset && k < heap_end))
			fail("byte %llu changed, outside the boot regions, FATs and cluster heap", (unsigned long long)k);
	for (uint32_t c = EXFAT_FIRST_CLUSTER; exfat_reader_cluster_ok(&r, c); c++) {
		if (!changed(exfat_reader_cluster_pos(&r, c), r.cluster_size) || exfat_cluster_set_has(&m.meta, c))
			continue;
		if (exfat_root_bitmap_bit(&r, &root, c) != 1)
			fail("cluster %u changed, and the repaired volume leaves it free", c);
		if (used_before(&r, &root, c))
			fail("cluster %u changed: a file's data, not metadata or a copy into a free cluster", c);
	}
	exfat_metaimage_free(&m);
	exfat_root_free(&root);
	exfat_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > VOLUME_BYTES)
		return 0;
	int fd = fuzz_volume(data, size, VOLUME_BYTES), undo_fd = memfd_create("undo", 0);
	if (undo_fd < 0)
		abort();
	memset(before, 0, sizeof(before));
	memcpy(before, data, size);
	struct exfat_fsck_result r;
	struct exfat_fsck_opts check = { 0 };
	exfat_fsck_run(fd, VOLUME_BYTES, &check, &r);

	char undo_path[64];
	snprintf(undo_path, sizeof(undo_path), "/proc/self/fd/%d", undo_fd);
	struct exfat_fsck_opts repair = { .writable = true, .decide = accept_all };
	repair.undo = kb_undo_create(undo_path, fd, UNDO_BLOCK, VOLUME_BYTES);
	int rc = exfat_fsck_run(fd, VOLUME_BYTES, &repair, &r);
	bool complete = rc == 0 && r.repaired == r.problems;
	unsigned repaired = r.repaired;
	bool undo_ok = repair.undo && kb_undo_close(repair.undo) == 0;
	exfat_fsck_run(fd, VOLUME_BYTES, &check, &r);
	if (complete && getenv("FSCK_FUZZ_STRICT")) {
		if (r.problems)
			fail("repaired volume still has %u problems (first check: %u repaired)", r.problems, repaired);
		if (!undo_ok)
			fail("no undo file");
		check_writes(fd, undo_path, repaired);
	}
	close(undo_fd);
	close(fd);
	return 0;
}
