/* exFAT metadata images (see exfat_metaimage.h). */
#include "exfat/exfat_metaimage.h"

#include "base/zstd_stream.h"
#include "blockdev/blockdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SET_PAGE_BYTES 4096u
#define SET_PAGE_BITS (SET_PAGE_BYTES * 8u)
#define COPY_CHUNK (1u << 20)
#define MAX_UPCASE_BYTES (128u << 10)
#define MAX_SET_BYTES (256u * EXFAT_ENTRY_SIZE)   /* a primary and 255 secondaries */
#define RAW_BLOCK 4096u

/* Stream run codes. */
enum { RUN_COPY_1 = 1, RUN_COPY_N = 2, RUN_SKIP_1 = 3, RUN_SKIP_N = 4 };

/* ---- cluster sets -------------------------------------------------------- */

static int set_init(struct exfat_cluster_set *s, uint32_t cluster_count)
{
	s->npages = ((uint64_t)cluster_count + SET_PAGE_BITS - 1) / SET_PAGE_BITS + 1;
	s->pages = calloc(s->npages, sizeof(*s->pages));
	s->count = 0;
	return s->pages ? 0 : -1;
}

static void set_free(struct exfat_cluster_set *s)
{
	for (size_t p = 0; s->pages && p < s->npages; p++)
		free(s->pages[p]);
	free(s->pages);
	memset(s, 0, sizeof(*s));
}

/* Adds cluster c (inside the heap); -1 when out of memory. */
static int set_add(struct exfat_cluster_set *s, uint32_t c)
{
	uint64_t k = c - EXFAT_FIRST_CLUSTER;
	uint8_t **page = &s->pages[k / SET_PAGE_BITS];
	if (!*page && !(*page = calloc(1, SET_PAGE_BYTES)))
		return -1;
	if (!exfat_bitmap_test(*page, (uint32_t)(k % SET_PAGE_BITS))) {
		exfat_bitmap_set(*page, (uint32_t)(k % SET_PAGE_BITS));
		s->count++;
	}
	return 0;
}

bool exfat_cluster_set_has(const struct exfat_cluster_set *s, uint32_t c)
{
	if (c < EXFAT_FIRST_CLUSTER)
		return false;
	uint64_t k = c - EXFAT_FIRST_CLUSTER;
	return k / SET_PAGE_BITS < s->npages && s->pages[k / SET_PAGE_BITS] &&
	       exfat_bitmap_test(s->pages[k / SET_PAGE_BITS], (uint32_t)(k % SET_PAGE_BITS));
}

static int set_add_chain(struct exfat_cluster_set *s, const struct exfat_chain *ch)
{
	for (size_t i = 0; i < ch->nruns; i++)
		for (uint32_t k = 0; k < ch->runs[i].count; k++)
			if (set_add(s, ch->runs[i].first + k) < 0)
				return -1;
	return 0;
}

/* Length of the run of heap clusters from index i (cluster i + 2) that are
 * all in the set or all out of it, up to index end; *in tells which. */
static uint64_t set_run(const struct exfat_cluster_set *s, uint64_t i, uint64_t end, bool *in)
{
	*in = exfat_cluster_set_has(s, (uint32_t)(i + EXFAT_FIRST_CLUSTER));
	uint64_t j = i + 1;
	while (j < end) {
		const uint8_t *page = s->pages[j / SET_PAGE_BITS];
		if (!page) {
			if (*in)
				break;
			j = (j / SET_PAGE_BITS + 1) * SET_PAGE_BITS;     /* a page with nothing in it */
			continue;
		}
		uint32_t bit = (uint32_t)(j % SET_PAGE_BITS);
		if (bit % 8 == 0 && page[bit / 8] == (*in ? 0xff : 0x00)) {
			j += 8;
			continue;
		}
		if (exfat_bitmap_test(page, bit) != *in)
			break;
		j++;
	}
	return (j < end ? j : end) - i;
}

/* ---- finding the metadata ------------------------------------------------ */

struct dir_job {
	uint32_t first;
	bool contiguous;
	uint64_t bytes;                /* DataLength; 0 for the root (to the end-of-chain mark) */
};

struct scan {
	struct exfat_metaimage *m;
	struct exfat_reader *r;
	struct dir_job *jobs;
	size_t njobs, cap;
};

static int push_job(struct scan *sc, struct dir_job job)
{
	if (sc->njobs == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 64;
		struct dir_job *n = realloc(sc->jobs, cap * sizeof(*n));
		if (!n)
			return -1;
		sc->jobs = n;
		sc->cap = cap;
	}
	sc->jobs[sc->njobs++] = job;
	return 0;
}

/* A structure the root names (bitmap, up-case table): its clusters as the
 * FAT chains them, which is how fsck.exfat reads it, and those in a row
 * from its first cluster, which is how exfatprogs reads it. */
static int mark_structure(struct scan *sc, uint32_t first, uint64_t clusters)
{
	for (int contiguous = 0; contiguous <= 1; contiguous++) {
		struct exfat_chain ch;
		if (exfat_chain_follow(sc->r, first, contiguous, clusters, 0, &ch) < 0)
			return -1;
		int rc = set_add_chain(&sc->m->meta, &ch);
		exfat_chain_free(&ch);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* The clusters of a directory's chain up to the first one already read as
 * part of another directory (whose entries were followed then), and enough
 * of that one to finish an entry set that runs into it. Returns how many
 * clusters are new. */
static uint64_t cut_at_seen(struct scan *sc, struct exfat_chain *ch)
{
	uint64_t fresh = 0;
	for (size_t i = 0; i < ch->nruns; i++)
		for (uint32_t k = 0; k < ch->runs[i].count; k++, fresh++)
			if (exfat_cluster_set_has(&sc->m->dirs, ch->runs[i].first + k)) {
				uint64_t keep = fresh + exfat_reader_clusters_for(sc->r, MAX_SET_BYTES);
				if (keep < ch->clusters)
					exfat_chain_cut(ch, keep);
				return fresh;
			}
	return fresh;
}

static int scan_dir(struct scan *sc, const struct dir_job *job, char *err, size_t err_len)
{
	struct exfat_reader *r = sc->r;
	struct exfat_metaimage *m = sc->m;
	bool root = job->bytes == 0;
	struct exfat_dir d;
	memset(&d, 0, sizeof(d));
	uint64_t max = EXFAT_MAX_DIR_BYTES >> r->cluster_shift;
	if (!max)
		max = 1;
	uint64_t want = root ? 0 : exfat_reader_clusters_for(r, job->bytes);
	if (want > max)
		want = max;
	if (exfat_chain_follow(r, job->first, job->contiguous, want, max, &d.chain) < 0)
		goto nomem;
	uint64_t fresh = cut_at_seen(sc, &d.chain);
	if (set_add_chain(&m->meta, &d.chain) < 0 || set_add_chain(&m->dirs, &d.chain) < 0) {
		exfat_dir_free(&d);
		goto nomem;
	}
	/* Clusters past the device's end read as zeros, an end mark: nothing
	 * there to read or follow. */
	uint64_t inside = 0;
	for (size_t i = 0; i < d.chain.nruns; i++)
		for (uint32_t k = 0; k < d.chain.runs[i].count; k++, inside++)
			if (exfat_reader_cluster_pos(r, d.chain.runs[i].first + k) >= r->dev_size)
				goto cut;
cut:
	if (inside < d.chain.clusters)
		exfat_chain_cut(&d.chain, inside);
	if (exfat_dir_load(r, &d) < 0) {
		if (errno == ENOMEM)
			goto nomem;
		snprintf(err, err_len, "cannot read a directory at cluster %u: %s", job->first, strerror(errno));
		return -1;
	}
	m->directories++;
	/* Entry sets that start in the new clusters, up to the end mark. */
	uint64_t limit = (fresh << r->cluster_shift) / EXFAT_ENTRY_SIZE;
	for (uint32_t i = 0; i < d.entries && i < limit; i++) {
		const uint8_t *e = exfat_dir_entry(&d, i);
		if (e[0] == EXFAT_ENTRY_EOD)
			break;
		int rc = 0;
		if (root && e[0] == EXFAT_ENTRY_BITMAP) {
			rc = mark_structure(sc, exfat_le32(((const struct exfat_entry *)e)->first_cluster),
					    exfat_reader_clusters_for(r, ((uint64_t)r->cluster_count + 7) / 8));
		} else if (root && e[0] == EXFAT_ENTRY_UPCASE) {
			const struct exfat_entry *u = (const void *)e;
			uint64_t n = exfat_le64(u->data_length) ? exfat_reader_clusters_for(r, exfat_le64(u->data_length)) : 1;
			uint64_t cap = (MAX_UPCASE_BYTES >> r->cluster_shift) + 1;
			rc = mark_structure(sc, exfat_le32(u->first_cluster), n < cap ? n : cap);
		} else if (e[0] == EXFAT_ENTRY_FILE && i + 1 < d.entries &&
			   exfat_dir_entry(&d, i + 1)[0] == EXFAT_ENTRY_STREAM) {
			/* The stream entry right after the file entry says where the
			 * data is, whatever else is wrong with the set: fsck reads
			 * such a directory, so the image must hold it. */
			const struct exfat_file_entry *f = (const void *)e;
			const struct exfat_stream_entry *s = (const void *)exfat_dir_entry(&d, i + 1);
			uint64_t len = exfat_le64(s->data_length);
			uint32_t first = exfat_le32(s->first_cluster);
			if (!(exfat_le16(f->attributes) & EXFAT_ATTR_DIRECTORY))
				m->files++;
			else if (len && exfat_reader_cluster_ok(r, first))
				rc = push_job(sc, (struct dir_job){ first, s->flags & EXFAT_SF_NO_FAT_CHAIN, len });
		}
		if (rc < 0) {
			exfat_dir_free(&d);
			goto nomem;
		}
	}
	exfat_dir_free(&d);
	return 0;
nomem:
	snprintf(err, err_len, "out of memory");
	return -1;
}

int exfat_metaimage_scan(struct exfat_reader *r, struct exfat_metaimage *m, char *err, size_t err_len)
{
	memset(m, 0, sizeof(*m));
	m->r = r;
	uint64_t vol_bytes = exfat_le64(r->bs.volume_length) << r->bs.sector_shift;
	m->image_size = vol_bytes < r->dev_size ? vol_bytes : r->dev_size;
	struct scan sc = { .m = m, .r = r };
	int rc = -1;
	if (set_init(&m->meta, r->cluster_count) < 0 || set_init(&m->dirs, r->cluster_count) < 0 ||
	    push_job(&sc, (struct dir_job){ exfat_le32(r->bs.root_cluster), false, 0 }) < 0) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	while (sc.njobs) {
		struct dir_job job = sc.jobs[--sc.njobs];
		if (exfat_cluster_set_has(&m->dirs, job.first))
			continue;
		if (scan_dir(&sc, &job, err, err_len) < 0)
			goto out;
	}
	if (r->error) {
		snprintf(err, err_len, "read error: %s", strerror(r->error));
		goto out;
	}
	rc = 0;
out:
	free(sc.jobs);
	if (rc < 0)
		exfat_metaimage_free(m);
	return rc;
}

void exfat_metaimage_free(struct exfat_metaimage *m)
{
	set_free(&m->meta);
	set_free(&m->dirs);
}

/* ---- writing an image ---------------------------------------------------- */

/* Where copied bytes go: at their offset in a file (up to limit), or in
 * order through a write callback. */
struct sink {
	int fd;
	uint64_t from, limit;          /* only [from, limit) is written to fd */
	int (*write)(void *arg, const void *buf, size_t len);
	void *arg;
	uint64_t written;
};

static int sink_put(struct sink *s, uint64_t off, const void *buf, size_t len)
{
	if (s->write) {
		if (s->write(s->arg, buf, len) < 0)
			return -1;
	} else {
		if (off + len <= s->from || off >= s->limit)
			return 0;
		if (off < s->from) {
			buf = (const uint8_t *)buf + (s->from - off);
			len -= (size_t)(s->from - off);
			off = s->from;
		}
		if (len > s->limit - off)
			len = (size_t)(s->limit - off);
		if (kb_pwrite_full(s->fd, buf, len, off) < 0)
			return -1;
	}
	s->written += len;
	return 0;
}

/* The next run of heap clusters from index i, copied or not: the metadata
 * clusters that start inside the image are copied. */
static uint64_t image_run(const struct exfat_metaimage *m, uint64_t i, bool *copy)
{
	const struct exfat_reader *r = m->r;
	uint64_t inside = 0;
	if (m->image_size > r->heap_offset)
		inside = exfat_reader_clusters_for(r, m->image_size - r->heap_offset);
	if (inside > r->cluster_count)
		inside = r->cluster_count;
	if (i >= inside) {
		*copy = false;
		return r->cluster_count - i;
	}
	return set_run(&m->meta, i, inside, copy);
}

/* Copies the volume's bytes [off, off + len) to the sink. */
static int copy_range(struct exfat_metaimage *m, struct sink *s, uint8_t *buf, uint64_t off, uint64_t len,
		      char *err, size_t err_len)
{
	while (len) {
		size_t n = len < COPY_CHUNK ? (size_t)len : COPY_CHUNK;
		if (exfat_reader_read(m->r, off, buf, n) < 0) {
			snprintf(err, err_len, "read at byte %llu: %s", (unsigned long long)off, strerror(errno));
			return -1;
		}
		if (sink_put(s, off, buf, n) < 0) {
			snprintf(err, err_len, "write: %s", strerror(errno));
			return -1;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/* The bytes before the heap and the metadata clusters, at their places; in
 * the stream form (sink with a write callback) each run of clusters, copied
 * or not, led by its code. */
static int write_image(struct exfat_metaimage *m, struct sink *s, char *err, size_t err_len)
{
	struct exfat_reader *r = m->r;
	uint8_t *buf = malloc(COPY_CHUNK);
	int rc = -1;
	if (!buf) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	if (copy_range(m, s, buf, 0, r->heap_offset, err, err_len) < 0)
		goto out;
	for (uint64_t i = 0, n; i < r->cluster_count; i += n) {
		bool in;
		n = image_run(m, i, &in);
		uint8_t code[5] = { in ? (n == 1 ? RUN_COPY_1 : RUN_COPY_N) : (n == 1 ? RUN_SKIP_1 : RUN_SKIP_N) };
		exfat_put_le32(code + 1, (uint32_t)n);
		if (s->write && sink_put(s, 0, code, n == 1 ? 1 : 5) < 0) {
			snprintf(err, err_len, "write: %s", strerror(errno));
			goto out;
		}
		if (in && copy_range(m, s, buf, exfat_reader_cluster_pos(r, (uint32_t)(i + EXFAT_FIRST_CLUSTER)),
				     n << r->cluster_shift, err, err_len) < 0)
			goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

int exfat_metaimage_write_sparse(struct exfat_metaimage *m, int fd, uint64_t *written, char *err,
				 size_t err_len)
{
	struct sink s = { .fd = fd, .limit = m->image_size };
	*written = 0;
	if (ftruncate(fd, (off_t)m->image_size) < 0) {
		snprintf(err, err_len, "cannot make the image %llu bytes long: %s", (unsigned long long)m->image_size,
			 strerror(errno));
		return -1;
	}
	int rc = write_image(m, &s, err, err_len);
	*written = s.written;
	return rc;
}

int exfat_metaimage_write_stream(struct exfat_metaimage *m, int (*write)(void *arg, const void *buf, size_t len),
				 void *arg, uint64_t *written, char *err, size_t err_len)
{
	struct exfat_reader *r = m->r;
	struct sink s = { .write = write, .arg = arg };
	*written = 0;
	if (r->heap_offset > UINT32_MAX || r->cluster_size > UINT32_MAX) {
		snprintf(err, err_len, "the cluster heap starts beyond 4 GiB, which the stream form cannot describe; "
			 "write a sparse image instead");
		return -1;
	}
	uint8_t head[EXFAT_STREAM_HEADER_BYTES] = { 0 };
	exfat_put_le32(head, EXFAT_STREAM_MAGIC);
	exfat_put_le32(head + 4, 1);
	exfat_put_le32(head + 12, EXFAT_STREAM_HEADER_BYTES);
	exfat_put_le32(head + 16, (uint32_t)r->heap_offset);
	exfat_put_le32(head + 20, (uint32_t)r->cluster_size);
	exfat_put_le32(head + 24, r->cluster_count);
	memcpy(head + 28, "kbox", 4);
	exfat_put_le64(head + 32, m->image_size);
	int rc = -1;
	if (sink_put(&s, 0, head, sizeof(head)) < 0)
		snprintf(err, err_len, "write: %s", strerror(errno));
	else
		rc = write_image(m, &s, err, err_len);
	*written = s.written;
	return rc;
}

/* ---- reading an image back ------------------------------------------------ */

struct decoder {
	int fd;
	enum { D_HEAD, D_PAD, D_META, D_CODE, D_COUNT, D_COPY, D_DONE, D_RAW } state;
	uint8_t head[EXFAT_STREAM_HEADER_BYTES];
	size_t have;                   /* header bytes, then count bytes, gathered */
	uint8_t code;
	uint64_t pos;                  /* where the next byte goes in the image */
	uint64_t left;                 /* bytes left in this state */
	uint64_t cluster;              /* heap clusters covered so far */
	uint64_t image_size;
	struct exfat_image_info *info;
	bool failed;
	char *err;
	size_t err_len;
};

static int __attribute__((format(printf, 2, 3))) decode_fail(struct decoder *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->err, d->err_len, fmt, ap);
	va_end(ap);
	d->failed = true;
	errno = EINVAL;
	return -1;
}

static int put_at(struct decoder *d, const uint8_t *buf, size_t len)
{
	if (kb_pwrite_full(d->fd, buf, len, d->pos) < 0) {
		int e = errno;
		decode_fail(d, "cannot write the temporary copy: %s", strerror(e));
		errno = e;
		return -1;
	}
	d->pos += len;
	return 0;
}

/* A plain image as it comes: written at its place, all-zero blocks left as
 * holes so the copy stays sparse. */
static int put_raw(struct decoder *d, const uint8_t *buf, size_t len)
{
	static const uint8_t zeros[RAW_BLOCK];
	while (len) {
		size_t n = RAW_BLOCK - d->pos % RAW_BLOCK;
		if (n > len)
			n = len;
		if (memcmp(buf, zeros, n)) {
			if (put_at(d, buf, n) < 0)
				return -1;
		} else {
			d->pos += n;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

static int parse_header(struct decoder *d)
{
	const uint8_t *h = d->head;
	struct exfat_image_info *info = d->info;
	uint32_t major = exfat_get_le32(h + 4), data_off = exfat_get_le32(h + 12);
	info->stream = true;
	info->heap_offset = exfat_get_le32(h + 16);
	info->cluster_size = exfat_get_le32(h + 20);
	info->cluster_count = exfat_get_le32(h + 24);
	if (major != 1)
		return decode_fail(d, "stream version %u is not supported (only 1)", major);
	if (data_off < EXFAT_STREAM_HEADER_BYTES || data_off > COPY_CHUNK)
		return decode_fail(d, "stream header: data offset %u out of range", data_off);
	if (info->heap_offset < (uint64_t)EXFAT_BOOT_REGION_SECTORS * 2 * 512 || info->heap_offset % 512)
		return decode_fail(d, "stream header: cluster heap offset %llu out of range",
				   (unsigned long long)info->heap_offset);
	if (info->cluster_size < 512 || info->cluster_size > (32u << 20) ||
	    (info->cluster_size & (info->cluster_size - 1)))
		return decode_fail(d, "stream header: cluster size %llu is not a power of two from 512 to 32M",
				   (unsigned long long)info->cluster_size);
	if (info->cluster_count > EXFAT_MAX_CLUSTER_COUNT)
		return decode_fail(d, "stream header: cluster count %llu above the exFAT limit",
				   (unsigned long long)info->cluster_count);
	d->image_size = info->heap_offset + info->cluster_count * info->cluster_size;
	if (!memcmp(h + 28, "kbox", 4) && exfat_get_le64(h + 32))
		d->image_size = exfat_get_le64(h + 32);
	if (d->image_size > (1ull << 62))
		return decode_fail(d, "stream header: image length %llu out of range",
				   (unsigned long long)d->image_size);
	d->state = D_PAD;
	d->left = data_off - EXFAT_STREAM_HEADER_BYTES;
	return 0;
}

/* A run of `count` clusters, copied or skipped. */
static int start_run(struct decoder *d, uint64_t count)
{
	uint64_t cc = d->info->cluster_count;
	if (count == 0 || count > cc - d->cluster)
		return decode_fail(d, "stream: a run of %llu clusters at cluster %llu runs past the %llu clusters",
				   (unsigned long long)count, (unsigned long long)d->cluster, (unsigned long long)cc);
	bool copy = d->code == RUN_COPY_1 || d->code == RUN_COPY_N;
	d->pos = d->info->heap_offset + d->cluster * d->info->cluster_size;
	d->cluster += count;
	if (copy) {
		d->state = D_COPY;
		d->left = count * d->info->cluster_size;
	} else {
		d->state = d->cluster < cc ? D_CODE : D_DONE;
	}
	return 0;
}

static int decode(void *arg, const void *data, size_t len)
{
	struct decoder *d = arg;
	const uint8_t *buf = data;
	if (d->failed) {
		errno = EINVAL;
		return -1;
	}
	while (len) {
		size_t n;
		switch (d->state) {
		case D_HEAD:
			n = sizeof(d->head) - d->have < len ? sizeof(d->head) - d->have : len;
			memcpy(d->head + d->have, buf, n);
			d->have += n;
			buf += n, len -= n;
			if (d->have < 11)
				continue;
			if (!memcmp(d->head + 3, "EXFAT   ", 8)) {
				/* A plain image: what was gathered is its start. */
				d->state = D_RAW;
				if (put_raw(d, d->head, d->have) < 0)
					return -1;
			} else if (exfat_get_le32(d->head) != EXFAT_STREAM_MAGIC) {
				return decode_fail(d, "neither an exFAT image nor an exfat2img stream");
			} else if (d->have == sizeof(d->head) && parse_header(d) < 0) {
				return -1;
			}
			continue;
		case D_PAD:
		case D_META:
		case D_COPY:
			n = d->left < len ? (size_t)d->left : len;
			if (d->state != D_PAD && put_at(d, buf, n) < 0)
				return -1;
			buf += n, len -= n, d->left -= n;
			if (d->left)
				continue;
			if (d->state == D_PAD) {
				d->state = D_META;
				d->pos = 0;
				d->left = d->info->heap_offset;
			} else {
				d->state = d->cluster < d->info->cluster_count ? D_CODE : D_DONE;
			}
			continue;
		case D_CODE:
			d->code = *buf++, len--;
			if (d->code == RUN_COPY_1 || d->code == RUN_SKIP_1) {
				if (start_run(d, 1) < 0)
					return -1;
			} else if (d->code == RUN_COPY_N || d->code == RUN_SKIP_N) {
				d->state = D_COUNT;
				d->have = 0;
			} else {
				return decode_fail(d, "stream: unknown run code %u at cluster %llu", d->code,
						   (unsigned long long)d->cluster);
			}
			continue;
		case D_COUNT:
			d->head[d->have++] = *buf++, len--;
			if (d->have == 4 && start_run(d, exfat_get_le32(d->head)) < 0)
				return -1;
			continue;
		case D_RAW:
			return put_raw(d, buf, len);
		case D_DONE:
			d->info->trailing += len;
			return 0;
		}
	}
	return 0;
}

/* The end of the input: is the image whole? */
static int decode_end(struct decoder *d)
{
	if (d->failed)
		return -1;
	switch (d->state) {
	case D_RAW:
		d->image_size = d->pos > d->image_size ? d->pos : d->image_size;
		break;
	case D_DONE:
		break;
	case D_HEAD:
		return decode_fail(d, "too short (%zu bytes) to be an image or a stream", d->have);
	case D_PAD:
	case D_META:
		return decode_fail(d, "stream cut short before the cluster heap");
	default:
		return decode_fail(d, "stream cut short: %llu of %llu clusters", (unsigned long long)d->cluster,
				   (unsigned long long)d->info->cluster_count);
	}
	if (ftruncate(d->fd, (off_t)d->image_size) < 0) {
		int e = errno;
		decode_fail(d, "cannot make the temporary copy %llu bytes long: %s",
			    (unsigned long long)d->image_size, strerror(e));
		return -1;
	}
	d->info->size = d->image_size;
	return 0;
}

/* An unnamed file for the decoded image, gone when closed. */
static int open_spool(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	char path[4096];
	snprintf(path, sizeof(path), "%s/exfat2img.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

int exfat_image_unpack(int in_fd, int *spool_fd, struct exfat_image_info *info, char *err, size_t err_len)
{
	memset(info, 0, sizeof(*info));
	struct decoder d = { .info = info, .err = err, .err_len = err_len };
	struct kb_unzstd *z = NULL;
	uint8_t *buf = malloc(COPY_CHUNK);
	int rc = -1;
	d.fd = open_spool();
	if (!buf || d.fd < 0) {
		snprintf(err, err_len, "%s: %s", buf ? "temporary file" : "out of memory", strerror(errno));
		goto out;
	}
	for (bool first = true;; first = false) {
		ssize_t n = read(in_fd, buf, COPY_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, err_len, "read: %s", strerror(errno));
			goto out;
		}
		if (first && kb_zstd_is_frame(buf, (size_t)n)) {
			z = kb_unzstd_open(decode, &d);
			if (!z) {
				snprintf(err, err_len, "out of memory");
				goto out;
			}
		}
		if (n == 0 || d.state == D_DONE)
			break;
		if ((z ? kb_unzstd_write(z, buf, (size_t)n) : decode(&d, buf, (size_t)n)) < 0) {
			if (!d.failed)
				snprintf(err, err_len, "not valid zstd data (damaged?)");
			goto out;
		}
	}
	/* A complete stream may be followed by anything. A cut compressed
	 * stream is told by the decoder (clusters missing); a cut compressed
	 * plain image only by the frame. */
	bool compressed = z != NULL;
	if (z) {
		int zrc = 0;
		if (d.state == D_DONE)
			kb_unzstd_free(z);
		else
			zrc = kb_unzstd_finish(z);
		z = NULL;
		if (zrc < 0 && d.state == D_RAW) {
			snprintf(err, err_len, "zstd data cut short");
			goto out;
		}
	}
	if (decode_end(&d) < 0)
		goto out;
	info->format = d.state == D_RAW ? (compressed ? "image+zstd" : "image")
					: (compressed ? "stream+zstd" : "stream");
	rc = 0;
out:
	kb_unzstd_free(z);
	free(buf);
	if (rc < 0 && d.fd >= 0)
		close(d.fd);
	else
		*spool_fd = d.fd;
	return rc;
}

int exfat_image_check(int img_fd, uint64_t img_size, const struct exfat_image_info *info, char *err,
		      size_t err_len)
{
	struct exfat_reader r;
	char why[256];
	if (exfat_reader_open(&r, img_fd, img_size, NULL, why, sizeof(why)) < 0) {
		snprintf(err, err_len, "%s", why);
		return -1;
	}
	uint64_t heap_end = r.heap_offset + ((uint64_t)r.cluster_count << r.cluster_shift);
	int rc = -1;
	if (heap_end > img_size)
		snprintf(err, err_len, "the image has %llu bytes but its cluster heap ends at byte %llu: cut short",
			 (unsigned long long)img_size, (unsigned long long)heap_end);
	else if (info && info->stream &&
		 (info->heap_offset != r.heap_offset || info->cluster_size != r.cluster_size ||
		  info->cluster_count != r.cluster_count))
		snprintf(err, err_len, "the stream's header does not agree with its boot sector");
	else
		rc = 0;
	exfat_reader_free(&r);
	return rc;
}

/* Copies the image's bytes [from, to) onto the device. */
static int copy_out(int img_fd, int dev_fd, uint8_t *buf, uint64_t from, uint64_t to, uint64_t *written,
		    const char **what)
{
	while (from < to) {
		size_t n = to - from < COPY_CHUNK ? (size_t)(to - from) : COPY_CHUNK;
		*what = "read the image";
		if (kb_pread_full(img_fd, buf, n, from) < 0)
			return -1;
		*what = "write";
		if (kb_pwrite_full(dev_fd, buf, n, from) < 0)
			return -1;
		*written += n;
		from += n;
	}
	return 0;
}

/* Writes what the image holds in its cluster heap besides its metadata
 * (file data, in a plain image): its data extents, metadata clusters left
 * out (they are written whole already). */
static int copy_other_data(struct exfat_metaimage *m, int img_fd, uint64_t img_size, int dev_fd, uint8_t *buf,
			   uint64_t *written, const char **what)
{
	struct exfat_reader *r = m->r;
	uint64_t heap_end = r->heap_offset + ((uint64_t)r->cluster_count << r->cluster_shift);
	for (uint64_t off = r->heap_offset; off < img_size;) {
		off_t data = lseek(img_fd, (off_t)off, SEEK_DATA), hole;
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0) {
			data = (off_t)off;      /* no hole support: all of it is data */
			hole = (off_t)img_size;
		} else {
			hole = lseek(img_fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > img_size)
				hole = (off_t)img_size;
		}
		for (uint64_t at = (uint64_t)data, end; at < (uint64_t)hole; at = end) {
			bool meta = false;
			end = (uint64_t)hole;
			if (at < heap_end) {
				uint64_t index = (at - r->heap_offset) >> r->cluster_shift;
				uint64_t n = set_run(&m->meta, index, r->cluster_count, &meta);
				uint64_t run_end = r->heap_offset + ((index + n) << r->cluster_shift);
				if (run_end < end)
					end = run_end;
			}
			if (!meta && copy_out(img_fd, dev_fd, buf, at, end, written, what) < 0)
				return -1;
		}
		off = (uint64_t)hole;
	}
	return 0;
}

int exfat_image_restore(int img_fd, uint64_t img_size, int dev_fd, uint64_t *written, char *err,
			size_t err_len)
{
	struct exfat_reader r;
	struct exfat_metaimage m;
	*written = 0;
	if (exfat_reader_open(&r, img_fd, img_size, NULL, err, err_len) < 0)
		return -1;
	if (exfat_metaimage_scan(&r, &m, err, err_len) < 0) {
		exfat_reader_free(&r);
		return -1;
	}
	uint8_t first[512], zeros[512] = { 0 };
	uint8_t *buf = malloc(COPY_CHUNK);
	const char *what = "out of memory";
	int rc = -1;
	errno = ENOMEM;
	if (!buf)
		goto fail;
	what = "read the image";
	if (kb_pread_full(img_fd, first, sizeof(first), 0) < 0)
		goto fail;
	what = "write";
	if (kb_pwrite_full(dev_fd, zeros, sizeof(zeros), 0) < 0 || fdatasync(dev_fd) < 0)
		goto fail;
	/* The metadata whole, zeros included: where the image has a hole in
	 * it, whatever the device held there must not stay. */
	struct sink s = { .fd = dev_fd, .from = sizeof(first), .limit = img_size };
	if (write_image(&m, &s, err, err_len) < 0) {
		*written = s.written;
		goto out;
	}
	*written = s.written;
	if (copy_other_data(&m, img_fd, img_size, dev_fd, buf, written, &what) < 0)
		goto fail;
	what = "write";
	if (fsync(dev_fd) < 0 || kb_pwrite_full(dev_fd, first, sizeof(first), 0) < 0 || fsync(dev_fd) < 0)
		goto fail;
	*written += sizeof(first);
	rc = 0;
	goto out;
fail:
	snprintf(err, err_len, "%s: %s", what, strerror(errno));
out:
	free(buf);
	exfat_metaimage_free(&m);
	exfat_reader_free(&r);
	return rc;
}
