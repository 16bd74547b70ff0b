/* pager: PREFIX/notify (PREFIX defaults to /dev/pager) blocks each reader until someone writes
 * "page" to PREFIX/input; the reader then gets "page N\n". Blocked reads and poll_diff are kept
 * with -FUSD_NOREPLY and answered later with fusd_return(), possibly from inside their own
 * callback. select() on notify says readable once a page has come that this open has not read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include "fusd.h"

struct listener {
	int pages_seen;
	struct fusd_file_info *read;     /* the blocked read, if any */
	struct fusd_file_info *polldiff; /* the kept poll_diff, if any */
	struct listener *next;
};

static struct listener *listeners;
static int pages;

static void complete_read(struct listener *l)
{
	char line[32];
	size_t n;
	if (!l->read || l->pages_seen >= pages)
		return;
	l->pages_seen = pages;
	n = snprintf(line, sizeof line, "page %d\n", pages);
	if (n > fusd_get_length(l->read))
		n = fusd_get_length(l->read);
	memcpy(fusd_get_read_buffer(l->read), line, n);
	fusd_return(l->read, n);
	l->read = NULL;
}

static void complete_polldiff(struct listener *l)
{
	unsigned int now;
	if (!l->polldiff)
		return;
	now = l->pages_seen < pages ? FUSD_NOTIFY_INPUT : 0;
	if (now != fusd_get_poll_diff_cached_state(l->polldiff)) {
		fusd_return(l->polldiff, now);
		l->polldiff = NULL;
	}
}

static int notify_open(struct fusd_file_info *file)
{
	struct listener *l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->pages_seen = pages;
	l->next = listeners;
	listeners = l;
	file->private_data = l;
	return 0;
}

static int notify_close(struct fusd_file_info *file)
{
	struct listener *l = file->private_data, **p;
	for (p = &listeners; *p; p = &(*p)->next)
		if (*p == l) {
			*p = l->next;
			break;
		}
	if (l->read)
		fusd_destroy(l->read);
	if (l->polldiff)
		fusd_destroy(l->polldiff);
	free(l);
	return 0;
}

static ssize_t notify_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	struct listener *l = file->private_data;
	(void)buffer, (void)length, (void)offset;
	if (l->read)
		return -EBUSY;
	l->read = file;
	complete_read(l); /* a page already waiting answers it right here */
	return -FUSD_NOREPLY;
}

static int notify_polldiff(struct fusd_file_info *file, unsigned int cached_state)
{
	struct listener *l = file->private_data;
	(void)cached_state;
	if (l->polldiff)
		fusd_destroy(l->polldiff);
	l->polldiff = file;
	complete_polldiff(l);
	return -FUSD_NOREPLY;
}

/* A reader interrupted by a signal: its read is dropped. */
static int notify_unblock(struct fusd_file_info *file)
{
	struct listener *l = file->private_data;
	if (l->read) {
		fusd_return(l->read, -EINTR);
		l->read = NULL;
	}
	return 0;
}

static ssize_t input_write(struct fusd_file_info *file, const char *buffer, size_t length, loff_t *offset)
{
	struct listener *l;
	(void)file, (void)offset;
	if (length < 4 || strncmp(buffer, "page", 4) != 0)
		return -EINVAL;
	pages++;
	for (l = listeners; l; l = l->next) {
		complete_read(l);
		complete_polldiff(l);
	}
	return length;
}

int main(int argc, char *argv[])
{
	const char *prefix = argc > 1 ? argv[1] : "/dev/pager";
	char input[256], notify[256];
	snprintf(input, sizeof input, "%s/input", prefix);
	snprintf(notify, sizeof notify, "%s/notify", prefix);
	fusd_simple_register(input, "pager", "pager!input", 0666, NULL, write: input_write);
	fusd_simple_register(notify, "pager", "pager!notify", 0666, NULL, open: notify_open, close: notify_close,
			     read: notify_read, poll_diff: notify_polldiff, unblock: notify_unblock);
	fusd_run();
	return 0;
}
