/* The snapshot sequence (see uffd_snapshot.h): kb_snapshot() stops the
 * target, write-protects its memory, lets it go and copies it.
 *
 * Order of events: classify the mappings (smaps, before stopping anything);
 * a first short stop creates a userfaultfd inside the target; while the
 * target runs again we register and write-protect the writable mappings we
 * dump, merely releasing (and noting) the pages it writes meanwhile. The
 * second stop is the instant the core shows: protect again the pages noted,
 * copy the writable mappings that cannot be protected, read the threads'
 * registers, and let the target go. Then one thread serves write faults (copy
 * the page, release it) while the main thread copies everything in order,
 * releasing each chunk as soon as it is copied. Write-protecting a large
 * mapping takes tens of milliseconds, so doing it before the pause keeps the
 * pause short.
 *
 * The stops are the helper's (snapshot_helper.c); the protection is in
 * uffd_snapshot_protect.c, the fault thread in uffd_snapshot_faults.c, the
 * copy in uffd_snapshot_copy.c over uffd_snapshot_memory.c. This file keeps
 * the sequence, the checks on the target, the error messages, and which
 * mappings the core takes (as the kernel's coredump_filter does). */
#include "snapshot/uffd_snapshot.h"
#include "base/clock.h"
#include "snapshot/elfcore.h"
#include "snapshot/procmaps.h"
#include "snapshot/ptrace_inject.h"
#include "snapshot/snapshot_helper.h"
#include "snapshot/uffd.h"
#include "snapshot/uffd_snapshot_engine.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void snap_set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* ---- classification --------------------------------------------------- */

static bool is_anon_shared(const struct kb_mapping *m)
{
	/* Shared anonymous memory shows as a deleted file ("/dev/zero (deleted)",
	 * "/memfd:x (deleted)", "/SYSV... (deleted)"). */
	size_t l = strlen(m->path);
	return m->path[0] == '\0' || (l > 10 && !strcmp(m->path + l - 10, " (deleted)")) ||
	       !strncmp(m->path, "/SYSV", 5) || !strncmp(m->path, "/dev/zero", 9);
}

/* Bytes of mapping m the kernel would dump under filter (vma_dump_size). */
uint64_t snap_dump_size(const struct kb_mapping *m, unsigned filter)
{
	uint64_t whole = m->end - m->start;
	if (!m->r || kb_mapping_is_unreadable_special(m))
		return 0;
	if (filter == KB_DUMP_EVERYTHING || !strcmp(m->path, "[vdso]"))
		return whole;
	if (m->details.dontdump || m->details.io)
		return 0;
	if (m->details.hugetlb)
		return filter & (m->shared ? KB_DUMP_HUGETLB_SHARED : KB_DUMP_HUGETLB_PRIVATE) ? whole : 0;
	if (m->shared)
		return filter & (is_anon_shared(m) ? KB_DUMP_ANON_SHARED : KB_DUMP_FILE_SHARED) ? whole : 0;
	bool file = kb_mapping_is_file(m);
	/* Private memory that was written to (anonymous pages). */
	bool written = !file || (m->details.have_smaps ? m->details.anonymous > 0 : m->w);
	if (written && (filter & KB_DUMP_ANON_PRIVATE))
		return whole;
	if (!file)
		return 0;
	if (filter & KB_DUMP_FILE_PRIVATE)
		return whole;
	if ((filter & KB_DUMP_ELF_HEADERS) && m->offset == 0 && m->details.elf_header)
		return PAGE;
	return 0;
}

/* Pre-stop details (smaps, ELF headers) carried over to the maps read while
 * stopped, for mappings that did not change in between. */
static void carry_over(struct kb_maps *now, const struct kb_maps *before)
{
	for (size_t i = 0; i < now->n; i++) {
		struct kb_mapping *m = &now->v[i];
		struct kb_mapping *b = kb_procmaps_find((struct kb_maps *)before, m->start);
		if (!b || b->start != m->start || b->end != m->end || b->inode != m->inode)
			continue;
		m->details = b->details;
	}
}

static void find_elf_headers(pid_t pid, struct kb_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++) {
		struct kb_mapping *m = &maps->v[i];
		if (!kb_mapping_is_file(m) || m->offset != 0 || !m->r)
			continue;
		unsigned char magic[SELFMAG];
		struct iovec l = { magic, SELFMAG }, r = { (void *)(uintptr_t)m->start, SELFMAG };
		m->details.elf_header = process_vm_readv(pid, &l, 1, &r, 1, 0) == SELFMAG &&
					!memcmp(magic, ELFMAG, SELFMAG);
	}
}

/* ---- the snapshot ------------------------------------------------------ */

/* "cannot VERB process PID: why", with the ptrace rule when access was refused. */
static enum kb_snap_error access_error(pid_t pid, const char *verb, int errnum, char *err, size_t errlen)
{
	bool refused = errnum == EPERM || errnum == EACCES;
	snap_set_err(err, errlen, "cannot %s process %d: %s%s", verb, (int)pid, strerror(errnum),
		refused ? " (same rules as gdb: the same user and kernel.yama.ptrace_scope, "
			  "or CAP_SYS_PTRACE)" : "");
	return refused ? KB_SNAP_ERR_ACCESS : KB_SNAP_ERR_OTHER;
}

enum kb_snap_error snap_helper_error(pid_t pid, int errnum, enum kb_helper_stage stage, char *err,
				     size_t errlen)
{
	if (stage == KB_HELPER_STOP) {
		if (errnum == ESRCH) {
			snap_set_err(err, errlen, "no such process: %d", (int)pid);
			return KB_SNAP_ERR_GONE;
		}
		char *status;
		long tracer = 0;
		if (errnum == EPERM && kb_proc_read_file(pid, "status", &status, NULL) == 0) {
			char *t = strstr(status, "TracerPid:");
			tracer = t ? strtol(t + 10, NULL, 10) : 0;
			free(status);
		}
		if (tracer > 0) {
			snap_set_err(err, errlen, "process %d is already traced by process %ld (a debugger?)",
				(int)pid, tracer);
			return KB_SNAP_ERR_ACCESS;
		}
		return access_error(pid, "stop", errnum, err, errlen);
	}
	if (errnum == EPERM) {
		snap_set_err(err, errlen,
			"process %d may not create a userfaultfd (vm.unprivileged_userfaultfd=0 and it "
			"lacks CAP_SYS_PTRACE); allow it with 'sysctl vm.unprivileged_userfaultfd=1', "
			"or use --stopped to copy while it is stopped",
			(int)pid);
		return KB_SNAP_ERR_UFFD_DENIED;
	}
	if (errnum == ESRCH) {
		snap_set_err(err, errlen, "process %d exited while it was stopped", (int)pid);
		return KB_SNAP_ERR_GONE;
	}
	if (errnum == ENOSYS) {
		snap_set_err(err, errlen, "this kernel has no userfaultfd; use --stopped");
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	snap_set_err(err, errlen, "cannot create a userfaultfd in process %d: %s", (int)pid,
		strerror(errnum));
	return KB_SNAP_ERR_OTHER;
}

/* Whether pid can be snapshot at all: it exists, the caller may inspect it,
 * and it is an x86-64 user-space program. */
enum kb_snap_error snap_check_target(pid_t pid, char *err, size_t errlen)
{
	enum kb_process_kind kind;
	if (kb_process_kind(pid, &kind) < 0) {
		if (errno == ESRCH) {
			snap_set_err(err, errlen, "no such process: %d", (int)pid);
			return KB_SNAP_ERR_GONE;
		}
		return access_error(pid, "inspect", errno, err, errlen);
	}
	if (pid == getpid()) {
		/* Its own helper would stop the process that must answer it. */
		snap_set_err(err, errlen, "process %d is uffd-snapshot itself", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	if (kind == KB_PROCESS_ZOMBIE) {
		snap_set_err(err, errlen, "process %d has exited (a zombie its parent has not reaped)", (int)pid);
		return KB_SNAP_ERR_GONE;
	}
	if (kind == KB_PROCESS_KERNEL_THREAD) {
		snap_set_err(err, errlen, "process %d is a kernel thread: it has no user memory to snapshot", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	if (kind != KB_PROCESS_X86_64) {
		snap_set_err(err, errlen, "process %d is not an x86-64 program", (int)pid);
		return KB_SNAP_ERR_UNSUPPORTED;
	}
	return KB_SNAP_OK;
}

enum kb_snap_error kb_snapshot(const struct kb_snap_opts *o, struct kb_snap_stats *stats,
			       char *err, size_t errlen)
{
	memset(stats, 0, sizeof(*stats));
	uint64_t t0 = kb_monotonic_ns();
	pid_t pid = o->pid;
	enum kb_snap_error target = snap_check_target(pid, err, errlen);
	if (target != KB_SNAP_OK)
		return target;
	bool use_uffd = !o->stopped_copy;
	uint64_t features = 0, wanted = 0;
	if (use_uffd) {
		if (kb_uffd_probe_features(&features) < 0) {
			snap_set_err(err, errlen, "userfaultfd is not available: %s; use --stopped", strerror(errno));
			return KB_SNAP_ERR_UNSUPPORTED;
		}
		if (!(features & KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
			snap_set_err(err, errlen, "this kernel has no userfaultfd write-protection (5.7+); use --stopped");
			return KB_SNAP_ERR_UNSUPPORTED;
		}
		wanted = features & (KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP | KB_UFFD_FEATURE_WP_UNPOPULATED |
				     KB_UFFD_FEATURE_WP_HUGETLBFS_SHMEM | KB_UFFD_FEATURE_EVENT_REMAP |
				     KB_UFFD_FEATURE_EVENT_REMOVE | KB_UFFD_FEATURE_EVENT_UNMAP);
	}
	/* Details that need no stop: smaps and ELF headers. */
	struct kb_maps before = { 0 }, maps = { 0 };
	if (kb_procmaps_read(pid, &before) < 0) {
		snap_set_err(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(errno));
		return errno == ENOENT || errno == ESRCH ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_ACCESS;
	}
	kb_procmaps_add_smaps(pid, &before);
	find_elf_headers(pid, &before);

	struct engine e = { .pid = pid, .uffd = -1, .mem_fd = -1 };
	pthread_mutex_init(&e.lock, NULL);
	struct kb_helper h;
	struct kb_stopped st;
	enum kb_helper_stage stage;
	enum kb_snap_error rc = KB_SNAP_OK;
	struct kb_buf notes = { 0 }, hdr = { 0 };
	struct kb_core_segment *cs = NULL;
	bool helper_running = false, thread_running = false, helper2_spawned = false;
	pthread_t thr;
	struct writer w = { .o = o };

	unsigned max_pause_ms = o->max_pause_ms ? o->max_pause_ms : 10000;
	/* The helper of the pause is spawned now, before this process has a
	 * second thread or the userfaultfd: it inherits neither. */
	struct kb_helper pause_helper;
	if (kb_helper_spawn(pid, false, max_pause_ms, &pause_helper) < 0) {
		snap_set_err(err, errlen, "cannot start a helper process: %s", strerror(errno));
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	helper2_spawned = true;
	if (use_uffd) {
		/* First stop: only to create the userfaultfd inside the target. */
		if (kb_helper_start(pid, true, max_pause_ms, &h, &st, &e.uffd, &stage) < 0) {
			rc = snap_helper_error(pid, errno, stage, err, errlen);
			goto out;
		}
		kb_stopped_free(&st);
		stats->inject_ns = h.t_injected - h.t_stopped;
		if (kb_helper_resume(&h) < 0 || h.resumed_early) {
			snap_set_err(err, errlen, h.resumed_early ? "the first stop reached the pause limit (--max-pause)"
								  : "the helper process ended unexpectedly");
			rc = KB_SNAP_ERR_OTHER;
			goto out;
		}
		stats->first_pause_ns = h.t_resumed - h.t_interrupt;
		if (kb_uffd_api(e.uffd, wanted, KB_UFFD_FEATURE_PAGEFAULT_FLAG_WP, NULL) < 0) {
			snap_set_err(err, errlen, "UFFDIO_API: %s", strerror(errno));
			rc = KB_SNAP_ERR_UNSUPPORTED;
			goto out;
		}
		e.pre = true;
		if (pthread_create(&thr, NULL, snap_fault_thread, &e) != 0) {
			snap_set_err(err, errlen, "cannot start a thread");
			rc = KB_SNAP_ERR_OTHER;
			goto out;
		}
		thread_running = true;
		struct kb_maps running = { 0 };
		uint64_t t_run = kb_monotonic_ns();
		if (kb_procmaps_read(pid, &running) == 0) {
			carry_over(&running, &before);
			snap_protect_running(&e, &running, o->filter);
			kb_procmaps_free(&running);
		}
		stats->protect_running_ns = kb_monotonic_ns() - t_run;
	}
	/* The pause: the instant the core shows. */
	int no_uffd;
	h = pause_helper;
	helper2_spawned = false;
	if (kb_helper_begin(&h, pid, &st, &no_uffd, &stage) < 0) {
		rc = snap_helper_error(pid, errno, stage, err, errlen);
		goto out;
	}
	helper_running = true;
	uint64_t t_prot = kb_monotonic_ns();
	stats->threads = st.n;
	if (kb_procmaps_read(pid, &maps) < 0) {
		snap_set_err(err, errlen, "reading /proc/%d/maps: %s", (int)pid, strerror(errno));
		rc = KB_SNAP_ERR_GONE;
		goto out;
	}
	carry_over(&maps, &before);
	if (use_uffd) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
		e.mem_fd = open(path, O_RDONLY | O_CLOEXEC);
		for (size_t i = 0; i < maps.n && !e.probe; i++)
			if (maps.v[i].r && !kb_mapping_is_unreadable_special(&maps.v[i]))
				e.probe = maps.v[i].start;
	}
	e.segs = calloc(maps.n ? maps.n : 1, sizeof(*e.segs));
	cs = calloc(maps.n ? maps.n : 1, sizeof(*cs));
	if (!e.segs || !cs) {
		snap_set_err(err, errlen, "out of memory");
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	size_t ncs = 0;
	for (size_t i = 0; i < maps.n; i++) {
		struct kb_mapping *m = &maps.v[i];
		if (!strcmp(m->path, "[vsyscall]"))
			continue;   /* above the user address space; gdb knows it */
		struct seg *s = &e.segs[e.nsegs++];
		s->m = m;
		s->dump_len = snap_dump_size(m, o->filter);
		cs[ncs++] = (struct kb_core_segment){ .vaddr = m->start, .memsz = m->end - m->start,
						      .filesz = s->dump_len,
						      .flags = (m->r ? PF_R : 0) | (m->w ? PF_W : 0) |
							       (m->x ? PF_X : 0) };
		stats->mappings_dumped += s->dump_len > 0;
	}
	stats->mappings = e.nsegs;
	if (snap_protect_all(&e, use_uffd, stats) < 0) {
		snap_set_err(err, errlen, "process %d: %s", (int)pid, errno == ESRCH ? "exited" : strerror(errno));
		rc = errno == ESRCH ? KB_SNAP_ERR_GONE : KB_SNAP_ERR_OTHER;
		goto out;
	}
	uint64_t t_copied = kb_monotonic_ns();
	stats->protect_ns = t_copied - t_prot;
	if (kb_core_build_notes(pid, &st, &maps, &notes) < 0 ||
	    (stats->core_bytes = kb_core_layout(cs, ncs, &notes, &hdr)) == 0) {
		snap_set_err(err, errlen, "building the core headers: %s", strerror(errno));
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	w.total = stats->core_bytes;
	if (!use_uffd) {
		/* No write-protection: everything is copied while stopped. */
		rc = snap_write_core(&e, &w, &hdr, stats, true, err, errlen);
		stats->stopped_copy_ns = kb_monotonic_ns() - t_copied;
		if (rc != KB_SNAP_OK)
			goto out;
	}
	uint64_t t_res = kb_monotonic_ns();
	int resume_rc = kb_helper_resume(&h);
	helper_running = false;
	stats->resume_ns = kb_monotonic_ns() - t_res;
	if (resume_rc < 0 || h.resumed_early) {
		snap_set_err(err, errlen,
			h.resumed_early ? "the target was released at the pause limit (--max-pause); the core "
					  "would not be consistent"
					: "the helper process ended unexpectedly");
		rc = KB_SNAP_ERR_OTHER;
		goto out;
	}
	stats->stop_ns = h.t_stopped - h.t_interrupt;
	stats->pause_ns = h.t_resumed - h.t_interrupt;
	if (use_uffd) {
		/* Mappings protected while running that the core does not take
		 * from under protection (whichever way it was protected at the
		 * pause): let the target write there freely. */
		for (size_t i = 0; i < e.nprot; i++)
			for (size_t k = 0; k < e.nsegs && !e.prot[i].used; k++)
				e.prot[i].used = e.segs[k].how == COPY_PROTECTED &&
						 e.segs[k].m->start < e.prot[i].end &&
						 e.prot[i].start < e.segs[k].m->end;
		for (size_t i = 0; i < e.nprot; i++)
			if (!e.prot[i].used)
				kb_uffd_unregister(e.uffd, e.prot[i].start, e.prot[i].end - e.prot[i].start);
		uint64_t t_copy = kb_monotonic_ns();
		rc = snap_write_core(&e, &w, &hdr, stats, false, err, errlen);
		stats->copy_ns = kb_monotonic_ns() - t_copy;
	}
out:
	if (helper_running)
		kb_helper_abandon(&h);
	if (helper2_spawned)
		kb_helper_abandon(&pause_helper);
	if (thread_running) {
		e.stop = 1;
		pthread_join(thr, NULL);
	}
	/* Closing the last descriptor releases every protection left. */
	if (e.uffd >= 0)
		close(e.uffd);
	if (e.mem_fd >= 0)
		close(e.mem_fd);
	stats->pages_ahead = e.pages_ahead;
	stats->pages_lost = e.pages_lost;
	stats->total_ns = kb_monotonic_ns() - t0;
	kb_stopped_free(&st);
	kb_buf_free(&notes);
	kb_buf_free(&hdr);
	free(cs);
	snap_free_engine(&e);
	kb_procmaps_free(&maps);
	kb_procmaps_free(&before);
	return rc;
}
