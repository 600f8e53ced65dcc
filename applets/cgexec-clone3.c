/* cgexec-clone3: run a command born inside a cgroup v2 (clone3 with
 * CLONE_INTO_CGROUP), optionally creating the cgroup, setting limits and
 * notes, and reporting what the command used. */
#include "cgroup/cgroup.h"
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/parse.h"
#include "proc/procinfo.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit status for the applet's own failures, so that it never looks like
 * the command's (as env, chroot and timeout do). */
#define EXIT_OWN 125

static const char usage[] =
	"Usage: cgexec-clone3 [OPTIONS] -g CGROUP [--] COMMAND [ARGS...]\n"
	"       cgexec-clone3 --info [--json] [-g CGROUP] [--root DIR]\n"
	"Run COMMAND born inside a cgroup v2 (clone3 CLONE_INTO_CGROUP): it never runs\n"
	"an instruction outside it.\n"
	"\n"
	"  -g, --cgroup CGROUP      the cgroup: a path relative to the cgroup2 root, or an\n"
	"                           absolute path inside the mount; CONTROLLERS:PATH also\n"
	"                           checks the controllers (comma-separated) are enabled there\n"
	"      --root DIR           the cgroup2 root (default: the mount holding an absolute\n"
	"                           CGROUP, /sys/fs/cgroup[/unified], or the mount table's)\n"
	"      --info               print the mount, its options and the controllers at CGROUP\n"
	"      --json               --info and --stats print JSON\n"
	"  -c, --create             create the cgroup and missing parents\n"
	"      --rm                 after the command, kill what is left in the cgroup and\n"
	"                           remove the directories this run created\n"
	"  -p, --property FILE=VALUE  write a control file before the command starts\n"
	"                           (repeatable; sizes take K/M/G/T: memory.max=512M)\n"
	"      --enable-controllers enable the controllers the properties need in the\n"
	"                           ancestors' cgroup.subtree_control\n"
	"      --note KEY=VALUE     set the extended attribute user.KEY (or a full name such\n"
	"                           as trusted.KEY) on the cgroup directory\n"
	"      --stats              after the command, print wall time, cpu.stat, memory.peak,\n"
	"                           pids.peak and memory.events on stderr\n"
	"      --fallback           on a kernel without CLONE_INTO_CGROUP, move the child into\n"
	"                           the cgroup before exec (not race-free) instead of failing\n"
	"  -h, --help               show this help\n"
	"  -V, --version            show the version\n"
	"\n"
	"SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to COMMAND.\n"
	"Exit status: COMMAND's own, 128+N if it was killed by signal N, 126 if it could\n"
	"not be executed, 127 if it was not found, 125 for cgexec-clone3's own errors.\n";

enum {
	OPT_ROOT = 256, OPT_INFO, OPT_JSON, OPT_RM, OPT_ENABLE, OPT_NOTE, OPT_STATS, OPT_FALLBACK,
};

static const struct option long_options[] = {
	{ "cgroup", required_argument, NULL, 'g' },
	{ "root", required_argument, NULL, OPT_ROOT },
	{ "info", no_argument, NULL, OPT_INFO },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "create", no_argument, NULL, 'c' },
	{ "rm", no_argument, NULL, OPT_RM },
	{ "property", required_argument, NULL, 'p' },
	{ "enable-controllers", no_argument, NULL, OPT_ENABLE },
	{ "note", required_argument, NULL, OPT_NOTE },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "fallback", no_argument, NULL, OPT_FALLBACK },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

#define MAX_ITEMS 64

struct options {
	const char *cgroup_arg;
	char controllers[256];          /* from -g CONTROLLERS:PATH */
	const char *root;
	bool info, json, create, rm, enable, stats, fallback;
	char *props[MAX_ITEMS];         /* FILE=VALUE */
	int nprops;
	char *notes[MAX_ITEMS];         /* KEY=VALUE */
	int nnotes;
	char **argv;                    /* the command */
};

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, 0 };

/* "memory.max=512M" -> file "memory.max", value "536870912".  Every token
 * of the value (or the part after '=' in key=value tokens, as in io.max)
 * that is a number with a K/M/G/T suffix becomes bytes. */
static void split_property(char *prop, const char **file, char *value, size_t len)
{
	char *eq = strchr(prop, '=');
	if (!eq || eq == prop)
		kb_usage_error("-p %s: expected FILE=VALUE", prop);
	*eq = '\0';
	*file = prop;
	size_t n = 0;
	value[0] = '\0';
	for (const char *s = eq + 1; *s;) {
		size_t sp = strspn(s, " \t");
		const char *token = s + sp;
		size_t tl = strcspn(token, " \t");
		/* The part that may be a size: the token, or what follows its '='. */
		const char *teq = memchr(token, '=', tl);
		const char *num = teq ? teq + 1 : token;
		size_t nl = tl - (size_t)(num - token);
		char size[32];
		uint64_t bytes;
		if (nl > 1 && nl < sizeof(size) && isdigit((unsigned char)num[0]) &&
		    isalpha((unsigned char)num[nl - 1]) &&
		    (snprintf(size, sizeof(size), "%.*s", (int)nl, num), kb_parse_size(size, &bytes) == 0))
			n += snprintf(value + n, n < len ? len - n : 0, "%.*s%llu", (int)(sp + (size_t)(num - token)),
				      s, (unsigned long long)bytes);
		else
			n += snprintf(value + n, n < len ? len - n : 0, "%.*s", (int)(sp + tl), s);
		s += sp + tl;
	}
	if (n >= len)
		kb_usage_error("-p %s: value too long", *file);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:g:cp:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'g': {
			/* CONTROLLERS:PATH as in cgexec; a colon-free argument is a path. */
			char *colon = strchr(optarg, ':'), *slash = strchr(optarg, '/');
			if (colon && (!slash || colon < slash)) {
				snprintf(o->controllers, sizeof(o->controllers), "%.*s",
					 (int)(colon - optarg), optarg);
				o->cgroup_arg = colon + 1;
			} else
				o->cgroup_arg = optarg;
			break;
		}
		case OPT_ROOT: o->root = optarg; break;
		case OPT_INFO: o->info = true; break;
		case OPT_JSON: o->json = true; break;
		case 'c': o->create = true; break;
		case OPT_RM: o->rm = true; break;
		case 'p':
			if (o->nprops == MAX_ITEMS)
				kb_usage_error("too many -p options (at most %d)", MAX_ITEMS);
			o->props[o->nprops++] = optarg;
			break;
		case OPT_ENABLE: o->enable = true; break;
		case OPT_NOTE:
			if (o->nnotes == MAX_ITEMS)
				kb_usage_error("too many --note options (at most %d)", MAX_ITEMS);
			if (!strchr(optarg, '=') || optarg[0] == '=')
				kb_usage_error("--note %s: expected KEY=VALUE", optarg);
			o->notes[o->nnotes++] = optarg;
			break;
		case OPT_STATS: o->stats = true; break;
		case OPT_FALLBACK: o->fallback = true; break;
		case 'h': kb_help_exit();
		case 'V': kb_version_exit();
		case ':': kb_usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt && optopt < 256)
				kb_usage_error("unrecognized option '-%c'", optopt);
			kb_usage_error("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	o->argv = argv + optind;
	if (o->info) {
		if (argv[optind])
			kb_usage_error("--info takes no command");
		return;
	}
	if (!o->cgroup_arg)
		kb_usage_error("missing -g CGROUP");
	if (!argv[optind])
		kb_usage_error("missing COMMAND");
}

static void print_words(struct kb_json *j, const char *key, const char *list)
{
	if (j) {
		kb_json_key(j, key);
		kb_json_begin_array(j);
	} else
		printf("%-27s", key);
	int n = 0;
	for (const char *s = list; *s;) {
		s += strspn(s, " \n");
		size_t wl = strcspn(s, " \n");
		if (!wl)
			break;
		if (j)
			kb_json_string_len(j, s, wl);
		else
			printf("%s%.*s", n ? " " : "", (int)wl, s);
		n++;
		s += wl;
	}
	if (j)
		kb_json_end_array(j);
	else
		printf("%s\n", n ? "" : "(none)");
}

static int show_info(struct kb_cgroup_mount *m, const char *cg, bool json)
{
	static const char *const known[] = { "nsdelegate", "memory_recursiveprot", "memory_localevents",
					     "favordynmods", "memory_hugetlb_accounting" };
	char controllers[512] = "", subtree[512] = "", v1[512], procs[65536] = "";
	bool exists = kb_cgroup_read(cg, "cgroup.controllers", controllers, sizeof(controllers)) == 0;
	kb_cgroup_read(cg, "cgroup.subtree_control", subtree, sizeof(subtree));
	kb_cgroup_v1_controllers(v1, sizeof(v1));
	unsigned nprocs = 0;
	if (exists && kb_cgroup_read(cg, "cgroup.procs", procs, sizeof(procs)) == 0)
		for (char *s = procs; *s; s++)
			nprocs += *s == '\n' || s[1] == '\0';
	int kill = kb_cgroup_has_kill(exists ? cg : m->path);
	char opts[sizeof(m->options)];
	snprintf(opts, sizeof(opts), "%s", kb_cgroup_mount_options(m));
	for (char *s = opts; *s; s++)
		if (*s == ',')
			*s = ' ';
	if (json) {
		struct kb_json j;
		kb_json_init(&j, stdout);
		kb_json_begin_object(&j);
		kb_json_kv_string(&j, "mount", m->path);
		print_words(&j, "options", opts);
		for (size_t i = 0; i < KB_ARRAY_SIZE(known); i++)
			kb_json_kv_bool(&j, known[i], kb_cgroup_mount_has_option(m, known[i]));
		kb_json_kv_string(&j, "cgroup", cg);
		kb_json_kv_bool(&j, "exists", exists);
		if (exists) {
			print_words(&j, "controllers", controllers);
			print_words(&j, "subtree_control", subtree);
			kb_json_kv_uint(&j, "processes", nprocs);
		}
		print_words(&j, "v1_controllers", v1);
		kb_json_key(&j, "cgroup_kill");
		kill < 0 ? kb_json_null(&j) : kb_json_bool(&j, kill);
		kb_json_end_object(&j);
		kb_json_end_line(&j);
	} else {
		printf("%-27s%s\n", "mount", m->path);
		print_words(NULL, "options", opts);
		for (size_t i = 0; i < KB_ARRAY_SIZE(known); i++)
			printf("%-27s%s\n", known[i], kb_cgroup_mount_has_option(m, known[i]) ? "yes" : "no");
		printf("%-27s%s%s\n", "cgroup", cg, exists ? "" : " (does not exist)");
		if (exists) {
			print_words(NULL, "controllers", controllers);
			print_words(NULL, "subtree_control", subtree);
			printf("%-27s%u\n", "processes", nprocs);
		}
		print_words(NULL, "v1_controllers", v1);
		printf("%-27s%s\n", "cgroup.kill", kill < 0 ? "unknown" : kill ? "yes" : "no");
	}
	return fflush(stdout) == 0 ? 0 : EXIT_OWN;
}

static void print_stats(const struct kb_cgroup_run *r, const char *cg, int status, bool json)
{
	struct kb_cgroup_stats st;
	kb_cgroup_read_stats(cg, &st);
	bool has_peak = st.has_memory_peak || r->memory_current_max;
	uint64_t peak = st.has_memory_peak ? st.memory_peak : r->memory_current_max;
	if (json) {
		struct kb_json j;
		kb_json_init(&j, stderr);
		kb_json_begin_object(&j);
		kb_json_kv_string(&j, "cgroup", cg);
		kb_json_kv_int(&j, "exit_status", status);
		if (r->signal)
			kb_json_kv_int(&j, "signal", r->signal);
		kb_json_kv_uint(&j, "wall_usec", r->wall_ns / 1000);
		kb_json_key(&j, "cpu");
		if (st.has_cpu) {
			kb_json_begin_object(&j);
			kb_json_kv_uint(&j, "usage_usec", st.usage_usec);
			kb_json_kv_uint(&j, "user_usec", st.user_usec);
			kb_json_kv_uint(&j, "system_usec", st.system_usec);
			if (st.has_throttle) {
				kb_json_kv_uint(&j, "nr_periods", st.nr_periods);
				kb_json_kv_uint(&j, "nr_throttled", st.nr_throttled);
				kb_json_kv_uint(&j, "throttled_usec", st.throttled_usec);
			}
			kb_json_end_object(&j);
		} else
			kb_json_null(&j);
		kb_json_key(&j, "memory_peak");
		has_peak ? kb_json_uint(&j, peak) : kb_json_null(&j);
		kb_json_kv_string(&j, "memory_peak_source", st.has_memory_peak ? "memory.peak" :
				  has_peak ? "memory.current" : NULL);
		kb_json_key(&j, "pids_peak");
		st.has_pids_peak ? kb_json_uint(&j, st.pids_peak) : kb_json_null(&j);
		kb_json_key(&j, "memory_events");
		if (st.has_memory_events) {
			kb_json_begin_object(&j);
			kb_json_kv_uint(&j, "oom", st.oom);
			kb_json_kv_uint(&j, "oom_kill", st.oom_kill);
			kb_json_kv_uint(&j, "max", st.max);
			kb_json_kv_uint(&j, "high", st.high);
			kb_json_end_object(&j);
		} else
			kb_json_null(&j);
		kb_json_end_object(&j);
		kb_json_end_line(&j);
		return;
	}
	char size[32];
	fprintf(stderr, "%s: %s exited with status %d after %.3f s\n", kb_name(), r->argv[0], status,
		r->wall_ns / 1e9);
	if (st.has_cpu)
		fprintf(stderr, "  cpu          %.3f s (user %.3f s, system %.3f s)\n",
			st.usage_usec / 1e6, st.user_usec / 1e6, st.system_usec / 1e6);
	if (st.has_throttle)
		fprintf(stderr, "  throttled    %llu of %llu periods, %.3f s\n",
			(unsigned long long)st.nr_throttled, (unsigned long long)st.nr_periods,
			st.throttled_usec / 1e6);
	if (has_peak)
		fprintf(stderr, "  memory peak  %s%s\n", kb_format_size(peak, size, sizeof(size)),
			st.has_memory_peak ? "" : " (sampled memory.current)");
	if (st.has_pids_peak)
		fprintf(stderr, "  pids peak    %llu\n", (unsigned long long)st.pids_peak);
	if (st.has_memory_events)
		fprintf(stderr, "  memory events oom %llu, oom_kill %llu, max %llu, high %llu\n",
			(unsigned long long)st.oom, (unsigned long long)st.oom_kill,
			(unsigned long long)st.max, (unsigned long long)st.high);
}

/* Set while this run owns directories it must remove on failure or --rm:
 * the first it created, and the cgroup it made them for. */
static char created[KB_CGROUP_PATH_MAX];
static const char *cleanup_cg;

static _Noreturn void die_cleanup(const struct kb_cgroup_err *e)
{
	kb_warn("%s", e->msg);
	if (created[0]) {
		struct kb_cgroup_err e2;
		if (kb_cgroup_remove_created(cleanup_cg, created, &e2))
			kb_warn("%s", e2.msg);
	}
	exit(EXIT_OWN);
}

/* The controllers that -p files need but the cgroup lacks, space-separated. */
static void needed_controllers(const struct options *o, const char *cg, const char **files,
			       char *out, size_t len)
{
	size_t n = snprintf(out, len, "%s", o->controllers);
	for (char *s = out; *s; s++)
		if (*s == ',')
			*s = ' ';
	char have[512] = "";
	kb_cgroup_read(cg, "cgroup.controllers", have, sizeof(have));
	for (int i = 0; i < o->nprops; i++) {
		const char *dot = strchr(files[i], '.');
		char c[64];
		if (!dot || !strncmp(files[i], "cgroup.", 7))
			continue;
		snprintf(c, sizeof(c), "%.*s", (int)(dot - files[i]), files[i]);
		if (kb_cgroup_list_has(have, c) || kb_cgroup_list_has(out, c) ||
		    kb_cgroup_has_file(cg, files[i]))
			continue;
		n += snprintf(out + n, n < len ? len - n : 0, " %s", c);
	}
}

/* Ends the run with the command's status.  exit() would go on to what this
 * process has no use for: atexit handlers and destructors (kbox has none; the
 * one library cgexec-clone3 may open, libmount, only reads) and the teardown
 * of stdio and of the loader's state.  At the scale of a spawn that is a
 * measurable part of the cost (bench/cgexec-clone3.sh), so stdout, the one
 * buffered stream, is flushed and the process ends here. */
static _Noreturn void finish(int status)
{
	if (fflush(stdout) != 0 && status == 0)
		status = EXIT_OWN;
	_exit(status);
}

static int cgexec_clone3_main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);

	struct kb_cgroup_mount m;
	struct kb_cgroup_err e;
	if (o.root ? kb_cgroup_use_root(&m, o.root, &e) : kb_cgroup_find_mount(&m, o.cgroup_arg, &e))
		kb_die(EXIT_OWN, "%s", e.msg);
	char cg[KB_CGROUP_PATH_MAX];
	if (kb_cgroup_resolve(&m, o.cgroup_arg ? o.cgroup_arg : "/", cg, sizeof(cg), &e))
		kb_die(EXIT_OWN, "%s", e.msg);
	if (o.info)
		return show_info(&m, cg, o.json);

	/* Parse every property before touching anything. */
	const char *files[MAX_ITEMS];
	char values[MAX_ITEMS][4096];
	for (int i = 0; i < o.nprops; i++)
		split_property(o.props[i], &files[i], values[i], sizeof(values[i]));

	if (!kb_cgroup_has_file(cg, "cgroup.procs") && !o.create)
		kb_die(EXIT_OWN, "cgroup %s does not exist (use -c to create it)", cg);
	cleanup_cg = cg;
	if (o.create && kb_cgroup_create(&m, cg, created, sizeof(created), &e))
		kb_die(EXIT_OWN, "%s", e.msg);
	if (o.rm && !created[0])
		kb_warn("--rm: %s existed before this run and will be left in place", cg);

	if (o.enable) {
		char need[512];
		needed_controllers(&o, cg, files, need, sizeof(need));
		if (kb_cgroup_enable_controllers(&m, cg, need, &e))
			die_cleanup(&e);
	}
	if (o.controllers[0] && kb_cgroup_check_controllers(&m, cg, o.controllers, &e))
		die_cleanup(&e);
	for (int i = 0; i < o.nprops; i++)
		if (kb_cgroup_check_file(&m, cg, files[i], &e))
			die_cleanup(&e);
	for (int i = 0; i < o.nprops; i++)
		if (kb_cgroup_write(&m, cg, files[i], values[i], &e))
			die_cleanup(&e);
	for (int i = 0; i < o.nnotes; i++) {
		char *eq = strchr(o.notes[i], '=');
		*eq = '\0';
		if (kb_cgroup_set_note(cg, o.notes[i], eq + 1, &e))
			die_cleanup(&e);
	}

	struct kb_cgroup_run r = {
		.mount = &m, .cgroup = cg, .argv = o.argv, .fallback = o.fallback,
		.forward = forwarded,
		/* Older kernels lack memory.peak: sample memory.current instead. */
		.sample_memory = o.stats && !kb_cgroup_has_file(cg, "memory.peak") &&
				 kb_cgroup_has_file(cg, "memory.current"),
	};
	fflush(stdout);
	if (kb_cgroup_spawn(&r, &e))
		die_cleanup(&e);
	if (r.used_fallback)
		kb_warn("clone3 cannot start a process inside a cgroup on this kernel; "
			"the command moved itself into %s before exec (--fallback)", cg);
	int status = kb_cgroup_wait(&r);
	if (r.exec_errno == ENOENT && kb_command_file_exists(o.argv[0])) {
		/* The file is there: what is missing is its #! interpreter. */
		kb_warn("%s: cannot execute: bad interpreter (its #! line names a missing program)",
			o.argv[0]);
		status = 126;
	} else if (r.exec_errno == ENOENT)
		kb_warn("%s: command not found", o.argv[0]);
	else if (r.exec_errno)
		kb_warn("%s: cannot execute: %s", o.argv[0], strerror(r.exec_errno));
	if (o.stats)
		print_stats(&r, cg, status, o.json);
	if (o.rm && created[0]) {
		unsigned left = 0;
		if (kb_cgroup_kill_all(cg, &left, &e) || kb_cgroup_remove_created(cg, created, &e)) {
			kb_warn("--rm: %s", e.msg);
			finish(status ? status : EXIT_OWN);
		}
		if (left)
			kb_warn("--rm: killed %u leftover process%s in %s", left, left == 1 ? "" : "es", cg);
	}
	finish(status);
}

const struct applet applet_cgexec_clone3 = {
	.name = "cgexec-clone3",
	.main = cgexec_clone3_main,
	.summary = "run a command born inside a cgroup v2 (clone3 CLONE_INTO_CGROUP)",
	.usage = usage,
	.dir = "bin",
	.usage_exit = EXIT_OWN,
	.error_exit = EXIT_OWN,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT),
};
