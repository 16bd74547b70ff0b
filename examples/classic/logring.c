/* logring: /dev/NAME keeps the last SIZE bytes written to it (usage: logring SIZE [NAME]). Each
 * open reads from where it is in the stream (a reader that fell behind skips what scrolled off);
 * a read at the end blocks until more is written (-FUSD_NOREPLY), or fails EAGAIN with
 * O_NONBLOCK. poll_diff reports readable when this open has unread bytes, writable always. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include "fusd.h"

struct reader {
	struct fusd_file_info *read;
	struct fusd_file_info *polldiff;
	struct reader *next;
};

static struct reader *readers;
static char *ring;
static long ring_size;
static long long written; /* bytes ever written: the stream position after the last byte */

static long long oldest(void)
{
	return written > ring_size ? written - ring_size : 0;
}

static void complete_read(struct reader *r)
{
	loff_t *pos;
	size_t want, n, i;
	char *out;
	if (!r->read)
		return;
	pos = fusd_get_offset(r->read);
	if (*pos < oldest())
		*pos = oldest();
	if (*pos >= written) {
		if (r->read->flags & O_NONBLOCK) {
			fusd_return(r->read, -EAGAIN);
			r->read = NULL;
		}
		return;
	}
	want = fusd_get_length(r->read);
	out = fusd_get_read_buffer(r->read);
	n = written - *pos < (long long)want ? (size_t)(written - *pos) : want;
	for (i = 0; i < n; i++)
		out[i] = ring[(*pos + i) % ring_size];
	*pos += n;
	fusd_return(r->read, n);
	r->read = NULL;
}

static void complete_polldiff(struct reader *r)
{
	unsigned int now;
	if (!r->polldiff)
		return;
	now = FUSD_NOTIFY_OUTPUT;
	if (*fusd_get_offset(r->polldiff) < written)
		now |= FUSD_NOTIFY_INPUT;
	if (now != fusd_get_poll_diff_cached_state(r->polldiff)) {
		fusd_return(r->polldiff, now);
		r->polldiff = NULL;
	}
}

static int logring_open(struct fusd_file_info *file)
{
	struct reader *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOBUFS;
	r->next = readers;
	readers = r;
	file->private_data = r;
	return 0;
}

static int logring_close(struct fusd_file_info *file)
{
	struct reader *r = file->private_data, **p;
	for (p = &readers; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	if (r->read)
		fusd_destroy(r->read);
	if (r->polldiff)
		fusd_destroy(r->polldiff);
	free(r);
	return 0;
}

static ssize_t logring_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	struct reader *r = file->private_data;
	(void)buffer, (void)length, (void)offset;
	if (r->read)
		return -EBUSY;
	r->read = file;
	complete_read(r);
	return -FUSD_NOREPLY;
}

static int logring_polldiff(struct fusd_file_info *file, unsigned int cached_state)
{
	struct reader *r = file->private_data;
	(void)cached_state;
	if (r->polldiff)
		fusd_destroy(r->polldiff);
	r->polldiff = file;
	complete_polldiff(r);
	return -FUSD_NOREPLY;
}

static int logring_unblock(struct fusd_file_info *file)
{
	struct reader *r = file->private_data;
	if (r->read) {
		fusd_return(r->read, -EINTR);
		r->read = NULL;
	}
	return 0;
}

static ssize_t logring_write(struct fusd_file_info *file, const char *buffer, size_t length, loff_t *offset)
{
	struct reader *r;
	size_t i;
	(void)file, (void)offset;
	for (i = 0; i < length; i++)
		ring[(written + i) % ring_size] = buffer[i];
	written += length;
	for (r = readers; r; r = r->next) {
		complete_read(r);
		complete_polldiff(r);
	}
	return length;
}

int main(int argc, char *argv[])
{
	if (argc < 2 || (ring_size = atol(argv[1])) <= 0) {
		fprintf(stderr, "usage: %s SIZE [NAME]\n", argv[0]);
		return 1;
	}
	if (!(ring = malloc(ring_size))) {
		perror("malloc");
		return 1;
	}
	fusd_simple_register(argc > 2 ? argv[2] : "/dev/logring", "misc", "logring", 0666, NULL,
			     .open = logring_open, .close = logring_close, .read = logring_read,
			     .write = logring_write, .poll_diff = logring_polldiff, .unblock = logring_unblock);
	fusd_run();
	return 0;
}
