/* Takes split locks on purpose, for splitlock-stat's tests: a locked add on
 * an int that straddles two 64-byte cache lines, from named threads and
 * optionally a child process. Prints what it did, so tests can compare.
 *
 *   splitlock-prog [-n COUNT] [-t THREADS] [-c CHILD_COUNT] [-l LINGER_MS]
 *                  [-e FILE [-k ac|db]] [-H]
 *   -n  split locks per thread (default 1)      -t  threads (default 2)
 *   -c  also fork a child process "sl-child" taking that many split locks
 *   -l  threads stay alive this long after their split locks
 *   -e  also write, to FILE, the kernel log records a detecting CPU would
 *       produce for each split lock taken (for CPUs that cannot detect them)
 *   -H  hold: once done, print "ready" and keep every thread alive until
 *       standard input reaches end of file
 * Output lines: "pid=P", "thread tid=T name=N count=C", "child pid=P count=C",
 * "function=split_lock_hit after=0xADDR", "total=N". */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* 128 bytes aligned to a line: the int at offset 62 covers bytes 62..65. */
static char line_pair[128] __attribute__((aligned(64)));
static int per_thread = 1, linger_ms;
static int hold;
static int hold_pipe[2];

/* The labels mark the locked add (what the kernel reports for #AC, a fault)
 * and the instruction after it (what it reports for #DB, a trap). */
__attribute__((noinline, noclone, used)) void split_lock_hit(int *p)
{
	__asm__ volatile(".globl split_lock_hit_at\n"
			 "split_lock_hit_at:\n\t"
			 "lock addl $1, %0\n\t"
			 ".globl split_lock_hit_after\n"
			 "split_lock_hit_after:\n\t"
			 : "+m"(*p) : : "memory");
}
extern char split_lock_hit_at[], split_lock_hit_after[];

struct worker {
	pthread_t thread;
	char name[16];
	pid_t tid;
	int done;
};

static void take_split_locks(int n)
{
	int *p = (int *)(line_pair + 62);
	for (int i = 0; i < n; i++)
		split_lock_hit(p);
}

static void stay_alive(void)
{
	if (linger_ms) {
		struct timespec ts = { linger_ms / 1000, (linger_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (hold) {
		char c;
		while (read(hold_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	pthread_setname_np(pthread_self(), w->name);
	w->tid = (pid_t)syscall(SYS_gettid);
	take_split_locks(per_thread);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	stay_alive();
	return NULL;
}

static uint64_t monotonic_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void emit(FILE *f, int ac, const char *name, pid_t tid, int n)
{
	static uint64_t seq = 900000;
	for (int i = 0; i < n; i++)
		fprintf(f, "4,%" PRIu64 ",%" PRIu64 ",-;x86/split lock detection: %s: %s/%d took a %s trap at address: 0x%lx\n",
			seq++, monotonic_us(), ac ? "#AC" : "#DB", name, (int)tid,
			ac ? "split_lock" : "bus_lock",
			(unsigned long)(ac ? split_lock_hit_at : split_lock_hit_after));
}

int main(int argc, char **argv)
{
	int threads = 2, child_count = 0, ac = 0, opt;
	const char *emit_file = NULL;
	while ((opt = getopt(argc, argv, "n:t:c:l:e:k:H")) != -1) {
		switch (opt) {
		case 'n': per_thread = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'c': child_count = atoi(optarg); break;
		case 'l': linger_ms = atoi(optarg); break;
		case 'e': emit_file = optarg; break;
		case 'k': ac = !strcmp(optarg, "ac"); break;
		case 'H': hold = 1; break;
		default:
			fprintf(stderr, "usage: splitlock-prog [-n N] [-t T] [-c N] [-l MS] [-e FILE [-k ac|db]] [-H]\n");
			return 2;
		}
	}
	if (threads < 0 || threads > 64 || per_thread < 0)
		return 2;
	/* Threads and the child block on this pipe until stdin ends (-H). */
	if (pipe(hold_pipe) < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid=%d\n", (int)getpid());
	printf("function=split_lock_hit after=0x%lx\n", (unsigned long)split_lock_hit_after);

	pid_t child = 0;
	int child_ready[2];
	if (pipe(child_ready) < 0)
		return 1;
	if (child_count > 0) {
		child = fork();
		if (child < 0)
			return 1;
		if (child == 0) {
			close(hold_pipe[1]);   /* so the parent's close releases us */
			prctl(PR_SET_NAME, "sl-child");
			take_split_locks(child_count);
			if (write(child_ready[1], "x", 1) < 0)
				_exit(1);
			stay_alive();
			_exit(0);
		}
		char c;
		if (read(child_ready[0], &c, 1) != 1)
			return 1;
	}

	struct worker *w = calloc((size_t)threads, sizeof(*w));
	for (int i = 0; i < threads; i++) {
		snprintf(w[i].name, sizeof(w[i].name), "sl-worker-%d", i + 1);
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]))
			return 1;
	}
	for (int i = 0; i < threads; i++)
		while (!__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE))
			usleep(1000);
	for (int i = 0; i < threads; i++)
		printf("thread tid=%d name=%s count=%d\n", (int)w[i].tid, w[i].name, per_thread);
	if (child)
		printf("child pid=%d name=sl-child count=%d\n", (int)child, child_count);
	printf("total=%d\n", threads * per_thread + child_count);

	if (emit_file) {
		FILE *f = fopen(emit_file, "w");
		if (!f) {
			perror(emit_file);
			return 1;
		}
		for (int i = 0; i < threads; i++)
			emit(f, ac, w[i].name, w[i].tid, per_thread);
		if (child)
			emit(f, ac, "sl-child", child, child_count);
		fclose(f);
	}
	if (hold) {
		printf("ready\n");
		char buf[64];
		while (read(0, buf, sizeof(buf)) > 0)
			;
		close(hold_pipe[1]);   /* releases every thread and the child */
	}
	for (int i = 0; i < threads; i++)
		pthread_join(w[i].thread, NULL);
	if (child)
		waitpid(child, NULL, 0);
	free(w);
	return 0;
}
