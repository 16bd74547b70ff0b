/* helloworld: the smallest FUSD-era driver. Every open of /dev/NAME (default hello-world) reads
 * one greeting, then end of file: the driver keeps its place in *offset, as FUSD drivers did.
 * Registered with the forks' six-argument fusd_register (class "test"). */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

static const char greeting[] = "hello from a classic fusd driver\n";

static int hello_open_close(struct fusd_file_info *file)
{
	(void)file;
	return 0;
}

static ssize_t hello_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	size_t left;
	(void)file;
	if (*offset >= (loff_t)strlen(greeting))
		return 0;
	left = strlen(greeting) - *offset;
	if (length > left)
		length = left;
	memcpy(buffer, greeting + *offset, length);
	*offset += length;
	return length;
}

int main(int argc, char *argv[])
{
	const char *name = argc > 1 ? argv[1] : "hello-world";
	struct fusd_file_operations fops = {
		open: hello_open_close,
		read: hello_read,
		close: hello_open_close,
	};
	if (fusd_register(name, "test", "hello-world", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		return 1;
	}
	fusd_run();
	return 0;
}
