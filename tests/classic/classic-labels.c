/* classic-labels NAME CLASS DEVNAME: registers NAME with the forks' six-argument fusd_register()
 * and the given class and device name (the labels of libfusd(3)), and serves "labeled\n" per
 * read. A registration that fails prints its errno's text and exits 1. For classic-api.bats. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fusd.h"

static ssize_t labeled_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	static const char text[] = "labeled\n";
	size_t n = sizeof text - 1;
	(void)file;
	if (*offset >= (loff_t)n)
		return 0;
	n -= (size_t)*offset;
	if (n > length)
		n = length;
	memcpy(buffer, text + *offset, n);
	*offset += n;
	return (ssize_t)n;
}

int main(int argc, char *argv[])
{
	struct fusd_file_operations fops = { .read = labeled_read };
	if (argc != 4) {
		fprintf(stderr, "usage: %s NAME CLASS DEVNAME\n", argv[0]);
		return 2;
	}
	if (fusd_register(argv[1], argv[2], argv[3], 0444, NULL, &fops) < 0) {
		printf("fusd_register: %s\n", strerror(errno));
		return 1;
	}
	fusd_run();
	return 0;
}
