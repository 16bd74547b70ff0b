/* drums: one driver, several devices: PREFIX/snare, PREFIX/kick, PREFIX/hihat, PREFIX/tom
 * (PREFIX defaults to /dev/drums). Each reads its own name once per open: device_info says
 * which device a call is for. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

static const char *const kit[] = { "snare", "kick", "hihat", "tom", NULL };

static ssize_t drum_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	char sound[64];
	size_t n;
	if (*offset != 0)
		return 0;
	n = snprintf(sound, sizeof sound, "%s\n", (const char *)file->device_info);
	if (n > length)
		n = length;
	memcpy(buffer, sound, n);
	*offset += n;
	return n;
}

static struct fusd_file_operations drum_fops = { read: drum_read };

int main(int argc, char *argv[])
{
	const char *prefix = argc > 1 ? argv[1] : "/dev/drums";
	char path[256], devname[64];
	int i;
	for (i = 0; kit[i]; i++) {
		snprintf(path, sizeof path, "%s/%s", prefix, kit[i]);
		snprintf(devname, sizeof devname, "drum-%s", kit[i]);
		if (fusd_register(path, "drums", devname, 0666, (void *)kit[i], &drum_fops) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
	}
	fusd_run();
	return 0;
}
