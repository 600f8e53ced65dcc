/* GPIO character devices.
 *
 * gpio_chips.c finds chips and line names through libgpiod (1.6 API); gpio_cdev.c
 * talks to the kernel's GPIO v2 uAPI directly for what libgpiod 1.6 cannot
 * do: line-info watches, edge requests with debounce and event clock, full
 * line info. Keeping the two apart keeps libgpiod to chip discovery: it is
 * opened on first use there, and declared by gpio_chips.c's .note.dlopen. */
#ifndef KBOX_GPIO_H
#define KBOX_GPIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KB_GPIO_NAME_MAX 32   /* GPIO_MAX_NAME_SIZE, with the NUL */

/* ---- discovery (gpio_chips.c, libgpiod) ----------------------------------- */

struct kb_gpio_chip {
	char name[KB_GPIO_NAME_MAX];    /* "gpiochip0" */
	char label[KB_GPIO_NAME_MAX];   /* driver's label, e.g. "gpio-sim.0-node0" */
	char path[64];                  /* "/dev/gpiochip0" */
	unsigned number;                /* N of gpiochipN */
	unsigned num_lines;
	char (*line_names)[KB_GPIO_NAME_MAX]; /* num_lines entries, "" when unnamed */
};

/* Every GPIO chip, sorted by number. Returns 0 (possibly with *n == 0), or -1
 * with errno set and, when one device could not be opened, its path copied
 * to failed_path (else failed_path[0] = '\0'). */
int kb_gpio_chips_scan(struct kb_gpio_chip **chips, size_t *n, char *failed_path, size_t failed_len);
void kb_gpio_chips_free(struct kb_gpio_chip *chips, size_t n);
/* CHIP as gpiochipN, /dev/gpiochipN, N, or a label: the index in chips, or -1. */
int kb_gpio_chip_lookup(const struct kb_gpio_chip *chips, size_t n, const char *spec);
/* The first line called name, in chip order: 0 with chip_index and offset set, or -1. */
int kb_gpio_line_lookup(const struct kb_gpio_chip *chips, size_t n, const char *name,
			size_t *chip_index, unsigned *offset);

/* ---- kernel GPIO v2 uAPI (gpio_cdev.c) ------------------------------- */

enum kb_gpio_bias { KB_GPIO_BIAS_AS_IS, KB_GPIO_BIAS_PULL_UP, KB_GPIO_BIAS_PULL_DOWN, KB_GPIO_BIAS_DISABLED };
enum kb_gpio_drive { KB_GPIO_DRIVE_PUSH_PULL, KB_GPIO_DRIVE_OPEN_DRAIN, KB_GPIO_DRIVE_OPEN_SOURCE };
enum kb_gpio_edge { KB_GPIO_EDGE_NONE, KB_GPIO_EDGE_RISING, KB_GPIO_EDGE_FALLING, KB_GPIO_EDGE_BOTH };
enum kb_gpio_clock { KB_GPIO_CLOCK_MONOTONIC, KB_GPIO_CLOCK_REALTIME, KB_GPIO_CLOCK_HTE };

struct kb_gpio_line_info {
	char name[KB_GPIO_NAME_MAX];
	char consumer[KB_GPIO_NAME_MAX];
	unsigned offset;
	bool used;
	bool output;
	bool active_low;
	enum kb_gpio_bias bias;
	enum kb_gpio_drive drive;
	enum kb_gpio_edge edge;
	enum kb_gpio_clock clock;
	uint32_t debounce_us;
};

/* Info-change kinds, numbered as the kernel numbers them. */
enum kb_gpio_info_kind { KB_GPIO_REQUESTED = 1, KB_GPIO_RELEASED = 2, KB_GPIO_RECONFIGURED = 3 };

struct kb_gpio_info_event {
	struct kb_gpio_line_info info;
	uint64_t timestamp_ns;          /* CLOCK_MONOTONIC */
	enum kb_gpio_info_kind kind;
};

/* Edge ids, numbered as the kernel numbers them. */
enum kb_gpio_edge_kind { KB_GPIO_RISING = 1, KB_GPIO_FALLING = 2 };

struct kb_gpio_edge_event {
	uint64_t timestamp_ns;
	enum kb_gpio_edge_kind kind;
	unsigned offset;
	uint32_t seqno;                 /* within the request */
	uint32_t line_seqno;            /* within the line */
};

struct kb_gpio_edge_config {
	enum kb_gpio_edge edge;
	enum kb_gpio_bias bias;
	enum kb_gpio_clock clock;
	bool active_low;
	uint32_t debounce_us;           /* 0: none */
	const char *consumer;
};

/* Opens a chip's character device, non-blocking, close-on-exec. -1 + errno. */
int kb_gpio_chip_open(const char *path);
/* 0 while the chip behind fd is registered; -1 with errno (ENODEV once unplugged). */
int kb_gpio_chip_check(int chip_fd);
int kb_gpio_line_info(int chip_fd, unsigned offset, struct kb_gpio_line_info *info);
/* Starts watching a line's info changes on chip_fd; fills the current info. */
int kb_gpio_line_watch(int chip_fd, unsigned offset, struct kb_gpio_line_info *info);
int kb_gpio_line_unwatch(int chip_fd, unsigned offset);
/* Reads up to max pending info events from chip_fd: the count, 0 when none
 * is pending, -1 with errno on error. */
ssize_t kb_gpio_read_info_events(int chip_fd, struct kb_gpio_info_event *events, size_t max);

/* Most lines one request can hold (GPIO_V2_LINES_MAX). */
#define KB_GPIO_REQUEST_MAX_LINES 64
/* Requests lines as inputs with edge detection; returns the request fd
 * (non-blocking, close-on-exec) or -1 with errno (EBUSY: a line is in use). */
int kb_gpio_request_edges(int chip_fd, const unsigned *offsets, size_t n,
			  const struct kb_gpio_edge_config *config);
/* Like kb_gpio_read_info_events, for a request fd. */
ssize_t kb_gpio_read_edge_events(int request_fd, struct kb_gpio_edge_event *events, size_t max);

/* Notices gpiochip device nodes vanishing from /dev (a hint to re-check
 * chips: older kernels do not wake pollers of an unplugged chip).
 * kb_gpio_unplug_monitor returns an fd to poll, kb_gpio_unplug_drain empties
 * it and returns true when a gpiochip node was removed. */
int kb_gpio_unplug_monitor(void);
bool kb_gpio_unplug_drain(int fd);

/* Names used in output and accepted on command lines. */
const char *kb_gpio_bias_name(enum kb_gpio_bias bias);     /* "as-is", "pull-up", ... */
const char *kb_gpio_drive_name(enum kb_gpio_drive drive);  /* "push-pull", ... */
const char *kb_gpio_edge_name(enum kb_gpio_edge edge);     /* "none", "rising", "falling", "both" */
const char *kb_gpio_clock_name(enum kb_gpio_clock clock);  /* "monotonic", "realtime", "hte" */

#endif
