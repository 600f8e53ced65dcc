/* ELF64 ET_CORE writer for x86-64. */
#include "snapshot/elfcore.h"

#include <cpuid.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/procfs.h>
#include <unistd.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef NT_SIGINFO
#define NT_SIGINFO 0x53494749
#endif
#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

#define CORE_PAGE 4096u

int kb_buf_append(struct kb_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len)
			cap *= 2;
		unsigned char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	if (data)
		memcpy(b->p + b->len, data, len);
	else
		memset(b->p + b->len, 0, len);
	b->len += len;
	return 0;
}

void kb_buf_free(struct kb_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static int add_note(struct kb_buf *b, const char *name, uint32_t type, const void *desc, size_t len)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = (uint32_t)len,
			  .n_type = type };
	static const char zeros[4];
	size_t namepad = (4 - nh.n_namesz % 4) % 4, descpad = (4 - len % 4) % 4;
	if (kb_buf_append(b, &nh, sizeof(nh)) < 0 || kb_buf_append(b, name, nh.n_namesz) < 0 ||
	    kb_buf_append(b, zeros, namepad) < 0 || kb_buf_append(b, desc, len) < 0 ||
	    kb_buf_append(b, zeros, descpad) < 0)
		return -1;
	return 0;
}

static void ticks_to_timeval(unsigned long long ticks, struct timeval *tv)
{
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		hz = 100;
	tv->tv_sec = (time_t)(ticks / (unsigned long long)hz);
	tv->tv_usec = (suseconds_t)((ticks % (unsigned long long)hz) * 1000000 / (unsigned long long)hz);
}

static int add_thread_notes(struct kb_buf *b, pid_t pid, const struct kb_thread *th, bool first,
			    pid_t tgid_for_info, const struct kb_buf *procinfo)
{
	struct elf_prstatus pr;
	memset(&pr, 0, sizeof(pr));
	struct kb_proc_stat ps;
	if (kb_proc_stat(pid, th->tid, &ps) == 0) {
		pr.pr_ppid = ps.ppid;
		pr.pr_pgrp = ps.pgrp;
		pr.pr_sid = ps.sid;
		ticks_to_timeval(ps.utime, &pr.pr_utime);
		ticks_to_timeval(ps.stime, &pr.pr_stime);
		ticks_to_timeval(ps.cutime, &pr.pr_cutime);
		ticks_to_timeval(ps.cstime, &pr.pr_cstime);
	}
	(void)tgid_for_info;
	pr.pr_pid = th->tid;
	pr.pr_sighold = th->sigmask;
	pr.pr_cursig = (short)th->pending_sig;
	pr.pr_info.si_signo = th->pending_sig;
	_Static_assert(sizeof(pr.pr_reg) == sizeof(th->regs), "gregset layout");
	memcpy(&pr.pr_reg, &th->regs, sizeof(pr.pr_reg));
	pr.pr_fpvalid = th->fp_valid;
	if (add_note(b, "CORE", NT_PRSTATUS, &pr, sizeof(pr)) < 0)
		return -1;
	if (first && kb_buf_append(b, procinfo->p, procinfo->len) < 0)
		return -1;
	if (th->fp_valid && add_note(b, "CORE", NT_FPREGSET, &th->fpregs, sizeof(th->fpregs)) < 0)
		return -1;
	if (th->xstate_len && add_note(b, "LINUX", NT_X86_XSTATE, th->xstate, th->xstate_len) < 0)
		return -1;
	return 0;
}

static int add_prpsinfo(struct kb_buf *b, pid_t pid)
{
	struct elf_prpsinfo ps;
	memset(&ps, 0, sizeof(ps));
	struct kb_proc_stat st;
	if (kb_proc_stat(pid, 0, &st) == 0) {
		static const char states[] = "RSDTZW";
		const char *s = strchr(states, st.state);
		ps.pr_state = s ? (char)(s - states) : 0;
		ps.pr_sname = st.state;
		ps.pr_zomb = st.state == 'Z';
		ps.pr_nice = (char)st.nice;
		ps.pr_flag = st.flags;
		ps.pr_ppid = st.ppid;
		ps.pr_pgrp = st.pgrp;
		ps.pr_sid = st.sid;
		memcpy(ps.pr_fname, st.comm, sizeof(ps.pr_fname));
	}
	ps.pr_pid = pid;
	uid_t uid;
	gid_t gid;
	if (kb_proc_ids(pid, &uid, &gid) == 0) {
		ps.pr_uid = uid;
		ps.pr_gid = gid;
	}
	char *cmd;
	size_t len;
	if (kb_proc_read_file(pid, "cmdline", &cmd, &len) == 0) {
		if (len > sizeof(ps.pr_psargs) - 1)
			len = sizeof(ps.pr_psargs) - 1;
		for (size_t i = 0; i < len; i++)
			ps.pr_psargs[i] = cmd[i] ? cmd[i] : ' ';
		while (len > 0 && ps.pr_psargs[len - 1] == ' ')
			ps.pr_psargs[--len] = '\0';
		free(cmd);
	}
	return add_note(b, "CORE", NT_PRPSINFO, &ps, sizeof(ps));
}

static int add_file_note(struct kb_buf *b, const struct kb_maps *maps)
{
	struct kb_buf d = { 0 }, names = { 0 };
	uint64_t count = 0, page = CORE_PAGE;
	for (size_t i = 0; i < maps->n; i++)
		count += kb_mapping_is_file(&maps->v[i]);
	int rc = -1;
	if (kb_buf_append(&d, &count, 8) < 0 || kb_buf_append(&d, &page, 8) < 0)
		goto out;
	for (size_t i = 0; i < maps->n; i++) {
		const struct kb_mapping *m = &maps->v[i];
		if (!kb_mapping_is_file(m))
			continue;
		uint64_t t[3] = { m->start, m->end, m->offset / CORE_PAGE };
		if (kb_buf_append(&d, t, sizeof(t)) < 0 ||
		    kb_buf_append(&names, m->path, strlen(m->path) + 1) < 0)
			goto out;
	}
	if (kb_buf_append(&d, names.p, names.len) < 0)
		goto out;
	rc = add_note(b, "CORE", NT_FILE, d.p, d.len);
out:
	kb_buf_free(&d);
	kb_buf_free(&names);
	return rc;
}

#define NT_X86_XSAVE_LAYOUT_TYPE 0x205

/* Where each extended feature sits in the NT_X86_XSTATE images (standard
 * XSAVE format, whose offsets differ between CPU vendors), as the kernel
 * writes it into its own core dumps: debuggers then need not guess. */
static int add_xsave_layout_note(struct kb_buf *b, const struct kb_stopped *st)
{
	uint64_t xfeatures = 0;
	for (size_t i = 0; i < st->n && !xfeatures; i++)
		if (st->t[i].xstate_len >= 472)
			memcpy(&xfeatures, st->t[i].xstate + 464, 8);   /* XCR0, as ptrace leaves it */
	uint32_t desc[64 * 4];
	size_t n = 0;
	for (unsigned f = 2; f < 64; f++) {
		unsigned eax, ebx, ecx, edx;
		if (!(xfeatures >> f & 1) || !__get_cpuid_count(0xd, f, &eax, &ebx, &ecx, &edx) || !eax)
			continue;
		desc[n * 4] = f;        /* type, size, offset, flags */
		desc[n * 4 + 1] = eax;
		desc[n * 4 + 2] = ebx;
		desc[n * 4 + 3] = 0;
		n++;
	}
	return n ? add_note(b, "LINUX", NT_X86_XSAVE_LAYOUT_TYPE, desc, n * 16) : 0;
}

int kb_core_build_notes(pid_t pid, const struct kb_stopped *st, const struct kb_maps *maps,
			struct kb_buf *notes)
{
	/* Process-wide notes, placed after the first thread's NT_PRSTATUS. */
	struct kb_buf proc = { 0 };
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	char *auxv = NULL;
	size_t auxv_len = 0;
	int rc = -1;
	if (add_prpsinfo(&proc, pid) < 0 || add_note(&proc, "CORE", NT_SIGINFO, &si, sizeof(si)) < 0)
		goto out;
	if (kb_proc_read_file(pid, "auxv", &auxv, &auxv_len) == 0 &&
	    add_note(&proc, "CORE", NT_AUXV, auxv, auxv_len) < 0)
		goto out;
	if (add_file_note(&proc, maps) < 0)
		goto out;
	size_t first = 0;
	for (size_t i = 0; i < st->n; i++)
		if (st->t[i].tid == pid)
			first = i;
	if (add_thread_notes(notes, pid, &st->t[first], true, pid, &proc) < 0)
		goto out;
	for (size_t i = 0; i < st->n; i++)
		if (i != first && add_thread_notes(notes, pid, &st->t[i], false, pid, &proc) < 0)
			goto out;
	if (add_xsave_layout_note(notes, st) < 0)
		goto out;
	rc = 0;
out:
	free(auxv);
	kb_buf_free(&proc);
	return rc;
}

uint64_t kb_core_layout(struct kb_core_segment *segs, size_t nsegs, const struct kb_buf *notes,
			struct kb_buf *hdr)
{
	if (nsegs + 1 >= PN_XNUM) {
		errno = E2BIG;
		return 0;
	}
	uint64_t phoff = sizeof(Elf64_Ehdr);
	uint64_t notes_off = phoff + (nsegs + 1) * sizeof(Elf64_Phdr);
	uint64_t off = (notes_off + notes->len + CORE_PAGE - 1) / CORE_PAGE * CORE_PAGE;
	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = phoff;
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)(nsegs + 1);
	hdr->len = 0;
	if (kb_buf_append(hdr, &eh, sizeof(eh)) < 0)
		return 0;
	Elf64_Phdr ph = { .p_type = PT_NOTE, .p_offset = notes_off, .p_filesz = notes->len, .p_align = 4 };
	if (kb_buf_append(hdr, &ph, sizeof(ph)) < 0)
		return 0;
	for (size_t i = 0; i < nsegs; i++) {
		segs[i].offset = off;
		Elf64_Phdr p = { .p_type = PT_LOAD, .p_flags = segs[i].flags, .p_offset = off,
				 .p_vaddr = segs[i].vaddr, .p_filesz = segs[i].filesz,
				 .p_memsz = segs[i].memsz, .p_align = CORE_PAGE };
		if (kb_buf_append(hdr, &p, sizeof(p)) < 0)
			return 0;
		off += segs[i].filesz;
	}
	if (kb_buf_append(hdr, notes->p, notes->len) < 0)
		return 0;
	uint64_t pad = (notes_off + notes->len + CORE_PAGE - 1) / CORE_PAGE * CORE_PAGE - (notes_off + notes->len);
	if (kb_buf_append(hdr, NULL, pad) < 0)
		return 0;
	return off;
}
