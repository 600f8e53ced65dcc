/* gpio-line: a small GPIO client for gpio-watch's VM tests, static so it runs
 * in the test VM as is. It is deliberately independent of kbox's own code,
 * so it acts as "another process" on the lines.
 *
 *   gpio-line hold DEV OFFSET[,OFFSET...] STEP...
 *       steps, run in order:
 *         consumer=NAME     consumer label for the next request
 *         request=FLAGS     request the lines (FLAGS joined by '+': in out
 *                           active-low pull-up pull-down bias-off open-drain
 *                           open-source rising falling realtime dbUS)
 *         config=FLAGS      reconfigure the held request
 *         release           release the held request
 *         sleep=MS          sleep
 *         echo=TEXT         print TEXT on stdout (a marker for scripts)
 *         wait              wait for SIGTERM or SIGINT, then exit 0
 *       exit 3 when a line is busy, 1 on other errors.
 *   gpio-line toggle PULL_ATTR N [PAUSE_US]
 *       writes pull-up / pull-down alternately N times to a gpio-sim line's
 *       sysfs pull attribute (starting opposite to its value), one edge each,
 *       pausing PAUSE_US microseconds after each write (default 0).
 *   gpio-line measure CMD [ARG...]
 *       runs CMD, forwards SIGTERM/SIGINT to it, and when it ends prints
 *       "cpu_us USER SYS" (its CPU time in microseconds) on stderr.
 *   gpio-line runas UID CMD [ARG...]
 *       runs CMD with user and group id UID and no supplementary groups. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/gpio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
	fprintf(stderr, "gpio-line: %s: %s\n", what, strerror(errno));
	exit(errno == EBUSY ? 3 : 1);
}

static int parse_flags(const char *s, struct gpio_v2_line_config *cfg, unsigned num_lines)
{
	char *copy = strdup(s), *save = NULL;
	memset(cfg, 0, sizeof(*cfg));
	for (char *t = strtok_r(copy, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
		static const struct { const char *name; __u64 flag; } names[] = {
			{ "in", GPIO_V2_LINE_FLAG_INPUT }, { "out", GPIO_V2_LINE_FLAG_OUTPUT },
			{ "active-low", GPIO_V2_LINE_FLAG_ACTIVE_LOW },
			{ "pull-up", GPIO_V2_LINE_FLAG_BIAS_PULL_UP },
			{ "pull-down", GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN },
			{ "bias-off", GPIO_V2_LINE_FLAG_BIAS_DISABLED },
			{ "open-drain", GPIO_V2_LINE_FLAG_OPEN_DRAIN },
			{ "open-source", GPIO_V2_LINE_FLAG_OPEN_SOURCE },
			{ "rising", GPIO_V2_LINE_FLAG_EDGE_RISING },
			{ "falling", GPIO_V2_LINE_FLAG_EDGE_FALLING },
			{ "realtime", GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME },
		};
		size_t i;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(t, names[i].name)) {
				cfg->flags |= names[i].flag;
				break;
			}
		if (i < sizeof(names) / sizeof(names[0]))
			continue;
		if (!strncmp(t, "db", 2)) {
			struct gpio_v2_line_config_attribute *a = &cfg->attrs[cfg->num_attrs++];
			a->attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
			a->attr.debounce_period_us = (__u32)strtoul(t + 2, NULL, 10);
			a->mask = (1ULL << num_lines) - 1;
			continue;
		}
		fprintf(stderr, "gpio-line: unknown flag %s\n", t);
		exit(1);
	}
	free(copy);
	return 0;
}

static int hold(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: gpio-line hold DEV OFFSETS STEP...\n");
		return 1;
	}
	int chip = open(argv[1], O_RDWR | O_CLOEXEC);
	if (chip < 0)
		die(argv[1]);
	struct gpio_v2_line_request req;
	memset(&req, 0, sizeof(req));
	char *save = NULL;
	for (char *t = strtok_r(argv[2], ",", &save); t && req.num_lines < GPIO_V2_LINES_MAX;
	     t = strtok_r(NULL, ",", &save))
		req.offsets[req.num_lines++] = (__u32)strtoul(t, NULL, 10);
	snprintf(req.consumer, sizeof(req.consumer), "gpio-line");
	int line_fd = -1;
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	for (int i = 3; i < argc; i++) {
		char *step = argv[i], *arg = strchr(step, '=');
		if (arg)
			arg++;
		if (!strncmp(step, "consumer=", 9)) {
			snprintf(req.consumer, sizeof(req.consumer), "%s", arg);
		} else if (!strncmp(step, "request=", 8)) {
			parse_flags(arg, &req.config, req.num_lines);
			if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &req) < 0)
				die("request");
			line_fd = req.fd;
		} else if (!strncmp(step, "config=", 7)) {
			struct gpio_v2_line_config cfg;
			parse_flags(arg, &cfg, req.num_lines);
			if (ioctl(line_fd, GPIO_V2_LINE_SET_CONFIG_IOCTL, &cfg) < 0)
				die("config");
		} else if (!strcmp(step, "release")) {
			close(line_fd);
			line_fd = -1;
		} else if (!strncmp(step, "sleep=", 6)) {
			long ms = strtol(arg, NULL, 10);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
			nanosleep(&ts, NULL);
		} else if (!strncmp(step, "echo=", 5)) {
			printf("%s\n", arg);
			fflush(stdout);
		} else if (!strcmp(step, "wait")) {
			int sig;
			sigwait(&stop, &sig);
		} else {
			fprintf(stderr, "gpio-line: unknown step %s\n", step);
			return 1;
		}
	}
	return 0;
}

static int toggle(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: gpio-line toggle PULL_ATTR N [PAUSE_US]\n");
		return 1;
	}
	char value_path[4096];
	snprintf(value_path, sizeof(value_path), "%s", argv[1]);
	char *slash = strrchr(value_path, '/');
	if (!slash)
		return 1;
	strcpy(slash + 1, "value");
	char v = '0';
	int vfd = open(value_path, O_RDONLY);
	if (vfd >= 0) {
		if (read(vfd, &v, 1) != 1)
			v = '0';
		close(vfd);
	}
	int fd = open(argv[1], O_WRONLY);
	if (fd < 0)
		die(argv[1]);
	long n = strtol(argv[2], NULL, 10);
	long pause_us = argc == 4 ? strtol(argv[3], NULL, 10) : 0;
	struct timespec pause = { pause_us / 1000000, (pause_us % 1000000) * 1000 };
	int up = v != '1';
	for (long i = 0; i < n; i++, up = !up) {
		const char *s = up ? "pull-up" : "pull-down";
		if (pwrite(fd, s, strlen(s), 0) < 0)
			die("write");
		if (pause_us > 0)
			nanosleep(&pause, NULL);
	}
	return 0;
}

static pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static int measure(int argc, char **argv)
{
	if (argc < 2)
		return 1;
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		execvp(argv[1], argv + 1);
		die(argv[1]);
	}
	int status;
	struct rusage ru;
	while (wait4(child, &status, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4");
	fprintf(stderr, "cpu_us %ld %ld\n", ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
		ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int runas(int argc, char **argv)
{
	if (argc < 3)
		return 1;
	uid_t id = (uid_t)strtoul(argv[1], NULL, 10);
	if (setgroups(0, NULL) < 0 || setgid(id) < 0 || setuid(id) < 0)
		die("setuid");
	execvp(argv[2], argv + 2);
	die(argv[2]);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: gpio-line hold|toggle|measure|runas ...\n");
		return 1;
	}
	if (!strcmp(argv[1], "hold"))
		return hold(argc - 1, argv + 1);
	if (!strcmp(argv[1], "toggle"))
		return toggle(argc - 1, argv + 1);
	if (!strcmp(argv[1], "measure"))
		return measure(argc - 1, argv + 1);
	if (!strcmp(argv[1], "runas"))
		return runas(argc - 1, argv + 1);
	fprintf(stderr, "gpio-line: unknown command %s\n", argv[1]);
	return 1;
}
