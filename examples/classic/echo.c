/* echo: what was last written to /dev/NAME (default echo) is what every reader reads, from its
 * own file position. The 1.10 four-argument fusd_register. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

static char *stored;
static size_t stored_length;

static ssize_t echo_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	(void)file;
	if (*offset >= (loff_t)stored_length)
		return 0;
	if (length > stored_length - *offset)
		length = stored_length - *offset;
	memcpy(buffer, stored + *offset, length);
	*offset += length;
	return length;
}

static ssize_t echo_write(struct fusd_file_info *file, const char *buffer, size_t length, loff_t *offset)
{
	char *copy = malloc(length ? length : 1);
	(void)file;
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buffer, length);
	free(stored);
	stored = copy;
	stored_length = length;
	*offset += length;
	return length;
}

int main(int argc, char *argv[])
{
	static struct fusd_file_operations fops = { .read = echo_read, .write = echo_write };
	if (fusd_register(argc > 1 ? argv[1] : "/dev/echo", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		exit(1);
	}
	fusd_run();
	return 0;
}
