/* userfaultfd ioctls and PAGEMAP_SCAN. */
#include "snapshot/uffd.h"
#include "base/syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int kb_uffd_api(int uffd, uint64_t wanted, uint64_t required, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = wanted };
	if (ioctl(uffd, UFFDIO_API, &api) < 0)
		return -1;
	if ((api.features & required) != required) {
		errno = EINVAL;
		return -1;
	}
	if (got)
		*got = api.features & wanted;
	return 0;
}

int kb_uffd_probe_features(uint64_t *features)
{
	int fd = kb_userfaultfd(O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = kb_userfaultfd(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -1;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int rc = ioctl(fd, UFFDIO_API, &api);
	close(fd);
	if (rc < 0)
		return -1;
	*features = api.features;
	return 0;
}

int kb_uffd_register_wp(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = { .range = { start, len }, .mode = UFFDIO_REGISTER_MODE_WP };
	return ioctl(uffd, UFFDIO_REGISTER, &reg);
}

int kb_uffd_unregister(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { start, len };
	return ioctl(uffd, UFFDIO_UNREGISTER, &r);
}

int kb_uffd_writeprotect(int uffd, uint64_t start, uint64_t len, bool protect)
{
	struct uffdio_writeprotect wp = { .range = { start, len },
					  .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
	for (;;) {
		if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

int kb_uffd_read_events(int uffd, struct kb_uffd_event *ev, int max)
{
	struct uffd_msg msg[64];
	if (max > 64)
		max = 64;
	ssize_t n = read(uffd, msg, sizeof(msg[0]) * (size_t)max);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	int cnt = (int)(n / (ssize_t)sizeof(msg[0]));
	for (int i = 0; i < cnt; i++) {
		struct kb_uffd_event *e = &ev[i];
		memset(e, 0, sizeof(*e));
		switch (msg[i].event) {
		case UFFD_EVENT_PAGEFAULT:
			e->kind = msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP ? KB_UFFD_WP_FAULT
										 : KB_UFFD_OTHER_FAULT;
			e->addr = msg[i].arg.pagefault.address;
			break;
		case UFFD_EVENT_REMAP:
			e->kind = KB_UFFD_REMAP;
			e->addr = msg[i].arg.remap.from;
			e->to = msg[i].arg.remap.to;
			e->end = e->addr + msg[i].arg.remap.len;
			break;
		case UFFD_EVENT_REMOVE:
		case UFFD_EVENT_UNMAP:
			e->kind = msg[i].event == UFFD_EVENT_REMOVE ? KB_UFFD_REMOVE : KB_UFFD_UNMAP;
			e->addr = msg[i].arg.remove.start;
			e->end = msg[i].arg.remove.end;
			break;
		default:
			e->kind = KB_UFFD_UNKNOWN;
		}
	}
	return cnt;
}

/* The PAGEMAP_SCAN uAPI (linux/fs.h of 6.7+), defined here because the
 * installed headers may predate it. */
struct kb_page_region {
	uint64_t start, end, categories;
};
struct kb_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define KB_PAGEMAP_SCAN _IOWR('f', 16, struct kb_pm_scan_arg)
#define KB_PM_SCAN_WP_MATCHING (1 << 0)
#define KB_PM_SCAN_CHECK_WPASYNC (1 << 1)
#define KB_PAGE_IS_WRITTEN (1 << 1)

int64_t kb_pagemap_scan_written(int pagemap_fd, uint64_t start, uint64_t end,
				void (*cb)(uint64_t start, uint64_t end, void *arg), void *arg)
{
	struct kb_page_region vec[512];
	int64_t pages = 0;
	while (start < end) {
		struct kb_pm_scan_arg a = {
			.size = sizeof(a),
			.flags = KB_PM_SCAN_WP_MATCHING | KB_PM_SCAN_CHECK_WPASYNC,
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)vec,
			.vec_len = sizeof(vec) / sizeof(vec[0]),
			.category_mask = KB_PAGE_IS_WRITTEN,
			.return_mask = KB_PAGE_IS_WRITTEN,
		};
		int n = ioctl(pagemap_fd, KB_PAGEMAP_SCAN, &a);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		for (int i = 0; i < n; i++) {
			pages += (int64_t)((vec[i].end - vec[i].start) / 4096);
			if (cb)
				cb(vec[i].start, vec[i].end, arg);
		}
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	return pages;
}
