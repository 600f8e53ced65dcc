/* Mount state through libmount and loop backing files through sysfs; an
 * image file that backs no loop device is looked up in the mount table's
 * source fields directly. */
#include "blockdev/mounted.h"
#include "base/libraries.h"

#include "blockdev/blockdev.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

KB_DLOPEN_NOTE(KB_LIBMOUNT);

static int same_file(const char *path, const struct stat *st)
{
	struct stat s;
	return path && stat(path, &s) == 0 && s.st_dev == st->st_dev && s.st_ino == st->st_ino;
}

/* Calls fn for every loop device backed by the file; stops when fn returns 1. */
static int for_each_backing_loop(const struct stat *st, int (*fn)(dev_t, const char *, void *), void *arg)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return 0;
	struct dirent *de;
	int hit = 0;
	while (!hit && (de = readdir(d))) {
		if (strncmp(de->d_name, "loop", 4))
			continue;
		char path[300], backing[4096];
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		char *ok = fgets(backing, sizeof(backing), f);
		fclose(f);
		if (!ok)
			continue;
		backing[strcspn(backing, "\n")] = '\0';
		if (!same_file(backing, st))
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dev", de->d_name);
		unsigned maj, min;
		f = fopen(path, "re");
		if (!f)
			continue;
		int n = fscanf(f, "%u:%u", &maj, &min);
		fclose(f);
		if (n != 2)
			continue;
		hit = fn(makedev(maj, min), de->d_name, arg);
	}
	closedir(d);
	return hit;
}

struct loop_name { char *dev; size_t len; };

static int note_loop(dev_t devno, const char *name, void *arg)
{
	(void)devno;
	struct loop_name *ln = arg;
	snprintf(ln->dev, ln->len, "/dev/%s", name);
	return 1;
}

int kb_loop_backing(const struct stat *st, char *dev, size_t len)
{
	if (!S_ISREG(st->st_mode))
		return 0;
	struct loop_name ln = { dev, len };
	return for_each_backing_loop(st, note_loop, &ln);
}

struct mount_search {
	const struct kb_libmount *mnt;
	struct libmnt_table *tb;
	char *where;
	size_t len;
};

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

static int loop_mounted(dev_t devno, const char *name, void *arg)
{
	(void)name;
	struct mount_search *ms = arg;
	return mounted_devno(ms->mnt, ms->tb, devno, ms->where, ms->len);
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

/* A regular file no loop device is backed by can only be mounted as the
 * source of a mount (FUSE, or a filesystem mounting a file directly). The
 * mount table's source fields say so; reading them here spares loading
 * libmount for every check of an image file. Same result as the libmount
 * path: 1 with the mount point, 0, or -1 with errno. */
static int file_is_mount_source(const struct stat *st, char *where, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		errno = EIO;
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	int hit = 0;
	while (!hit && getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER */
		char *sep = strstr(line, " - "), *save = NULL;
		if (!sep)
			continue;
		*sep = '\0';
		char *type = strtok_r(sep + 3, " \n", &save);
		char *src = type ? strtok_r(NULL, " \n", &save) : NULL;
		if (!src || src[0] != '/' || !same_file(unescape_field(src), st))
			continue;
		char *mnt = NULL, *save2 = NULL, *tok = strtok_r(line, " ", &save2);
		for (int field = 1; tok && field < 5; field++)
			tok = strtok_r(NULL, " ", &save2);
		mnt = tok;
		snprintf(where, len, "%s", mnt ? unescape_field(mnt) : "?");
		hit = 1;
	}
	free(line);
	fclose(f);
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
	if (S_ISREG(st->st_mode)) {
		char loop[64];
		if (!kb_loop_backing(st, loop, sizeof(loop)))
			return file_is_mount_source(st, where, len);
	}
	const struct kb_libmount *mnt = kb_libmount();
	struct libmnt_table *tb = mnt->mnt_new_table();
	if (!tb || mnt->mnt_table_parse_mtab(tb, NULL) != 0) {
		mnt->mnt_unref_table(tb);
		errno = EIO;
		return -1;
	}
	int hit = 0;
	if (S_ISBLK(st->st_mode)) {
		hit = mounted_devno(mnt, tb, st->st_rdev, where, len);
	} else {
		/* An image mounted directly (FUSE) names the file as its source. */
		struct libmnt_iter *it = mnt->mnt_new_iter(MNT_ITER_FORWARD);
		struct libmnt_fs *fs;
		while (it && !hit && mnt->mnt_table_next_fs(tb, it, &fs) == 0) {
			const char *src = mnt->mnt_fs_get_srcpath(fs);
			if (src && src[0] == '/' && same_file(src, st)) {
				snprintf(where, len, "%s", mnt->mnt_fs_get_target(fs));
				hit = 1;
			}
		}
		mnt->mnt_free_iter(it);
		if (!hit) {
			struct mount_search ms = { mnt, tb, where, len };
			hit = for_each_backing_loop(st, loop_mounted, &ms);
		}
	}
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
