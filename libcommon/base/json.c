/* Streaming JSON writer. */
#include "base/json.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

void kb_json_init(struct kb_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Separator before a value: a comma unless first in its container or after a key. */
static void before_value(struct kb_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0 && j->depth <= KB_JSON_MAX_DEPTH) {
		if (j->need_comma[j->depth - 1])
			fputc(',', j->f);
		j->need_comma[j->depth - 1] = true;
	}
}

static void open_container(struct kb_json *j, char c)
{
	before_value(j);
	fputc(c, j->f);
	if (j->depth < KB_JSON_MAX_DEPTH)
		j->need_comma[j->depth] = false;
	j->depth++;
}

static void close_container(struct kb_json *j, char c)
{
	if (j->depth > 0)
		j->depth--;
	fputc(c, j->f);
}

void kb_json_begin_object(struct kb_json *j) { open_container(j, '{'); }
void kb_json_end_object(struct kb_json *j) { close_container(j, '}'); }
void kb_json_begin_array(struct kb_json *j) { open_container(j, '['); }
void kb_json_end_array(struct kb_json *j) { close_container(j, ']'); }

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t left)
{
	unsigned c = s[0];
	size_t n;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2; cp = c & 0x1f; min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3; cp = c & 0x0f; min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4; cp = c & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void kb_json_write_string(FILE *f, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	fputc('"', f);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			switch (c) {
			case '\n': fputs("\\n", f); break;
			case '\t': fputs("\\t", f); break;
			case '\r': fputs("\\r", f); break;
			case '\b': fputs("\\b", f); break;
			case '\f': fputs("\\f", f); break;
			default: fprintf(f, "\\u%04x", c); break;
			}
			i++;
		} else {
			size_t n = utf8_valid_len(s + i, len - i);
			if (n == 0) {
				fputs("\\ufffd", f);
				i++;
			} else {
				fwrite(s + i, 1, n, f);
				i += n;
			}
		}
	}
	fputc('"', f);
}

void kb_json_key(struct kb_json *j, const char *key)
{
	before_value(j);
	kb_json_write_string(j->f, key, strlen(key));
	fputc(':', j->f);
	j->after_key = true;
}

void kb_json_string_len(struct kb_json *j, const char *s, size_t len)
{
	before_value(j);
	kb_json_write_string(j->f, s, len);
}

void kb_json_string(struct kb_json *j, const char *s)
{
	if (!s) {
		kb_json_null(j);
		return;
	}
	kb_json_string_len(j, s, strlen(s));
}

void kb_json_int(struct kb_json *j, int64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRId64, v);
}

void kb_json_uint(struct kb_json *j, uint64_t v)
{
	before_value(j);
	fprintf(j->f, "%" PRIu64, v);
}

void kb_json_double(struct kb_json *j, double v)
{
	before_value(j);
	if (isfinite(v))
		fprintf(j->f, "%.17g", v);
	else
		fputs("null", j->f);
}

void kb_json_bool(struct kb_json *j, bool v)
{
	before_value(j);
	fputs(v ? "true" : "false", j->f);
}

void kb_json_null(struct kb_json *j)
{
	before_value(j);
	fputs("null", j->f);
}

void kb_json_end_line(struct kb_json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
	j->depth = 0;
	j->after_key = false;
}

void kb_json_kv_string(struct kb_json *j, const char *key, const char *s) { kb_json_key(j, key); kb_json_string(j, s); }
void kb_json_kv_int(struct kb_json *j, const char *key, int64_t v) { kb_json_key(j, key); kb_json_int(j, v); }
void kb_json_kv_uint(struct kb_json *j, const char *key, uint64_t v) { kb_json_key(j, key); kb_json_uint(j, v); }
void kb_json_kv_double(struct kb_json *j, const char *key, double v) { kb_json_key(j, key); kb_json_double(j, v); }
void kb_json_kv_bool(struct kb_json *j, const char *key, bool v) { kb_json_key(j, key); kb_json_bool(j, v); }
