/* uid-filter: /dev/NAME (default my-pid) opens only for the user running the driver (even root
 * is refused: EPERM), and tells each reader its own pid. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include "fusd.h"

static int filter_open(struct fusd_file_info *file)
{
	return file->uid == getuid() ? 0 : -EPERM;
}

static ssize_t filter_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	char line[64];
	int n;
	if (*offset > 0)
		return 0;
	n = snprintf(line, sizeof line, "pid %d uid %d\n", (int)file->pid, (int)file->uid);
	if ((size_t)n > length)
		n = length;
	memcpy(buffer, line, n);
	*offset += n;
	return n;
}

int main(int argc, char *argv[])
{
	struct fusd_file_operations fops = { open: filter_open, read: filter_read };
	if (fusd_register(argc > 1 ? argv[1] : "my-pid", "misc", "my-pid", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		return 1;
	}
	fusd_run();
	return 0;
}
