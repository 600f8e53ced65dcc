/* Partition table creation through libfdisk (the only libfdisk user). */
#include "blockdev/parttable.h"
#include "base/libraries.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

KB_DLOPEN_NOTE(KB_LIBFDISK);

int kb_parttable_single(int fd, const char *path, enum kb_parttable_kind kind, unsigned sector_size,
			unsigned mbr_type, const char *gpt_type, bool write, uint64_t *start,
			uint64_t *size, char *err, size_t err_len)
{
	/* A missing library is said like any other failure, so the caller can
	 * put things back before it stops. */
	const struct kb_libfdisk *fdisk = kb_lib_open(KB_LIB_FDISK);
	if (!fdisk) {
		snprintf(err, err_len, "%s", kb_lib_error(KB_LIB_FDISK));
		return -1;
	}
	struct fdisk_context *cxt = fdisk->fdisk_new_context();
	struct fdisk_partition *pa = NULL;
	struct fdisk_parttype *type = NULL;
	int rc = -1, r;
	if (!cxt) {
		snprintf(err, err_len, "cannot create a partitioning context");
		return -1;
	}
	fdisk->fdisk_disable_dialogs(cxt, 1);
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		fdisk->fdisk_save_user_sector_size(cxt, sector_size, sector_size);
	/* The table is built in memory; only fdisk_write_disklabel writes. */
	if ((r = fdisk->fdisk_assign_device_by_fd(cxt, fd, path, !write)) < 0) {
		snprintf(err, err_len, "%s: cannot open for partitioning: %s", path, strerror(-r));
		goto out;
	}
	const char *label = kind == KB_PT_GPT ? "gpt" : "dos";
	if ((r = fdisk->fdisk_create_disklabel(cxt, label)) < 0) {
		snprintf(err, err_len, "%s: cannot create a %s partition table: %s", path,
			 kind == KB_PT_GPT ? "GPT" : "MBR", strerror(-r));
		goto out;
	}
	struct fdisk_label *lb = fdisk->fdisk_get_label(cxt, NULL);
	type = kind == KB_PT_GPT ? fdisk->fdisk_label_get_parttype_from_string(lb, gpt_type)
				 : fdisk->fdisk_label_get_parttype_from_code(lb, mbr_type);
	pa = fdisk->fdisk_new_partition();
	if (!type || !pa) {
		snprintf(err, err_len, "%s: unknown partition type", path);
		goto out;
	}
	fdisk->fdisk_partition_set_type(pa, type);
	fdisk->fdisk_partition_set_partno(pa, 0);
	fdisk->fdisk_partition_start_follow_default(pa, 1);
	fdisk->fdisk_partition_end_follow_default(pa, 1);
	size_t partno;
	if ((r = fdisk->fdisk_add_partition(cxt, pa, &partno)) < 0) {
		snprintf(err, err_len, "%s: cannot add a partition: %s", path, strerror(-r));
		goto out;
	}
	struct fdisk_partition *got = NULL;
	if (fdisk->fdisk_get_partition(cxt, partno, &got) < 0 || !got) {
		snprintf(err, err_len, "%s: cannot read back the new partition", path);
		goto out;
	}
	unsigned long ss = fdisk->fdisk_get_sector_size(cxt);
	*start = (uint64_t)fdisk->fdisk_partition_get_start(got) * ss;
	*size = (uint64_t)fdisk->fdisk_partition_get_size(got) * ss;
	fdisk->fdisk_unref_partition(got);
	if (write) {
		if ((r = fdisk->fdisk_write_disklabel(cxt)) < 0) {
			snprintf(err, err_len, "%s: cannot write the partition table: %s", path,
				 strerror(-r));
			goto out;
		}
		if (S_ISBLK(st.st_mode))
			fdisk->fdisk_reread_partition_table(cxt);
	}
	rc = 0;
out:
	fdisk->fdisk_unref_partition(pa);
	fdisk->fdisk_unref_parttype(type);
	/* Assigned by fd: deassigning leaves our descriptor open. */
	fdisk->fdisk_deassign_device(cxt, 1);
	fdisk->fdisk_unref_context(cxt);
	return rc;
}
