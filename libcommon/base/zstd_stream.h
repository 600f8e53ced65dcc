/* zstd compression (libzstd): a stream into a write callback (cores,
 * metadata images), blocks compressed one by one (undo files), and streams
 * decompressed as they come (metadata images read back). Every zstd call of
 * kbox is in zstd_stream.c.
 * Kernel interface: none (the callback and the caller do the I/O). */
#ifndef KBOX_ZSTD_STREAM_H
#define KBOX_ZSTD_STREAM_H

#include <stdbool.h>
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
/* A compression level as given on a command line: 1 to kb_zstd_max_level().
 * The level, or -1 for anything else. */
int kb_zstd_parse_level(const char *s);

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

/* Decompression: compressed bytes are pushed in as they come, the
 * decompressed ones go to write. One or more frames, back to back. */
struct kb_unzstd;
struct kb_unzstd *kb_unzstd_open(int (*write)(void *arg, const void *buf, size_t len), void *arg);
/* 0, or -1 with errno: EBADMSG for data that is not zstd or is damaged,
 * else the write callback's. */
int kb_unzstd_write(struct kb_unzstd *z, const void *buf, size_t len);
/* Checks that the input ended with a complete frame (EBADMSG: cut short)
 * and frees z. 0 or -1. */
int kb_unzstd_finish(struct kb_unzstd *z);
void kb_unzstd_free(struct kb_unzstd *z);
/* Whether buf starts with the zstd frame magic number. */
bool kb_zstd_is_frame(const void *buf, size_t len);

#endif
