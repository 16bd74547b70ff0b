/* drums2: like drums, with state per device and per open: each open of PREFIX/NAME is told
 * which listener of that drum it is (device_info holds the drum's count, private_data the
 * listener's number). A read never ends the file: every read repeats the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

struct drum {
	const char *name;
	int listeners;
};

static struct drum kit[] = { { "snare", 0 }, { "kick", 0 }, { "hihat", 0 }, { NULL, 0 } };

static int drum_open(struct fusd_file_info *file)
{
	struct drum *d = file->device_info;
	int *number = malloc(sizeof *number);
	if (!number)
		return -ENOMEM;
	*number = ++d->listeners;
	file->private_data = number;
	return 0;
}

static int drum_close(struct fusd_file_info *file)
{
	free(file->private_data);
	return 0;
}

static ssize_t drum_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	struct drum *d = file->device_info;
	char line[96];
	size_t n = snprintf(line, sizeof line, "listener %d of %s\n", *(int *)file->private_data, d->name);
	if (n > length)
		n = length;
	memcpy(buffer, line, n);
	*offset += n;
	return n;
}

static struct fusd_file_operations drum_fops = { open: drum_open, read: drum_read, close: drum_close };

int main(int argc, char *argv[])
{
	const char *prefix = argc > 1 ? argv[1] : "/dev/drums";
	char path[256], devname[64];
	struct drum *d;
	for (d = kit; d->name; d++) {
		snprintf(path, sizeof path, "%s/%s", prefix, d->name);
		snprintf(devname, sizeof devname, "drum-%s", d->name);
		if (fusd_register(path, "drums", devname, 0666, d, &drum_fops) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
	}
	fusd_run();
	return 0;
}
