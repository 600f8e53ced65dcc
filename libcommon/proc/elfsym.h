/* Code addresses of a running process to binary+offset and symbol+offset:
 * /proc/PID/maps plus the ELF .symtab/.dynsym of the mapped file. The ELF
 * reader checks every offset and size against the file, so any file is safe. */
#ifndef KBOX_ELFSYM_H
#define KBOX_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct kb_mapping {
	uint64_t start, end, offset;
	uint64_t inode;
	char *path;            /* NULL for anonymous memory */
};

struct kb_maps {
	struct kb_mapping *v;
	size_t n;
};

/* Reads /proc/PID/maps (executable mappings only). 0, or -1 with errno. */
int kb_maps_read(pid_t pid, struct kb_maps *m);
const struct kb_mapping *kb_maps_find(const struct kb_maps *m, uint64_t addr);
void kb_maps_free(struct kb_maps *m);

struct kb_elf_symbol {
	uint64_t value, size;
	const char *name;
};

struct kb_elf {
	bool is_elf;
	struct { uint64_t offset, vaddr, filesz; } load[16];   /* PT_LOAD segments */
	unsigned n_load;
	struct kb_elf_symbol *syms;   /* function symbols sorted by value */
	size_t n_syms;
	char **strtabs;               /* owned string tables the names point into */
	size_t n_strtabs;
};

/* Loads the symbols of the ELF file open at fd. Files that are not ELF (or
 * not 64-bit little-endian) give is_elf = false and no symbols; only an
 * I/O or memory error returns -1. */
int kb_elf_load(int fd, struct kb_elf *e);
void kb_elf_free(struct kb_elf *e);
/* File offset -> ELF virtual address via the PT_LOAD segments. */
bool kb_elf_file_to_vaddr(const struct kb_elf *e, uint64_t file_offset, uint64_t *vaddr);
/* The function symbol containing vaddr (or, for sizeless symbols, the
 * nearest one below it); NULL if none. */
const struct kb_elf_symbol *kb_elf_lookup(const struct kb_elf *e, uint64_t vaddr);

/* What an address of a process resolves to. */
struct kb_location {
	bool mapped;                  /* inside a mapping of the process */
	const char *binary;           /* mapped file, NULL for anonymous memory */
	uint64_t binary_offset;       /* ELF virtual address (addr2line -e BINARY), else file offset */
	const char *symbol;           /* NULL when unknown */
	uint64_t symbol_offset;
};

/* Caches maps per thread group and symbols per file. */
struct kb_resolver;
struct kb_resolver *kb_resolver_new(void);
void kb_resolver_free(struct kb_resolver *r);
/* Resolves addr in process tgid. lookup_addr is the address used to find the
 * symbol (callers pass the reported address - 1 when the kernel reports the
 * instruction after the one of interest); the offsets are of addr itself.
 * Cached maps are re-read when the address is not in them. Returns 0, or -1
 * with errno when the process's maps cannot be read. The strings stay valid
 * until the next call or kb_resolver_free. */
int kb_resolve(struct kb_resolver *r, pid_t tgid, uint64_t addr, uint64_t lookup_addr,
	       struct kb_location *loc);
/* Reads and caches a process's maps now (e.g. right after it exec'd), so
 * its code can be resolved even if it has exited when its report is read. */
void kb_resolver_prime(struct kb_resolver *r, pid_t tgid);
/* A forked child starts with its parent's mappings: copy the cached ones
 * (if any) for child, unless it has its own already. */
void kb_resolver_inherit(struct kb_resolver *r, pid_t child, pid_t parent);
/* Drops the cached maps of a process (it exited). */
void kb_resolver_forget(struct kb_resolver *r, pid_t tgid);

#endif
