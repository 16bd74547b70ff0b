/* drums3: drums in a select() loop of the driver's own, with the console: a line on stdin sets
 * the loudness (1 silent, 2 normal, 3 loud), "q" quits. The FUSD descriptors join the loop with
 * fusd_fdset_add() and are served by fusd_dispatch_fdset(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <sys/select.h>
#include "fusd.h"

static const char *const kit[] = { "snare", "kick", NULL };
static int loudness = 2;

static ssize_t drum_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	char sound[64];
	size_t n, i;
	if (*offset != 0)
		return 0;
	if (loudness == 1)
		n = snprintf(sound, sizeof sound, "(silence)\n");
	else
		n = snprintf(sound, sizeof sound, "%s\n", (const char *)file->device_info);
	if (loudness == 3)
		for (i = 0; i < n; i++)
			sound[i] = toupper((unsigned char)sound[i]);
	if (n > length)
		n = length;
	memcpy(buffer, sound, n);
	*offset += n;
	return n;
}

static struct fusd_file_operations drum_fops = { .read = drum_read };

static void console_line(void)
{
	char line[64];
	ssize_t n = read(STDIN_FILENO, line, sizeof line - 1);
	if (n <= 0 || line[0] == 'q') {
		printf("bye\n");
		exit(0);
	}
	line[n] = '\0';
	if (atoi(line) >= 1 && atoi(line) <= 3)
		loudness = atoi(line);
	printf("loudness %d\n", loudness);
	fflush(stdout);
}

int main(int argc, char *argv[])
{
	const char *prefix = argc > 1 ? argv[1] : "/dev/drums";
	char path[256];
	fd_set all, ready;
	int i, max = STDIN_FILENO;
	for (i = 0; kit[i]; i++) {
		snprintf(path, sizeof path, "%s/%s", prefix, kit[i]);
		if (fusd_register(path, "drums", kit[i], 0666, (void *)kit[i], &drum_fops) < 0)
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
	}
	FD_ZERO(&all);
	FD_SET(STDIN_FILENO, &all);
	fusd_fdset_add(&all, &max);
	printf("loudness %d\n", loudness);
	fflush(stdout);
	for (;;) {
		ready = all;
		if (select(max + 1, &ready, NULL, NULL, NULL) < 0) {
			perror("select");
			continue;
		}
		if (FD_ISSET(STDIN_FILENO, &ready))
			console_line();
		fusd_dispatch_fdset(&ready);
	}
}
