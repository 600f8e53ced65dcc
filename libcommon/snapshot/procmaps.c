/* Parsing of /proc/PID/{maps,smaps,stat,status,task,...}. */
#include "snapshot/procmaps.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kb_proc_read_file(pid_t pid, const char *name, char **buf, size_t *len)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	if (!b) {
		close(fd);
		return -1;
	}
	for (;;) {
		if (cap - n < 4096) {
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				close(fd);
				errno = ENOMEM;
				return -1;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			free(b);
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	if (len)
		*len = n;
	return 0;
}

/* One maps line: "start-end perms offset major:minor inode   path". */
static int parse_maps_line(char *line, struct kb_mapping *m)
{
	char perms[8];
	int pos = 0;
	memset(m, 0, sizeof(*m));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 "%n", &m->start,
		   &m->end, perms, &m->offset, &m->dev_major, &m->dev_minor, &m->inode, &pos) != 7)
		return -1;
	m->r = perms[0] == 'r';
	m->w = perms[1] == 'w';
	m->x = perms[2] == 'x';
	m->shared = perms[3] == 's';
	const char *p = line + pos;
	while (*p == ' ' || *p == '\t')
		p++;
	m->path = strdup(p);
	return m->path ? 0 : -1;
}

int kb_procmaps_read(pid_t pid, struct kb_maps *out)
{
	char *buf;
	if (kb_proc_read_file(pid, "maps", &buf, NULL) < 0)
		return -1;
	size_t cap = 64;
	out->n = 0;
	out->v = malloc(cap * sizeof(*out->v));
	if (!out->v) {
		free(buf);
		return -1;
	}
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (out->n == cap) {
			struct kb_mapping *nv = realloc(out->v, cap * 2 * sizeof(*nv));
			if (!nv)
				goto nomem;
			out->v = nv;
			cap *= 2;
		}
		if (parse_maps_line(line, &out->v[out->n]) < 0) {
			if (errno == ENOMEM)
				goto nomem;
			continue;
		}
		out->n++;
	}
	free(buf);
	return 0;
nomem:
	free(buf);
	kb_procmaps_free(out);
	errno = ENOMEM;
	return -1;
}

static bool has_flag(const char *flags, const char *f)
{
	size_t l = strlen(f);
	for (const char *p = flags; (p = strstr(p, f)) != NULL; p += l)
		if ((p == flags || p[-1] == ' ') && (p[l] == ' ' || p[l] == '\0' || p[l] == '\n'))
			return true;
	return false;
}

int kb_procmaps_add_smaps(pid_t pid, struct kb_maps *maps)
{
	char *buf;
	if (kb_proc_read_file(pid, "smaps", &buf, NULL) < 0)
		return -1;
	struct kb_mapping *cur = NULL;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long long start, end, v;
		if (isxdigit((unsigned char)line[0]) && sscanf(line, "%llx-%llx ", &start, &end) == 2) {
			cur = kb_procmaps_find(maps, start);
			if (cur && (cur->start != start || cur->end != end))
				cur = NULL;
			if (cur)
				cur->details.have_smaps = true;
			continue;
		}
		if (!cur)
			continue;
		if (sscanf(line, "Anonymous: %llu kB", &v) == 1)
			cur->details.anonymous = v * 1024;
		else if (sscanf(line, "AnonHugePages: %llu kB", &v) == 1)
			cur->details.anon_huge = v * 1024;
		else if (sscanf(line, "KernelPageSize: %llu kB", &v) == 1)
			cur->details.kernel_page_size = v * 1024;
		else if (!strncmp(line, "VmFlags:", 8)) {
			cur->details.dontdump = has_flag(line + 8, "dd");
			cur->details.io = has_flag(line + 8, "io");
			cur->details.hugetlb = has_flag(line + 8, "ht");
		}
	}
	free(buf);
	return 0;
}

void kb_procmaps_free(struct kb_maps *maps)
{
	for (size_t i = 0; i < maps->n; i++)
		free(maps->v[i].path);
	free(maps->v);
	maps->v = NULL;
	maps->n = 0;
}

struct kb_mapping *kb_procmaps_find(struct kb_maps *maps, uint64_t addr)
{
	size_t lo = 0, hi = maps->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		struct kb_mapping *m = &maps->v[mid];
		if (addr < m->start)
			hi = mid;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

bool kb_mapping_is_file(const struct kb_mapping *m)
{
	return m->path[0] == '/' && m->inode != 0;
}

bool kb_mapping_is_unreadable_special(const struct kb_mapping *m)
{
	return m->path[0] == '[' && strcmp(m->path, "[vdso]") && strcmp(m->path, "[heap]") &&
	       strncmp(m->path, "[stack", 6) && strncmp(m->path, "[anon", 5);
}

unsigned kb_proc_coredump_filter(pid_t pid)
{
	char *buf;
	unsigned v = 0x33;
	if (kb_proc_read_file(pid, "coredump_filter", &buf, NULL) == 0) {
		if (sscanf(buf, "%x", &v) != 1)
			v = 0x33;
		free(buf);
	}
	return v;
}

int kb_proc_stat(pid_t pid, pid_t tid, struct kb_proc_stat *st)
{
	char name[64], *buf;
	if (tid > 0)
		snprintf(name, sizeof(name), "task/%d/stat", (int)tid);
	else
		snprintf(name, sizeof(name), "stat");
	if (kb_proc_read_file(pid, name, &buf, NULL) < 0)
		return -1;
	memset(st, 0, sizeof(*st));
	/* comm may hold spaces and parentheses: it ends at the last ')'. */
	char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	if (!open || !close || close < open) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	size_t l = (size_t)(close - open - 1);
	if (l > 16)
		l = 16;
	memcpy(st->comm, open + 1, l);
	st->comm[l] = '\0';
	long long cut, cst;   /* signed in the kernel's format */
	if (sscanf(close + 2, "%c %d %d %d %*d %*d %lu %*u %*u %*u %*u %llu %llu %lld %lld %*d %ld",
		   &st->state, &st->ppid, &st->pgrp, &st->sid, &st->flags, &st->utime, &st->stime, &cut,
		   &cst, &st->nice) != 10) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	st->cutime = (unsigned long long)cut;
	st->cstime = (unsigned long long)cst;
	free(buf);
	return 0;
}

int kb_proc_ids(pid_t pid, uid_t *uid, gid_t *gid)
{
	char *buf;
	if (kb_proc_read_file(pid, "status", &buf, NULL) < 0)
		return -1;
	char *u = strstr(buf, "\nUid:"), *g = strstr(buf, "\nGid:");
	unsigned uu, gg;
	int ok = u && g && sscanf(u + 5, "%u", &uu) == 1 && sscanf(g + 5, "%u", &gg) == 1;
	free(buf);
	if (!ok) {
		errno = EINVAL;
		return -1;
	}
	*uid = uu;
	*gid = gg;
	return 0;
}

int kb_proc_tids(pid_t pid, pid_t **tids, size_t *n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	size_t cap = 16, cnt = 0;
	pid_t *v = malloc(cap * sizeof(*v));
	struct dirent *e;
	while (v && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (cnt == cap) {
			pid_t *nv = realloc(v, cap * 2 * sizeof(*v));
			if (!nv) {
				free(v);
				v = NULL;
				break;
			}
			v = nv;
			cap *= 2;
		}
		v[cnt++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	if (!v) {
		errno = ENOMEM;
		return -1;
	}
	*tids = v;
	*n = cnt;
	return 0;
}
