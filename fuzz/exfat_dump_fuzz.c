/* libFuzzer target: the input is the start of a 1 MiB exFAT volume (the rest
 * reads as zeros), read as dump.exfat and exfat2img read one: boot regions,
 * the root's entries and bitmap, path lookups with their chains and bitmap
 * bits, and the metadata image written sparse and as a stream. The stream,
 * read back, must give the sparse image byte for byte. The input is also
 * read back as if it were an image or stream itself. */
#include "exfat/exfat_dump.h"
#include "exfat/exfat_metaimage.h"
#include "fuzz_volume.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VOLUME_BYTES (1u << 20)

static int append(void *arg, const void *buf, size_t len)
{
	return write(*(int *)arg, buf, len) == (ssize_t)len ? 0 : -1;
}

static void walk(struct exfat_reader *r, struct exfat_root *root)
{
	static const char *const paths[] = { "/", "/a.txt", "/dir", "/dir/b.txt", "/DIR/SUB/c.bin", "/x/y" };
	struct exfat_entry_set s;
	for (uint32_t pos = 0; exfat_dir_next(&root->dir, &pos, &s);) {
		char name[EXFAT_MAX_NAME_LEN * 3 + 1];
		exfat_set_name_utf8(&s, name, sizeof(name));
		exfat_dir_entry_pos(r, &root->dir, s.index);
	}
	exfat_root_bitmap_used(r, root);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct exfat_dir dir;
		char err[256];
		if (exfat_lookup(r, root, paths[i], &dir, &s, err, sizeof(err)) != 1)
			continue;
		struct exfat_chain ch;
		if (s.has_stream && exfat_chain_follow(r, s.first_cluster, s.stream_flags & EXFAT_SF_NO_FAT_CHAIN,
						       exfat_reader_clusters_for(r, s.data_length), 0, &ch) == 0) {
			for (size_t k = 0; k < ch.nruns; k++)
				for (uint32_t c = 0; c < ch.runs[k].count && c < 4096; c++)
					exfat_root_bitmap_bit(r, root, ch.runs[k].first + c);
			exfat_chain_free(&ch);
		}
		exfat_dir_free(&dir);
	}
}

/* Writes the metadata image both ways and checks the stream reads back
 * as the sparse image. */
static void images(struct exfat_reader *r)
{
	struct exfat_metaimage m;
	char err[512];
	if (exfat_metaimage_scan(r, &m, err, sizeof(err)) < 0)
		return;
	int sparse = memfd_create("sparse", 0), stream = memfd_create("stream", 0), spool = -1;
	uint64_t written;
	struct exfat_image_info info;
	if (sparse < 0 || stream < 0)
		abort();
	if (exfat_metaimage_write_sparse(&m, sparse, &written, err, sizeof(err)) < 0 ||
	    exfat_metaimage_write_stream(&m, append, &stream, &written, err, sizeof(err)) < 0)
		abort();
	lseek(stream, 0, SEEK_SET);
	if (exfat_image_unpack(stream, &spool, &info, err, sizeof(err)) < 0 || info.size != m.image_size) {
		fprintf(stderr, "stream does not read back: %s\n", err);
		abort();
	}
	static uint8_t a[VOLUME_BYTES], b[VOLUME_BYTES];
	size_t n = m.image_size < VOLUME_BYTES ? (size_t)m.image_size : VOLUME_BYTES;
	if (pread(sparse, a, n, 0) != (ssize_t)n || pread(spool, b, n, 0) != (ssize_t)n || memcmp(a, b, n)) {
		fprintf(stderr, "stream and sparse image differ\n");
		abort();
	}
	close(spool);
	close(sparse);
	close(stream);
	exfat_metaimage_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > VOLUME_BYTES)
		return 0;
	int fd = fuzz_volume(data, size, VOLUME_BYTES);
	struct exfat_reader r;
	char err[512];
	if (exfat_reader_open(&r, fd, VOLUME_BYTES, NULL, err, sizeof(err)) == 0) {
		struct exfat_root root;
		if (exfat_root_load(&r, &root) == 0) {
			walk(&r, &root);
			exfat_root_free(&root);
		}
		images(&r);
		exfat_reader_free(&r);
	}
	/* The input as an image or stream to restore. */
	int in = fuzz_volume(data, size, size), spool = -1;
	struct exfat_image_info info;
	if (exfat_image_unpack(in, &spool, &info, err, sizeof(err)) == 0) {
		exfat_image_check(spool, info.size, &info, err, sizeof(err));
		close(spool);
	}
	close(in);
	close(fd);
	return 0;
}
