/* zstd, loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <zstd.h>
#include <stddef.h>

static struct kb_lazy_lib lib = { .soname = "libzstd.so.1" };

size_t ZSTD_compressBound(size_t srcSize)
{
	KB_LAZY_FN(lib, ZSTD_compressBound);
	return real ? real(srcSize) : 0;
}

size_t ZSTD_compressCCtx(ZSTD_CCtx *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize, int compressionLevel)
{
	KB_LAZY_FN(lib, ZSTD_compressCCtx);
	return real ? real(cctx, dst, dstCapacity, src, srcSize, compressionLevel) : (size_t)-1;
}

ZSTD_CCtx *ZSTD_createCCtx(void)
{
	KB_LAZY_FN(lib, ZSTD_createCCtx);
	return real ? real() : NULL;
}

size_t ZSTD_decompress(void *dst, size_t dstCapacity, const void *src, size_t compressedSize)
{
	KB_LAZY_FN(lib, ZSTD_decompress);
	return real ? real(dst, dstCapacity, src, compressedSize) : (size_t)-1;
}

size_t ZSTD_freeCCtx(ZSTD_CCtx *cctx)
{
	KB_LAZY_FN(lib, ZSTD_freeCCtx);
	return real ? real(cctx) : 0;
}

unsigned ZSTD_isError(size_t code)
{
	KB_LAZY_FN(lib, ZSTD_isError);
	return real ? real(code) : 1;
}
