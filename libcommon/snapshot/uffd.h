/* userfaultfd write-protection and the PAGEMAP_SCAN ioctl, used on a uffd
 * that belongs to another process (taken with pidfd_getfd). */
#ifndef KBOX_UFFD_H
#define KBOX_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Features newer than the installed kernel headers may know. */
#define KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP (1ull << 0)
#define KB_UFFD_FEATURE_EVENT_REMAP       (1ull << 2)
#define KB_UFFD_FEATURE_EVENT_REMOVE      (1ull << 3)
#define KB_UFFD_FEATURE_EVENT_UNMAP       (1ull << 6)
#define KB_UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1ull << 12)
#define KB_UFFD_FEATURE_WP_UNPOPULATED    (1ull << 13)
#define KB_UFFD_FEATURE_WP_ASYNC          (1ull << 15)

/* UFFDIO_API handshake asking for wanted features; *got receives those the
 * kernel granted. Fails (EINVAL) if a required one is missing. */
int kb_uffd_api(int uffd, uint64_t wanted, uint64_t required, uint64_t *got);
/* Features this kernel offers (a handshake on a throw-away uffd of our own). */
int kb_uffd_probe_features(uint64_t *features);
int kb_uffd_register_wp(int uffd, uint64_t start, uint64_t len);
int kb_uffd_unregister(int uffd, uint64_t start, uint64_t len);
/* Write-protects (protect=true) or releases a range; releasing wakes the
 * threads waiting on it. EAGAIN: the process is changing its mappings and
 * waits for its event (unmap, remap...) to be read from the uffd first. */
int kb_uffd_writeprotect(int uffd, uint64_t start, uint64_t len, bool protect);

enum kb_uffd_event_kind { KB_UFFD_WP_FAULT, KB_UFFD_OTHER_FAULT, KB_UFFD_REMAP, KB_UFFD_REMOVE,
			  KB_UFFD_UNMAP, KB_UFFD_UNKNOWN };
struct kb_uffd_event {
	enum kb_uffd_event_kind kind;
	uint64_t addr, end;     /* fault address; or range [addr, end) */
	uint64_t to;            /* REMAP destination */
};
/* Reads up to max events (non-blocking uffd). Returns the count, 0 if none
 * are pending, -1 with errno. */
int kb_uffd_read_events(int uffd, struct kb_uffd_event *ev, int max);

/* PAGEMAP_SCAN (6.7+): ranges of pages written since they were last
 * write-protected in [start, end), re-protecting them at once. Calls cb for
 * each written range. Returns the number of pages written, or -1 (ENOTTY on
 * kernels without the ioctl). */
int64_t kb_pagemap_scan_written(int pagemap_fd, uint64_t start, uint64_t end,
				void (*cb)(uint64_t start, uint64_t end, void *arg), void *arg);

#endif
