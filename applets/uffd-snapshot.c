/* uffd-snapshot: a consistent core dump of a running process, which is
 * stopped only while its memory is write-protected. */
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/json.h"
#include "base/outfile.h"
#include "base/parse.h"
#include "snapshot/procmaps.h"
#include "snapshot/uffd_snapshot.h"
#include "base/zstd_stream.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
	"Usage: uffd-snapshot [options] PID\n"
	"       uffd-snapshot --dirty INTERVAL[,COUNT] [--json] PID\n"
	"Writes an ELF core file of a running process that gdb opens, consistent to one\n"
	"instant, stopping the process only while its memory is write-protected.\n"
	"\n"
	"  -o, --output FILE     core file (default core.PID; - for standard output)\n"
	"  -z, --zstd[=LEVEL]    compress with zstd (default level 3; also when FILE ends in .zst)\n"
	"  -j, --threads N       compression threads (default: number of CPUs)\n"
	"      --filter MASK     what to dump, as /proc/PID/coredump_filter bits (default: the\n"
	"                        process's own coredump_filter)\n"
	"  -a, --all             dump every readable mapping, file-backed read-only ones too\n"
	"      --stopped         no userfaultfd: copy everything while the process is stopped\n"
	"      --max-pause TIME  give up (and let the process run) if it would stay stopped\n"
	"                        longer than TIME (default 10s; 1ms to 24h)\n"
	"  -P, --progress        show progress on standard error\n"
	"  -v, --verbose         print the phases with their durations, the pause, page counts\n"
	"      --dirty INTERVAL[,COUNT]\n"
	"                        instead of a core, report the pages written per INTERVAL,\n"
	"                        per mapping and in total, COUNT times (default: until interrupted)\n"
	"      --json            --dirty output as JSON, one document per interval\n"
	"  -h, --help            this help;  -V, --version  the version\n"
	"\n"
	"Exit status: 0 the core is complete; 1 failure (the process keeps running);\n"
	"2 usage error; 3 the process exited or does not exist; 4 permission denied\n"
	"(or the process is already traced).\n";

/* --max-pause's range. The helper waits in milliseconds, in an int; a day
 * is far beyond any pause worth waiting for and far within that int. */
#define MAX_PAUSE_MIN_NS 1000000ull
#define MAX_PAUSE_MAX_NS (24ull * 3600 * 1000000000)

static struct kb_outfile *cleanup_file;

static void on_signal(int sig)
{
	const char *tmp = cleanup_file ? kb_outfile_tmpname(cleanup_file) : NULL;
	if (tmp)
		unlink(tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

struct progress {
	bool on;
	int last_pct;
};

static void show_progress(void *arg, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	int pct = total ? (int)(done * 100 / total) : 100;
	if (pct == p->last_pct)
		return;
	p->last_pct = pct;
	char a[32], b[32];
	fprintf(stderr, "\r%s: %3d%% %s of %s", kb_name(), pct, kb_format_size(done, a, sizeof(a)),
		kb_format_size(total, b, sizeof(b)));
	if (done >= total)
		fputc('\n', stderr);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static int exit_code(enum kb_snap_error e)
{
	switch (e) {
	case KB_SNAP_OK: return 0;
	case KB_SNAP_ERR_GONE: return 3;
	case KB_SNAP_ERR_ACCESS: return 4;
	default: return 1;
	}
}

/* ---- --dirty ---------------------------------------------------------- */

struct dirty_out {
	bool json;
	struct kb_json j;
};

static void print_dirty(void *arg, const struct kb_dirty_report *r)
{
	struct dirty_out *d = arg;
	double secs = (double)r->interval_ns / 1e9;
	if (d->json) {
		kb_json_begin_object(&d->j);
		kb_json_kv_uint(&d->j, "interval", r->interval_no);
		kb_json_kv_double(&d->j, "seconds", secs);
		kb_json_kv_uint(&d->j, "pages", r->pages);
		kb_json_kv_uint(&d->j, "bytes", r->pages * 4096);
		kb_json_kv_double(&d->j, "pages_per_second", secs > 0 ? (double)r->pages / secs : 0);
		kb_json_key(&d->j, "mappings");
		kb_json_begin_array(&d->j);
		for (size_t i = 0; i < r->n; i++) {
			if (!r->m[i].pages)
				continue;
			char range[64];
			snprintf(range, sizeof(range), "%llx-%llx", (unsigned long long)r->m[i].start,
				 (unsigned long long)r->m[i].end);
			kb_json_begin_object(&d->j);
			kb_json_kv_string(&d->j, "range", range);
			kb_json_kv_string(&d->j, "path", r->m[i].path);
			kb_json_kv_uint(&d->j, "pages", r->m[i].pages);
			kb_json_end_object(&d->j);
		}
		kb_json_end_array(&d->j);
		kb_json_end_object(&d->j);
		kb_json_end_line(&d->j);
		return;
	}
	char sz[32];
	printf("interval %u: %llu pages (%s) in %.3f s, %.0f pages/s\n", r->interval_no,
	       (unsigned long long)r->pages, kb_format_size(r->pages * 4096, sz, sizeof(sz)), secs,
	       secs > 0 ? (double)r->pages / secs : 0);
	for (size_t i = 0; i < r->n; i++)
		if (r->m[i].pages)
			printf("  %012llx-%012llx %10llu  %s\n", (unsigned long long)r->m[i].start,
			       (unsigned long long)r->m[i].end, (unsigned long long)r->m[i].pages,
			       r->m[i].path[0] ? r->m[i].path : "[anon]");
	fflush(stdout);
}

static volatile int dirty_stop;
static void on_dirty_signal(int sig)
{
	(void)sig;
	dirty_stop = 1;
}

static int run_dirty(pid_t pid, const char *spec, bool json)
{
	char *copy = strdup(spec);
	if (!copy)
		kb_die(1, "out of memory");
	char *comma = strchr(copy, ',');
	uint64_t interval, count = 0;
	if (comma)
		*comma = '\0';
	if (kb_parse_duration(copy, 1000000000ull, &interval) < 0 || interval < 1000000 ||
	    (comma && kb_parse_u64_range(comma + 1, 1, 1000000000, &count) < 0))
		kb_usage_error("bad --dirty: '%s' (INTERVAL[,COUNT], e.g. 1s,10)", spec);
	free(copy);
	struct sigaction sa = { .sa_handler = on_dirty_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct dirty_out d = { .json = json };
	kb_json_init(&d.j, stdout);
	char err[512];
	enum kb_snap_error e = kb_dirty_track(pid, interval, (unsigned)count, &dirty_stop, print_dirty, &d,
					      err, sizeof(err));
	if (e != KB_SNAP_OK) {
		kb_warn("%s", err);
		return exit_code(e);
	}
	return 0;
}

/* ---- the core --------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t l = strlen(s), k = strlen(suffix);
	return l >= k && !strcmp(s + l - k, suffix);
}

static int uffd_snapshot_main(int argc, char **argv)
{
	enum { OPT_FILTER = 256, OPT_STOPPED, OPT_MAX_PAUSE, OPT_DIRTY, OPT_JSON };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "zstd", optional_argument, NULL, 'z' },
		{ "threads", required_argument, NULL, 'j' },
		{ "filter", required_argument, NULL, OPT_FILTER },
		{ "all", no_argument, NULL, 'a' },
		{ "stopped", no_argument, NULL, OPT_STOPPED },
		{ "max-pause", required_argument, NULL, OPT_MAX_PAUSE },
		{ "progress", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "dirty", required_argument, NULL, OPT_DIRTY },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = NULL, *dirty = NULL;
	int zlevel = -1, verbose = 0;
	long workers = sysconf(_SC_NPROCESSORS_ONLN);
	bool all = false, have_filter = false, stopped = false, progress = false, json = false;
	uint64_t filter = 0, max_pause_ns = 10000000000ull, u;
	int c;
	while ((c = getopt_long(argc, argv, "o:z::j:aPvhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'z':
			zlevel = optarg ? kb_zstd_parse_level(optarg) : 3;
			if (zlevel < 0)
				kb_usage_error("bad zstd level: '%s' (1-%d)", optarg, kb_zstd_max_level());
			break;
		case 'j':
			if (kb_parse_u64_range(optarg, 0, 256, &u) < 0)
				kb_usage_error("bad thread count: '%s'", optarg);
			workers = (long)u;
			break;
		case OPT_FILTER: {
			/* Hexadecimal, with or without 0x, as coredump_filter is. */
			char *end;
			const char *hex = strncmp(optarg, "0x", 2) ? optarg : optarg + 2;
			errno = 0;
			unsigned long v = strtoul(hex, &end, 16);
			if (!*hex || *end || errno || v > 0x1ff || *hex == '-' || *hex == '+')
				kb_usage_error("bad filter: '%s' (hex bits as in coredump_filter)", optarg);
			filter = v;
			have_filter = true;
			break;
		}
		case 'a': all = true; break;
		case OPT_STOPPED: stopped = true; break;
		case OPT_MAX_PAUSE:
			if (kb_parse_duration(optarg, 1000000000ull, &max_pause_ns) < 0 ||
			    max_pause_ns < MAX_PAUSE_MIN_NS || max_pause_ns > MAX_PAUSE_MAX_NS)
				kb_usage_error("bad --max-pause: '%s' (from 1ms to 24h)", optarg);
			break;
		case 'P': progress = true; break;
		case 'v': verbose++; break;
		case OPT_DIRTY: dirty = optarg; break;
		case OPT_JSON: json = true; break;
		case 'h': kb_help_exit();
		case 'V': kb_version_exit();
		default: kb_usage_error("unknown option");
		}
	}
	if (optind != argc - 1)
		kb_usage_error(optind >= argc ? "missing PID" : "too many arguments");
	if (kb_parse_u64_range(argv[optind], 1, 0x3fffffff, &u) < 0)
		kb_usage_error("bad PID: '%s'", argv[optind]);
	pid_t pid = (pid_t)u;
	if (dirty)
		return run_dirty(pid, dirty, json);
	if (json)
		kb_usage_error("--json goes with --dirty");

	char defname[64];
	if (!output) {
		snprintf(defname, sizeof(defname), "core.%d", (int)pid);
		output = defname;
	}
	if (zlevel < 0 && ends_with(output, ".zst"))
		zlevel = 3;
	if (!strcmp(output, "-") && isatty(STDOUT_FILENO))
		kb_die(2, "refusing to write a core file to a terminal");

	struct kb_snap_opts o = { .pid = pid, .stopped_copy = stopped,
				  .max_pause_ms = (unsigned)(max_pause_ns / 1000000) };
	if (all)
		o.filter = KB_DUMP_EVERYTHING;
	else
		o.filter = have_filter ? (unsigned)filter : kb_proc_coredump_filter(pid);

	/* The compressor before the file: without libzstd nothing is created. */
	struct kb_outfile f;
	struct kb_zstd *z = NULL;
	if (zlevel > 0 && !(z = kb_zstd_open(zlevel, (int)workers, kb_outfile_write, &f)))
		kb_die(1, "cannot set up zstd compression");
	if (kb_outfile_open(&f, output, 0600) < 0)
		kb_die_errno(1, "cannot create %s", output);
	cleanup_file = &f;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	o.write = z ? kb_zstd_write : kb_outfile_write;
	o.write_arg = z ? (void *)z : &f;
	struct progress pr = { .on = progress, .last_pct = -1 };
	if (progress && isatty(STDERR_FILENO)) {
		o.progress = show_progress;
		o.progress_arg = &pr;
	}
	struct kb_snap_stats s;
	char err[512];
	enum kb_snap_error e = kb_snapshot(&o, &s, err, sizeof(err));
	if (e == KB_SNAP_OK && z) {
		if (kb_zstd_finish(z) < 0) {
			e = KB_SNAP_ERR_OUTPUT;
			snprintf(err, sizeof(err), "writing %s: %s", output, strerror(errno));
		}
		z = NULL;
	}
	kb_zstd_free(z);
	if (e == KB_SNAP_OK && kb_outfile_commit(&f) < 0) {
		e = KB_SNAP_ERR_OUTPUT;
		snprintf(err, sizeof(err), "writing %s: %s", output, strerror(errno));
	}
	if (e != KB_SNAP_OK) {
		kb_outfile_abort(&f);
		cleanup_file = NULL;
		kb_warn("%s", err);
		return exit_code(e);
	}
	cleanup_file = NULL;
	if (s.pages_lost)
		kb_warn("%llu pages were unmapped or discarded by the process before they could be "
			"copied; they read as zeros in the core",
			(unsigned long long)s.pages_lost);
	if (verbose) {
		char a[32];
		double secs = (double)s.total_ns / 1e9;
		fprintf(stderr,
			"%s: pid %d: %zu threads, %zu mappings (%zu dumped, %zu write-protected)\n"
			"%s: first stop %.3f ms (inject %.3f ms), protect while running %.3f ms\n"
			"%s: stop %.3f ms, protect again %llu pages and the rest %.3f ms, stopped copy %.3f ms, resume %.3f ms\n"
			"%s: pause %.3f ms\n"
			"%s: copy %.3f ms, total %.3f ms, %s core, %.0f MiB/s\n"
			"%s: pages copied ahead of a write %llu, in the background %llu, while stopped %llu, lost %llu\n",
			kb_name(), (int)pid, s.threads, s.mappings, s.mappings_dumped, s.mappings_protected,
			kb_name(), ms(s.first_pause_ns), ms(s.inject_ns), ms(s.protect_running_ns),
			kb_name(), ms(s.stop_ns), (unsigned long long)s.pages_reprotected, ms(s.protect_ns),
			ms(s.stopped_copy_ns),
			ms(s.resume_ns), kb_name(), ms(s.pause_ns), kb_name(), ms(s.copy_ns), ms(s.total_ns),
			kb_format_size(s.core_bytes, a, sizeof(a)),
			secs > 0 ? (double)s.core_bytes / 1048576.0 / secs : 0, kb_name(),
			(unsigned long long)s.pages_ahead, (unsigned long long)s.pages_background,
			(unsigned long long)s.pages_stopped, (unsigned long long)s.pages_lost);
	}
	return 0;
}

const struct applet applet_uffd_snapshot = {
	.name = "uffd-snapshot",
	.main = uffd_snapshot_main,
	.summary = "consistent core dump of a running process with a millisecond pause",
	.usage = usage,
	.dir = "bin",
	.libs = KB_LIB_BIT(KB_LIB_ZSTD),
};
