/* The shared libraries opened on first use (see libraries.h): one table,
 * each library loaded and resolved once. */
#include "base/libraries.h"
#include "base/kbox.h"

#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A function to resolve, and where its pointer goes in the library's struct. */
struct symbol {
	const char *name;
	size_t offset;
};
#define SYMBOL(type, name) { #name, offsetof(type, name) }
/* Every pointer of the struct must be named in its list. */
#define SYMBOLS_FILL(type, list) \
	_Static_assert(sizeof(type) == KB_ARRAY_SIZE(list) * sizeof(void (*)(void)), \
		       #list " must name every function of " #type)

static const struct symbol mount_symbols[] = {
	SYMBOL(struct kb_libmount, mnt_new_table),
	SYMBOL(struct kb_libmount, mnt_new_table_from_file),
	SYMBOL(struct kb_libmount, mnt_table_parse_mtab),
	SYMBOL(struct kb_libmount, mnt_unref_table),
	SYMBOL(struct kb_libmount, mnt_new_iter),
	SYMBOL(struct kb_libmount, mnt_free_iter),
	SYMBOL(struct kb_libmount, mnt_table_next_fs),
	SYMBOL(struct kb_libmount, mnt_fs_get_devno),
	SYMBOL(struct kb_libmount, mnt_fs_get_target),
	SYMBOL(struct kb_libmount, mnt_fs_get_srcpath),
	SYMBOL(struct kb_libmount, mnt_fs_get_fstype),
	SYMBOL(struct kb_libmount, mnt_fs_get_fs_options),
};
SYMBOLS_FILL(struct kb_libmount, mount_symbols);

static const struct symbol blkid_symbols[] = {
	SYMBOL(struct kb_libblkid, blkid_new_probe),
	SYMBOL(struct kb_libblkid, blkid_free_probe),
	SYMBOL(struct kb_libblkid, blkid_probe_set_device),
	SYMBOL(struct kb_libblkid, blkid_probe_enable_superblocks),
	SYMBOL(struct kb_libblkid, blkid_probe_set_superblocks_flags),
	SYMBOL(struct kb_libblkid, blkid_probe_enable_partitions),
	SYMBOL(struct kb_libblkid, blkid_probe_set_partitions_flags),
	SYMBOL(struct kb_libblkid, blkid_do_probe),
	SYMBOL(struct kb_libblkid, blkid_probe_lookup_value),
	SYMBOL(struct kb_libblkid, blkid_do_wipe),
};
SYMBOLS_FILL(struct kb_libblkid, blkid_symbols);

static const struct symbol fdisk_symbols[] = {
	SYMBOL(struct kb_libfdisk, fdisk_new_context),
	SYMBOL(struct kb_libfdisk, fdisk_unref_context),
	SYMBOL(struct kb_libfdisk, fdisk_disable_dialogs),
	SYMBOL(struct kb_libfdisk, fdisk_save_user_sector_size),
	SYMBOL(struct kb_libfdisk, fdisk_assign_device_by_fd),
	SYMBOL(struct kb_libfdisk, fdisk_deassign_device),
	SYMBOL(struct kb_libfdisk, fdisk_create_disklabel),
	SYMBOL(struct kb_libfdisk, fdisk_get_label),
	SYMBOL(struct kb_libfdisk, fdisk_label_get_parttype_from_string),
	SYMBOL(struct kb_libfdisk, fdisk_label_get_parttype_from_code),
	SYMBOL(struct kb_libfdisk, fdisk_unref_parttype),
	SYMBOL(struct kb_libfdisk, fdisk_new_partition),
	SYMBOL(struct kb_libfdisk, fdisk_unref_partition),
	SYMBOL(struct kb_libfdisk, fdisk_partition_set_type),
	SYMBOL(struct kb_libfdisk, fdisk_partition_set_partno),
	SYMBOL(struct kb_libfdisk, fdisk_partition_start_follow_default),
	SYMBOL(struct kb_libfdisk, fdisk_partition_end_follow_default),
	SYMBOL(struct kb_libfdisk, fdisk_add_partition),
	SYMBOL(struct kb_libfdisk, fdisk_get_partition),
	SYMBOL(struct kb_libfdisk, fdisk_get_sector_size),
	SYMBOL(struct kb_libfdisk, fdisk_partition_get_start),
	SYMBOL(struct kb_libfdisk, fdisk_partition_get_size),
	SYMBOL(struct kb_libfdisk, fdisk_write_disklabel),
	SYMBOL(struct kb_libfdisk, fdisk_reread_partition_table),
};
SYMBOLS_FILL(struct kb_libfdisk, fdisk_symbols);

static const struct symbol gpiod_symbols[] = {
	SYMBOL(struct kb_libgpiod, gpiod_chip_iter_new),
	SYMBOL(struct kb_libgpiod, gpiod_chip_iter_next),
	SYMBOL(struct kb_libgpiod, gpiod_chip_iter_free),
	SYMBOL(struct kb_libgpiod, gpiod_chip_open_by_name),
	SYMBOL(struct kb_libgpiod, gpiod_chip_close),
	SYMBOL(struct kb_libgpiod, gpiod_chip_name),
	SYMBOL(struct kb_libgpiod, gpiod_chip_label),
	SYMBOL(struct kb_libgpiod, gpiod_chip_num_lines),
	SYMBOL(struct kb_libgpiod, gpiod_chip_get_line),
	SYMBOL(struct kb_libgpiod, gpiod_line_name),
};
SYMBOLS_FILL(struct kb_libgpiod, gpiod_symbols);

static const struct symbol zstd_symbols[] = {
	SYMBOL(struct kb_libzstd, ZSTD_isError),
	SYMBOL(struct kb_libzstd, ZSTD_maxCLevel),
	SYMBOL(struct kb_libzstd, ZSTD_compressBound),
	SYMBOL(struct kb_libzstd, ZSTD_createCCtx),
	SYMBOL(struct kb_libzstd, ZSTD_freeCCtx),
	SYMBOL(struct kb_libzstd, ZSTD_CCtx_setParameter),
	SYMBOL(struct kb_libzstd, ZSTD_CStreamOutSize),
	SYMBOL(struct kb_libzstd, ZSTD_compressStream2),
	SYMBOL(struct kb_libzstd, ZSTD_compressCCtx),
	SYMBOL(struct kb_libzstd, ZSTD_decompress),
	SYMBOL(struct kb_libzstd, ZSTD_createDCtx),
	SYMBOL(struct kb_libzstd, ZSTD_freeDCtx),
	SYMBOL(struct kb_libzstd, ZSTD_DStreamOutSize),
	SYMBOL(struct kb_libzstd, ZSTD_decompressStream),
};
SYMBOLS_FILL(struct kb_libzstd, zstd_symbols);

/* Where each library's resolved functions are kept. */
static struct kb_libmount libmount;
static struct kb_libblkid libblkid;
static struct kb_libfdisk libfdisk;
static struct kb_libgpiod libgpiod;
static struct kb_libzstd libzstd;

struct library {
	const char *feature, *description, *priority, *soname, *package; /* from libraries.h */
	const char *note;                       /* the JSON of its .note.dlopen */
	const struct symbol *symbols;
	size_t count;                           /* of symbols */
	void *functions;                        /* the struct they fill */
};

static const struct library table[KB_LIB_COUNT] = {
	[KB_LIB_MOUNT] = { KB_LIBMOUNT, KB_DLOPEN_JSON(KB_LIBMOUNT), mount_symbols,
			   KB_ARRAY_SIZE(mount_symbols), &libmount },
	[KB_LIB_BLKID] = { KB_LIBBLKID, KB_DLOPEN_JSON(KB_LIBBLKID), blkid_symbols,
			   KB_ARRAY_SIZE(blkid_symbols), &libblkid },
	[KB_LIB_FDISK] = { KB_LIBFDISK, KB_DLOPEN_JSON(KB_LIBFDISK), fdisk_symbols,
			   KB_ARRAY_SIZE(fdisk_symbols), &libfdisk },
	[KB_LIB_GPIOD] = { KB_LIBGPIOD, KB_DLOPEN_JSON(KB_LIBGPIOD), gpiod_symbols,
			   KB_ARRAY_SIZE(gpiod_symbols), &libgpiod },
	[KB_LIB_ZSTD] = { KB_LIBZSTD, KB_DLOPEN_JSON(KB_LIBZSTD), zstd_symbols,
			  KB_ARRAY_SIZE(zstd_symbols), &libzstd },
};

/* What happened at the first kb_lib_open of each library. */
static struct {
	bool tried, loaded;
	char error[512];
} state[KB_LIB_COUNT];

/* How many shared objects the program had before its first dlopen here. */
static int objects_before;

static int count_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)info, (void)size;
	++*(int *)arg;
	return 0;
}

static bool load(const struct library *l, char *why, size_t len)
{
	if (!objects_before)
		dl_iterate_phdr(count_object, &objects_before);
	/* Lazy binding: the functions kbox calls are resolved below, the
	 * library's own calls when first made. */
	void *handle = dlopen(l->soname, RTLD_LAZY | RTLD_LOCAL);
	if (!handle) {
		snprintf(why, len, "%s", dlerror());
		return false;
	}
	for (size_t i = 0; i < l->count; i++) {
		dlerror();
		void *fn = dlsym(handle, l->symbols[i].name);
		if (!fn) {
			const char *e = dlerror();
			snprintf(why, len, "%s", e ? e : l->symbols[i].name);
			dlclose(handle);
			return false;
		}
		/* POSIX: a dlsym result is stored into a function pointer this way. */
		memcpy((char *)l->functions + l->symbols[i].offset, &fn, sizeof(fn));
	}
	return true;
}

const void *kb_lib_open(enum kb_lib lib)
{
	const struct library *l = &table[lib];
	if (!state[lib].tried) {
		char why[400];
		state[lib].tried = true;
		state[lib].loaded = load(l, why, sizeof(why));
		if (!state[lib].loaded)
			snprintf(state[lib].error, sizeof(state[lib].error),
				 "%s is needed to %s but cannot be loaded: %s; install the %s package",
				 l->soname, l->description, why, l->package);
	}
	return state[lib].loaded ? l->functions : NULL;
}

const char *kb_lib_error(enum kb_lib lib)
{
	return state[lib].tried && !state[lib].loaded ? state[lib].error : NULL;
}

const void *kb_lib_need(enum kb_lib lib)
{
	const void *functions = kb_lib_open(lib);
	if (!functions)
		kb_die(kb_error_exit_code(), "%s", kb_lib_error(lib));
	return functions;
}

const struct kb_libmount *kb_libmount(void) { return kb_lib_need(KB_LIB_MOUNT); }
const struct kb_libblkid *kb_libblkid(void) { return kb_lib_need(KB_LIB_BLKID); }
const struct kb_libfdisk *kb_libfdisk(void) { return kb_lib_need(KB_LIB_FDISK); }
const struct kb_libgpiod *kb_libgpiod(void) { return kb_lib_need(KB_LIB_GPIOD); }
const struct kb_libzstd *kb_libzstd(void) { return kb_lib_need(KB_LIB_ZSTD); }

const char *kb_lib_note(enum kb_lib lib)
{
	return table[lib].note;
}

struct each_loaded {
	int index;
	void (*fn)(const char *path, void *arg);
	void *arg;
};

static int visit_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct each_loaded *e = arg;
	if (e->index++ >= objects_before && info->dlpi_name && info->dlpi_name[0])
		e->fn(info->dlpi_name, e->arg);
	return 0;
}

void kb_lib_each_loaded(void (*fn)(const char *path, void *arg), void *arg)
{
	if (!objects_before)
		return;
	struct each_loaded e = { 0, fn, arg };
	dl_iterate_phdr(visit_loaded, &e);
}

struct each_note {
	void (*fn)(const char *json, void *arg);
	void *arg;
};

/* Walks the PT_NOTE segments of the first object, the program itself. */
static int visit_notes(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct each_note *e = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		size_t align = ph->p_align == 8 ? 8 : 4;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof(*n);
			const char *desc = name + ((n->n_namesz + align - 1) & ~(align - 1));
			const char *next = desc + ((n->n_descsz + align - 1) & ~(align - 1));
			if (next > end || next <= p)
				break;
			if (n->n_type == KB_DLOPEN_NOTE_TYPE && n->n_namesz == 4 && !memcmp(name, "FDO", 4) &&
			    n->n_descsz && !desc[n->n_descsz - 1])
				e->fn(desc, e->arg);
			p = next;
		}
	}
	return 1;
}

void kb_lib_each_note(void (*fn)(const char *json, void *arg), void *arg)
{
	struct each_note e = { fn, arg };
	dl_iterate_phdr(visit_notes, &e);
}
