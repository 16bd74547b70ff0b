// SPDX-License-Identifier: GPL-2.0
/*
 * fusd-kbench - 1-byte read(2) cost: /dev/zero vs a fusd.ko node served by a minimal
 * raw-UAPI daemon, in the same run (on a TCG guest only the ratio means anything).
 *
 *   fusd-kbench [ITERATIONS]      default 20000
 *   fusd-kbench serve NAME KIND     only be one of the daemons, for /dev/NAME, until killed
 *                                   (KIND: readwrite, exchange, exchange-epoll), e.g. to
 *                                   profile it beside a libfusd daemon
 * Also a pipe ping-pong between two processes: the user-space round-trip floor, and the same
 * raw daemon answering through FUSD_IOC_EXCHANGE (one call per request), without and with a
 * wake_fd (an epoll set, as libfusd passes: what watching the loop costs).
 * Prints "BENCH <name> ns_per_op=<n> [ratio=<x>]" lines; caller and daemon run pinned to
 * the same CPU ("samecpu") and, with 2+ CPUs, to different CPUs ("crosscpu", a tenth of
 * the iterations).
 */
#include "ft.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

/* The smallest daemon: every READ gets len zero bytes, everything else 0. */
static void bench_daemon(int fd)
{
	static unsigned char msg[FUSD_MIN_READ_BUFFER];
	static unsigned char zeros[FUSD_CHUNK_MAX];
	struct fusd_req_header *h = (struct fusd_req_header *)msg;

	for (;;) {
		ssize_t n = read(fd, msg, sizeof(msg));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		if (h->opcode == FUSD_OP_INTERRUPT || (h->id & FUSD_ID_NOREPLY))
			continue;
		if (h->opcode == FUSD_OP_READ)
			ft_reply(fd, h->id, h->len, zeros, h->len);
		else
			ft_reply(fd, h->id, 0, NULL, 0);
	}
}

/* The same daemon on FUSD_IOC_EXCHANGE: each reply and the next read in one call. With
 * @wake_fd >= 0 the exchange also watches that fd while it waits, as libfusd's loop does with
 * its epoll set. */
static void exchange_loop(int fd, int wake_fd)
{
	static unsigned char msg[FUSD_MIN_READ_BUFFER];
	static unsigned char out[sizeof(struct fusd_reply) + FUSD_CHUNK_MAX];
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	struct fusd_reply *r = (struct fusd_reply *)out;
	struct fusd_exchange ex;

	memset(&ex, 0, sizeof(ex));
	ex.buf = (uintptr_t)msg;
	ex.buf_size = sizeof(msg);
	ex.flags = FUSD_EXCHANGE_WAIT;
	ex.wake_fd = wake_fd;
	for (;;) {
		int n = ioctl(fd, FUSD_IOC_EXCHANGE, &ex);

		ex.msg = 0;
		ex.msg_size = 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(0);
		}
		if (h->opcode == FUSD_OP_INTERRUPT || (h->id & FUSD_ID_NOREPLY))
			continue;
		if (h->opcode == FUSD_OP_READ) {
			ft_reply_head(r, h->id, h->len, h->len);
			memset(out + sizeof(*r), 0, h->len);
		} else {
			ft_reply_head(r, h->id, 0, 0);
		}
		ex.msg = (uintptr_t)out;
		ex.msg_size = r->size;
	}
}

static void bench_daemon_exchange(int fd)
{
	exchange_loop(fd, -1);
}

/* An epoll set with an idle eventfd in it, the shape of libfusd's loop, as the wake_fd. */
static void bench_daemon_exchange_epoll(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (ep < 0 || efd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev))
		_exit(1);
	exchange_loop(fd, ep);
}

static double ns_per_read(const char *path, long iters)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char c;
	double t;

	if (fd < 0)
		ft_die("open %s", path);
	for (long i = 0; i < iters / 10; i++)		/* warm up */
		if (read(fd, &c, 1) != 1)
			ft_die("read %s", path);
	t = ft_now();
	for (long i = 0; i < iters; i++)
		if (read(fd, &c, 1) != 1)
			ft_die("read %s", path);
	t = ft_now() - t;
	close(fd);
	return t * 1e9 / iters;
}

/* The user-space floor: one byte there and back over two pipes between two processes. */
static double ns_per_pingpong(int caller_cpu, int peer_cpu, long iters)
{
	int ab[2], ba[2], st;
	double t = 0;
	pid_t p;
	char c = 0;

	if (pipe(ab) || pipe(ba))
		ft_die("pipe");
	p = fork();
	if (p == 0) {
		close(ab[1]);
		close(ba[0]);
		ft_pin_to_cpu(peer_cpu);
		while (read(ab[0], &c, 1) == 1)
			if (write(ba[1], &c, 1) != 1)
				break;
		_exit(0);
	}
	ft_pin_to_cpu(caller_cpu);
	for (long i = 0; i < iters / 10 + iters; i++) {
		if (i == iters / 10)
			t = ft_now();
		if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
			ft_die("pingpong");
	}
	t = ft_now() - t;
	close(ab[1]);
	waitpid(p, &st, 0);
	close(ab[0]);
	close(ba[0]);
	close(ba[1]);
	return t * 1e9 / iters;
}

/* 1-byte reads from a fusd.ko node whose daemon (read+write or exchange) runs on @daemon_cpu. */
static double ns_per_fusd_read(void (*daemon)(int), int caller_cpu, int daemon_cpu, long iters)
{
	const char *name = "fusd-bench";
	double ns;
	int fd, st;
	pid_t d;

	ft_pin_to_cpu(daemon_cpu);
	fd = ft_channel();
	if (fd < 0 || ft_register(fd, name, 0666, 0, 0, NULL))
		ft_die("register %s", name);
	d = fork();
	if (d == 0)
		daemon(fd);
	close(fd);
	ft_pin_to_cpu(caller_cpu);
	ns = ns_per_read("/dev/fusd-bench", iters);
	kill(d, SIGKILL);
	waitpid(d, &st, 0);
	for (int i = 0; i < 200 && access("/dev/fusd-bench", F_OK) == 0; i++)
		ft_msleep(5);
	return ns;
}

static void run(const char *label, int caller_cpu, int daemon_cpu, long iters)
{
	double zero, fusd, exch, exep, pipe;

	ft_pin_to_cpu(caller_cpu);
	zero = ns_per_read("/dev/zero", iters);
	fusd = ns_per_fusd_read(bench_daemon, caller_cpu, daemon_cpu, iters);
	exch = ns_per_fusd_read(bench_daemon_exchange, caller_cpu, daemon_cpu, iters);
	exep = ns_per_fusd_read(bench_daemon_exchange_epoll, caller_cpu, daemon_cpu, iters);
	pipe = ns_per_pingpong(caller_cpu, daemon_cpu, iters);
	printf("BENCH %s devzero-1B ns_per_op=%.0f\n", label, zero);
	printf("BENCH %s pipe-pingpong ns_per_op=%.0f ratio=%.1f\n", label, pipe, pipe / zero);
	printf("BENCH %s fusd-kernel-1B ns_per_op=%.0f ratio=%.1f\n", label, fusd, fusd / zero);
	printf("BENCH %s fusd-kernel-exchange-1B ns_per_op=%.0f ratio=%.1f\n", label, exch,
	       exch / zero);
	printf("BENCH %s fusd-kernel-exchange-epoll-1B ns_per_op=%.0f ratio=%.1f\n", label, exep,
	       exep / zero);
}

static int serve(const char *name, const char *kind)
{
	static const struct {
		const char *kind;
		void (*daemon)(int);
	} daemons[] = {
		{ "readwrite", bench_daemon },
		{ "exchange", bench_daemon_exchange },
		{ "exchange-epoll", bench_daemon_exchange_epoll },
	};
	int fd;

	for (size_t i = 0; i < sizeof(daemons) / sizeof(daemons[0]); i++) {
		if (strcmp(kind, daemons[i].kind))
			continue;
		fd = ft_channel();
		if (fd < 0 || ft_register(fd, name, 0666, 0, 0, NULL))
			ft_die("register %s", name);
		daemons[i].daemon(fd);
	}
	fprintf(stderr, "fusd-kbench: no daemon kind %s\n", kind);
	return 2;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 20000;

	if (argc == 4 && !strcmp(argv[1], "serve"))
		return serve(argv[2], argv[3]);

	setvbuf(stdout, NULL, _IOLBF, 0);
	run("samecpu", 0, 0, iters);
	/* cross-CPU wake-ups cost up to milliseconds on a busy TCG host: fewer rounds */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		run("crosscpu", 0, 1, iters / 10 > 100 ? iters / 10 : 100);
	return 0;
}
