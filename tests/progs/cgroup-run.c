/* Drives libcommon's "run a command in a fresh cgroup and wait for it" API
 * the way another applet would:
 *   cgroup-run PARENT COMMAND [ARGS...]
 * creates a fresh cgroup under PARENT (relative to the cgroup2 root), runs
 * COMMAND there, prints "cgroup PATH", "status N" and "cpu_usage_known 0|1"
 * on stderr, removes the cgroup (killing leftovers) and exits with N. */
#include "cgroup/cgroup.h"
#include "base/kbox.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: cgroup-run PARENT COMMAND [ARGS...]\n");
		return 2;
	}
	static const int forward[] = { SIGINT, SIGTERM, 0 };
	struct kb_cgroup_mount m;
	struct kb_cgroup_err e;
	char cg[KB_CGROUP_PATH_MAX];
	if (kb_cgroup_find_mount(&m, NULL, &e) ||
	    kb_cgroup_create_unique(&m, argv[1], "run", cg, sizeof(cg), &e))
		kb_die(125, "%s", e.msg);
	struct kb_cgroup_run r = { .mount = &m, .cgroup = cg, .argv = argv + 2, .forward = forward };
	if (kb_cgroup_spawn(&r, &e)) {
		kb_warn("%s", e.msg);
		kb_cgroup_remove(cg, &e);
		return 125;
	}
	int status = kb_cgroup_wait(&r);
	struct kb_cgroup_stats st;
	kb_cgroup_read_stats(cg, &st);
	fprintf(stderr, "cgroup %s\nstatus %d\ncpu_usage_known %d\n", cg, status, st.has_cpu);
	if (kb_cgroup_remove(cg, &e))
		kb_die(125, "%s", e.msg);
	return status;
}
