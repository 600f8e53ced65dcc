/* exFAT checker: file names.
 *
 * The rules a name in a file's name entries must follow (no invalid
 * characters, not "." or ".."), the set of up-cased names of one directory
 * that finds duplicates ignoring case, NAME~N for a name to be made unique,
 * and the UTF-8 paths used in messages. Reads no on-disk structure itself:
 * the directory walk (fsck_dir.c) passes the names and the up-case map. */
#include "exfat/fsck_internal.h"

#include "exfat/exfat_upcase.h"
#include "base/utf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- paths and names ----------------------------------------------------- */

char *fsck_child_path(const char *parent, const uint16_t *name, unsigned len)
{
	char utf8[EXFAT_MAX_NAME_LEN * 3 + 1];
	size_t n = 0;
	if (kb_utf16_to_utf8(name, len, utf8, sizeof(utf8), &n, true) < 0)
		snprintf(utf8, sizeof(utf8), "?");
	for (char *c = utf8; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?'; /* printable paths in messages */
	size_t plen = strlen(parent);
	if (plen + 1 + strlen(utf8) + 1 > PATH_CAP)
		return strdup(parent);
	size_t cap = plen + strlen(utf8) + 2;
	char *p = malloc(cap);
	if (!p)
		return NULL;
	memcpy(p, parent, plen);
	size_t at = plen;
	if (!plen || parent[plen - 1] != '/')
		p[at++] = '/';
	memcpy(p + at, utf8, strlen(utf8) + 1);
	return p;
}

bool fsck_is_dot_name(const uint16_t *n, unsigned len)
{
	return (len == 1 && n[0] == '.') || (len == 2 && n[0] == '.' && n[1] == '.');
}

static uint32_t fnv(const uint16_t *n, unsigned len)
{
	uint32_t h = 2166136261u;
	for (unsigned i = 0; i < len; i++)
		h = (h ^ n[i]) * 16777619u;
	return h | 1;
}

static struct name_slot *name_find(struct name_set *s, const uint16_t *up, unsigned len, uint32_t h)
{
	size_t i = h & (s->cap - 1);
	while (s->slots[i].hash) {
		if (s->slots[i].hash == h && s->slots[i].len == len && !memcmp(s->pool + s->slots[i].at, up, len * 2))
			return &s->slots[i];
		i = (i + 1) & (s->cap - 1);
	}
	return &s->slots[i];
}

struct name_slot *fsck_name_holder(struct name_set *s, const uint16_t *up, unsigned len)
{
	if (!s->cap)
		return NULL;
	struct name_slot *slot = name_find(s, up, len, fnv(up, len));
	return slot->hash ? slot : NULL;
}

bool fsck_name_contains(struct name_set *s, const uint16_t *up, unsigned len)
{
	return fsck_name_holder(s, up, len) != NULL;
}

int fsck_name_add(struct name_set *s, const uint16_t *up, unsigned len, uint32_t owner, bool suspect)
{
	if ((s->used + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct name_slot *old = s->slots;
		size_t ocap = s->cap;
		s->slots = calloc(ncap, sizeof(*s->slots));
		if (!s->slots) {
			s->slots = old;
			return -1;
		}
		s->cap = ncap;
		for (size_t i = 0; i < ocap; i++)
			if (old[i].hash) {
				size_t k = old[i].hash & (ncap - 1);
				while (s->slots[k].hash)
					k = (k + 1) & (ncap - 1);
				s->slots[k] = old[i];
			}
		free(old);
	}
	uint32_t h = fnv(up, len);
	struct name_slot *slot = name_find(s, up, len, h);
	if (slot->hash)
		return 0;
	if (s->pool_used + len > s->pool_cap) {
		size_t ncap = s->pool_cap ? s->pool_cap * 2 : 4096;
		while (ncap < s->pool_used + len)
			ncap *= 2;
		uint16_t *n = realloc(s->pool, ncap * sizeof(uint16_t));
		if (!n)
			return -1;
		s->pool = n, s->pool_cap = ncap;
	}
	memcpy(s->pool + s->pool_used, up, len * 2);
	*slot = (struct name_slot){ h, (uint16_t)len, s->pool_used, owner, suspect };
	s->pool_used += len;
	s->used++;
	return 0;
}

void fsck_name_set_free(struct name_set *s)
{
	free(s->slots);
	free(s->pool);
	memset(s, 0, sizeof(*s));
}

/* Makes a name unique in the directory (and valid) within `cap` code units:
 * NAME~N, shortening NAME when there is no room. Returns the new length, 0
 * when nothing fits. */
unsigned fsck_unique_name(struct vol *v, struct name_set *names, uint16_t *name, unsigned len, unsigned cap)
{
	uint16_t base[EXFAT_MAX_NAME_LEN], cand[EXFAT_MAX_NAME_LEN], up[EXFAT_MAX_NAME_LEN];
	memcpy(base, name, len * 2);
	for (unsigned n = 1; n < 100000; n++) {
		char suffix[16];
		unsigned slen = (unsigned)snprintf(suffix, sizeof(suffix), "~%u", n);
		if (slen >= cap)
			return 0;
		unsigned keep = len + slen <= cap ? len : cap - slen;
		memcpy(cand, base, keep * 2);
		for (unsigned i = 0; i < slen; i++)
			cand[keep + i] = (uint8_t)suffix[i];
		unsigned clen = keep + slen;
		exfat_upcase_name(v->upcase, cand, clen, up);
		if (!fsck_name_contains(names, up, clen)) {
			memcpy(name, cand, clen * 2);
			return clen;
		}
	}
	return 0;
}

const char *fsck_fp(struct fpath *p)
{
	if (!p->s)
		p->s = fsck_child_path(p->dir, p->name, p->len);
	return p->s ? p->s : p->dir;
}
