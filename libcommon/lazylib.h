/* Shared libraries loaded on first use.
 *
 * kbox links no library but libc: each library's functions that libcommon
 * calls are defined in libcommon/lib*-load.c under their own names (the
 * prototypes are checked against the library's header), and the first call
 * opens the library and forwards to it. A run therefore loads only the
 * libraries it uses: `fsck.exfat -n IMAGE` loads none. If a library cannot
 * be loaded, its functions fail the way the library reports failure. */
#ifndef KBOX_LAZYLIB_H
#define KBOX_LAZYLIB_H

struct kb_lazy_lib {
	const char *soname;
	void *handle;
	int tried;
};

/* The library's symbol, opening the library on first use; NULL if either
 * cannot be found. */
void *kb_lazy_symbol(struct kb_lazy_lib *lib, const char *name);

/* Declares `real`, a pointer of fn's own type, resolved once from lib. */
#define KB_LAZY_FN(lib, fn) \
	static __typeof__(fn) *real; \
	if (!real) \
		real = (__typeof__(fn) *)kb_lazy_symbol(&(lib), #fn)

#endif
