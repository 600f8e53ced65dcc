/* Copies files CHUNK bytes of each in turn, so that a filesystem allocating
 * as it goes gives them interleaved (fragmented) cluster chains.
 *   interleave-copy CHUNK SRC DST < LIST
 * LIST: one relative path a line; SRC/PATH is copied to DST/PATH (created or
 * truncated; directories must exist). Round r writes bytes [r * CHUNK,
 * (r + 1) * CHUNK) of every file that has them, opening it for that write. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int copy_chunk(const char *src, const char *dst, size_t chunk, size_t round, char *buf, int *more)
{
	int in = open(src, O_RDONLY), out = -1, rc = -1;
	if (in < 0)
		return -1;
	ssize_t n = pread(in, buf, chunk, (off_t)(round * chunk));
	if (n < 0)
		goto out;
	if (n == 0 && round > 0) {
		rc = 0;
		goto out;
	}
	out = open(dst, O_WRONLY | O_CREAT | (round ? 0 : O_TRUNC), 0644);
	if (out < 0 || pwrite(out, buf, (size_t)n, (off_t)(round * chunk)) != n)
		goto out;
	*more |= (size_t)n == chunk;
	rc = 0;
out:
	if (out >= 0 && close(out) < 0)
		rc = -1;
	close(in);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: interleave-copy CHUNK SRC DST < LIST\n");
		return 2;
	}
	size_t chunk = strtoul(argv[1], NULL, 0), n = 0, cap = 0;
	char **list = NULL, *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	while ((len = getline(&line, &linecap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = 0;
		if (n == cap && !(list = realloc(list, (cap = cap ? cap * 2 : 64) * sizeof(*list))))
			return 1;
		list[n++] = strdup(line);
	}
	char *buf = malloc(chunk ? chunk : 1);
	if (!chunk || !buf)
		return 2;
	int more = 1;
	for (size_t round = 0; more; round++) {
		more = 0;
		for (size_t k = 0; k < n; k++) {
			char src[4096], dst[4096];
			snprintf(src, sizeof(src), "%s/%s", argv[2], list[k]);
			snprintf(dst, sizeof(dst), "%s/%s", argv[3], list[k]);
			if (copy_chunk(src, dst, chunk, round, buf, &more) < 0) {
				fprintf(stderr, "interleave-copy: %s: %s\n", list[k], strerror(errno));
				return 1;
			}
		}
	}
	return 0;
}
