/* gpio-watch: one stream of GPIO line-info changes (requested, released,
 * reconfigured) and, with -e, edge events, for people and scripts. */
#include "gpio/gpio.h"
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/parse.h"
#include "base/shellcmd.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Exit codes (see the man page). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_NOT_FOUND = 3,     /* no chips, unknown chip, unknown line, bad offset */
	EXIT_BUSY = 4,          /* a line to request for edges is in use */
	EXIT_ACCESS = 5,        /* no permission on a chip device */
	EXIT_ALL_REMOVED = 6,   /* every watched chip went away */
};

static const char usage[] =
	"Usage: gpio-watch [OPTIONS] [LINE...]\n"
	"       gpio-watch -L [--json] [-c CHIP] [LINE...]\n"
	"Print GPIO line-info changes (requested, released, reconfigured) and, with -e,\n"
	"edge events, one line per event, until interrupted.\n"
	"\n"
	"LINE is a line name (searched on every chip), CHIP:OFFSET, or with -c a bare\n"
	"offset. Without LINE, every line of every chip (or of -c CHIP) is watched.\n"
	"CHIP is gpiochipN, /dev/gpiochipN, N, or the chip's label.\n"
	"\n"
	"  -c, --chip CHIP        lines are on CHIP; bare numbers are offsets\n"
	"      --info KINDS       info events to report: comma list of requested,\n"
	"                         released, reconfigured; or all, none (default all)\n"
	"  -e, --edges EDGE       also request the lines as inputs and report edges:\n"
	"                         rising, falling or both\n"
	"  -b, --bias BIAS        with -e: pull-up, pull-down, disabled, as-is\n"
	"  -p, --debounce PERIOD  with -e: debounce period (default unit ms)\n"
	"  -l, --active-low       with -e: the line is active low\n"
	"  -E, --event-clock CLK  with -e: monotonic (default), realtime or hte\n"
	"  -C, --consumer NAME    with -e: consumer name of the request (gpio-watch)\n"
	"  -L, --list             list chips and lines with their current state\n"
	"  -F, --format FMT       print each event as FMT (specifiers below)\n"
	"      --json             one JSON object per event (or per chip with -L)\n"
	"      --utc              timestamps as UTC date and time\n"
	"      --localtime        timestamps as local date and time\n"
	"  -n, --num-events N     exit after N events\n"
	"      --idle-timeout PERIOD  exit when no event came for PERIOD (unit ms)\n"
	"      --banner           say on stderr when every watch is in place\n"
	"  -q, --quiet            print no events\n"
	"  -x, --exec CMD         run /bin/sh -c CMD for each event, in order, with\n"
	"                         GPIO_CHIP, GPIO_OFFSET, GPIO_NAME, GPIO_EVENT,\n"
	"                         GPIO_TIMESTAMP_NS, ... in its environment\n"
	"  -h, --help             show this help;  -V, --version  show the version\n"
	"\n"
	"Format: %o offset  %l line name  %c chip  %e event number  %E event name\n"
	"        %C consumer  %a line attributes  %S seconds  %U UTC  %L local time\n"
	"        %q seqno  %Q line seqno  %% a percent sign\n"
	"\n"
	"Exit status: 0 done (signal, -n, idle timeout), 1 failure, 2 usage,\n"
	"3 chip or line not found, 4 line busy, 5 permission denied,\n"
	"6 every watched chip was removed.\n";

enum time_style { TS_SECONDS, TS_UTC, TS_LOCAL };

struct options {
	const char *chip;
	unsigned info_mask;             /* bit (1 << kind) */
	bool edges;
	struct kb_gpio_edge_config edge;
	bool list;
	const char *format;
	bool json;
	enum time_style time;
	uint64_t num_events;            /* 0: unlimited */
	uint64_t idle_timeout_ns;       /* 0: none */
	bool banner;
	bool quiet;
	const char *exec;
};

/* A chip being watched; lines are indexed by offset. */
struct chip_watch {
	const struct kb_gpio_chip *chip;
	bool *selected;
	struct kb_gpio_line_info *line;  /* last known info of each selected line */
	int fd;                          /* -1 once removed */
	int *request_fds;
	size_t num_requests;
};

enum event_type { EV_INFO, EV_EDGE, EV_CHIP_REMOVED };

struct event {
	enum event_type type;
	const struct chip_watch *cw;
	unsigned offset;
	int kind;                       /* kb_gpio_info_kind or kb_gpio_edge_kind */
	uint64_t timestamp_ns;
	enum kb_gpio_clock clock;
	struct kb_gpio_line_info info;  /* the line's info at the event */
	uint32_t seqno, line_seqno;
};

/* ---- option parsing -------------------------------------------------- */

static int parse_name(const char *arg, const char *what, const char *(*name)(int), int count)
{
	for (int i = 0; i < count; i++)
		if (!strcmp(arg, name(i)))
			return i;
	kb_usage_error("invalid %s: %s", what, arg);
}

static const char *edge_name(int i) { return kb_gpio_edge_name((enum kb_gpio_edge)i); }
static const char *bias_name(int i) { return kb_gpio_bias_name((enum kb_gpio_bias)i); }
static const char *clock_name(int i) { return kb_gpio_clock_name((enum kb_gpio_clock)i); }

static const char *info_kind_name(int kind)
{
	switch (kind) {
	case KB_GPIO_REQUESTED: return "requested";
	case KB_GPIO_RELEASED: return "released";
	case KB_GPIO_RECONFIGURED: return "reconfigured";
	default: return "unknown";
	}
}

static unsigned parse_info_kinds(const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	unsigned mask = 0;
	if (!copy)
		kb_die(EXIT_FAIL, "out of memory");
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "all"))
			mask |= 1u << KB_GPIO_REQUESTED | 1u << KB_GPIO_RELEASED | 1u << KB_GPIO_RECONFIGURED;
		else if (!strcmp(tok, "none"))
			;
		else {
			int k;
			for (k = KB_GPIO_REQUESTED; k <= KB_GPIO_RECONFIGURED; k++)
				if (!strcmp(tok, info_kind_name(k)))
					break;
			if (k > KB_GPIO_RECONFIGURED)
				kb_usage_error("invalid --info kind: %s", tok);
			mask |= 1u << k;
		}
	}
	free(copy);
	return mask;
}

static uint64_t parse_period(const char *arg, const char *what)
{
	uint64_t ns;
	if (kb_parse_duration(arg, 1000000, &ns) < 0)
		kb_usage_error("invalid %s: %s", what, arg);
	return ns;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_INFO = 256, OPT_JSON, OPT_UTC, OPT_LOCALTIME, OPT_IDLE, OPT_BANNER };
	static const struct option longopts[] = {
		{ "chip", required_argument, NULL, 'c' },
		{ "info", required_argument, NULL, OPT_INFO },
		{ "edges", required_argument, NULL, 'e' },
		{ "bias", required_argument, NULL, 'b' },
		{ "debounce", required_argument, NULL, 'p' },
		{ "active-low", no_argument, NULL, 'l' },
		{ "event-clock", required_argument, NULL, 'E' },
		{ "consumer", required_argument, NULL, 'C' },
		{ "list", no_argument, NULL, 'L' },
		{ "format", required_argument, NULL, 'F' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "utc", no_argument, NULL, OPT_UTC },
		{ "localtime", no_argument, NULL, OPT_LOCALTIME },
		{ "num-events", required_argument, NULL, 'n' },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "banner", no_argument, NULL, OPT_BANNER },
		{ "quiet", no_argument, NULL, 'q' },
		{ "exec", required_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0, 0, 0, 0 },
	};
	memset(o, 0, sizeof(*o));
	o->info_mask = 1u << KB_GPIO_REQUESTED | 1u << KB_GPIO_RELEASED | 1u << KB_GPIO_RECONFIGURED;
	o->edge.consumer = "gpio-watch";
	bool edge_option = false, have_utc = false, have_local = false;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:e:b:p:lE:C:LF:n:qx:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->chip = optarg; break;
		case OPT_INFO: o->info_mask = parse_info_kinds(optarg); break;
		case 'e':
			o->edges = true;
			o->edge.edge = (enum kb_gpio_edge)parse_name(optarg, "edge", edge_name, 4);
			if (o->edge.edge == KB_GPIO_EDGE_NONE)
				kb_usage_error("invalid edge: %s", optarg);
			break;
		case 'b':
			edge_option = true;
			o->edge.bias = (enum kb_gpio_bias)parse_name(optarg, "bias", bias_name, 4);
			break;
		case 'p': {
			edge_option = true;
			uint64_t ns = parse_period(optarg, "debounce period");
			uint64_t us = (ns + 999) / 1000;
			if (us > UINT32_MAX)
				kb_usage_error("debounce period too long: %s", optarg);
			o->edge.debounce_us = (uint32_t)us;
			break;
		}
		case 'l': edge_option = true; o->edge.active_low = true; break;
		case 'E':
			edge_option = true;
			o->edge.clock = (enum kb_gpio_clock)parse_name(optarg, "event clock", clock_name, 3);
			break;
		case 'C':
			edge_option = true;
			if (strlen(optarg) >= KB_GPIO_NAME_MAX)
				kb_usage_error("consumer name longer than %d bytes: %s", KB_GPIO_NAME_MAX - 1, optarg);
			o->edge.consumer = optarg;
			break;
		case 'L': o->list = true; break;
		case 'F': o->format = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_UTC: have_utc = true; o->time = TS_UTC; break;
		case OPT_LOCALTIME: have_local = true; o->time = TS_LOCAL; break;
		case 'n':
			if (kb_parse_u64_range(optarg, 1, UINT64_MAX, &o->num_events) < 0)
				kb_usage_error("invalid number of events: %s", optarg);
			break;
		case OPT_IDLE:
			o->idle_timeout_ns = parse_period(optarg, "idle timeout");
			if (!o->idle_timeout_ns)
				kb_usage_error("invalid idle timeout: %s", optarg);
			break;
		case OPT_BANNER: o->banner = true; break;
		case 'q': o->quiet = true; break;
		case 'x': o->exec = optarg; break;
		case 'h': kb_help_exit();
		case 'V': kb_version_exit();
		case ':':
			if (strncmp(argv[optind - 1], "--", 2) != 0)
				kb_usage_error("option '-%c' needs an argument", optopt);
			kb_usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				kb_usage_error("unknown option '-%c'", optopt);
			kb_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (edge_option && !o->edges)
		kb_usage_error("-b, -p, -l, -E and -C configure the edge request: they need -e");
	if (o->format && o->json)
		kb_usage_error("--format and --json exclude each other");
	if (have_utc && have_local)
		kb_usage_error("--utc and --localtime exclude each other");
	if (o->list && (o->edges || o->format || o->exec || o->num_events || o->idle_timeout_ns))
		kb_usage_error("--list takes only -c, --json and lines");
}

/* ---- line selection -------------------------------------------------- */

struct selection {
	const struct kb_gpio_chip *chips;
	size_t num_chips;
	bool **selected;                /* [chip][offset] */
};

static void select_line(struct selection *s, size_t chip, unsigned offset)
{
	if (!s->selected[chip]) {
		s->selected[chip] = calloc(s->chips[chip].num_lines + 1, sizeof(bool));
		if (!s->selected[chip])
			kb_die(EXIT_FAIL, "out of memory");
	}
	s->selected[chip][offset] = true;
}

static bool parse_offset(const char *s, const struct kb_gpio_chip *chip, unsigned *offset)
{
	uint64_t v;
	if (kb_parse_u64(s, &v) < 0)
		return false;
	if (v >= chip->num_lines)
		kb_die(EXIT_NOT_FOUND, "offset %s out of range: %s has %u lines", s, chip->name, chip->num_lines);
	*offset = (unsigned)v;
	return true;
}

static void resolve_line(struct selection *s, int chip_only, const char *arg)
{
	const struct kb_gpio_chip *chips = s->chips;
	unsigned offset;
	if (chip_only >= 0) {
		const struct kb_gpio_chip *c = &chips[chip_only];
		if (parse_offset(arg, c, &offset)) {
			select_line(s, (size_t)chip_only, offset);
			return;
		}
		size_t found;
		if (kb_gpio_line_lookup(c, 1, arg, &found, &offset) == 0) {
			select_line(s, (size_t)chip_only, offset);
			return;
		}
		if (!strchr(arg, ':'))
			kb_die(EXIT_NOT_FOUND, "line not found on %s: %s", c->name, arg);
	}
	size_t chip_index;
	if (chip_only < 0 && kb_gpio_line_lookup(chips, s->num_chips, arg, &chip_index, &offset) == 0) {
		select_line(s, chip_index, offset);
		return;
	}
	const char *colon = strrchr(arg, ':');
	if (colon) {
		char *chip_spec = strndup(arg, (size_t)(colon - arg));
		if (!chip_spec)
			kb_die(EXIT_FAIL, "out of memory");
		int ci = kb_gpio_chip_lookup(chips, s->num_chips, chip_spec);
		if (ci < 0)
			kb_die(EXIT_NOT_FOUND, "chip not found: %s (in %s)", chip_spec, arg);
		free(chip_spec);
		if (!parse_offset(colon + 1, &chips[ci], &offset))
			kb_die(EXIT_NOT_FOUND, "invalid offset in %s", arg);
		select_line(s, (size_t)ci, offset);
		return;
	}
	uint64_t dummy;
	if (kb_parse_u64(arg, &dummy) == 0)
		kb_die(EXIT_NOT_FOUND, "line not found: %s (an offset needs -c CHIP or CHIP:OFFSET)", arg);
	kb_die(EXIT_NOT_FOUND, "line not found: %s", arg);
}

/* ---- timestamps ------------------------------------------------------ */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Wall-clock nanoseconds of an event; monotonic stamps are shifted by the
 * current offset between the clocks (realtime sampled around monotonic). */
static uint64_t wall_ns(const struct event *ev)
{
	if (ev->clock != KB_GPIO_CLOCK_MONOTONIC)
		return ev->timestamp_ns;
	uint64_t before = clock_ns(CLOCK_REALTIME);
	uint64_t mono = clock_ns(CLOCK_MONOTONIC);
	uint64_t after = clock_ns(CLOCK_REALTIME);
	return ev->timestamp_ns + (before / 2 + after / 2 - mono);
}

static void format_time(char *buf, size_t len, const struct event *ev, enum time_style style)
{
	if (style == TS_SECONDS) {
		snprintf(buf, len, "%" PRIu64 ".%09" PRIu64, ev->timestamp_ns / UINT64_C(1000000000),
			 ev->timestamp_ns % UINT64_C(1000000000));
		return;
	}
	uint64_t ns = wall_ns(ev);
	time_t sec = (time_t)(ns / UINT64_C(1000000000));
	struct tm tm;
	if (style == TS_UTC)
		gmtime_r(&sec, &tm);
	else
		localtime_r(&sec, &tm);
	char date[64];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09" PRIu64 "%s", date, ns % UINT64_C(1000000000), style == TS_UTC ? "Z" : "");
}

/* ---- event text ------------------------------------------------------ */

static const char *event_name(const struct event *ev)
{
	switch (ev->type) {
	case EV_INFO: return info_kind_name(ev->kind);
	case EV_EDGE: return ev->kind == KB_GPIO_RISING ? "rising" : "falling";
	default: return "chip-removed";
	}
}

static const char *consumer_text(const struct kb_gpio_line_info *info)
{
	if (!info->used)
		return "unused";
	return info->consumer[0] ? info->consumer : "kernel";
}

/* %a: direction, then every attribute that is not the default. */
static void print_attributes(FILE *f, const struct kb_gpio_line_info *info)
{
	fputs(info->output ? "output" : "input", f);
	if (info->drive != KB_GPIO_DRIVE_PUSH_PULL)
		fprintf(f, " drive=%s", kb_gpio_drive_name(info->drive));
	if (info->bias != KB_GPIO_BIAS_AS_IS)
		fprintf(f, " bias=%s", kb_gpio_bias_name(info->bias));
	if (info->edge != KB_GPIO_EDGE_NONE)
		fprintf(f, " edge=%s", kb_gpio_edge_name(info->edge));
	if (info->edge != KB_GPIO_EDGE_NONE && info->clock != KB_GPIO_CLOCK_MONOTONIC)
		fprintf(f, " clock=%s", kb_gpio_clock_name(info->clock));
	if (info->debounce_us)
		fprintf(f, " debounce=%" PRIu32 "us", info->debounce_us);
	if (info->active_low)
		fputs(" active-low", f);
}

static void print_quoted(FILE *f, const char *s)
{
	kb_json_write_string(f, s, strlen(s));
}

static void print_default(const struct event *ev, const struct options *o)
{
	char ts[80];
	format_time(ts, sizeof(ts), ev, o->time);
	if (ev->type == EV_CHIP_REMOVED) {
		printf("%s %s - - chip-removed\n", ts, ev->cw->chip->name);
		return;
	}
	printf("%s %s %u ", ts, ev->cw->chip->name, ev->offset);
	if (ev->info.name[0])
		print_quoted(stdout, ev->info.name);
	else
		putchar('-');
	printf(" %s", event_name(ev));
	if (ev->type == EV_EDGE) {
		printf(" seqno=%" PRIu32 " line_seqno=%" PRIu32 "\n", ev->seqno, ev->line_seqno);
		return;
	}
	if (ev->info.used) {
		fputs(" consumer=", stdout);
		print_quoted(stdout, consumer_text(&ev->info));
	}
	putchar(' ');
	print_attributes(stdout, &ev->info);
	putchar('\n');
}

static void print_format(const struct event *ev, const struct options *o)
{
	const char *p = o->format;
	char ts[80];
	bool is_line = ev->type != EV_CHIP_REMOVED;
	for (; *p; p++) {
		if (*p != '%') {
			putchar(*p);
			continue;
		}
		if (!p[1]) {            /* a lone trailing % */
			putchar('%');
			break;
		}
		switch (*++p) {
		case 'o':
			if (is_line)
				printf("%u", ev->offset);
			else
				putchar('-');
			break;
		case 'l':
			fputs(!is_line ? "-" : ev->info.name[0] ? ev->info.name : "unnamed", stdout);
			break;
		case 'c': fputs(ev->cw->chip->name, stdout); break;
		case 'e': printf("%d", ev->type == EV_CHIP_REMOVED ? 0 : ev->kind); break;
		case 'E': fputs(event_name(ev), stdout); break;
		case 'C': fputs(is_line ? consumer_text(&ev->info) : "-", stdout); break;
		case 'a':
			if (is_line)
				print_attributes(stdout, &ev->info);
			else
				putchar('-');
			break;
		case 'S': format_time(ts, sizeof(ts), ev, TS_SECONDS); fputs(ts, stdout); break;
		case 'U': format_time(ts, sizeof(ts), ev, TS_UTC); fputs(ts, stdout); break;
		case 'L': format_time(ts, sizeof(ts), ev, TS_LOCAL); fputs(ts, stdout); break;
		case 'q':
			if (ev->type == EV_EDGE)
				printf("%" PRIu32, ev->seqno);
			else
				putchar('-');
			break;
		case 'Q':
			if (ev->type == EV_EDGE)
				printf("%" PRIu32, ev->line_seqno);
			else
				putchar('-');
			break;
		case '%': putchar('%'); break;
		default: putchar('%'); putchar(*p); break;
		}
	}
	putchar('\n');
}

static void json_line_info(struct kb_json *j, const struct kb_gpio_line_info *info)
{
	kb_json_kv_bool(j, "used", info->used);
	kb_json_key(j, "consumer");
	if (info->used)
		kb_json_string(j, info->consumer[0] ? info->consumer : NULL);
	else
		kb_json_null(j);
	kb_json_kv_string(j, "direction", info->output ? "output" : "input");
	kb_json_kv_bool(j, "active_low", info->active_low);
	kb_json_kv_string(j, "bias", kb_gpio_bias_name(info->bias));
	kb_json_kv_string(j, "drive", kb_gpio_drive_name(info->drive));
	kb_json_kv_string(j, "edge", kb_gpio_edge_name(info->edge));
	kb_json_kv_string(j, "event_clock", kb_gpio_clock_name(info->clock));
	kb_json_kv_uint(j, "debounce_us", info->debounce_us);
}

static void print_json(const struct event *ev, const struct options *o)
{
	struct kb_json j;
	kb_json_init(&j, stdout);
	kb_json_begin_object(&j);
	kb_json_kv_string(&j, "type", ev->type == EV_INFO ? "info" : ev->type == EV_EDGE ? "edge" : "chip");
	kb_json_kv_string(&j, "event", event_name(ev));
	kb_json_kv_string(&j, "chip", ev->cw->chip->name);
	kb_json_kv_string(&j, "label", ev->cw->chip->label);
	kb_json_kv_uint(&j, "timestamp_ns", ev->timestamp_ns);
	kb_json_kv_string(&j, "clock", kb_gpio_clock_name(ev->clock));
	if (o->time != TS_SECONDS) {
		char ts[80];
		format_time(ts, sizeof(ts), ev, o->time);
		kb_json_kv_string(&j, "time", ts);
	}
	if (ev->type != EV_CHIP_REMOVED) {
		kb_json_kv_uint(&j, "offset", ev->offset);
		kb_json_key(&j, "name");
		kb_json_string(&j, ev->info.name[0] ? ev->info.name : NULL);
	}
	if (ev->type == EV_EDGE) {
		kb_json_kv_uint(&j, "seqno", ev->seqno);
		kb_json_kv_uint(&j, "line_seqno", ev->line_seqno);
	}
	if (ev->type == EV_INFO)
		json_line_info(&j, &ev->info);
	kb_json_end_object(&j);
	kb_json_end_line(&j);
}

/* ---- --exec ------------------------------------------------------------ */

static const char *const exec_vars[] = {
	"GPIO_CHIP", "GPIO_CHIP_LABEL", "GPIO_OFFSET", "GPIO_NAME", "GPIO_EVENT", "GPIO_EVENT_NUM",
	"GPIO_TIMESTAMP_NS", "GPIO_CLOCK", "GPIO_SEQNO", "GPIO_LINE_SEQNO", "GPIO_CONSUMER",
	"GPIO_USED", "GPIO_DIRECTION", "GPIO_ACTIVE_LOW", "GPIO_BIAS", "GPIO_DRIVE", "GPIO_EDGE",
	"GPIO_EVENT_CLOCK", "GPIO_DEBOUNCE_US", NULL,
};

struct env_builder {
	char *vars[32];
	size_t n;
};

static void env_add(struct env_builder *b, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void env_add(struct env_builder *b, const char *name, const char *fmt, ...)
{
	char value[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	if (b->n + 1 < KB_ARRAY_SIZE(b->vars) && asprintf(&b->vars[b->n], "%s=%s", name, value) >= 0)
		b->n++;
}

static void run_exec(struct kb_shellcmd *cmd, const char *command, const struct event *ev)
{
	struct env_builder b = { .n = 0 };
	const struct kb_gpio_line_info *in = &ev->info;
	env_add(&b, "GPIO_CHIP", "%s", ev->cw->chip->name);
	env_add(&b, "GPIO_CHIP_LABEL", "%s", ev->cw->chip->label);
	env_add(&b, "GPIO_EVENT", "%s", event_name(ev));
	env_add(&b, "GPIO_EVENT_NUM", "%d", ev->type == EV_CHIP_REMOVED ? 0 : ev->kind);
	env_add(&b, "GPIO_TIMESTAMP_NS", "%" PRIu64, ev->timestamp_ns);
	env_add(&b, "GPIO_CLOCK", "%s", kb_gpio_clock_name(ev->clock));
	if (ev->type != EV_CHIP_REMOVED) {
		env_add(&b, "GPIO_OFFSET", "%u", ev->offset);
		env_add(&b, "GPIO_NAME", "%s", in->name);
		env_add(&b, "GPIO_CONSUMER", "%s", in->used ? in->consumer : "");
		env_add(&b, "GPIO_USED", "%d", in->used);
		env_add(&b, "GPIO_DIRECTION", "%s", in->output ? "output" : "input");
		env_add(&b, "GPIO_ACTIVE_LOW", "%d", in->active_low);
		env_add(&b, "GPIO_BIAS", "%s", kb_gpio_bias_name(in->bias));
		env_add(&b, "GPIO_DRIVE", "%s", kb_gpio_drive_name(in->drive));
		env_add(&b, "GPIO_EDGE", "%s", kb_gpio_edge_name(in->edge));
		env_add(&b, "GPIO_EVENT_CLOCK", "%s", kb_gpio_clock_name(in->clock));
		env_add(&b, "GPIO_DEBOUNCE_US", "%" PRIu32, in->debounce_us);
	}
	if (ev->type == EV_EDGE) {
		env_add(&b, "GPIO_SEQNO", "%" PRIu32, ev->seqno);
		env_add(&b, "GPIO_LINE_SEQNO", "%" PRIu32, ev->line_seqno);
	}
	b.vars[b.n] = NULL;
	if (kb_shellcmd_start(cmd, command, b.vars, exec_vars) < 0)
		kb_die_errno(EXIT_FAIL, "cannot run --exec command");
	for (size_t i = 0; i < b.n; i++)
		free(b.vars[i]);
}

/* Events waiting for their --exec turn: a growable ring, never dropping. */
struct event_queue {
	struct event *ev;
	size_t head, count, cap;
};

static void queue_push(struct event_queue *q, const struct event *ev)
{
	if (q->count == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct event *grown = malloc(cap * sizeof(*grown));
		if (!grown)
			kb_die(EXIT_FAIL, "out of memory queueing events for --exec");
		for (size_t i = 0; i < q->count; i++)
			grown[i] = q->ev[(q->head + i) % q->cap];
		free(q->ev);
		q->ev = grown;
		q->head = 0;
		q->cap = cap;
	}
	q->ev[(q->head + q->count++) % q->cap] = *ev;
}

static bool queue_pop(struct event_queue *q, struct event *ev)
{
	if (!q->count)
		return false;
	*ev = q->ev[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return true;
}

/* ---- the watch ------------------------------------------------------- */

struct watch {
	struct options *o;
	struct chip_watch *cw;
	size_t num_cw;
	size_t live_chips;
	uint64_t reported;
	bool done;                      /* -n reached: report no more */
	struct event_queue queue;       /* waiting for --exec */
	struct event_queue ready;       /* read in this wake-up, reported in time order */
	struct kb_shellcmd cmd;
};

static void report(struct watch *w, const struct event *ev)
{
	if (w->done)
		return;
	if (ev->type == EV_INFO && !(w->o->info_mask & (1u << ev->kind)))
		return;
	if (!w->o->quiet) {
		if (w->o->json)
			print_json(ev, w->o);
		else if (w->o->format)
			print_format(ev, w->o);
		else
			print_default(ev, w->o);
	}
	if (w->o->exec)
		queue_push(&w->queue, ev);
	w->reported++;
	if (w->o->num_events && w->reported >= w->o->num_events)
		w->done = true;
}

/* Sort key on the monotonic clock: realtime stamps are shifted by the
 * current offset between the clocks (hte stamps are taken as they are). */
static uint64_t event_order_key(const struct event *ev, int64_t realtime_offset)
{
	if (ev->clock == KB_GPIO_CLOCK_REALTIME)
		return ev->timestamp_ns - (uint64_t)realtime_offset;
	return ev->timestamp_ns;
}

/* Reports what one wake-up read, oldest first: events of different chips
 * and requests arrive on different fds, read in fd order, not time order. */
static void report_ready(struct watch *w)
{
	struct event_queue *q = &w->ready;
	if (!q->count)
		return;
	/* Only edge events can carry realtime stamps; read the clocks only then. */
	int64_t realtime_offset = 0;
	if (q->count > 1 && w->o->edge.clock == KB_GPIO_CLOCK_REALTIME)
		realtime_offset = (int64_t)(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC));
	/* Insertion sort: batches are small and mostly in order already; stable. */
	for (size_t i = 1; i < q->count; i++) {
		struct event ev = q->ev[i];
		uint64_t key = event_order_key(&ev, realtime_offset);
		size_t j = i;
		for (; j > 0 && event_order_key(&q->ev[j - 1], realtime_offset) > key; j--)
			q->ev[j] = q->ev[j - 1];
		q->ev[j] = ev;
	}
	for (size_t i = 0; i < q->count; i++)
		report(w, &q->ev[i]);
	q->head = q->count = 0;
}

static void release_chip(struct chip_watch *cw)
{
	/* Watches go first: on Linux 6.1 releasing a line of an unplugged chip
	 * notifies that chip's watchers, which dereferences the gone chip. */
	if (cw->fd >= 0)
		close(cw->fd);
	cw->fd = -1;
	for (size_t i = 0; i < cw->num_requests; i++)
		close(cw->request_fds[i]);
	cw->num_requests = 0;
}

static void chip_removed(struct watch *w, struct chip_watch *cw)
{
	if (cw->fd < 0)
		return;
	release_chip(cw);
	w->live_chips--;
	struct event ev = {
		.type = EV_CHIP_REMOVED, .cw = cw,
		.timestamp_ns = clock_ns(CLOCK_MONOTONIC), .clock = KB_GPIO_CLOCK_MONOTONIC,
	};
	queue_push(&w->ready, &ev);
}

static void read_info_events(struct watch *w, struct chip_watch *cw)
{
	struct kb_gpio_info_event batch[64];
	ssize_t n;
	while (cw->fd >= 0 && (n = kb_gpio_read_info_events(cw->fd, batch, KB_ARRAY_SIZE(batch))) != 0) {
		if (n < 0) {
			if (errno == ENODEV) {
				chip_removed(w, cw);
				return;
			}
			kb_die_errno(EXIT_FAIL, "%s: reading line-info events", cw->chip->path);
		}
		for (ssize_t i = 0; i < n; i++) {
			unsigned off = batch[i].info.offset;
			if (off < cw->chip->num_lines)
				cw->line[off] = batch[i].info;
			struct event ev = {
				.type = EV_INFO, .cw = cw, .offset = off, .kind = batch[i].kind,
				.timestamp_ns = batch[i].timestamp_ns, .clock = KB_GPIO_CLOCK_MONOTONIC,
				.info = batch[i].info,
			};
			queue_push(&w->ready, &ev);
		}
		/* The kernel hands over everything pending in one read: a short
		 * batch means the queue is empty, no need to ask again. */
		if ((size_t)n < KB_ARRAY_SIZE(batch))
			break;
	}
}

static void read_edge_events(struct watch *w, struct chip_watch *cw, int fd)
{
	struct kb_gpio_edge_event batch[64];
	ssize_t n;
	while (cw->fd >= 0 && (n = kb_gpio_read_edge_events(fd, batch, KB_ARRAY_SIZE(batch))) != 0) {
		if (n < 0) {
			if (errno == ENODEV) {
				chip_removed(w, cw);
				return;
			}
			kb_die_errno(EXIT_FAIL, "%s: reading edge events", cw->chip->path);
		}
		for (ssize_t i = 0; i < n; i++) {
			unsigned off = batch[i].offset;
			struct event ev = {
				.type = EV_EDGE, .cw = cw, .offset = off, .kind = batch[i].kind,
				.timestamp_ns = batch[i].timestamp_ns, .clock = w->o->edge.clock,
				.seqno = batch[i].seqno, .line_seqno = batch[i].line_seqno,
			};
			if (off < cw->chip->num_lines)
				ev.info = cw->line[off];
			queue_push(&w->ready, &ev);
		}
		if ((size_t)n < KB_ARRAY_SIZE(batch))
			break;
	}
}

static int open_chip(const struct kb_gpio_chip *chip)
{
	int fd = kb_gpio_chip_open(chip->path);
	if (fd < 0)
		kb_die_errno(errno == EACCES || errno == EPERM ? EXIT_ACCESS : EXIT_FAIL, "%s", chip->path);
	return fd;
}

static void request_edges(struct chip_watch *cw, const struct options *o)
{
	unsigned offsets[KB_GPIO_REQUEST_MAX_LINES];
	size_t n = 0;
	size_t cap = cw->chip->num_lines / KB_GPIO_REQUEST_MAX_LINES + 1;
	cw->request_fds = calloc(cap, sizeof(int));
	if (!cw->request_fds)
		kb_die(EXIT_FAIL, "out of memory");
	for (unsigned off = 0; off <= cw->chip->num_lines; off++) {
		bool last = off == cw->chip->num_lines;
		if (!last && cw->selected[off])
			offsets[n++] = off;
		if (n == 0 || (!last && n < KB_GPIO_REQUEST_MAX_LINES))
			continue;
		int fd = kb_gpio_request_edges(cw->fd, offsets, n, &o->edge);
		if (fd < 0) {
			int e = errno;
			if (e == EBUSY) {
				struct kb_gpio_line_info info;
				for (size_t i = 0; i < n; i++)
					if (kb_gpio_line_info(cw->fd, offsets[i], &info) == 0 && info.used)
						kb_die(EXIT_BUSY, "line %s:%u%s%s%s is busy (consumer \"%s\")",
						       cw->chip->name, offsets[i], info.name[0] ? " (\"" : "",
						       info.name, info.name[0] ? "\")" : "", consumer_text(&info));
			}
			errno = e;
			kb_die_errno(e == EACCES || e == EPERM ? EXIT_ACCESS : e == EBUSY ? EXIT_BUSY : EXIT_FAIL,
				     "%s: requesting lines for edge events", cw->chip->path);
		}
		cw->request_fds[cw->num_requests++] = fd;
		n = 0;
	}
}

static size_t setup_watches(struct watch *w)
{
	size_t lines = 0;
	for (size_t i = 0; i < w->num_cw; i++) {
		struct chip_watch *cw = &w->cw[i];
		cw->fd = open_chip(cw->chip);
		/* Request before watching, so our own request is not reported. */
		if (w->o->edges)
			request_edges(cw, w->o);
		for (unsigned off = 0; off < cw->chip->num_lines; off++) {
			if (!cw->selected[off])
				continue;
			if (kb_gpio_line_watch(cw->fd, off, &cw->line[off]) < 0)
				kb_die_errno(EXIT_FAIL, "%s: watching line %u", cw->chip->path, off);
			lines++;
		}
	}
	w->live_chips = w->num_cw;
	return lines;
}

static void list_chip(const struct kb_gpio_chip *chip, const bool *selected, const struct options *o)
{
	int fd = open_chip(chip);
	struct kb_json j;
	if (o->json) {
		kb_json_init(&j, stdout);
		kb_json_begin_object(&j);
		kb_json_kv_string(&j, "chip", chip->name);
		kb_json_kv_string(&j, "label", chip->label);
		kb_json_kv_string(&j, "path", chip->path);
		kb_json_kv_uint(&j, "num_lines", chip->num_lines);
		kb_json_key(&j, "lines");
		kb_json_begin_array(&j);
	} else {
		printf("%s ", chip->name);
		print_quoted(stdout, chip->label);
		printf(" %u lines\n", chip->num_lines);
	}
	for (unsigned off = 0; off < chip->num_lines; off++) {
		if (selected && !selected[off])
			continue;
		struct kb_gpio_line_info info;
		if (kb_gpio_line_info(fd, off, &info) < 0)
			kb_die_errno(EXIT_FAIL, "%s: line %u", chip->path, off);
		if (o->json) {
			kb_json_begin_object(&j);
			kb_json_kv_uint(&j, "offset", off);
			kb_json_key(&j, "name");
			kb_json_string(&j, info.name[0] ? info.name : NULL);
			json_line_info(&j, &info);
			kb_json_end_object(&j);
			continue;
		}
		printf("\t%u\t", off);
		if (info.name[0])
			print_quoted(stdout, info.name);
		else
			putchar('-');
		putchar('\t');
		if (info.used)
			print_quoted(stdout, consumer_text(&info));
		else
			fputs("unused", stdout);
		putchar('\t');
		print_attributes(stdout, &info);
		putchar('\n');
	}
	if (o->json) {
		kb_json_end_array(&j);
		kb_json_end_object(&j);
		kb_json_end_line(&j);
	}
	close(fd);
}

static int idle_timeout_ms(const struct watch *w, uint64_t last_event)
{
	if (!w->o->idle_timeout_ns || w->done)
		return -1;
	uint64_t now = clock_ns(CLOCK_MONOTONIC), deadline = last_event + w->o->idle_timeout_ns;
	if (now >= deadline)
		return 0;
	uint64_t ms = (deadline - now + 999999) / 1000000;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* The poll loop: returns the exit code. */
static int watch_loop(struct watch *w, int sig_fd, int unplug_fd)
{
	size_t max_fds = 3;
	for (size_t i = 0; i < w->num_cw; i++)
		max_fds += 1 + w->cw[i].num_requests;
	struct pollfd *pfd = calloc(max_fds, sizeof(*pfd));
	/* Which chip (and request fd, or -1 for the chip fd) each pollfd belongs to. */
	struct { struct chip_watch *cw; int request_fd; } *owner = calloc(max_fds, sizeof(*owner));
	if (!pfd || !owner)
		kb_die(EXIT_FAIL, "out of memory");
	uint64_t last_event = clock_ns(CLOCK_MONOTONIC);
	int rc = EXIT_OK;
	for (;;) {
		bool watching = !w->done && w->live_chips > 0;
		if (!watching && !w->queue.count && w->cmd.pid <= 0)
			break;
		size_t n = 0;
		pfd[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = w->cmd.pid > 0 ? w->cmd.pidfd : -1, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = watching ? unplug_fd : -1, .events = POLLIN };
		for (size_t i = 0; watching && i < w->num_cw; i++) {
			struct chip_watch *cw = &w->cw[i];
			if (cw->fd < 0)
				continue;
			owner[n].cw = cw;
			owner[n].request_fd = -1;
			pfd[n++] = (struct pollfd){ .fd = cw->fd, .events = POLLIN };
			for (size_t r = 0; r < cw->num_requests; r++) {
				owner[n].cw = cw;
				owner[n].request_fd = cw->request_fds[r];
				pfd[n++] = (struct pollfd){ .fd = cw->request_fds[r], .events = POLLIN };
			}
		}
		int timeout = watching ? idle_timeout_ms(w, last_event) : -1;
		int ready = poll(pfd, n, timeout);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			kb_die_errno(EXIT_FAIL, "poll");
		}
		if (ready == 0) {       /* idle timeout */
			w->done = true;
			continue;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;
			if (read(sig_fd, &si, sizeof(si)) > 0)
				break;
		}
		if (pfd[1].revents) {
			kb_shellcmd_wait(&w->cmd);
		}
		if (pfd[2].revents && kb_gpio_unplug_drain(unplug_fd)) {
			for (size_t i = 0; i < w->num_cw; i++)
				if (w->cw[i].fd >= 0 && kb_gpio_chip_check(w->cw[i].fd) < 0 && errno == ENODEV)
					chip_removed(w, &w->cw[i]);
		}
		uint64_t before = w->reported;
		for (size_t i = 3; i < n; i++) {
			struct chip_watch *cw = owner[i].cw;
			if (!pfd[i].revents || cw->fd < 0)
				continue;
			if (pfd[i].revents & POLLIN) {
				if (owner[i].request_fd < 0)
					read_info_events(w, cw);
				else
					read_edge_events(w, cw, owner[i].request_fd);
			}
			if (cw->fd >= 0 && (pfd[i].revents & (POLLHUP | POLLERR | POLLNVAL)))
				chip_removed(w, cw);
		}
		report_ready(w);
		if (w->reported != before)
			last_event = clock_ns(CLOCK_MONOTONIC);
		if (fflush(stdout) == EOF && errno == EPIPE)
			break;
		if (w->cmd.pid <= 0) {
			struct event ev;
			if (queue_pop(&w->queue, &ev))
				run_exec(&w->cmd, w->o->exec, &ev);
		}
		if (!w->done && w->live_chips == 0)
			rc = EXIT_ALL_REMOVED;
	}
	free(pfd);
	free(owner);
	return rc;
}

static int gpio_watch_main(int argc, char **argv)
{
	struct options o;
	parse_options(argc, argv, &o);

	struct kb_gpio_chip *chips;
	size_t num_chips;
	char failed[64];
	if (kb_gpio_chips_scan(&chips, &num_chips, failed, sizeof(failed)) < 0) {
		int code = errno == EACCES || errno == EPERM ? EXIT_ACCESS : EXIT_FAIL;
		kb_die_errno(code, "%s", failed[0] ? failed : "cannot list GPIO chips");
	}
	if (num_chips == 0)
		kb_die(EXIT_NOT_FOUND, "no GPIO chips found (no /dev/gpiochip*)");

	struct selection sel = { .chips = chips, .num_chips = num_chips };
	sel.selected = calloc(num_chips, sizeof(*sel.selected));
	if (!sel.selected)
		kb_die(EXIT_FAIL, "out of memory");
	int chip_only = -1;
	if (o.chip) {
		chip_only = kb_gpio_chip_lookup(chips, num_chips, o.chip);
		if (chip_only < 0)
			kb_die(EXIT_NOT_FOUND, "chip not found: %s", o.chip);
	}
	for (int i = optind; i < argc; i++)
		resolve_line(&sel, chip_only, argv[i]);
	if (optind == argc)
		for (size_t c = 0; c < num_chips; c++)
			if (chip_only < 0 || (size_t)chip_only == c)
				for (unsigned off = 0; off < chips[c].num_lines; off++)
					select_line(&sel, c, off);

	if (o.list) {
		for (size_t c = 0; c < num_chips; c++)
			if (sel.selected[c])
				list_chip(&chips[c], sel.selected[c], &o);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
	}

	struct watch w = { .o = &o, .cmd = { .pid = -1, .pidfd = -1 } };
	w.cw = calloc(num_chips, sizeof(*w.cw));
	if (!w.cw)
		kb_die(EXIT_FAIL, "out of memory");
	for (size_t c = 0; c < num_chips; c++) {
		if (!sel.selected[c])
			continue;
		struct chip_watch *cw = &w.cw[w.num_cw++];
		cw->chip = &chips[c];
		cw->selected = sel.selected[c];
		cw->line = calloc(chips[c].num_lines + 1, sizeof(*cw->line));
		cw->fd = -1;
		if (!cw->line)
			kb_die(EXIT_FAIL, "out of memory");
	}

	/* Signals become events of the poll loop, so the loop can release
	 * everything before exiting. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sig_fd < 0)
		kb_die_errno(EXIT_FAIL, "signalfd");
	signal(SIGPIPE, SIG_IGN);
	/* Older kernels do not wake a poller when its chip is unplugged; the
	 * device node vanishing from /dev is the backup signal. */
	int unplug_fd = kb_gpio_unplug_monitor();

	size_t lines = setup_watches(&w);
	if (o.banner)
		fprintf(stderr, "%s: watching %zu line%s on %zu chip%s%s%s\n", kb_name(), lines,
			lines == 1 ? "" : "s", w.num_cw, w.num_cw == 1 ? "" : "s",
			o.edges ? ", edges: " : "", o.edges ? kb_gpio_edge_name(o.edge.edge) : "");

	int rc = watch_loop(&w, sig_fd, unplug_fd);
	for (size_t i = 0; i < w.num_cw; i++)
		release_chip(&w.cw[i]);
	if (w.cmd.pid > 0)
		kb_shellcmd_wait(&w.cmd);
	if (rc == EXIT_ALL_REMOVED)
		kb_warn("every watched chip was removed");
	if (fflush(stdout) == EOF && errno != EPIPE)
		rc = EXIT_FAIL;
	return rc;
}

const struct applet applet_gpio_watch = {
	.name = "gpio-watch",
	.main = gpio_watch_main,
	.summary = "watch GPIO line requests, releases, reconfigurations and edges",
	.usage = usage,
	.dir = "bin",
	.libs = KB_LIB_BIT(KB_LIB_GPIOD),
};
