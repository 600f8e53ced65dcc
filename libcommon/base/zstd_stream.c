/* zstd streams and blocks (see zstd_stream.h). */
#include "base/zstd_stream.h"
#include "base/libraries.h"

#include "base/parse.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

KB_DLOPEN_NOTE(KB_LIBZSTD);

struct kb_zstd {
	const struct kb_libzstd *zstd;
	ZSTD_CCtx *cctx;
	int level;                      /* of blocks */
	int (*write)(void *arg, const void *buf, size_t len);
	void *arg;
	void *out;
	size_t out_size;
};

/* A context and its compressor; NULL with errno. */
static struct kb_zstd *new_context(void)
{
	const struct kb_libzstd *zstd = kb_libzstd();
	struct kb_zstd *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->zstd = zstd;
	z->cctx = zstd->ZSTD_createCCtx();
	if (!z->cctx) {
		free(z);
		errno = ENOMEM;
		return NULL;
	}
	return z;
}

struct kb_zstd *kb_zstd_open(int level, int workers, int (*write)(void *arg, const void *buf, size_t len),
			     void *arg)
{
	struct kb_zstd *z = new_context();
	if (!z)
		return NULL;
	const struct kb_libzstd *zstd = z->zstd;
	z->out_size = zstd->ZSTD_CStreamOutSize();
	z->out = malloc(z->out_size);
	z->write = write;
	z->arg = arg;
	if (!z->out || zstd->ZSTD_isError(zstd->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level))) {
		int e = z->out ? EINVAL : ENOMEM;
		kb_zstd_free(z);
		errno = e;
		return NULL;
	}
	zstd->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_checksumFlag, 1);
	if (workers > 0 && zstd->ZSTD_isError(zstd->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_nbWorkers, workers)))
		zstd->ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_nbWorkers, 0);
	return z;
}

static int drive(struct kb_zstd *z, const void *buf, size_t len, ZSTD_EndDirective mode)
{
	const struct kb_libzstd *zstd = z->zstd;
	ZSTD_inBuffer in = { buf, len, 0 };
	for (;;) {
		ZSTD_outBuffer o = { z->out, z->out_size, 0 };
		size_t left = zstd->ZSTD_compressStream2(z->cctx, &o, &in, mode);
		if (zstd->ZSTD_isError(left)) {
			errno = EIO;
			return -1;
		}
		if (o.pos && z->write(z->arg, z->out, o.pos) < 0)
			return -1;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return 0;
	}
}

int kb_zstd_write(void *arg, const void *buf, size_t len)
{
	return drive(arg, buf, len, ZSTD_e_continue);
}

int kb_zstd_finish(struct kb_zstd *z)
{
	int rc = drive(z, NULL, 0, ZSTD_e_end);
	kb_zstd_free(z);
	return rc;
}

void kb_zstd_free(struct kb_zstd *z)
{
	if (!z)
		return;
	z->zstd->ZSTD_freeCCtx(z->cctx);
	free(z->out);
	free(z);
}

int kb_zstd_max_level(void)
{
	return kb_libzstd()->ZSTD_maxCLevel();
}

size_t kb_zstd_block_bound(size_t len)
{
	return kb_libzstd()->ZSTD_compressBound(len);
}

struct kb_zstd *kb_zstd_block_open(int level)
{
	struct kb_zstd *z = new_context();
	if (z)
		z->level = level;
	return z;
}

ssize_t kb_zstd_block_pack(struct kb_zstd *z, void *dst, size_t cap, const void *src, size_t len)
{
	size_t n = z->zstd->ZSTD_compressCCtx(z->cctx, dst, cap, src, len, z->level);
	if (z->zstd->ZSTD_isError(n)) {
		errno = EIO;
		return -1;
	}
	return (ssize_t)n;
}

ssize_t kb_zstd_block_unpack(void *dst, size_t cap, const void *src, size_t len)
{
	const struct kb_libzstd *zstd = kb_libzstd();
	size_t n = zstd->ZSTD_decompress(dst, cap, src, len);
	if (zstd->ZSTD_isError(n)) {
		errno = EBADMSG;
		return -1;
	}
	return (ssize_t)n;
}

int kb_zstd_parse_level(const char *s)
{
	uint64_t level;
	return kb_parse_u64_range(s, 1, (uint64_t)kb_zstd_max_level(), &level) < 0 ? -1 : (int)level;
}

struct kb_unzstd {
	const struct kb_libzstd *zstd;
	ZSTD_DCtx *dctx;
	int (*write)(void *arg, const void *buf, size_t len);
	void *arg;
	void *out;
	size_t out_size;
	size_t pending;        /* last hint: 0 once a frame is complete and flushed */
};

struct kb_unzstd *kb_unzstd_open(int (*write)(void *arg, const void *buf, size_t len), void *arg)
{
	const struct kb_libzstd *zstd = kb_libzstd();
	struct kb_unzstd *z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->zstd = zstd;
	z->dctx = zstd->ZSTD_createDCtx();
	z->out_size = zstd->ZSTD_DStreamOutSize();
	z->out = malloc(z->out_size);
	z->write = write;
	z->arg = arg;
	z->pending = 1;        /* no frame yet */
	if (!z->dctx || !z->out) {
		kb_unzstd_free(z);
		errno = ENOMEM;
		return NULL;
	}
	return z;
}

int kb_unzstd_write(struct kb_unzstd *z, const void *buf, size_t len)
{
	ZSTD_inBuffer in = { buf, len, 0 };
	/* Until the input is used up and nothing more comes out of it. */
	for (;;) {
		ZSTD_outBuffer o = { z->out, z->out_size, 0 };
		size_t before = in.pos;
		size_t hint = z->zstd->ZSTD_decompressStream(z->dctx, &o, &in);
		if (z->zstd->ZSTD_isError(hint)) {
			errno = EBADMSG;
			return -1;
		}
		/* A call that found nothing to do after a frame ended asks for
		 * the next frame's header: that is not a frame left unfinished. */
		if (in.pos != before || o.pos)
			z->pending = hint;
		if (o.pos && z->write(z->arg, z->out, o.pos) < 0)
			return -1;
		if (in.pos == in.size && o.pos < o.size)
			return 0;
	}
}

int kb_unzstd_finish(struct kb_unzstd *z)
{
	int rc = z->pending ? -1 : 0;
	kb_unzstd_free(z);
	if (rc < 0)
		errno = EBADMSG;
	return rc;
}

void kb_unzstd_free(struct kb_unzstd *z)
{
	if (!z)
		return;
	z->zstd->ZSTD_freeDCtx(z->dctx);
	free(z->out);
	free(z);
}

bool kb_zstd_is_frame(const void *buf, size_t len)
{
	static const unsigned char magic[4] = { 0x28, 0xB5, 0x2F, 0xFD };
	return len >= 4 && !memcmp(buf, magic, 4);
}
