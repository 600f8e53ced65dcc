/* Error and usage reporting: every message is one line naming the applet. */
#include "base/kbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct applet *kb_applet;

const char *kb_name(void)
{
	return kb_applet ? kb_applet->name : "kbox";
}

void kb_vwarn(const char *fmt, va_list ap, int errnum)
{
	/* Build the line first so concurrent writers do not interleave it. */
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s: ", kb_name());
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = 0;
	int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (m > 0)
		n = (size_t)(n + m) >= sizeof(buf) ? (int)sizeof(buf) - 1 : n + m;
	if (errnum)
		n += snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(errnum));
	if ((size_t)n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	fflush(stdout);
	fwrite(buf, 1, n, stderr);
}

void kb_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, 0);
	va_end(ap);
}

void kb_warn_errno(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, e);
	va_end(ap);
}

void kb_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, 0);
	va_end(ap);
	exit(code);
}

void kb_die_errno(int code, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, e);
	va_end(ap);
	exit(code);
}

int kb_usage_exit_code(void)
{
	return kb_applet && kb_applet->usage_exit ? kb_applet->usage_exit : 2;
}

int kb_error_exit_code(void)
{
	return kb_applet && kb_applet->error_exit ? kb_applet->error_exit : 1;
}

void kb_help_exit(void)
{
	if (kb_applet && kb_applet->usage)
		fputs(kb_applet->usage, stdout);
	exit(fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1);
}

void kb_version_exit(void)
{
	printf("%s (kbox) %s\n", kb_name(), KBOX_VERSION);
	exit(fflush(stdout) == 0 ? 0 : 1);
}

void kb_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, 0);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n", kb_name());
	exit(kb_usage_exit_code());
}
