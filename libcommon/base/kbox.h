/* kbox — shared declarations: the applet descriptor and error reporting.
 * Kernel interface: none (messages go to standard error). */
#ifndef KBOX_H
#define KBOX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Every applet file defines one of these as `const struct applet applet_NAME`
 * and adds APPLET(NAME) to applets/applets.h. */
struct applet {
	const char *name;      /* as typed: "mkfs.exfat" */
	int (*main)(int argc, char **argv);
	const char *summary;   /* one line for `kbox --help` */
	const char *usage;     /* full --help text, printed as is */
	const char *dir;       /* install directory: "bin" or "sbin" */
	int usage_exit;        /* exit code for a bad option; 0 means 2 */
	int error_exit;        /* exit code for an operational error; 0 means 1 */
	unsigned libs;         /* the shared libraries it may open: KB_LIB_BIT(KB_LIB_...)
	                          | ..., see base/libraries.h */
};

/* The running applet (set by the dispatcher before main is called). */
extern const struct applet *kb_applet;
const char *kb_name(void);

/* Messages are one line: "APPLET: message" (kb_warn_errno appends ": strerror"). */
void kb_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kb_warn_errno(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kb_vwarn(const char *fmt, va_list ap, int errnum);
_Noreturn void kb_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void kb_die_errno(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Usage handling shared by all applets. */
_Noreturn void kb_help_exit(void);      /* usage on stdout, exit 0 */
_Noreturn void kb_version_exit(void);   /* "APPLET (kbox) VERSION", exit 0 */
/* "APPLET: message" then "Try 'APPLET --help'..." on stderr; exit usage_exit. */
_Noreturn void kb_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int kb_usage_exit_code(void);
/* The running applet's exit code for an operational error (1 by default). */
int kb_error_exit_code(void);

#define KB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
