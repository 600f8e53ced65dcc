/* exFAT checker: the boot region, first of its passes.
 *
 * Reads the main boot region (sectors 0-11: boot sector, eight extended boot
 * sectors, OEM parameters, reserved, checksum sector) and the backup at
 * sectors 12-23; checks each on its own (signatures, geometry, the checksum
 * sector), picks the one to use (the main one unless it is damaged or -b),
 * and rewrites the other when they differ. When both are damaged, each boot
 * sector is verified against the volume it describes (FAT[0]'s media byte,
 * a readable root directory holding an allocation bitmap entry of the size
 * ClusterCount needs and an up-case table whose checksum matches), and both
 * regions are rebuilt from the one that verifies. Then takes the volume's
 * geometry from the boot sector: sector and cluster size, ClusterCount, the
 * active FAT, the cluster heap, VolumeLength against the device. */
#include "exfat/fsck_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGION_MAX ((size_t)EXFAT_BOOT_REGION_SECTORS * 4096)

/* One boot region as read, main or backup. */
struct region {
	uint8_t *buf;            /* REGION_MAX bytes, the region's 12 sectors read */
	unsigned ss;             /* the sector size it was read with; 0: none found */
	bool ok;                 /* it passes exfat_boot_region_check() */
	const char *why;         /* why not */
};

static bool shift_is(const uint8_t *sector0, unsigned ss)
{
	return ((const struct exfat_boot_sector *)sector0)->sector_shift == __builtin_ctz(ss);
}

/* The backup region, at sector 12 in the main region's sector size. When
 * the main region is damaged its BytesPerSectorShift may be what is wrong,
 * so each other size is tried as well: the backup is where its own shift
 * says, and a valid region is preferred to one that only has the shift. */
static int read_backup(struct vol *v, const struct region *m, struct region *b, uint8_t *scratch)
{
	static const unsigned sizes[] = { 512, 1024, 2048, 4096 };
	b->ss = 0;
	b->why = "no boot sector at sector 12 in any sector size";
	for (int k = -1; k < 4; k++) {
		unsigned s = k < 0 ? m->ss : sizes[k];
		if (!s || (k >= 0 && (s == m->ss || m->ok)))
			continue;
		if (fsck_dev_read(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * s, scratch,
				  (size_t)EXFAT_BOOT_REGION_SECTORS * s) < 0)
			return -1;
		if (s != m->ss && !shift_is(scratch, s))
			continue;
		const char *why = NULL;
		bool ok = exfat_boot_region_check(scratch, s, &why) == 0;
		if (ok || !b->ss || (!shift_is(b->buf, b->ss) && shift_is(scratch, s))) {
			memcpy(b->buf, scratch, (size_t)EXFAT_BOOT_REGION_SECTORS * s);
			*b = (struct region){ b->buf, s, ok, why };
		}
		if (ok)
			break;
	}
	return 0;
}

/* The geometry of the volume a boot sector describes. */
static void set_geometry(struct vol *v, const struct exfat_boot_sector *bs)
{
	v->csize = exfat_cluster_size(bs);
	v->cshift = bs->sector_shift + bs->cluster_shift;
	v->cc = exfat_le32(bs->cluster_count);
	v->heap_off = (uint64_t)exfat_le32(bs->cluster_heap_offset) << bs->sector_shift;
	uint64_t fat_index = bs->number_of_fats == 2 && (exfat_le16(bs->volume_flags) & EXFAT_FLAG_ACTIVE_FAT);
	v->fat_off = ((uint64_t)exfat_le32(bs->fat_offset) + fat_index * exfat_le32(bs->fat_length)) << bs->sector_shift;
}

/* FAT entry c, read on its own: the FAT is not set up yet. */
static uint32_t fat_entry(struct vol *v, uint32_t c)
{
	uint8_t e[4];
	if (fsck_dev_read(v, v->fat_off + (uint64_t)c * 4, e, 4) < 0)
		return EXFAT_FAT_EOC;
	return exfat_get_le32(e);
}

/* The up-case table of entry e, read through its chain: does its
 * checksum match? Returns NULL, or why not (in why); *sum_only tells that
 * the table was read whole and only its checksum is wrong. */
static const char *verify_upcase(struct vol *v, const struct exfat_upcase_entry *e, char *why, size_t len,
				 bool *sum_only)
{
	uint64_t size = exfat_le64(e->data_length);
	if (size == 0 || size > MAX_UPCASE_BYTES) {
		snprintf(why, len, "its up-case table size %llu is out of range", (unsigned long long)size);
		return why;
	}
	uint8_t *table = malloc(size);
	if (!table) {
		fsck_fail_op(v, "out of memory");
		return "out of memory";
	}
	uint32_t c = exfat_le32(e->first_cluster);
	const char *res = NULL;
	for (uint64_t at = 0; at < size && !res; at += v->csize, c = fat_entry(v, c)) {
		if (!fsck_cluster_ok(v, c))
			res = "its up-case table's cluster chain is broken";
		else if (fsck_dev_read(v, fsck_cluster_pos(v, c), table + at, size - at < v->csize ? size - at : v->csize) < 0)
			res = "read error";
	}
	uint32_t sum = res ? 0 : exfat_checksum32(table, size, 0);
	free(table);
	if (!res && sum != exfat_le32(e->table_checksum)) {
		snprintf(why, len, "its up-case table's checksum is 0x%08x, not 0x%08x", sum,
			 exfat_le32(e->table_checksum));
		res = why;
		*sum_only = true;
	}
	return res;
}

#define ROOT_SCAN_BYTES (64u << 10)

/* The fields every exFAT boot sector holds the same: JumpBoot, the name,
 * MustBeZero and the signature. A bit flipped in one of them says nothing
 * about where the volume's structures are, and a rebuilt sector has them
 * as they must be. */
static void restore_constants(struct exfat_boot_sector *bs)
{
	static const uint8_t jump[3] = { 0xEB, 0x76, 0x90 };
	memcpy(bs->jump_boot, jump, sizeof(jump));
	memcpy(bs->fs_name, "EXFAT   ", sizeof(bs->fs_name));
	memset(bs->must_be_zero, 0, sizeof(bs->must_be_zero));
	bs->boot_signature = htole16(0xAA55);
}

/* The sectors a volume needs, by its boot sector: through its FATs and its
 * cluster heap (0 when its shifts are out of range). */
static uint64_t volume_end(const struct exfat_boot_sector *bs)
{
	if (bs->sector_shift < EXFAT_MIN_SECTOR_SHIFT || bs->sector_shift > EXFAT_MAX_SECTOR_SHIFT ||
	    bs->cluster_shift > EXFAT_MAX_CLUSTER_SHIFT - bs->sector_shift)
		return 0;
	uint64_t fats = exfat_le32(bs->fat_offset) + (uint64_t)exfat_le32(bs->fat_length) * bs->number_of_fats;
	uint64_t heap = exfat_le32(bs->cluster_heap_offset) + ((uint64_t)exfat_le32(bs->cluster_count) << bs->cluster_shift);
	return fats > heap ? fats : heap;
}

/* Whether a boot sector describes the volume it is found on: the FAT it
 * names begins with the media byte 0xF8, and its root directory can be
 * read up to an allocation bitmap entry of the size its ClusterCount needs
 * and an up-case table entry whose table has the checksum it records.
 * Leaves that geometry in v. Returns NULL, or why not (in why). A table
 * whose checksum alone is wrong may be damaged itself (the up-case pass
 * rewrites it): that is *upcase_bad, not a failure. */
static const char *verify_boot_sector(struct vol *v, const uint8_t *sector0, unsigned ss, char *why, size_t len,
				      bool *upcase_bad)
{
	struct exfat_boot_sector bs;
	memcpy(&bs, sector0, sizeof(bs));
	restore_constants(&bs);
	/* A bad PercentInUse is a problem of its own (repaired at the end);
	 * it says nothing about where the volume's structures are. */
	if (bs.percent_in_use > 100)
		bs.percent_in_use = 0xFF;
	/* Nor does a VolumeLength too short for the FATs and heap, when the
	 * device holds them (the rebuild sets it, take_from_other). */
	uint64_t sectors = volume_end(&bs);
	if (exfat_le64(bs.volume_length) < sectors && sectors <= v->dev_size >> bs.sector_shift)
		bs.volume_length = htole64(v->dev_size >> bs.sector_shift);
	const char *res;
	if (exfat_boot_sector_check(&bs, &res) < 0)
		return res;
	if (exfat_sector_size(&bs) != ss)
		return "its BytesPerSectorShift is not the sector size it was found with";
	set_geometry(v, &bs);
	uint32_t media = fat_entry(v, 0);
	if ((media & 0xFF) != 0xF8) {
		snprintf(why, len, "FAT[0] is 0x%08x, without the media byte 0xF8", media);
		return why;
	}
	size_t chunk = v->csize < ROOT_SCAN_BYTES ? v->csize : ROOT_SCAN_BYTES;
	uint8_t *buf = malloc(chunk);
	if (!buf) {
		fsck_fail_op(v, "out of memory");
		return "out of memory";
	}
	uint64_t need = ((uint64_t)v->cc + 7) / 8, scanned = 0;
	bool bitmap = false, upcase = false, end = false;
	struct exfat_upcase_entry up = { 0 };
	uint32_t c = exfat_le32(bs.root_cluster);
	res = NULL;
	while (!res && !end && !(bitmap && upcase)) {
		if (!fsck_cluster_ok(v, c) || scanned >= EXFAT_MAX_DIR_BYTES) {
			res = "its root directory's cluster chain is broken";
			break;
		}
		for (uint64_t off = 0; off < v->csize && !res && !end && !(bitmap && upcase); off += chunk) {
			if (fsck_dev_read(v, fsck_cluster_pos(v, c) + off, buf, chunk) < 0) {
				res = "read error";
				break;
			}
			for (size_t k = 0; k < chunk && !res && !end; k += EXFAT_ENTRY_SIZE) {
				const struct exfat_bitmap_entry *e = (const void *)(buf + k);
				if (e->type == EXFAT_ENTRY_EOD) {
					end = true;
				} else if (e->type == EXFAT_ENTRY_BITMAP && !bitmap) {
					if (exfat_le64(e->data_length) != need || !fsck_cluster_ok(v, exfat_le32(e->first_cluster))) {
						snprintf(why, len, "its allocation bitmap entry has size %llu and first cluster %u "
							 "(%llu needed for %u clusters)", (unsigned long long)exfat_le64(e->data_length),
							 exfat_le32(e->first_cluster), (unsigned long long)need, v->cc);
						res = why;
					}
					bitmap = true;
				} else if (e->type == EXFAT_ENTRY_UPCASE && !upcase) {
					memcpy(&up, e, sizeof(up));
					upcase = true;
				}
			}
		}
		scanned += v->csize;
		c = fat_entry(v, c);
	}
	free(buf);
	if (!res && !bitmap)
		res = "its root directory has no allocation bitmap entry";
	else if (!res && !upcase)
		res = "its root directory has no up-case table entry";
	else if (!res)
		res = verify_upcase(v, &up, why, len, upcase_bad);
	return *upcase_bad ? NULL : res;
}

/* A region rebuilt around a verified boot sector: sectors 1-10 as
 * mkfs.exfat writes them (zeros; the extended boot sectors end with their
 * signature) unless both regions hold the same sector, which is kept (as
 * is the rest of sector 0 past the boot sector); then the checksum. */
static void rebuild_region(uint8_t *out, const uint8_t *sector0, const struct region *m, const struct region *b,
			   unsigned ss)
{
	exfat_boot_region_build(out, (const struct exfat_boot_sector *)sector0, ss);
	if (m->ss == ss && b->ss == ss) {
		if (!memcmp(m->buf + 512, b->buf + 512, ss - 512))
			memcpy(out + 512, m->buf + 512, ss - 512);
		for (unsigned s = 1; s < EXFAT_BOOT_CHECKSUM_SECTOR; s++) {
			const uint8_t *a = m->buf + (size_t)s * ss;
			if (memcmp(a, b->buf + (size_t)s * ss, ss) ||
			    (s <= EXFAT_EXT_BOOT_SECTORS && exfat_get_le32(a + ss - 4) != 0xAA550000u))
				continue;
			memcpy(out + (size_t)s * ss, a, ss);
		}
	}
	exfat_fill_checksum_sector(out + (size_t)EXFAT_BOOT_CHECKSUM_SECTOR * ss, ss, exfat_boot_checksum(out, ss));
}

/* The region to use from here on: a copy of buf, in sectors of ss bytes. */
static int use_region(struct vol *v, const uint8_t *buf, unsigned ss)
{
	size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * ss;
	v->ss = ss;
	v->boot = malloc(rlen);
	if (!v->boot) {
		fsck_fail_op(v, "out of memory");
		return -1;
	}
	memcpy(v->boot, buf, rlen);
	v->bs = (struct exfat_boot_sector *)v->boot;
	return 0;
}

/* The region in use becomes the main region, marked dirty and flushed
 * before anything else is written. */
static int write_main_region(struct vol *v)
{
	v->bs->volume_flags = htole16(exfat_le16(v->bs->volume_flags) | EXFAT_FLAG_VOLUME_DIRTY);
	if (fsck_raw_write(v, 0, v->boot, (size_t)EXFAT_BOOT_REGION_SECTORS * v->ss) < 0 || fsck_flush(v) < 0)
		return -1;
	v->dirty_set = true;
	return 0;
}

/* Fields verify_boot_sector does not look at, where the chosen boot sector
 * cannot be right (a bit was flipped there). VolumeLength, when it reaches
 * past the device or falls short of the FATs and heap: the other sector's,
 * if that fits the device and holds them, else the device's size.
 * FileSystemRevision, when the other's is the 1.00 every implementation
 * writes and the chosen one's is not: the other's. *taken says what was
 * set ("" for nothing). */
static void take_from_other(const struct vol *v, struct exfat_boot_sector *bs, const struct region *other,
			    char *taken, size_t len)
{
	const struct exfat_boot_sector *o = (const void *)other->buf;
	bool same_shift = other->ss && o->sector_shift == bs->sector_shift;
	uint64_t dev_sectors = v->dev_size >> bs->sector_shift, need = volume_end(bs);
	uint64_t mine = exfat_le64(bs->volume_length), theirs = exfat_le64(o->volume_length);
	const char *length = "";
	if (mine > dev_sectors || mine < need) {
		if (same_shift && theirs <= dev_sectors && theirs >= need) {
			bs->volume_length = o->volume_length;
			length = "the other's VolumeLength, which fits the device";
		} else if (mine < need && need <= dev_sectors) {
			bs->volume_length = htole64(dev_sectors);
			length = "VolumeLength set to the device's size";
		}
	}
	bool revision = same_shift && exfat_le16(bs->fs_revision) != EXFAT_REVISION &&
			exfat_le16(o->fs_revision) == EXFAT_REVISION;
	if (revision)
		bs->fs_revision = o->fs_revision;
	*taken = 0;
	if (*length || revision)
		snprintf(taken, len, " (with %s%s%s)", length, *length && revision ? ", and " : "",
			 revision ? "the other's FileSystemRevision 1.00" : "");
}

/* Neither region is valid: both are rebuilt from a boot sector that
 * verifies against the volume (the main one first, unless -b; one whose
 * up-case table checks out before one whose table is damaged), or the run
 * stops there, saying why neither does. */
static int rebuild_regions(struct vol *v, const struct region *m, const struct region *b, uint8_t *region)
{
	char mwhy[160], bwhy[160];
	bool mup = false, bup = false;
	const char *mv = m->ss ? verify_boot_sector(v, m->buf, m->ss, mwhy, sizeof(mwhy), &mup) : m->why;
	const char *bv = b->ss ? verify_boot_sector(v, b->buf, b->ss, bwhy, sizeof(bwhy), &bup) : b->why;
	if (v->failed)
		return -1;
	const struct region *order[2] = { v->o->use_backup ? b : m, v->o->use_backup ? m : b }, *c = NULL;
	for (int damaged_upcase = 0; damaged_upcase < 2 && !c; damaged_upcase++)
		for (int k = 0; k < 2 && !c; k++)
			if (!(order[k] == m ? mv : bv) && (damaged_upcase || !(order[k] == m ? mup : bup)))
				c = order[k];
	if (!c) {
		fsck_fail(v, "both boot regions are damaged, and neither boot sector matches the volume "
			  "(main: %s; backup: %s)", mv, bv);
		return -1;
	}
	const char *which = c == m ? "main" : "backup";
	uint8_t sector0[512];
	struct exfat_boot_sector *bs = (struct exfat_boot_sector *)sector0;
	memcpy(sector0, c->buf, sizeof(sector0));
	restore_constants(bs);
	/* A PercentInUse above 100 becomes 0xFF, "not known", in both rebuilt
	 * regions: the value set at the end of the run goes to the main
	 * region's sector 0 only, and the backup would keep the bad one. */
	if (bs->percent_in_use > 100)
		bs->percent_in_use = 0xFF;
	char taken[128];
	take_from_other(v, bs, c == m ? b : m, taken, sizeof(taken));
	rebuild_region(region, sector0, m, b, c->ss);
	if (use_region(v, region, c->ss) < 0)
		return -1;
	char repair[64];
	snprintf(repair, sizeof(repair), "rebuild both boot regions from the %s boot sector", which);
	if (fsck_problem(v, "boot-regions", "", 0, true, repair,
			 "both boot regions are damaged (main: %s; backup: %s); the %s boot sector matches the volume%s",
			 m->why, b->why, which, taken)) {
		/* The main region first: if the run stops before the backup is
		 * written, the next check finds a valid main region and rewrites
		 * the backup from it. */
		if (write_main_region(v) == 0)
			fsck_dev_write(v, (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * c->ss, region,
				       (size_t)EXFAT_BOOT_REGION_SECTORS * c->ss);
	} else {
		v->boot_writable = false; /* no other write while no region is valid */
	}
	return v->failed ? -1 : 0;
}

int fsck_check_boot(struct vol *v)
{
	struct region m = { .buf = malloc(REGION_MAX) }, b = { .buf = malloc(REGION_MAX) };
	uint8_t *scratch = malloc(REGION_MAX);
	int rc = -1;
	if (!m.buf || !b.buf || !scratch) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	/* The main region, in the sector size its boot sector gives: twelve
	 * 512-byte sectors are read first, the rest only for larger sectors. */
	size_t smallest = (size_t)EXFAT_BOOT_REGION_SECTORS << EXFAT_MIN_SECTOR_SHIFT;
	if (fsck_dev_read(v, 0, m.buf, smallest) < 0)
		goto out;
	const struct exfat_boot_sector *mbs = (const void *)m.buf;
	if (mbs->sector_shift >= EXFAT_MIN_SECTOR_SHIFT && mbs->sector_shift <= EXFAT_MAX_SECTOR_SHIFT) {
		m.ss = 1u << mbs->sector_shift;
		size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * m.ss;
		if (rlen > smallest && fsck_dev_read(v, smallest, m.buf + smallest, rlen - smallest) < 0)
			goto out;
		m.ok = exfat_boot_region_check(m.buf, m.ss, &m.why) == 0;
	} else {
		m.why = "BytesPerSectorShift out of range 9..12";
	}
	if (read_backup(v, &m, &b, scratch) < 0)
		goto out;
	v->boot_writable = true;
	if (!m.ok && !b.ok) {
		bool sig = !memcmp(mbs->fs_name, "EXFAT   ", 8) ||
			   (b.ss && !memcmp(((struct exfat_boot_sector *)b.buf)->fs_name, "EXFAT   ", 8));
		v->r->not_exfat = !sig;
		if (!sig) {
			/* Whatever else is wrong, the missing name is what says so. */
			fsck_fail(v, "not an exFAT filesystem (no \"EXFAT\" signature in either boot sector)");
			goto out;
		}
		if (rebuild_regions(v, &m, &b, scratch) < 0)
			goto out;
	} else if (!m.ok || (v->o->use_backup && b.ok && !exfat_boot_regions_equal(m.buf, b.buf, b.ss))) {
		if (use_region(v, b.buf, b.ss) < 0)
			goto out;
		if (fsck_problem(v, "boot-region", "", 0, true, "restore the main boot region from the backup",
				 m.ok ? "main boot region differs from the backup (-b uses the backup)"
				      : "main boot region damaged: %s", m.why)) {
			if (write_main_region(v) < 0)
				goto out;
		} else {
			v->boot_writable = false; /* no other write over a damaged main region */
		}
	} else {
		size_t rlen = (size_t)EXFAT_BOOT_REGION_SECTORS * m.ss;
		uint64_t backup_at = (uint64_t)EXFAT_BACKUP_BOOT_SECTOR * m.ss;
		if (use_region(v, m.buf, m.ss) < 0)
			goto out;
		if (!b.ok) {
			if (fsck_problem(v, "backup-boot-region", "", backup_at, true, "rewrite the backup from the main region",
					 "backup boot region damaged: %s", b.why))
				fsck_dev_write(v, backup_at, v->boot, rlen);
		} else if (!exfat_boot_regions_equal(m.buf, b.buf, m.ss)) {
			if (fsck_problem(v, "backup-boot-region", "", backup_at, true, "rewrite the backup from the main region",
					 "backup boot region differs from the main region"))
				fsck_dev_write(v, backup_at, v->boot, rlen);
		}
	}
	struct exfat_boot_sector *bs = v->bs;
	v->orig_flags = exfat_le16(bs->volume_flags) & (uint16_t)~(v->dirty_set ? EXFAT_FLAG_VOLUME_DIRTY : 0);
	set_geometry(v, bs);
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
	free(m.buf);
	free(b.buf);
	free(scratch);
	return rc;
}
