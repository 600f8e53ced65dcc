/* zstd compression (libzstd): a stream into a write callback (cores), and
 * blocks compressed one by one (undo files). Every zstd call of kbox is in
 * zstd_stream.c.
 * Kernel interface: none (the callback and the caller do the I/O). */
#ifndef KBOX_ZSTD_STREAM_H
#define KBOX_ZSTD_STREAM_H

#include <stddef.h>
#include <sys/types.h>

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

/* The most a block of len bytes can take compressed. */
size_t kb_zstd_block_bound(size_t len);
/* A context that compresses blocks at level, each on its own; free it with
 * kb_zstd_free. NULL with errno on failure. */
struct kb_zstd *kb_zstd_block_open(int level);
/* Compresses src (len bytes) into dst (cap bytes, at least the bound):
 * the compressed size, or -1 with errno. */
ssize_t kb_zstd_block_pack(struct kb_zstd *z, void *dst, size_t cap, const void *src, size_t len);
/* Decompresses a block packed so into dst: its size, or -1 with errno
 * EBADMSG when src is no such block or it would not fit in cap bytes. */
ssize_t kb_zstd_block_unpack(void *dst, size_t cap, const void *src, size_t len);

#endif
