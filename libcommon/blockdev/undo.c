/* Undo files (see undo.h); blocks are compressed by base/zstd_stream.c. */
#include "blockdev/undo.h"

#include "base/zstd_stream.h"
#include "blockdev/blockdev.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define UNDO_MAGIC "KBOXUNDO"
#define UNDO_VERSION 1
#define UNDO_HEADER_SIZE 64
#define UNDO_RECORD_HEAD 24 /* 20 bytes + their CRC */
#define UNDO_FLAG_COMPLETE 1u
#define UNDO_ZSTD_LEVEL 3

/* Saved block -> file offset of its record; open addressing, key+1 so 0 is empty. */
struct saved_slot {
	uint64_t key_plus_one;
	uint64_t record_offset;
};

struct kb_undo {
	int fd, dev_fd;
	uint32_t block_size;
	uint64_t dev_size;
	uint64_t records;
	uint64_t file_end;
	struct saved_slot *slots;
	size_t nslots;
	uint8_t *block, *packed;
	size_t packed_cap;
	struct kb_zstd *zstd;
};

static uint32_t crc_table[256];

static void crc_init(void)
{
	if (crc_table[1])
		return;
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32_buf(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t c = 0xFFFFFFFFu;
	crc_init();
	while (len--)
		c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void encode_header(uint8_t h[UNDO_HEADER_SIZE], uint32_t block_size, uint64_t dev_size,
			  uint64_t records, uint32_t flags)
{
	memset(h, 0, UNDO_HEADER_SIZE);
	memcpy(h, UNDO_MAGIC, 8);
	put32(h + 8, UNDO_VERSION);
	put32(h + 12, block_size);
	put64(h + 16, dev_size);
	put64(h + 24, records);
	put32(h + 32, flags);
	put32(h + 60, crc32_buf(h, 60));
}

static uint32_t block_length(uint32_t block_size, uint64_t dev_size, uint64_t block)
{
	uint64_t start = block * block_size;
	uint64_t left = dev_size > start ? dev_size - start : 0;
	return left < block_size ? (uint32_t)left : block_size;
}

struct kb_undo *kb_undo_create(const char *path, int dev_fd, uint32_t block_size, uint64_t dev_size)
{
	if (block_size < 512 || block_size > (1u << 20) || (block_size & (block_size - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct kb_undo *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->dev_fd = dev_fd;
	u->block_size = block_size;
	u->dev_size = dev_size;
	u->nslots = 1024;
	u->slots = calloc(u->nslots, sizeof(*u->slots));
	u->block = malloc(block_size);
	u->packed_cap = kb_zstd_block_bound(block_size);
	u->packed = malloc(u->packed_cap);
	u->zstd = kb_zstd_block_open(UNDO_ZSTD_LEVEL);
	u->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!u->slots || !u->block || !u->packed || !u->zstd || u->fd < 0) {
		int e = u->fd < 0 ? errno : ENOMEM;
		if (u->fd >= 0)
			close(u->fd);
		kb_zstd_free(u->zstd);
		free(u->slots), free(u->block), free(u->packed), free(u);
		errno = e;
		return NULL;
	}
	uint8_t h[UNDO_HEADER_SIZE];
	encode_header(h, block_size, dev_size, 0, 0);
	if (kb_pwrite_full(u->fd, h, sizeof(h), 0) < 0 || fsync(u->fd) < 0) {
		int e = errno;
		close(u->fd);
		kb_zstd_free(u->zstd);
		free(u->slots), free(u->block), free(u->packed), free(u);
		errno = e;
		return NULL;
	}
	u->file_end = UNDO_HEADER_SIZE;
	return u;
}

static struct saved_slot *find_slot(struct saved_slot *slots, size_t nslots, uint64_t block)
{
	size_t i = (size_t)((block * 0x9E3779B97F4A7C15ull) >> 20) & (nslots - 1);
	while (slots[i].key_plus_one && slots[i].key_plus_one != block + 1)
		i = (i + 1) & (nslots - 1);
	return &slots[i];
}

static int grow_slots(struct kb_undo *u)
{
	size_t n = u->nslots * 2;
	struct saved_slot *s = calloc(n, sizeof(*s));
	if (!s)
		return -1;
	for (size_t i = 0; i < u->nslots; i++)
		if (u->slots[i].key_plus_one)
			*find_slot(s, n, u->slots[i].key_plus_one - 1) = u->slots[i];
	free(u->slots);
	u->slots = s;
	u->nslots = n;
	return 0;
}

static int save_block(struct kb_undo *u, uint64_t block)
{
	struct saved_slot *slot = find_slot(u->slots, u->nslots, block);
	if (slot->key_plus_one)
		return 0;
	uint32_t len = block_length(u->block_size, u->dev_size, block);
	if (kb_pread_full(u->dev_fd, u->block, len, block * u->block_size) < 0)
		return -1;
	ssize_t packed = kb_zstd_block_pack(u->zstd, u->packed, u->packed_cap, u->block, len);
	if (packed < 0)
		return -1;
	uint8_t head[UNDO_RECORD_HEAD];
	put64(head, block);
	put32(head + 8, (uint32_t)packed);
	put32(head + 12, crc32_buf(u->block, len));
	put32(head + 16, 0); /* final CRC, filled in by kb_undo_close */
	put32(head + 20, crc32_buf(head, 20));
	uint64_t at = u->file_end;
	if (kb_pwrite_full(u->fd, head, sizeof(head), at) < 0 ||
	    kb_pwrite_full(u->fd, u->packed, packed, at + sizeof(head)) < 0)
		return -1;
	/* The old content must be on disk before the device block changes. */
	if (fdatasync(u->fd) < 0)
		return -1;
	u->file_end = at + sizeof(head) + packed;
	slot->key_plus_one = block + 1;
	slot->record_offset = at;
	u->records++;
	if (u->records * 2 > u->nslots && grow_slots(u) < 0)
		return -1;
	return 0;
}

int kb_undo_save(struct kb_undo *u, uint64_t offset, uint64_t len)
{
	if (!len)
		return 0;
	if (offset + len < offset || offset + len > u->dev_size) {
		errno = ERANGE;
		return -1;
	}
	for (uint64_t b = offset / u->block_size; b <= (offset + len - 1) / u->block_size; b++)
		if (save_block(u, b) < 0)
			return -1;
	return 0;
}

uint64_t kb_undo_blocks(const struct kb_undo *u)
{
	return u->records;
}

int kb_undo_close(struct kb_undo *u)
{
	int rc = 0, err = 0;
	for (size_t i = 0; i < u->nslots && !rc; i++) {
		if (!u->slots[i].key_plus_one)
			continue;
		uint64_t block = u->slots[i].key_plus_one - 1, at = u->slots[i].record_offset;
		uint32_t len = block_length(u->block_size, u->dev_size, block);
		uint8_t head[UNDO_RECORD_HEAD];
		if (kb_pread_full(u->dev_fd, u->block, len, block * u->block_size) < 0 ||
		    kb_pread_full(u->fd, head, sizeof(head), at) < 0) {
			rc = -1, err = errno;
			break;
		}
		put32(head + 16, crc32_buf(u->block, len));
		put32(head + 20, crc32_buf(head, 20));
		if (kb_pwrite_full(u->fd, head + 16, 8, at + 16) < 0)
			rc = -1, err = errno;
	}
	if (!rc) {
		uint8_t h[UNDO_HEADER_SIZE];
		encode_header(h, u->block_size, u->dev_size, u->records, UNDO_FLAG_COMPLETE);
		if (fsync(u->fd) < 0 || kb_pwrite_full(u->fd, h, sizeof(h), 0) < 0 || fsync(u->fd) < 0)
			rc = -1, err = errno;
	}
	if (close(u->fd) < 0 && !rc)
		rc = -1, err = errno;
	kb_zstd_free(u->zstd);
	free(u->slots), free(u->block), free(u->packed), free(u);
	errno = err;
	return rc;
}

static int read_header(int fd, struct kb_undo_info *info)
{
	uint8_t h[UNDO_HEADER_SIZE];
	ssize_t n = pread(fd, h, sizeof(h), 0);
	if (n < 0)
		return -1;
	if (n < (ssize_t)sizeof(h) || memcmp(h, UNDO_MAGIC, 8)) {
		errno = EINVAL;
		return -1;
	}
	if (get32(h + 60) != crc32_buf(h, 60) || get32(h + 8) != UNDO_VERSION) {
		errno = EBADMSG;
		return -1;
	}
	info->block_size = get32(h + 12);
	info->dev_size = get64(h + 16);
	info->records = get64(h + 24);
	info->complete = get32(h + 32) & UNDO_FLAG_COMPLETE;
	if (info->block_size < 512 || info->block_size > (1u << 20) ||
	    (info->block_size & (info->block_size - 1))) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

int kb_undo_info(const char *path, struct kb_undo_info *info)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = read_header(fd, info);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* Reads and verifies the record at *at into block; its length on the device
 * in *len, its number in *blk. 0, or -1 with errno (EBADMSG: damaged or cut). */
static int read_record(int fd, const struct kb_undo_info *info, uint64_t *at, uint8_t head[UNDO_RECORD_HEAD],
		       uint8_t *packed, size_t packed_cap, uint8_t *block, uint64_t *blk, uint32_t *len)
{
	if (kb_pread_full(fd, head, UNDO_RECORD_HEAD, *at) < 0) {
		errno = EBADMSG;
		return -1;
	}
	*blk = get64(head);
	uint32_t plen = get32(head + 8);
	if (get32(head + 20) != crc32_buf(head, 20) || plen > packed_cap ||
	    *blk >= (info->dev_size + info->block_size - 1) / info->block_size ||
	    kb_pread_full(fd, packed, plen, *at + UNDO_RECORD_HEAD) < 0) {
		errno = EBADMSG;
		return -1;
	}
	*len = block_length(info->block_size, info->dev_size, *blk);
	ssize_t got = kb_zstd_block_unpack(block, info->block_size, packed, plen);
	if (got < 0 || (size_t)got != *len || crc32_buf(block, *len) != get32(head + 12)) {
		errno = EBADMSG;
		return -1;
	}
	*at += UNDO_RECORD_HEAD + plen;
	return 0;
}

/* Whether the bytes from at to the end are what an interrupted append leaves:
 * a record cut short (too short for its head, or shorter than its verified
 * head says), or zeros where a crash left the file longer than its data. */
static bool is_cut_tail(int fd, uint64_t at, uint64_t file_size, uint8_t *buf, size_t buf_cap)
{
	uint64_t left = file_size - at;
	if (left < UNDO_RECORD_HEAD)
		return true;
	uint8_t head[UNDO_RECORD_HEAD];
	if (kb_pread_full(fd, head, sizeof(head), at) < 0)
		return false;
	if (get32(head + 20) == crc32_buf(head, 20) && get32(head + 8) <= buf_cap &&
	    left < UNDO_RECORD_HEAD + (uint64_t)get32(head + 8))
		return true;
	if (left > buf_cap || kb_pread_full(fd, buf, left, at) < 0)
		return false;
	for (uint64_t i = 0; i < left; i++)
		if (buf[i])
			return false;
	return true;
}

/* Walks the records of an undo file; with write set, restores them.
 * A complete file holds exactly info->records records. A file from an
 * interrupted run says 0 and holds every record written before the stop: each
 * was flushed before its block on the device changed, so all of them are
 * walked, and a cut last record (its block never written) ends the walk;
 * anything else unreadable is damage. */
static int walk_records(int fd, const struct kb_undo_info *info, uint64_t file_size, int dev_fd,
			uint64_t dev_size, bool write, bool check_final, struct kb_undo_result *res,
			uint8_t *packed, size_t packed_cap, uint8_t *block, uint8_t *current)
{
	uint64_t at = UNDO_HEADER_SIZE;
	for (uint64_t r = 0; info->complete ? r < info->records : at < file_size; r++) {
		uint8_t head[UNDO_RECORD_HEAD];
		uint64_t blk;
		uint32_t len;
		if (read_record(fd, info, &at, head, packed, packed_cap, block, &blk, &len) < 0) {
			if (info->complete || !is_cut_tail(fd, at, file_size, packed, packed_cap)) {
				errno = EBADMSG;
				return -1;
			}
			res->cut_bytes = file_size - at;
			break;
		}
		/* The device may be smaller than the recorded one (with force). */
		if (blk * info->block_size + len > dev_size) {
			errno = ERANGE;
			return -1;
		}
		if (check_final) {
			if (kb_pread_full(dev_fd, current, len, blk * info->block_size) < 0)
				return -1;
			if (crc32_buf(current, len) != get32(head + 16))
				res->changed_since++;
		}
		if (write) {
			if (kb_pwrite_full(dev_fd, block, len, blk * info->block_size) < 0)
				return -1;
			res->restored++;
		}
	}
	return 0;
}

int kb_undo_rollback(const char *path, int dev_fd, uint64_t dev_size, bool force,
		     struct kb_undo_result *result)
{
	struct kb_undo_info info;
	struct kb_undo_result res = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = -1, err = 0;
	uint8_t *packed = NULL, *block = NULL, *current = NULL;
	struct stat st;
	if (read_header(fd, &info) < 0 || fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	res.interrupted = !info.complete;
	res.size_differs = info.dev_size != dev_size;
	res.undo_dev_size = info.dev_size;
	if ((info.dev_size != dev_size || !info.complete) && !force) {
		err = ESTALE;
		goto out;
	}
	size_t packed_cap = kb_zstd_block_bound(info.block_size);
	packed = malloc(packed_cap);
	block = malloc(info.block_size);
	current = malloc(info.block_size);
	if (!packed || !block || !current) {
		err = ENOMEM;
		goto out;
	}
	/* Verify everything before the first write, so a damaged file changes nothing. */
	if (walk_records(fd, &info, (uint64_t)st.st_size, dev_fd, dev_size, false, info.complete, &res,
			 packed, packed_cap, block, current) < 0) {
		err = errno;
		goto out;
	}
	if (res.changed_since && !force) {
		err = ESTALE;
		goto out;
	}
	struct kb_undo_result verified = res;
	res = (struct kb_undo_result){0};
	if (walk_records(fd, &info, (uint64_t)st.st_size, dev_fd, dev_size, true, false, &res, packed,
			 packed_cap, block, current) < 0 ||
	    fsync(dev_fd) < 0) {
		err = errno;
		goto out;
	}
	res.changed_since = verified.changed_since;
	res.interrupted = verified.interrupted;
	res.size_differs = verified.size_differs;
	res.undo_dev_size = verified.undo_dev_size;
	rc = 0;
out:
	if (result)
		*result = res;
	free(packed), free(block), free(current);
	close(fd);
	errno = err;
	return rc;
}
