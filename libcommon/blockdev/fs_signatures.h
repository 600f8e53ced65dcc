/* Filesystem, RAID and partition-table signatures (libblkid): find and
 * erase them so nothing stale survives a format.
 * Kernel interface: reads and writes of the device, done by libblkid. */
#ifndef KBOX_FS_SIGNATURES_H
#define KBOX_FS_SIGNATURES_H

#include <stdint.h>

/* Called for each signature found: type ("ext4", "gpt", ...), the byte
 * offset of its magic relative to the start of the device, and its length. */
typedef void (*kb_signature_fn)(const char *type, uint64_t offset, unsigned magic_len, void *arg);

/* Erases every signature libblkid finds in the region [off, off+size) of
 * fd (size 0: to the end). Returns the number erased, or -1 with errno. */
int kb_signatures_wipe(int fd, uint64_t off, uint64_t size, kb_signature_fn fn, void *arg);
/* NULL when kb_signatures_wipe can work, else why not (libblkid cannot be
 * loaded; kb_signatures_wipe would end the program): ask before writing. */
const char *kb_signatures_unavailable(void);

#endif
