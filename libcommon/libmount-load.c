/* libmount, loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <libmount.h>
#include <stddef.h>

static struct kb_lazy_lib lib = { .soname = "libmount.so.1" };

struct libmnt_table *mnt_new_table(void)
{
	KB_LAZY_FN(lib, mnt_new_table);
	return real ? real() : NULL;
}

struct libmnt_table *mnt_new_table_from_file(const char *filename)
{
	KB_LAZY_FN(lib, mnt_new_table_from_file);
	return real ? real(filename) : NULL;
}

int mnt_table_parse_mtab(struct libmnt_table *tb, const char *filename)
{
	KB_LAZY_FN(lib, mnt_table_parse_mtab);
	return real ? real(tb, filename) : -1;
}

void mnt_unref_table(struct libmnt_table *tb)
{
	KB_LAZY_FN(lib, mnt_unref_table);
	if (real)
		real(tb);
}

struct libmnt_iter *mnt_new_iter(int direction)
{
	KB_LAZY_FN(lib, mnt_new_iter);
	return real ? real(direction) : NULL;
}

void mnt_free_iter(struct libmnt_iter *itr)
{
	KB_LAZY_FN(lib, mnt_free_iter);
	if (real)
		real(itr);
}

int mnt_table_next_fs(struct libmnt_table *tb, struct libmnt_iter *itr, struct libmnt_fs **fs)
{
	KB_LAZY_FN(lib, mnt_table_next_fs);
	return real ? real(tb, itr, fs) : -1;
}

const char *mnt_fs_get_target(struct libmnt_fs *fs)
{
	KB_LAZY_FN(lib, mnt_fs_get_target);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_srcpath(struct libmnt_fs *fs)
{
	KB_LAZY_FN(lib, mnt_fs_get_srcpath);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_fstype(struct libmnt_fs *fs)
{
	KB_LAZY_FN(lib, mnt_fs_get_fstype);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_fs_options(struct libmnt_fs *fs)
{
	KB_LAZY_FN(lib, mnt_fs_get_fs_options);
	return real ? real(fs) : NULL;
}

int mnt_fs_get_option(struct libmnt_fs *fs, const char *name, char **value, size_t *valsz)
{
	KB_LAZY_FN(lib, mnt_fs_get_option);
	return real ? real(fs, name, value, valsz) : -1;
}

dev_t mnt_fs_get_devno(struct libmnt_fs *fs)
{
	KB_LAZY_FN(lib, mnt_fs_get_devno);
	return real ? real(fs) : 0;
}
