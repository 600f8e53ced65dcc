/* GPIO chip discovery and line lookup by name, through libgpiod 1.6.
 * Every libgpiod call of kbox lives in this file. */
#include "gpio/gpio.h"
#include "base/libraries.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

KB_DLOPEN_NOTE(KB_LIBGPIOD);

static void copy_name(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
}

static int fill_chip(const struct kb_libgpiod *gpiod, struct kb_gpio_chip *c, struct gpiod_chip *chip)
{
	memset(c, 0, sizeof(*c));
	copy_name(c->name, sizeof(c->name), gpiod->gpiod_chip_name(chip));
	copy_name(c->label, sizeof(c->label), gpiod->gpiod_chip_label(chip));
	snprintf(c->path, sizeof(c->path), "/dev/%s", c->name);
	c->number = (unsigned)strtoul(c->name + strlen("gpiochip"), NULL, 10);
	c->num_lines = gpiod->gpiod_chip_num_lines(chip);
	c->line_names = calloc(c->num_lines ? c->num_lines : 1, sizeof(*c->line_names));
	if (!c->line_names)
		return -1;
	for (unsigned i = 0; i < c->num_lines; i++) {
		struct gpiod_line *line = gpiod->gpiod_chip_get_line(chip, i);
		if (!line)
			return -1;
		copy_name(c->line_names[i], sizeof(c->line_names[i]), gpiod->gpiod_line_name(line));
	}
	return 0;
}

static int is_chip_node(const struct dirent *d)
{
	return !strncmp(d->d_name, "gpiochip", 8);
}

/* gpiod_chip_iter_new fails as a whole when one device cannot be opened;
 * find out which one so the error can name it. */
static void find_unopenable(const struct kb_libgpiod *gpiod, char *failed_path, size_t failed_len)
{
	struct dirent **nodes;
	int n = scandir("/dev", &nodes, is_chip_node, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		if (!failed_path[0]) {
			struct gpiod_chip *chip = gpiod->gpiod_chip_open_by_name(nodes[i]->d_name);
			if (chip)
				gpiod->gpiod_chip_close(chip);
			else
				snprintf(failed_path, failed_len, "/dev/%s", nodes[i]->d_name);
		}
		free(nodes[i]);
	}
	free(nodes);
}

static int by_number(const void *a, const void *b)
{
	const struct kb_gpio_chip *x = a, *y = b;
	return (x->number > y->number) - (x->number < y->number);
}

int kb_gpio_chips_scan(struct kb_gpio_chip **chips, size_t *n, char *failed_path, size_t failed_len)
{
	*chips = NULL;
	*n = 0;
	if (failed_len)
		failed_path[0] = '\0';
	const struct kb_libgpiod *gpiod = kb_libgpiod();
	struct gpiod_chip_iter *iter = gpiod->gpiod_chip_iter_new();
	if (!iter) {
		int e = errno;
		if (failed_len)
			find_unopenable(gpiod, failed_path, failed_len);
		errno = e;
		return -1;
	}
	struct kb_gpio_chip *list = NULL;
	size_t count = 0;
	struct gpiod_chip *chip;
	int rc = 0;
	while ((chip = gpiod->gpiod_chip_iter_next(iter))) {
		struct kb_gpio_chip *grown = realloc(list, (count + 1) * sizeof(*list));
		if (!grown) {
			rc = -1;
			break;
		}
		list = grown;
		if (fill_chip(gpiod, &list[count++], chip) < 0) {
			if (failed_len)
				snprintf(failed_path, failed_len, "/dev/%s", gpiod->gpiod_chip_name(chip));
			rc = -1;
			break;
		}
	}
	int e = errno;
	gpiod->gpiod_chip_iter_free(iter);
	if (rc < 0) {
		kb_gpio_chips_free(list, count);
		errno = e ? e : ENOMEM;
		return -1;
	}
	/* scandir's alphasort puts gpiochip10 before gpiochip2. */
	if (count)
		qsort(list, count, sizeof(*list), by_number);
	*chips = list;
	*n = count;
	return 0;
}

void kb_gpio_chips_free(struct kb_gpio_chip *chips, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(chips[i].line_names);
	free(chips);
}

int kb_gpio_chip_lookup(const struct kb_gpio_chip *chips, size_t n, const char *spec)
{
	const char *base = spec;
	if (!strncmp(base, "/dev/", 5))
		base += 5;
	char *end;
	unsigned long number = strtoul(base, &end, 10);
	bool is_number = *base >= '0' && *base <= '9' && !*end;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(chips[i].name, base) || (is_number && chips[i].number == number))
			return (int)i;
	}
	/* Labels last: a label may look like anything. */
	for (size_t i = 0; i < n; i++)
		if (chips[i].label[0] && !strcmp(chips[i].label, spec))
			return (int)i;
	return -1;
}

int kb_gpio_line_lookup(const struct kb_gpio_chip *chips, size_t n, const char *name,
			size_t *chip_index, unsigned *offset)
{
	if (!*name)
		return -1;
	for (size_t i = 0; i < n; i++)
		for (unsigned o = 0; o < chips[i].num_lines; o++)
			if (!strcmp(chips[i].line_names[o], name)) {
				*chip_index = i;
				*offset = o;
				return 0;
			}
	return -1;
}
