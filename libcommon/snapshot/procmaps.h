/* A process's mappings and identity as /proc shows them.
 * Kernel interface: /proc/PID/maps, smaps, stat, status, task/ and
 * coredump_filter. */
#ifndef KBOX_PROCMAPS_H
#define KBOX_PROCMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kb_mapping {
	uint64_t start, end;    /* [start, end) */
	uint64_t offset;        /* file offset of start */
	uint64_t inode;
	unsigned dev_major, dev_minor;
	bool r, w, x, shared;
	char *path;             /* "" for anonymous, "[heap]", "/usr/lib/...", owned */
	/* Learned apart from the maps line; copied whole to a later read of the
	 * same mapping. */
	struct kb_mapping_details {
		/* From /proc/PID/smaps (filled by kb_procmaps_add_smaps). */
		bool have_smaps;
		uint64_t anonymous;     /* bytes of anonymous (written) pages */
		uint64_t anon_huge;     /* of which in transparent huge pages */
		uint64_t kernel_page_size;
		bool dontdump, io, hugetlb;
		bool elf_header;        /* starts with an ELF header (set by the caller) */
	} details;
};

struct kb_maps {
	struct kb_mapping *v;
	size_t n;
};

/* Reads /proc/PID/maps. Returns 0, or -1 with errno. */
int kb_procmaps_read(pid_t pid, struct kb_maps *out);
/* Adds the smaps details (Anonymous, KernelPageSize, VmFlags) of every
 * mapping of /proc/PID/smaps that is also in maps (same start and end). */
int kb_procmaps_add_smaps(pid_t pid, struct kb_maps *maps);
void kb_procmaps_free(struct kb_maps *maps);
/* The mapping of maps containing addr, or NULL. */
struct kb_mapping *kb_procmaps_find(struct kb_maps *maps, uint64_t addr);

/* A file-backed mapping ("/..." path, not a deleted-shared-memory name). */
bool kb_mapping_is_file(const struct kb_mapping *m);
/* A special kernel mapping: [vvar], [vsyscall], [vvar_vclock] ... that
 * process_vm_readv cannot read ([vdso] is readable and not special here). */
bool kb_mapping_is_unreadable_special(const struct kb_mapping *m);

/* /proc/PID/coredump_filter as a bit mask (0x33 if unreadable). */
unsigned kb_proc_coredump_filter(pid_t pid);
/* Reads a whole /proc file into a malloc'd buffer (NUL-terminated). */
int kb_proc_read_file(pid_t pid, const char *name, char **buf, size_t *len);

/* Fields of /proc/PID/stat. */
struct kb_proc_stat {
	char comm[17];
	char state;
	pid_t ppid, pgrp, sid;
	long nice;
	unsigned long flags;
	unsigned long long utime, stime, cutime, cstime;  /* clock ticks */
};
int kb_proc_stat(pid_t pid, pid_t tid, struct kb_proc_stat *st);
/* Real uid and gid from /proc/PID/status. */
int kb_proc_ids(pid_t pid, uid_t *uid, gid_t *gid);
/* Thread ids from /proc/PID/task, malloc'd. */
int kb_proc_tids(pid_t pid, pid_t **tids, size_t *n);

#endif
