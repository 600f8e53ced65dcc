/* ELF64 core files for x86-64 (ET_CORE): the headers and the PT_NOTE
 * segment, in the layout the kernel and gdb use. Kernel interface:
 * /proc/PID/stat, status, cmdline and auxv (through procmaps.h) for the notes. */
#ifndef KBOX_ELFCORE_H
#define KBOX_ELFCORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "snapshot/procmaps.h"
#include "snapshot/ptrace_inject.h"

struct kb_core_segment {
	uint64_t vaddr, memsz;
	uint64_t filesz;        /* 0 when the contents are left out */
	uint32_t flags;         /* PF_R | PF_W | PF_X */
	uint64_t offset;        /* file offset of the contents (set by kb_core_layout) */
};

struct kb_buf {
	unsigned char *p;
	size_t len, cap;
};
int kb_buf_append(struct kb_buf *b, const void *data, size_t len);
void kb_buf_free(struct kb_buf *b);

/* Builds the notes: per thread NT_PRSTATUS, NT_FPREGSET, NT_X86_XSTATE, and
 * after the first (the thread group leader's, or the first thread's)
 * NT_PRPSINFO, NT_SIGINFO, NT_AUXV (from /proc/PID/auxv) and NT_FILE (from
 * maps). Process details come from /proc/PID. */
int kb_core_build_notes(pid_t pid, const struct kb_stopped *st, const struct kb_maps *maps,
			struct kb_buf *notes);

/* Places the segments after the ELF header, the program headers and the
 * notes (page-aligned), fills their offsets, and builds those headers plus
 * the notes and padding into hdr. Returns the total core size, or 0 with
 * errno (E2BIG: too many segments). */
uint64_t kb_core_layout(struct kb_core_segment *segs, size_t nsegs, const struct kb_buf *notes,
			struct kb_buf *hdr);

#endif
