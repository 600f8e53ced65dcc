/* mkfs.exfat: create an exFAT filesystem on a block device or image file,
 * optionally inside a new partition table and populated from a directory. */
#include "base/kbox.h"
#include "base/libraries.h"
#include "blockdev/blockdev.h"
#include "exfat/exfat.h"
#include "exfat/exfat_format.h"
#include "exfat/exfat_label.h"
#include "exfat/exfat_upcase.h"
#include "blockdev/fs_signatures.h"
#include "blockdev/mounted.h"
#include "base/parse.h"
#include "blockdev/parttable.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Microsoft basic data: the GPT type Windows and cameras expect for exFAT. */
#define GPT_TYPE_BASIC_DATA "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
#define MBR_TYPE_EXFAT 0x07

static const char usage[] =
	"Usage: mkfs.exfat [OPTIONS] DEVICE|FILE [SIZE]\n"
	"Create an exFAT filesystem. With SIZE (K/M/G/T suffixes) a FILE is created or\n"
	"extended sparsely to that size first; on a larger device only SIZE is used.\n"
	"\n"
	"  -L, --volume-label LABEL     volume label, at most 11 UTF-16 units\n"
	"  -U, --volume-guid GUID       volume GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\n"
	"      --volume-serial N        volume serial number (default: from the clock)\n"
	"  -s, --sector-size SIZE       512..4096, power of two (default: the device's\n"
	"                               logical sector size; 512 for files)\n"
	"  -c, --cluster-size SIZE      power of two, 512 to 32M (default: by volume size)\n"
	"  -b, --boundary-align SIZE    FAT and cluster heap alignment (default 1M)\n"
	"      --pack-bitmap            put the bitmap just below the aligned heap start\n"
	"  -f, --full-format            zero the whole cluster heap\n"
	"  -K, --nodiscard              do not discard the device's blocks first\n"
	"  -P, --partition-table TYPE   mbr, gpt or none (default): write a table with one\n"
	"                               exFAT partition and format that partition\n"
	"  -d, --root-dir DIR           copy DIR's files and directories into the volume\n"
	"  -q, --quiet                  print errors only\n"
	"  -v, --verbose                print the layout and every erased signature\n"
	"  -V, --version                print the version\n"
	"  -h, --help                   print this help\n"
	"\n"
	"Exit status: 0 formatted, 1 refused or failed (nothing written when refused),\n"
	"2 usage error.\n";

struct options {
	const char *path;
	uint64_t size;                 /* 0: the device's or file's size */
	uint16_t label[EXFAT_MAX_LABEL_LEN];
	unsigned label_len;
	bool has_guid, has_serial;
	uint8_t guid[16];
	uint32_t serial;
	unsigned sector_size;          /* 0: default */
	uint64_t cluster_size, boundary;
	bool pack_bitmap, full_format, nodiscard, quiet, verbose;
	int partition;                 /* -1 none, else enum kb_parttable_kind */
	const char *root_dir;
};

enum { OPT_SERIAL = 256, OPT_PACK };

static uint64_t parse_size_opt(const char *opt, const char *arg)
{
	uint64_t v;
	if (kb_parse_size(arg, &v) < 0)
		kb_usage_error("invalid size for %s: '%s'", opt, arg);
	return v;
}

static void parse_label(struct options *o, const char *arg)
{
	char err[512];
	if (exfat_label_from_utf8(arg, o->label, &o->label_len, err, sizeof(err)) < 0)
		kb_die(1, "%s", err);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "volume-label", required_argument, NULL, 'L' },
		{ "volume-guid", required_argument, NULL, 'U' },
		{ "volume-serial", required_argument, NULL, OPT_SERIAL },
		{ "sector-size", required_argument, NULL, 's' },
		{ "cluster-size", required_argument, NULL, 'c' },
		{ "boundary-align", required_argument, NULL, 'b' },
		{ "pack-bitmap", no_argument, NULL, OPT_PACK },
		{ "full-format", no_argument, NULL, 'f' },
		{ "nodiscard", no_argument, NULL, 'K' },
		{ "partition-table", required_argument, NULL, 'P' },
		{ "root-dir", required_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->partition = -1;
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "L:U:s:c:b:fKP:d:qvVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'L':
			parse_label(o, optarg);
			break;
		case 'U':
			if (exfat_guid_parse(optarg, o->guid) < 0)
				kb_usage_error("invalid volume GUID '%s' (want xxxxxxxx-xxxx-xxxx-xxxx-"
					       "xxxxxxxxxxxx)", optarg);
			o->has_guid = true;
			break;
		case OPT_SERIAL:
			if (kb_parse_u64_range(optarg, 0, UINT32_MAX, &v) < 0)
				kb_usage_error("invalid volume serial '%s' (0 to 0xffffffff)", optarg);
			o->serial = (uint32_t)v;
			o->has_serial = true;
			break;
		case 's':
			v = parse_size_opt("--sector-size", optarg);
			if (v < 512 || v > 4096 || (v & (v - 1)))
				kb_die(1, "sector size %s is not a power of two between 512 and 4096", optarg);
			o->sector_size = (unsigned)v;
			break;
		case 'c':
			o->cluster_size = parse_size_opt("--cluster-size", optarg);
			if (o->cluster_size < 512 || o->cluster_size > (32u << 20) ||
			    (o->cluster_size & (o->cluster_size - 1)))
				kb_die(1, "cluster size %s is not a power of two between 512 and 32M",
				       optarg);
			break;
		case 'b':
			o->boundary = parse_size_opt("--boundary-align", optarg);
			if (o->boundary < 512 || (o->boundary & (o->boundary - 1)))
				kb_die(1, "boundary alignment %s is not a power of two of at least 512",
				       optarg);
			break;
		case OPT_PACK:
			o->pack_bitmap = true;
			break;
		case 'f':
			o->full_format = true;
			break;
		case 'K':
			o->nodiscard = true;
			break;
		case 'P':
			if (!strcmp(optarg, "mbr") || !strcmp(optarg, "dos"))
				o->partition = KB_PT_MBR;
			else if (!strcmp(optarg, "gpt"))
				o->partition = KB_PT_GPT;
			else if (!strcmp(optarg, "none"))
				o->partition = -1;
			else
				kb_usage_error("invalid partition table type '%s' (mbr, gpt or none)", optarg);
			break;
		case 'd':
			o->root_dir = optarg;
			break;
		case 'q':
			o->quiet = true;
			o->verbose = false;
			break;
		case 'v':
			o->verbose = true;
			o->quiet = false;
			break;
		case 'V':
			kb_version_exit();
		case 'h':
			kb_help_exit();
		default:
			kb_usage_error("invalid option");
		}
	}
	if (optind >= argc)
		kb_usage_error("missing DEVICE or FILE");
	o->path = argv[optind++];
	if (optind < argc) {
		if (kb_parse_size(argv[optind], &o->size) < 0 || o->size == 0)
			kb_usage_error("invalid SIZE '%s'", argv[optind]);
		optind++;
	}
	if (optind < argc)
		kb_usage_error("unexpected argument '%s'", argv[optind]);
}

/* What was done to the target before formatting, to undo it on refusal. */
struct target {
	int fd;
	struct stat st;
	bool created;                  /* we created the file */
	bool extended;                 /* we extended the file from old_size */
	uint64_t old_size;
	uint64_t dev_size;
};

/* An image file this run created and has not finished: removed if the run
 * fails, exits early or is interrupted, so no half-made image is left. */
static const char *volatile unfinished_path;

static void remove_unfinished(void)
{
	if (unfinished_path)
		unlink(unfinished_path);
}

static void on_interrupt(int sig)
{
	remove_unfinished();
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int interrupting[] = { SIGINT, SIGTERM, SIGHUP, 0 };

static void undo_target(const struct options *o, struct target *t)
{
	if (t->created) {
		unlink(o->path);
		unfinished_path = NULL;
	}
	else if (t->extended && ftruncate(t->fd, (off_t)t->old_size) < 0)
		kb_warn_errno("%s: cannot restore the original size", o->path);
}

_Noreturn static void refuse(const struct options *o, struct target *t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(const struct options *o, struct target *t, const char *fmt, ...)
{
	undo_target(o, t);
	va_list ap;
	va_start(ap, fmt);
	kb_vwarn(fmt, ap, 0);
	va_end(ap);
	exit(1);
}

static void check_not_in_use(const struct options *o, const struct stat *st)
{
	char where[4096];
	int m = kb_mounted_at(st, where, sizeof(where));
	if (m < 0)
		kb_die_errno(1, "cannot read the mount table");
	if (m > 0)
		kb_die(1, "%s is mounted on %s; refusing to format it", o->path, where);
	char loop[64];
	if (kb_loop_backing(st, loop, sizeof(loop)))
		kb_die(1, "%s is in use as the backing file of %s; refusing to format it", o->path,
		       loop);
}

static void open_target(const struct options *o, struct target *t)
{
	memset(t, 0, sizeof(*t));
	struct stat st;
	if (stat(o->path, &st) < 0) {
		if (errno != ENOENT || !o->size)
			kb_die_errno(1, "%s", o->path);
		/* A new image file of SIZE bytes, sparse; no signal may come
		 * between its creation and its registration for removal. */
		sigset_t block, old;
		sigemptyset(&block);
		for (const int *sig = interrupting; *sig; sig++)
			sigaddset(&block, *sig);
		sigprocmask(SIG_BLOCK, &block, &old);
		t->fd = open(o->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (t->fd >= 0) {
			unfinished_path = o->path;
			atexit(remove_unfinished);
			struct sigaction sa = { .sa_handler = on_interrupt };
			for (const int *sig = interrupting; *sig; sig++)
				sigaction(*sig, &sa, NULL);
		}
		sigprocmask(SIG_SETMASK, &old, NULL);
		if (t->fd < 0)
			kb_die_errno(1, "%s", o->path);
		t->created = true;
		if (fstat(t->fd, &t->st) < 0 || ftruncate(t->fd, (off_t)o->size) < 0) {
			int e = errno;
			undo_target(o, t);
			errno = e;
			kb_die_errno(1, "%s: cannot create a file of %" PRIu64 " bytes", o->path, o->size);
		}
		t->dev_size = o->size;
		return;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		kb_die(1, "%s is neither a block device nor a regular file", o->path);
	check_not_in_use(o, &st);
	t->fd = kb_dev_open(o->path, true, &t->st);
	if (t->fd < 0) {
		if (errno == EBUSY)
			kb_die(1, "%s is in use (mounted, or held by another program); refusing to "
			       "format it", o->path);
		if (errno == EROFS)
			kb_die(1, "%s is read-only; refusing to format it", o->path);
		kb_die_errno(1, "%s", o->path);
	}
	if (kb_dev_lock(t->fd, true) < 0) {
		if (errno != EWOULDBLOCK)
			kb_die_errno(1, "%s: lock", o->path);
		kb_die(1, "%s is being checked, repaired or formatted by another program; refusing "
		       "to format it", o->path);
	}
	if (kb_dev_size(t->fd, &t->dev_size) < 0)
		kb_die_errno(1, "%s: cannot get its size", o->path);
	t->old_size = t->dev_size;
	if (o->size > t->dev_size) {
		if (S_ISBLK(t->st.st_mode))
			kb_die(1, "SIZE %" PRIu64 " is larger than the device %s (%" PRIu64 " bytes)",
			       o->size, o->path, t->dev_size);
		if (ftruncate(t->fd, (off_t)o->size) < 0)
			kb_die_errno(1, "%s: cannot extend to %" PRIu64 " bytes", o->path, o->size);
		t->extended = true;
		t->dev_size = o->size;
	}
}

static void print_signature(const char *type, uint64_t offset, unsigned len, void *arg)
{
	const struct options *o = arg;
	if (o->verbose)
		printf("erased %s signature at offset 0x%" PRIx64 " (%u bytes)\n", type, offset, len);
}

static void print_skip(const char *path, const char *why, void *arg)
{
	(void)arg;
	kb_warn("%s: skipped: %s", path, why);
}

static void print_progress(const char *what, uint64_t done, uint64_t total, void *arg)
{
	(void)arg;
	fprintf(stderr, "\r%s: %3u%%", what, total ? (unsigned)(done * 100 / total) : 100u);
	if (done == total)
		fputc('\n', stderr);
}

static void print_layout(const struct options *o, const struct exfat_format *f, uint64_t offset)
{
	const struct exfat_geometry *g = &f->geo;
	char a[32], b[32];
	if (o->quiet)
		return;
	printf("%s: exFAT, %s, cluster size %s\n", o->path,
	       kb_format_size(g->volume_length << g->sector_shift, a, sizeof(a)),
	       kb_format_size(g->cluster_size, b, sizeof(b)));
	if (!o->verbose)
		return;
	char guid[37] = "none";
	if (f->has_guid)
		exfat_guid_format(f->guid, guid);
	printf("  partition offset   %" PRIu64 " bytes\n"
	       "  sector size        %u\n"
	       "  volume length      %" PRIu64 " sectors\n"
	       "  boundary           %" PRIu64 "\n"
	       "  FAT                sectors %u..%u\n"
	       "  cluster heap       sector %u, %u clusters\n"
	       "  bitmap             cluster %u (%" PRIu64 " bytes)\n"
	       "  up-case table      cluster %u (%u bytes)\n"
	       "  root directory     cluster %u (%u clusters)\n"
	       "  clusters in use    %u (%u%%)\n"
	       "  volume serial      0x%08x\n"
	       "  volume GUID        %s\n",
	       offset, g->sector_size, g->volume_length, g->boundary_align, g->fat_offset,
	       g->fat_offset + g->fat_length - 1, g->heap_offset, g->cluster_count, g->bitmap_cluster,
	       g->bitmap_bytes, g->upcase_cluster, EXFAT_UPCASE_DEFAULT_BYTES, g->root_cluster,
	       f->root_clusters, f->used_clusters, f->percent_in_use, f->serial, guid);
}

static uint32_t default_serial(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)ts.tv_nsec;
}

static int mkfs_exfat_main(int argc, char **argv)
{
	struct options o = { 0 };
	parse_args(argc, argv, &o);

	struct target t;
	open_target(&o, &t);

	unsigned dev_ss;
	if (kb_dev_sector_size(t.fd, &dev_ss) < 0)
		refuse(&o, &t, "%s: cannot get the sector size: %s", o.path, strerror(errno));
	unsigned ss = o.sector_size ? o.sector_size : dev_ss;
	if (S_ISBLK(t.st.st_mode) && ss < dev_ss)
		refuse(&o, &t, "sector size %u is below the device's logical sector size %u", ss, dev_ss);
	uint64_t usable = o.size ? o.size : t.dev_size;

	/* Where the volume goes: the whole target, or the new partition. */
	uint64_t vol_off = 0, vol_size = usable;
	char err[512];
	if (o.partition >= 0) {
		if (o.size && o.size < t.dev_size)
			refuse(&o, &t, "SIZE cannot be combined with -P on a larger device; the table "
			       "covers the whole of %s", o.path);
		if (kb_parttable_single(t.fd, o.path, o.partition, ss, MBR_TYPE_EXFAT,
					GPT_TYPE_BASIC_DATA, false, &vol_off, &vol_size, err,
					sizeof(err)) < 0)
			refuse(&o, &t, "%s", err);
	}

	struct exfat_format f = {
		.fd = t.fd,
		.offset = vol_off,
		.serial = o.has_serial ? o.serial : default_serial(),
		.label_len = o.label_len,
		.has_guid = o.has_guid,
		.full_format = o.full_format,
	};
	memcpy(f.label, o.label, sizeof(f.label));
	memcpy(f.guid, o.guid, sizeof(f.guid));
	if (o.full_format && !o.quiet && isatty(STDERR_FILENO))
		f.progress = print_progress;

	struct exfat_geometry_request req = {
		.volume_bytes = vol_size,
		.partition_offset = vol_off,
		.sector_size = ss,
		.cluster_size = o.cluster_size,
		.boundary_align = o.boundary,
		.pack_bitmap = o.pack_bitmap,
		.upcase_bytes = EXFAT_UPCASE_DEFAULT_BYTES,
	};
	if (exfat_geometry_compute(&req, &f.geo, err, sizeof(err)) < 0)
		refuse(&o, &t, "%s", err);

	if (o.root_dir) {
		static struct exfat_upcase_map upcase;
		exfat_upcase_default_map(&upcase);
		f.tree = exfat_tree_scan(o.root_dir, &upcase, print_skip, NULL, err, sizeof(err));
		if (!f.tree)
			refuse(&o, &t, "%s", err);
	}
	if (exfat_format_plan(&f, err, sizeof(err)) < 0)
		refuse(&o, &t, "%s", err);
	/* An image that is all holes holds no signature: skip the probing. */
	bool wipe = kb_range_has_data(t.fd, 0, usable);
	const char *why = wipe || o.partition >= 0 ? kb_signatures_unavailable() : NULL;
	if (why)
		refuse(&o, &t, "%s", why);

	/* Everything is decided; from here on the target is written. */
	/* Discard and signature erasure stay within what is formatted: the whole
	 * target, or its first SIZE bytes (data after them is left alone). */
	if (!o.nodiscard && S_ISBLK(t.st.st_mode) && kb_dev_discard(t.fd, 0, usable) < 0 &&
	    errno != EOPNOTSUPP && o.verbose)
		kb_warn_errno("%s: discard failed (continuing)", o.path);
	if (wipe && kb_signatures_wipe(t.fd, 0, usable, print_signature, &o) < 0)
		kb_die_errno(1, "%s: cannot erase old signatures", o.path);
	if (o.partition >= 0) {
		uint64_t start, size;
		if (kb_parttable_single(t.fd, o.path, o.partition, ss, MBR_TYPE_EXFAT,
					GPT_TYPE_BASIC_DATA, true, &start, &size, err, sizeof(err)) < 0)
			kb_die(1, "%s", err);
		if (start != vol_off || size != vol_size)
			kb_die(1, "%s: the written partition differs from the planned one", o.path);
		if (kb_signatures_wipe(t.fd, vol_off, vol_size, print_signature, &o) < 0)
			kb_die_errno(1, "%s: cannot erase old signatures in the partition", o.path);
	}
	print_layout(&o, &f, vol_off);
	if (exfat_format_write(&f, err, sizeof(err)) < 0)
		kb_die(1, "%s: %s", o.path, err);
	if (close(t.fd) < 0)
		kb_die_errno(1, "%s", o.path);
	unfinished_path = NULL; /* the image is complete: keep it */
	if (o.verbose)
		printf("wrote %" PRIu64 " bytes of metadata and data\n", f.bytes_written);
	if (!o.quiet)
		printf("exFAT format complete\n");
	exfat_tree_free(f.tree);
	exfat_format_release(&f);
	return 0;
}

const struct applet applet_mkfs_exfat = {
	.name = "mkfs.exfat",
	.main = mkfs_exfat_main,
	.summary = "create an exFAT filesystem (optionally partitioned and populated)",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = 2,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT) | KB_LIB_BIT(KB_LIB_BLKID) | KB_LIB_BIT(KB_LIB_FDISK),
};
