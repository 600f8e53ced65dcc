/* Checks a core file of snap-target: every slot a worker wrote (its pages
 * of the region, its stack slots) must hold exactly what the worker's own
 * record (generation, progress) in the same core says it wrote. Prints
 * "consistent: N workers, M slots" or the first mismatch (exit 1).
 *
 * snap-check CORE LAYOUT */
#include <elf.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap-target.h"

static unsigned char *core;
static size_t core_len;

/* Pointer to the core's copy of address a (len bytes), or NULL. */
static const void *at(uint64_t a, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)core;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(core + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && a >= ph[i].p_vaddr && a + len <= ph[i].p_vaddr + ph[i].p_filesz &&
		    ph[i].p_offset + ph[i].p_filesz <= core_len)
			return core + ph[i].p_offset + (a - ph[i].p_vaddr);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: snap-check CORE LAYOUT\n");
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(argv[1]);
		return 2;
	}
	core_len = (size_t)st.st_size;
	core = mmap(NULL, core_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (core == MAP_FAILED || core_len < sizeof(Elf64_Ehdr) || memcmp(core, ELFMAG, SELFMAG) ||
	    ((Elf64_Ehdr *)core)->e_type != ET_CORE) {
		fprintf(stderr, "%s: not an ELF core file\n", argv[1]);
		return 1;
	}
	FILE *lf = fopen(argv[2], "r");
	int n = 0;
	unsigned long long waddr = 0;
	if (!lf || fscanf(lf, "workers %d\nworkers_addr %llx", &n, &waddr) != 2) {
		fprintf(stderr, "%s: bad layout\n", argv[2]);
		return 2;
	}
	fclose(lf);
	const struct worker *w = at(waddr, sizeof(struct worker) * (size_t)n);
	if (!w) {
		fprintf(stderr, "workers array not in the core\n");
		return 1;
	}
	unsigned long long slots = 0;
	for (int i = 0; i < n; i++) {
		uint64_t g = w[i].gen, p = w[i].progress, total = w[i].npages + STACK_SLOTS;
		for (uint64_t s = 0; s < total; s++) {
			uint64_t a = s < w[i].npages ? (uint64_t)(uintptr_t)w[i].pages + s * PAGE
						     : (uint64_t)(uintptr_t)w[i].stack_slots + (s - w[i].npages) * PAGE;
			const uint64_t *v = at(a, 8);
			if (!v) {
				fprintf(stderr, "worker %d slot %llu (%#llx) not in the core\n", i,
					(unsigned long long)s, (unsigned long long)a);
				return 1;
			}
			/* Written this round: g; not yet: g-1; the one being written: either. */
			uint64_t want = s < p ? g : g - 1;
			bool ok = *v == want || (s == p && (*v == g || *v == g - 1));
			if (!ok) {
				printf("inconsistent: worker %d gen %llu progress %llu: slot %llu holds %llu, expected %llu\n",
				       i, (unsigned long long)g, (unsigned long long)p, (unsigned long long)s,
				       (unsigned long long)*v, (unsigned long long)want);
				return 1;
			}
			slots++;
		}
	}
	printf("consistent: %d workers, %llu slots\n", n, slots);
	return 0;
}
