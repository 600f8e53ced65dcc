/* Output files written safely: to an unnamed O_TMPFILE (or a temporary name in the destination's
 * directory where that is unsupported), mode as given, fsynced, then renamed; or to
 * standard output for "-". An existing device, FIFO or socket is written in place.
 * Page-aligned writes of page-aligned buffers go through O_DIRECT where the file
 * system allows it. Kernel interface: open(2) with O_TMPFILE and O_DIRECT, fsync(2),
 * linkat(2) and rename(2). */
#ifndef KBOX_OUTFILE_H
#define KBOX_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kb_outfile {
	int fd;
	char *path;     /* final name; NULL for stdout */
	char *tmp;      /* temporary name while writing */
	bool unnamed;   /* O_TMPFILE: no name until committed */
	bool in_place;  /* an existing device, FIFO or socket, written in place */
	uint64_t written, flushed; /* bytes written; of which writeback was started */
	int direct_fd;          /* the same file opened with O_DIRECT, or -1 */
};

int kb_outfile_open(struct kb_outfile *f, const char *path, mode_t mode);
/* write() until done (EINTR, short writes). Returns 0 or -1 with errno. */
int kb_outfile_write(void *f, const void *buf, size_t len);
/* fsync, rename over the final name, fsync the directory. */
int kb_outfile_commit(struct kb_outfile *f);
/* Removes the temporary file. */
void kb_outfile_abort(struct kb_outfile *f);
/* The temporary name (for removal from a signal handler), or NULL. */
const char *kb_outfile_tmpname(const struct kb_outfile *f);

#endif
