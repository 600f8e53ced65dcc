/* Shared libraries loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <dlfcn.h>
#include <stddef.h>

void *kb_lazy_symbol(struct kb_lazy_lib *lib, const char *name)
{
	if (!lib->tried) {
		lib->tried = 1;
		lib->handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
	}
	return lib->handle ? dlsym(lib->handle, name) : NULL;
}
