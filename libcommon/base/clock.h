/* Monotonic time as one number, for timing pauses and bounding waits.
 * Kernel interface: clock_gettime(CLOCK_MONOTONIC). */
#ifndef KBOX_CLOCK_H
#define KBOX_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t kb_monotonic_ns(void);

#endif
