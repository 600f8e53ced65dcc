/* gpio-probe: looks at a GPIO chip through the character device (uAPI v2),
 * independently of kbox, for the VM tests.
 *
 *   gpio-probe info CHIP                 "chip NAME LABEL NUM_LINES", then per line
 *                                        "line OFFSET NAME|- input|output [used]"
 *   gpio-probe get CHIP OFFSET           requests the line as input, prints 0 or 1
 *   gpio-probe watch CHIP OFFSET COUNT TIMEOUT_MS
 *                                        requests the line with both edges, prints
 *                                        "ready", then "rising"/"falling" per event;
 *                                        exits once COUNT events arrived
 * Exit status: 0 done, 1 error, 2 usage, 3 timeout while watching. */
#include <errno.h>
#include <fcntl.h>
#include <linux/gpio.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "gpio-probe: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

static int usage(void)
{
	fputs("usage: gpio-probe info CHIP | get CHIP OFFSET | watch CHIP OFFSET COUNT TIMEOUT_MS\n", stderr);
	return 2;
}

static int show_info(int chip, const char *path)
{
	struct gpiochip_info info;
	memset(&info, 0, sizeof(info));
	if (ioctl(chip, GPIO_GET_CHIPINFO_IOCTL, &info) < 0)
		return fail("chip info of", path);
	printf("chip %s %s %u\n", info.name, info.label, info.lines);
	for (unsigned int offset = 0; offset < info.lines; offset++) {
		struct gpio_v2_line_info line;
		memset(&line, 0, sizeof(line));
		line.offset = offset;
		if (ioctl(chip, GPIO_V2_GET_LINEINFO_IOCTL, &line) < 0)
			return fail("line info of", path);
		printf("line %u %s %s%s\n", offset, line.name[0] ? line.name : "-",
		       (line.flags & GPIO_V2_LINE_FLAG_OUTPUT) ? "output" : "input",
		       (line.flags & GPIO_V2_LINE_FLAG_USED) ? " used" : "");
	}
	return 0;
}

static int request_input(int chip, const char *path, unsigned int offset, __u64 flags)
{
	struct gpio_v2_line_request request;
	memset(&request, 0, sizeof(request));
	request.offsets[0] = offset;
	request.num_lines = 1;
	request.config.flags = GPIO_V2_LINE_FLAG_INPUT | flags;
	snprintf(request.consumer, sizeof(request.consumer), "gpio-probe");
	if (ioctl(chip, GPIO_V2_GET_LINE_IOCTL, &request) < 0) {
		fail("line request on", path);
		return -1;
	}
	return request.fd;
}

static int get_value(int chip, const char *path, unsigned int offset)
{
	int line = request_input(chip, path, offset, 0);
	if (line < 0)
		return 1;
	struct gpio_v2_line_values values = { .bits = 0, .mask = 1 };
	if (ioctl(line, GPIO_V2_LINE_GET_VALUES_IOCTL, &values) < 0)
		return fail("reading the value on", path);
	printf("%d\n", (int)(values.bits & 1));
	return 0;
}

static int watch(int chip, const char *path, unsigned int offset, unsigned long count, int timeout_ms)
{
	int line = request_input(chip, path, offset,
				 GPIO_V2_LINE_FLAG_EDGE_RISING | GPIO_V2_LINE_FLAG_EDGE_FALLING);
	if (line < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	for (unsigned long seen = 0; seen < count;) {
		struct pollfd pfd = { .fd = line, .events = POLLIN };
		int ready = poll(&pfd, 1, timeout_ms);
		if (ready < 0)
			return fail("waiting for events on", path);
		if (ready == 0) {
			fprintf(stderr, "gpio-probe: timed out after %lu of %lu events\n", seen, count);
			return 3;
		}
		struct gpio_v2_line_event event;
		if (read(line, &event, sizeof(event)) != sizeof(event))
			return fail("reading an event from", path);
		printf("%s\n", event.id == GPIO_V2_LINE_EVENT_RISING_EDGE ? "rising" : "falling");
		fflush(stdout);
		seen++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return usage();
	const char *mode = argv[1], *path = argv[2];
	int chip = open(path, O_RDONLY | O_CLOEXEC);
	if (chip < 0)
		return fail("cannot open", path);
	if (strcmp(mode, "info") == 0 && argc == 3)
		return show_info(chip, path);
	if (strcmp(mode, "get") == 0 && argc == 4)
		return get_value(chip, path, (unsigned int)strtoul(argv[3], NULL, 10));
	if (strcmp(mode, "watch") == 0 && argc == 6)
		return watch(chip, path, (unsigned int)strtoul(argv[3], NULL, 10),
			     strtoul(argv[4], NULL, 10), atoi(argv[5]));
	return usage();
}
