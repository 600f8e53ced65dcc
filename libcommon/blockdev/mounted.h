/* Is a device or image in use? Mount state from libmount, loop devices
 * from sysfs. Also the mount table itself, for whoever needs to find a
 * mount (cgroup/): every libmount call of kbox is in mounted.c. */
#ifndef KBOX_MOUNTED_H
#define KBOX_MOUNTED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* Checks whether the block device or regular file `st` (from fstat of
 * path) is mounted: a block device by device number (libmount), a file by
 * being the source of a mount (FUSE) or the backing file of a mounted loop
 * device (the mount table read directly, and only mounted loop devices).
 * Returns 1 with the mount point in where (len bytes), 0 if not mounted,
 * -1 with errno if the mount table cannot be read. */
int kb_mounted_at(const struct stat *st, char *where, size_t len);
/* For a regular file: 1 with "/dev/loopN" in dev if a loop device is backed
 * by it, else 0. */
int kb_loop_backing(const struct stat *st, char *dev, size_t len);

/* One entry of the mount table, as kb_mounts_each passes it. */
struct kb_mount {
	const char *target;     /* the mount point */
	const char *fs_options; /* the superblock's options: "rw,nsdelegate" */
};
/* Calls fn for every mount of type fstype in /proc/self/mountinfo, in order,
 * until fn returns non-zero; returns that value, 0 when none did, or -1 with
 * errno when the table cannot be read. */
int kb_mounts_each(const char *fstype, int (*fn)(const struct kb_mount *m, void *arg), void *arg);

/* Opens a block device or image file read-only to read what it holds: with
 * a shared image lock when it can get one (*busy: another program holds the
 * write lock), and where it is mounted in `mounted` ("" if not; mounted_len
 * bytes). Returns the descriptor, or -1 with errno (EINVAL: neither a device
 * nor a regular file). */
int kb_dev_open_reading(const char *path, bool *busy, char *mounted, size_t mounted_len);

#endif
