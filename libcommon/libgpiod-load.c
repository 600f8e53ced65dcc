/* libgpiod, loaded on first use (see lazylib.h). */
#include "lazylib.h"

#include <gpiod.h>
#include <stddef.h>

static struct kb_lazy_lib lib = { .soname = "libgpiod.so.2" };

void gpiod_chip_close(struct gpiod_chip *chip)
{
	KB_LAZY_FN(lib, gpiod_chip_close);
	if (real)
		real(chip);
}

struct gpiod_line *gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset)
{
	KB_LAZY_FN(lib, gpiod_chip_get_line);
	return real ? real(chip, offset) : NULL;
}

void gpiod_chip_iter_free(struct gpiod_chip_iter *iter)
{
	KB_LAZY_FN(lib, gpiod_chip_iter_free);
	if (real)
		real(iter);
}

struct gpiod_chip_iter *gpiod_chip_iter_new(void)
{
	KB_LAZY_FN(lib, gpiod_chip_iter_new);
	return real ? real() : NULL;
}

struct gpiod_chip *gpiod_chip_iter_next(struct gpiod_chip_iter *iter)
{
	KB_LAZY_FN(lib, gpiod_chip_iter_next);
	return real ? real(iter) : NULL;
}

const char *gpiod_chip_label(struct gpiod_chip *chip)
{
	KB_LAZY_FN(lib, gpiod_chip_label);
	return real ? real(chip) : NULL;
}

const char *gpiod_chip_name(struct gpiod_chip *chip)
{
	KB_LAZY_FN(lib, gpiod_chip_name);
	return real ? real(chip) : NULL;
}

unsigned int gpiod_chip_num_lines(struct gpiod_chip *chip)
{
	KB_LAZY_FN(lib, gpiod_chip_num_lines);
	return real ? real(chip) : 0;
}

struct gpiod_chip *gpiod_chip_open_by_name(const char *name)
{
	KB_LAZY_FN(lib, gpiod_chip_open_by_name);
	return real ? real(name) : NULL;
}

const char *gpiod_line_name(struct gpiod_line *line)
{
	KB_LAZY_FN(lib, gpiod_line_name);
	return real ? real(line) : NULL;
}
