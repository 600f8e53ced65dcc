/* exfatlabel: print or set an exFAT filesystem's label, or with -i its serial
 * number (exfatprogs' interface; tune.exfat does the same and more). */
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/parse.h"
#include "exfat/exfat_label.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"Usage: exfatlabel DEVICE|FILE [LABEL]\n"
	"       exfatlabel -i DEVICE|FILE [SERIAL]\n"
	"Print the volume label of an exFAT filesystem, or set it to LABEL (at most\n"
	"11 UTF-16 units, none of \" * / : < > ? \\ | or control characters; ''\n"
	"empties it). With -i, print the volume serial number, or set it to SERIAL\n"
	"(0 to 0xffffffff, decimal or 0x hexadecimal).\n"
	"\n"
	"  -i, --volume-serial  the serial number instead of the label\n"
	"  -V, --version        print the version\n"
	"  -h, --help           print this help\n"
	"\n"
	"Exit status: 0 done, 1 the volume could not be read or changed (nothing is\n"
	"written when a change is refused), 2 usage error or invalid value.\n";

static int exfatlabel_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "volume-serial", no_argument, NULL, 'i' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool serial_mode = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "iVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i': serial_mode = true; break;
		case 'V': kb_version_exit();
		case 'h': kb_help_exit();
		default: kb_usage_error("invalid option");
		}
	}
	if (optind >= argc)
		kb_usage_error("missing DEVICE or FILE");
	if (argc - optind > 2)
		kb_usage_error("unexpected argument '%s'", argv[optind + 2]);
	const char *path = argv[optind], *value = argc - optind == 2 ? argv[optind + 1] : NULL;

	struct exfat_id_change change = { 0 };
	char err[PATH_MAX + 512];
	if (value && serial_mode) {
		uint64_t serial;
		if (kb_parse_u64_range(value, 0, UINT32_MAX, &serial) < 0)
			kb_die(EXIT_USAGE, "invalid volume serial '%s' (0 to 0xffffffff, decimal or 0x hexadecimal)",
			       value);
		change.serial = (uint32_t)serial;
		change.set_serial = true;
	} else if (value) {
		if (exfat_label_from_utf8(value, change.label, &change.label_len, err, sizeof(err)) < 0)
			kb_die(EXIT_USAGE, "%s", err);
		change.set_label = true;
	}
	struct exfat_id was, now;
	bool others_lock;
	if (exfat_id_apply(path, value ? &change : NULL, NULL, &was, &now, &others_lock, err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s", err);
	if (others_lock)
		kb_warn("warning: %s is being changed by another program: what was read may be half-way", path);
	if (value)
		return EXIT_OK;
	if (serial_mode) {
		printf("0x%08x\n", now.serial);
	} else {
		char label[EXFAT_LABEL_UTF8_MAX];
		exfat_label_to_utf8(now.label, now.label_len, label);
		puts(label);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

const struct applet applet_exfatlabel = {
	.name = "exfatlabel",
	.main = exfatlabel_main,
	.summary = "print or set an exFAT filesystem's label or serial (exfatprogs' interface)",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = EXIT_USAGE,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT) | KB_LIB_BIT(KB_LIB_ZSTD),
};
