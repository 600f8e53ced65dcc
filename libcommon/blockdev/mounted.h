/* Is a device or image in use? Mount state from libmount, loop devices
 * from sysfs. */
#ifndef KBOX_MOUNTED_H
#define KBOX_MOUNTED_H

#include <stddef.h>
#include <sys/stat.h>

/* Checks whether the block device or regular file `st` (from fstat of
 * path) is mounted: a block device by device number, a file by being the
 * source of a mount (FUSE) or the backing file of a mounted loop device.
 * Returns 1 with the mount point in where (len bytes), 0 if not mounted,
 * -1 with errno if the mount table cannot be read. */
int kb_mounted_at(const struct stat *st, char *where, size_t len);
/* For a regular file: 1 with "/dev/loopN" in dev if a loop device is backed
 * by it, else 0. */
int kb_loop_backing(const struct stat *st, char *dev, size_t len);

#endif
