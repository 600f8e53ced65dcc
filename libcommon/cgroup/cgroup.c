/* cgroup v2 access: mount discovery (statfs, then the mount table), control
 * files with diagnosed failures, creation/removal, statistics, and spawning a
 * command directly inside a cgroup with clone3(CLONE_INTO_CGROUP). */
#include "cgroup/cgroup.h"
#include "base/clock.h"
#include "base/libraries.h"
#include "base/readfile.h"
#include "base/syscalls.h"
#include "blockdev/mounted.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int fail(struct kb_cgroup_err *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Fills e (when given) and returns -1 with errno = err. */
static int fail(struct kb_cgroup_err *e, int err, const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	errno = err;
	return -1;
}

/* Appends the n bytes at s to out, which holds *at bytes, and keeps it
 * NUL-terminated; false, appending nothing, when they do not fit.  The paths
 * on the way to a spawn are built with this, not snprintf: the printf
 * machinery is a large piece of code that each start would run cold. */
static bool append(char *out, size_t len, size_t *at, const char *s, size_t n)
{
	if (*at + n >= len)
		return false;
	memcpy(out + *at, s, n);
	*at += n;
	out[*at] = '\0';
	return true;
}

static int join(char *out, size_t len, const char *dir, const char *name)
{
	size_t at = 0;
	if (!append(out, len, &at, dir, strlen(dir)) || !append(out, len, &at, "/", 1) ||
	    !append(out, len, &at, name, strlen(name))) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ---- the mount ------------------------------------------------------------ */

/* Copies s (NULL: "") into out, cut to fit. */
static void copy_str(char *out, size_t len, const char *s)
{
	if (!len)
		return;
	size_t n = s ? strlen(s) : 0;
	if (n >= len)
		n = len - 1;
	memcpy(out, s ? s : "", n);
	out[n] = '\0';
}

/* Whether a comma-separated option list has the option. */
static bool option_listed(const char *options, const char *option)
{
	size_t n = strlen(option);
	for (const char *s = options ? options : ""; *s;) {
		const char *end = strchrnul(s, ',');
		if ((size_t)(end - s) == n && !strncmp(s, option, n))
			return true;
		s = *end ? end + 1 : end;
	}
	return false;
}

static bool is_cgroup2(const char *dir)
{
	struct statfs sf;
	return statfs(dir, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

static int first_cgroup2(const struct kb_mount *mnt, void *arg)
{
	struct kb_cgroup_mount *m = arg;
	copy_str(m->path, sizeof(m->path), mnt->target);
	copy_str(m->options, sizeof(m->options), mnt->fs_options);
	m->options_read = true;
	return 1;
}

/* Drops the last component of an absolute path; false at "/". */
static bool to_parent(char *dir)
{
	char *slash = strrchr(dir, '/');
	if (!slash || !strcmp(dir, "/"))
		return false;
	slash[slash == dir] = '\0';
	return true;
}

/* The mount point of the cgroup2 file system an absolute path lies on (the
 * path, or its nearest existing ancestor for a cgroup not yet created): its
 * topmost ancestor still on cgroup2. Found with statfs alone, so a cgroup
 * named by its full path costs no mount table. False when it is not on
 * cgroup2, or has "." or ".." components (left to kb_cgroup_resolve). */
static bool cgroup2_mount_of(const char *path, char *out, size_t len)
{
	char dir[KB_CGROUP_PATH_MAX];
	size_t n = 0;
	if (path[0] != '/' || strstr(path, "/./") || strstr(path, "/../") ||
	    !append(dir, sizeof(dir), &n, path, strlen(path)))
		return false;
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	const char *last = strrchr(dir, '/') + 1;
	if (!strcmp(last, ".") || !strcmp(last, ".."))
		return false;
	struct statfs sf;
	while (statfs(dir, &sf) < 0)
		if (errno != ENOENT || !to_parent(dir))
			return false;
	if (sf.f_type != CGROUP2_SUPER_MAGIC)
		return false;
	do
		copy_str(out, len, dir);
	while (to_parent(dir) && is_cgroup2(dir));
	return true;
}

int kb_cgroup_find_mount(struct kb_cgroup_mount *m, const char *cgroup, struct kb_cgroup_err *e)
{
	static const char *const usual[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	m->options[0] = '\0';
	m->options_read = false;
	if (cgroup && cgroup2_mount_of(cgroup, m->path, sizeof(m->path)))
		return 0;
	/* statfs sees what is mounted on top, as the mount table's last entry would. */
	for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++)
		if (is_cgroup2(usual[i])) {
			copy_str(m->path, sizeof(m->path), usual[i]);
			return 0;
		}
	int rc = kb_mounts_each("cgroup2", first_cgroup2, m);
	if (rc < 0)
		return fail(e, errno ? errno : EIO, "cannot read /proc/self/mountinfo: %s", strerror(errno));
	if (rc == 0)
		return fail(e, ENOENT, "no cgroup2 file system is mounted (mount -t cgroup2 none /sys/fs/cgroup, or give --root)");
	return 0;
}

struct options_search {
	struct kb_cgroup_mount *m;
	size_t best;               /* length of the longest matching target + 1 */
};

/* The mount holding m->path (which --root may set below a mount point): the
 * longest target that is the path or one of its parents; for one target the
 * last mount, the visible one. */
static int options_at(const struct kb_mount *mnt, void *arg)
{
	struct options_search *os = arg;
	const char *target = mnt->target, *path = os->m->path;
	size_t tl = strlen(target);
	bool holds = !strcmp(target, "/") ||
		     (!strncmp(path, target, tl) && (path[tl] == '\0' || path[tl] == '/'));
	if (holds && tl + 1 >= os->best) {
		os->best = tl + 1;
		copy_str(os->m->options, sizeof(os->m->options), mnt->fs_options);
	}
	return 0;
}

int kb_cgroup_use_root(struct kb_cgroup_mount *m, const char *dir, struct kb_cgroup_err *e)
{
	char real[KB_CGROUP_PATH_MAX];
	if (!realpath(dir, real))
		return fail(e, errno, "%s: %s", dir, strerror(errno));
	errno = 0;
	if (!is_cgroup2(real))
		return fail(e, errno ? errno : EMEDIUMTYPE, errno ? "%s: %s" : "%s is not a cgroup2 file system",
			    dir, strerror(errno));
	copy_str(m->path, sizeof(m->path), real);
	m->options[0] = '\0';
	m->options_read = false;
	return 0;
}

const char *kb_cgroup_mount_options(struct kb_cgroup_mount *m)
{
	if (!m->options_read) {
		m->options_read = true;
		struct options_search os = { .m = m };
		kb_mounts_each("cgroup2", options_at, &os);
	}
	return m->options;
}

bool kb_cgroup_mount_has_option(struct kb_cgroup_mount *m, const char *option)
{
	return option_listed(kb_cgroup_mount_options(m), option);
}

/* Whether path, or its nearest existing ancestor, lies on a cgroup v1 mount. */
static bool in_cgroup_v1(const char *path)
{
	char dir[KB_CGROUP_PATH_MAX];
	copy_str(dir, sizeof(dir), path);
	for (;;) {
		struct statfs sf;
		if (statfs(dir, &sf) == 0)
			return sf.f_type == CGROUP_SUPER_MAGIC;
		char *slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return false;
		*slash = '\0';
	}
}

int kb_cgroup_resolve(const struct kb_cgroup_mount *m, const char *name,
		      char *out, size_t len, struct kb_cgroup_err *e)
{
	/* An empty name is an unset variable far more often than the root. */
	if (!*name)
		return fail(e, EINVAL, "empty cgroup path (/ names the root)");
	size_t ml = strlen(m->path);
	const char *rel = name;
	if (!strncmp(name, m->path, ml) && (name[ml] == '/' || name[ml] == '\0'))
		rel = name + ml;
	else if (name[0] == '/' && in_cgroup_v1(name))
		/* Otherwise taken as relative to the root (cgexec's "/job"): a path
		 * in a v1 hierarchy would silently become a new cgroup2 one. */
		return fail(e, EINVAL, "%s is in a cgroup v1 hierarchy; cgroup2 is mounted at %s", name,
			    m->path);
	size_t at = 0;
	if (!append(out, len, &at, m->path, ml))
		return fail(e, ENAMETOOLONG, "%s: cgroup path too long", name);
	for (const char *s = rel; *s;) {
		while (*s == '/')
			s++;
		if (!*s)
			break;
		const char *end = strchrnul(s, '/');
		size_t cl = end - s;
		if ((cl == 1 && s[0] == '.') || (cl == 2 && s[0] == '.' && s[1] == '.'))
			return fail(e, EINVAL, "%s: '.' and '..' are not allowed in a cgroup path", name);
		if (!append(out, len, &at, "/", 1) || !append(out, len, &at, s, cl))
			return fail(e, ENAMETOOLONG, "%s: cgroup path too long", name);
		s = end;
	}
	return 0;
}

/* ---- inspecting ----------------------------------------------------------- */

int kb_cgroup_read(const char *cgroup, const char *file, char *buf, size_t len)
{
	char path[KB_CGROUP_PATH_MAX];
	if (join(path, sizeof(path), cgroup, file))
		return -1;
	ssize_t n = kb_read_small_file(path, buf, len);
	if (n < 0)
		return -1;
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return 0;
}

int kb_cgroup_read_key(const char *cgroup, const char *file, const char *key, uint64_t *value)
{
	char buf[8192];
	if (kb_cgroup_read(cgroup, file, buf, sizeof(buf)))
		return -1;
	size_t kl = strlen(key);
	for (char *line = buf; *line;) {
		char *end = strchrnul(line, '\n');
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			*value = strtoull(line + kl + 1, NULL, 10);
			return 0;
		}
		line = *end ? end + 1 : end;
	}
	errno = ENOENT;
	return -1;
}

static int read_u64(const char *cgroup, const char *file, uint64_t *value)
{
	char buf[64], *end;
	if (kb_cgroup_read(cgroup, file, buf, sizeof(buf)))
		return -1;
	errno = 0;
	*value = strtoull(buf, &end, 10);
	if (end == buf || errno) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

bool kb_cgroup_list_has(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *s = list; *s;) {
		while (*s == ' ' || *s == '\n')
			s++;
		size_t wl = strcspn(s, " \n");
		if (wl == n && !strncmp(s, word, n))
			return true;
		s += wl;
	}
	return false;
}

int kb_cgroup_v1_hierarchy(const char *controller)
{
	/* cgroup2's "io" is the blkio subsystem of /proc/cgroups. */
	const char *subsys = !strcmp(controller, "io") ? "blkio" : controller;
	FILE *f = fopen("/proc/cgroups", "re");
	if (!f)
		return -1;
	char line[256], name[64];
	int hierarchy, result = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %d", name, &hierarchy) == 2 && !strcmp(name, subsys)) {
			result = hierarchy;
			break;
		}
	fclose(f);
	return result;
}

struct v1_lookup {
	const char *controller;
	char *out;
	size_t len;
};

/* A v1 hierarchy names its controllers among the superblock options. */
static int find_v1(const struct kb_mount *mnt, void *arg)
{
	struct v1_lookup *l = arg;
	if (!option_listed(mnt->fs_options, l->controller))
		return 0;
	copy_str(l->out, l->len, mnt->target);
	return 1;
}

void kb_cgroup_v1_mount(const char *controller, char *out, size_t len)
{
	struct v1_lookup l = { !strcmp(controller, "io") ? "blkio" : controller, out, len };
	out[0] = '\0';
	/* Only an error message asks: without libmount it says less. */
	if (!kb_lib_open(KB_LIB_MOUNT))
		return;
	kb_mounts_each("cgroup", find_v1, &l);
}

void kb_cgroup_v1_controllers(char *out, size_t len)
{
	FILE *f = fopen("/proc/cgroups", "re");
	char line[256], name[64];
	int hierarchy;
	size_t n = 0;
	out[0] = '\0';
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %d", name, &hierarchy) == 2 && name[0] != '#' && hierarchy > 0 &&
		    n + strlen(name) + 2 < len)
			n += snprintf(out + n, len - n, "%s%s", n ? " " : "", name);
	if (f)
		fclose(f);
}

int kb_cgroup_self(char *out, size_t len)
{
	char buf[8192];
	if (kb_read_small_file("/proc/self/cgroup", buf, sizeof(buf)) < 0)
		return -1;
	for (char *line = buf; *line;) {
		char *end = strchrnul(line, '\n');
		if (!strncmp(line, "0::", 3)) {
			snprintf(out, len, "%.*s", (int)(end - line - 3), line + 3);
			return 0;
		}
		line = *end ? end + 1 : end;
	}
	errno = ENOENT;
	return -1;
}

void kb_cgroup_parent(const struct kb_cgroup_mount *m, const char *cgroup, char *out, size_t len)
{
	if (!strcmp(cgroup, m->path)) {
		out[0] = '\0';
		return;
	}
	const char *slash = strrchr(cgroup, '/');
	snprintf(out, len, "%.*s", slash ? (int)(slash - cgroup) : 0, cgroup);
}

bool kb_cgroup_has_file(const char *cgroup, const char *file)
{
	char path[KB_CGROUP_PATH_MAX];
	return !join(path, sizeof(path), cgroup, file) && access(path, F_OK) == 0;
}

int kb_cgroup_has_kill(const char *cgroup)
{
	if (kb_cgroup_has_file(cgroup, "cgroup.kill"))
		return 1;
	if (kb_cgroup_has_file(cgroup, "cgroup.freeze"))
		return 0;               /* a non-root cgroup without it */
	/* The root cgroup has neither; any child tells what the kernel offers. */
	DIR *d = opendir(cgroup);
	struct dirent *de;
	int found = -1;
	while (d && found < 0 && (de = readdir(d)))
		if (de->d_type == DT_DIR && de->d_name[0] != '.') {
			char sub[KB_CGROUP_PATH_MAX];
			if (!join(sub, sizeof(sub), cgroup, de->d_name))
				found = kb_cgroup_has_file(sub, "cgroup.kill");
		}
	if (d)
		closedir(d);
	return found;
}

/* ---- diagnosis ------------------------------------------------------------ */

/* The cgroup path relative to the mount ("/" for the root). */
static const char *relative(const struct kb_cgroup_mount *m, const char *cgroup)
{
	size_t ml = strlen(m->path);
	if (!strncmp(cgroup, m->path, ml) && cgroup[ml] == '/')
		return cgroup + ml;
	return strncmp(cgroup, m->path, ml) || cgroup[ml] ? cgroup : "/";
}

/* Explains EACCES/EPERM on moving a process into cgroup (the delegation rule). */
static int delegation_error(const struct kb_cgroup_mount *m, const char *cgroup,
			    int err, const char *what, struct kb_cgroup_err *e)
{
	char self[KB_CGROUP_PATH_MAX] = "";
	if (!m || kb_cgroup_self(self, sizeof(self)))
		return fail(e, err, "%s %s: %s (writing a process into a cgroup needs write access to its "
			    "cgroup.procs and to cgroup.procs of the common ancestor of the source and target cgroups)",
			    what, cgroup, strerror(err));
	/* Longest common leading run of whole components. */
	const char *target = relative(m, cgroup);
	size_t common = 0;
	for (size_t i = 0;; i++) {
		bool end_s = self[i] == '\0' || self[i] == '/';
		bool end_t = target[i] == '\0' || target[i] == '/';
		if (end_s && end_t)
			common = i;
		if (self[i] != target[i] || !self[i])
			break;
	}
	return fail(e, err, "%s %s: %s (delegation rule: moving a process from %s needs write access to "
		    "%s/cgroup.procs and to %s%.*s/cgroup.procs, the common ancestor's)",
		    what, cgroup, strerror(err), self, cgroup, m->path, (int)common, target);
}

/* Explains EBUSY on moving a process into a cgroup (no internal processes). */
static int internal_process_error(const char *cgroup, const char *what, struct kb_cgroup_err *e)
{
	char sub[512] = "";
	kb_cgroup_read(cgroup, "cgroup.subtree_control", sub, sizeof(sub));
	return fail(e, EBUSY, "%s %s: %s (no-internal-process rule: a cgroup that enables controllers "
		    "for its children (cgroup.subtree_control: %s) cannot hold processes; use a leaf cgroup)",
		    what, cgroup, strerror(EBUSY), sub[0] ? sub : "-");
}

/* Why controller c cannot be used at cgroup (which lacks it). */
static int controller_error(const struct kb_cgroup_mount *m, const char *cgroup,
			    const char *c, const char *subject, struct kb_cgroup_err *e)
{
	int h = kb_cgroup_v1_hierarchy(c);
	char list[512] = "";
	if (h > 0) {
		char where[KB_CGROUP_PATH_MAX];
		kb_cgroup_v1_mount(c, where, sizeof(where));
		return fail(e, EOPNOTSUPP, "%s: the %s controller is bound to cgroup v1%s%s, so cgroup2 "
			    "cannot use it", subject, c, where[0] ? " at " : "", where);
	}
	kb_cgroup_read(m->path, "cgroup.controllers", list, sizeof(list));
	if (!kb_cgroup_list_has(list, c))
		return fail(e, EOPNOTSUPP, h < 0 ? "%s: no such controller: %s" :
			    "%s: the %s controller is not available in the cgroup2 hierarchy at %s",
			    subject, c, m->path);
	char parent[KB_CGROUP_PATH_MAX];
	kb_cgroup_parent(m, cgroup, parent, sizeof(parent));
	if (!parent[0])
		return fail(e, ENOENT, "%s: controllers have no such files on the root cgroup", subject);
	/* Name the highest ancestor that does not pass it down. */
	char anc[KB_CGROUP_PATH_MAX];
	snprintf(anc, sizeof(anc), "%s", m->path);
	const char *rest = cgroup + strlen(m->path);
	for (;;) {
		list[0] = '\0';
		kb_cgroup_read(anc, "cgroup.subtree_control", list, sizeof(list));
		if (!kb_cgroup_list_has(list, c))
			break;
		const char *next = strchr(rest + 1, '/');
		size_t step = next ? (size_t)(next - rest) : strlen(rest);
		size_t al = strlen(anc);
		snprintf(anc + al, sizeof(anc) - al, "%.*s", (int)step, rest);
		rest += step;
		if (!strcmp(anc, parent) || !*rest)
			break;
	}
	return fail(e, EOPNOTSUPP, "%s: the %s controller is not enabled for %s: it is missing from "
		    "%s/cgroup.subtree_control (write +%s there, or use --enable-controllers)",
		    subject, c, cgroup, anc, c);
}

/* ---- creating and removing ------------------------------------------------ */

int kb_cgroup_create(const struct kb_cgroup_mount *m, const char *cgroup,
		     char *created, size_t len, struct kb_cgroup_err *e)
{
	if (created && len)
		created[0] = '\0';
	size_t ml = strlen(m->path);
	if (strncmp(cgroup, m->path, ml) || (cgroup[ml] != '/' && cgroup[ml]))
		return fail(e, EINVAL, "%s is not inside %s", cgroup, m->path);
	char path[KB_CGROUP_PATH_MAX];
	copy_str(path, sizeof(path), cgroup);
	for (char *s = path + ml + 1; s <= path + strlen(cgroup) && cgroup[ml]; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char saved = *s;
		*s = '\0';
		if (mkdir(path, 0755) == 0) {
			if (created && len && !created[0])
				copy_str(created, len, path);
		} else if (errno != EEXIST) {
			int err = errno;
			char parent[KB_CGROUP_PATH_MAX];
			kb_cgroup_parent(m, path, parent, sizeof(parent));
			if (err == EACCES || err == EPERM)
				return fail(e, err, "cannot create %s: %s (needs write access to %s)",
					    path, strerror(err), parent);
			if (err == EAGAIN)
				return fail(e, err, "cannot create %s: %s (cgroup.max.descendants or "
					    "cgroup.max.depth of an ancestor reached)", path, strerror(err));
			return fail(e, err, "cannot create %s: %s", path, strerror(err));
		}
		*s = saved;
		if (!saved)
			break;
	}
	return 0;
}

int kb_cgroup_create_unique(const struct kb_cgroup_mount *m, const char *parent,
			    const char *prefix, char *out, size_t len, struct kb_cgroup_err *e)
{
	char dir[KB_CGROUP_PATH_MAX];
	if (kb_cgroup_resolve(m, parent, dir, sizeof(dir), e) ||
	    kb_cgroup_create(m, dir, NULL, 0, e))
		return -1;
	for (unsigned n = 0; n < 1000; n++) {
		int l = snprintf(out, len, "%s/%s.%d.%u", dir, prefix, (int)getpid(), n);
		if (l < 0 || (size_t)l >= len)
			return fail(e, ENAMETOOLONG, "%s: cgroup path too long", dir);
		if (mkdir(out, 0755) == 0)
			return 0;
		if (errno != EEXIST)
			return fail(e, errno, "cannot create %s: %s", out, strerror(errno));
	}
	return fail(e, EEXIST, "cannot find a free cgroup name under %s", dir);
}

/* Calls fn(dir) for the cgroup and every descendant, children first. */
static int walk_post(const char *cgroup, int (*fn)(const char *dir, void *arg), void *arg)
{
	DIR *d = opendir(cgroup);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			char sub[KB_CGROUP_PATH_MAX];
			if (!join(sub, sizeof(sub), cgroup, de->d_name))
				walk_post(sub, fn, arg);
		}
		closedir(d);
	}
	return fn(cgroup, arg);
}

struct kill_pass {
	bool send;
	unsigned found;
};

static int kill_procs(const char *dir, void *arg)
{
	struct kill_pass *k = arg;
	char buf[65536];
	if (kb_cgroup_read(dir, "cgroup.procs", buf, sizeof(buf)))
		return 0;
	for (char *s = buf; *s;) {
		char *end;
		long pid = strtol(s, &end, 10);
		if (end == s)
			break;
		k->found++;
		/* Through a pidfd so a recycled pid is never signalled. */
		int fd = k->send ? kb_pidfd_open((pid_t)pid, 0) : -1;
		if (fd >= 0) {
			kb_pidfd_send_signal(fd, SIGKILL, 0);
			close(fd);
		}
		s = end;
		while (*s == '\n')
			s++;
	}
	return 0;
}

static bool populated(const char *cgroup)
{
	uint64_t v = 0;
	/* cgroup.events appeared with cgroup2 itself; a read failure means gone. */
	return kb_cgroup_read_key(cgroup, "cgroup.events", "populated", &v) == 0 && v;
}

int kb_cgroup_kill_all(const char *cgroup, unsigned *killed, struct kb_cgroup_err *e)
{
	struct kill_pass count = { false, 0 };
	walk_post(cgroup, kill_procs, &count);
	if (killed)
		*killed = count.found;
	if (!populated(cgroup))
		return 0;
	bool use_kill = kb_cgroup_has_file(cgroup, "cgroup.kill");
	if (use_kill) {
		char path[KB_CGROUP_PATH_MAX];
		int fd = join(path, sizeof(path), cgroup, "cgroup.kill") ? -1 : open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "1", 1) != 1) {
			int err = errno;
			if (fd >= 0)
				close(fd);
			return fail(e, err, "cannot kill the processes of %s: %s/cgroup.kill: %s",
				    cgroup, cgroup, strerror(err));
		}
		close(fd);
	}
	/* Without cgroup.kill a process may fork between the listing and the
	 * kill, so list and kill again until the sub-tree is empty. */
	for (int i = 0; i < 1000; i++) {
		if (!use_kill) {
			struct kill_pass pass = { true, 0 };
			walk_post(cgroup, kill_procs, &pass);
		}
		char path[KB_CGROUP_PATH_MAX];
		int fd = join(path, sizeof(path), cgroup, "cgroup.events") ? -1 : open(path, O_RDONLY | O_CLOEXEC);
		if (!populated(cgroup)) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		if (fd >= 0) {
			/* cgroup.events signals a change with POLLPRI. */
			struct pollfd p = { .fd = fd, .events = POLLPRI };
			char dummy[64];
			if (read(fd, dummy, sizeof(dummy)) < 0) { /* arm the notification */ }
			poll(&p, 1, 10);
			close(fd);
		}
	}
	return fail(e, ETIMEDOUT, "processes of %s survived SIGKILL for 10 s", cgroup);
}

static int remove_dir(const char *dir, void *arg)
{
	struct kb_cgroup_err *e = arg;
	/* Right after the last process goes, rmdir may briefly still see it. */
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			break;
		usleep(5000);
	}
	return fail(e, errno, "cannot remove %s: %s", dir, strerror(errno));
}

int kb_cgroup_remove(const char *cgroup, struct kb_cgroup_err *e)
{
	if (kb_cgroup_kill_all(cgroup, NULL, e))
		return -1;
	return walk_post(cgroup, remove_dir, e);
}

int kb_cgroup_remove_created(const char *cgroup, const char *created, struct kb_cgroup_err *e)
{
	if (kb_cgroup_remove(cgroup, e))
		return -1;
	/* The parents this run created, up to the first: each only if empty now
	 * (another run may have made a cgroup of its own beside ours). */
	size_t cl = strlen(created);
	char dir[KB_CGROUP_PATH_MAX];
	copy_str(dir, sizeof(dir), cgroup);
	for (char *slash; strlen(dir) > cl && (slash = strrchr(dir, '/'));) {
		*slash = '\0';
		if (strlen(dir) < cl || rmdir(dir) < 0)
			break;
	}
	return 0;
}

/* ---- configuring ---------------------------------------------------------- */

/* Core files that act rather than configure: writing one moves or kills
 * processes (any on the system, for cgroup.procs), or reshapes the tree. */
static const struct {
	const char *file, *why;
} not_properties[] = {
	{ "cgroup.procs", "it moves processes (the command is placed by clone3)" },
	{ "cgroup.threads", "it moves threads (the command is placed by clone3)" },
	{ "cgroup.kill", "it kills the cgroup's processes (--rm does that afterwards)" },
	{ "cgroup.subtree_control", "it enables controllers for children (use --enable-controllers)" },
};

int kb_cgroup_check_file(const struct kb_cgroup_mount *m, const char *cgroup,
			 const char *file, struct kb_cgroup_err *e)
{
	if (!*file || strchr(file, '/') || file[0] == '.')
		return fail(e, EINVAL, "%s: not a control file name", file);
	for (size_t i = 0; i < sizeof(not_properties) / sizeof(not_properties[0]); i++)
		if (!strcmp(file, not_properties[i].file))
			return fail(e, EINVAL, "%s: not a setting: %s", file, not_properties[i].why);
	char path[KB_CGROUP_PATH_MAX];
	struct stat st;
	if (join(path, sizeof(path), cgroup, file))
		return fail(e, ENAMETOOLONG, "%s: name too long", file);
	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return fail(e, EINVAL, "%s: not a control file", file);
		if (!(st.st_mode & 0222))
			return fail(e, EACCES, "%s: read-only control file", file);
		return 0;
	}
	const char *dot = strchr(file, '.');
	if (!dot || !strncmp(file, "cgroup.", 7))
		return fail(e, ENOENT, "%s: no such control file in %s", file, cgroup);
	char c[64];
	snprintf(c, sizeof(c), "%.*s", (int)(dot - file), file);
	char list[512] = "";
	kb_cgroup_read(cgroup, "cgroup.controllers", list, sizeof(list));
	if (kb_cgroup_list_has(list, c))
		return fail(e, ENOENT, "%s: no such control file (the %s controller is enabled for %s "
			    "but has no such file)", file, c, cgroup);
	if (kb_cgroup_v1_hierarchy(c) < 0 && strcmp(cgroup, m->path)) {
		kb_cgroup_read(m->path, "cgroup.controllers", list, sizeof(list));
		if (!kb_cgroup_list_has(list, c))
			return fail(e, ENOENT, "%s: no such control file (no controller named %s)", file, c);
	}
	return controller_error(m, cgroup, c, file, e);
}

int kb_cgroup_write(const struct kb_cgroup_mount *m, const char *cgroup,
		    const char *file, const char *value, struct kb_cgroup_err *e)
{
	char path[KB_CGROUP_PATH_MAX];
	if (join(path, sizeof(path), cgroup, file))
		return fail(e, ENAMETOOLONG, "%s/%s: name too long", cgroup, file);
	bool procs = !strcmp(file, "cgroup.procs") || !strcmp(file, "cgroup.threads");
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = -1;
	if (fd >= 0) {
		n = write(fd, value, strlen(value));
		int err = errno;
		close(fd);
		errno = err;
	}
	if (n >= 0)
		return 0;
	int err = errno;
	if (fd < 0 && err == ENOENT && m && kb_cgroup_check_file(m, cgroup, file, e))
		return -1;
	if (procs && (err == EACCES || err == EPERM))
		return delegation_error(m, cgroup, err, "cannot move a process into", e);
	if (procs && err == EBUSY)
		return internal_process_error(cgroup, "cannot move a process into", e);
	if (!strcmp(file, "cgroup.subtree_control") && err == EBUSY)
		return fail(e, err, "cannot write '%s' to %s: %s (no-internal-process rule: a cgroup "
			    "holding processes cannot enable controllers for its children; move them "
			    "into a leaf cgroup first)", value, path, strerror(err));
	if (err == EACCES || err == EPERM)
		return fail(e, err, "cannot write %s: %s (needs write access to the file; a delegated "
			    "cgroup's own limits belong to its parent's owner)", path, strerror(err));
	if (err == EINVAL || err == ERANGE)
		return fail(e, err, "invalid value '%s' for %s: %s", value, file, strerror(err));
	return fail(e, err, "cannot write '%s' to %s: %s", value, path, strerror(err));
}

/* Calls fn for each word of a space- or comma-separated list. */
static int for_each_word(const char *list, int (*fn)(const char *word, void *arg), void *arg)
{
	for (const char *s = list; *s;) {
		s += strspn(s, " ,\n");
		size_t n = strcspn(s, " ,\n");
		if (!n)
			break;
		char word[64];
		snprintf(word, sizeof(word), "%.*s", (int)n, s);
		if (fn(word, arg))
			return -1;
		s += n;
	}
	return 0;
}

struct controller_job {
	const struct kb_cgroup_mount *m;
	const char *cgroup;
	struct kb_cgroup_err *e;
};

static int enable_one(const char *c, void *arg)
{
	struct controller_job *j = arg;
	char list[512] = "";
	kb_cgroup_read(j->m->path, "cgroup.controllers", list, sizeof(list));
	if (!kb_cgroup_list_has(list, c))
		return controller_error(j->m, j->cgroup, c, c, j->e);
	/* Root first: each level can only pass on what it receives. */
	char anc[KB_CGROUP_PATH_MAX], plus[80];
	snprintf(plus, sizeof(plus), "+%s", c);
	snprintf(anc, sizeof(anc), "%s", j->m->path);
	const char *rest = j->cgroup + strlen(j->m->path);
	while (*rest) {
		list[0] = '\0';
		kb_cgroup_read(anc, "cgroup.subtree_control", list, sizeof(list));
		if (!kb_cgroup_list_has(list, c) &&
		    kb_cgroup_write(j->m, anc, "cgroup.subtree_control", plus, j->e))
			return -1;
		const char *next = strchr(rest + 1, '/');
		size_t step = next ? (size_t)(next - rest) : strlen(rest);
		size_t al = strlen(anc);
		snprintf(anc + al, sizeof(anc) - al, "%.*s", (int)step, rest);
		rest += step;
	}
	return 0;
}

int kb_cgroup_enable_controllers(const struct kb_cgroup_mount *m, const char *cgroup,
				 const char *controllers, struct kb_cgroup_err *e)
{
	struct controller_job j = { m, cgroup, e };
	return for_each_word(controllers, enable_one, &j);
}

static int check_one(const char *c, void *arg)
{
	struct controller_job *j = arg;
	char list[512] = "";
	if (kb_cgroup_read(j->cgroup, "cgroup.controllers", list, sizeof(list)))
		return fail(j->e, errno, "%s/cgroup.controllers: %s", j->cgroup, strerror(errno));
	return kb_cgroup_list_has(list, c) ? 0 : controller_error(j->m, j->cgroup, c, c, j->e);
}

int kb_cgroup_check_controllers(const struct kb_cgroup_mount *m, const char *cgroup,
				const char *controllers, struct kb_cgroup_err *e)
{
	struct controller_job j = { m, cgroup, e };
	return for_each_word(controllers, check_one, &j);
}

int kb_cgroup_set_note(const char *cgroup, const char *key, const char *value,
		       struct kb_cgroup_err *e)
{
	char name[256];
	if (!*key || snprintf(name, sizeof(name), strchr(key, '.') ? "%s" : "user.%s", key) >= (int)sizeof(name))
		return fail(e, EINVAL, "%s: not a usable attribute name", key);
	if (setxattr(cgroup, name, value, strlen(value), 0) == 0)
		return 0;
	int err = errno;
	if (err == EOPNOTSUPP || err == ENOTSUP)
		return fail(e, err, "cannot set %s on %s: %s (cgroupfs takes user.* and trusted.* "
			    "attributes since Linux 5.7)", name, cgroup, strerror(err));
	if (err == EPERM)
		return fail(e, err, "cannot set %s on %s: %s (trusted.* needs CAP_SYS_ADMIN; user.* "
			    "needs ownership of the directory)", name, cgroup, strerror(err));
	return fail(e, err, "cannot set %s on %s: %s", name, cgroup, strerror(err));
}

/* ---- statistics ----------------------------------------------------------- */

int kb_cgroup_read_stats(const char *cgroup, struct kb_cgroup_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->has_cpu = !kb_cgroup_read_key(cgroup, "cpu.stat", "usage_usec", &st->usage_usec);
	kb_cgroup_read_key(cgroup, "cpu.stat", "user_usec", &st->user_usec);
	kb_cgroup_read_key(cgroup, "cpu.stat", "system_usec", &st->system_usec);
	st->has_throttle = !kb_cgroup_read_key(cgroup, "cpu.stat", "nr_throttled", &st->nr_throttled);
	kb_cgroup_read_key(cgroup, "cpu.stat", "nr_periods", &st->nr_periods);
	kb_cgroup_read_key(cgroup, "cpu.stat", "throttled_usec", &st->throttled_usec);
	st->has_memory_peak = !read_u64(cgroup, "memory.peak", &st->memory_peak);
	st->has_pids_peak = !read_u64(cgroup, "pids.peak", &st->pids_peak);
	st->has_memory_events = !kb_cgroup_read_key(cgroup, "memory.events", "oom", &st->oom);
	kb_cgroup_read_key(cgroup, "memory.events", "oom_kill", &st->oom_kill);
	kb_cgroup_read_key(cgroup, "memory.events", "max", &st->max);
	kb_cgroup_read_key(cgroup, "memory.events", "high", &st->high);
	return st->has_cpu || st->has_memory_peak || st->has_pids_peak || st->has_memory_events ? 0 : -1;
}

/* ---- running a command ---------------------------------------------------- */

struct child_report {
	int stage;                      /* CHILD_MOVE or CHILD_EXEC */
	int err;
};
enum { CHILD_MOVE = 1, CHILD_EXEC = 2 };

/* In the child: (fallback) move into the cgroup, restore the mask, exec.
 * Failures go to the parent through the close-on-exec pipe. */
static _Noreturn void child_exec(const struct kb_cgroup_run *r, int procs_fd, int report_fd)
{
	struct child_report rep = { 0, 0 };
	if (procs_fd >= 0 && write(procs_fd, "0", 1) != 1) {
		rep = (struct child_report){ CHILD_MOVE, errno };
		if (write(report_fd, &rep, sizeof(rep)) < 0) { /* the parent sees the exit code */ }
		_exit(125);
	}
	sigprocmask(SIG_SETMASK, &r->saved_mask, NULL);
	execvp(r->argv[0], r->argv);
	rep = (struct child_report){ CHILD_EXEC, errno };
	if (write(report_fd, &rep, sizeof(rep)) < 0) { /* the parent sees the exit code */ }
	_exit(rep.err == ENOENT ? 127 : 126);
}

/* The child of the shared-memory start: it reports an exec failure by
 * writing into our memory, which we read once it has exited. */
struct shared_child {
	const struct kb_cgroup_run *r;
	int exec_errno;
};

static int child_exec_shared(void *arg)
{
	struct shared_child *c = arg;
	sigprocmask(SIG_SETMASK, &c->r->saved_mask, NULL);
	execvp(c->r->argv[0], c->r->argv);
	c->exec_errno = errno;
	return c->exec_errno == ENOENT ? 127 : 126;
}

#define CHILD_STACK (256u << 10)

/* clone3(CLONE_INTO_CGROUP | CLONE_VM | CLONE_VFORK): no copy of our address
 * space. Returns the pid, or -1 with errno (ENOSYS where unavailable). */
static pid_t spawn_shared(struct kb_cgroup_run *r, int cgfd, int *pidfd)
{
	void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	struct shared_child c = { r, 0 };
	struct clone_args ca = {
		.flags = CLONE_INTO_CGROUP | CLONE_PIDFD | CLONE_VM | CLONE_VFORK,
		.pidfd = (uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.stack = (uintptr_t)stack,
		.stack_size = CHILD_STACK,
		.cgroup = (uint64_t)cgfd,
	};
	pid_t pid = kb_clone3_vfork(&ca, sizeof(ca), child_exec_shared, &c);
	int err = errno;
	munmap(stack, CHILD_STACK);
	if (pid > 0)
		r->exec_errno = c.exec_errno;
	errno = err;
	return pid;
}

static void spawn_cleanup(struct kb_cgroup_run *r, int cgfd, int pipefd[2])
{
	int err = errno;
	if (cgfd >= 0)
		close(cgfd);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (r->sigfd >= 0)
		close(r->sigfd);
	r->sigfd = -1;
	sigprocmask(SIG_SETMASK, &r->saved_mask, NULL);
	errno = err;
}

static int clone_error(struct kb_cgroup_run *r, int err, struct kb_cgroup_err *e)
{
	switch (err) {
	case EACCES:
	case EPERM:
		return delegation_error(r->mount, r->cgroup, err, "cannot start the command in", e);
	case EBUSY:
		return internal_process_error(r->cgroup, "cannot start the command in", e);
	case EAGAIN:
		return fail(e, err, "cannot start the command in %s: %s (pids.max of the cgroup or an "
			    "ancestor reached)", r->cgroup, strerror(err));
	case EOPNOTSUPP:
		return fail(e, err, "cannot start the command in %s: %s (a threaded cgroup, or one "
			    "whose type is \"domain invalid\")", r->cgroup, strerror(err));
	default:
		return fail(e, err, "cannot start the command in %s: clone3: %s", r->cgroup, strerror(err));
	}
}

int kb_cgroup_spawn(struct kb_cgroup_run *r, struct kb_cgroup_err *e)
{
	r->pid = -1;
	r->pidfd = -1;
	r->sigfd = -1;
	r->used_fallback = false;
	r->exec_errno = 0;
	r->signal = 0;
	r->wall_ns = 0;
	r->memory_current_max = 0;
	int pipefd[2] = { -1, -1 };

	sigset_t block;
	sigemptyset(&block);
	for (const int *s = r->forward; s && *s; s++)
		sigaddset(&block, *s);
	sigprocmask(SIG_BLOCK, &block, &r->saved_mask);

	int cgfd = open(r->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		int err = errno;
		spawn_cleanup(r, cgfd, pipefd);
		return fail(e, err, "%s: %s", r->cgroup, strerror(err));
	}
	if (r->forward && (r->sigfd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		int err = errno;
		spawn_cleanup(r, cgfd, pipefd);
		return fail(e, err, "cannot set up the child: %s", strerror(err));
	}

	int pidfd = -1;
	r->start_ns = kb_monotonic_ns();
	pid_t pid = spawn_shared(r, cgfd, &pidfd);
	if (pid > 0) {
		r->pid = pid;
		r->pidfd = pidfd;
		close(cgfd);
		return 0;
	}
	/* Errors that the plain clone3 below would meet too. */
	if (errno != ENOSYS && errno != EINVAL && errno != E2BIG && errno != ENOMEM) {
		int err = errno;
		spawn_cleanup(r, cgfd, pipefd);
		return clone_error(r, err, e);
	}
	if (pipe2(pipefd, O_CLOEXEC)) {
		int err = errno;
		spawn_cleanup(r, cgfd, pipefd);
		return fail(e, err, "cannot set up the child: %s", strerror(err));
	}
	struct clone_args ca = {
		.flags = CLONE_INTO_CGROUP | CLONE_PIDFD,
		.pidfd = (uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
		.cgroup = (uint64_t)cgfd,
	};
	r->start_ns = kb_monotonic_ns();
	pid = kb_clone3(&ca, sizeof(ca));
	if (pid == 0)
		child_exec(r, -1, pipefd[1]);
	if (pid < 0) {
		int err = errno;
		/* ENOSYS: no clone3 (< 5.3); EINVAL/E2BIG: no CLONE_INTO_CGROUP (< 5.7). */
		if (err != ENOSYS && err != EINVAL && err != E2BIG) {
			spawn_cleanup(r, cgfd, pipefd);
			return clone_error(r, err, e);
		}
		if (!r->fallback) {
			spawn_cleanup(r, cgfd, pipefd);
			return fail(e, EOPNOTSUPP, "clone3 cannot start a process inside a cgroup here: %s "
				    "(CLONE_INTO_CGROUP needs Linux 5.7 and no seccomp filter refusing clone3; "
				    "--fallback moves the command before exec instead)", strerror(err));
		}
		int procs_fd = openat(cgfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
		if (procs_fd < 0) {
			err = errno;
			spawn_cleanup(r, cgfd, pipefd);
			return clone_error(r, err, e);
		}
		pid = fork();
		if (pid == 0)
			child_exec(r, procs_fd, pipefd[1]);
		err = errno;
		close(procs_fd);
		if (pid < 0) {
			spawn_cleanup(r, cgfd, pipefd);
			return fail(e, err, "fork: %s", strerror(err));
		}
		r->used_fallback = true;
		pidfd = kb_pidfd_open(pid, 0);  /* -1 before 5.3: kb_cgroup_wait polls instead */
	}
	r->pid = pid;
	r->pidfd = pidfd;
	close(cgfd);
	close(pipefd[1]);

	struct child_report rep;
	ssize_t n;
	while ((n = read(pipefd[0], &rep, sizeof(rep))) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(rep) && rep.stage == CHILD_MOVE) {
		/* The fallback child could not move itself; it exits 125. */
		waitpid(pid, NULL, 0);
		if (pidfd >= 0)
			close(pidfd);
		r->pid = r->pidfd = -1;
		pipefd[0] = pipefd[1] = -1;
		spawn_cleanup(r, -1, pipefd);
		return clone_error(r, rep.err, e);
	}
	if (n == (ssize_t)sizeof(rep) && rep.stage == CHILD_EXEC)
		r->exec_errno = rep.err;
	return 0;
}

static void forward_pending(struct kb_cgroup_run *r)
{
	struct signalfd_siginfo si;
	while (r->sigfd >= 0 && read(r->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		/* A terminal signal (SI_KERNEL) already reached the child's process group. */
		if (si.ssi_code == SI_KERNEL && getpgid(r->pid) == getpgrp())
			continue;
		if (r->pidfd >= 0)
			kb_pidfd_send_signal(r->pidfd, (int)si.ssi_signo, 0);
		else
			kill(r->pid, (int)si.ssi_signo);
	}
}

static void sample(struct kb_cgroup_run *r)
{
	uint64_t v;
	if (r->sample_memory && read_u64(r->cgroup, "memory.current", &v) == 0 && v > r->memory_current_max)
		r->memory_current_max = v;
}

int kb_cgroup_wait(struct kb_cgroup_run *r)
{
	int status = 0;
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	for (;;) {
		sample(r);
		struct pollfd p[2] = {
			{ .fd = r->pidfd, .events = POLLIN },
			{ .fd = r->sigfd, .events = POLLIN },
		};
		/* Without a pidfd, or while sampling memory, wake up periodically. */
		int timeout = r->pidfd < 0 || r->sample_memory ? 20 : -1;
		int n = poll(p, 2, timeout);
		if (n < 0 && errno != EINTR)
			break;
		if (p[1].revents & POLLIN)
			forward_pending(r);
		if (r->pidfd >= 0 && !(p[0].revents & POLLIN))
			continue;
		int rc = r->pidfd >= 0 ? waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED)
				       : waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || si.si_pid)
			break;
	}
	r->wall_ns = kb_monotonic_ns() - r->start_ns;
	if (si.si_code == CLD_EXITED)
		status = si.si_status;
	else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
		r->signal = si.si_status;
		status = 128 + si.si_status;
	} else
		status = 125;
	forward_pending(r);
	if (r->sigfd >= 0)
		close(r->sigfd);
	if (r->pidfd >= 0)
		close(r->pidfd);
	r->sigfd = r->pidfd = -1;
	sigprocmask(SIG_SETMASK, &r->saved_mask, NULL);
	return status;
}
