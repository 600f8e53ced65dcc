/* libmount, loaded on first use.
 *
 * kbox is not linked with libmount: these definitions stand in for the
 * libmount functions the rest of libcommon calls (same names, prototypes
 * checked against <libmount.h>), open libmount.so.1 the first time one is
 * called and forward to it. A run that never asks about mounts (most
 * applets, a check of an unmounted image file's contents before it is
 * opened) therefore does not pay for loading libmount, libselinux and
 * pcre2 at start-up. If the library cannot be loaded, each call fails the
 * way libmount reports failure (NULL, a negative code) and callers treat
 * it as "cannot tell". */
#include <dlfcn.h>
#include <libmount.h>
#include <stddef.h>

static void *mount_symbol(const char *name)
{
	static void *lib;
	static int tried;
	if (!tried) {
		tried = 1;
		lib = dlopen("libmount.so.1", RTLD_NOW | RTLD_LOCAL);
	}
	return lib ? dlsym(lib, name) : NULL;
}

/* Resolves the real function into a static pointer of its own type. */
#define MOUNT_FN(fn) \
	static __typeof__(fn) *real; \
	if (!real) \
		real = (__typeof__(fn) *)mount_symbol(#fn)

struct libmnt_table *mnt_new_table(void)
{
	MOUNT_FN(mnt_new_table);
	return real ? real() : NULL;
}

struct libmnt_table *mnt_new_table_from_file(const char *filename)
{
	MOUNT_FN(mnt_new_table_from_file);
	return real ? real(filename) : NULL;
}

int mnt_table_parse_mtab(struct libmnt_table *tb, const char *filename)
{
	MOUNT_FN(mnt_table_parse_mtab);
	return real ? real(tb, filename) : -1;
}

void mnt_unref_table(struct libmnt_table *tb)
{
	MOUNT_FN(mnt_unref_table);
	if (real)
		real(tb);
}

struct libmnt_iter *mnt_new_iter(int direction)
{
	MOUNT_FN(mnt_new_iter);
	return real ? real(direction) : NULL;
}

void mnt_free_iter(struct libmnt_iter *itr)
{
	MOUNT_FN(mnt_free_iter);
	if (real)
		real(itr);
}

int mnt_table_next_fs(struct libmnt_table *tb, struct libmnt_iter *itr, struct libmnt_fs **fs)
{
	MOUNT_FN(mnt_table_next_fs);
	return real ? real(tb, itr, fs) : -1;
}

const char *mnt_fs_get_target(struct libmnt_fs *fs)
{
	MOUNT_FN(mnt_fs_get_target);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_srcpath(struct libmnt_fs *fs)
{
	MOUNT_FN(mnt_fs_get_srcpath);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_fstype(struct libmnt_fs *fs)
{
	MOUNT_FN(mnt_fs_get_fstype);
	return real ? real(fs) : NULL;
}

const char *mnt_fs_get_fs_options(struct libmnt_fs *fs)
{
	MOUNT_FN(mnt_fs_get_fs_options);
	return real ? real(fs) : NULL;
}

int mnt_fs_get_option(struct libmnt_fs *fs, const char *name, char **value, size_t *valsz)
{
	MOUNT_FN(mnt_fs_get_option);
	return real ? real(fs, name, value, valsz) : -1;
}

dev_t mnt_fs_get_devno(struct libmnt_fs *fs)
{
	MOUNT_FN(mnt_fs_get_devno);
	return real ? real(fs) : 0;
}
