/* kbox: the multicall dispatcher. Picks the applet from argv[0]'s basename
 * (so hard links and symlinks work) or from `kbox APPLET ARGS...`. */
#include "base/kbox.h"
#include "base/libraries.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Applets left out of the build (make APPLETS=...) are weak and resolve to NULL. */
#define APPLET(id) extern const struct applet applet_##id __attribute__((weak));
#include "applets.h"
#undef APPLET
#define APPLET(id) &applet_##id,
static const struct applet *const table[] = {
#include "applets.h"
	NULL
};
#undef APPLET

#define FOR_EACH_APPLET(a) \
	for (const struct applet *const *p_ = table; p_ < table + KB_ARRAY_SIZE(table) - 1; p_++) \
		if (((a) = *p_) != NULL)

static const char kbox_usage[] =
	"Usage: kbox APPLET [ARGS...]   or   APPLET [ARGS...] through a link named APPLET\n"
	"       kbox --list | --list-full | --help [APPLET] | --version\n"
	"       kbox --install [-s] DIR\n"
	"       kbox --libs [--json] [APPLET...]\n"
	"\n"
	"  --list         print the applet names, one a line\n"
	"  --list-full    print each applet with its install directory (bin/ or sbin/)\n"
	"  --help         print this help and the applets with a summary each\n"
	"  --version      print the version\n"
	"  --install DIR  make a hard link to kbox for every applet in DIR (-s: symlinks)\n"
	"  --libs         print the path of every shared library the applets (default: all)\n"
	"                 may open, and of those they need in turn, one a line; --json: the\n"
	"                 .note.dlopen notes that declare them, one a line\n"
	"\n"
	"Exit status: the applet's own; 127 for an unknown applet, 2 for a usage error.\n";

static const struct applet *find_applet(const char *name)
{
	const struct applet *a;
	FOR_EACH_APPLET(a)
		if (!strcmp(a->name, name))
			return a;
	return NULL;
}

static void print_help(FILE *f)
{
	const struct applet *a;
	fputs(kbox_usage, f);
	fputs("\nApplets:\n", f);
	FOR_EACH_APPLET(a)
		fprintf(f, "  %-16s %s\n", a->name, a->summary);
}

static int run_applet(const struct applet *a, int argc, char **argv)
{
	kb_applet = a;
	argv[0] = (char *)a->name;
	/* Uniform --help/--version as the first argument, whatever the applet's parser. */
	if (argc >= 2 && !strcmp(argv[1], "--help"))
		kb_help_exit();
	if (argc >= 2 && !strcmp(argv[1], "--version"))
		kb_version_exit();
	return a->main(argc, argv);
}

/* Makes a link to `exe` named DIR/NAME for every applet; an existing file is
 * replaced only when it is already kbox (same inode, or a symlink). */
static int install_links(const char *dir, int symbolic)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		kb_warn_errno("cannot find own executable: /proc/self/exe");
		return 1;
	}
	exe[n] = '\0';
	struct stat self;
	if (stat(exe, &self) < 0) {
		kb_warn_errno("%s", exe);
		return 1;
	}
	struct stat d;
	if (stat(dir, &d) < 0 || !S_ISDIR(d.st_mode)) {
		if (errno == 0 || S_ISREG(d.st_mode))
			errno = ENOTDIR;
		kb_warn_errno("--install: %s", dir);
		return 1;
	}
	int rc = 0;
	const struct applet *a;
	FOR_EACH_APPLET(a) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/%s", dir, a->name) >= (int)sizeof(path)) {
			kb_warn("--install: %s/%s: path too long", dir, a->name);
			rc = 1;
			continue;
		}
		struct stat old;
		if (lstat(path, &old) == 0) {
			int ours = S_ISLNK(old.st_mode) ||
				   (old.st_dev == self.st_dev && old.st_ino == self.st_ino);
			if (!ours) {
				kb_warn("--install: %s exists and is not kbox; left alone", path);
				rc = 1;
				continue;
			}
			if (unlink(path) < 0) {
				kb_warn_errno("--install: %s", path);
				rc = 1;
				continue;
			}
		}
		if ((symbolic ? symlink(exe, path) : link(exe, path)) < 0) {
			kb_warn_errno("--install: %s", path);
			rc = 1;
		}
	}
	return rc;
}

static void print_line(const char *text, void *arg)
{
	(void)arg;
	puts(text);
}

/* Prints a note when it declares one of the libraries in *arg. */
static void print_note_of(const char *json, void *arg)
{
	unsigned libs = *(const unsigned *)arg;
	for (int lib = 0; lib < KB_LIB_COUNT; lib++)
		if ((libs & KB_LIB_BIT(lib)) && !strcmp(json, kb_lib_note(lib))) {
			puts(json);
			return;
		}
}

/* kbox --libs [--json] [APPLET...]: what an initramfs hook must copy beside
 * kbox for these applets, or the notes that say so. */
static int print_libraries(int argc, char **argv)
{
	bool json = false, named = false;
	unsigned libs = 0;
	const struct applet *a;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (argv[i][0] == '-') {
			kb_warn("--libs: unknown option: %s", argv[i]);
			return 2;
		} else if ((a = find_applet(argv[i]))) {
			libs |= a->libs;
			named = true;
		} else {
			kb_warn("applet not found: %s", argv[i]);
			return 127;
		}
	}
	if (!named)
		FOR_EACH_APPLET(a)
			libs |= a->libs;
	int rc = 0;
	if (json) {
		/* The notes as the binary holds them: all of them, or those of the
		 * named applets' libraries. */
		if (named)
			kb_lib_each_note(print_note_of, &libs);
		else
			kb_lib_each_note(print_line, NULL);
	} else {
		for (int lib = 0; lib < KB_LIB_COUNT; lib++)
			if ((libs & KB_LIB_BIT(lib)) && !kb_lib_open(lib)) {
				kb_warn("%s", kb_lib_error(lib));
				rc = 1;
			}
		kb_lib_each_loaded(print_line, NULL);
	}
	return fflush(stdout) ? 1 : rc;
}

static int kbox_main(int argc, char **argv)
{
	const struct applet *a;
	if (argc < 2) {
		print_help(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	/* The common case first, past none of the option comparisons. */
	if (cmd[0] != '-') {
		if (!(a = find_applet(cmd))) {
			kb_warn("applet not found: %s", cmd);
			return 127;
		}
		return run_applet(a, argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "--list") || !strcmp(cmd, "--list-full")) {
		int full = !strcmp(cmd, "--list-full");
		FOR_EACH_APPLET(a)
			printf(full ? "%2$s/%1$s\n" : "%s\n", a->name, a->dir);
		return fflush(stdout) ? 1 : 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		if (argc > 2) {
			if (!(a = find_applet(argv[2]))) {
				kb_warn("applet not found: %s", argv[2]);
				return 127;
			}
			kb_applet = a;
			kb_help_exit();
		}
		print_help(stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("kbox %s\n", KBOX_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "--install")) {
		int symbolic = argc > 2 && !strcmp(argv[2], "-s");
		if (argc != 3 + symbolic) {
			kb_warn("usage: kbox --install [-s] DIR");
			return 2;
		}
		return install_links(argv[2 + symbolic], symbolic);
	}
	if (!strcmp(cmd, "--libs"))
		return print_libraries(argc - 2, argv + 2);
	kb_warn("unknown option: %s", cmd);
	fputs("Try 'kbox --help' for more information.\n", stderr);
	return 2;
}

int main(int argc, char **argv)
{
	const char *base = argc > 0 && argv[0] ? strrchr(argv[0], '/') : NULL;
	base = base ? base + 1 : (argc > 0 && argv[0] ? argv[0] : "kbox");
	const struct applet *a = find_applet(base);
	if (a)
		return run_applet(a, argc, argv);
	if (!strncmp(base, "kbox", 4))
		return kbox_main(argc, argv);
	kb_warn("applet not found: %s", base);
	return 127;
}
