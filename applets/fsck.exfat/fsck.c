/* fsck.exfat: check and repair an exFAT filesystem, every repair undoable. */
#include "blockdev/blockdev.h"
#include "exfat/exfat_fsck.h"
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "blockdev/mounted.h"
#include "blockdev/undo.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
	EXIT_CLEAN = 0,
	EXIT_CORRECTED = 1,
	EXIT_UNCORRECTED = 4,
	EXIT_OPERATIONAL = 8,
	EXIT_USAGE = 16,
	EXIT_CANCELLED = 32,
};

enum mode { MODE_DEFAULT, MODE_CHECK, MODE_ALL, MODE_SAFE, MODE_ASK };

struct recorded {
	char *code, *path, *message, *repair;
	uint64_t offset;
	bool repaired;
};

struct run {
	enum mode mode;
	bool verbose, json, yes_to_all, progress_shown;
	struct timespec last_progress;
	FILE *tty;
	struct recorded *list;
	size_t nlist, caplist;
};

static const char usage[] =
	"Usage: fsck.exfat [-n|-y|-p|-a|-r] [-b] [-s] [-v] [-P] [-z UNDO] [--json] DEVICE|FILE\n"
	"       fsck.exfat --rollback UNDO [--force] DEVICE|FILE\n"
	"Check an exFAT filesystem and repair it without losing files.\n"
	"\n"
	"  -n               check only; open the device read-only\n"
	"  -y               repair every problem without asking\n"
	"  -p, -a           repair what is safe without asking (checksums, sizes,\n"
	"                   bitmap, ...); truncations, deletions and renames are left\n"
	"  -r               ask on the terminal before each repair\n"
	"                   (no mode: ask on a controlling terminal, else check only)\n"
	"  -b               use the backup boot region (and restore the main from it)\n"
	"  -s               keep orphan clusters as /LOST+FOUND/FILEnnnnnnn.CHK\n"
	"  -z, --undo FILE  save every block before it is overwritten to FILE\n"
	"      --rollback FILE  write the blocks saved in FILE back to the device\n"
	"      --force      roll back even if the device changed after the repair\n"
	"      --json       print a machine-readable report on stdout\n"
	"  -v               also print notes (dirty volume, ...)\n"
	"  -P, --progress   show progress on the terminal\n"
	"  -V, --version    print the version\n"
	"  -h, --help       print this help\n"
	"\n"
	"Exit status: 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
	"8 operational error, 16 usage error, 32 cancelled by the user.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static enum exfat_fsck_decision ask(struct run *run, const struct exfat_fsck_problem *p)
{
	if (!run->tty)
		return EXFAT_FSCK_SKIP;
	for (;;) {
		if (run->progress_shown)
			fputs("\r\033[K", stderr);
		run->progress_shown = false;
		fprintf(stderr, "%s: %s%s%s. %s? [y]es [n]o [a]ll [q]uit: ", kb_name(), p->path,
			*p->path ? ": " : "", p->message, p->repair);
		fflush(stderr);
		char line[32];
		if (!fgets(line, sizeof(line), run->tty) || interrupted)
			return EXFAT_FSCK_QUIT;
		switch (line[0]) {
		case 'y': case 'Y': return EXFAT_FSCK_REPAIR;
		case 'n': case 'N': return EXFAT_FSCK_SKIP;
		case 'a': case 'A': run->yes_to_all = true; return EXFAT_FSCK_REPAIR;
		case 'q': case 'Q': return EXFAT_FSCK_QUIT;
		}
	}
}

static enum exfat_fsck_decision decide(void *ctx, const struct exfat_fsck_problem *p)
{
	struct run *run = ctx;
	if (interrupted)
		return EXFAT_FSCK_QUIT;
	if (!p->repair)
		return EXFAT_FSCK_SKIP;
	switch (run->mode) {
	case MODE_ALL:
		return EXFAT_FSCK_REPAIR;
	case MODE_SAFE:
		return p->safe ? EXFAT_FSCK_REPAIR : EXFAT_FSCK_SKIP;
	case MODE_ASK:
		return run->yes_to_all ? EXFAT_FSCK_REPAIR : ask(run, p);
	default:
		return EXFAT_FSCK_SKIP;
	}
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void report(void *ctx, const struct exfat_fsck_problem *p, bool repaired)
{
	struct run *run = ctx;
	if (run->progress_shown)
		fputs("\r\033[K", stderr);
	run->progress_shown = false;
	fprintf(stderr, "%s: %s%s%s (at 0x%llx)%s%s\n", kb_name(), p->path, *p->path ? ": " : "", p->message,
		(unsigned long long)p->offset, repaired ? ": repaired: " : p->repair ? ": not repaired" : ": cannot be repaired",
		repaired ? p->repair : "");
	if (!run->json)
		return;
	if (run->nlist == run->caplist) {
		size_t n = run->caplist ? run->caplist * 2 : 32;
		struct recorded *l = realloc(run->list, n * sizeof(*l));
		if (!l)
			kb_die(EXIT_OPERATIONAL, "out of memory");
		run->list = l, run->caplist = n;
	}
	run->list[run->nlist++] = (struct recorded){ dup_or_null(p->code), dup_or_null(p->path), dup_or_null(p->message),
						      dup_or_null(p->repair), p->offset, repaired };
}

static void note(void *ctx, const char *message)
{
	struct run *run = ctx;
	if (run->verbose)
		fprintf(stderr, "%s: note: %s\n", kb_name(), message);
}

/* -P: one rewritten line on the terminal, at most ten times a second. */
static void progress(void *ctx, uint64_t dirs_done, uint64_t dirs_known, uint64_t files)
{
	struct run *run = ctx;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	int64_t ms = (now.tv_sec - run->last_progress.tv_sec) * 1000 + (now.tv_nsec - run->last_progress.tv_nsec) / 1000000;
	if (run->progress_shown && ms < 100)
		return;
	run->last_progress = now;
	run->progress_shown = true;
	fprintf(stderr, "\r%s: %llu/%llu directories, %llu files\033[K", kb_name(), (unsigned long long)dirs_done,
		(unsigned long long)dirs_known, (unsigned long long)files);
	fflush(stderr);
}

static int refuse_if_mounted(int fd, const char *dev, bool writing)
{
	struct stat st;
	char where[4096];
	if (fstat(fd, &st) < 0)
		return 0;
	int m = kb_mounted_at(&st, where, sizeof(where));
	if (m <= 0)
		return 0;
	if (writing) {
		kb_warn("%s is mounted on %s: refusing to repair it (unmount it first)", dev, where);
		return -1;
	}
	kb_warn("warning: %s is mounted on %s: the check may see stale data", dev, where);
	return 0;
}

/* Opens the device or image, or exits with the reason. */
static int open_device(const char *dev, bool writing, struct stat *st)
{
	int fd = kb_dev_open(dev, writing, st);
	if (fd >= 0) {
		if (kb_dev_lock(fd, writing) == 0)
			return fd;
		if (errno != EWOULDBLOCK)
			kb_die_errno(EXIT_OPERATIONAL, "%s: lock", dev);
		if (writing)
			kb_die(EXIT_OPERATIONAL, "%s is being checked or repaired by another program; "
			       "refusing to write to it", dev);
		kb_warn("warning: %s is being repaired by another program: the check may see it half-way", dev);
		return fd;
	}
	if (errno == EINVAL)
		kb_die(EXIT_OPERATIONAL, "%s is neither a block device nor a regular file", dev);
	if (writing && errno == EBUSY)
		kb_die(EXIT_OPERATIONAL, "%s: in use (mounted?): refusing to write to it", dev);
	if (writing && errno == EROFS)
		kb_die(EXIT_OPERATIONAL, "%s is read-only: nothing can be written (-n checks only)", dev);
	kb_die_errno(EXIT_OPERATIONAL, "%s", dev);
}

static int rollback(const char *undo_path, const char *dev, bool force)
{
	struct stat st;
	int fd = open_device(dev, true, &st);
	if (refuse_if_mounted(fd, dev, true) < 0)
		return EXIT_OPERATIONAL;
	uint64_t size;
	if (kb_dev_size(fd, &size) < 0)
		kb_die_errno(EXIT_OPERATIONAL, "%s: size", dev);
	struct kb_undo_result res;
	if (kb_undo_rollback(undo_path, fd, size, force, &res) < 0) {
		if (errno == ESTALE && res.interrupted)
			kb_warn("%s: undo file from an interrupted run (its blocks are all usable); "
				"--force writes them back", undo_path);
		else if (errno == ESTALE && res.size_differs)
			kb_warn("%s: made for a device of %llu bytes, %s has %llu (another device?); "
				"--force writes it anyway", undo_path, (unsigned long long)res.undo_dev_size, dev,
				(unsigned long long)size);
		else if (errno == ESTALE)
			kb_warn("%s: the device does not hold what the undo file left there "
				"(changed since, or another device); --force writes it anyway",
				undo_path);
		else if (errno == EINVAL)
			kb_warn("%s: not an undo file", undo_path);
		else if (errno == EBADMSG)
			kb_warn("%s: undo file damaged; nothing written", undo_path);
		else if (errno == ERANGE)
			kb_warn("%s: saved blocks lie beyond the end of %s; nothing written", undo_path, dev);
		else
			kb_warn_errno("%s: rollback", undo_path);
		close(fd);
		return EXIT_OPERATIONAL;
	}
	printf("%s: restored %llu blocks from %s%s\n", dev, (unsigned long long)res.restored, undo_path,
	       res.interrupted ? " (from an interrupted run)" : "");
	if (res.cut_bytes)
		kb_warn("%s: its last record was cut short (%llu bytes), its block not yet written: skipped",
			undo_path, (unsigned long long)res.cut_bytes);
	if (res.changed_since)
		kb_warn("%llu blocks had changed since the repair (--force)", (unsigned long long)res.changed_since);
	close(fd);
	return EXIT_CLEAN;
}

static const char *mode_name(enum mode m)
{
	static const char *const names[] = { "check", "check", "repair", "preen", "ask" };
	return names[m];
}

static void print_json(const struct run *run, const char *dev, const struct exfat_fsck_result *r, int code)
{
	struct kb_json j;
	kb_json_init(&j, stdout);
	kb_json_begin_object(&j);
	kb_json_kv_string(&j, "device", dev);
	kb_json_kv_string(&j, "mode", mode_name(run->mode));
	kb_json_kv_int(&j, "exit_code", code);
	kb_json_kv_bool(&j, "clean", r->problems == 0 && !r->fatal && !r->cancelled);
	kb_json_kv_uint(&j, "problems_found", r->problems);
	kb_json_kv_uint(&j, "problems_repaired", r->repaired);
	kb_json_kv_uint(&j, "directories", r->directories);
	kb_json_kv_uint(&j, "files", r->files);
	kb_json_kv_uint(&j, "cluster_size", r->cluster_size);
	kb_json_kv_uint(&j, "cluster_count", r->cluster_count);
	/* Counted by the bitmap check, the last phase: unknown if it never ran. */
	kb_json_key(&j, "clusters_used");
	if (r->cancelled || r->fatal)
		kb_json_null(&j);
	else
		kb_json_uint(&j, r->clusters_used);
	kb_json_kv_bool(&j, "cancelled", r->cancelled);
	kb_json_kv_string(&j, "error", r->fatal ? r->error : NULL);
	kb_json_key(&j, "problems");
	kb_json_begin_array(&j);
	for (size_t k = 0; k < run->nlist; k++) {
		const struct recorded *p = &run->list[k];
		kb_json_begin_object(&j);
		kb_json_kv_string(&j, "code", p->code);
		kb_json_kv_string(&j, "path", p->path);
		kb_json_kv_uint(&j, "offset", p->offset);
		kb_json_kv_string(&j, "message", p->message);
		kb_json_kv_string(&j, "repair", p->repair);
		kb_json_kv_bool(&j, "repaired", p->repaired);
		kb_json_end_object(&j);
	}
	kb_json_end_array(&j);
	kb_json_end_object(&j);
	kb_json_end_line(&j);
}

static int fsck_exfat_main(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_ROLLBACK, OPT_FORCE };
	static const struct option longopts[] = {
		{ "undo", required_argument, NULL, 'z' },
		{ "rollback", required_argument, NULL, OPT_ROLLBACK },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "progress", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct run run = { .mode = MODE_DEFAULT };
	struct exfat_fsck_opts opts = { .decide = decide, .report = report, .note = note,
					.cancel = &interrupted, .ctx = &run };
	const char *undo_path = NULL, *rollback_path = NULL;
	bool force = false;
	int c;
	while ((c = getopt_long(argc, argv, "nypabrsvPz:hV", longopts, NULL)) != -1) {
		enum mode m = MODE_DEFAULT;
		switch (c) {
		case 'n': m = MODE_CHECK; break;
		case 'y': m = MODE_ALL; break;
		case 'p': case 'a': m = MODE_SAFE; break;
		case 'r': m = MODE_ASK; break;
		case 'b': opts.use_backup = true; break;
		case 's': opts.rescue = true; break;
		case 'v': run.verbose = true; break;
		case 'P': if (isatty(STDERR_FILENO)) opts.progress = progress; break;
		case 'z': undo_path = optarg; break;
		case OPT_ROLLBACK: rollback_path = optarg; break;
		case OPT_FORCE: force = true; break;
		case OPT_JSON: run.json = true; break;
		case 'h': kb_help_exit();
		case 'V': kb_version_exit();
		default: kb_usage_error("unknown option");
		}
		if (m != MODE_DEFAULT) {
			if (run.mode != MODE_DEFAULT && run.mode != m)
				kb_usage_error("only one of -n, -y, -p/-a, -r");
			run.mode = m;
		}
	}
	if (optind + 1 != argc)
		kb_usage_error(optind >= argc ? "missing DEVICE" : "too many arguments");
	const char *dev = argv[optind];
	if (rollback_path) {
		if (run.mode != MODE_DEFAULT || undo_path || opts.rescue || opts.use_backup || run.json ||
		    run.verbose || opts.progress)
			kb_usage_error("--rollback takes no other option than --force");
		return rollback(rollback_path, dev, force);
	}
	if (force)
		kb_usage_error("--force goes with --rollback");
	if (run.mode == MODE_DEFAULT) {
		/* Asks only where someone can answer. A terminal that is not the
		 * controlling one (the console an initramfs runs fsck on) checks
		 * only, as with no terminal: a boot never waits for an answer. */
		if (isatty(STDIN_FILENO) && isatty(STDERR_FILENO))
			run.tty = fopen("/dev/tty", "r");
		run.mode = run.tty ? MODE_ASK : MODE_CHECK;
	} else if (run.mode == MODE_ASK) {
		run.tty = fopen("/dev/tty", "r");
		if (!run.tty)
			kb_die_errno(EXIT_USAGE, "-r needs a terminal: /dev/tty");
	}
	if (run.mode == MODE_CHECK && undo_path)
		kb_usage_error("-z needs a repair mode (-y, -p, -r)");

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	bool writing = run.mode != MODE_CHECK;
	struct stat st;
	int fd = open_device(dev, writing, &st);
	if (refuse_if_mounted(fd, dev, writing) < 0)
		return EXIT_OPERATIONAL;
	uint64_t size;
	if (kb_dev_size(fd, &size) < 0)
		kb_die_errno(EXIT_OPERATIONAL, "%s: size", dev);
	if (undo_path) {
		char err[PATH_MAX * 2 + 80];
		if (kb_undo_path_check(undo_path, dev, &st, err, sizeof(err)) < 0)
			kb_die(EXIT_USAGE, "%s", err);
		opts.undo = kb_undo_create(undo_path, fd, 4096, size);
		if (!opts.undo)
			kb_die_errno(EXIT_OPERATIONAL, "%s: undo file", undo_path);
	}
	opts.writable = writing;

	struct exfat_fsck_result r;
	exfat_fsck_run(fd, size, &opts, &r);
	if (run.progress_shown)
		fputs("\r\033[K", stderr);
	if (opts.undo && kb_undo_close(opts.undo) < 0) {
		kb_warn_errno("%s: undo file", undo_path);
		r.fatal = r.operational = true;
	}
	if (close(fd) < 0 && writing) {
		kb_warn_errno("%s: close", dev);
		r.fatal = r.operational = true;
	}
	int code;
	if (r.fatal && (r.not_exfat || r.operational || !r.error[0]))
		code = EXIT_OPERATIONAL;
	else if (r.cancelled)
		code = EXIT_CANCELLED;
	else if (r.fatal || r.repaired < r.problems)
		code = EXIT_UNCORRECTED;
	else
		code = r.repaired ? EXIT_CORRECTED : EXIT_CLEAN;
	if (r.fatal && r.error[0])
		kb_warn("%s: %s", dev, r.error);
	if (run.json) {
		print_json(&run, dev, &r, code);
	} else if (!r.fatal) {
		if (r.cancelled)
			printf("%s: cancelled, %llu files, %llu directories seen", dev,
			       (unsigned long long)r.files, (unsigned long long)r.directories);
		else
			printf("%s: %s, %llu files, %llu directories, %llu/%llu clusters used", dev,
			       r.problems == 0 ? "clean" : r.repaired == r.problems ? "repaired" : "errors left",
			       (unsigned long long)r.files, (unsigned long long)r.directories,
			       (unsigned long long)r.clusters_used, (unsigned long long)r.cluster_count);
		if (r.problems)
			printf(", %u problems, %u repaired", r.problems, r.repaired);
		printf("\n");
	}
	for (size_t k = 0; k < run.nlist; k++)
		free(run.list[k].code), free(run.list[k].path), free(run.list[k].message), free(run.list[k].repair);
	free(run.list);
	if (run.tty)
		fclose(run.tty);
	return code;
}

const struct applet applet_fsck_exfat = {
	.name = "fsck.exfat",
	.main = fsck_exfat_main,
	.summary = "check and repair an exFAT filesystem (with undo files)",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = EXIT_USAGE,
	.error_exit = EXIT_OPERATIONAL,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT) | KB_LIB_BIT(KB_LIB_ZSTD),
};
