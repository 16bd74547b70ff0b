/* console-read: each first read of an open of /dev/NAME (default console-read) asks the console:
 * the driver prints a prompt on stdout and the reader gets the line typed on stdin (end of file
 * once stdin is closed). The callback blocks the whole driver while it waits, as in FUSD. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

static ssize_t console_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	char line[256];
	size_t n;
	if (*offset > 0)
		return 0;
	printf("read from pid %d; answer? ", (int)file->pid);
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 0;
	n = strlen(line);
	if (n > length)
		n = length;
	memcpy(buffer, line, n);
	*offset += n;
	return n;
}

int main(int argc, char *argv[])
{
	struct fusd_file_operations fops = { .read = console_read };
	if (fusd_register(argc > 1 ? argv[1] : "/dev/console-read", "test", "console-read", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		return 1;
	}
	fusd_run();
	return 0;
}
