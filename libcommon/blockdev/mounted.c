/* Mount state through libmount and loop backing files through sysfs; an
 * image file is looked up in the mount table directly: its source fields,
 * and the loop devices its file systems are on. */
#include "blockdev/mounted.h"
#include "base/libraries.h"
#include "base/readfile.h"

#include "blockdev/blockdev.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/major.h>
#include <sys/sysmacros.h>
#include <unistd.h>

KB_DLOPEN_NOTE(KB_LIBMOUNT);

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int same_file(const char *path, const struct stat *st)
{
	struct stat s;
	return path && stat(path, &s) == 0 && same_inode(&s, st);
}

/* Whether the loop device whose sysfs directory is dir ("/sys/block/loop0",
 * "/sys/dev/block/7:0") is backed by the file. */
static bool loop_backed_by(const char *dir, const struct stat *st)
{
	char path[300], backing[4096];
	snprintf(path, sizeof(path), "%s/loop/backing_file", dir);
	if (kb_read_small_file(path, backing, sizeof(backing)) <= 0)
		return false;
	backing[strcspn(backing, "\n")] = '\0';
	return same_file(backing, st);
}

int kb_loop_backing(const struct stat *st, char *dev, size_t len)
{
	if (!S_ISREG(st->st_mode))
		return 0;
	DIR *d = opendir("/sys/block");
	if (!d)
		return 0;
	struct dirent *de;
	int hit = 0;
	while (!hit && (de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/sys/block/%s", de->d_name);
		if (loop_backed_by(path, st)) {
			snprintf(dev, len, "/dev/%s", de->d_name);
			hit = 1;
		}
	}
	closedir(d);
	return hit;
}

static int mounted_devno(const struct kb_libmount *mnt, struct libmnt_table *tb, dev_t devno, char *where,
			 size_t len)
{
	struct libmnt_iter *it = mnt->mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int hit = 0;
	while (it && !hit && mnt->mnt_table_next_fs(tb, it, &fs) == 0) {
		if (mnt->mnt_fs_get_devno(fs) == devno && major(devno) != 0) {
			snprintf(where, len, "%s", mnt->mnt_fs_get_target(fs));
			hit = 1;
		}
	}
	mnt->mnt_free_iter(it);
	return hit;
}

/* Undoes the octal escapes (\040 for a space ...) of a mountinfo field, in
 * place; returns the field. */
static char *unescape_field(char *f)
{
	char *in = f, *out = f;
	while (*in) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') << 6 | (in[2] - '0') << 3 | (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
	return f;
}

/* Whether the loop device devno is backed by the file. */
static bool loop_devno_backed_by(dev_t devno, const struct stat *st)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(devno), minor(devno));
	return loop_backed_by(dir, st);
}

/* The next field of a mount table line, ended in place; NULL at its end. */
static char *next_field(char **line)
{
	char *f = *line;
	while (*f == ' ')
		f++;
	if (!*f)
		return NULL;
	char *end = f;
	while (*end && *end != ' ')
		end++;
	*line = *end ? end + 1 : end;
	*end = '\0';
	return f;
}

/* A regular file is mounted as the source of a mount (FUSE, or a file
 * system mounting a file directly), or through a loop device it backs. The
 * mount table says both: its source fields, and the device of each file
 * system (and of each source that is a loop device) whose loop device is
 * then asked for its backing file. So no loop device is looked at unless
 * one is mounted, and libmount is not loaded for an image file. The table
 * is read whole in one read (in pieces of its 1 KiB st_blksize it cost 63
 * us instead of 43 here) and split in place. 1 with the mount point, 0, or
 * -1 with errno. */
static int file_mounted_at(const struct stat *st, char *where, size_t len)
{
	size_t size;
	char *table = kb_read_file("/proc/self/mountinfo", &size);
	if (!table) {
		errno = EIO;
		return -1;
	}
	int hit = 0;
	for (char *line = table, *next; !hit && *line; line = next) {
		next = strchrnul(line, '\n');
		if (*next)
			*next++ = '\0';
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
		char *field[5] = { NULL }, *f, *src = NULL;
		for (int k = 0; k < 5; k++)
			field[k] = next_field(&line);
		while ((f = next_field(&line)) && strcmp(f, "-"))
			;
		if (f && next_field(&line))
			src = next_field(&line);
		char *colon = field[2] ? strchr(field[2], ':') : NULL;
		dev_t fs_dev = colon ? makedev(strtoul(field[2], NULL, 10), strtoul(colon + 1, NULL, 10)) : 0;
		bool mounted = colon && major(fs_dev) == LOOP_MAJOR && loop_devno_backed_by(fs_dev, st);
		struct stat s;
		if (!mounted && src && src[0] == '/' && stat(unescape_field(src), &s) == 0)
			mounted = same_inode(&s, st) ||
				  (S_ISBLK(s.st_mode) && major(s.st_rdev) == LOOP_MAJOR && s.st_rdev != fs_dev &&
				   loop_devno_backed_by(s.st_rdev, st));
		if (!mounted)
			continue;
		snprintf(where, len, "%s", field[4] ? unescape_field(field[4]) : "?");
		hit = 1;
	}
	free(table);
	return hit;
}

int kb_mounts_each(const char *fstype, int (*fn)(const struct kb_mount *m, void *arg), void *arg)
{
	const struct kb_libmount *mnt = kb_libmount();
	struct libmnt_table *tb = mnt->mnt_new_table_from_file("/proc/self/mountinfo");
	if (!tb)
		return -1;
	struct libmnt_iter *it = mnt->mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int rc = 0;
	while (it && mnt->mnt_table_next_fs(tb, it, &fs) == 0) {
		const char *type = mnt->mnt_fs_get_fstype(fs);
		struct kb_mount m = { mnt->mnt_fs_get_target(fs), mnt->mnt_fs_get_fs_options(fs) };
		if (type && !strcmp(type, fstype) && m.target && (rc = fn(&m, arg)) != 0)
			break;
	}
	mnt->mnt_free_iter(it);
	mnt->mnt_unref_table(tb);
	return rc;
}

int kb_mounted_at(const struct stat *st, char *where, size_t len)
{
	if (!S_ISBLK(st->st_mode))
		return file_mounted_at(st, where, len);
	const struct kb_libmount *mnt = kb_libmount();
	struct libmnt_table *tb = mnt->mnt_new_table();
	if (!tb || mnt->mnt_table_parse_mtab(tb, NULL) != 0) {
		mnt->mnt_unref_table(tb);
		errno = EIO;
		return -1;
	}
	int hit = mounted_devno(mnt, tb, st->st_rdev, where, len);
	mnt->mnt_unref_table(tb);
	return hit;
}

int kb_dev_open_reading(const char *path, bool *busy, char *mounted, size_t mounted_len)
{
	struct stat st;
	int fd = kb_dev_open(path, false, &st);
	if (fd < 0)
		return -1;
	*busy = false;
	if (kb_dev_lock(fd, false) < 0) {
		if (errno != EWOULDBLOCK) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		*busy = true;
	}
	if (kb_mounted_at(&st, mounted, mounted_len) <= 0 && mounted_len)
		mounted[0] = '\0';
	return fd;
}
