/* Drives libcommon's parsers and JSON writer from the command line so the
 * bats suite can check them:  libcommon-test size|duration|u64|json-string ARG */
#include "base/json.h"
#include "base/kbox.h"
#include "base/parse.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: libcommon-test size|duration|u64|json-string ARG\n");
		return 2;
	}
	uint64_t v;
	int rc = -1;
	if (!strcmp(argv[1], "size"))
		rc = kb_parse_size(argv[2], &v);
	else if (!strcmp(argv[1], "duration"))
		rc = kb_parse_duration(argv[2], 1000000, &v);   /* bare numbers: ms */
	else if (!strcmp(argv[1], "u64"))
		rc = kb_parse_u64(argv[2], &v);
	else if (!strcmp(argv[1], "json-string")) {
		/* \xNN in ARG stands for a raw byte, so tests can pass any byte. */
		char buf[4096];
		size_t n = 0;
		for (const char *s = argv[2]; *s && n < sizeof(buf); s++) {
			unsigned b;
			if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &b) == 1) {
				buf[n++] = (char)b;
				s += 3;
			} else {
				buf[n++] = *s;
			}
		}
		struct kb_json j;
		kb_json_init(&j, stdout);
		kb_json_begin_object(&j);
		kb_json_key(&j, "s");
		kb_json_string_len(&j, buf, n);
		kb_json_kv_uint(&j, "n", n);
		kb_json_end_object(&j);
		kb_json_end_line(&j);
		return 0;
	} else {
		return 2;
	}
	if (rc) {
		printf("error %s\n", errno == ERANGE ? "ERANGE" : "EINVAL");
		return 1;
	}
	printf("%" PRIu64 "\n", v);
	return 0;
}
