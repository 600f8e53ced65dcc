/* Streaming zstd compression into a write callback (libzstd).
 * Kernel interface: none (the callback does the writing). */
#ifndef KBOX_ZSTD_STREAM_H
#define KBOX_ZSTD_STREAM_H

#include <stddef.h>

struct kb_zstd;
/* workers: compression threads (0 = in the caller's thread); reduced to 0
 * when the library is built without them. */
struct kb_zstd *kb_zstd_open(int level, int workers, int (*write)(void *arg, const void *buf, size_t len),
			     void *arg);
int kb_zstd_write(void *z, const void *buf, size_t len);
/* Ends the frame and frees z. Returns 0 or -1. */
int kb_zstd_finish(struct kb_zstd *z);
void kb_zstd_free(struct kb_zstd *z);
int kb_zstd_max_level(void);

#endif
