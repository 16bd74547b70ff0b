/* classic-regress: a classic (fusd.h) driver that exercises what the FUSD-era drivers rely on,
 * for tests/bats/classic.bats. It serves two devices:
 *
 *   NAME      read blocks (-FUSD_NOREPLY) until a generation this open has not seen, then reads
 *             "gen N\n"; a generation already there answers the read inside its own callback.
 *             poll_diff is kept and answered when the state changes (INPUT: an unseen
 *             generation; EXCEPT: after "except"). unblock ends the blocked read with EINTR and
 *             itself returns -EINTR. poll_diff checks that it runs on the main thread outside
 *             any other callback; a violation makes every later read fail EPROTO.
 *   NAME-direct  like NAME, but poll_diff answers at once with the current state, changed or not
 *             (so the library asks again after each read).
 *   NAME-ctl  write "data" (a new generation, answered from the write callback), "thread" (the
 *             same, answered from another thread), "eof" (a new generation that every read, kept
 *             or yet to come, answers with 0 bytes, each open's poll_diff answered before its
 *             read: the original pager's order), "except", "unregister" (fusd_unregister(NAME),
 *             whose -errno the write returns); read: "violations N\n" and a line of
 *             fusd_unparse_flags() results.
 *
 * Options: --own-loop serves from a select() loop of its own instead of fusd_run();
 * --handler FILE installs a SIGINT handler first, and the own loop then writes "handler ran" to
 * FILE and exits(0). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <asm/termbits.h> /* the kernel's struct termios: what TCGETS carries */
#include "fusd.h"

struct client {
	int seen;
	struct fusd_file_info *read;
	struct fusd_file_info *polldiff;
	struct client *next;
};

static struct client *clients;
static int generation, except, violations, depth, data_fd, eof;
static pthread_t main_thread;
static volatile sig_atomic_t handled;

#define ENTER() depth++
#define LEAVE(v) \
	do { \
		depth--; \
		return (v); \
	} while (0)

static void complete_read(struct client *c)
{
	char line[32];
	size_t n;
	if (!c->read || c->seen >= generation)
		return;
	c->seen = generation;
	if (eof) {
		fusd_return(c->read, violations ? -EPROTO : 0);
		c->read = NULL;
		return;
	}
	n = snprintf(line, sizeof line, "gen %d\n", generation);
	if (n > fusd_get_length(c->read))
		n = fusd_get_length(c->read);
	memcpy(fusd_get_read_buffer(c->read), line, n);
	fusd_return(c->read, violations ? -EPROTO : (ssize_t)n);
	c->read = NULL;
}

static void complete_polldiff(struct client *c)
{
	unsigned int now;
	if (!c->polldiff)
		return;
	now = (c->seen < generation ? FUSD_NOTIFY_INPUT : 0) | (except ? FUSD_NOTIFY_EXCEPT : 0);
	if (now != fusd_get_poll_diff_cached_state(c->polldiff)) {
		fusd_return(c->polldiff, now);
		c->polldiff = NULL;
	}
}

static void complete_all(void)
{
	struct client *c;
	for (c = clients; c; c = c->next) {
		complete_read(c);
		complete_polldiff(c);
	}
}

static int data_open(struct fusd_file_info *file)
{
	struct client *c;
	ENTER();
	c = calloc(1, sizeof *c);
	if (!c)
		LEAVE(-ENOMEM);
	c->seen = generation;
	c->next = clients;
	clients = c;
	file->private_data = c;
	LEAVE(0);
}

static int data_close(struct fusd_file_info *file)
{
	struct client *c = file->private_data, **p;
	ENTER();
	for (p = &clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (c->read)
		fusd_destroy(c->read);
	if (c->polldiff)
		fusd_destroy(c->polldiff);
	free(c);
	LEAVE(0);
}

static ssize_t data_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	struct client *c = file->private_data;
	(void)buffer, (void)length, (void)offset;
	ENTER();
	if (violations)
		LEAVE(-EPROTO);
	if (c->read)
		LEAVE(-EBUSY);
	c->read = file;
	complete_read(c);
	if (c->read)
		fprintf(stderr, "classic-regress: a read is pending\n");
	LEAVE(-FUSD_NOREPLY);
}

/* poll_diff must run on the loop's thread, never inside another callback: count what does not. */
static void check_polldiff_context(void)
{
	if (depth != 0 || !pthread_equal(pthread_self(), main_thread)) {
		fprintf(stderr, "classic-regress: poll_diff called %s\n",
			depth ? "inside another callback" : "on another thread");
		violations++;
	}
}

static int data_polldiff(struct fusd_file_info *file, unsigned int cached_state)
{
	struct client *c = file->private_data;
	(void)cached_state;
	check_polldiff_context();
	ENTER();
	if (c->polldiff)
		fusd_destroy(c->polldiff);
	c->polldiff = file;
	complete_polldiff(c);
	LEAVE(-FUSD_NOREPLY);
}

static int direct_polldiff(struct fusd_file_info *file, unsigned int cached_state)
{
	struct client *c = file->private_data;
	(void)cached_state;
	check_polldiff_context();
	return c->seen < generation ? FUSD_NOTIFY_INPUT : 0;
}

static int data_unblock(struct fusd_file_info *file)
{
	struct client *c = file->private_data;
	ENTER();
	if (c->read) {
		fusd_return(c->read, -EINTR);
		c->read = NULL;
	}
	LEAVE(-EINTR);
}

static void *completer(void *arg)
{
	(void)arg;
	complete_all();
	return NULL;
}

static ssize_t ctl_write(struct fusd_file_info *file, const char *buffer, size_t length, loff_t *offset)
{
	pthread_t t;
	(void)file, (void)offset;
	ENTER();
	if (length >= 4 && !strncmp(buffer, "data", 4)) {
		generation++;
		complete_all();
	} else if (length >= 6 && !strncmp(buffer, "thread", 6)) {
		generation++;
		if (pthread_create(&t, NULL, completer, NULL) != 0)
			LEAVE(-EAGAIN);
		pthread_join(t, NULL);
	} else if (length >= 3 && !strncmp(buffer, "eof", 3)) {
		struct client *c;
		eof = 1;
		generation++;
		for (c = clients; c; c = c->next) {
			complete_polldiff(c);
			complete_read(c);
		}
	} else if (length >= 6 && !strncmp(buffer, "except", 6)) {
		except = 1;
		complete_all();
	} else if (length >= 10 && !strncmp(buffer, "unregister", 10)) {
		if (fusd_unregister(data_fd) < 0)
			LEAVE(-errno);
	} else {
		LEAVE(-EINVAL);
	}
	LEAVE(length);
}

static ssize_t ctl_read(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset)
{
	char line[64];
	size_t n;
	(void)file;
	ENTER();
	if (*offset > 0)
		LEAVE(0);
	n = snprintf(line, sizeof line, "violations %d\nunparse %s %s\n", violations,
		     fusd_unparse_flags(FUSD_NOTIFY_INPUT | FUSD_NOTIFY_EXCEPT), fusd_unparse_flags(FUSD_NOTIFY_OUTPUT));
	if (n > length)
		n = length;
	memcpy(buffer, line, n);
	*offset += n;
	LEAVE(n);
}

/* A terminal's ioctls on the direct node: TCGETS's number carries no size, so its buffer (the
 * kernel's struct termios) comes from the table of <linux/fusd_ioctl.h>. */
static int direct_ioctl(struct fusd_file_info *file, int request, void *data)
{
	struct termios t;
	(void)file;
	switch (request) {
	case TCGETS:
		memset(&t, 0, sizeof t);
		t.c_cflag = B9600 | CS8 | CREAD | CLOCAL;
		memcpy(data, &t, sizeof t);
		return 0;
	case TCSETS:
	case TCSETSW:
	case TCSETSF:
		return 0;
	default:
		return -ENOTTY;
	}
}

static void on_sigint(int sig)
{
	(void)sig;
	handled = 1;
}

int main(int argc, char *argv[])
{
	struct fusd_file_operations data = { .open = data_open, .close = data_close, .read = data_read,
					     .poll_diff = data_polldiff, .unblock = data_unblock };
	struct fusd_file_operations direct = { .open = data_open, .close = data_close, .read = data_read,
					       .poll_diff = direct_polldiff, .ioctl = direct_ioctl };
	struct fusd_file_operations ctl = { .read = ctl_read, .write = ctl_write };
	const char *name = NULL, *handler_file = NULL;
	char ctl_name[256], direct_name[256];
	int own_loop = 0, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--own-loop"))
			own_loop = 1;
		else if (!strcmp(argv[i], "--handler") && i + 1 < argc)
			handler_file = argv[++i];
		else
			name = argv[i];
	}
	if (!name) {
		fprintf(stderr, "usage: %s [--own-loop] [--handler FILE] NAME\n", argv[0]);
		return 2;
	}
	main_thread = pthread_self();
	if (handler_file)
		signal(SIGINT, on_sigint);
	snprintf(ctl_name, sizeof ctl_name, "%s-ctl", name);
	snprintf(direct_name, sizeof direct_name, "%s-direct", name);
	if ((data_fd = fusd_register(name, 0666, NULL, &data)) < 0 || fusd_register(ctl_name, 0666, NULL, &ctl) < 0 ||
	    fusd_register(direct_name, 0666, NULL, &direct) < 0) {
		perror("fusd_register");
		return 1;
	}
	if (!own_loop)
		fusd_run();
	for (;;) {
		fd_set set;
		int max = 0;
		FD_ZERO(&set);
		fusd_fdset_add(&set, &max);
		if (select(max + 1, &set, NULL, NULL, NULL) < 0) {
			if (errno != EINTR) {
				perror("select");
				return 1;
			}
			FD_ZERO(&set);
		}
		if (handled) {
			FILE *f = fopen(handler_file, "w");
			if (f) {
				fputs("handler ran\n", f);
				fclose(f);
			}
			exit(0);
		}
		fusd_dispatch_fdset(&set);
	}
}
