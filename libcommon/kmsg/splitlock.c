/* Split-lock / bus-lock detection: message parsing and system status; see splitlock.h.
 * The message texts are those of arch/x86/kernel/cpu/intel.c (5.7-6.6) and
 * arch/x86/kernel/cpu/bus_lock.c (6.7 on). */
#include "kmsg/splitlock.h"
#include "base/readfile.h"
#include "kmsg/kmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

const char *kb_sl_mode_name(enum kb_sl_mode mode)
{
	switch (mode) {
	case KB_SL_MODE_OFF: return "off";
	case KB_SL_MODE_WARN: return "warn";
	case KB_SL_MODE_FATAL: return "fatal";
	case KB_SL_MODE_RATELIMIT: return "ratelimit";
	default: return "unknown";
	}
}

const char *kb_sl_kind_name(enum kb_sl_kind kind)
{
	return kind == KB_SL_SPLIT_LOCK ? "split_lock" : "bus_lock";
}

const char *kb_sl_kind_trap(enum kb_sl_kind kind)
{
	return kind == KB_SL_SPLIT_LOCK ? "#AC" : "#DB";
}

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* Last occurrence of needle in s, or NULL. */
static const char *find_last(const char *s, const char *needle)
{
	const char *found = NULL, *p = s;
	while ((p = strstr(p, needle)) != NULL)
		found = p++;
	return found;
}

/* "0x<hex>" then optional trailing blanks; false on anything else or overflow. */
static bool parse_hex_tail(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;
	for (; *s && *s != ' ' && *s != '\t'; s++, digits++) {
		int d;
		if (*s >= '0' && *s <= '9') d = *s - '0';
		else if (*s >= 'a' && *s <= 'f') d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F') d = *s - 'A' + 10;
		else return false;
		if (digits >= 16)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (digits == 0 || *s)
		return false;
	*out = v;
	return true;
}

/* "NAME/TID<verb>0xADDR" where verb is one of the trap phrases. The name
 * may itself contain '/', spaces or the phrase, so anchor on the last one. */
static bool parse_trap(const char *body, enum kb_sl_kind kind, struct kb_sl_msg *out)
{
	static const struct { const char *verb; enum kb_sl_kind kind; bool fatal; } verbs[] = {
		{ " took a split_lock trap at address: 0x", KB_SL_SPLIT_LOCK, false },
		{ " fatal split_lock trap at address: 0x", KB_SL_SPLIT_LOCK, true },
		{ " bogus split_lock trap at address: 0x", KB_SL_SPLIT_LOCK, true },
		{ " took a bus_lock trap at address: 0x", KB_SL_BUS_LOCK, false },
	};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (verbs[i].kind != kind)
			continue;
		const char *v = find_last(body, verbs[i].verb);
		if (!v)
			continue;
		uint64_t addr;
		if (!parse_hex_tail(v + strlen(verbs[i].verb), &addr))
			return false;
		/* Back from the verb over the decimal tid to the '/'. */
		const char *d = v;
		while (d > body && d[-1] >= '0' && d[-1] <= '9')
			d--;
		if (d == v || d == body || d[-1] != '/' || v - d > 9)
			return false;
		long tid = strtol(d, NULL, 10);
		if (tid <= 0)
			return false;
		size_t name_len = (size_t)(d - 1 - body);
		if (name_len >= sizeof(out->comm))
			return false;
		memcpy(out->comm, body, name_len);
		out->comm[name_len] = '\0';
		out->tid = (pid_t)tid;
		out->address = addr;
		out->kind = kind;
		out->guest_fatal = verbs[i].fatal;
		out->type = KB_SL_MSG_TRAP;
		return true;
	}
	return false;
}

/* "FUNC: N callbacks suppressed" printed by the rate limiter for our call sites. */
static bool parse_suppressed(const char *msg, struct kb_sl_msg *out)
{
	static const struct { const char *func; enum kb_sl_kind kind; } sites[] = {
		{ "handle_bus_lock: ", KB_SL_BUS_LOCK },
		{ "split_lock_warn: ", KB_SL_SPLIT_LOCK },          /* 5.19 on */
		{ "handle_user_split_lock: ", KB_SL_SPLIT_LOCK },   /* 5.7 - 5.18 */
	};
	for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++) {
		if (!starts_with(msg, sites[i].func))
			continue;
		const char *p = msg + strlen(sites[i].func);
		char *end;
		if (*p < '0' || *p > '9')
			return false;
		errno = 0;
		unsigned long long n = strtoull(p, &end, 10);
		if (errno || strcmp(end, " callbacks suppressed") != 0)
			return false;
		out->type = KB_SL_MSG_SUPPRESSED;
		out->kind = sites[i].kind;
		out->suppressed = n;
		return true;
	}
	return false;
}

static bool parse_mode(const char *body, struct kb_sl_msg *out)
{
	static const struct {
		const char *text;
		enum kb_sl_mode mode;
		int kind;   /* -1: not said */
	} forms[] = {
		{ "disabled", KB_SL_MODE_OFF, -1 },
		{ "MSR access failed: Disabled", KB_SL_MODE_OFF, KB_SL_SPLIT_LOCK },
		{ "warning about user-space split_locks", KB_SL_MODE_WARN, KB_SL_SPLIT_LOCK },
		{ "sending SIGBUS on user-space split_locks", KB_SL_MODE_FATAL, KB_SL_SPLIT_LOCK },
		{ "#AC: crashing the kernel on kernel split_locks and warning on user-space split_locks",
		  KB_SL_MODE_WARN, KB_SL_SPLIT_LOCK },
		{ "#AC: crashing the kernel on kernel split_locks and sending SIGBUS on user-space split_locks",
		  KB_SL_MODE_FATAL, KB_SL_SPLIT_LOCK },
		{ "#DB: warning on user-space bus_locks", KB_SL_MODE_WARN, KB_SL_BUS_LOCK },
		{ "#DB: sending SIGBUS on user-space bus_locks", KB_SL_MODE_FATAL, KB_SL_BUS_LOCK },
		{ "#DB: sending SIGBUS on user-space bus_locks from non-WB", KB_SL_MODE_FATAL, KB_SL_BUS_LOCK },
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		if (strcmp(body, forms[i].text) != 0)
			continue;
		out->type = KB_SL_MSG_MODE;
		out->mode = forms[i].mode;
		out->mode_has_kind = forms[i].kind >= 0;
		out->kind = forms[i].kind >= 0 ? (enum kb_sl_kind)forms[i].kind : KB_SL_SPLIT_LOCK;
		return true;
	}
	const char *rl = "#DB: setting system wide bus lock rate limit to ";
	if (starts_with(body, rl)) {
		char *end;
		const char *p = body + strlen(rl);
		if (*p < '0' || *p > '9')
			return false;
		errno = 0;
		unsigned long n = strtoul(p, &end, 10);
		if (errno || n > 1000000 || strcmp(end, "/sec") != 0)
			return false;
		out->type = KB_SL_MSG_MODE;
		out->mode = KB_SL_MODE_RATELIMIT;
		out->mode_has_kind = true;
		out->kind = KB_SL_BUS_LOCK;
		out->ratelimit = (unsigned)n;
		return true;
	}
	return false;
}

void kb_sl_parse_message(const char *msg, struct kb_sl_msg *out)
{
	memset(out, 0, sizeof(*out));
	out->type = KB_SL_MSG_NONE;
	if (parse_suppressed(msg, out))
		return;
	if (!starts_with(msg, KB_SL_PREFIX))
		return;
	const char *body = msg + strlen(KB_SL_PREFIX);
	if (starts_with(body, "#AC: ") && parse_trap(body + 5, KB_SL_SPLIT_LOCK, out))
		return;
	if (starts_with(body, "#DB: ") && parse_trap(body + 5, KB_SL_BUS_LOCK, out))
		return;
	memset(out, 0, sizeof(*out));
	if (parse_mode(body, out))
		return;
	if (!strcmp(body, "No splitlock CPU offline handler"))
		out->type = KB_SL_MSG_OTHER;
}

enum kb_sl_mode kb_sl_parse_cmdline_option(const char *arg, unsigned *ratelimit)
{
	*ratelimit = 0;
	if (!strcmp(arg, "off"))
		return KB_SL_MODE_OFF;
	if (!strcmp(arg, "warn"))
		return KB_SL_MODE_WARN;
	if (!strcmp(arg, "fatal"))
		return KB_SL_MODE_FATAL;
	if (starts_with(arg, "ratelimit:")) {
		char *end;
		errno = 0;
		long n = strtol(arg + 10, &end, 10);
		/* The kernel accepts 1..1000 and ignores anything after the number. */
		if (!errno && end != arg + 10 && n > 0 && n <= 1000) {
			*ratelimit = (unsigned)n;
			return KB_SL_MODE_RATELIMIT;
		}
	}
	return KB_SL_MODE_WARN;  /* unrecognised values leave the default */
}


static bool has_word(const char *list, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = list; (p = strstr(p, word)) != NULL; p += wl) {
		bool start = p == list || p[-1] == ' ' || p[-1] == '\t';
		bool end = p[wl] == '\0' || p[wl] == ' ' || p[wl] == '\n';
		if (start && end)
			return true;
	}
	return false;
}

static void read_cpuinfo(struct kb_sl_status *st)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return;
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, f) > 0) {
		if (!starts_with(line, "flags"))
			continue;
		const char *colon = strchr(line, ':');
		if (!colon)
			continue;
		st->cpuinfo_read = true;
		st->split_lock_detect = has_word(colon + 1, "split_lock_detect");
		st->bus_lock_detect = has_word(colon + 1, "bus_lock_detect");
		break;  /* the boot CPU's flags decide */
	}
	free(line);
	fclose(f);
}

static void read_cmdline(struct kb_sl_status *st)
{
	char buf[4096];
	if (kb_read_small_file("/proc/cmdline", buf, sizeof(buf)) < 0)
		return;
	st->cmdline_read = true;
	char *save = NULL;
	for (char *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (!strcmp(tok, "--"))
			break;  /* the rest is for init */
		if (!starts_with(tok, "split_lock_detect="))
			continue;
		snprintf(st->cmdline_option, sizeof(st->cmdline_option), "%s", tok + 18);
		st->cmdline_mode = kb_sl_parse_cmdline_option(st->cmdline_option, &st->cmdline_ratelimit);
	}
}

static int read_int_file(const char *path, int *err)
{
	char buf[32];
	*err = 0;
	if (kb_read_small_file(path, buf, sizeof(buf)) < 0) {
		*err = errno;
		return -1;
	}
	return atoi(buf);
}

void kb_sl_status_apply_log(struct kb_sl_status *st, const struct kb_sl_msg *m, uint64_t ts_usec)
{
	st->log_found = true;
	st->log_mode = *m;
	st->log_ts_usec = ts_usec;
}

static void scan_log(struct kb_sl_status *st, const char *log_file)
{
	struct kb_kmsg k;
	if ((log_file ? kb_kmsg_open_file(&k, log_file) : kb_kmsg_open_live(&k, true)) < 0) {
		st->log_errno = errno;
		return;
	}
	struct kb_kmsg_record *rec = malloc(sizeof(*rec));
	if (!rec) {
		st->log_errno = ENOMEM;
		kb_kmsg_close(&k);
		return;
	}
	int r;
	while ((r = kb_kmsg_read(&k, rec)) > 0) {
		if (rec->facility > 0)
			continue;  /* user space cannot log with the kernel facility */
		struct kb_sl_msg m;
		kb_sl_parse_message(rec->message, &m);
		if (m.type == KB_SL_MSG_MODE)
			kb_sl_status_apply_log(st, &m, rec->ts_usec);
	}
	if (r < 0)
		st->log_errno = errno;
	free(rec);
	kb_kmsg_close(&k);
}

static void probe_perf(struct kb_sl_status *st)
{
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_HARDWARE;
	attr.config = PERF_COUNT_HW_CPU_CYCLES;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0) {
		st->perf_errno = errno;
		return;
	}
	close(fd);
	st->perf_errno = 0;
}

void kb_sl_status_read(struct kb_sl_status *st, const char *log_file)
{
	memset(st, 0, sizeof(*st));
	read_cpuinfo(st);
	read_cmdline(st);
	st->mitigate = read_int_file("/proc/sys/kernel/split_lock_mitigate", &st->mitigate_errno);
	int err;
	st->dmesg_restrict = read_int_file("/proc/sys/kernel/dmesg_restrict", &err);
	scan_log(st, log_file);
	probe_perf(st);

	/* The kernel's own boot message is authoritative (and is all a saved
	 * log from another machine tells). */
	if (st->log_found) {
		st->mode = st->log_mode.mode;
		st->ratelimit = st->log_mode.ratelimit;
	} else if (!st->split_lock_detect && !st->bus_lock_detect && st->cpuinfo_read) {
		st->mode = KB_SL_MODE_OFF;   /* nothing to detect with */
	} else if (st->cmdline_option[0]) {
		st->mode = st->cmdline_mode;
		st->ratelimit = st->cmdline_ratelimit;
	} else if (st->cpuinfo_read) {
		st->mode = KB_SL_MODE_WARN;  /* the kernel's default when supported */
	} else {
		st->mode = KB_SL_MODE_UNKNOWN;
	}
}
