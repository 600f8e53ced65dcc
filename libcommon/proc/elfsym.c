/* /proc/PID/maps and ELF symbol tables; see elfsym.h. */
#include "proc/elfsym.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- /proc/PID/maps ---------------------------------------------------- */

void kb_maps_free(struct kb_maps *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

int kb_maps_read(pid_t pid, struct kb_maps *m)
{
	char path[64];
	m->v = NULL;
	m->n = 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0, vcap = 0;
	ssize_t len;
	int rc = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		uint64_t start, end, offset, inode;
		char perms[8];
		int path_at = -1;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %*s %" SCNu64 " %n",
			   &start, &end, perms, &offset, &inode, &path_at) < 5)
			continue;
		if (strlen(perms) < 3 || perms[2] != 'x')
			continue;  /* only code can take a trap */
		if (m->n == vcap) {
			vcap = vcap ? vcap * 2 : 32;
			struct kb_mapping *nv = realloc(m->v, vcap * sizeof(*nv));
			if (!nv) {
				rc = -1;
				break;
			}
			m->v = nv;
		}
		struct kb_mapping *mp = &m->v[m->n];
		mp->start = start;
		mp->end = end;
		mp->offset = offset;
		mp->inode = inode;
		mp->path = NULL;
		if (path_at > 0 && path_at <= len && line[path_at]) {
			mp->path = strdup(line + path_at);
			if (!mp->path) {
				rc = -1;
				break;
			}
		}
		m->n++;
	}
	int e = errno;
	free(line);
	fclose(f);
	if (rc < 0) {
		kb_maps_free(m);
		errno = e;
	}
	return rc;
}

const struct kb_mapping *kb_maps_find(const struct kb_maps *m, uint64_t addr)
{
	for (size_t i = 0; i < m->n; i++)
		if (addr >= m->v[i].start && addr < m->v[i].end)
			return &m->v[i];
	return NULL;
}

/* ---- ELF --------------------------------------------------------------- */

/* Symbol tables bigger than this are not read (no real binary comes close). */
#define ELF_SECTION_MAX (512u << 20)

static bool in_file(uint64_t off, uint64_t size, uint64_t file_size)
{
	return off <= file_size && size <= file_size - off;
}

/* Reads size bytes at off into a fresh buffer with a NUL appended. */
static char *read_at(int fd, uint64_t off, uint64_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return NULL;
	uint64_t done = 0;
	while (done < size) {
		ssize_t n = pread(fd, buf + done, size - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			if (n == 0)
				errno = EIO;  /* the file shrank */
			return NULL;
		}
		done += (uint64_t)n;
	}
	buf[size] = '\0';
	return buf;
}

void kb_elf_free(struct kb_elf *e)
{
	for (size_t i = 0; i < e->n_strtabs; i++)
		free(e->strtabs[i]);
	free(e->strtabs);
	free(e->syms);
	memset(e, 0, sizeof(*e));
}

static int cmp_sym(const void *a, const void *b)
{
	const struct kb_elf_symbol *x = a, *y = b;
	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	/* Sized symbols first so they win over aliases without a size. */
	return (x->size < y->size) - (x->size > y->size);
}

/* Adds the function symbols of one symbol table section. */
static int load_symtab(int fd, uint64_t file_size, const Elf64_Shdr *sh, const Elf64_Shdr *shdrs,
		       unsigned shnum, struct kb_elf *e)
{
	uint64_t entsize = sh->sh_entsize ? sh->sh_entsize : sizeof(Elf64_Sym);
	if (entsize < sizeof(Elf64_Sym) || sh->sh_link >= shnum || sh->sh_size > ELF_SECTION_MAX ||
	    !in_file(sh->sh_offset, sh->sh_size, file_size))
		return 0;
	const Elf64_Shdr *strsh = &shdrs[sh->sh_link];
	if (strsh->sh_type != SHT_STRTAB || strsh->sh_size > ELF_SECTION_MAX ||
	    !in_file(strsh->sh_offset, strsh->sh_size, file_size))
		return 0;
	uint64_t count = sh->sh_size / entsize;
	if (count == 0)
		return 0;
	char *syms = read_at(fd, sh->sh_offset, sh->sh_size);
	if (!syms)
		return -1;
	char *strtab = read_at(fd, strsh->sh_offset, strsh->sh_size);
	char **ntabs = strtab ? realloc(e->strtabs, (e->n_strtabs + 1) * sizeof(*ntabs)) : NULL;
	struct kb_elf_symbol *nsyms = ntabs ? realloc(e->syms, (e->n_syms + count) * sizeof(*nsyms)) : NULL;
	if (!nsyms) {
		if (ntabs)
			e->strtabs = ntabs;
		free(strtab);
		free(syms);
		return -1;
	}
	e->strtabs = ntabs;
	e->strtabs[e->n_strtabs++] = strtab;
	e->syms = nsyms;
	for (uint64_t i = 0; i < count; i++) {
		Elf64_Sym s;
		memcpy(&s, syms + i * entsize, sizeof(s));
		int type = ELF64_ST_TYPE(s.st_info);
		if ((type != STT_FUNC && type != STT_GNU_IFUNC) || s.st_shndx == SHN_UNDEF ||
		    s.st_value == 0 || s.st_name == 0 || s.st_name >= strsh->sh_size)
			continue;
		e->syms[e->n_syms++] = (struct kb_elf_symbol){
			.value = s.st_value, .size = s.st_size, .name = strtab + s.st_name };
	}
	free(syms);
	return 0;
}

int kb_elf_load(int fd, struct kb_elf *e)
{
	memset(e, 0, sizeof(*e));
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode))
		return 0;
	uint64_t file_size = (uint64_t)st.st_size;
	Elf64_Ehdr eh;
	if (file_size < sizeof(eh) || pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh))
		return 0;
	if (memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return 0;
	e->is_elf = true;

	if (eh.e_phentsize >= sizeof(Elf64_Phdr) && eh.e_phnum > 0 &&
	    in_file(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, file_size)) {
		char *ph = read_at(fd, eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize);
		if (!ph)
			return -1;
		for (unsigned i = 0; i < eh.e_phnum && e->n_load < (sizeof(e->load) / sizeof(e->load[0])); i++) {
			Elf64_Phdr p;
			memcpy(&p, ph + (size_t)i * eh.e_phentsize, sizeof(p));
			if (p.p_type != PT_LOAD)
				continue;
			e->load[e->n_load].offset = p.p_offset;
			e->load[e->n_load].vaddr = p.p_vaddr;
			e->load[e->n_load].filesz = p.p_filesz;
			e->n_load++;
		}
		free(ph);
	}

	if (eh.e_shentsize < sizeof(Elf64_Shdr) || eh.e_shoff == 0)
		return 0;
	uint64_t shnum = eh.e_shnum;
	if (shnum == 0) {
		/* More than 0xff00 sections: the count is in section 0's sh_size. */
		Elf64_Shdr s0;
		if (!in_file(eh.e_shoff, sizeof(s0), file_size) ||
		    pread(fd, &s0, sizeof(s0), (off_t)eh.e_shoff) != (ssize_t)sizeof(s0))
			return 0;
		shnum = s0.sh_size;
	}
	if (shnum == 0 || shnum > (1u << 20) || !in_file(eh.e_shoff, shnum * eh.e_shentsize, file_size))
		return 0;
	char *raw = read_at(fd, eh.e_shoff, shnum * eh.e_shentsize);
	Elf64_Shdr *shdrs = raw ? malloc(shnum * sizeof(*shdrs)) : NULL;
	if (!shdrs) {
		free(raw);
		return -1;
	}
	for (uint64_t i = 0; i < shnum; i++)
		memcpy(&shdrs[i], raw + i * eh.e_shentsize, sizeof(Elf64_Shdr));
	free(raw);
	int rc = 0;
	for (uint64_t i = 0; i < shnum && rc == 0; i++)
		if (shdrs[i].sh_type == SHT_SYMTAB || shdrs[i].sh_type == SHT_DYNSYM)
			rc = load_symtab(fd, file_size, &shdrs[i], shdrs, (unsigned)shnum, e);
	free(shdrs);
	if (rc < 0) {
		int err = errno;
		kb_elf_free(e);
		errno = err;
		return -1;
	}
	qsort(e->syms, e->n_syms, sizeof(*e->syms), cmp_sym);
	return 0;
}

bool kb_elf_file_to_vaddr(const struct kb_elf *e, uint64_t file_offset, uint64_t *vaddr)
{
	for (unsigned i = 0; i < e->n_load; i++) {
		if (file_offset >= e->load[i].offset &&
		    file_offset - e->load[i].offset < e->load[i].filesz) {
			*vaddr = file_offset - e->load[i].offset + e->load[i].vaddr;
			return true;
		}
	}
	return false;
}

const struct kb_elf_symbol *kb_elf_lookup(const struct kb_elf *e, uint64_t vaddr)
{
	/* Last symbol with value <= vaddr. */
	size_t lo = 0, hi = e->n_syms;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e->syms[mid].value <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	const struct kb_elf_symbol *nearest = &e->syms[lo - 1];
	/* Prefer a sized symbol that contains the address (a few back, for aliases). */
	for (size_t i = lo, steps = 0; i > 0 && steps < 16; i--, steps++) {
		const struct kb_elf_symbol *s = &e->syms[i - 1];
		if (s->size && vaddr - s->value < s->size)
			return s;
	}
	return nearest->size == 0 ? nearest : NULL;
}

/* ---- the resolver ------------------------------------------------------ */

struct proc_entry {
	pid_t tgid;
	struct kb_maps maps;
};

struct file_entry {
	char *path;
	uint64_t inode;
	struct kb_elf elf;
};

struct kb_resolver {
	struct proc_entry *procs;
	size_t n_procs;
	struct file_entry *files;
	size_t n_files;
};

struct kb_resolver *kb_resolver_new(void)
{
	return calloc(1, sizeof(struct kb_resolver));
}

void kb_resolver_free(struct kb_resolver *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_procs; i++)
		kb_maps_free(&r->procs[i].maps);
	for (size_t i = 0; i < r->n_files; i++) {
		free(r->files[i].path);
		kb_elf_free(&r->files[i].elf);
	}
	free(r->procs);
	free(r->files);
	free(r);
}

void kb_resolver_forget(struct kb_resolver *r, pid_t tgid)
{
	for (size_t i = 0; i < r->n_procs; i++) {
		if (r->procs[i].tgid != tgid)
			continue;
		kb_maps_free(&r->procs[i].maps);
		r->procs[i] = r->procs[--r->n_procs];
		return;
	}
}

static struct proc_entry *proc_maps(struct kb_resolver *r, pid_t tgid, bool refresh)
{
	struct proc_entry *p = NULL;
	for (size_t i = 0; i < r->n_procs; i++)
		if (r->procs[i].tgid == tgid)
			p = &r->procs[i];
	if (p && !refresh)
		return p;
	struct kb_maps m;
	if (kb_maps_read(tgid, &m) < 0)
		return NULL;
	if (p && m.n == 0) {
		kb_maps_free(&m);
		return p;  /* a zombie has no maps: keep what we saw while it lived */
	}
	if (!p) {
		struct proc_entry *np = realloc(r->procs, (r->n_procs + 1) * sizeof(*np));
		if (!np) {
			kb_maps_free(&m);
			return NULL;
		}
		r->procs = np;
		p = &r->procs[r->n_procs++];
		p->tgid = tgid;
	} else {
		kb_maps_free(&p->maps);
	}
	p->maps = m;
	return p;
}

/* The symbols of a mapped file; opened through map_files when allowed, so
 * a replaced or deleted file still gives the code that was running. */
static const struct kb_elf *file_symbols(struct kb_resolver *r, pid_t tgid, const struct kb_mapping *mp)
{
	for (size_t i = 0; i < r->n_files; i++)
		if (r->files[i].inode == mp->inode && !strcmp(r->files[i].path, mp->path))
			return &r->files[i].elf;
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)tgid, mp->start, mp->end);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && mp->path[0] == '/')
		fd = open(mp->path, O_RDONLY | O_CLOEXEC);
	struct kb_elf elf = { 0 };
	if (fd >= 0) {
		if (kb_elf_load(fd, &elf) < 0)
			memset(&elf, 0, sizeof(elf));
		close(fd);
	}
	struct file_entry *nf = realloc(r->files, (r->n_files + 1) * sizeof(*nf));
	char *dup = strdup(mp->path);
	if (!nf || !dup) {
		if (nf)
			r->files = nf;
		free(dup);
		kb_elf_free(&elf);
		return NULL;
	}
	r->files = nf;
	r->files[r->n_files] = (struct file_entry){ .path = dup, .inode = mp->inode, .elf = elf };
	return &r->files[r->n_files++].elf;
}

void kb_resolver_prime(struct kb_resolver *r, pid_t tgid)
{
	struct proc_entry *p = proc_maps(r, tgid, true);
	if (!p)
		return;
	/* Load the symbols too: the files may be gone or replaced later. */
	for (size_t i = 0; i < p->maps.n; i++)
		if (p->maps.v[i].path && p->maps.v[i].path[0] == '/')
			file_symbols(r, tgid, &p->maps.v[i]);
}

void kb_resolver_inherit(struct kb_resolver *r, pid_t child, pid_t parent)
{
	size_t pi = r->n_procs;
	for (size_t i = 0; i < r->n_procs; i++) {
		if (r->procs[i].tgid == child)
			return;
		if (r->procs[i].tgid == parent)
			pi = i;
	}
	if (pi == r->n_procs)
		return;
	const struct kb_maps *from = &r->procs[pi].maps;
	struct kb_maps m = { .v = calloc(from->n ? from->n : 1, sizeof(*m.v)) };
	struct proc_entry *np = m.v ? realloc(r->procs, (r->n_procs + 1) * sizeof(*np)) : NULL;
	if (!np) {
		free(m.v);
		return;
	}
	r->procs = np;
	from = &r->procs[pi].maps;
	for (size_t i = 0; i < from->n; i++) {
		m.v[i] = from->v[i];
		m.v[i].path = from->v[i].path ? strdup(from->v[i].path) : NULL;
		m.n++;
		if (from->v[i].path && !m.v[i].path)
			break;
	}
	r->procs[r->n_procs++] = (struct proc_entry){ .tgid = child, .maps = m };
}

int kb_resolve(struct kb_resolver *r, pid_t tgid, uint64_t addr, uint64_t lookup_addr,
	       struct kb_location *loc)
{
	memset(loc, 0, sizeof(*loc));
	struct proc_entry *p = proc_maps(r, tgid, false);
	if (!p)
		return -1;
	const struct kb_mapping *mp = kb_maps_find(&p->maps, lookup_addr);
	if (!mp) {
		/* Code mapped since we last looked (dlopen, JIT): read the maps again. */
		struct proc_entry *fresh = proc_maps(r, tgid, true);
		if (fresh)
			p = fresh;
		mp = kb_maps_find(&p->maps, lookup_addr);
		if (!mp)
			return 0;
	}
	loc->mapped = true;
	loc->binary = mp->path;
	uint64_t file_off = addr - mp->start + mp->offset;
	loc->binary_offset = file_off;
	if (!mp->path || mp->path[0] != '/')
		return 0;  /* anonymous, [vdso], ... */
	const struct kb_elf *elf = file_symbols(r, tgid, mp);
	uint64_t vaddr;
	if (!elf || !elf->is_elf || !kb_elf_file_to_vaddr(elf, file_off, &vaddr))
		return 0;
	loc->binary_offset = vaddr;
	uint64_t lookup_vaddr = vaddr - (addr - lookup_addr);
	const struct kb_elf_symbol *s = kb_elf_lookup(elf, lookup_vaddr);
	if (s) {
		loc->symbol = s->name;
		loc->symbol_offset = vaddr - s->value;
	}
	return 0;
}
