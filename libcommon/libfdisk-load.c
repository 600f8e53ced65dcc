/* libfdisk, loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <errno.h>
#include <libfdisk.h>
#include <stddef.h>

static struct kb_lazy_lib lib = { .soname = "libfdisk.so.1" };

int fdisk_add_partition(struct fdisk_context *cxt, struct fdisk_partition *pa, size_t *partno)
{
	KB_LAZY_FN(lib, fdisk_add_partition);
	return real ? real(cxt, pa, partno) : -ENOSYS;
}

int fdisk_assign_device_by_fd(struct fdisk_context *cxt, int fd, const char *fname, int readonly)
{
	KB_LAZY_FN(lib, fdisk_assign_device_by_fd);
	return real ? real(cxt, fd, fname, readonly) : -ENOSYS;
}

int fdisk_create_disklabel(struct fdisk_context *cxt, const char *name)
{
	KB_LAZY_FN(lib, fdisk_create_disklabel);
	return real ? real(cxt, name) : -ENOSYS;
}

int fdisk_deassign_device(struct fdisk_context *cxt, int nosync)
{
	KB_LAZY_FN(lib, fdisk_deassign_device);
	return real ? real(cxt, nosync) : -ENOSYS;
}

int fdisk_disable_dialogs(struct fdisk_context *cxt, int disable)
{
	KB_LAZY_FN(lib, fdisk_disable_dialogs);
	return real ? real(cxt, disable) : -ENOSYS;
}

struct fdisk_label *fdisk_get_label(struct fdisk_context *cxt, const char *name)
{
	KB_LAZY_FN(lib, fdisk_get_label);
	return real ? real(cxt, name) : NULL;
}

int fdisk_get_partition(struct fdisk_context *cxt, size_t partno, struct fdisk_partition * *pa)
{
	KB_LAZY_FN(lib, fdisk_get_partition);
	return real ? real(cxt, partno, pa) : -ENOSYS;
}

unsigned long fdisk_get_sector_size(struct fdisk_context *cxt)
{
	KB_LAZY_FN(lib, fdisk_get_sector_size);
	return real ? real(cxt) : 0;
}

struct fdisk_parttype *fdisk_label_get_parttype_from_code(const struct fdisk_label *lb, unsigned int code)
{
	KB_LAZY_FN(lib, fdisk_label_get_parttype_from_code);
	return real ? real(lb, code) : NULL;
}

struct fdisk_parttype *fdisk_label_get_parttype_from_string(const struct fdisk_label *lb, const char *str)
{
	KB_LAZY_FN(lib, fdisk_label_get_parttype_from_string);
	return real ? real(lb, str) : NULL;
}

struct fdisk_context *fdisk_new_context(void)
{
	KB_LAZY_FN(lib, fdisk_new_context);
	return real ? real() : NULL;
}

struct fdisk_partition *fdisk_new_partition(void)
{
	KB_LAZY_FN(lib, fdisk_new_partition);
	return real ? real() : NULL;
}

int fdisk_partition_end_follow_default(struct fdisk_partition *pa, int enable)
{
	KB_LAZY_FN(lib, fdisk_partition_end_follow_default);
	return real ? real(pa, enable) : -ENOSYS;
}

fdisk_sector_t fdisk_partition_get_size(struct fdisk_partition *pa)
{
	KB_LAZY_FN(lib, fdisk_partition_get_size);
	return real ? real(pa) : 0;
}

fdisk_sector_t fdisk_partition_get_start(struct fdisk_partition *pa)
{
	KB_LAZY_FN(lib, fdisk_partition_get_start);
	return real ? real(pa) : 0;
}

int fdisk_partition_set_partno(struct fdisk_partition *pa, size_t num)
{
	KB_LAZY_FN(lib, fdisk_partition_set_partno);
	return real ? real(pa, num) : -ENOSYS;
}

int fdisk_partition_set_type(struct fdisk_partition *pa, struct fdisk_parttype *type)
{
	KB_LAZY_FN(lib, fdisk_partition_set_type);
	return real ? real(pa, type) : -ENOSYS;
}

int fdisk_partition_start_follow_default(struct fdisk_partition *pa, int enable)
{
	KB_LAZY_FN(lib, fdisk_partition_start_follow_default);
	return real ? real(pa, enable) : -ENOSYS;
}

int fdisk_reread_partition_table(struct fdisk_context *cxt)
{
	KB_LAZY_FN(lib, fdisk_reread_partition_table);
	return real ? real(cxt) : -ENOSYS;
}

int fdisk_save_user_sector_size(struct fdisk_context *cxt, unsigned int phy, unsigned int log)
{
	KB_LAZY_FN(lib, fdisk_save_user_sector_size);
	return real ? real(cxt, phy, log) : -ENOSYS;
}

void fdisk_unref_context(struct fdisk_context *cxt)
{
	KB_LAZY_FN(lib, fdisk_unref_context);
	if (real)
		real(cxt);
}

void fdisk_unref_partition(struct fdisk_partition *pa)
{
	KB_LAZY_FN(lib, fdisk_unref_partition);
	if (real)
		real(pa);
}

void fdisk_unref_parttype(struct fdisk_parttype *t)
{
	KB_LAZY_FN(lib, fdisk_unref_parttype);
	if (real)
		real(t);
}

int fdisk_write_disklabel(struct fdisk_context *cxt)
{
	KB_LAZY_FN(lib, fdisk_write_disklabel);
	return real ? real(cxt) : -ENOSYS;
}
