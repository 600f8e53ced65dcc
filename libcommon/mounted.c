/* Mount state through libmount (the only libmount user) and loop backing
 * files through sysfs. */
#include "mounted.h"

#include <dirent.h>
#include <errno.h>
#include <libmount.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

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
	struct libmnt_table *tb;
	char *where;
	size_t len;
};

static int mounted_devno(struct libmnt_table *tb, dev_t devno, char *where, size_t len)
{
	struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
	struct libmnt_fs *fs;
	int hit = 0;
	while (it && !hit && mnt_table_next_fs(tb, it, &fs) == 0) {
		if (mnt_fs_get_devno(fs) == devno && major(devno) != 0) {
			snprintf(where, len, "%s", mnt_fs_get_target(fs));
			hit = 1;
		}
	}
	mnt_free_iter(it);
	return hit;
}

static int loop_mounted(dev_t devno, const char *name, void *arg)
{
	(void)name;
	struct mount_search *ms = arg;
	return mounted_devno(ms->tb, devno, ms->where, ms->len);
}

int kb_mounted_at(const struct stat *st, char *where, size_t len)
{
	struct libmnt_table *tb = mnt_new_table();
	if (!tb || mnt_table_parse_mtab(tb, NULL) != 0) {
		mnt_unref_table(tb);
		errno = EIO;
		return -1;
	}
	int hit = 0;
	if (S_ISBLK(st->st_mode)) {
		hit = mounted_devno(tb, st->st_rdev, where, len);
	} else {
		/* An image mounted directly (FUSE) names the file as its source. */
		struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
		struct libmnt_fs *fs;
		while (it && !hit && mnt_table_next_fs(tb, it, &fs) == 0) {
			const char *src = mnt_fs_get_srcpath(fs);
			if (src && src[0] == '/' && same_file(src, st)) {
				snprintf(where, len, "%s", mnt_fs_get_target(fs));
				hit = 1;
			}
		}
		mnt_free_iter(it);
		if (!hit) {
			struct mount_search ms = { tb, where, len };
			hit = for_each_backing_loop(st, loop_mounted, &ms);
		}
	}
	mnt_unref_table(tb);
	return hit;
}
