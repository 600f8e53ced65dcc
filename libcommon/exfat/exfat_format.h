/* Building a new exFAT volume: an optional host directory tree to copy in
 * (exfat_tree_*), then planning (no I/O) and writing (exfat_format_*).
 * Kernel interface: the host tree is read with opendir/readdir and statx, its
 * files' data found with lseek SEEK_DATA/SEEK_HOLE; the volume is written
 * through blockdev.h. */
#ifndef KBOX_EXFAT_FORMAT_H
#define KBOX_EXFAT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exfat/exfat.h"
#include "exfat/exfat_upcase.h"

/* One file or directory of a host tree to copy into the new volume. */
struct exfat_tree_node {
	char *path;                    /* host path to read from */
	uint16_t *name;                /* UTF-16 name (empty for the root) */
	unsigned name_len;
	uint16_t name_hash;
	bool is_dir;
	uint16_t attributes;           /* EXFAT_ATTR_* */
	uint64_t size;                 /* file bytes (directories: planned bytes) */
	int64_t mtime, atime, btime;   /* seconds */
	long mtime_ns, atime_ns, btime_ns;
	struct exfat_tree_node **children;   /* sorted by host name */
	size_t nchildren;
	uint32_t first_cluster, clusters;    /* set by exfat_format_plan */
};

/* Called for host entries that exFAT cannot hold (symlinks, devices ...);
 * they are left out. */
typedef void (*exfat_tree_skip_fn)(const char *path, const char *why, void *arg);

/* Reads the tree under dir: names must be valid UTF-8 of at most 255 UTF-16
 * units without characters exFAT forbids, and unique case-insensitively
 * within a directory (compared through upcase_map). Returns the root, or
 * NULL with a one-line reason in err. */
struct exfat_tree_node *exfat_tree_scan(const char *dir, const struct exfat_upcase_map *upcase_map,
					 exfat_tree_skip_fn skip, void *arg, char *err, size_t err_len);
void exfat_tree_free(struct exfat_tree_node *root);

struct exfat_format {
	/* Inputs. */
	int fd;
	uint64_t offset;               /* byte offset of the volume within fd */
	struct exfat_geometry geo;
	uint32_t serial;
	uint16_t label[EXFAT_MAX_LABEL_LEN];
	unsigned label_len;
	bool has_guid;
	uint8_t guid[16];
	struct exfat_tree_node *tree;  /* NULL: an empty volume */
	bool full_format;              /* zero the whole cluster heap */
	void (*progress)(const char *what, uint64_t done, uint64_t total, void *arg);
	void *progress_arg;
	/* Results. */
	uint32_t root_clusters;
	uint32_t used_clusters;        /* clusters 2 .. 2+used-1 are in use */
	uint64_t bytes_written;        /* written as data (zeroing via fallocate/ioctl excluded) */
	uint8_t percent_in_use;
	/* Private. */
	uint32_t *fat;                 /* entries 0 .. 2+used_clusters-1 */
};

/* Allocates clusters for the root directory and the tree; checks that
 * everything fits (volume space, 256 MiB per directory). No I/O. Returns 0,
 * or -1 with a one-line reason in err. */
int exfat_format_plan(struct exfat_format *f, char *err, size_t err_len);
/* Writes the volume: FAT and bitmap (their used part, zeroing the rest only
 * where the medium holds data), up-case table, directories, file contents,
 * then the backup and main boot regions, then fsync. Returns 0, or -1 with
 * a one-line reason in err. */
int exfat_format_write(struct exfat_format *f, char *err, size_t err_len);
void exfat_format_release(struct exfat_format *f);

#endif
