/* A target for uffd-snapshot's tests: worker threads write a generation
 * number into every page of their part of a large region and into slots on
 * their own stacks, recording how far they got; the core must agree with
 * that record exactly. Each worker also checks its own pages after every
 * round, and the main thread checks that its nanosleep is never disturbed:
 * any surprise exits with status 99 (memory) or 98 (sleep).
 *
 * snap-target [--mib N] [--threads N] [--thp] [--layout FILE] [--churn]
 *             [--rate PAGES_PER_SEC]
 * SIGUSR1 prints the longest stall a worker saw (and resets it); SIGTERM
 * makes it check everything once more and exit 0; SIGUSR2 makes it execute
 * "sleep 60" (a new program in the same process). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "snap-target.h"

/* Things gdb is asked about. */
struct account {
	char name[16];
	long balance;
	struct account *next;
};
volatile uint64_t snap_global_magic = 0x5eedf00dcafe0001ull;
struct account *snap_accounts;
struct worker workers[MAX_WORKERS];
int nworkers = 2;
volatile uint64_t sleeps;
static volatile sig_atomic_t report_stall, stopping;
static uint64_t rate;          /* --rate: pages per second, for --dirty tests */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(int code, const char *what, int w, uint64_t slot, uint64_t got, uint64_t want)
{
	fprintf(stderr, "snap-target: %s: worker %d slot %llu holds %llu, expected %llu\n", what, w,
		(unsigned long long)slot, (unsigned long long)got, (unsigned long long)want);
	exit(code);
}

static inline volatile uint64_t *slot_ptr(struct worker *wk, size_t s)
{
	if (s < wk->npages)
		return (volatile uint64_t *)(wk->pages + s * (PAGE / 8));
	return (volatile uint64_t *)(wk->stack_slots + (s - wk->npages) * (PAGE / 8));
}

/* Records the longest time between two calls (the worker's stall). */
static inline void tick(struct worker *wk, uint64_t *last)
{
	uint64_t t = now_ns();
	if (t - *last > wk->max_stall_ns)
		wk->max_stall_ns = t - *last;
	*last = t;
}

static void check_round(struct worker *wk, uint64_t g, uint64_t *last)
{
	size_t n = wk->npages + STACK_SLOTS;
	for (size_t s = 0; s < n; s++) {
		if (*slot_ptr(wk, s) != g)
			fail(99, "memory changed under the program", wk->idx, s, *slot_ptr(wk, s), g);
		if ((s & 63) == 0)
			tick(wk, last);
	}
}

/* __attribute__((noinline)) keeps this frame visible in backtraces. */
static __attribute__((noinline)) void worker_loop(struct worker *wk)
{
	uint64_t slots[STACK_SLOTS * (PAGE / 8)] __attribute__((aligned(PAGE)));
	memset(slots, 0, sizeof(slots));
	wk->stack_slots = slots;
	size_t n = wk->npages + STACK_SLOTS;
	uint64_t last = now_ns();
	for (uint64_t g = 1; !stopping; g++) {
		wk->gen = g;
		__atomic_store_n(&wk->progress, 0, __ATOMIC_RELEASE);
		for (size_t s = 0; s < n; s++) {
			*slot_ptr(wk, s) = g;
			__atomic_store_n(&wk->progress, s + 1, __ATOMIC_RELEASE);
			if ((s & 63) == 0)
				tick(wk, &last);
		}
		check_round(wk, g, &last);
	}
	check_round(wk, wk->gen, &last);
}

static void *worker_main(void *arg)
{
	worker_loop(arg);
	return NULL;
}

/* --rate: dirty a fixed number of distinct pages per second. */
static __attribute__((noinline)) void *dirtier_main(void *arg)
{
	struct worker *wk = arg;
	uint64_t start = now_ns(), done = 0, page = 0;
	while (!stopping) {
		uint64_t due = (now_ns() - start) * rate / 1000000000u;
		for (; done < due; done++) {
			wk->pages[page * (PAGE / 8)]++;
			page = (page + 1) % wk->npages;
		}
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* --churn: map, grow (moving), write and unmap memory all the time. */
static void *churn_main(void *arg)
{
	(void)arg;
	while (!stopping) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			continue;
		memset(p, 0x5a, 1 << 20);
		char *q = mremap(p, 1 << 20, 4 << 20, MREMAP_MAYMOVE);
		if (q == MAP_FAILED) {
			munmap(p, 1 << 20);
			continue;
		}
		for (int i = 0; i < (1 << 20); i += PAGE)
			if (q[i] != 0x5a) {
				fprintf(stderr, "snap-target: moved memory changed\n");
				exit(99);
			}
		memset(q, 0xa5, 4 << 20);
		madvise(q, 2 << 20, MADV_DONTNEED);
		munmap(q, 4 << 20);
	}
	return NULL;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR2) {
		char *const args[] = { "sleep", "60", NULL };
		execv("/bin/sleep", args);
		_exit(97);
	}
	if (sig == SIGUSR1)
		report_stall = 1;
	else
		stopping = 1;
}

int main(int argc, char **argv)
{
	uint64_t mib = 64;
	int thp = 0, churn = 0;
	const char *layout = NULL;
	static const struct option opts[] = {
		{ "mib", required_argument, NULL, 'm' }, { "threads", required_argument, NULL, 't' },
		{ "thp", no_argument, NULL, 'H' },       { "layout", required_argument, NULL, 'l' },
		{ "churn", no_argument, NULL, 'c' },     { "rate", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mib = strtoull(optarg, NULL, 0); break;
		case 't': nworkers = atoi(optarg); break;
		case 'H': thp = 1; break;
		case 'l': layout = optarg; break;
		case 'c': churn = 1; break;
		case 'r': rate = strtoull(optarg, NULL, 0); break;
		default: return 2;
		}
	}
	if (nworkers < 1 || nworkers > MAX_WORKERS || mib < 1)
		return 2;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	/* A small heap structure for gdb: a list of accounts. */
	const char *names[] = { "alice", "bob", "carol" };
	for (int i = 2; i >= 0; i--) {
		struct account *a = calloc(1, sizeof(*a));
		snprintf(a->name, sizeof(a->name), "%s", names[i]);
		a->balance = 1000 * (i + 1);
		a->next = snap_accounts;
		snap_accounts = a;
	}

	size_t len = mib << 20;
	size_t map_len = len + (2 << 20);
	char *raw = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return 1;
	char *region = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~(uintptr_t)((2 << 20) - 1));
	if (thp)
		madvise(region, len, MADV_HUGEPAGE);
	memset(region, 0, len);
	size_t per = len / PAGE / (size_t)nworkers;
	for (int i = 0; i < nworkers; i++) {
		workers[i].idx = i;
		workers[i].pages = (uint64_t *)(region + (size_t)i * per * PAGE);
		workers[i].npages = per;
		if (pthread_create(&workers[i].thread, NULL, rate ? dirtier_main : worker_main, &workers[i]))
			return 1;
	}
	pthread_t churner;
	if (churn && pthread_create(&churner, NULL, churn_main, NULL))
		return 1;
	/* Wait for the first round to have started everywhere. */
	for (int i = 0; i < nworkers && !rate; i++)
		while (!workers[i].stack_slots || workers[i].gen < 1)
			usleep(1000);
	if (layout) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", layout);
		FILE *f = fopen(tmp, "w");
		if (!f)
			return 1;
		fprintf(f, "workers %d\nworkers_addr %p\nregion %p %zu\n", nworkers, (void *)workers,
			(void *)region, len);
		fclose(f);
		rename(tmp, layout);
	}
	while (!stopping) {
		struct timespec ts = { 0, 50 * 1000000 };
		int rc = nanosleep(&ts, NULL);
		if (rc != 0 && errno != EINTR) {
			fprintf(stderr, "snap-target: nanosleep failed: %s\n", strerror(errno));
			return 98;
		}
		sleeps++;
		if (report_stall) {
			report_stall = 0;
			uint64_t m = 0;
			for (int i = 0; i < nworkers; i++) {
				if (workers[i].max_stall_ns > m)
					m = workers[i].max_stall_ns;
				workers[i].max_stall_ns = 0;
			}
			printf("stall_ms %.3f\n", (double)m / 1e6);
			fflush(stdout);
		}
	}
	for (int i = 0; i < nworkers; i++)
		pthread_join(workers[i].thread, NULL);
	if (churn)
		pthread_join(churner, NULL);
	printf("ok sleeps %llu\n", (unsigned long long)sleeps);
	return 0;
}
