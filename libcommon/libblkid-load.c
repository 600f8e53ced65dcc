/* libblkid, loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <blkid.h>
#include <stddef.h>

static struct kb_lazy_lib lib = { .soname = "libblkid.so.1" };

int blkid_do_probe(blkid_probe pr)
{
	KB_LAZY_FN(lib, blkid_do_probe);
	return real ? real(pr) : -1;
}

int blkid_do_wipe(blkid_probe pr, int dryrun)
{
	KB_LAZY_FN(lib, blkid_do_wipe);
	return real ? real(pr, dryrun) : -1;
}

void blkid_free_probe(blkid_probe pr)
{
	KB_LAZY_FN(lib, blkid_free_probe);
	if (real)
		real(pr);
}

blkid_probe blkid_new_probe(void)
{
	KB_LAZY_FN(lib, blkid_new_probe);
	return real ? real() : NULL;
}

int blkid_probe_enable_partitions(blkid_probe pr, int enable)
{
	KB_LAZY_FN(lib, blkid_probe_enable_partitions);
	return real ? real(pr, enable) : -1;
}

int blkid_probe_enable_superblocks(blkid_probe pr, int enable)
{
	KB_LAZY_FN(lib, blkid_probe_enable_superblocks);
	return real ? real(pr, enable) : -1;
}

int blkid_probe_lookup_value(blkid_probe pr, const char *name, const char * *data, size_t *len)
{
	KB_LAZY_FN(lib, blkid_probe_lookup_value);
	return real ? real(pr, name, data, len) : -1;
}

int blkid_probe_set_device(blkid_probe pr, int fd, blkid_loff_t off, blkid_loff_t size)
{
	KB_LAZY_FN(lib, blkid_probe_set_device);
	return real ? real(pr, fd, off, size) : -1;
}

int blkid_probe_set_partitions_flags(blkid_probe pr, int flags)
{
	KB_LAZY_FN(lib, blkid_probe_set_partitions_flags);
	return real ? real(pr, flags) : -1;
}

int blkid_probe_set_superblocks_flags(blkid_probe pr, int flags)
{
	KB_LAZY_FN(lib, blkid_probe_set_superblocks_flags);
	return real ? real(pr, flags) : -1;
}
