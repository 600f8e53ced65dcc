/* exFAT checker: the boot region, first of its passes.
 *
 * Reads the main boot region (sectors 0-11: boot sector, eight extended boot
 * sectors, OEM parameters, reserved, checksum sector) and the backup at
 * sectors 12-23; checks each on its own (signatures, geometry, the checksum
 * sector), picks the one to use (the main one unless it is damaged or -b),
 * and rewrites the other when they differ. Then takes the volume's geometry
 * from the boot sector: sector and cluster size, ClusterCount, the active
 * FAT, the cluster heap, VolumeLength against the device. */
#include "exfat/fsck_internal.h"

#include <stdlib.h>
#include <string.h>

int fsck_check_boot(struct vol *v)
{
	const size_t max = (size_t)EXFAT_BOOT_REGION_SECTORS * 4096;
	uint8_t *mainr = malloc(max), *backup = malloc(max);
	int rc = -1;
	if (!mainr || !backup) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	if (fsck_dev_read(v, 0, mainr, max) < 0)
		goto out;
	const char *main_why = NULL, *backup_why = NULL;
	const struct exfat_boot_sector *mbs = (const void *)mainr;
	unsigned ss = 0;
	bool main_ok = false, backup_ok = false;
	if (mbs->sector_shift >= EXFAT_MIN_SECTOR_SHIFT && mbs->sector_shift <= EXFAT_MAX_SECTOR_SHIFT) {
		ss = 1u << mbs->sector_shift;
		main_ok = exfat_boot_region_check(mainr, ss, &main_why) == 0;
	} else {
		main_why = "BytesPerSectorShift out of range 9..12";
	}
	/* The backup follows the main region; its sector size is its own. */
	for (unsigned s = ss ? ss : 512; s <= 4096; s *= 2) {
		if (fsck_dev_read(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * s, backup, (size_t)EXFAT_BOOT_REGION_SECTORS * s) < 0)
			goto out;
		const struct exfat_boot_sector *b = (const void *)backup;
		if (b->sector_shift == __builtin_ctz(s) || ss) {
			backup_ok = exfat_boot_region_check(backup, s, &backup_why) == 0;
			if (backup_ok || ss) {
				if (!ss || backup_ok)
					ss = backup_ok ? s : ss;
				break;
			}
		}
	}
	if (!backup_ok && !backup_why)
		backup_why = "no valid boot sector";
	if (!main_ok && !backup_ok) {
		bool sig = !memcmp(mbs->fs_name, "EXFAT   ", 8) || !memcmp(((struct exfat_boot_sector *)backup)->fs_name, "EXFAT   ", 8);
		v->r->not_exfat = !sig;
		if (sig)
			fsck_fail(v, "both boot regions are damaged (main: %s; backup: %s)", main_why, backup_why);
		else
			/* Whatever else is wrong, the missing name is what says so. */
			fsck_fail(v, "not an exFAT filesystem (no \"EXFAT\" signature in either boot sector)");
		goto out;
	}
	v->ss = ss;
	size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * ss;
	v->boot = malloc(rlen);
	if (!v->boot) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	v->boot_writable = true;
	if (!main_ok || (v->o->use_backup && backup_ok && !exfat_boot_regions_equal(mainr, backup, ss))) {
		memcpy(v->boot, backup, rlen);
		v->bs = (struct exfat_boot_sector *)v->boot;
		if (fsck_problem(v, "boot-region", "", 0, true, "restore the main boot region from the backup",
				 main_ok ? "main boot region differs from the backup (-b uses the backup)"
				    : "main boot region damaged: %s", main_why)) {
			v->bs->volume_flags = htole16(exfat_le16(v->bs->volume_flags) | EXFAT_FLAG_VOLUME_DIRTY);
			if (fsck_raw_write(v, 0, v->boot, rlen) < 0 || fsck_flush(v) < 0)
				goto out;
			v->dirty_set = true;
		} else {
			v->boot_writable = false; /* no other write over a damaged main region */
		}
	} else {
		memcpy(v->boot, mainr, rlen);
		v->bs = (struct exfat_boot_sector *)v->boot;
		if (!backup_ok) {
			if (fsck_problem(v, "backup-boot-region", "", (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, true,
					 "rewrite the backup from the main region", "backup boot region damaged: %s", backup_why))
				fsck_dev_write(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, v->boot, rlen);
		} else if (!exfat_boot_regions_equal(mainr, backup, ss)) {
			if (fsck_problem(v, "backup-boot-region", "", (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, true,
					 "rewrite the backup from the main region",
					 "backup boot region differs from the main region"))
				fsck_dev_write(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * ss, v->boot, rlen);
		}
	}
	struct exfat_boot_sector *bs = v->bs;
	v->orig_flags = exfat_le16(bs->volume_flags) & (uint16_t)~(v->dirty_set ? EXFAT_FLAG_VOLUME_DIRTY : 0);
	v->csize = exfat_cluster_size(bs);
	v->cshift = bs->sector_shift + bs->cluster_shift;
	v->cc = exfat_le32(bs->cluster_count);
	v->heap_off = (uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift;
	uint64_t fat_index = bs->number_of_fats == 2 && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	v->fat_off = ((uint64_t)exfat_le32(bs->fat_offset) + fat_index * exfat_le32(bs->fat_length)) << bs->sector_shift;
	v->r->cluster_count = v->cc;
	v->r->cluster_size = v->csize;
	uint64_t vol_bytes = exfat_le64(bs->volume_length) << bs->sector_shift;
	uint64_t heap_end = v->heap_off + ((uint64_t)v->cc << v->cshift);
	if (vol_bytes > v->dev_size) {
		fsck_problem(v, "volume-length", "", 0, false, NULL,
			     "VolumeLength %llu bytes is larger than the device (%llu bytes)",
			     (unsigned long long)vol_bytes, (unsigned long long)v->dev_size);
		if (heap_end > v->dev_size) {
			fsck_fail(v, "the cluster heap extends past the end of the device");
			goto out;
		}
	}
	if (exfat_le16(bs->volume_flags) & EXFAT_FLAG_VOLUME_DIRTY && !v->dirty_set)
		fsck_note(v, "the volume is marked dirty (not cleanly unmounted)");
	if (exfat_le16(bs->volume_flags) & EXFAT_FLAG_MEDIA_FAILURE)
		fsck_note(v, "the volume is marked as having had media failures");
	rc = 0;
out:
	free(mainr);
	free(backup);
	return rc;
}
