/* classic: a FUSD-era C driver using only the classic API (fusd.h), unchanged in style from 2003.
 * /dev/classic reads "classic fusd\n" once per open; ioctl CLASSIC_GET_COUNT returns how many
 * opens there were. Build: cc classic.c $(pkg-config --cflags --libs libfusd)
 */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <fusd.h>

#define CLASSIC_GET_COUNT _IOR('c', 1, int)
static int opens;
static const char message[] = "classic fusd\n";

static int classic_open(struct fusd_file_info *file)
{
	opens++;
	file->private_data = NULL; /* used as "already read" */
	return 0;
}

static int classic_close(struct fusd_file_info *file)
{
	(void)file;
	return 0;
}

static ssize_t classic_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	size_t n = sizeof message - 1;
	if (*offset >= (loff_t)n)
		return 0;
	if (length < n - *offset)
		n = length + *offset;
	memcpy(buffer, message + *offset, n - *offset);
	n -= *offset;
	*offset += n;
	(void)file;
	return n;
}

static int classic_ioctl(struct fusd_file_info *file, int request, void *data)
{
	(void)file;
	if ((unsigned int)request != CLASSIC_GET_COUNT)
		return -ENOTTY;
	*(int *)data = opens;
	return 0;
}

int main(int argc, char **argv)
{
	struct fusd_file_operations fops = {
		.open = classic_open, .close = classic_close, .read = classic_read, .ioctl = classic_ioctl,
	};
	if (fusd_register(argc > 1 ? argv[1] : "classic", 0666, NULL, &fops) < 0) {
		perror("fusd_register");
		return 1;
	}
	printf("serving /dev/%s\n", argc > 1 ? argv[1] : "classic");
	fflush(stdout);
	fusd_run();
	return 0;
}
