/* Reading small text files in one go. */
#include "base/readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

ssize_t kb_read_small_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (cap)
		buf[len] = '\0';
	return (ssize_t)len;
}
