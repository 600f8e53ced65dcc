/* tune.exfat: print or change the label, serial number and GUID of an exFAT
 * filesystem, in place, with an optional undo file. */
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/parse.h"
#include "exfat/exfat_label.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"Usage: tune.exfat [OPTIONS] DEVICE|FILE\n"
	"Print or change the label, serial number and GUID of an exFAT filesystem.\n"
	"Values are printed one a line, in the order asked, after any change.\n"
	"\n"
	"  -l, --print-label          print the volume label\n"
	"  -L, --set-label LABEL      set the volume label: at most 11 UTF-16 units,\n"
	"                             none of \" * / : < > ? \\ | or control characters;\n"
	"                             '' empties it\n"
	"  -i, --print-serial         print the volume serial number (0xXXXXXXXX)\n"
	"  -I, --set-serial SERIAL    set it: 0 to 0xffffffff, decimal or 0x hexadecimal\n"
	"  -u, --print-guid           print the volume GUID (an empty line: none)\n"
	"  -U, --set-guid GUID|random|clear\n"
	"                             write the volume GUID entry (xxxxxxxx-xxxx-xxxx-\n"
	"                             xxxx-xxxxxxxxxxxx), a random one, or remove it\n"
	"  -z, --undo FILE            save every block before it is overwritten to FILE;\n"
	"                             fsck.exfat --rollback FILE DEVICE puts them back\n"
	"      --json                 print label, serial and GUID as one JSON object\n"
	"  -v, --verbose              say on stderr what changed\n"
	"  -V, --version              print the version\n"
	"  -h, --help                 print this help\n"
	"\n"
	"Exit status: 0 done, 1 the volume could not be read or changed (nothing is\n"
	"written when a change is refused), 2 usage error or invalid value.\n";

enum { OPT_JSON = 256 };

struct options {
	const char *path, *undo_path;
	char prints[16];               /* 'l', 'i', 'u' in the order asked */
	unsigned nprints;
	struct exfat_id_change change;
	bool changing, json, verbose;
};

static void parse_guid(struct exfat_id_change *c, const char *arg)
{
	if (!strcmp(arg, "clear")) {
		c->guid_change = EXFAT_GUID_CLEAR;
		return;
	}
	c->guid_change = EXFAT_GUID_SET;
	if (!strcmp(arg, "random")) {
		if (exfat_guid_random(c->guid) < 0)
			kb_die_errno(EXIT_FAILED, "cannot make a random GUID: getrandom");
		return;
	}
	if (exfat_guid_parse(arg, c->guid) < 0)
		kb_die(EXIT_USAGE, "invalid volume GUID '%s' (want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, "
		       "random or clear)", arg);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "print-label", no_argument, NULL, 'l' },
		{ "set-label", required_argument, NULL, 'L' },
		{ "print-serial", no_argument, NULL, 'i' },
		{ "set-serial", required_argument, NULL, 'I' },
		{ "print-guid", no_argument, NULL, 'u' },
		{ "set-guid", required_argument, NULL, 'U' },
		{ "undo", required_argument, NULL, 'z' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct exfat_id_change *c = &o->change;
	char err[512];
	uint64_t serial;
	int opt;
	while ((opt = getopt_long(argc, argv, "lL:iI:uU:z:vVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l': case 'i': case 'u':
			if (o->nprints < sizeof(o->prints))
				o->prints[o->nprints++] = (char)opt;
			break;
		case 'L':
			if (exfat_label_from_utf8(optarg, c->label, &c->label_len, err, sizeof(err)) < 0)
				kb_die(EXIT_USAGE, "%s", err);
			c->set_label = o->changing = true;
			break;
		case 'I':
			if (kb_parse_u64_range(optarg, 0, UINT32_MAX, &serial) < 0)
				kb_die(EXIT_USAGE, "invalid volume serial '%s' (0 to 0xffffffff, decimal or 0x "
				       "hexadecimal)", optarg);
			c->serial = (uint32_t)serial;
			c->set_serial = o->changing = true;
			break;
		case 'U':
			parse_guid(c, optarg);
			o->changing = true;
			break;
		case 'z': o->undo_path = optarg; break;
		case OPT_JSON: o->json = true; break;
		case 'v': o->verbose = true; break;
		case 'V': kb_version_exit();
		case 'h': kb_help_exit();
		default: kb_usage_error("invalid option");
		}
	}
	if (optind >= argc)
		kb_usage_error("missing DEVICE or FILE");
	o->path = argv[optind++];
	if (optind < argc)
		kb_usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->changing && !o->nprints && !o->json)
		kb_usage_error("nothing to do: give -l, -L, -i, -I, -u, -U or --json");
	if (o->undo_path && !o->changing)
		kb_usage_error("-z goes with a change (-L, -I or -U)");
}

static void guid_text(const struct exfat_id *id, char out[37])
{
	if (id->has_guid)
		exfat_guid_format(id->guid, out);
	else
		out[0] = '\0';
}

/* -v: one line on stderr for each value that changed. */
static void say_changes(const struct options *o, const struct exfat_id *was, const struct exfat_id *now)
{
	char a[EXFAT_LABEL_UTF8_MAX], b[EXFAT_LABEL_UTF8_MAX], ga[37], gb[37];
	exfat_label_to_utf8(was->label, was->label_len, a);
	exfat_label_to_utf8(now->label, now->label_len, b);
	if (strcmp(a, b))
		fprintf(stderr, "%s: %s: label '%s' -> '%s'\n", kb_name(), o->path, a, b);
	if (was->serial != now->serial)
		fprintf(stderr, "%s: %s: serial 0x%08x -> 0x%08x\n", kb_name(), o->path, was->serial, now->serial);
	guid_text(was, ga);
	guid_text(now, gb);
	if (strcmp(ga, gb))
		fprintf(stderr, "%s: %s: GUID %s -> %s\n", kb_name(), o->path, *ga ? ga : "(none)",
			*gb ? gb : "(none)");
	if (o->change.grown_cluster)
		fprintf(stderr, "%s: %s: the root directory grew by cluster %u\n", kb_name(), o->path,
			o->change.grown_cluster);
}

static void print_json(const struct options *o, const struct exfat_id *was, const struct exfat_id *now)
{
	char label[EXFAT_LABEL_UTF8_MAX], guid[37];
	exfat_label_to_utf8(now->label, now->label_len, label);
	struct kb_json j;
	kb_json_init(&j, stdout);
	kb_json_begin_object(&j);
	kb_json_kv_string(&j, "device", o->path);
	kb_json_kv_string(&j, "label", label);
	kb_json_kv_uint(&j, "serial", now->serial);
	guid_text(now, guid);
	kb_json_kv_string(&j, "guid", now->has_guid ? guid : NULL);
	kb_json_key(&j, "changed");
	kb_json_begin_array(&j);
	char a[EXFAT_LABEL_UTF8_MAX];
	exfat_label_to_utf8(was->label, was->label_len, a);
	if (strcmp(a, label))
		kb_json_string(&j, "label");
	if (was->serial != now->serial)
		kb_json_string(&j, "serial");
	if (was->has_guid != now->has_guid || (now->has_guid && memcmp(was->guid, now->guid, 16)))
		kb_json_string(&j, "guid");
	kb_json_end_array(&j);
	kb_json_kv_bool(&j, "root_grown", o->change.grown_cluster != 0);
	kb_json_end_object(&j);
	kb_json_end_line(&j);
}

static int tune_exfat_main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);
	struct exfat_id was, now;
	bool others_lock;
	char err[PATH_MAX + 512];
	if (exfat_id_apply(o.path, o.changing ? &o.change : NULL, o.undo_path, &was, &now, &others_lock, err,
			   sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s", err);
	if (others_lock)
		kb_warn("warning: %s is being changed by another program: what was read may be half-way", o.path);
	if (o.verbose)
		say_changes(&o, &was, &now);
	if (o.json) {
		print_json(&o, &was, &now);
	} else {
		for (unsigned k = 0; k < o.nprints; k++) {
			char text[EXFAT_LABEL_UTF8_MAX + 37];
			if (o.prints[k] == 'l')
				exfat_label_to_utf8(now.label, now.label_len, text);
			else if (o.prints[k] == 'i')
				snprintf(text, sizeof(text), "0x%08x", now.serial);
			else
				guid_text(&now, text);
			puts(text);
		}
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILED;
}

const struct applet applet_tune_exfat = {
	.name = "tune.exfat",
	.main = tune_exfat_main,
	.summary = "print or change an exFAT filesystem's label, serial and GUID (with undo files)",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = EXIT_USAGE,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT) | KB_LIB_BIT(KB_LIB_ZSTD),
};
