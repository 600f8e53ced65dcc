/* The shared libraries kbox opens on first use (dlopen), not at start-up:
 * libmount, libblkid, libfdisk, libgpiod and libzstd. An applet that never
 * calls one never loads it, and a binary without the applets that call one
 * does not mention it.
 *
 * Each library is called from one libcommon file, which carries the
 * library's .note.dlopen (the UAPI "ELF dlopen metadata" note: owner "FDO",
 * type 0x407c0c0a, a JSON array naming the soname, the feature, what it is
 * for and its priority). Packagers and initramfs builders read these notes
 * where they used to read DT_NEEDED; `kbox --libs` prints them too.
 *
 *	const struct kb_libblkid *blkid = kb_libblkid();
 *	blkid_probe pr = blkid->blkid_new_probe();
 *
 * The typed accessors (kb_libmount() ...) load the library and resolve every
 * function kbox uses on the first call. A library that cannot be loaded ends
 * the program there, as a missing DT_NEEDED library would have ended it at
 * start-up, but with one line saying what it was needed for and which Debian
 * package ships it, and the applet's operational-error exit code. Code that
 * can do without a library (or must clean up first) asks kb_lib_open().
 * Kernel interface: none (the dynamic loader: dlopen, dlsym, dl_iterate_phdr). */
#ifndef KBOX_LIBRARIES_H
#define KBOX_LIBRARIES_H

#include <blkid.h>
#include <gpiod.h>
#include <libfdisk.h>
#include <libmount.h>
#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

enum kb_lib { KB_LIB_MOUNT, KB_LIB_BLKID, KB_LIB_FDISK, KB_LIB_GPIOD, KB_LIB_ZSTD, KB_LIB_COUNT };

/* For struct applet's libs: the libraries an applet may open. */
#define KB_LIB_BIT(lib) (1u << (lib))

/* What each library is to kbox, one line each: feature, what it is needed
 * for (the note's description, and the reason given when it is missing),
 * priority as the ELF dlopen metadata specification defines it, soname,
 * Debian package. Its note and its entry in libraries.c are made from it.
 * No library is "required": each serves some applets only, and every applet
 * that does not touch it works without it. */
#define KB_LIBMOUNT "mount-table", "read the mount table", "recommended", "libmount.so.1", "libmount1"
#define KB_LIBBLKID "signatures", "find old signatures", "recommended", "libblkid.so.1", "libblkid1"
#define KB_LIBFDISK "partition-table", "write partition tables", "suggested", "libfdisk.so.1", "libfdisk1"
#define KB_LIBGPIOD "gpio-chips", "find GPIO chips and their lines", "recommended", "libgpiod.so.2", "libgpiod2"
#define KB_LIBZSTD  "compression", "compress undo files, cores and metadata images", "suggested", "libzstd.so.1", "libzstd1"

/* The JSON of a library's note: KB_DLOPEN_JSON(KB_LIBMOUNT). */
#define KB_DLOPEN_JSON(...) KB_DLOPEN_JSON_(__VA_ARGS__)
#define KB_DLOPEN_JSON_(feature, description, priority, soname, package) \
	"[{\"feature\":\"" feature "\",\"description\":\"" description "\",\"priority\":\"" \
	priority "\",\"soname\":[\"" soname "\"]}]"

/* The .note.dlopen of a library, in the file that calls it, so that the
 * static archive links it only with that code: KB_DLOPEN_NOTE(KB_LIBMOUNT);
 * An ELF note: name size, descriptor size (the JSON and its NUL), type, the
 * name "FDO", the descriptor; both 0-padded to 4 bytes. */
#define KB_DLOPEN_NOTE(...) KB_DLOPEN_NOTE_(KB_DLOPEN_JSON(__VA_ARGS__))
#define KB_DLOPEN_NOTE_(json)                                               \
	__attribute__((used, section(".note.dlopen"), aligned(4))) KB_NOTE_UNSANITIZED \
	static const struct {                                                   \
		uint32_t name_size, desc_size, type;                            \
		char name[4];                                                   \
		char desc[(sizeof(json) + 3) / 4 * 4];                          \
	} kb_dlopen_note = { 4, sizeof(json), KB_DLOPEN_NOTE_TYPE, "FDO", json }
#define KB_DLOPEN_NOTE_TYPE 0x407c0c0au
/* clang's AddressSanitizer pads globals in named sections too, which would
 * put its redzones between the notes (gcc's leaves them alone). */
#ifdef __clang__
#define KB_NOTE_UNSANITIZED __attribute__((no_sanitize("address")))
#else
#define KB_NOTE_UNSANITIZED
#endif

/* The functions kbox calls, one pointer each, named and typed as in the
 * library's header. */
struct kb_libmount {
	typeof(mnt_new_table) *mnt_new_table;
	typeof(mnt_new_table_from_file) *mnt_new_table_from_file;
	typeof(mnt_table_parse_mtab) *mnt_table_parse_mtab;
	typeof(mnt_unref_table) *mnt_unref_table;
	typeof(mnt_new_iter) *mnt_new_iter;
	typeof(mnt_free_iter) *mnt_free_iter;
	typeof(mnt_table_next_fs) *mnt_table_next_fs;
	typeof(mnt_fs_get_devno) *mnt_fs_get_devno;
	typeof(mnt_fs_get_target) *mnt_fs_get_target;
	typeof(mnt_fs_get_srcpath) *mnt_fs_get_srcpath;
	typeof(mnt_fs_get_fstype) *mnt_fs_get_fstype;
	typeof(mnt_fs_get_fs_options) *mnt_fs_get_fs_options;
};

struct kb_libblkid {
	typeof(blkid_new_probe) *blkid_new_probe;
	typeof(blkid_free_probe) *blkid_free_probe;
	typeof(blkid_probe_set_device) *blkid_probe_set_device;
	typeof(blkid_probe_enable_superblocks) *blkid_probe_enable_superblocks;
	typeof(blkid_probe_set_superblocks_flags) *blkid_probe_set_superblocks_flags;
	typeof(blkid_probe_enable_partitions) *blkid_probe_enable_partitions;
	typeof(blkid_probe_set_partitions_flags) *blkid_probe_set_partitions_flags;
	typeof(blkid_do_probe) *blkid_do_probe;
	typeof(blkid_probe_lookup_value) *blkid_probe_lookup_value;
	typeof(blkid_do_wipe) *blkid_do_wipe;
};

struct kb_libfdisk {
	typeof(fdisk_new_context) *fdisk_new_context;
	typeof(fdisk_unref_context) *fdisk_unref_context;
	typeof(fdisk_disable_dialogs) *fdisk_disable_dialogs;
	typeof(fdisk_save_user_sector_size) *fdisk_save_user_sector_size;
	typeof(fdisk_assign_device_by_fd) *fdisk_assign_device_by_fd;
	typeof(fdisk_deassign_device) *fdisk_deassign_device;
	typeof(fdisk_create_disklabel) *fdisk_create_disklabel;
	typeof(fdisk_get_label) *fdisk_get_label;
	typeof(fdisk_label_get_parttype_from_string) *fdisk_label_get_parttype_from_string;
	typeof(fdisk_label_get_parttype_from_code) *fdisk_label_get_parttype_from_code;
	typeof(fdisk_unref_parttype) *fdisk_unref_parttype;
	typeof(fdisk_new_partition) *fdisk_new_partition;
	typeof(fdisk_unref_partition) *fdisk_unref_partition;
	typeof(fdisk_partition_set_type) *fdisk_partition_set_type;
	typeof(fdisk_partition_set_partno) *fdisk_partition_set_partno;
	typeof(fdisk_partition_start_follow_default) *fdisk_partition_start_follow_default;
	typeof(fdisk_partition_end_follow_default) *fdisk_partition_end_follow_default;
	typeof(fdisk_add_partition) *fdisk_add_partition;
	typeof(fdisk_get_partition) *fdisk_get_partition;
	typeof(fdisk_get_sector_size) *fdisk_get_sector_size;
	typeof(fdisk_partition_get_start) *fdisk_partition_get_start;
	typeof(fdisk_partition_get_size) *fdisk_partition_get_size;
	typeof(fdisk_write_disklabel) *fdisk_write_disklabel;
	typeof(fdisk_reread_partition_table) *fdisk_reread_partition_table;
};

struct kb_libgpiod {
	typeof(gpiod_chip_iter_new) *gpiod_chip_iter_new;
	typeof(gpiod_chip_iter_next) *gpiod_chip_iter_next;
	typeof(gpiod_chip_iter_free) *gpiod_chip_iter_free;
	typeof(gpiod_chip_open_by_name) *gpiod_chip_open_by_name;
	typeof(gpiod_chip_close) *gpiod_chip_close;
	typeof(gpiod_chip_name) *gpiod_chip_name;
	typeof(gpiod_chip_label) *gpiod_chip_label;
	typeof(gpiod_chip_num_lines) *gpiod_chip_num_lines;
	typeof(gpiod_chip_get_line) *gpiod_chip_get_line;
	typeof(gpiod_line_name) *gpiod_line_name;
};

struct kb_libzstd {
	typeof(ZSTD_isError) *ZSTD_isError;
	typeof(ZSTD_maxCLevel) *ZSTD_maxCLevel;
	typeof(ZSTD_compressBound) *ZSTD_compressBound;
	typeof(ZSTD_createCCtx) *ZSTD_createCCtx;
	typeof(ZSTD_freeCCtx) *ZSTD_freeCCtx;
	typeof(ZSTD_CCtx_setParameter) *ZSTD_CCtx_setParameter;
	typeof(ZSTD_CStreamOutSize) *ZSTD_CStreamOutSize;
	typeof(ZSTD_compressStream2) *ZSTD_compressStream2;
	typeof(ZSTD_compressCCtx) *ZSTD_compressCCtx;
	typeof(ZSTD_decompress) *ZSTD_decompress;
	typeof(ZSTD_createDCtx) *ZSTD_createDCtx;
	typeof(ZSTD_freeDCtx) *ZSTD_freeDCtx;
	typeof(ZSTD_DStreamOutSize) *ZSTD_DStreamOutSize;
	typeof(ZSTD_decompressStream) *ZSTD_decompressStream;
};

/* The library's functions (a struct kb_libNAME), loaded and resolved on the
 * first call; NULL when it cannot be, kb_lib_error() then saying why. */
const void *kb_lib_open(enum kb_lib lib);
/* "libblkid.so.1 is needed to find old signatures but cannot be loaded:
 * DLERROR; install the libblkid1 package", or NULL when nothing failed. */
const char *kb_lib_error(enum kb_lib lib);
/* kb_lib_open, or the program ends with kb_lib_error() and the applet's
 * operational-error exit code (struct applet's error_exit). */
const void *kb_lib_need(enum kb_lib lib);

/* The same, typed, for the files that call each library. */
const struct kb_libmount *kb_libmount(void);
const struct kb_libblkid *kb_libblkid(void);
const struct kb_libfdisk *kb_libfdisk(void);
const struct kb_libgpiod *kb_libgpiod(void);
const struct kb_libzstd *kb_libzstd(void);

/* The JSON the library's note holds. */
const char *kb_lib_note(enum kb_lib lib);
/* Calls fn with the absolute path of every shared object kb_lib_open has
 * loaded, the libraries and those they pulled in, in load order. */
void kb_lib_each_loaded(void (*fn)(const char *path, void *arg), void *arg);
/* Calls fn with the JSON of every .note.dlopen of the running program. */
void kb_lib_each_note(void (*fn)(const char *json, void *arg), void *arg);

#endif
