/* exFAT checker and repairer (the engine behind fsck.exfat).
 *
 * exfat_fsck_run() reads a volume from an open descriptor, reports every
 * problem through a callback that decides whether it is repaired, and writes
 * repairs (through an optional undo file) only when the options allow it.
 * It never exits and never reads outside [0, dev_size), so it is also the
 * fuzzing entry point. Kernel interface: none of its own; the volume is read
 * and written through blockdev.h (pread, pwrite, fsync) and undo.h. */
#ifndef KBOX_EXFAT_FSCK_H
#define KBOX_EXFAT_FSCK_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct kb_undo;

struct exfat_fsck_problem {
	const char *code;      /* stable identifier: "set-checksum", "chain-loop", ... */
	const char *path;      /* "/dir/file", "/" or "" for volume structures */
	uint64_t offset;       /* byte offset of the damaged structure */
	char message[320];     /* what is wrong */
	const char *repair;    /* what the repair does: "fix the checksum" */
	bool safe;             /* repairable without asking (fsck -p) */
};

enum exfat_fsck_decision {
	EXFAT_FSCK_SKIP,       /* leave it */
	EXFAT_FSCK_REPAIR,
	EXFAT_FSCK_QUIT,       /* stop here; leave everything else as it is */
};

struct exfat_fsck_opts {
	bool writable;         /* fd is open read-write and repairs may be written */
	bool use_backup;       /* -b: take the backup boot region */
	bool rescue;           /* -s: orphan chains to /LOST+FOUND */
	struct kb_undo *undo;  /* save blocks here before overwriting them */
	/* Called for every problem; returns the decision (without it: skip). */
	enum exfat_fsck_decision (*decide)(void *ctx, const struct exfat_fsck_problem *p);
	/* Called after the decision with whether the repair was made. */
	void (*report)(void *ctx, const struct exfat_fsck_problem *p, bool repaired);
	/* Notes that are not errors (volume was dirty, ...). */
	void (*note)(void *ctx, const char *message);
	/* After each directory: directories checked and known so far, files. */
	void (*progress)(void *ctx, uint64_t dirs_done, uint64_t dirs_known, uint64_t files);
	/* Set non-zero (by a signal handler) to stop the run at the next
	 * directory or phase, as a quit answer does; result->cancelled tells. */
	volatile sig_atomic_t *cancel;
	void *ctx;
};

struct exfat_fsck_result {
	unsigned problems, repaired;
	uint64_t directories, files;
	uint64_t clusters_used, cluster_count, cluster_size;
	bool cancelled;
	bool wrote;            /* anything written to the device */
	bool fatal;            /* operational error or unusable volume; see error */
	bool not_exfat;        /* no exFAT boot region at all */
	bool operational;      /* the failure was I/O or memory, not damage */
	char error[256];
};

/* Returns 0 when the run completed (look at result for problems), -1 when it
 * could not (result->error says why). */
int exfat_fsck_run(int fd, uint64_t dev_size, const struct exfat_fsck_opts *opts,
		   struct exfat_fsck_result *result);

#endif
