/* exFAT checker and repairer (see exfat_fsck.h): the driver.
 *
 * One pass: boot region, FAT (read whole, in large sequential reads), root
 * directory (bitmap and up-case entries first), then every directory once,
 * depth first with an explicit stack; each cluster is claimed in a "used"
 * bitmap so loops and cross-links are found without revisiting anything.
 * Claims that ran into a cluster already held are settled after the walk
 * (and the directories they free walked in turn).
 * Repairs change in-memory copies; directory clusters are written back when
 * their directory is done, the FAT and allocation bitmap at the end.
 * VolumeDirty is set before the first write and cleared after the last.
 *
 * This file holds exfat_fsck_run() and the order of the passes, how a
 * problem is reported and whether its repair is made (the caller's options
 * and answers), and device access: reads that skip a sparse image's holes,
 * writes through the undo file, the dirty mark in the main boot sector
 * (VolumeFlags, PercentInUse). The passes live beside it:
 *   fsck_boot.c        boot region: main and backup boot sectors, checksums
 *   fsck_fat.c         the FAT, and the allocation bitmap against the chains
 *   fsck_claims.c      who owns each cluster: chains, loops, cross-links; a
 *                      claim that runs into a cluster already held waits
 *   fsck_conflicts.c   after the walk, which claim the evidence backs when
 *                      two claim the same clusters
 *   fsck_dir.c         the directory walk: entry sets, checksums, up-case table
 *   fsck_names.c       file names: invalid characters, duplicates, paths
 *   fsck_lost_found.c  -s: orphan chains kept as files in /LOST+FOUND
 * fsck_internal.h holds their shared state and problem vocabulary. */
#include "exfat/fsck_internal.h"

#include "blockdev/blockdev.h"
#include "blockdev/undo.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- problems ------------------------------------------------------------ */

/* Reports a problem; returns true when it is to be repaired now. */
bool __attribute__((format(printf, 7, 8)))
fsck_problem(struct vol *v, const char *code, const char *path, uint64_t offset, bool safe,
	     const char *repair, const char *fmt, ...)
{
	struct exfat_fsck_problem p = { .code = code, .path = path ? path : "", .offset = offset,
					.repair = repair, .safe = safe };
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p.message, sizeof(p.message), fmt, ap);
	va_end(ap);
	v->r->problems++;
	enum exfat_fsck_decision d = EXFAT_FSCK_SKIP;
	if (!v->quit && v->o->decide)
		d = v->o->decide(v->o->ctx, &p);
	if (d == EXFAT_FSCK_QUIT) {
		v->quit = true;
		v->r->cancelled = true;
	}
	bool fix = d == EXFAT_FSCK_REPAIR && v->o->writable && v->boot_writable && !v->failed && repair;
	if (fix)
		v->r->repaired++;
	if (v->o->report)
		v->o->report(v->o->ctx, &p, fix);
	return fix;
}

void __attribute__((format(printf, 2, 3))) fsck_note(struct vol *v, const char *fmt, ...)
{
	char msg[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (v->o->note)
		v->o->note(v->o->ctx, msg);
}

void __attribute__((format(printf, 2, 3))) fsck_fail(struct vol *v, const char *fmt, ...)
{
	if (v->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(v->r->error, sizeof(v->r->error), fmt, ap);
	va_end(ap);
	v->failed = true;
	v->r->fatal = true;
}

/* ---- device access ------------------------------------------------------- */

/* The first extent of [off, end) that may hold data: [*data, *stop), both
 * end when it is all holes. A sparse image keeps little more than the
 * written part of each directory cluster, FAT and bitmap, and its holes
 * read as zeros by definition: they need not be read. Without holes to find
 * (a block device, or a file system that cannot tell) it is [off, end). */
void fsck_data_extent(struct vol *v, uint64_t off, uint64_t end, uint64_t *data, uint64_t *stop)
{
	*data = off, *stop = end;
	if (!v->seek_holes || off >= end)
		return;
	off_t d = lseek(v->fd, (off_t)off, SEEK_DATA);
	if (d < 0 && errno != ENXIO) {
		v->seek_holes = false;
		return;
	}
	if (d < 0 || (uint64_t)d >= end) {
		*data = end;
		return;
	}
	*data = (uint64_t)d;
	off_t hole = lseek(v->fd, d, SEEK_HOLE);
	if (hole >= 0 && (uint64_t)hole < end)
		*stop = (uint64_t)hole;
}

#define SPARSE_READ_MIN (64u << 10)       /* smaller reads are not worth two lseeks */

/* Reads [off, off + len), the part past the end of the device as zeros.
 * With find_holes, a large read reads only the data extents, and writes
 * zeros over the holes unless buf holds zeros already (zeroed). */
static int dev_read(struct vol *v, uint64_t off, void *buf, size_t len, bool find_holes, bool zeroed)
{
	uint8_t *b = buf;
	size_t avail = off >= v->dev_size ? 0 : (v->dev_size - off < len ? (size_t)(v->dev_size - off) : len);
	uint64_t end = off + avail, data = off, stop = end;
	for (uint64_t pos = off; pos < end; pos = stop) {
		if (find_holes && avail >= SPARSE_READ_MIN)
			fsck_data_extent(v, pos, end, &data, &stop);
		if (!zeroed)
			memset(b + (pos - off), 0, data - pos);
		if (data < stop && kb_pread_full(v->fd, b + (data - off), stop - data, data) < 0) {
			fsck_fail_op(v, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
			return -1;
		}
	}
	if (!zeroed)
		memset(b + avail, 0, len - avail);
	return 0;
}

int fsck_dev_read(struct vol *v, uint64_t off, void *buf, size_t len)
{
	return dev_read(v, off, buf, len, true, false);
}

int fsck_dev_read_zeroed(struct vol *v, uint64_t off, void *buf, size_t len)
{
	return dev_read(v, off, buf, len, true, true);
}

int fsck_dev_read_data(struct vol *v, uint64_t off, void *buf, size_t len)
{
	return dev_read(v, off, buf, len, false, false);
}

int fsck_raw_write(struct vol *v, uint64_t off, const void *buf, size_t len)
{
	if (v->failed)
		return -1;
	if (off > v->dev_size || len > v->dev_size - off) {
		fsck_fail_op(v, "refusing to write past the end of the device (byte %llu)", (unsigned long long)off);
		return -1;
	}
	if (v->o->undo && kb_undo_save(v->o->undo, off, len) < 0) {
		fsck_fail_op(v, "undo file: %s", strerror(errno));
		return -1;
	}
	if (kb_pwrite_full(v->fd, buf, len, off) < 0) {
		fsck_fail_op(v, "write at byte %llu: %s", (unsigned long long)off, strerror(errno));
		return -1;
	}
	v->r->wrote = true;
	return 0;
}

int fsck_flush(struct vol *v)
{
	if (fsync(v->fd) < 0) {
		fsck_fail_op(v, "fsync: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* VolumeDirty goes to disk (and is flushed) before any other change. */
static int mark_dirty(struct vol *v)
{
	if (v->dirty_set)
		return 0;
	v->bs->volume_flags = htole16(exfat_le16(v->bs->volume_flags) | EXFAT_FLAG_VOLUME_DIRTY);
	if (fsck_raw_write(v, 0, v->boot, v->ss) < 0 || fsck_flush(v) < 0)
		return -1;
	v->dirty_set = true;
	return 0;
}

int fsck_dev_write(struct vol *v, uint64_t off, const void *buf, size_t len)
{
	if (mark_dirty(v) < 0)
		return -1;
	return fsck_raw_write(v, off, buf, len);
}

/* ---- the run ------------------------------------------------------------- */

/* PercentInUse follows the allocation bitmap as this run leaves it, in the
 * main boot sector only (it is outside the checksum, and the backup's is
 * stale by definition, so the backup region is not rewritten for it). It is
 * set whenever the run writes that sector at the end anyway: the share the
 * bitmap marks used, rounded down, or 0xFF ("not known") on a volume left
 * marked dirty, whose bitmap may not say what is allocated. A value that is
 * merely stale is not damage, and alone causes no write. */
static void finish(struct vol *v)
{
	struct exfat_boot_sector *bs = v->bs;
	uint8_t percent = exfat_percent_in_use(v->bm_used, v->cc);
	if (bs->percent_in_use != 0xFF && bs->percent_in_use > 100 &&
	    fsck_problem(v, "percent-in-use", "", 112, true, "set it from the bitmap",
			 "PercentInUse %u above 100", bs->percent_in_use)) {
		bs->percent_in_use = percent;
		mark_dirty(v); /* sector 0 is written again when the mark is cleared */
	}
	fsck_write_fat(v);
	/* A complete repair-mode check that found nothing settles a dirty mark
	 * left by an unclean unmount or an interrupted run. */
	if (!v->dirty_set && !v->failed && !v->quit && !v->r->problems && v->o->writable &&
	    v->boot_writable && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_VOLUME_DIRTY)) {
		bs->volume_flags = htole16(exfat_le16(bs->volume_flags) & (uint16_t)~EXFAT_FLAG_VOLUME_DIRTY);
		bs->percent_in_use = percent;
		if (fsck_raw_write(v, 0, v->boot, v->ss) == 0 && fsck_flush(v) == 0)
			fsck_note(v, "the dirty mark was cleared: the volume checked clean");
		return;
	}
	if (!v->dirty_set && bs->percent_in_use <= 100 && bs->percent_in_use != percent)
		fsck_note(v, "PercentInUse is %u, the allocation bitmap gives %u: stale, not damage "
			  "(a repair that writes the volume sets it)", bs->percent_in_use, percent);
	if (!v->dirty_set || v->failed)
		return;
	if (fsck_flush(v) < 0)
		return;
	/* Everything is on disk: the volume is consistent again, unless a
	 * problem was left as it is. */
	uint16_t flags = v->orig_flags;
	if (v->r->repaired == v->r->problems && !v->quit) {
		flags &= (uint16_t)~EXFAT_FLAG_VOLUME_DIRTY;
		bs->percent_in_use = percent;
	} else {
		flags |= EXFAT_FLAG_VOLUME_DIRTY;
		bs->percent_in_use = 0xFF;
	}
	bs->volume_flags = htole16(flags);
	if (fsck_raw_write(v, 0, v->boot, v->ss) == 0)
		fsck_flush(v);
}

static void free_vol(struct vol *v)
{
	for (size_t k = 0; k < v->nstack; k++)
		free(v->stack[k].path), free(v->stack[k].clusters);
	free(v->stack);
	free(v->boot), free(v->fat), free(v->fat_win), free(v->fat_dirty), free(v->fat_loaded), free(v->used), free(v->used_pages);
	free(v->disk_bm), free(v->bm_dirty), free(v->bm_clusters), free(v->bm_copy_clusters), free(v->upcase);
	free(v->root_clusters);
	fsck_claims_free(v);
}

/* Whether the caller asked the run to stop (opts->cancel); it then ends as
 * after a quit answer. */
static bool cancelled(struct vol *v)
{
	if (!v->quit && v->o->cancel && *v->o->cancel) {
		v->quit = true;
		v->r->cancelled = true;
	}
	return v->quit;
}

int exfat_fsck_run(int fd, uint64_t dev_size, const struct exfat_fsck_opts *opts,
		   struct exfat_fsck_result *result)
{
	struct vol v = { .fd = fd, .dev_size = dev_size, .o = opts, .r = result };
	struct stat st;
	memset(result, 0, sizeof(*result));
	v.seek_holes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (fsck_check_boot(&v) < 0 || fsck_read_fat(&v) < 0)
		goto done;

	/* The root directory: a chain with no size, at most 256 MiB. */
	uint32_t root = exfat_le32(v.bs->root_cluster);
	struct chain ch;
	if (fsck_walk_chain(&v, root, false, 0, EXFAT_MAX_DIR_BYTES >> v.cshift, true, &ch) < 0)
		goto done;
	if (ch.stop != CH_OK) {
		char why[200];
		fsck_describe_stop(&v, &ch, why, sizeof(why));
		if (!ch.count) {
			fsck_problem(&v, "root", "/", 0, false, NULL, "root directory: %s", why);
			fsck_fail(&v, "the root directory is unusable");
			free(ch.list);
			goto done;
		}
		if (fsck_problem(&v, fsck_stop_code(ch.stop), "/", fsck_cluster_pos(&v, root), false,
				 "end the root directory's chain there", "root directory: %s", why))
			fsck_fat_set(&v, ch.last, EXFAT_FAT_EOC);
	}
	v.root_clusters = malloc(sizeof(uint32_t) * ch.count);
	if (!v.root_clusters) {
		fsck_fail_op(&v, "out of memory");
		free(ch.list);
		goto done;
	}
	memcpy(v.root_clusters, ch.list, sizeof(uint32_t) * ch.count);
	v.root_count = ch.count;
	char *rp = strdup("/");
	if (!rp || fsck_push_dir(&v, rp, ch.list, ch.count, 0) < 0)
		goto done;
	v.r->directories = 1;
	bool root_done = false;
	uint64_t dirs_done = 0;
	do {
		while (v.nstack && !v.failed && !v.quit && !cancelled(&v)) {
			struct dir_job job = v.stack[--v.nstack];
			fsck_check_dir(&v, &job, !root_done);
			root_done = true;
			free(job.path), free(job.clusters);
			dirs_done++;
			if (opts->progress)
				opts->progress(opts->ctx, dirs_done, v.r->directories, v.r->files);
		}
	} while (!v.failed && !v.quit && !cancelled(&v) && fsck_settle_claims(&v));
	cancelled(&v); /* a late stop is taken here, where the FAT is written */
	if (!v.failed)
		fsck_claims_done(&v);
	if (!v.failed && !v.quit)
		fsck_rewrite_upcase(&v);
	if (v.quit && !v.failed) {
		/* Repairs already made stay whole (a truncated size with its
		 * end-of-chain mark); the dirty mark stays for the next check. */
		fsck_write_fat(&v);
		if (v.dirty_set)
			fsck_flush(&v);
	}
	if (v.failed || v.quit)
		goto done;
	fsck_check_bitmap(&v);
	if (!v.failed)
		finish(&v);
done:
	if (v.failed && v.dirty_set)
		fsync(fd); /* the dirty mark stays: the volume needs another check */
	free_vol(&v);
	return v.failed ? -1 : 0;
}
