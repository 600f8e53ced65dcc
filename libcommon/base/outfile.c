/* Safe output files (see outfile.h). */
#include "base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* path with every symbolic link on it followed, to the file it names in the
 * end, which need not exist yet (a dangling link names the file to create).
 * Malloc'ed; NULL with errno (ELOOP past 40 links). */
static char *follow_links(const char *path)
{
	char *cur = strdup(path);
	for (int hops = 0; cur; hops++) {
		struct stat st;
		if (lstat(cur, &st) < 0 || !S_ISLNK(st.st_mode))
			return cur;
		if (hops == 40) {
			free(cur);
			errno = ELOOP;
			return NULL;
		}
		char target[PATH_MAX];
		ssize_t n = readlink(cur, target, sizeof(target) - 1);
		if (n < 0) {
			free(cur);
			return NULL;
		}
		target[n] = '\0';
		char *next = NULL;
		if (target[0] == '/') {
			next = strdup(target);
		} else {
			char *slash = strrchr(cur, '/');
			if (asprintf(&next, "%.*s%s", slash ? (int)(slash - cur + 1) : 0, cur, target) < 0)
				next = NULL;
		}
		free(cur);
		cur = next;
	}
	errno = ENOMEM;
	return NULL;
}

int kb_outfile_open(struct kb_outfile *f, const char *path, mode_t mode)
{
	memset(f, 0, sizeof(*f));
	f->direct_fd = -1;
	if (!strcmp(path, "-")) {
		f->fd = STDOUT_FILENO;
		return 0;
	}
	struct stat sb;
	if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		if (S_ISDIR(sb.st_mode)) {
			errno = EISDIR;
			return -1;
		}
		/* A device, FIFO or socket (/dev/null, a pipe to a compressor):
		 * write into it; renaming a file over it would replace the node. */
		f->fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
		f->in_place = f->fd >= 0;
		return f->fd >= 0 ? 0 : -1;
	}
	/* Through a symbolic link: replace the file it names, not the link. */
	char *resolved = follow_links(path);
	if (!resolved)
		return -1;
	path = resolved;
	char *copy = strdup(path), *copy2 = strdup(path);
	if (!copy || !copy2) {
		free(copy);
		free(copy2);
		errno = ENOMEM;
		return -1;
	}
	const char *dir = dirname(copy), *base = basename(copy2);
	/* An unnamed file first: nothing is left behind if we are killed. */
	f->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (f->fd >= 0 && fchmod(f->fd, mode) < 0) {
		close(f->fd);
		f->fd = -1;
	}
	f->unnamed = f->fd >= 0;
	if (asprintf(&f->tmp, "%s/.%s.XXXXXX", dir, base) < 0) {
		f->tmp = NULL;
		free(copy);
		free(copy2);
		free(resolved);
		errno = ENOMEM;
		return -1;
	}
	free(copy);
	free(copy2);
	if (!f->unnamed)
		f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0 || fchmod(f->fd, mode) < 0 || !(f->path = strdup(path))) {
		int e = errno;
		kb_outfile_abort(f);
		free(resolved);
		errno = e;
		return -1;
	}
	free(resolved);
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", f->fd);
	f->direct_fd = open(self, O_WRONLY | O_DIRECT | O_CLOEXEC);
	return 0;
}

static void close_direct(struct kb_outfile *f)
{
	if (f->direct_fd >= 0)
		close(f->direct_fd);
	f->direct_fd = -1;
}

#define WRITEBACK_STEP (32ull << 20)

#define DIRECT_ALIGN 4096u

int kb_outfile_write(void *arg, const void *buf, size_t len)
{
	struct kb_outfile *f = arg;
	const char *p = buf;
	/* Page-aligned pieces of a regular file go straight to the disk: no
	 * copy into the page cache, nothing left for the final fsync. */
	if (f->direct_fd >= 0 && !((uintptr_t)p % DIRECT_ALIGN) && !(len % DIRECT_ALIGN) &&
	    !(f->written % DIRECT_ALIGN)) {
		while (len) {
			ssize_t n = pwrite(f->direct_fd, p, len, (off_t)f->written);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || n % DIRECT_ALIGN) {
				close_direct(f);        /* from now on through the page cache */
				break;
			}
			p += n;
			len -= (size_t)n;
			f->written += (uint64_t)n;
		}
		if (!len)
			return 0;
	}
	while (len) {
		/* At the file's own offset: the O_DIRECT writes moved no position. */
		ssize_t n = f->direct_fd >= 0 ? pwrite(f->fd, p, len, (off_t)f->written)
					      : write(f->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		f->written += (uint64_t)n;
	}
	/* Start writing back what is written, so that the disk works while we
	 * produce the rest and the final fsync has little left to do. */
	if (f->tmp && f->written - f->flushed >= WRITEBACK_STEP) {
		sync_file_range(f->fd, (off_t)f->flushed, (off_t)(f->written - f->flushed),
				SYNC_FILE_RANGE_WRITE);
		f->flushed = f->written;
	}
	return 0;
}

int kb_outfile_commit(struct kb_outfile *f)
{
	close_direct(f);
	if (f->in_place) {
		f->in_place = false;
		return close(f->fd);
	}
	if (!f->tmp)
		return 0;
	if (fsync(f->fd) < 0) {
		int e = errno;
		f->fd = -1;
		kb_outfile_abort(f);
		errno = e;
		return -1;
	}
	bool renamed = false;
	if (f->unnamed) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
		f->unnamed = false;
		/* Nothing under the name yet: give it in one step. Otherwise a
		 * temporary name only now (linkat cannot replace), renamed at
		 * once: a kill in between is the one way to leave it behind. */
		if (linkat(AT_FDCWD, proc, AT_FDCWD, f->path, AT_SYMLINK_FOLLOW) == 0) {
			renamed = true;
		} else {
			bool named = false;
			for (int tries = 0; errno == EEXIST && tries <= 100 && !named; tries++) {
				char *x = f->tmp + strlen(f->tmp) - 6;
				for (int i = 0; i < 6; i++)
					x[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(unsigned)rand() % 36];
				named = linkat(AT_FDCWD, proc, AT_FDCWD, f->tmp, AT_SYMLINK_FOLLOW) == 0;
			}
			renamed = named && rename(f->tmp, f->path) == 0;
			if (!renamed) {
				int e = errno;
				close(f->fd);
				f->fd = -1;
				if (named)
					unlink(f->tmp);
				free(f->tmp);
				f->tmp = NULL;
				kb_outfile_abort(f);
				errno = e;
				return -1;
			}
		}
	}
	close(f->fd);
	f->fd = -1;
	if (!renamed && rename(f->tmp, f->path) < 0) {
		int e = errno;
		kb_outfile_abort(f);
		errno = e;
		return -1;
	}
	char *copy = strdup(f->path);
	if (copy) {
		int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(copy);
	}
	free(f->tmp);
	free(f->path);
	f->tmp = f->path = NULL;
	return 0;
}

void kb_outfile_abort(struct kb_outfile *f)
{
	close_direct(f);
	if (f->in_place)
		close(f->fd);
	f->in_place = false;
	if (f->tmp) {
		if (f->fd >= 0)
			close(f->fd);
		if (!f->unnamed)
			unlink(f->tmp);
	}
	free(f->tmp);
	free(f->path);
	f->tmp = f->path = NULL;
	f->fd = -1;
}

const char *kb_outfile_tmpname(const struct kb_outfile *f)
{
	return f->unnamed ? NULL : f->tmp;
}
