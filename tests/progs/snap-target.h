/* Shared by snap-target (which writes it) and snap-check (which finds it
 * in a core file): one worker's record of how far it got. */
#ifndef SNAP_TARGET_H
#define SNAP_TARGET_H

#include <pthread.h>
#include <stdint.h>

#define MAX_WORKERS 16
#define STACK_SLOTS 8          /* stack pages per worker */
#define PAGE 4096

struct worker {
	int idx;
	pthread_t thread;
	uint64_t *pages;           /* first page of this worker's part */
	size_t npages;
	uint64_t *stack_slots;     /* on the worker's own stack */
	volatile uint64_t gen;     /* round being written */
	volatile uint64_t progress;/* slots written in this round */
	volatile uint64_t max_stall_ns;
};

#endif
