/* dump.exfat: print an exFAT volume's on-disk structures, read-only. The
 * first three sections have exfatprogs' field names and layout, so scripts
 * written for its dump.exfat read them; what follows is kbox's own. */
#include "base/json.h"
#include "base/kbox.h"
#include "base/libraries.h"
#include "base/utf.h"
#include "exfat/exfat.h"
#include "exfat/exfat_dump.h"
#include "exfat/exfat_upcase.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static const char usage[] =
	"Usage: dump.exfat [-p PATH] [--json] DEVICE|FILE\n"
	"Print an exFAT volume's boot sector, its label, bitmap and up-case table\n"
	"entries, cluster statistics, both boot regions' state and the root\n"
	"directory's entries. Nothing is written; a mounted volume is read with a\n"
	"warning.\n"
	"\n"
	"  -p, --path PATH  dump the entry set of the file or directory PATH instead:\n"
	"                   every field, its cluster chain as runs, and whether the\n"
	"                   allocation bitmap agrees (a directory's entries too)\n"
	"      --json       print one JSON document instead of text\n"
	"  -V, --version    print the version\n"
	"  -h, --help       print this help\n"
	"\n"
	"Exit status: 0 dumped, 1 the device cannot be read, is not exFAT, or PATH\n"
	"is not found, 2 usage error.\n";

/* ---- output: aligned text fields, or the same values as JSON ------------- */

struct out {
	bool json;
	struct kb_json j;
};

/* Text fields line up at column 40, as exfatprogs' dump.exfat has them. */
static void label(const char *text)
{
	size_t col = strlen(text);
	fputs(text, stdout);
	do
		putchar('\t');
	while ((col = (col / 8 + 1) * 8) < 40);
}

static void section(struct out *o, const char *title, const char *key)
{
	if (o->json) {
		if (key) {
			kb_json_key(&o->j, key);
			kb_json_begin_object(&o->j);
		}
		return;
	}
	size_t len = strlen(title) + 2, left = len < 53 ? (53 - len) / 2 : 0;
	printf("%.*s %s %.*s\n", (int)left, "-------------------------", title,
	       (int)(53 - len - left), "-------------------------");
}

static void section_end(struct out *o, bool object)
{
	if (o->json) {
		if (object)
			kb_json_end_object(&o->j);
	} else {
		putchar('\n');
	}
}

static void f_uint(struct out *o, const char *text, const char *key, uint64_t v)
{
	if (o->json) {
		kb_json_kv_uint(&o->j, key, v);
		return;
	}
	label(text);
	printf("%" PRIu64 "\n", v);
}

/* width -1: bare hexadecimal digits, without 0x. */
static void f_hex(struct out *o, const char *text, const char *key, uint64_t v, int width)
{
	if (o->json) {
		kb_json_kv_uint(&o->j, key, v);
		return;
	}
	label(text);
	if (width < 0)
		printf("%" PRIx64 "\n", v);
	else
		printf("0x%0*" PRIx64 "\n", width, v);
}

static void __attribute__((format(printf, 4, 5)))
f_text(struct out *o, const char *text, const char *key, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (o->json) {
		kb_json_kv_string(&o->j, key, buf);
		return;
	}
	label(text);
	printf("%s\n", buf);
}

static void f_bool(struct out *o, const char *text, const char *key, bool v, const char *yes, const char *no)
{
	if (o->json) {
		kb_json_kv_bool(&o->j, key, v);
		return;
	}
	label(text);
	printf("%s\n", v ? yes : no);
}

/* A checksum and whether it matches what is computed. */
static void f_checksum(struct out *o, const char *text, const char *key, uint64_t stored, uint64_t computed,
		       int width)
{
	if (o->json) {
		kb_json_kv_uint(&o->j, key, stored);
		char k[64];
		snprintf(k, sizeof(k), "%s_computed", key);
		kb_json_kv_uint(&o->j, k, computed);
		return;
	}
	label(text);
	if (stored == computed)
		printf("0x%0*" PRIx64 " (matches)\n", width, stored);
	else
		printf("0x%0*" PRIx64 " (computed 0x%0*" PRIx64 ")\n", width, stored, width, computed);
}

static void f_runs(struct out *o, const char *text, const struct exfat_chain *ch)
{
	if (o->json) {
		kb_json_key(&o->j, "runs");
		kb_json_begin_array(&o->j);
		for (size_t i = 0; i < ch->nruns; i++) {
			kb_json_begin_object(&o->j);
			kb_json_kv_uint(&o->j, "first", ch->runs[i].first);
			kb_json_kv_uint(&o->j, "count", ch->runs[i].count);
			kb_json_end_object(&o->j);
		}
		kb_json_end_array(&o->j);
		return;
	}
	label(text);
	if (!ch->nruns)
		fputs("none", stdout);
	for (size_t i = 0; i < ch->nruns; i++) {
		printf(i ? ", %" PRIu32 : "%" PRIu32, ch->runs[i].first);
		if (ch->runs[i].count > 1)
			printf("-%" PRIu64, (uint64_t)ch->runs[i].first + ch->runs[i].count - 1);
	}
	putchar('\n');
}

/* ---- describing entries -------------------------------------------------- */

static void attributes_text(uint16_t a, char out[6])
{
	const char letters[] = "RHSDA";
	const uint16_t bits[] = { EXFAT_ATTR_READ_ONLY, EXFAT_ATTR_HIDDEN, EXFAT_ATTR_SYSTEM,
				  EXFAT_ATTR_DIRECTORY, EXFAT_ATTR_ARCHIVE };
	for (int i = 0; i < 5; i++)
		out[i] = a & bits[i] ? letters[i] : '-';
	out[5] = '\0';
}

static const char *entry_kind(const struct exfat_entry_set *s)
{
	switch (s->type) {
	case EXFAT_ENTRY_FILE: return exfat_set_is_dir(s) ? "directory" : "file";
	case EXFAT_ENTRY_BITMAP: return "bitmap";
	case EXFAT_ENTRY_UPCASE: return "upcase";
	case EXFAT_ENTRY_LABEL: return "label";
	case EXFAT_ENTRY_GUID: return "guid";
	case EXFAT_ENTRY_PADDING: return "padding";
	case EXFAT_ENTRY_ACL: return "acl";
	case EXFAT_ENTRY_STREAM: return "stream";
	case EXFAT_ENTRY_NAME: return "name";
	case EXFAT_ENTRY_VENDOR_EXT: return "vendor-extension";
	case EXFAT_ENTRY_VENDOR_ALLOC: return "vendor-allocation";
	}
	if (s->type & EXFAT_ENTRY_SECONDARY)
		return "secondary";
	return s->type & EXFAT_ENTRY_BENIGN ? "benign" : "critical";
}

/* A label entry's text: at most 11 units, whatever CharacterCount says. */
static void label_utf8(const struct exfat_label_entry *e, char *out, size_t cap)
{
	uint16_t units[EXFAT_MAX_LABEL_LEN];
	unsigned n = e->char_count < EXFAT_MAX_LABEL_LEN ? e->char_count : EXFAT_MAX_LABEL_LEN;
	for (unsigned i = 0; i < n; i++)
		units[i] = exfat_get_le16(&e->label[i]);
	size_t len;
	if (kb_utf16_to_utf8(units, n, out, cap, &len, true) < 0)
		out[0] = '\0';
}

/* One line (or object) per entry set of a directory. */
static void print_entries(struct out *o, struct exfat_reader *r, const struct exfat_dir *d)
{
	if (o->json) {
		kb_json_key(&o->j, "entries");
		kb_json_begin_array(&o->j);
	} else {
		printf("%-12s %-5s %-3s %-17s %-5s %12s %10s  %s\n", "Offset", "Type", "N", "Kind", "Attr", "Size",
		       "Cluster", "Name");
	}
	struct exfat_entry_set s;
	for (uint32_t pos = 0; exfat_dir_next(d, &pos, &s);) {
		char name[EXFAT_MAX_NAME_LEN * 3 + 1] = "", attr[6] = "-";
		uint64_t size = 0;
		uint32_t cluster = 0;
		bool has_data = false;
		if (s.type == EXFAT_ENTRY_FILE) {
			exfat_set_name_utf8(&s, name, sizeof(name));
			attributes_text(s.attributes, attr);
			size = s.data_length, cluster = s.first_cluster, has_data = s.has_stream;
		} else if (s.type == EXFAT_ENTRY_LABEL) {
			label_utf8((const void *)s.entries, name, sizeof(name));
		} else if (s.type == EXFAT_ENTRY_BITMAP || s.type == EXFAT_ENTRY_UPCASE ||
			   s.type == EXFAT_ENTRY_VENDOR_ALLOC) {
			const struct exfat_entry *e = (const void *)s.entries;
			size = exfat_le64(e->data_length), cluster = exfat_le32(e->first_cluster), has_data = true;
		} else if (s.type == EXFAT_ENTRY_GUID) {
			exfat_guid_format(((const struct exfat_guid_entry *)s.entries)->guid, name);
		}
		bool csum_bad = s.secondary_count && !s.checksum_ok;
		bool stream_missing = s.type == EXFAT_ENTRY_FILE && !s.has_stream;
		uint64_t pos_on_disk = exfat_dir_entry_pos(r, d, s.index);
		if (o->json) {
			kb_json_begin_object(&o->j);
			kb_json_kv_uint(&o->j, "offset", pos_on_disk);
			kb_json_kv_uint(&o->j, "index", s.index);
			kb_json_kv_uint(&o->j, "type", s.type);
			kb_json_kv_string(&o->j, "kind", entry_kind(&s));
			kb_json_kv_uint(&o->j, "entries", s.count);
			if (s.type == EXFAT_ENTRY_FILE || s.type == EXFAT_ENTRY_LABEL || s.type == EXFAT_ENTRY_GUID)
				kb_json_kv_string(&o->j, s.type == EXFAT_ENTRY_GUID ? "guid" : "name", name);
			if (s.type == EXFAT_ENTRY_FILE)
				kb_json_kv_uint(&o->j, "attributes", s.attributes);
			if (has_data) {
				kb_json_kv_uint(&o->j, "size", size);
				kb_json_kv_uint(&o->j, "first_cluster", cluster);
			}
			if (s.secondary_count)
				kb_json_kv_bool(&o->j, "checksum_ok", s.checksum_ok);
			if (s.type == EXFAT_ENTRY_FILE)
				kb_json_kv_bool(&o->j, "has_stream", s.has_stream);
			kb_json_end_object(&o->j);
			continue;
		}
		char size_s[24] = "-", cluster_s[16] = "-";
		if (has_data) {
			snprintf(size_s, sizeof(size_s), "%" PRIu64, size);
			snprintf(cluster_s, sizeof(cluster_s), "%" PRIu32, cluster);
		}
		printf("0x%010" PRIx64 " 0x%02x  %-3u %-17s %-5s %12s %10s  %s%s%s\n", pos_on_disk, s.type, s.count,
		       entry_kind(&s), attr, size_s, cluster_s, name, csum_bad ? " (SetChecksum does not match)" : "",
		       stream_missing ? " (no stream extension entry)" : "");
	}
	if (o->json)
		kb_json_end_array(&o->j);
}

/* ---- the volume ---------------------------------------------------------- */

/* One of the root's entries in exfatprogs' section: its type line, or
 * "none" (JSON: an object with its type and offset, or null). Returns
 * whether it is there; root_entry_end closes it. */
static bool root_entry(struct out *o, const char *key, const char *type_text, uint64_t pos, uint8_t type)
{
	if (o->json)
		kb_json_key(&o->j, key);
	if (!pos) {
		if (o->json)
			kb_json_null(&o->j);
		else
			f_text(o, type_text, NULL, "none");
		return false;
	}
	if (o->json) {
		kb_json_begin_object(&o->j);
		f_uint(o, NULL, "offset", pos);
	}
	f_hex(o, type_text, "type", type, 0);
	return true;
}

static void root_entry_end(struct out *o)
{
	if (o->json)
		kb_json_end_object(&o->j);
}

/* exfatprogs' first three sections: boot sector, root entries, statistics. */
static void print_compatible(struct out *o, struct exfat_reader *r, struct exfat_root *root)
{
	const struct exfat_boot_sector *bs = &r->bs;
	section(o, "Dump Boot sector region", "boot_sector");
	f_uint(o, "Volume Length(sectors): ", "volume_length", exfat_le64(bs->volume_length));
	f_uint(o, "FAT Offset(sector offset): ", "fat_offset", exfat_le32(bs->fat_offset));
	f_uint(o, "FAT Length(sectors): ", "fat_length", exfat_le32(bs->fat_length));
	f_uint(o, "Cluster Heap Offset (sector offset): ", "cluster_heap_offset", exfat_le32(bs->cluster_heap_offset));
	f_uint(o, "Cluster Count: ", "cluster_count", r->cluster_count);
	f_uint(o, "Root Cluster (cluster offset): ", "root_cluster", exfat_le32(bs->root_cluster));
	f_hex(o, "Volume Serial: ", "volume_serial", exfat_le32(bs->volume_serial), 0);
	f_uint(o, "Sector Size Bits: ", "sector_size_bits", bs->sector_shift);
	f_uint(o, "Sector per Cluster bits: ", "sector_per_cluster_bits", bs->cluster_shift);
	/* The rest of the boot sector: text after the compatible sections. */
	if (o->json) {
		f_uint(o, NULL, "partition_offset", exfat_le64(bs->partition_offset));
		f_uint(o, NULL, "fs_revision", exfat_le16(bs->fs_revision));
		f_uint(o, NULL, "volume_flags", exfat_le16(bs->volume_flags));
		f_uint(o, NULL, "number_of_fats", bs->number_of_fats);
		f_uint(o, NULL, "drive_select", bs->drive_select);
		f_uint(o, NULL, "percent_in_use", bs->percent_in_use);
	}
	section_end(o, true);

	char text[64];
	section(o, "Dump Root entries", NULL);
	if (root_entry(o, "label", "Volume entry type: ", root->label_pos, root->label.type)) {
		label_utf8(&root->label, text, sizeof(text));
		f_text(o, "Volume label: ", "label", "%s", text);
		f_uint(o, "Volume label character count: ", "character_count", root->label.char_count);
		root_entry_end(o);
	}
	if (root_entry(o, "bitmap", "Bitmap entry type: ", root->bitmap_pos, root->bitmap.type)) {
		/* exfatprogs prints the start clusters in hexadecimal, without 0x. */
		f_hex(o, "Bitmap start cluster: ", "first_cluster", exfat_le32(root->bitmap.first_cluster), -1);
		f_uint(o, "Bitmap size: ", "size", exfat_le64(root->bitmap.data_length));
		if (o->json) {
			f_uint(o, NULL, "flags", root->bitmap.flags);
			f_runs(o, NULL, &root->bitmap_chain);
			kb_json_kv_string(&o->j, "chain_end", exfat_chain_end_name(root->bitmap_chain.end));
		}
		root_entry_end(o);
	}
	if (root_entry(o, "upcase", "Upcase table entry type: ", root->upcase_pos, root->upcase.type)) {
		f_hex(o, "Upcase table start cluster: ", "first_cluster", exfat_le32(root->upcase.first_cluster), -1);
		f_uint(o, "Upcase table size: ", "size", exfat_le64(root->upcase.data_length));
		if (o->json) {
			kb_json_kv_uint(&o->j, "table_checksum", exfat_le32(root->upcase.table_checksum));
			kb_json_kv_string(&o->j, "problem", root->upcase_problem);
		}
		root_entry_end(o);
	}
	section_end(o, false);

	uint64_t used = exfat_root_bitmap_used(r, root);
	section(o, "Show the statistics", "statistics");
	f_uint(o, "Cluster size:  ", "cluster_size", r->cluster_size);
	f_uint(o, "Total Clusters: ", "total_clusters", r->cluster_count);
	f_uint(o, "Free Clusters: ", "free_clusters", r->cluster_count - used);
	if (o->json) {
		f_uint(o, NULL, "used_clusters", used);
		kb_json_end_object(&o->j);
	}
}

static const char *region_text(const struct exfat_region_state *s, char *buf, size_t len)
{
	if (!s->problem)
		return "sound";
	snprintf(buf, len, "damaged: %s", s->problem);
	return buf;
}

static void print_region(struct out *o, const char *text, const char *key, const struct exfat_region_state *s)
{
	char buf[160];
	if (!o->json) {
		f_text(o, text, NULL, "%s", region_text(s, buf, sizeof(buf)));
		return;
	}
	kb_json_key(&o->j, key);
	kb_json_begin_object(&o->j);
	kb_json_kv_bool(&o->j, "sound", !s->problem);
	kb_json_kv_string(&o->j, "problem", s->problem);
	kb_json_kv_uint(&o->j, "sector_size", s->sector_size);
	kb_json_kv_uint(&o->j, "checksum", s->stored_checksum);
	kb_json_kv_uint(&o->j, "checksum_computed", s->computed_checksum);
	kb_json_end_object(&o->j);
}

/* kbox's sections: the rest of the boot sector, both regions, the root. */
static void print_details(struct out *o, struct exfat_reader *r, struct exfat_root *root)
{
	const struct exfat_boot_sector *bs = &r->bs;
	if (!o->json)
		putchar('\n');
	section(o, "Boot regions", "boot_regions");
	if (!o->json) {
		f_uint(o, "Partition Offset(sectors): ", NULL, exfat_le64(bs->partition_offset));
		f_text(o, "File System Revision: ", NULL, "%u.%02u", exfat_le16(bs->fs_revision) >> 8,
		       exfat_le16(bs->fs_revision) & 0xff);
		f_hex(o, "Volume Flags: ", NULL, exfat_le16(bs->volume_flags), 4);
		f_uint(o, "Number of FATs: ", NULL, bs->number_of_fats);
		f_hex(o, "Drive Select: ", NULL, bs->drive_select, 2);
		f_uint(o, "Percent In Use: ", NULL, bs->percent_in_use);
		const struct exfat_region_state *in_use = r->backup_in_use ? &r->backup : &r->main;
		f_checksum(o, "Boot Checksum: ", NULL, in_use->stored_checksum, in_use->computed_checksum, 8);
	}
	print_region(o, "Main boot region: ", "main", &r->main);
	print_region(o, "Backup boot region: ", "backup", &r->backup);
	f_bool(o, "Regions the same: ", "regions_equal", !r->regions_differ, "yes", "no");
	f_text(o, "Boot region in use: ", "in_use", "%s", r->backup_in_use ? "backup" : "main");
	section_end(o, true);

	section(o, "Root directory", "root");
	f_runs(o, "Root directory clusters: ", &root->dir.chain);
	f_text(o, "Root chain end: ", "chain_end", "%s", exfat_chain_end_name(root->dir.chain.end));
	if (root->upcase_pos)
		f_checksum(o, "Upcase table checksum: ", "upcase_checksum", exfat_le32(root->upcase.table_checksum),
			   root->upcase_computed_checksum, 8);
	f_text(o, "Upcase table in use: ", "upcase_in_use", "%s%s%s", root->upcase_problem ? "default (" : "volume's",
	       root->upcase_problem ? root->upcase_problem : "", root->upcase_problem ? ")" : "");
	if (root->guid_pos) {
		char guid[37];
		exfat_guid_format(root->guid.guid, guid);
		f_text(o, "Volume GUID: ", "volume_guid", "%s", guid);
	}
	print_entries(o, r, &root->dir);
	if (o->json)
		kb_json_end_object(&o->j);
}

/* ---- one entry set (-p) -------------------------------------------------- */

static void f_time(struct out *o, const char *text, const char *key, uint32_t stamp, uint8_t ms10, uint8_t utc)
{
	int64_t sec;
	long nsec;
	bool valid = exfat_time_to_unix(stamp, ms10, utc, &sec, &nsec) == 0;
	char when[80];
	int off = utc & 0x7f;
	if (off & 0x40)
		off -= 0x80;
	off *= 15;
	snprintf(when, sizeof(when), "%04u-%02u-%02u %02u:%02u:%02u.%02u", (stamp >> 25) + 1980, (stamp >> 21) & 0xf,
		 (stamp >> 16) & 0x1f, (stamp >> 11) & 0x1f, (stamp >> 5) & 0x3f, (stamp & 0x1f) * 2 + ms10 / 100,
		 ms10 % 100);
	if (o->json) {
		kb_json_key(&o->j, key);
		kb_json_begin_object(&o->j);
		kb_json_kv_uint(&o->j, "raw", stamp);
		kb_json_kv_uint(&o->j, "increment_10ms", ms10);
		kb_json_kv_uint(&o->j, "utc_offset", utc);
		kb_json_kv_string(&o->j, "local", when);
		kb_json_key(&o->j, "unix");
		if (valid)
			kb_json_int(&o->j, sec);
		else
			kb_json_null(&o->j);
		kb_json_end_object(&o->j);
		return;
	}
	char zone[32] = " (no UTC offset)";
	if (utc & 0x80)
		snprintf(zone, sizeof(zone), " UTC%c%02d:%02d", off < 0 ? '-' : '+', abs(off) / 60, abs(off) % 60);
	f_text(o, text, NULL, "%s%s%s (0x%08x, 10ms %u, offset 0x%02x)", when, zone, valid ? "" : " invalid", stamp,
	       ms10, utc);
}

static void print_file_entry(struct out *o, const struct exfat_entry_set *s)
{
	const struct exfat_file_entry *f = (const void *)s->entries;
	char attr[6];
	attributes_text(s->attributes, attr);
	section(o, "File entry", "file");
	f_hex(o, "Entry type: ", "type", f->type, 2);
	f_uint(o, "Secondary count: ", "secondary_count", f->secondary_count);
	f_uint(o, "Secondary entries present: ", "secondary_present", s->count - 1);
	f_checksum(o, "Set checksum: ", "set_checksum", s->stored_checksum, s->computed_checksum, 4);
	if (o->json)
		kb_json_kv_uint(&o->j, "attributes", s->attributes);
	else
		f_text(o, "File attributes: ", NULL, "0x%04x (%s)", s->attributes, attr);
	f_time(o, "Create time: ", "create_time", exfat_le32(f->create_time), f->create_10ms, f->create_utc_offset);
	f_time(o, "Modify time: ", "modify_time", exfat_le32(f->modify_time), f->modify_10ms, f->modify_utc_offset);
	f_time(o, "Access time: ", "access_time", exfat_le32(f->access_time), 0, f->access_utc_offset);
	section_end(o, true);
}

static void print_stream_entry(struct out *o, const struct exfat_root *root, const struct exfat_entry_set *s)
{
	if (!s->has_stream) {
		if (o->json) {
			kb_json_key(&o->j, "stream");
			kb_json_null(&o->j);
		} else {
			printf("(no stream extension entry follows the file entry)\n\n");
		}
		return;
	}
	uint16_t up[EXFAT_MAX_NAME_LEN];
	exfat_upcase_name(root->upcase_map, s->name, s->name_len, up);
	section(o, "Stream extension entry", "stream");
	f_hex(o, "Entry type: ", "type", EXFAT_ENTRY_STREAM, 2);
	if (o->json)
		kb_json_kv_uint(&o->j, "flags", s->stream_flags);
	else
		f_text(o, "General secondary flags: ", NULL, "0x%02x (%s%s)", s->stream_flags,
		       s->stream_flags & EXFAT_SF_ALLOC_POSSIBLE ? "allocation possible" : "no allocation",
		       s->stream_flags & EXFAT_SF_NO_FAT_CHAIN ? ", no FAT chain" : "");
	f_uint(o, "Name length: ", "name_length", s->name_length);
	f_checksum(o, "Name hash: ", "name_hash", s->stored_hash, exfat_name_hash(up, s->name_len), 4);
	f_uint(o, "Valid data length: ", "valid_data_length", s->valid_data_length);
	f_uint(o, "First cluster: ", "first_cluster", s->first_cluster);
	f_uint(o, "Data length: ", "data_length", s->data_length);
	section_end(o, true);
}

/* The other entries of the set: names, vendor entries, whatever is there. */
static void print_secondaries(struct out *o, struct exfat_reader *r, const struct exfat_dir *d,
			      const struct exfat_entry_set *s)
{
	char name[EXFAT_MAX_NAME_LEN * 3 + 1];
	exfat_set_name_utf8(s, name, sizeof(name));
	section(o, "Secondary entries", NULL);
	if (o->json) {
		kb_json_kv_string(&o->j, "name", name);
		kb_json_key(&o->j, "secondaries");
		kb_json_begin_array(&o->j);
	} else {
		f_text(o, "Name: ", NULL, "%s", name);
		f_uint(o, "Name entries: ", NULL, s->name_entries);
	}
	for (uint32_t k = 1; k < s->count; k++) {
		const uint8_t *e = s->entries + (size_t)k * EXFAT_ENTRY_SIZE;
		uint64_t pos = exfat_dir_entry_pos(r, d, s->index + k);
		if (o->json) {
			kb_json_begin_object(&o->j);
			kb_json_kv_uint(&o->j, "offset", pos);
			kb_json_kv_uint(&o->j, "type", e[0]);
			kb_json_kv_uint(&o->j, "flags", e[1]);
			kb_json_end_object(&o->j);
		} else {
			char text[48];
			snprintf(text, sizeof(text), "Entry %u: ", k + 1);
			f_text(o, text, NULL, "type 0x%02x, flags 0x%02x at 0x%" PRIx64, e[0], e[1], pos);
		}
	}
	if (o->json)
		kb_json_end_array(&o->j);
	else
		putchar('\n');
}

/* The chain of a set's data as runs, and how the bitmap marks them. */
static void print_chain(struct out *o, struct exfat_reader *r, struct exfat_root *root,
			const struct exfat_chain *ch, uint64_t needed)
{
	section(o, "Cluster chain", "chain");
	f_uint(o, "Clusters: ", "clusters", ch->clusters);
	f_uint(o, "Clusters the size needs: ", "clusters_needed", needed);
	f_runs(o, "Runs: ", ch);
	f_text(o, "Chain end: ", "end", "%s", exfat_chain_end_name(ch->end));
	if (ch->end != EXFAT_CHAIN_COMPLETE)
		f_hex(o, "Chain end value: ", "end_value", ch->value, 8);
	f_bool(o, "FAT chain goes on: ", "longer", ch->longer, "yes (no end-of-chain mark after the size)", "no");
	section_end(o, true);

	uint64_t free_count = 0, unknown = 0;
	section(o, "Allocation bitmap", "bitmap");
	if (o->json) {
		kb_json_key(&o->j, "free_runs");
		kb_json_begin_array(&o->j);
	}
	bool listed = false;
	for (size_t i = 0; i < ch->nruns; i++) {
		for (uint64_t k = 0; k < ch->runs[i].count;) {
			uint32_t c = ch->runs[i].first + (uint32_t)k;
			int bit = exfat_root_bitmap_bit(r, root, c);
			unknown += bit < 0;
			if (bit != 0) {
				k++;
				continue;
			}
			uint64_t n = 1;
			while (k + n < ch->runs[i].count && exfat_root_bitmap_bit(r, root, c + (uint32_t)n) == 0)
				n++;
			free_count += n;
			if (o->json) {
				kb_json_begin_object(&o->j);
				kb_json_kv_uint(&o->j, "first", c);
				kb_json_kv_uint(&o->j, "count", n);
				kb_json_end_object(&o->j);
			} else {
				if (!listed)
					label("Runs marked free: ");
				printf(listed ? ", %" PRIu32 : "%" PRIu32, c);
				if (n > 1)
					printf("-%" PRIu64, (uint64_t)c + n - 1);
				listed = true;
			}
			k += n;
		}
	}
	if (o->json)
		kb_json_end_array(&o->j);
	else if (listed)
		putchar('\n');
	f_uint(o, "Clusters marked in use: ", "clusters_in_use", ch->clusters - free_count - unknown);
	f_uint(o, "Clusters marked free: ", "clusters_free", free_count);
	if (unknown)
		f_uint(o, "Clusters without a bit: ", "clusters_unknown", unknown);
	f_bool(o, "Bitmap agrees: ", "agrees", !free_count && !unknown, "yes", "no");
	section_end(o, true);
}

static int dump_path(struct out *o, struct exfat_reader *r, struct exfat_root *root, const char *dev,
		     const char *path)
{
	struct exfat_dir parent, dir = { 0 };
	struct exfat_entry_set s;
	char err[512];
	int found = exfat_lookup(r, root, path, &parent, &s, err, sizeof(err));
	if (found < 0) {
		kb_warn("%s: %s", dev, err);
		return EXIT_FAILED;
	}
	if (o->json) {
		kb_json_begin_object(&o->j);
		kb_json_kv_string(&o->j, "device", dev);
		kb_json_kv_string(&o->j, "path", path);
	} else {
		section(o, "Entry set", NULL);
		f_text(o, "Path: ", NULL, "%s", path);
	}
	if (found == 0) {
		/* The root has no entry set: its chain and entries. */
		if (o->json)
			kb_json_kv_string(&o->j, "kind", "root");
		else
			f_text(o, "Kind: ", NULL, "root directory (no entry set)"), putchar('\n');
		print_chain(o, r, root, &root->dir.chain, root->dir.chain.clusters);
		print_entries(o, r, &root->dir);
	} else {
		f_text(o, "Kind: ", "kind", "%s", entry_kind(&s));
		f_hex(o, "Entry set offset: ", "offset", exfat_dir_entry_pos(r, &parent, s.index), 0);
		f_uint(o, "Entries in the set: ", "entries", s.count);
		if (!o->json)
			putchar('\n');
		print_file_entry(o, &s);
		print_stream_entry(o, root, &s);
		print_secondaries(o, r, &parent, &s);
		struct exfat_chain ch = { 0 };
		uint64_t needed = exfat_reader_clusters_for(r, s.data_length);
		if (s.has_stream && s.data_length &&
		    exfat_chain_follow(r, s.first_cluster, s.stream_flags & EXFAT_SF_NO_FAT_CHAIN, needed, 0, &ch) < 0)
			kb_die(EXIT_FAILED, "out of memory");
		print_chain(o, r, root, &ch, needed);
		exfat_chain_free(&ch);
		if (exfat_set_is_dir(&s) && s.has_stream && s.data_length) {
			if (exfat_dir_read(r, s.first_cluster, s.stream_flags & EXFAT_SF_NO_FAT_CHAIN, s.data_length,
					   &dir) < 0)
				kb_die_errno(EXIT_FAILED, "%s: %s: cannot read the directory", dev, path);
			print_entries(o, r, &dir);
		}
		exfat_dir_free(&parent);
	}
	exfat_dir_free(&dir);
	if (o->json) {
		kb_json_end_object(&o->j);
		kb_json_end_line(&o->j);
	}
	return EXIT_OK;
}

static int dump_exfat_main(int argc, char **argv)
{
	enum { OPT_JSON = 256 };
	static const struct option longopts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct out o = { 0 };
	const char *path = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "p:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': path = optarg; break;
		case OPT_JSON: o.json = true; break;
		case 'V': kb_version_exit();
		case 'h': kb_help_exit();
		default: kb_usage_error("unknown option");
		}
	}
	if (optind + 1 != argc)
		kb_usage_error(optind >= argc ? "missing DEVICE" : "too many arguments");
	const char *dev = argv[optind];

	bool busy;
	char mounted[4096], err[512];
	struct exfat_reader r;
	if (exfat_reader_open_path(&r, dev, &busy, mounted, sizeof(mounted), err, sizeof(err)) < 0)
		kb_die(EXIT_FAILED, "%s", err);
	if (mounted[0])
		kb_warn("warning: %s is mounted on %s: the dump may show stale data", dev, mounted);
	if (busy)
		kb_warn("warning: %s is being written by another program: the dump may see it half-way", dev);
	struct exfat_root root;
	if (exfat_root_load(&r, &root) < 0)
		kb_die_errno(EXIT_FAILED, "%s: cannot read the root directory", dev);
	kb_json_init(&o.j, stdout);
	int rc = EXIT_OK;
	if (path) {
		rc = dump_path(&o, &r, &root, dev, path);
	} else {
		if (o.json) {
			kb_json_begin_object(&o.j);
			kb_json_kv_string(&o.j, "device", dev);
		}
		print_compatible(&o, &r, &root);
		print_details(&o, &r, &root);
		if (o.json) {
			kb_json_end_object(&o.j);
			kb_json_end_line(&o.j);
		}
	}
	if (r.error && rc == EXIT_OK) {
		kb_warn("%s: read error: %s (what could not be read shows as zeros)", dev, strerror(r.error));
		rc = EXIT_FAILED;
	}
	exfat_root_free(&root);
	exfat_reader_free(&r);
	if (fflush(stdout) != 0 || ferror(stdout))
		kb_die_errno(EXIT_FAILED, "standard output");
	return rc;
}

const struct applet applet_dump_exfat = {
	.name = "dump.exfat",
	.main = dump_exfat_main,
	.summary = "print an exFAT volume's on-disk structures (read-only)",
	.usage = usage,
	.dir = "sbin",
	.usage_exit = EXIT_USAGE,
	.libs = KB_LIB_BIT(KB_LIB_MOUNT),
};
