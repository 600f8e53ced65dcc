/* exfat2img: copy an exFAT volume's metadata into a sparse image or a
 * stream (zstd-compressed if asked), and write such an image back onto a
 * device. exfatprogs' forms `exfat2img DEV IMG` and `exfat2img -o DEV -`
 * (restore from standard input) are understood too. */
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/outfile.h"
#include "base/zstd_stream.h"
#include "blockdev/blockdev.h"
#include "blockdev/mounted.h"
#include "exfat/exfat_dump.h"
#include "exfat/exfat_metaimage.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"Usage: exfat2img [-z[LEVEL]] [--json] -o IMAGE|- DEVICE|FILE\n"
	"       exfat2img -r IMAGE|- [--json] DEVICE|FILE\n"
	"Copy the metadata of an exFAT volume (boot regions, FATs, allocation bitmap,\n"
	"up-case table, every directory) into an image as long as the volume, with\n"
	"file data left out as holes; or write such an image back onto a device.\n"
	"\n"
	"  -o, --output IMAGE   write a sparse image file; \"-\" writes the stream form\n"
	"                       (exfatprogs' exfat2img -o -) to standard output\n"
	"  -z, --zstd[=LEVEL]   write the stream form compressed with zstd (level 1-22,\n"
	"                       default 3), to IMAGE or standard output\n"
	"  -r, --restore IMAGE  write IMAGE (sparse image, stream or zstd stream; \"-\":\n"
	"                       standard input) onto DEVICE, which must not be mounted;\n"
	"                       the image is checked whole before anything is written\n"
	"      --json           print a summary as JSON (not with -o -)\n"
	"  -V, --version        print the version\n"
	"  -h, --help           print this help\n"
	"\n"
	"exfatprogs' forms: exfat2img DEVICE IMAGE (as -o IMAGE DEVICE), and\n"
	"exfat2img -o DEVICE - (as -r - DEVICE).\n"
	"\n"
	"Exit status: 0 done, 1 failed or refused (a refused restore writes nothing),\n"
	"2 usage error.\n";

struct summary {
	bool json;
	const char *device, *image, *format;
	uint64_t image_size, bytes_written;
	const struct exfat_metaimage *m;      /* when copying */
};

static void print_summary(const struct summary *s, FILE *f)
{
	if (!s->json) {
		if (s->m)
			fprintf(f, "%llu files found, %llu directories dumped, %llu kbytes written\n",
				(unsigned long long)s->m->files, (unsigned long long)s->m->directories,
				(unsigned long long)(s->bytes_written + 1023) / 1024);
		else
			fprintf(f, "%s: restored %llu kbytes from %s (%s)\n", s->device,
				(unsigned long long)(s->bytes_written + 1023) / 1024, s->image, s->format);
		return;
	}
	struct kb_json j;
	kb_json_init(&j, f);
	kb_json_begin_object(&j);
	kb_json_kv_string(&j, "mode", s->m ? "copy" : "restore");
	kb_json_kv_string(&j, "device", s->device);
	kb_json_kv_string(&j, "image", s->image);
	kb_json_kv_string(&j, "format", s->format);
	kb_json_kv_uint(&j, "image_size", s->image_size);
	kb_json_kv_uint(&j, "bytes_written", s->bytes_written);
	if (s->m) {
		kb_json_kv_uint(&j, "metadata_clusters", s->m->meta.count);
		kb_json_kv_uint(&j, "directories", s->m->directories);
		kb_json_kv_uint(&j, "files", s->m->files);
	}
	kb_json_end_object(&j);
	kb_json_end_line(&j);
}

/* ---- copying a volume's metadata ----------------------------------------- */

/* The output must not be the volume itself, a device, or a file a loop
 * device or a mount is using: it is replaced. */
static void check_output(const char *path, const struct stat *src, bool stream)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return;
	if (st.st_dev == src->st_dev && st.st_ino == src->st_ino)
		kb_die(EXIT_FAILED, "%s: the output would be the volume itself", path);
	if (S_ISBLK(st.st_mode))
		kb_die(EXIT_FAILED, "%s is a block device: -r writes an image onto a device", path);
	if (!S_ISREG(st.st_mode) && !stream)
		kb_die(EXIT_FAILED, "%s: a sparse image needs a regular file (-o - or -z write the stream form)", path);
	if (!S_ISREG(st.st_mode))
		return;
	char where[4096];
	if (kb_loop_backing(&st, where, sizeof(where)) > 0)
		kb_die(EXIT_FAILED, "%s backs %s: refusing to replace it", path, where);
	if (kb_mounted_at(&st, where, sizeof(where)) > 0)
		kb_die(EXIT_FAILED, "%s is mounted on %s: refusing to replace it", path, where);
}

static int copy_metadata(const char *dev, const char *out, int zlevel, bool json)
{
	bool to_stdout = !strcmp(out, "-"), stream = to_stdout || zlevel > 0;
	if (to_stdout && isatty(STDOUT_FILENO))
		kb_die(EXIT_FAILED, "standard output is a terminal: redirect it, or give -o FILE");
	bool busy;
	char mounted[4096], err[512];
	struct exfat_reader r;
	struct exfat_metaimage m;
	struct stat src;
	if (exfat_reader_open_path(&r, dev, &busy, mounted, sizeof(mounted), err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s", err);
	if (mounted[0])
		kb_warn("warning: %s is mounted on %s: the image may hold stale metadata", dev, mounted);
	if (busy)
		kb_warn("warning: %s is being written by another program: the image may catch it half-way", dev);
	if (fstat(r.fd, &src) < 0)
		kb_die_errno(EXIT_FAILED, "%s", dev);
	if (!to_stdout)
		check_output(out, &src, stream);
	if (exfat_metaimage_scan(&r, &m, err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s: %s", dev, err);

	/* The compressor before the file: without libzstd nothing is created. */
	struct kb_outfile f;
	struct kb_zstd *z = NULL;
	if (zlevel > 0 && !(z = kb_zstd_open(zlevel, 0, kb_outfile_write, &f)))
		kb_die(EXIT_FAILED, "cannot set up zstd compression");
	if (kb_outfile_open(&f, out, 0644) < 0)
		kb_die_errno(EXIT_FAILED, "%s", out);
	signal(SIGPIPE, SIG_IGN);
	uint64_t written = 0;
	int rc;
	if (!stream) {
		rc = exfat_metaimage_write_sparse(&m, f.fd, &written, err, sizeof(err));
	} else if (z) {
		rc = exfat_metaimage_write_stream(&m, kb_zstd_write, z, &written, err, sizeof(err));
		if (rc == 0 && kb_zstd_finish(z) < 0) {
			rc = -1;
			snprintf(err, sizeof(err), "write: %s", strerror(errno));
		} else if (rc < 0) {
			kb_zstd_free(z);
		}
	} else {
		rc = exfat_metaimage_write_stream(&m, kb_outfile_write, &f, &written, err, sizeof(err));
	}
	if (stream)
		written = f.written;
	if (rc == 0 && kb_outfile_commit(&f) < 0) {
		rc = -1;
		snprintf(err, sizeof(err), "write: %s", strerror(errno));
	}
	if (rc < 0) {
		kb_outfile_abort(&f);
		kb_die(EXIT_FAILED, "%s: %s", to_stdout ? "standard output" : out, err);
	}
	struct summary s = { json, dev, out, !stream ? "image" : zlevel > 0 ? "stream+zstd" : "stream",
			     m.image_size, written, &m };
	print_summary(&s, to_stdout ? stderr : stdout);
	exfat_metaimage_free(&m);
	exfat_reader_free(&r);
	return EXIT_OK;
}

/* ---- writing an image back ------------------------------------------------ */

/* Opens the device to restore onto, refusing one that is mounted, in use,
 * read-only or locked by another writer. */
static int open_target(const char *dev, struct stat *st)
{
	if (stat(dev, st) < 0)
		kb_die_errno(EXIT_FAILED, "%s", dev);
	if (!S_ISBLK(st->st_mode) && !S_ISREG(st->st_mode))
		kb_die(EXIT_FAILED, "%s: neither a block device nor a regular file", dev);
	char where[4096];
	int mnt = kb_mounted_at(st, where, sizeof(where));
	if (mnt < 0)
		kb_die_errno(EXIT_FAILED, "cannot read the mount table");
	if (mnt > 0)
		kb_die(EXIT_FAILED, "%s is mounted on %s: refusing to write to it", dev, where);
	if (S_ISREG(st->st_mode) && kb_loop_backing(st, where, sizeof(where)) > 0)
		kb_die(EXIT_FAILED, "%s backs %s: refusing to write to it", dev, where);
	int fd = kb_dev_open(dev, true, st);
	if (fd < 0) {
		if (errno == EBUSY)
			kb_die(EXIT_FAILED, "%s is in use (mounted, or held by another program): refusing to "
			       "write to it", dev);
		if (errno == EROFS)
			kb_die(EXIT_FAILED, "%s is read-only: refusing to write to it", dev);
		kb_die_errno(EXIT_FAILED, "%s", dev);
	}
	if (kb_dev_lock(fd, true) < 0) {
		if (errno != EWOULDBLOCK)
			kb_die_errno(EXIT_FAILED, "%s: lock", dev);
		kb_die(EXIT_FAILED, "%s is being checked or written by another program: refusing to write to it",
		       dev);
	}
	return fd;
}

/* Whether fd, a regular file, starts like an exFAT volume. */
static bool plain_image(int fd)
{
	uint8_t head[11];
	return kb_pread_full(fd, head, sizeof(head), 0) == 0 && !memcmp(head + 3, "EXFAT   ", 8);
}

static int restore(const char *image, const char *dev, bool json)
{
	struct stat dst, ist;
	int dfd = open_target(dev, &dst);
	int in = !strcmp(image, "-") ? STDIN_FILENO : open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &ist) < 0)
		kb_die_errno(EXIT_FAILED, "%s", image);
	if (ist.st_dev == dst.st_dev && ist.st_ino == dst.st_ino && S_ISREG(ist.st_mode))
		kb_die(EXIT_FAILED, "%s: the image is %s itself", image, dev);
	const char *name = in == STDIN_FILENO ? "standard input" : image;

	struct exfat_image_info info = { .format = "image" };
	char err[512];
	int img = in;
	uint64_t img_size = (uint64_t)ist.st_size;
	if (!S_ISREG(ist.st_mode) || !plain_image(in)) {
		if (exfat_image_unpack(in, &img, &info, err, sizeof(err)) < 0)
			kb_die(EXIT_FAILED, "%s: %s; nothing written to %s", name, err, dev);
		img_size = info.size;
	}
	if (exfat_image_check(img, img_size, &info, err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s: %s; nothing written to %s", name, err, dev);
	if (info.trailing)
		kb_warn("%s: %llu bytes after the end of the stream ignored", name,
			(unsigned long long)info.trailing);

	uint64_t dev_size;
	if (kb_dev_size(dfd, &dev_size) < 0)
		kb_die_errno(EXIT_FAILED, "%s: size", dev);
	if (dev_size < img_size) {
		if (!S_ISREG(dst.st_mode))
			kb_die(EXIT_FAILED, "%s has %llu bytes, the image needs %llu; nothing written", dev,
			       (unsigned long long)dev_size, (unsigned long long)img_size);
		if (ftruncate(dfd, (off_t)img_size) < 0)
			kb_die_errno(EXIT_FAILED, "%s: cannot extend it to %llu bytes", dev, (unsigned long long)img_size);
	}
	uint64_t written;
	if (exfat_image_restore(img, img_size, dfd, &written, err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s: %s (the restore stopped part way)", dev, err);
	if (close(dfd) < 0)
		kb_die_errno(EXIT_FAILED, "%s: close", dev);
	struct summary s = { json, dev, in == STDIN_FILENO ? "standard input" : image, info.format, img_size,
			     written, NULL };
	print_summary(&s, stdout);
	return EXIT_OK;
}

static int exfat2img_main(int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "restore", required_argument, NULL, 'r' },
		{ "zstd", optional_argument, NULL, 'z' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *output = NULL, *restore_from = NULL;
	int zlevel = 0;
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "o:r:z::Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': output = optarg; break;
		case 'r': restore_from = optarg; break;
		case 'z':
			zlevel = optarg ? kb_zstd_parse_level(optarg) : 3;
			if (zlevel < 0)
				kb_usage_error("bad zstd level: '%s' (1-%d)", optarg, kb_zstd_max_level());
			break;
		case OPT_JSON: json = true; break;
		case 'V': kb_version_exit();
		case 'h': kb_help_exit();
		default: kb_usage_error("unknown option");
		}
	}
	int args = argc - optind;
	if (output && restore_from)
		kb_usage_error("-o and -r do not go together");
	if (!output && !restore_from) {
		/* exfatprogs' form: DEVICE IMAGE. */
		if (args != 2)
			kb_usage_error(args < 2 ? "missing -o IMAGE, -r IMAGE or DEVICE IMAGE" : "too many arguments");
		output = argv[optind + 1];
		args = 1;
	}
	if (args != 1)
		kb_usage_error(args < 1 ? "missing DEVICE" : "too many arguments");
	const char *dev = argv[optind];
	if (output && !strcmp(dev, "-")) {
		/* exfatprogs' restore form: the stream on standard input, -o the device. */
		restore_from = "-";
		dev = output;
		output = NULL;
	}
	if (restore_from) {
		if (zlevel)
			kb_usage_error("-z is for writing a stream; a restore recognises compression by itself");
		return restore(restore_from, dev, json);
	}
	if (json && !strcmp(output, "-"))
		kb_usage_error("--json cannot go with -o -: standard output carries the stream");
	return copy_metadata(dev, output, zlevel, json);
}

const struct applet applet_exfat2img = {
	.name = "exfat2img",
	.main = exfat2img_main,
	.summary = "copy an exFAT volume's metadata into a sparse image or stream, and back",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = EXIT_USAGE,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT) | KB_LIB_BIT(KB_LIB_ZSTD),
};
