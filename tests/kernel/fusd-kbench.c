// SPDX-License-Identifier: GPL-2.0
/*
 * fusd-kbench - 1-byte read(2) cost: /dev/zero vs a fusd.ko node served by a minimal
 * raw-UAPI daemon, in the same run (on a TCG guest only the ratio means anything).
 *
 *   fusd-kbench [ITERATIONS]      default 20000
 * Also a pipe ping-pong between two processes: the user-space round-trip floor, and the same
 * raw daemon answering through FUSD_IOC_EXCHANGE (one call per request, no wake_fd).
 * Prints "BENCH <name> ns_per_op=<n> [ratio=<x>]" lines; caller and daemon run pinned to
 * the same CPU ("samecpu") and, with 2+ CPUs, to different CPUs ("crosscpu", a tenth of
 * the iterations).
 */
#include "ft.h"

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

/* The same daemon on FUSD_IOC_EXCHANGE: each reply and the next read in one call. */
static void bench_daemon_exchange(int fd)
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
	ex.wake_fd = -1;
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
		memset(r, 0, sizeof(*r));
		r->size = sizeof(*r);
		r->type = FUSD_MSG_REPLY;
		r->id = h->id;
		if (h->opcode == FUSD_OP_READ) {
			memset(out + sizeof(*r), 0, h->len);
			r->size += h->len;
			r->result = h->len;
		}
		ex.msg = (uintptr_t)out;
		ex.msg_size = r->size;
	}
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		ft_die("sched_setaffinity %d", cpu);
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
		pin(peer_cpu);
		while (read(ab[0], &c, 1) == 1)
			if (write(ba[1], &c, 1) != 1)
				break;
		_exit(0);
	}
	pin(caller_cpu);
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

	pin(daemon_cpu);
	fd = ft_channel();
	if (fd < 0 || ft_register(fd, name, 0666, 0, 0, NULL))
		ft_die("register %s", name);
	d = fork();
	if (d == 0)
		daemon(fd);
	close(fd);
	pin(caller_cpu);
	ns = ns_per_read("/dev/fusd-bench", iters);
	kill(d, SIGKILL);
	waitpid(d, &st, 0);
	for (int i = 0; i < 200 && access("/dev/fusd-bench", F_OK) == 0; i++)
		ft_msleep(5);
	return ns;
}

static void run(const char *label, int caller_cpu, int daemon_cpu, long iters)
{
	double zero, fusd, exch, pipe;

	pin(caller_cpu);
	zero = ns_per_read("/dev/zero", iters);
	fusd = ns_per_fusd_read(bench_daemon, caller_cpu, daemon_cpu, iters);
	exch = ns_per_fusd_read(bench_daemon_exchange, caller_cpu, daemon_cpu, iters);
	pipe = ns_per_pingpong(caller_cpu, daemon_cpu, iters);
	printf("BENCH %s devzero-1B ns_per_op=%.0f\n", label, zero);
	printf("BENCH %s pipe-pingpong ns_per_op=%.0f ratio=%.1f\n", label, pipe, pipe / zero);
	printf("BENCH %s fusd-kernel-1B ns_per_op=%.0f ratio=%.1f\n", label, fusd, fusd / zero);
	printf("BENCH %s fusd-kernel-exchange-1B ns_per_op=%.0f ratio=%.1f\n", label, exch,
	       exch / zero);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 20000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	run("samecpu", 0, 0, iters);
	/* cross-CPU wake-ups cost up to milliseconds on a busy TCG host: fewer rounds */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1)
		run("crosscpu", 0, 1, iters / 10 > 100 ? iters / 10 : 100);
	return 0;
}
