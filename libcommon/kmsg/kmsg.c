/* Reading /dev/kmsg and saved dumps of it; see kmsg.h. */
#include "kmsg/kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kb_kmsg_open_live(struct kb_kmsg *k, bool from_start)
{
	memset(k, 0, sizeof(*k));
	k->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (k->fd < 0)
		return -1;
	/* A fresh reader starts at the oldest record; SEEK_END skips to "now". */
	if (lseek(k->fd, 0, from_start ? SEEK_SET : SEEK_END) < 0) {
		int e = errno;
		close(k->fd);
		k->fd = -1;
		errno = e;
		return -1;
	}
	return 0;
}

int kb_kmsg_open_file(struct kb_kmsg *k, const char *path)
{
	memset(k, 0, sizeof(*k));
	k->fd = -1;
	if (!strcmp(path, "-")) {
		k->file = stdin;
		return 0;
	}
	k->file = fopen(path, "re");
	if (!k->file)
		return -1;
	/* fopen takes a directory; its first read would fail only later. */
	struct stat st;
	if (fstat(fileno(k->file), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(k->file);
		k->file = NULL;
		errno = EISDIR;
		return -1;
	}
	return 0;
}

void kb_kmsg_close(struct kb_kmsg *k)
{
	if (k->fd >= 0)
		close(k->fd);
	if (k->file && k->file != stdin)
		fclose(k->file);
	free(k->line);
	k->fd = -1;
	k->file = NULL;
	k->line = NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copies the message, decoding the kernel's \xNN escapes of unprintable
 * bytes; \x00 stays escaped so the result is a C string. */
static void copy_message(struct kb_kmsg_record *rec, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o < sizeof(rec->message) - 1; i++) {
		char c = s[i];
		if (c == '\n')
			break;  /* continuation lines follow */
		if (c == '\\' && i + 3 < len + 0 && s[i + 1] == 'x' &&
		    hexval(s[i + 2]) >= 0 && hexval(s[i + 3]) >= 0) {
			int v = hexval(s[i + 2]) * 16 + hexval(s[i + 3]);
			if (v != 0) {
				rec->message[o++] = (char)v;
				i += 3;
				continue;
			}
		}
		rec->message[o++] = c;
	}
	while (o > 0 && rec->message[o - 1] == '\r')
		o--;
	rec->message[o] = '\0';
	rec->message_len = o;
}

/* Unsigned decimal at *p, advancing it; false when there is no digit or it overflows. */
static bool scan_u64(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (s >= end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

/* "[   SEC.USEC]" with optional spaces inside the brackets; sets ts_usec. */
static bool scan_timestamp(const char **p, const char *end, struct kb_kmsg_record *rec)
{
	const char *s = *p;
	uint64_t sec, usec;
	if (s >= end || *s != '[')
		return false;
	s++;
	while (s < end && *s == ' ')
		s++;
	if (!scan_u64(&s, end, &sec) || s >= end || *s != '.')
		return false;
	s++;
	const char *frac = s;
	if (!scan_u64(&s, end, &usec) || s - frac != 6 || s >= end || *s != ']')
		return false;
	s++;
	if (sec > UINT64_MAX / 1000000 - 1)
		return false;
	rec->ts_usec = sec * 1000000 + usec;
	rec->has_ts = true;
	if (s < end && *s == ' ')
		s++;
	*p = s;
	return true;
}

int kb_kmsg_parse(const char *text, size_t len, struct kb_kmsg_record *rec)
{
	const char *p = text, *end = text + len;
	memset(rec, 0, offsetof(struct kb_kmsg_record, message));
	rec->facility = rec->level = -1;
	rec->message[0] = '\0';
	rec->message_len = 0;

	if (p < end && *p >= '0' && *p <= '9') {
		/* kmsg form: PRIO,SEQ,TS,FLAGS[,more];message */
		uint64_t prio, seq, ts;
		if (!scan_u64(&p, end, &prio) || p >= end || *p++ != ',' ||
		    !scan_u64(&p, end, &seq) || p >= end || *p++ != ',' ||
		    !scan_u64(&p, end, &ts) || p >= end || *p++ != ',')
			return -1;
		if (prio > 0xffffffu)
			return -1;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!semi || (nl && nl < semi))
			return -1;
		rec->flags = (semi > p) ? *p : 0;
		if (rec->flags && rec->flags != '-' && rec->flags != 'c' && rec->flags != '+')
			return -1;
		rec->facility = (int)(prio >> 3);
		rec->level = (int)(prio & 7);
		rec->seq = seq;
		rec->has_seq = true;
		rec->ts_usec = ts;
		rec->has_ts = true;
		p = semi + 1;
	} else if (p < end && *p == '<') {
		/* dmesg -r form: <PRIO>[ts] message */
		uint64_t prio;
		p++;
		if (!scan_u64(&p, end, &prio) || p >= end || *p++ != '>' || prio > 0xffffffu)
			return -1;
		rec->facility = (int)(prio >> 3);
		rec->level = (int)(prio & 7);
		if (!scan_timestamp(&p, end, rec))
			return -1;
	} else if (p < end && *p == '[') {
		if (!scan_timestamp(&p, end, rec))
			return -1;
	} else {
		return -1;
	}
	copy_message(rec, p, (size_t)(end - p));
	return 0;
}

/* Notes the sequence number to count records lost to ring-buffer overwrites. */
static void track_seq(struct kb_kmsg *k, const struct kb_kmsg_record *rec)
{
	if (!rec->has_seq)
		return;
	if (k->seq_known && rec->seq > k->next_seq)
		k->lost += rec->seq - k->next_seq;
	k->next_seq = rec->seq + 1;
	k->seq_known = true;
}

static int read_live(struct kb_kmsg *k, struct kb_kmsg_record *rec)
{
	char buf[KB_KMSG_RECORD_MAX + 64];
	for (;;) {
		ssize_t n = read(k->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == EPIPE)
				continue;  /* overwritten; the seq gap counts it */
			return -1;
		}
		if (n == 0)
			return 0;
		if (kb_kmsg_parse(buf, (size_t)n, rec) < 0)
			continue;  /* the kernel's format changed under us: skip, don't guess */
		track_seq(k, rec);
		return 1;
	}
}

static int read_file(struct kb_kmsg *k, struct kb_kmsg_record *rec)
{
	for (;;) {
		errno = 0;
		ssize_t n = getline(&k->line, &k->line_cap, k->file);
		if (n < 0)
			return errno ? -1 : 0;
		if (n == 0 || k->line[0] == ' ' || k->line[0] == '\n')
			continue;  /* continuation line of the previous record, or blank */
		if (kb_kmsg_parse(k->line, (size_t)n, rec) < 0) {
			k->garbage++;
			continue;
		}
		/* No seq tracking: a saved log may have been filtered, so a gap
		 * there says nothing about overwritten records. */
		return 1;
	}
}

int kb_kmsg_read(struct kb_kmsg *k, struct kb_kmsg_record *rec)
{
	return k->fd >= 0 ? read_live(k, rec) : read_file(k, rec);
}

int kb_kmsg_wait(struct kb_kmsg *k, const int *other, bool *other_ready, int n_other, int timeout_ms)
{
	struct pollfd pfd[5];
	if (n_other > 4)
		n_other = 4;
	for (int i = 0; i < n_other; i++) {
		other_ready[i] = false;
		pfd[i + 1] = (struct pollfd){ .fd = other[i], .events = POLLIN };
	}
	if (k->fd < 0)
		return 1;
	pfd[0] = (struct pollfd){ .fd = k->fd, .events = POLLIN };
	if (poll(pfd, (nfds_t)n_other + 1, timeout_ms) < 0)
		return -1;
	for (int i = 0; i < n_other; i++)
		other_ready[i] = other[i] >= 0 && (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR));
	return (pfd[0].revents & (POLLIN | POLLERR)) ? 1 : 0;
}
