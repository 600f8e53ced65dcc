/* A small streaming JSON writer used by every --json output.
 * Compact output; strings are escaped (control characters as \uXXXX) and
 * invalid UTF-8 is replaced with U+FFFD so the output is always valid JSON.
 * Kernel interface: none (writes to a stdio stream). */
#ifndef KBOX_JSON_H
#define KBOX_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KB_JSON_MAX_DEPTH 32

struct kb_json {
	FILE *f;
	int depth;
	bool need_comma[KB_JSON_MAX_DEPTH];
	bool after_key;
};

void kb_json_init(struct kb_json *j, FILE *f);
void kb_json_begin_object(struct kb_json *j);
void kb_json_end_object(struct kb_json *j);
void kb_json_begin_array(struct kb_json *j);
void kb_json_end_array(struct kb_json *j);
void kb_json_key(struct kb_json *j, const char *key);
void kb_json_string(struct kb_json *j, const char *s);          /* NULL writes null */
void kb_json_string_len(struct kb_json *j, const char *s, size_t len);
void kb_json_int(struct kb_json *j, int64_t v);
void kb_json_uint(struct kb_json *j, uint64_t v);
void kb_json_double(struct kb_json *j, double v);               /* non-finite: null */
void kb_json_bool(struct kb_json *j, bool v);
void kb_json_null(struct kb_json *j);
/* Ends a top-level value: newline and flush (one JSON document per line). */
void kb_json_end_line(struct kb_json *j);

/* key + value shorthands */
void kb_json_kv_string(struct kb_json *j, const char *key, const char *s);
void kb_json_kv_int(struct kb_json *j, const char *key, int64_t v);
void kb_json_kv_uint(struct kb_json *j, const char *key, uint64_t v);
void kb_json_kv_double(struct kb_json *j, const char *key, double v);
void kb_json_kv_bool(struct kb_json *j, const char *key, bool v);

/* Writes s as a quoted, escaped JSON string to f. */
void kb_json_write_string(FILE *f, const char *s, size_t len);

#endif
