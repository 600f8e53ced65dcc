/* libFuzzer target: the input is a saved kernel log (the --kmsg FILE of
 * splitlock-stat: /dev/kmsg records, `dmesg -r` or plain dmesg lines, or
 * anything else), read record by record, each message classified as
 * splitlock-stat does; also the whole input parsed as one record. */
#include "kmsg/kmsg.h"
#include "kmsg/splitlock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kb_kmsg_record rec;
	struct kb_sl_msg m;
	if (kb_kmsg_parse((const char *)data, size, &rec) == 0)
		kb_sl_parse_message(rec.message, &m);

	int fd = memfd_create("log", 0);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct kb_kmsg k;
	if (kb_kmsg_open_file(&k, path) == 0) {
		while (kb_kmsg_read(&k, &rec) > 0)
			kb_sl_parse_message(rec.message, &m);
		kb_kmsg_close(&k);
	}
	close(fd);
	return 0;
}
