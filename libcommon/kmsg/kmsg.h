/* The kernel log: reading /dev/kmsg (or a saved dump of it) record by record.
 * A record is "PRIO,SEQ,TS_USEC,FLAGS[,...];MESSAGE" followed by optional
 * continuation lines " KEY=VALUE"; saved dumps may also be in `dmesg -r`
 * form ("<PRIO>[  SEC.USEC] MESSAGE") or plain dmesg form ("[ SEC.USEC] MESSAGE"). */
#ifndef KBOX_KMSG_H
#define KBOX_KMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The kernel never emits a record longer than this (CONSOLE_EXT_LOG_MAX). */
#define KB_KMSG_RECORD_MAX 8192

struct kb_kmsg_record {
	int facility;          /* 0 = kernel; -1 when the input did not say */
	int level;             /* 0..7; -1 when the input did not say */
	uint64_t seq;          /* sequence number; valid when has_seq */
	bool has_seq;
	uint64_t ts_usec;      /* microseconds since boot (the kernel's local clock) */
	bool has_ts;
	char flags;            /* '-', 'c' or '+' (kmsg form only), else 0 */
	/* The message, NUL-terminated, with the kernel's \xNN escapes decoded
	 * (a decoded NUL is kept as \x00 so the string stays intact). */
	char message[KB_KMSG_RECORD_MAX];
	size_t message_len;
};

struct kb_kmsg {
	int fd;                /* /dev/kmsg, or -1 when reading a file */
	FILE *file;            /* a saved dump, or NULL */
	char *line;            /* getline buffer (file mode) */
	size_t line_cap;
	uint64_t lost;         /* records overwritten before they were read */
	uint64_t next_seq;     /* expected next sequence number (0 = unknown) */
	bool seq_known;
	uint64_t garbage;      /* lines of a dump that were not log records */
};

/* Opens /dev/kmsg non-blocking, positioned at the oldest record in the ring
 * buffer (from_start) or after the newest one (only new records are read).
 * Returns 0, or -1 with errno set (EPERM/EACCES: no CAP_SYSLOG under
 * dmesg_restrict). */
int kb_kmsg_open_live(struct kb_kmsg *k, bool from_start);
/* Opens a saved dump ("-" is standard input). Returns 0 or -1 with errno. */
int kb_kmsg_open_file(struct kb_kmsg *k, const char *path);
void kb_kmsg_close(struct kb_kmsg *k);

/* Reads the next record. Returns 1 with *rec filled, 0 when nothing is
 * available right now (live) or at end of file, -1 on a read error (errno).
 * Records overwritten in the ring buffer before being read (EPIPE) are
 * skipped and counted in k->lost (live log only). */
int kb_kmsg_read(struct kb_kmsg *k, struct kb_kmsg_record *rec);
/* Blocks until a record can be read, one of the n_other file descriptors in
 * other (-1 entries are skipped) becomes readable, or timeout_ms passes
 * (-1: forever); other_ready[i] tells which. Returns 1 when a record is
 * readable, 0 otherwise, -1 on error (EINTR when a signal arrived). Files are
 * always readable. */
int kb_kmsg_wait(struct kb_kmsg *k, const int *other, bool *other_ready, int n_other, int timeout_ms);

/* Parses one record in any of the accepted forms (len bytes, need not be
 * NUL-terminated; trailing continuation lines are ignored).
 * Returns 0, or -1 when the text is not a log record. */
int kb_kmsg_parse(const char *text, size_t len, struct kb_kmsg_record *rec);

#endif
