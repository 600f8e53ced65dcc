/* The kernel's GPIO character-device v2 uAPI (<linux/gpio.h>, Linux 5.10+):
 * line info, line-info watches and edge-event requests. */
#include "gpio/gpio.h"
#include "base/kbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void copy_name(char *dst, const char *src)
{
	/* Kernel strings are NUL-padded but not guaranteed NUL-terminated. */
	size_t len = strnlen(src, GPIO_MAX_NAME_SIZE);
	if (len >= KB_GPIO_NAME_MAX)
		len = KB_GPIO_NAME_MAX - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
}

static void decode_info(const struct gpio_v2_line_info *k, struct kb_gpio_line_info *info)
{
	memset(info, 0, sizeof(*info));
	copy_name(info->name, k->name);
	copy_name(info->consumer, k->consumer);
	info->offset = k->offset;
	uint64_t f = k->flags;
	info->used = f & GPIO_V2_LINE_FLAG_USED;
	info->output = f & GPIO_V2_LINE_FLAG_OUTPUT;
	info->active_low = f & GPIO_V2_LINE_FLAG_ACTIVE_LOW;
	info->bias = f & GPIO_V2_LINE_FLAG_BIAS_PULL_UP ? KB_GPIO_BIAS_PULL_UP :
		     f & GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN ? KB_GPIO_BIAS_PULL_DOWN :
		     f & GPIO_V2_LINE_FLAG_BIAS_DISABLED ? KB_GPIO_BIAS_DISABLED : KB_GPIO_BIAS_AS_IS;
	info->drive = f & GPIO_V2_LINE_FLAG_OPEN_DRAIN ? KB_GPIO_DRIVE_OPEN_DRAIN :
		      f & GPIO_V2_LINE_FLAG_OPEN_SOURCE ? KB_GPIO_DRIVE_OPEN_SOURCE : KB_GPIO_DRIVE_PUSH_PULL;
	bool rising = f & GPIO_V2_LINE_FLAG_EDGE_RISING, falling = f & GPIO_V2_LINE_FLAG_EDGE_FALLING;
	info->edge = rising && falling ? KB_GPIO_EDGE_BOTH : rising ? KB_GPIO_EDGE_RISING :
		     falling ? KB_GPIO_EDGE_FALLING : KB_GPIO_EDGE_NONE;
	info->clock = f & GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME ? KB_GPIO_CLOCK_REALTIME :
		      f & GPIO_V2_LINE_FLAG_EVENT_CLOCK_HTE ? KB_GPIO_CLOCK_HTE : KB_GPIO_CLOCK_MONOTONIC;
	for (unsigned i = 0; i < k->num_attrs && i < GPIO_V2_LINE_NUM_ATTRS_MAX; i++)
		if (k->attrs[i].id == GPIO_V2_LINE_ATTR_ID_DEBOUNCE)
			info->debounce_us = k->attrs[i].debounce_period_us;
}

int kb_gpio_chip_open(const char *path)
{
	return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

int kb_gpio_chip_check(int chip_fd)
{
	struct gpiochip_info ci;
	return ioctl(chip_fd, GPIO_GET_CHIPINFO_IOCTL, &ci) < 0 ? -1 : 0;
}

static int line_info_ioctl(int chip_fd, unsigned long request, unsigned offset,
			   struct kb_gpio_line_info *info)
{
	struct gpio_v2_line_info k;
	memset(&k, 0, sizeof(k));
	k.offset = offset;
	if (ioctl(chip_fd, request, &k) < 0)
		return -1;
	if (info)
		decode_info(&k, info);
	return 0;
}

int kb_gpio_line_info(int chip_fd, unsigned offset, struct kb_gpio_line_info *info)
{
	return line_info_ioctl(chip_fd, GPIO_V2_GET_LINEINFO_IOCTL, offset, info);
}

int kb_gpio_line_watch(int chip_fd, unsigned offset, struct kb_gpio_line_info *info)
{
	return line_info_ioctl(chip_fd, GPIO_V2_GET_LINEINFO_WATCH_IOCTL, offset, info);
}

int kb_gpio_line_unwatch(int chip_fd, unsigned offset)
{
	uint32_t o = offset;
	return ioctl(chip_fd, GPIO_GET_LINEINFO_UNWATCH_IOCTL, &o);
}

#define READ_BATCH 64

/* Reads whole records, at most max and at most READ_BATCH (buf holds that
 * many); a short or failed read with nothing read yet returns 0 for "nothing
 * pending" and -1 for a real error. */
static ssize_t read_records(int fd, void *buf, size_t record, size_t max)
{
	if (max > READ_BATCH)
		max = READ_BATCH;
	ssize_t n = read(fd, buf, record * max);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if ((size_t)n % record) {
		errno = EIO;
		return -1;
	}
	return n / (ssize_t)record;
}

ssize_t kb_gpio_read_info_events(int chip_fd, struct kb_gpio_info_event *events, size_t max)
{
	struct gpio_v2_line_info_changed raw[READ_BATCH];
	ssize_t n = read_records(chip_fd, raw, sizeof(raw[0]), max);
	for (ssize_t i = 0; i < n; i++) {
		decode_info(&raw[i].info, &events[i].info);
		events[i].timestamp_ns = raw[i].timestamp_ns;
		events[i].kind = (enum kb_gpio_info_kind)raw[i].event_type;
	}
	return n;
}

ssize_t kb_gpio_read_edge_events(int request_fd, struct kb_gpio_edge_event *events, size_t max)
{
	struct gpio_v2_line_event raw[READ_BATCH];
	ssize_t n = read_records(request_fd, raw, sizeof(raw[0]), max);
	for (ssize_t i = 0; i < n; i++) {
		events[i].timestamp_ns = raw[i].timestamp_ns;
		events[i].kind = (enum kb_gpio_edge_kind)raw[i].id;
		events[i].offset = raw[i].offset;
		events[i].seqno = raw[i].seqno;
		events[i].line_seqno = raw[i].line_seqno;
	}
	return n;
}

int kb_gpio_request_edges(int chip_fd, const unsigned *offsets, size_t n,
			  const struct kb_gpio_edge_config *config)
{
	if (n == 0 || n > GPIO_V2_LINES_MAX) {
		errno = EINVAL;
		return -1;
	}
	struct gpio_v2_line_request req;
	memset(&req, 0, sizeof(req));
	for (size_t i = 0; i < n; i++)
		req.offsets[i] = offsets[i];
	req.num_lines = (uint32_t)n;
	snprintf(req.consumer, sizeof(req.consumer), "%s", config->consumer ? config->consumer : "");
	/* The kernel's largest event buffer, so bursts are not lost while we sleep. */
	req.event_buffer_size = GPIO_V2_LINES_MAX * 16;
	uint64_t f = GPIO_V2_LINE_FLAG_INPUT;
	if (config->edge == KB_GPIO_EDGE_RISING || config->edge == KB_GPIO_EDGE_BOTH)
		f |= GPIO_V2_LINE_FLAG_EDGE_RISING;
	if (config->edge == KB_GPIO_EDGE_FALLING || config->edge == KB_GPIO_EDGE_BOTH)
		f |= GPIO_V2_LINE_FLAG_EDGE_FALLING;
	if (config->active_low)
		f |= GPIO_V2_LINE_FLAG_ACTIVE_LOW;
	if (config->bias == KB_GPIO_BIAS_PULL_UP)
		f |= GPIO_V2_LINE_FLAG_BIAS_PULL_UP;
	else if (config->bias == KB_GPIO_BIAS_PULL_DOWN)
		f |= GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN;
	else if (config->bias == KB_GPIO_BIAS_DISABLED)
		f |= GPIO_V2_LINE_FLAG_BIAS_DISABLED;
	if (config->clock == KB_GPIO_CLOCK_REALTIME)
		f |= GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME;
	else if (config->clock == KB_GPIO_CLOCK_HTE)
		f |= GPIO_V2_LINE_FLAG_EVENT_CLOCK_HTE;
	req.config.flags = f;
	if (config->debounce_us) {
		struct gpio_v2_line_config_attribute *a = &req.config.attrs[req.config.num_attrs++];
		a->attr.id = GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
		a->attr.debounce_period_us = config->debounce_us;
		a->mask = n == 64 ? ~0ULL : (1ULL << n) - 1;
	}
	if (ioctl(chip_fd, GPIO_V2_GET_LINE_IOCTL, &req) < 0)
		return -1;
	int fd = req.fd;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int kb_gpio_unplug_monitor(void)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, "/dev", IN_DELETE) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool kb_gpio_unplug_drain(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool removed = false;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && !strncmp(ev->name, "gpiochip", 8))
				removed = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	return removed;
}

#define NAME_OF(value, ...) do { \
	static const char *const names_[] = { __VA_ARGS__ }; \
	return (unsigned)(value) < KB_ARRAY_SIZE(names_) ? names_[value] : "?"; \
} while (0)

const char *kb_gpio_bias_name(enum kb_gpio_bias bias)
{
	NAME_OF(bias, "as-is", "pull-up", "pull-down", "disabled");
}

const char *kb_gpio_drive_name(enum kb_gpio_drive drive)
{
	NAME_OF(drive, "push-pull", "open-drain", "open-source");
}

const char *kb_gpio_edge_name(enum kb_gpio_edge edge)
{
	NAME_OF(edge, "none", "rising", "falling", "both");
}

const char *kb_gpio_clock_name(enum kb_gpio_clock clock)
{
	NAME_OF(clock, "monotonic", "realtime", "hte");
}
