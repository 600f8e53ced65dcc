/* exFAT metadata images (exfat2img): which clusters of a volume hold
 * metadata, an image of them written sparse or as a stream, and an image
 * read back and written onto a device.
 *
 * A metadata image is as long as the volume (within its device) and holds
 * the bytes before the cluster heap (boot regions, FATs) and every cluster of
 * the allocation bitmap, the up-case table and every directory reachable from
 * the root, at their places; file data is left out. The directory walk
 * follows what fsck.exfat reads, so a check of the image finds what a check
 * of the volume finds.
 *
 * The stream form (the one exfatprogs' exfat2img writes for `-o -`), all
 * numbers little-endian:
 *   a 108-byte header: magic 0xB67598DB, major version 1, minor 0, the offset
 *     of the data (108), the cluster heap offset in bytes, the cluster size,
 *     the cluster count, 20 reserved 32-bit words. kbox puts "kbox" in
 *     reserved word 0 and the image length in bytes (64 bits) in words 1-2;
 *     without them the image ends where the cluster heap does.
 *   the volume's first heap-offset bytes;
 *   then the heap's clusters in order, as runs each led by one byte: 1 one
 *     cluster follows, 2 a 32-bit count N and N clusters follow, 3 one
 *     cluster is skipped (left out), 4 a 32-bit count N and N are skipped;
 *     until every cluster is covered. Anything after that is ignored.
 *
 * Kernel interface: pread/pwrite and ftruncate through blockdev.h,
 * lseek(2) SEEK_DATA/SEEK_HOLE to find what a sparse image holds, an
 * O_TMPFILE file for a decoded stream, fsync(2) on the restored device. */
#ifndef KBOX_EXFAT_METAIMAGE_H
#define KBOX_EXFAT_METAIMAGE_H

#include "exfat/exfat_dump.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXFAT_STREAM_MAGIC 0xB67598DBu
#define EXFAT_STREAM_HEADER_BYTES 108u

/* A set of clusters, in pages allocated as bits are set. */
struct exfat_cluster_set {
	uint8_t **pages;
	size_t npages;
	uint64_t count;
};

struct exfat_metaimage {
	struct exfat_reader *r;
	struct exfat_cluster_set meta;       /* clusters to copy */
	struct exfat_cluster_set dirs;       /* clusters read as directories */
	uint64_t directories, files;         /* entry sets seen */
	uint64_t image_size;                 /* bytes: the volume's length, cut to the device */
};

/* Finds the metadata clusters of the volume r reads. 0, or -1 with a
 * one-line reason in err (out of memory, a read error). */
int exfat_metaimage_scan(struct exfat_reader *r, struct exfat_metaimage *m, char *err, size_t err_len);
void exfat_metaimage_free(struct exfat_metaimage *m);
bool exfat_cluster_set_has(const struct exfat_cluster_set *s, uint32_t c);

/* Writes the image into fd, a new regular file: it is made image_size bytes
 * long and the metadata written at its places (zeros too, so that what is
 * written back overwrites whatever the device held); file data stays a
 * hole. *written: bytes written. 0, or -1 with a reason in err. */
int exfat_metaimage_write_sparse(struct exfat_metaimage *m, int fd, uint64_t *written, char *err,
				 size_t err_len);
/* Writes the stream form through write(arg, buf, len). 0, or -1 with err. */
int exfat_metaimage_write_stream(struct exfat_metaimage *m, int (*write)(void *arg, const void *buf, size_t len),
				 void *arg, uint64_t *written, char *err, size_t err_len);

/* ---- reading an image back ------------------------------------------------ */
struct exfat_image_info {
	const char *format;          /* "stream", "stream+zstd", "image", "image+zstd" */
	uint64_t size;               /* the image's length */
	bool stream;                 /* the header's geometry follows: */
	uint64_t heap_offset, cluster_size, cluster_count;
	uint64_t trailing;           /* bytes after the end of a stream, ignored */
};

/* Reads an image from in_fd as it comes (a stream, or a plain image; either
 * may be zstd-compressed) into a new unnamed sparse file in $TMPDIR (or
 * /tmp), *spool_fd. Nothing is trusted: a header out of range, a run past
 * the cluster count or a stream cut short is an error. 0, or -1 with err. */
int exfat_image_unpack(int in_fd, int *spool_fd, struct exfat_image_info *info, char *err, size_t err_len);

/* Checks that img_fd holds a whole exFAT image of img_size bytes: a sound
 * boot sector (main or backup), the cluster heap inside the image, and for
 * a stream a header that agrees with the boot sector. 0, or -1 with err. */
int exfat_image_check(int img_fd, uint64_t img_size, const struct exfat_image_info *info, char *err,
		      size_t err_len);

/* Writes the image onto dev_fd: the bytes before the cluster heap and every
 * metadata cluster the image's own directory tree names are written whole,
 * zeros included, so nothing the device held stays in them; other data the
 * image holds (file data of a plain image) as found; holes elsewhere are not
 * written. The first sector is zeroed first and written last, so a restore
 * cut short leaves no main boot sector describing half-written metadata.
 * Synced to the device. *written: bytes written. 0, or -1 with err. */
int exfat_image_restore(int img_fd, uint64_t img_size, int dev_fd, uint64_t *written, char *err,
			size_t err_len);

#endif
