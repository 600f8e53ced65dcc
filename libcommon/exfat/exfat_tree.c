/* Reads a host directory tree for copying into a new exFAT volume. */
#include "exfat/exfat_format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "exfat/exfat_upcase.h"
#include "base/utf.h"

struct scan {
	const struct exfat_upcase_map *upcase;
	exfat_tree_skip_fn skip;
	void *arg;
	char *err;
	size_t err_len;
};

void exfat_tree_free(struct exfat_tree_node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nchildren; i++)
		exfat_tree_free(n->children[i]);
	free(n->children);
	free(n->name);
	free(n->path);
	free(n);
}

/* Error messages end with the reason: a path too long for the message is
 * shown by its end. */
#define PATH_SHOWN 200
static const char *tail(const char *path)
{
	size_t n = strlen(path);
	return n > PATH_SHOWN ? path + n - PATH_SHOWN : path;
}

static const char *ellipsis(const char *path)
{
	return strlen(path) > PATH_SHOWN ? "..." : "";
}

static int set_name(struct exfat_tree_node *n, const char *host_name, struct scan *s)
{
	uint16_t buf[EXFAT_MAX_NAME_LEN];
	size_t len, bad;
	if (kb_utf8_to_utf16(host_name, strlen(host_name), buf, EXFAT_MAX_NAME_LEN, &len, &bad) < 0) {
		if (errno == EILSEQ)
			snprintf(s->err, s->err_len, "%s%s: name is not valid UTF-8 (byte %zu)", ellipsis(n->path),
				 tail(n->path), bad);
		else
			snprintf(s->err, s->err_len, "%s: name is %zu UTF-16 units long, exFAT allows %u",
				 n->path, len, EXFAT_MAX_NAME_LEN);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (exfat_name_char_invalid(buf[i])) {
			snprintf(s->err, s->err_len, "%s: name contains a character exFAT forbids "
				 "(U+%04X)", n->path, buf[i]);
			return -1;
		}
	}
	n->name = malloc(len * sizeof(uint16_t));
	if (!n->name) {
		snprintf(s->err, s->err_len, "out of memory");
		return -1;
	}
	memcpy(n->name, buf, len * sizeof(uint16_t));
	n->name_len = (unsigned)len;
	uint16_t up[EXFAT_MAX_NAME_LEN];
	exfat_upcase_name(s->upcase, buf, (unsigned)len, up);
	n->name_hash = exfat_name_hash(up, (unsigned)len);
	return 0;
}

static const struct exfat_upcase_map *sort_upcase;

static int cmp_upcased(const void *a, const void *b)
{
	const struct exfat_tree_node *x = *(struct exfat_tree_node *const *)a;
	const struct exfat_tree_node *y = *(struct exfat_tree_node *const *)b;
	unsigned n = x->name_len < y->name_len ? x->name_len : y->name_len;
	for (unsigned i = 0; i < n; i++) {
		uint16_t cx = exfat_upcase_char(sort_upcase, x->name[i]);
		uint16_t cy = exfat_upcase_char(sort_upcase, y->name[i]);
		if (cx != cy)
			return cx < cy ? -1 : 1;
	}
	return (int)x->name_len - (int)y->name_len;
}

static int cmp_path(const void *a, const void *b)
{
	const struct exfat_tree_node *x = *(struct exfat_tree_node *const *)a;
	const struct exfat_tree_node *y = *(struct exfat_tree_node *const *)b;
	return strcmp(x->path, y->path);
}

/* exFAT compares names case-insensitively: two host names that differ only
 * in case cannot both be stored. */
static int check_duplicates(struct exfat_tree_node *dir, struct scan *s)
{
	if (dir->nchildren < 2)
		return 0;
	sort_upcase = s->upcase;
	qsort(dir->children, dir->nchildren, sizeof(*dir->children), cmp_upcased);
	for (size_t i = 1; i < dir->nchildren; i++) {
		if (!cmp_upcased(&dir->children[i - 1], &dir->children[i])) {
			snprintf(s->err, s->err_len, "%s and %s: names differ only in case, which exFAT "
				 "cannot store in one directory", dir->children[i - 1]->path,
				 dir->children[i]->path);
			return -1;
		}
	}
	/* Then a reproducible order: by host name. */
	qsort(dir->children, dir->nchildren, sizeof(*dir->children), cmp_path);
	return 0;
}

static void set_times(struct exfat_tree_node *n, const struct statx *stx)
{
	n->mtime = stx->stx_mtime.tv_sec;
	n->mtime_ns = stx->stx_mtime.tv_nsec;
	n->atime = stx->stx_atime.tv_sec;
	n->atime_ns = stx->stx_atime.tv_nsec;
	if (stx->stx_mask & STATX_BTIME) {
		n->btime = stx->stx_btime.tv_sec;
		n->btime_ns = stx->stx_btime.tv_nsec;
	} else {
		n->btime = n->mtime;
		n->btime_ns = n->mtime_ns;
	}
}

static int scan_dir(struct exfat_tree_node *dir, struct scan *s);

static struct exfat_tree_node *scan_entry(const char *path, const char *host_name, struct scan *s)
{
	struct statx stx;
	/* The root given on the command line may be a symlink to a directory. */
	int flags = host_name ? AT_SYMLINK_NOFOLLOW : 0;
	if (statx(AT_FDCWD, path, flags, STATX_BASIC_STATS | STATX_BTIME, &stx) < 0) {
		snprintf(s->err, s->err_len, "%s%s: %s", ellipsis(path), tail(path), strerror(errno));
		return NULL;
	}
	struct exfat_tree_node *n = calloc(1, sizeof(*n));
	if (!n || !(n->path = strdup(path))) {
		free(n);
		snprintf(s->err, s->err_len, "out of memory");
		return NULL;
	}
	if (!S_ISREG(stx.stx_mode) && !S_ISDIR(stx.stx_mode)) {
		if (s->skip)
			s->skip(path, S_ISLNK(stx.stx_mode) ? "symbolic links cannot be stored on exFAT"
							    : "special files cannot be stored on exFAT",
				s->arg);
		exfat_tree_free(n);
		errno = 0;
		return NULL;
	}
	n->is_dir = S_ISDIR(stx.stx_mode);
	/* A file that cannot be read must stop the run now, before the target
	 * is touched, not half-way through writing it. */
	if (!n->is_dir && faccessat(AT_FDCWD, path, R_OK, AT_EACCESS) < 0) {
		snprintf(s->err, s->err_len, "%s%s: %s", ellipsis(path), tail(path), strerror(errno));
		exfat_tree_free(n);
		return NULL;
	}
	n->size = n->is_dir ? 0 : stx.stx_size;
	n->attributes = n->is_dir ? EXFAT_ATTR_DIRECTORY : EXFAT_ATTR_ARCHIVE;
	if (!(stx.stx_mode & S_IWUSR))
		n->attributes |= EXFAT_ATTR_READ_ONLY;
	set_times(n, &stx);
	if (host_name && set_name(n, host_name, s) < 0) {
		exfat_tree_free(n);
		return NULL;
	}
	if (n->is_dir && scan_dir(n, s) < 0) {
		exfat_tree_free(n);
		return NULL;
	}
	return n;
}

static int scan_dir(struct exfat_tree_node *dir, struct scan *s)
{
	DIR *d = opendir(dir->path);
	if (!d) {
		snprintf(s->err, s->err_len, "%s%s: %s", ellipsis(dir->path), tail(dir->path), strerror(errno));
		return -1;
	}
	size_t cap = 0;
	struct dirent *de;
	int rc = 0;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *path;
		if (asprintf(&path, "%s/%s", dir->path, de->d_name) < 0) {
			snprintf(s->err, s->err_len, "out of memory");
			rc = -1;
			break;
		}
		errno = 0;
		struct exfat_tree_node *child = scan_entry(path, de->d_name, s);
		free(path);
		if (!child) {
			if (errno == 0 && s->err[0] == '\0')
				continue;   /* skipped */
			rc = -1;
			break;
		}
		if (dir->nchildren == cap) {
			cap = cap ? cap * 2 : 16;
			struct exfat_tree_node **c = realloc(dir->children, cap * sizeof(*c));
			if (!c) {
				exfat_tree_free(child);
				snprintf(s->err, s->err_len, "out of memory");
				rc = -1;
				break;
			}
			dir->children = c;
		}
		dir->children[dir->nchildren++] = child;
		errno = 0;
	}
	if (rc == 0 && errno) {
		snprintf(s->err, s->err_len, "%s%s: %s", ellipsis(dir->path), tail(dir->path), strerror(errno));
		rc = -1;
	}
	closedir(d);
	return rc < 0 ? -1 : check_duplicates(dir, s);
}

struct exfat_tree_node *exfat_tree_scan(const char *dir, const struct exfat_upcase_map *upcase_map,
					 exfat_tree_skip_fn skip, void *arg, char *err, size_t err_len)
{
	struct scan s = { upcase_map, skip, arg, err, err_len };
	err[0] = '\0';
	errno = 0;
	struct exfat_tree_node *root = scan_entry(dir, NULL, &s);
	if (root && !root->is_dir) {
		snprintf(err, err_len, "%s: not a directory", dir);
		exfat_tree_free(root);
		return NULL;
	}
	if (!root && !err[0])
		snprintf(err, err_len, "%s: not a directory", dir);
	return root;
}
