/* Undo files: before a block of a device is overwritten for the first time,
 * its old content is appended (zstd-compressed, with a CRC32) to an undo file;
 * kb_undo_rollback() later writes every saved block back, bit for bit.
 * Kernel interface: none of its own (device and file I/O through blockdev.h).
 *
 * File layout (little-endian):
 *   header (64 bytes): magic "KBOXUNDO", version, block size, device size,
 *     record count, flags (complete), CRC32 of the header
 *   records: u64 block number, u32 compressed length, u32 CRC32 of the old
 *     block, u32 CRC32 of the block as left on the device when the undo file
 *     was closed, u32 CRC32 of these 20 bytes, then the compressed block
 * The header's record count and "complete" flag are written last, so a file
 * from an interrupted run is recognised (its records are still usable). */
#ifndef KBOX_UNDO_H
#define KBOX_UNDO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kb_undo;
struct stat;

/* An undo file is created (truncated) before the first write: refuses a path
 * that exists and is not a regular file, is the device itself under any
 * name (dev_st: its fstat), or backs a loop device. 0, or -1 with a one-line
 * reason in err. */
int kb_undo_path_check(const char *undo_path, const char *dev, const struct stat *dev_st, char *err,
		       size_t err_len);

/* Creates (truncates) path for undo records of device fd. Returns NULL with
 * errno set on failure. block_size is a power of two, 512..1 MiB. */
struct kb_undo *kb_undo_create(const char *path, int dev_fd, uint32_t block_size, uint64_t dev_size);
/* Saves the current device content of every block touched by [offset, offset+len)
 * that was not saved before. Call before writing that range. 0, or -1 with errno. */
int kb_undo_save(struct kb_undo *u, uint64_t offset, uint64_t len);
/* Records the final CRC of every saved block, completes the header, fsyncs
 * and frees u (also on error). 0, or -1 with errno. */
int kb_undo_close(struct kb_undo *u);
/* Number of blocks saved so far. */
uint64_t kb_undo_blocks(const struct kb_undo *u);

struct kb_undo_info {
	uint32_t block_size;
	uint64_t dev_size;
	uint64_t records;
	bool complete;
};

/* Result of a rollback: how many blocks were restored, and how many had been
 * changed on the device since the undo file was closed (written only with force). */
struct kb_undo_result {
	uint64_t restored;
	uint64_t changed_since;
	bool interrupted;     /* the file is from a run that never closed it */
	bool size_differs;    /* the device is not the size the file was made for ... */
	uint64_t undo_dev_size; /* ... which is this */
	uint64_t cut_bytes;   /* its last record, cut short (its block was never written) */
};

/* Reads path's header into info. 0, or -1 with errno (EINVAL: not an undo file;
 * EBADMSG: damaged). */
int kb_undo_info(const char *path, struct kb_undo_info *info);
/* Writes every saved block of path back to dev_fd. Every record is verified
 * before the first write; a device whose size differs, or whose blocks no
 * longer hold what was left there, or an undo file from an interrupted run
 * (whose records are all used), is refused (errno ESTALE) unless force.
 * 0, or -1 with errno (EBADMSG for a damaged undo file, ERANGE for a block
 * beyond the end of the device). */
int kb_undo_rollback(const char *path, int dev_fd, uint64_t dev_size, bool force,
		     struct kb_undo_result *result);

#endif
