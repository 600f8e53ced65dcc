/* Signature probing and wiping through libblkid (the only libblkid user). */
#include "blockdev/fs_signatures.h"
#include "base/libraries.h"

#include <errno.h>
#include <stdlib.h>

KB_DLOPEN_NOTE(KB_LIBBLKID);

const char *kb_signatures_unavailable(void)
{
	return kb_lib_open(KB_LIB_BLKID) ? NULL : kb_lib_error(KB_LIB_BLKID);
}

int kb_signatures_wipe(int fd, uint64_t off, uint64_t size, kb_signature_fn fn, void *arg)
{
	const struct kb_libblkid *blkid = kb_libblkid();
	blkid_probe pr = blkid->blkid_new_probe();
	if (!pr) {
		errno = ENOMEM;
		return -1;
	}
	if (blkid->blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)size) < 0) {
		blkid->blkid_free_probe(pr);
		errno = EIO;
		return -1;
	}
	blkid->blkid_probe_enable_superblocks(pr, 1);
	blkid->blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_MAGIC | BLKID_SUBLKS_TYPE |
							 BLKID_SUBLKS_BADCSUM);
	blkid->blkid_probe_enable_partitions(pr, 1);
	blkid->blkid_probe_set_partitions_flags(pr, BLKID_PARTS_MAGIC | BLKID_PARTS_FORCE_GPT);

	int erased = 0, rc;
	while ((rc = blkid->blkid_do_probe(pr)) == 0) {
		const char *type = NULL, *offstr = NULL;
		size_t len = 0;
		const char *magic = NULL;
		if (blkid->blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0) {
			blkid->blkid_probe_lookup_value(pr, "SBMAGIC_OFFSET", &offstr, NULL);
			blkid->blkid_probe_lookup_value(pr, "SBMAGIC", &magic, &len);
		} else if (blkid->blkid_probe_lookup_value(pr, "PTTYPE", &type, NULL) == 0) {
			blkid->blkid_probe_lookup_value(pr, "PTMAGIC_OFFSET", &offstr, NULL);
			blkid->blkid_probe_lookup_value(pr, "PTMAGIC", &magic, &len);
		} else {
			continue;
		}
		if (!offstr || !magic)
			continue;
		uint64_t magic_off = strtoull(offstr, NULL, 10);
		/* Erases the magic and steps the probe back to look again. */
		if (blkid->blkid_do_wipe(pr, 0) != 0) {
			int e = errno ? errno : EIO;
			blkid->blkid_free_probe(pr);
			errno = e;
			return -1;
		}
		erased++;
		if (fn)
			fn(type, off + magic_off, (unsigned)len, arg);
	}
	blkid->blkid_free_probe(pr);
	if (rc < 0) {
		errno = EIO;
		return -1;
	}
	return erased;
}
