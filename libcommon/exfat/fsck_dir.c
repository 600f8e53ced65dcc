/* exFAT checker: the directory walk.
 *
 * Reads each directory's clusters whole and checks every entry in order:
 * file entry sets (file, stream extension and name entries: SecondaryCount,
 * SetChecksum, NameLength, NameHash, timestamps), and in the root directory
 * the allocation bitmap (fsck_fat.c), up-case table, volume label and volume
 * GUID entries; entries outside any set, unknown entries, entries after the
 * end-of-directory mark. A subdirectory found is pushed on the walk's stack;
 * its chain is claimed and checked as a file's (fsck_claims.c). Repaired
 * entries are written back cluster by cluster when the directory is done. */
#include "exfat/fsck_internal.h"

#include "exfat/exfat_upcase.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- directory entries --------------------------------------------------- */

uint8_t *fsck_entry_at(struct dir_ctx *d, uint32_t i)
{
	return d->buf + (size_t)i * EXFAT_ENTRY_SIZE;
}

uint64_t fsck_entry_pos(struct dir_ctx *d, uint32_t i)
{
	uint64_t byte = (uint64_t)i * EXFAT_ENTRY_SIZE;
	return fsck_cluster_pos(d->v, d->job->clusters[byte >> d->v->cshift]) + (byte & (d->v->csize - 1));
}

void fsck_touch(struct dir_ctx *d, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count && i < d->nentries; i++)
		d->dirty[((uint64_t)i * EXFAT_ENTRY_SIZE) >> d->v->cshift] = 1;
}

void fsck_delete_entries(struct dir_ctx *d, uint32_t first, uint32_t count)
{
	for (uint32_t i = first; i < first + count && i < d->nentries; i++) {
		uint8_t *t = fsck_entry_at(d, i);
		/* Type 0x80 without InUse would read as an end-of-directory mark. */
		*t = *t & (uint8_t)~EXFAT_ENTRY_IN_USE ? *t & (uint8_t)~EXFAT_ENTRY_IN_USE : 0x01;
	}
	fsck_touch(d, first, count);
}

int fsck_push_dir(struct vol *v, char *path, uint32_t *clusters, uint32_t count, uint32_t depth)
{
	if (v->nstack == v->capstack) {
		size_t ncap = v->capstack ? v->capstack * 2 : 16;
		struct dir_job *n = realloc(v->stack, ncap * sizeof(*n));
		if (!n) {
			fsck_fail_op(v, "out of memory");
			free(path), free(clusters);
			return -1;
		}
		v->stack = n, v->capstack = ncap;
	}
	v->stack[v->nstack++] = (struct dir_job){ path, clusters, count, depth };
	return 0;
}

/* Field checks of a timestamp (no time zone conversion needed). */
static bool timestamp_ok(uint32_t stamp, uint8_t ms10, uint8_t utc)
{
	static const uint8_t days[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned sec2 = stamp & 31, min = stamp >> 5 & 63, hour = stamp >> 11 & 31;
	unsigned day = stamp >> 16 & 31, month = stamp >> 21 & 15, year = 1980 + (stamp >> 25);
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (ms10 > 199 || sec2 > 29 || min > 59 || hour > 23 || month < 1 || month > 12 || day < 1 ||
	    day > days[month - 1] || (month == 2 && day == 29 && !leap))
		return false;
	if (utc & 0x80) {
		int off = (int8_t)(uint8_t)(utc << 1) >> 1;
		if (off < -48 || off > 56)
			return false;
	}
	return true;
}

#define DEFAULT_STAMP 0x00210000u /* 1980-01-01 00:00:00 */

static void check_timestamps(struct dir_ctx *d, uint32_t i, struct fpath *path, bool *changed)
{
	uint8_t *e = fsck_entry_at(d, i);
	/* Byte offsets in the file entry: time, 10 ms increment (0: none), UTC offset. */
	static const struct { uint8_t stamp, ms10, utc; const char *what; } t[3] = {
		{ offsetof(struct exfat_file_entry, create_time), offsetof(struct exfat_file_entry, create_10ms),
		  offsetof(struct exfat_file_entry, create_utc_offset), "creation" },
		{ offsetof(struct exfat_file_entry, modify_time), offsetof(struct exfat_file_entry, modify_10ms),
		  offsetof(struct exfat_file_entry, modify_utc_offset), "modification" },
		{ offsetof(struct exfat_file_entry, access_time), 0,
		  offsetof(struct exfat_file_entry, access_utc_offset), "access" },
	};
	for (int k = 0; k < 3; k++) {
		uint32_t stamp = exfat_get_le32(e + t[k].stamp);
		uint8_t ms = t[k].ms10 ? e[t[k].ms10] : 0;
		if (timestamp_ok(stamp, ms, e[t[k].utc]))
			continue;
		if (!fsck_problem(d->v, "timestamp", fsck_fp(path), fsck_entry_pos(d, i), true, "set a valid time",
				  "invalid %s time 0x%08x (10ms %u, UTC offset 0x%02x)", t[k].what, stamp, ms, e[t[k].utc]))
			continue;
		uint32_t good = DEFAULT_STAMP;
		for (int o = 0; o < 3; o++)
			if (o != k && timestamp_ok(exfat_get_le32(e + t[o].stamp), 0, 0)) {
				good = exfat_get_le32(e + t[o].stamp);
				break;
			}
		exfat_put_le32(e + t[k].stamp, good);
		if (t[k].ms10)
			e[t[k].ms10] = 0;
		e[t[k].utc] = 0;
		*changed = true;
	}
}

/* Rewrites the name entries of a set with `name` (len units). */
/* GeneralSecondaryFlags of the stream entry at si. Readers disagree on
 * anything but AllocationPossible with or without NoFatChain: the kernel
 * takes a stream as contiguous only when the byte is exactly 0x03, and
 * exfat-fuse refuses the whole directory over a reserved bit or an empty
 * file marked NoFatChain. (An empty file with a first cluster is left to
 * the first-cluster repair, which clears NoFatChain too.) */
static void check_stream_flags(struct dir_ctx *d, uint32_t si, struct fpath *path, bool *changed)
{
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, si);
	uint8_t want = st->flags & (EXFAT_SF_ALLOC_POSSIBLE | EXFAT_SF_NO_FAT_CHAIN);
	bool empty = exfat_le64(st->data_length) == 0;
	if (!empty)
		want |= EXFAT_SF_ALLOC_POSSIBLE;
	else if (exfat_le32(st->first_cluster) == 0)
		want &= (uint8_t)~EXFAT_SF_NO_FAT_CHAIN;
	if (want != st->flags &&
	    fsck_problem(d->v, "stream-flags", fsck_fp(path), fsck_entry_pos(d, si), true, "correct the flags",
			 "stream flags 0x%02x, expected 0x%02x (%s)", st->flags, want,
			 st->flags & ~(EXFAT_SF_ALLOC_POSSIBLE | EXFAT_SF_NO_FAT_CHAIN) ? "reserved bits set"
			 : !(st->flags & EXFAT_SF_ALLOC_POSSIBLE) ? "AllocationPossible clear on a file with data"
			 : "NoFatChain on an empty file")) {
		st->flags = want;
		*changed = true;
	}
}

static void store_name(struct dir_ctx *d, uint32_t i, unsigned names, const uint16_t *name, unsigned len)
{
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, i + 1);
	for (unsigned k = 0; k < names; k++) {
		struct exfat_name_entry *ne = (struct exfat_name_entry *)fsck_entry_at(d, i + 2 + k);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++) {
			unsigned at = k * EXFAT_NAME_CHARS_PER_ENTRY + c;
			exfat_put_le16(&ne->name[c], at < len ? name[at] : 0);
		}
	}
	st->name_length = (uint8_t)len;
}

/* Two sets in a directory have one name, and the earlier one's NameHash
 * did not match it: its name is the damaged one (a flipped bit can turn a
 * name into another's), so it is the one renamed, to NAME~N, and the later
 * set keeps the name. The problem is reported on the earlier set. */
static void rename_damaged(struct dir_ctx *d, uint32_t at)
{
	struct vol *v = d->v;
	uint8_t *fe_raw = fsck_entry_at(d, at);
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, at + 1);
	unsigned sc = fe_raw[1], names = 0;
	while (names + 1 < sc && at + 2 + names < d->nentries && fsck_entry_at(d, at + 2 + names)[0] == EXFAT_ENTRY_NAME)
		names++;
	uint16_t name[EXFAT_MAX_NAME_LEN + 15], up[EXFAT_MAX_NAME_LEN];
	for (unsigned k = 0; k < names; k++) {
		struct exfat_name_entry *ne = (struct exfat_name_entry *)fsck_entry_at(d, at + 2 + k);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++)
			name[k * EXFAT_NAME_CHARS_PER_ENTRY + c] = exfat_get_le16(&ne->name[c]);
	}
	unsigned cap = names * EXFAT_NAME_CHARS_PER_ENTRY < EXFAT_MAX_NAME_LEN ? names * EXFAT_NAME_CHARS_PER_ENTRY
									      : EXFAT_MAX_NAME_LEN;
	unsigned nl = st->name_length < cap ? st->name_length : cap;
	struct fpath path = { d->job->path, name, nl, NULL };
	uint16_t newname[EXFAT_MAX_NAME_LEN];
	memcpy(newname, name, nl * 2);
	unsigned newlen = fsck_unique_name(v, &d->names, newname, nl, cap);
	char *np = newlen ? fsck_child_path(d->job->path, newname, newlen) : NULL;
	char repair[PATH_CAP + 16];
	snprintf(repair, sizeof(repair), "rename to %s", np ? np : "?");
	if (fsck_problem(v, "duplicate-name", fsck_fp(&path), fsck_entry_pos(d, at), false, newlen ? repair : NULL,
			 "name already used in this directory (ignoring case); this set's NameHash does not match it, "
			 "the other's does")) {
		store_name(d, at, names, newname, newlen);
		exfat_upcase_name(v->upcase, newname, newlen, up);
		st->name_hash = htole16(exfat_name_hash(up, newlen));
		((struct exfat_file_entry *)fe_raw)->set_checksum = htole16(exfat_set_checksum(fe_raw, 1 + sc));
		fsck_touch(d, at, 1 + sc);
		if (fsck_name_add(&d->names, up, newlen, at, false) < 0)
			fsck_fail_op(v, "out of memory");
	}
	free(np);
	free(path.s);
}

/* Checks the file entry set at entry i; returns the number of entries it spans. */
static uint32_t check_file_set(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	const char *dpath = d->job->path;
	uint8_t *fe_raw = fsck_entry_at(d, i);
	struct exfat_file_entry *fe = (struct exfat_file_entry *)fe_raw;
	uint64_t pos = fsck_entry_pos(d, i);
	unsigned sc = fe->secondary_count;

	if (i + 1 >= d->nentries || fsck_entry_at(d, i + 1)[0] != EXFAT_ENTRY_STREAM) {
		if (fsck_problem(v, "stream-missing", dpath, pos, false, "delete the entry",
				 "file entry without a stream extension entry (next entry type 0x%02x)",
				 i + 1 < d->nentries ? fsck_entry_at(d, i + 1)[0] : 0))
			fsck_delete_entries(d, i, 1);
		return 1;
	}
	struct exfat_stream_entry *st = (struct exfat_stream_entry *)fsck_entry_at(d, i + 1);
	/* Name entries follow the stream; then benign secondaries. */
	unsigned names = 0, benign = 0;
	while (i + 2 + names < d->nentries && names < 17 && fsck_entry_at(d, i + 2 + names)[0] == EXFAT_ENTRY_NAME)
		names++;
	while (i + 2 + names + benign < d->nentries && 1 + names + benign < EXFAT_MAX_SECONDARY &&
	       (fsck_entry_at(d, i + 2 + names + benign)[0] & 0xE0) == 0xE0 && 1 + names + benign < sc)
		benign++;
	bool changed = false;
	if (benign && fsck_problem(v, "vendor-entry", dpath, fsck_entry_pos(d, i + 2 + names), false, "delete them",
				   "%u benign secondary (vendor) entries in a file's set, first type 0x%02x; "
				   "exfatprogs and older Linux drivers reject such sets", benign,
				   fsck_entry_at(d, i + 2 + names)[0])) {
		fsck_delete_entries(d, i + 2 + names, benign);
		benign = 0;
		changed = true;
	}
	unsigned actual = 1 + names + benign;
	uint32_t span = 1 + actual;

	uint16_t name[EXFAT_MAX_NAME_LEN + 15];
	for (unsigned k = 0; k < names; k++) {
		struct exfat_name_entry *ne = (struct exfat_name_entry *)fsck_entry_at(d, i + 2 + k);
		for (unsigned c = 0; c < EXFAT_NAME_CHARS_PER_ENTRY; c++)
			name[k * EXFAT_NAME_CHARS_PER_ENTRY + c] = exfat_get_le16(&ne->name[c]);
	}
	unsigned cap = names * EXFAT_NAME_CHARS_PER_ENTRY;
	if (cap > EXFAT_MAX_NAME_LEN)
		cap = EXFAT_MAX_NAME_LEN;
	unsigned nl = st->name_length;
	struct fpath path = { dpath, name, 0, NULL };

	/* The set's checksum as stored, over what SecondaryCount covers. */
	bool csum_bad = false;
	uint16_t stored = exfat_le16(fe->set_checksum);
	if (i + 1 + sc <= d->nentries && sc >= 2)
		csum_bad = exfat_set_checksum(fe_raw, 1 + sc) != stored;

	if (names == 0) {
		/* No name at all: give it one in a new name entry is impossible
		 * without space, so the set cannot be kept. */
		if (fsck_problem(v, "name-missing", dpath, pos, false, "delete the entry set",
				 "file entry set without a file name entry"))
			fsck_delete_entries(d, i, 2);
		return 2;
	}
	if (nl == 0 || nl > cap || nl <= (names - 1) * EXFAT_NAME_CHARS_PER_ENTRY) {
		unsigned real = 0;
		while (real < cap && name[real])
			real++;
		if (real == 0)
			real = 1, name[0] = '_';
		unsigned need = (real + EXFAT_NAME_CHARS_PER_ENTRY - 1) / EXFAT_NAME_CHARS_PER_ENTRY;
		if (fsck_problem(v, "name-length", dpath, pos, true, "set NameLength from the name entries",
				 "NameLength %u does not match %u name entries (name has %u characters)", nl, names, real)) {
			/* The name as read up to its first NUL ("_" for none), and
			 * nothing after it, as every reader will then take it. */
			store_name(d, i, names, name, real);
			changed = true;
		}
		nl = real;
		if (need < names) {
			/* The trailing name entries hold nothing: they leave the set. */
			if (fsck_problem(v, "secondary-count", dpath, pos, true, "drop the empty name entries",
					 "%u name entries for a %u-character name", names, nl))
				fsck_delete_entries(d, i + 2 + need, names - need + benign);
			names = need;
			benign = 0;
			actual = 1 + names;
			span = 1 + actual;
			changed = true;
		}
	} else if (nl < cap && name[nl]) {
		/* A character right after NameLength: exfatprogs takes a name up
		 * to its first NUL, so it would read a longer one. NameHash says
		 * which is damaged: the length, or the characters after it. */
		unsigned real = nl;
		while (real < cap && name[real])
			real++;
		uint16_t up[EXFAT_MAX_NAME_LEN];
		exfat_upcase_name(v->upcase, name, real, up);
		bool longer = exfat_name_hash(up, real) == exfat_le16(st->name_hash);
		if (longer ? fsck_problem(v, "name-length", dpath, pos, true, "set NameLength from the name entries",
					  "NameLength %u, but the name entries hold %u characters (as NameHash says)", nl, real)
			   : fsck_problem(v, "name-padding", dpath, pos, true, "zero the characters after the name",
					  "characters after the %u of NameLength in the name entries", nl)) {
			nl = longer ? real : nl;
			store_name(d, i, names, name, nl);
			changed = true;
		}
	}
	path.len = nl;
	if (sc != actual) {
		if (fsck_problem(v, "secondary-count", fsck_fp(&path), pos, true, "set SecondaryCount to the entries present",
				 "SecondaryCount %u, but the set has %u secondary entries", sc, actual)) {
			fe->secondary_count = (uint8_t)actual;
			changed = true;
		}
	} else if (csum_bad) {
		if (fsck_problem(v, "set-checksum", fsck_fp(&path), pos, true, "recompute the checksum",
				 "SetChecksum 0x%04x, expected 0x%04x", stored, exfat_set_checksum(fe_raw, span)))
			changed = true;
	}

	/* Names: invalid characters, dots, hash, duplicates. */
	bool bad_chars = false;
	for (unsigned c = 0; c < nl; c++)
		bad_chars |= exfat_name_char_invalid(name[c]);
	uint16_t newname[EXFAT_MAX_NAME_LEN];
	memcpy(newname, name, nl * 2);
	unsigned newlen = nl;
	bool rename = false;
	if (bad_chars || fsck_is_dot_name(name, nl)) {
		for (unsigned c = 0; c < newlen; c++)
			if (exfat_name_char_invalid(newname[c]) || fsck_is_dot_name(name, nl))
				newname[c] = '_';
		rename = true;
	}
	uint16_t up[EXFAT_MAX_NAME_LEN];
	exfat_upcase_name(v->upcase, name, nl, up);
	bool suspect = exfat_name_hash(up, nl) != exfat_le16(st->name_hash);
	exfat_upcase_name(v->upcase, newname, newlen, up);
	struct name_slot *holder = fsck_name_holder(&d->names, up, newlen);
	if (holder && holder->suspect && !suspect && !rename) {
		uint32_t at = holder->owner;
		holder->owner = i, holder->suspect = false; /* the name is this set's now */
		rename_damaged(d, at);
	} else if (holder) {
		newlen = fsck_unique_name(v, &d->names, newname, newlen, cap);
		rename = true;
	}
	if (rename) {
		char *np = newlen ? fsck_child_path(dpath, newname, newlen) : NULL;
		const char *code = bad_chars ? "invalid-name" : fsck_is_dot_name(name, nl) ? "dot-name" : "duplicate-name";
		char repair[PATH_CAP + 16];
		snprintf(repair, sizeof(repair), "rename to %s", np ? np : "?");
		if (newlen && fsck_problem(v, code, fsck_fp(&path), pos, false, repair, "%s", bad_chars ? "name has invalid characters" :
					   fsck_is_dot_name(name, nl) ? "name is \".\" or \"..\"" :
					   "name already used in this directory (ignoring case)")) {
			store_name(d, i, names, newname, newlen);
			memcpy(name, newname, newlen * 2);
			nl = newlen;
			changed = true;
			free(path.s);
			path.s = np;
			path.len = nl;
			np = NULL;
		} else if (!newlen) {
			fsck_problem(v, code, fsck_fp(&path), pos, false, NULL, "name cannot be made valid and unique");
		}
		free(np);
		exfat_upcase_name(v->upcase, name, nl, up);
	}
	if (fsck_name_add(&d->names, up, nl, i, suspect) < 0)
		fsck_fail_op(v, "out of memory");
	uint16_t hash = exfat_name_hash(up, nl);
	if (exfat_le16(st->name_hash) != hash &&
	    fsck_problem(v, "name-hash", fsck_fp(&path), pos, true, "recompute the hash",
			 "NameHash 0x%04x, expected 0x%04x", exfat_le16(st->name_hash), hash)) {
		st->name_hash = htole16(hash);
		changed = true;
	}

	check_timestamps(d, i, &path, &changed);
	check_stream_flags(d, i + 1, &path, &changed);
	bool is_dir = exfat_le16(fe->attributes) & EXFAT_ATTR_DIRECTORY;
	uint32_t *clusters = NULL, count = 0;
	struct set_at set = { i, span, csum_bad || sc != actual };
	fsck_check_stream_data(d, &set, &path, is_dir, &clusters, &count, &changed);

	if (changed) {
		fe->set_checksum = htole16(exfat_set_checksum(fe_raw, span));
		fsck_touch(d, i, span);
	}
	if (is_dir) {
		v->r->directories++;
		if (count) {
			fsck_fp(&path);
			if (!path.s) {
				fsck_fail_op(v, "out of memory");
				free(clusters);
				return span;
			}
			fsck_push_dir(v, path.s, clusters, count, d->job->depth + 1);
			path.s = NULL;
		} else {
			free(clusters);
		}
	} else {
		v->r->files++;
	}
	free(path.s);
	return span;
}

static int write_default_upcase(struct vol *v, const uint32_t *clusters, uint32_t count)
{
	uint8_t table[EXFAT_UPCASE_DEFAULT_BYTES];
	exfat_upcase_default_build(table);
	uint64_t done = 0;
	uint8_t *buf = calloc(1, v->csize);
	if (!buf)
		return -1;
	for (uint32_t k = 0; k < count && done < sizeof(table); k++) {
		memset(buf, 0, v->csize);
		uint64_t n = sizeof(table) - done < v->csize ? sizeof(table) - done : v->csize;
		memcpy(buf, table + done, n);
		if (fsck_dev_write(v, fsck_cluster_pos(v, clusters[k]), buf, v->csize) < 0)
			break;
		done += n;
	}
	free(buf);
	return done == sizeof(table) ? 0 : -1;
}

/* A damaged up-case table's chain may have gone astray (a FAT entry
 * pointing into a file): it keeps its clusters only as far as no file's
 * claim outweighs its own (fsck_conflicts.c), and the default table is
 * written once that is known, never now over clusters a file may own. */
static void upcase_damaged(struct vol *v, uint64_t pos, const char *reason, bool chain_disagrees)
{
	exfat_upcase_default_map(v->upcase);
	v->upcase_pos = pos;
	v->upcase_against = CLAIM_SUSPECT | (chain_disagrees ? CLAIM_CHAIN : 0);
	v->upcase_rewrite = fsck_problem(v, "upcase-table", "/", pos, false, "write the default up-case table",
					 "up-case table damaged: %s", reason);
}

static void load_upcase(struct dir_ctx *d, uint32_t i)
{
	struct vol *v = d->v;
	struct exfat_upcase_entry *e = (struct exfat_upcase_entry *)fsck_entry_at(d, i);
	uint64_t pos = fsck_entry_pos(d, i);
	uint64_t len = exfat_le64(e->data_length);
	if (v->upcase_found) {
		if (fsck_problem(v, "upcase-duplicate", "/", pos, false, "delete the extra entry",
				 "second up-case table entry"))
			fsck_delete_entries(d, i, 1);
		return;
	}
	v->upcase_found = true;
	uint64_t want = len ? (len + v->csize - 1) >> v->cshift : 1;
	if (want > (MAX_UPCASE_BYTES >> v->cshift) + 1)
		want = (MAX_UPCASE_BYTES >> v->cshift) + 1;
	struct chain ch;
	if (fsck_walk_chain(v, exfat_le32(e->first_cluster), false, want, 0, true, &ch) < 0) {
		exfat_upcase_default_map(v->upcase);
		return;
	}
	v->upcase_first = exfat_le32(e->first_cluster);
	v->upcase_count = ch.count;
	const char *why = NULL;
	char reason[200] = "";
	uint8_t *table = NULL;
	if (ch.count < want) {
		fsck_describe_stop(v, &ch, reason, sizeof(reason));
	} else if (len == 0 || len > MAX_UPCASE_BYTES) {
		snprintf(reason, sizeof(reason), "size %llu out of range", (unsigned long long)len);
	} else if (!(table = malloc(len))) {
		fsck_fail_op(v, "out of memory");
		exfat_upcase_default_map(v->upcase);
	} else {
		/* Only the table's own bytes, not the rest of its last cluster. */
		for (uint32_t k = 0; k < ch.count && ((uint64_t)k << v->cshift) < len; k++) {
			uint64_t at = (uint64_t)k << v->cshift;
			if (fsck_dev_read(v, fsck_cluster_pos(v, ch.list[k]), table + at,
					  len - at < v->csize ? len - at : v->csize) < 0)
				break;
		}
		uint32_t sum = exfat_checksum32(table, len, 0);
		if (sum != exfat_le32(e->table_checksum))
			snprintf(reason, sizeof(reason), "TableChecksum 0x%08x, computed 0x%08x",
				 exfat_le32(e->table_checksum), sum);
		else if (exfat_upcase_expand(table, len, v->upcase, &why) < 0)
			snprintf(reason, sizeof(reason), "%s", why);
	}
	free(table);
	free(ch.list);
	if (reason[0]) {
		upcase_damaged(v, pos, reason, ch.count < want || ch.extra);
		return;
	}
	/* Its checksum vouches for its clusters: the link past the last is
	 * the one astray. */
	if (ch.extra && fsck_problem(v, "chain-long", "/", pos, true, "end the chain at the table size",
				     "up-case table chain continues past %llu clusters", (unsigned long long)want))
		fsck_fat_set(v, ch.last, EXFAT_FAT_EOC);
}

void fsck_rewrite_upcase(struct vol *v)
{
	if (!v->upcase_rewrite || v->failed)
		return;
	uint32_t need = (uint32_t)((EXFAT_UPCASE_DEFAULT_BYTES + v->csize - 1) >> v->cshift);
	uint32_t held = v->upcase_count, keep = held < need ? held : need, cursor = 0;
	uint32_t *list = malloc(sizeof(uint32_t) * (held > need ? held : need));
	if (!list) {
		fsck_fail_op(v, "out of memory");
		return;
	}
	for (uint32_t k = 0, c = v->upcase_first; k < held; k++, c = fsck_fat_get(v, c))
		list[k] = c;
	/* Clusters it holds past the default table's are no longer its own. */
	for (uint32_t k = keep; k < held; k++)
		exfat_bitmap_clear(v->used, list[k] - EXFAT_FIRST_CLUSTER);
	uint32_t n = keep;
	while (n < need && (list[n] = fsck_alloc_cluster(v, &cursor)) != 0)
		n++;
	uint8_t entry[EXFAT_ENTRY_SIZE];
	if (n < need) {
		fsck_problem(v, "upcase-table", "/", v->upcase_pos, false, NULL,
			     "no free cluster left for the default up-case table");
	} else if (write_default_upcase(v, list, need) == 0 &&
		   fsck_dev_read(v, v->upcase_pos, entry, sizeof(entry)) == 0) {
		for (uint32_t k = 0; k + 1 < need; k++)
			fsck_fat_set(v, list[k], list[k + 1]);
		fsck_fat_set(v, list[need - 1], EXFAT_FAT_EOC);
		exfat_build_upcase_entry((struct exfat_upcase_entry *)entry, list[0], EXFAT_UPCASE_DEFAULT_BYTES,
					 EXFAT_UPCASE_DEFAULT_CHECKSUM);
		if (fsck_dev_write(v, v->upcase_pos, entry, sizeof(entry)) == 0)
			v->upcase_first = list[0], v->upcase_count = need;
	}
	free(list);
}

static void check_label(struct dir_ctx *d, uint32_t i)
{
	struct exfat_label_entry *e = (struct exfat_label_entry *)fsck_entry_at(d, i);
	if (e->char_count > EXFAT_MAX_LABEL_LEN &&
	    fsck_problem(d->v, "label-length", "/", fsck_entry_pos(d, i), true, "cut the label to 11 characters",
			 "volume label length %u above 11", e->char_count)) {
		e->char_count = EXFAT_MAX_LABEL_LEN;
		fsck_touch(d, i, 1);
	}
}

static void check_guid(struct dir_ctx *d, uint32_t i)
{
	uint8_t *e = fsck_entry_at(d, i);
	struct exfat_guid_entry *g = (struct exfat_guid_entry *)e;
	uint16_t want = exfat_set_checksum(e, 1);
	if (g->secondary_count == 0 && exfat_le16(g->set_checksum) != want &&
	    fsck_problem(d->v, "set-checksum", "/", fsck_entry_pos(d, i), true, "recompute the checksum",
			 "volume GUID entry SetChecksum 0x%04x, expected 0x%04x", exfat_le16(g->set_checksum), want)) {
		g->set_checksum = htole16(want);
		fsck_touch(d, i, 1);
	}
}

int fsck_read_dir(struct vol *v, const struct dir_job *job, uint8_t *buf)
{
	for (uint32_t k = 0; k < job->count;) {
		uint32_t run = 1;
		while (k + run < job->count && job->clusters[k + run] == job->clusters[k] + run && run < 2048)
			run++;
		if (fsck_dev_read_zeroed(v, fsck_cluster_pos(v, job->clusters[k]), buf + ((uint64_t)k << v->cshift),
					 (size_t)run << v->cshift) < 0)
			return -1;
		k += run;
	}
	return 0;
}

static void write_dir(struct dir_ctx *d)
{
	struct vol *v = d->v;
	for (uint32_t k = 0; k < d->job->count; k++)
		if (d->dirty[k])
			fsck_dev_write(v, fsck_cluster_pos(v, d->job->clusters[k]), d->buf + ((uint64_t)k << v->cshift), v->csize);
}

/* Entries past the end-of-directory mark are unused by definition: every
 * implementation stops reading at the mark, so they are zeroed. A hole of
 * a sparse image holds none: it is passed over without looking at the
 * buffer there (pages never touched), unless a repair changed its cluster. */
static void check_after_end(struct dir_ctx *d, uint32_t eod)
{
	struct vol *v = d->v;
	uint32_t per_cluster = (uint32_t)(v->csize / EXFAT_ENTRY_SIZE), junk = 0, live = 0;
	for (uint32_t k = eod + 1; k < d->nentries;) {
		uint32_t cluster = k / per_cluster, to = (cluster + 1) * per_cluster;
		if (!d->dirty[cluster]) {
			uint64_t pos = fsck_entry_pos(d, k), data, stop;
			fsck_data_extent(v, pos, pos + (uint64_t)(to - k) * EXFAT_ENTRY_SIZE, &data, &stop);
			to = k + (uint32_t)((stop - pos + EXFAT_ENTRY_SIZE - 1) / EXFAT_ENTRY_SIZE);
			k += (uint32_t)((data - pos) / EXFAT_ENTRY_SIZE);
		}
		for (; k < to; k++) {
			uint8_t t = fsck_entry_at(d, k)[0];
			junk += t != 0;
			live += (t & EXFAT_ENTRY_IN_USE) != 0;
		}
	}
	if (junk && fsck_problem(d->v, "entry-after-end", d->job->path, fsck_entry_pos(d, eod), !live,
				 "zero them", "%u entries after the end-of-directory mark (%u marked in use)", junk, live)) {
		for (uint32_t k = eod + 1; k < d->nentries; k++)
			if (fsck_entry_at(d, k)[0]) {
				memset(fsck_entry_at(d, k), 0, EXFAT_ENTRY_SIZE);
				fsck_touch(d, k, 1);
			}
	}
}

void fsck_check_dir(struct vol *v, struct dir_job *job, bool root)
{
	struct dir_ctx d = { .v = v, .job = job, .root = root };
	uint64_t bytes = (uint64_t)job->count << v->cshift;
	d.buf = calloc(1, bytes);
	d.dirty = calloc(job->count, 1);
	d.nentries = (uint32_t)(bytes / EXFAT_ENTRY_SIZE);
	if (!d.buf || !d.dirty) {
		fsck_fail_op(v, "out of memory");
		goto out;
	}
	if (fsck_read_dir(v, job, d.buf) < 0)
		goto out;
	if (root) {
		/* The bitmap and up-case table come before any name is checked. */
		for (uint32_t i = 0; i < d.nentries && fsck_entry_at(&d, i)[0] != EXFAT_ENTRY_EOD; i++) {
			uint8_t t = fsck_entry_at(&d, i)[0];
			if (t == EXFAT_ENTRY_BITMAP)
				fsck_load_bitmap(&d, i);
			else if (t == EXFAT_ENTRY_UPCASE)
				load_upcase(&d, i);
		}
		if (!v->bm_found && !v->failed) {
			fsck_problem(v, "bitmap-missing", "/", fsck_cluster_pos(v, job->clusters[0]), false, NULL,
				     "no allocation bitmap entry in the root directory");
			fsck_fail(v, "the allocation bitmap is missing");
		}
		if (!v->upcase_found) {
			/* The map is otherwise set by load_upcase, from the table or
			 * the default one; it is only needed from here on. */
			exfat_upcase_default_map(v->upcase);
			fsck_problem(v, "upcase-missing", "/", fsck_cluster_pos(v, job->clusters[0]), false, NULL,
				     "no up-case table entry in the root directory");
		}
	}
	for (uint32_t i = 0; i < d.nentries && !v->failed && !v->quit;) {
		uint8_t t = fsck_entry_at(&d, i)[0];
		if (t == EXFAT_ENTRY_EOD) {
			check_after_end(&d, i);
			break;
		}
		if (!(t & EXFAT_ENTRY_IN_USE)) {
			i++;
			continue;
		}
		switch (t) {
		case EXFAT_ENTRY_FILE:
			i += check_file_set(&d, i);
			continue;
		case EXFAT_ENTRY_BITMAP:
		case EXFAT_ENTRY_UPCASE:
			if (!root && fsck_problem(v, "misplaced-entry", job->path, fsck_entry_pos(&d, i), false,
						  "delete the entry", "%s entry outside the root directory",
						  t == EXFAT_ENTRY_BITMAP ? "allocation bitmap" : "up-case table"))
				fsck_delete_entries(&d, i, 1);
			i++;
			continue;
		case EXFAT_ENTRY_LABEL:
			if (root)
				check_label(&d, i);
			else if (fsck_problem(v, "misplaced-entry", job->path, fsck_entry_pos(&d, i), true, "delete the entry",
					      "volume label entry outside the root directory"))
				fsck_delete_entries(&d, i, 1);
			i++;
			continue;
		case EXFAT_ENTRY_GUID:
			if (!root)
				break;
			check_guid(&d, i);
			i++;
			continue;
		}
		if (t & EXFAT_ENTRY_SECONDARY) {
			/* A secondary entry with no primary before it. */
			if (fsck_problem(v, "orphan-entry", job->path, fsck_entry_pos(&d, i), true, "delete the entry",
					 "secondary entry type 0x%02x outside any entry set", t))
				fsck_delete_entries(&d, i, 1);
			i++;
		} else if (t & EXFAT_ENTRY_BENIGN) {
			/* Benign primaries other than the root's volume GUID: the
			 * specification lets readers skip them, but no other
			 * implementation accepts them, so they are reported. */
			if (fsck_problem(v, "unknown-entry", job->path, fsck_entry_pos(&d, i), false, "delete the entry",
					 "unknown benign primary entry type 0x%02x", t))
				fsck_delete_entries(&d, i, 1);
			i++;
		} else {
			if (fsck_problem(v, "unknown-entry", job->path, fsck_entry_pos(&d, i), false, "delete the entry",
					 "unknown critical entry type 0x%02x", t))
				fsck_delete_entries(&d, i, 1);
			i++;
		}
	}
	if (!v->failed)
		write_dir(&d);
out:
	fsck_name_set_free(&d.names);
	free(d.buf);
	free(d.dirty);
}
