/* Planning and writing a new exFAT volume. */
#include "exfat/exfat_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blockdev/blockdev.h"
#include "exfat/exfat_upcase.h"

#define ERR(...) snprintf(err, err_len, __VA_ARGS__)

static uint64_t div_round_up(uint64_t v, uint64_t d)
{
	return (v + d - 1) / d;
}

/* ---- planning ----------------------------------------------------------- */
static uint64_t dir_entry_count(const struct exfat_tree_node *dir)
{
	uint64_t n = 0;
	for (size_t i = 0; i < dir->nchildren; i++)
		n += exfat_set_entries(dir->children[i]->name_len);
	return n;
}

struct planner {
	struct exfat_format *f;
	uint64_t next;          /* next free cluster (64-bit: may overshoot the volume) */
	char *err;
	size_t err_len;
};

static int plan_dir_size(struct planner *p, struct exfat_tree_node *dir, uint64_t entries)
{
	uint64_t bytes = entries * EXFAT_ENTRY_SIZE;
	if (bytes > EXFAT_MAX_DIR_BYTES) {
		snprintf(p->err, p->err_len, "%s: %llu entries need %llu bytes, above exFAT's 256 MiB "
			 "directory limit", dir->path, (unsigned long long)entries,
			 (unsigned long long)bytes);
		return -1;
	}
	uint64_t cs = p->f->geo.cluster_size;
	uint64_t clusters = div_round_up(bytes, cs);
	if (clusters == 0)
		clusters = 1;
	dir->clusters = (uint32_t)clusters;
	dir->size = clusters * cs;
	return 0;
}

static int plan_children(struct planner *p, struct exfat_tree_node *dir)
{
	uint64_t cs = p->f->geo.cluster_size;
	for (size_t i = 0; i < dir->nchildren; i++) {
		struct exfat_tree_node *c = dir->children[i];
		if (c->is_dir) {
			if (plan_dir_size(p, c, dir_entry_count(c)) < 0)
				return -1;
		} else {
			uint64_t clusters = div_round_up(c->size, cs);
			if (clusters > UINT32_MAX) {
				snprintf(p->err, p->err_len, "%s: file too large for this volume", c->path);
				return -1;
			}
			c->clusters = (uint32_t)clusters;
		}
		c->first_cluster = c->clusters ? (uint32_t)p->next : 0;
		p->next += c->clusters;
		if (p->next - EXFAT_FIRST_CLUSTER > p->f->geo.cluster_count) {
			snprintf(p->err, p->err_len, "the tree does not fit: %s needs clusters beyond the "
				 "volume's %u clusters of %llu bytes", c->path, p->f->geo.cluster_count,
				 (unsigned long long)cs);
			return -1;
		}
	}
	for (size_t i = 0; i < dir->nchildren; i++)
		if (dir->children[i]->is_dir && plan_children(p, dir->children[i]) < 0)
			return -1;
	return 0;
}

static void chain(uint32_t *fat, uint32_t first, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++)
		fat[first + i] = i + 1 < count ? first + i + 1 : EXFAT_FAT_EOC;
}

static void chain_tree(uint32_t *fat, const struct exfat_tree_node *dir)
{
	for (size_t i = 0; i < dir->nchildren; i++) {
		const struct exfat_tree_node *c = dir->children[i];
		if (c->clusters)
			chain(fat, c->first_cluster, c->clusters);
		if (c->is_dir)
			chain_tree(fat, c);
	}
}

static unsigned root_fixed_entries(const struct exfat_format *f)
{
	return 3 + (f->has_guid ? 1 : 0);   /* label, bitmap, up-case [, GUID] */
}

int exfat_format_plan(struct exfat_format *f, char *err, size_t err_len)
{
	const struct exfat_geometry *g = &f->geo;
	struct planner p = { f, g->root_cluster, err, err_len };
	struct exfat_tree_node fake_root = { .path = (char *)"/" };
	struct exfat_tree_node *root = f->tree ? f->tree : &fake_root;
	if (plan_dir_size(&p, root, root_fixed_entries(f) + dir_entry_count(root)) < 0)
		return -1;
	root->first_cluster = g->root_cluster;
	f->root_clusters = root->clusters;
	p.next += root->clusters;
	if (p.next - EXFAT_FIRST_CLUSTER > g->cluster_count) {
		ERR("the root directory does not fit in the volume");
		return -1;
	}
	if (plan_children(&p, root) < 0)
		return -1;
	f->used_clusters = (uint32_t)(p.next - EXFAT_FIRST_CLUSTER);
	free(f->fat);
	f->fat = calloc(p.next, sizeof(uint32_t));
	if (!f->fat) {
		ERR("out of memory for the FAT (%llu entries)", (unsigned long long)p.next);
		return -1;
	}
	f->fat[0] = EXFAT_FAT_MEDIA;
	f->fat[1] = EXFAT_FAT_EOC;
	chain(f->fat, g->bitmap_cluster, g->bitmap_clusters);
	chain(f->fat, g->upcase_cluster, g->upcase_clusters);
	chain(f->fat, g->root_cluster, f->root_clusters);
	chain_tree(f->fat, root);
	f->percent_in_use = exfat_percent_in_use(f->used_clusters, g->cluster_count);
	return 0;
}

void exfat_format_release(struct exfat_format *f)
{
	free(f->fat);
	f->fat = NULL;
}

/* ---- writing ------------------------------------------------------------ */
/* Coalesces writes at increasing offsets into large sequential writes. */
struct seq_writer {
	int fd;
	uint8_t *buf;
	size_t cap, len;
	uint64_t off;           /* device offset of buf[0] */
	uint64_t *written;
};

static int sw_flush(struct seq_writer *w)
{
	if (w->len && kb_pwrite_full(w->fd, w->buf, w->len, w->off) < 0)
		return -1;
	*w->written += w->len;
	w->off += w->len;
	w->len = 0;
	return 0;
}

/* Returns space for up to `want` bytes at device offset off (at least one). */
static uint8_t *sw_reserve(struct seq_writer *w, uint64_t off, size_t want, size_t *got)
{
	if (off != w->off + w->len || w->len == w->cap) {
		if (sw_flush(w) < 0)
			return NULL;
		w->off = off;
	}
	size_t room = w->cap - w->len;
	*got = want < room ? want : room;
	return w->buf + w->len;
}

static int sw_zeros(struct seq_writer *w, uint64_t off, uint64_t len)
{
	/* Large padding (a big cluster's tail) is zeroed without writing where
	 * the medium already reads as zeros, e.g. the holes of a sparse image. */
	if (len >= (64u << 10)) {
		if (sw_flush(w) < 0 || kb_zero_range(w->fd, off, len, w->written) < 0)
			return -1;
		w->off = off + len;
		return 0;
	}
	while (len) {
		size_t got;
		uint8_t *p = sw_reserve(w, off, len > SIZE_MAX ? SIZE_MAX : (size_t)len, &got);
		if (!p)
			return -1;
		memset(p, 0, got);
		w->len += got;
		off += got;
		len -= got;
	}
	return 0;
}

static int sw_bytes(struct seq_writer *w, uint64_t off, const void *data, size_t len)
{
	const uint8_t *d = data;
	while (len) {
		size_t got;
		uint8_t *p = sw_reserve(w, off, len, &got);
		if (!p)
			return -1;
		memcpy(p, d, got);
		w->len += got;
		d += got;
		off += got;
		len -= got;
	}
	return 0;
}

struct writer {
	struct exfat_format *f;
	struct seq_writer sw;
	char *err;
	size_t err_len;
};

static uint64_t cluster_off(const struct exfat_format *f, uint32_t c)
{
	const struct exfat_geometry *g = &f->geo;
	return f->offset + ((uint64_t)g->heap_offset << g->sector_shift) +
	       (uint64_t)(c - EXFAT_FIRST_CLUSTER) * g->cluster_size;
}

static void fill_times(struct exfat_file_info *fi, const struct exfat_tree_node *n)
{
	exfat_time_from_unix(n->mtime, n->mtime_ns, &fi->modify_time, &fi->modify_10ms, &fi->modify_utc);
	exfat_time_from_unix(n->btime, n->btime_ns, &fi->create_time, &fi->create_10ms, &fi->create_utc);
	uint8_t unused;
	exfat_time_from_unix(n->atime, n->atime_ns, &fi->access_time, &unused, &fi->access_utc);
}

/* Entry sets of dir's children, appended at buf (room checked by plan). */
static size_t build_child_sets(uint8_t *buf, const struct exfat_tree_node *dir)
{
	size_t pos = 0;
	for (size_t i = 0; i < dir->nchildren; i++) {
		const struct exfat_tree_node *c = dir->children[i];
		struct exfat_file_info fi = {
			.name = c->name,
			.name_len = c->name_len,
			.name_hash = c->name_hash,
			.attributes = c->attributes,
			.first_cluster = c->first_cluster,
			.data_length = c->size,
			.valid_data_length = c->size,
		};
		fill_times(&fi, c);
		pos += (size_t)exfat_build_file_set(buf + pos, &fi) * EXFAT_ENTRY_SIZE;
	}
	return pos;
}

static int write_dir(struct writer *w, const struct exfat_tree_node *dir, const void *head,
		     size_t head_len)
{
	size_t bytes = (size_t)dir->clusters * w->f->geo.cluster_size;
	size_t used = head_len + (size_t)dir_entry_count(dir) * EXFAT_ENTRY_SIZE;
	uint8_t *buf = malloc(used ? used : 1);
	if (!buf) {
		snprintf(w->err, w->err_len, "out of memory");
		return -1;
	}
	if (head_len)
		memcpy(buf, head, head_len);
	build_child_sets(buf + head_len, dir);
	/* The rest must read as zeros: end-of-directory entries. */
	uint64_t off = cluster_off(w->f, dir->first_cluster);
	int rc = sw_bytes(&w->sw, off, buf, used);
	if (rc == 0)
		rc = sw_zeros(&w->sw, off + used, bytes - used);
	free(buf);
	if (rc < 0)
		snprintf(w->err, w->err_len, "write: %s", strerror(errno));
	return rc;
}

static int copy_file(struct writer *w, const struct exfat_tree_node *n)
{
	int in = open(n->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		snprintf(w->err, w->err_len, "%s: %s", n->path, strerror(errno));
		return -1;
	}
	uint64_t off = cluster_off(w->f, n->first_cluster), pos = 0;
	int rc = 0;
	/* exFAT has no holes, but a hole of a sparse source need not be read:
	 * the range is made to read as zeros, which on a sparse image (or a
	 * device that zeroes cheaply) costs next to nothing. Small files are
	 * just read (three calls fewer each, in trees of many small files). */
	bool follow_holes = n->size >= (1u << 20);
	while (pos < n->size && rc == 0) {
		off_t data = follow_holes ? lseek(in, (off_t)pos, SEEK_DATA) : (off_t)pos;
		uint64_t data_at = data >= 0 ? (uint64_t)data : errno == ENXIO ? n->size : pos;
		if (data_at > n->size)
			data_at = n->size;
		if (data_at > pos) {
			if (sw_zeros(&w->sw, off, data_at - pos) < 0) {
				snprintf(w->err, w->err_len, "write: %s", strerror(errno));
				rc = -1;
			}
			off += data_at - pos;
			pos = data_at;
			continue;
		}
		off_t hole = follow_holes ? lseek(in, (off_t)pos, SEEK_HOLE) : (off_t)n->size;
		uint64_t end = hole > (off_t)pos && (uint64_t)hole < n->size ? (uint64_t)hole : n->size;
		if (follow_holes && lseek(in, (off_t)pos, SEEK_SET) < 0) {
			snprintf(w->err, w->err_len, "%s: %s", n->path, strerror(errno));
			rc = -1;
			break;
		}
		while (pos < end) {
			size_t got;
			uint8_t *p = sw_reserve(&w->sw, off, end - pos > SIZE_MAX ? SIZE_MAX : (size_t)(end - pos), &got);
			if (!p) {
				snprintf(w->err, w->err_len, "write: %s", strerror(errno));
				rc = -1;
				break;
			}
			ssize_t r = read(in, p, got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				snprintf(w->err, w->err_len, "%s: %s", n->path,
					 r < 0 ? strerror(errno) : "file shrank while being copied");
				rc = -1;
				break;
			}
			w->sw.len += (size_t)r;
			off += (uint64_t)r;
			pos += (uint64_t)r;
		}
	}
	/* A tail taken for a hole may be a file cut short meanwhile. */
	struct stat st;
	if (rc == 0 && follow_holes && fstat(in, &st) == 0 && (uint64_t)st.st_size < n->size) {
		snprintf(w->err, w->err_len, "%s: file shrank while being copied", n->path);
		rc = -1;
	}
	close(in);
	/* The last cluster's tail is past ValidDataLength: never read, so not
	 * written (like any free cluster, it keeps what the medium held). */
	return rc;
}

static int write_children(struct writer *w, const struct exfat_tree_node *dir)
{
	for (size_t i = 0; i < dir->nchildren; i++) {
		const struct exfat_tree_node *c = dir->children[i];
		int rc = c->is_dir ? write_dir(w, c, NULL, 0) : c->clusters ? copy_file(w, c) : 0;
		if (rc < 0)
			return -1;
	}
	for (size_t i = 0; i < dir->nchildren; i++)
		if (dir->children[i]->is_dir && write_children(w, dir->children[i]) < 0)
			return -1;
	return 0;
}

/* Writes `len` bytes of buf at off, then makes the rest of the region
 * [off, off+region) read as zeros. */
static int write_region(struct exfat_format *f, const void *buf, size_t len, uint64_t off,
			uint64_t region)
{
	if (len && kb_pwrite_full(f->fd, buf, len, off) < 0)
		return -1;
	f->bytes_written += len;
	return kb_zero_range(f->fd, off + len, region - len, &f->bytes_written);
}

/* How much of a region to write for `used` bytes: whole pages (so no
 * partly written file-system block remains to be zeroed separately), at
 * least whole sectors, never past the region. */
static size_t write_span(uint64_t used, uint64_t ss, uint64_t region)
{
	uint64_t unit = ss > 4096 ? ss : 4096;
	uint64_t n = div_round_up(used, unit) * unit;
	if (n > region)
		n = div_round_up(used, ss) * ss;
	return (size_t)n;
}

static int zero_heap(struct exfat_format *f)
{
	const struct exfat_geometry *g = &f->geo;
	uint64_t start = cluster_off(f, EXFAT_FIRST_CLUSTER + f->used_clusters);
	uint64_t end = cluster_off(f, EXFAT_FIRST_CLUSTER) + (uint64_t)g->cluster_count * g->cluster_size;
	const uint64_t step = 256ull << 20;
	for (uint64_t pos = start; pos < end; pos += step) {
		if (f->progress)
			f->progress("zeroing the cluster heap", pos - start, end - start, f->progress_arg);
		uint64_t n = end - pos < step ? end - pos : step;
		if (kb_zero_range(f->fd, pos, n, &f->bytes_written) < 0)
			return -1;
	}
	if (f->progress)
		f->progress("zeroing the cluster heap", end - start, end - start, f->progress_arg);
	return 0;
}

int exfat_format_write(struct exfat_format *f, char *err, size_t err_len)
{
	const struct exfat_geometry *g = &f->geo;
	const uint64_t ss = g->sector_size, cs = g->cluster_size;
	uint8_t *buf = NULL;
	int rc = -1;

	if (f->full_format && zero_heap(f) < 0) {
		ERR("zeroing the cluster heap: %s", strerror(errno));
		goto out;
	}

	/* FAT: the used entries, then zeros to the end of the FAT where needed. */
	uint64_t fat_entries = EXFAT_FIRST_CLUSTER + (uint64_t)f->used_clusters;
	size_t fat_bytes = write_span(fat_entries * 4, ss, (uint64_t)g->fat_length << g->sector_shift);
	buf = calloc(1, fat_bytes);
	if (!buf) {
		ERR("out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < fat_entries; i++)
		exfat_put_le32(buf + 4 * i, f->fat[i]);
	if (write_region(f, buf, fat_bytes, f->offset + ((uint64_t)g->fat_offset << g->sector_shift),
			 (uint64_t)g->fat_length << g->sector_shift) < 0) {
		ERR("writing the FAT: %s", strerror(errno));
		goto out;
	}
	free(buf);

	/* Allocation bitmap: the used clusters are 2 .. 2+used-1, contiguous. */
	size_t bm_bytes = write_span(div_round_up(f->used_clusters, 8), ss, (uint64_t)g->bitmap_clusters * cs);
	buf = calloc(1, bm_bytes);
	if (!buf) {
		ERR("out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < f->used_clusters; i++)
		exfat_bitmap_set(buf, i);
	if (write_region(f, buf, bm_bytes, cluster_off(f, g->bitmap_cluster),
			 (uint64_t)g->bitmap_clusters * cs) < 0) {
		ERR("writing the allocation bitmap: %s", strerror(errno));
		goto out;
	}
	free(buf);
	buf = NULL;

	struct writer w = { f, { f->fd, NULL, 4u << 20, 0, 0, &f->bytes_written }, err, err_len };
	w.sw.buf = malloc(w.sw.cap);
	if (!w.sw.buf) {
		ERR("out of memory");
		goto out;
	}
	w.sw.off = cluster_off(f, g->upcase_cluster);

	/* Up-case table, padded to its clusters. */
	uint8_t upcase[EXFAT_UPCASE_DEFAULT_BYTES];
	exfat_upcase_default_build(upcase);
	if (sw_bytes(&w.sw, cluster_off(f, g->upcase_cluster), upcase, sizeof(upcase)) < 0 ||
	    sw_zeros(&w.sw, cluster_off(f, g->upcase_cluster) + sizeof(upcase),
		     (uint64_t)g->upcase_clusters * cs - sizeof(upcase)) < 0) {
		ERR("writing the up-case table: %s", strerror(errno));
		goto out_sw;
	}

	/* Root directory: label, bitmap, up-case [, GUID], then the tree. */
	uint8_t head[4 * EXFAT_ENTRY_SIZE];
	exfat_build_label_entry((void *)head, f->label, f->label_len);
	exfat_build_bitmap_entry((void *)(head + 32), g->bitmap_cluster, g->bitmap_bytes);
	exfat_build_upcase_entry((void *)(head + 64), g->upcase_cluster, sizeof(upcase),
				 exfat_checksum32(upcase, sizeof(upcase), 0));
	if (f->has_guid)
		exfat_build_guid_entry((void *)(head + 96), f->guid);
	struct exfat_tree_node empty = { .path = (char *)"/" };
	struct exfat_tree_node *root = f->tree ? f->tree : &empty;
	root->first_cluster = g->root_cluster;
	root->clusters = f->root_clusters;
	if (write_dir(&w, root, head, root_fixed_entries(f) * EXFAT_ENTRY_SIZE) < 0 ||
	    write_children(&w, root) < 0)
		goto out_sw;
	if (sw_flush(&w.sw) < 0) {
		ERR("write: %s", strerror(errno));
		goto out_sw;
	}
	/* Boot regions last, backup first, then one fsync for everything: the
	 * old signatures are already erased, so an interrupted format leaves no
	 * stale filesystem behind, and a second flush would double the cost. */
	struct exfat_boot_sector bs;
	exfat_boot_sector_init(&bs, g, f->serial, f->percent_in_use);
	size_t region = (size_t)ss * EXFAT_BOOT_REGION_SECTORS;
	buf = malloc(region);
	if (!buf) {
		ERR("out of memory");
		goto out_sw;
	}
	exfat_boot_region_build(buf, &bs, (unsigned)ss);
	if (kb_pwrite_full(f->fd, buf, region, f->offset + region) < 0 ||
	    kb_pwrite_full(f->fd, buf, region, f->offset) < 0) {
		ERR("writing the boot region: %s", strerror(errno));
		goto out_sw;
	}
	f->bytes_written += 2 * region;
	if (fsync(f->fd) < 0) {
		ERR("fsync: %s", strerror(errno));
		goto out_sw;
	}
	rc = 0;
out_sw:
	free(w.sw.buf);
out:
	free(buf);
	return rc;
}
