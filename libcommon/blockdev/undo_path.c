/* Where an undo file may go (see undo.h): never onto the device it saves. */
#include "blockdev/undo.h"

#include "blockdev/mounted.h"

#include <stdio.h>
#include <sys/stat.h>

int kb_undo_path_check(const char *undo_path, const char *dev, const struct stat *dev_st, char *err,
		       size_t err_len)
{
	struct stat st;
	if (stat(undo_path, &st) < 0)
		return 0; /* created new */
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s: an undo file must be a regular file", undo_path);
		return -1;
	}
	if (st.st_dev == dev_st->st_dev && st.st_ino == dev_st->st_ino) {
		snprintf(err, err_len, "%s: the undo file would be %s itself", undo_path, dev);
		return -1;
	}
	char loop[64];
	if (kb_loop_backing(&st, loop, sizeof(loop))) {
		snprintf(err, err_len, "%s: the undo file backs %s; it would overwrite that device", undo_path,
			 loop);
		return -1;
	}
	return 0;
}
