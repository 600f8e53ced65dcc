/* x86 split-lock / bus-lock detection: the kernel's log messages and the
 * system's configuration (CPU flags, boot command line, sysctl, PMU).
 * Kernel interface: /dev/kmsg (through kmsg.h), /proc/cpuinfo, /proc/cmdline,
 * /proc/sys/kernel/split_lock_mitigate and dmesg_restrict, and
 * perf_event_open to see whether the PMU can be used. */
#ifndef KBOX_SPLITLOCK_H
#define KBOX_SPLITLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Every message of the feature carries this prefix (pr_fmt). */
#define KB_SL_PREFIX "x86/split lock detection: "

enum kb_sl_mode { KB_SL_MODE_UNKNOWN, KB_SL_MODE_OFF, KB_SL_MODE_WARN, KB_SL_MODE_FATAL,
		  KB_SL_MODE_RATELIMIT };
enum kb_sl_kind { KB_SL_SPLIT_LOCK, KB_SL_BUS_LOCK };   /* #AC, #DB */

enum kb_sl_msg_type {
	KB_SL_MSG_NONE,        /* not one of ours */
	KB_SL_MSG_TRAP,        /* a task took a trap */
	KB_SL_MSG_SUPPRESSED,  /* "FUNC: N callbacks suppressed" from our call sites */
	KB_SL_MSG_MODE,        /* the boot-time mode message */
	KB_SL_MSG_OTHER,       /* ours but informational ("No splitlock CPU offline handler") */
};

struct kb_sl_msg {
	enum kb_sl_msg_type type;
	enum kb_sl_kind kind;       /* TRAP, SUPPRESSED, and MODE when known */
	/* TRAP */
	char comm[64];              /* the thread's name as the kernel printed it */
	pid_t tid;
	uint64_t address;           /* the instruction after the locked one */
	bool guest_fatal;           /* "fatal"/"bogus" form: a KVM guest's split lock, SIGBUS sent */
	/* SUPPRESSED */
	uint64_t suppressed;
	/* MODE */
	enum kb_sl_mode mode;
	bool mode_has_kind;
	unsigned ratelimit;         /* bus locks per second, for KB_SL_MODE_RATELIMIT */
};

/* Classifies one kernel log message (without the record header). */
void kb_sl_parse_message(const char *msg, struct kb_sl_msg *out);

const char *kb_sl_mode_name(enum kb_sl_mode mode);     /* "off", "warn", ... */
const char *kb_sl_kind_name(enum kb_sl_kind kind);     /* "split_lock", "bus_lock" */
const char *kb_sl_kind_trap(enum kb_sl_kind kind);     /* "#AC", "#DB" */

struct kb_sl_status {
	bool cpuinfo_read;
	bool split_lock_detect;     /* cpuinfo flag: #AC on split locks */
	bool bus_lock_detect;       /* cpuinfo flag: #DB after bus locks */
	bool cmdline_read;
	char cmdline_option[32];    /* value of split_lock_detect=, "" when absent */
	enum kb_sl_mode cmdline_mode;
	unsigned cmdline_ratelimit;
	int mitigate;               /* /proc/sys/kernel/split_lock_mitigate, -1 absent */
	int mitigate_errno;
	int dmesg_restrict;         /* /proc/sys/kernel/dmesg_restrict, -1 unknown */
	/* From the boot message in the kernel log, when it could be read. */
	int log_errno;              /* 0, or why /dev/kmsg could not be read */
	bool log_found;
	struct kb_sl_msg log_mode;
	uint64_t log_ts_usec;
	/* perf_event_open of a hardware event: 0 when the PMU answers, else errno. */
	int perf_errno;
	/* The resulting judgement. */
	enum kb_sl_mode mode;
	unsigned ratelimit;
};

/* Fills *st from /proc/cpuinfo, /proc/cmdline, the sysctls, the kernel log
 * (/dev/kmsg, or the saved dump log_file when not NULL) and perf_event_open;
 * never fails (unreadable parts are marked so). */
void kb_sl_status_read(struct kb_sl_status *st, const char *log_file);
/* Updates st->mode from a mode message found in a log. */
void kb_sl_status_apply_log(struct kb_sl_status *st, const struct kb_sl_msg *m, uint64_t ts_usec);

/* Parses the value of split_lock_detect= as the kernel does. */
enum kb_sl_mode kb_sl_parse_cmdline_option(const char *arg, unsigned *ratelimit);

#endif
