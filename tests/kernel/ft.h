/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ft.h - helpers for the fusd.ko tests: a raw-UAPI daemon (only <linux/fusd.h>) and the
 * calls a test makes.  Header-only: each test program includes it once.
 *
 * The daemon serves devices of three kinds:
 *   echo  each open file is a FIFO: writes append, reads take (EOF when empty); the open
 *         reply sets the mask to POLLOUT, and READY messages follow the FIFO's state
 *   zero  reads return zeros, writes are swallowed; the open reply sets no mask
 *   hold  reads are held unanswered; when one is interrupted the daemon answers it anyway
 *         (that late reply must fail with ENOENT) and answers the next read with
 *         FT_AFTER_INTERRUPT
 * and the FT_IOC_* ioctls below on every kind.
 */
#ifndef FT_H
#define FT_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/fusd.h>

enum ft_kind { FT_ECHO, FT_ZERO, FT_HOLD, FT_SHM };	/* FT_SHM: echo that answers mmap */

struct ft_whoami {
	__u32 pid, uid, gid, fsuid, fsgid, flags;
};
struct ft_echo {
	unsigned char b[64];
};
struct ft_big {
	unsigned char b[16000];
};
struct ft_stats {
	__u64 opens, releases, reads, writes, ioctls, interrupts, late_enoent, gone;
	__u64 max_read, max_write, unknown_release;
};

#define FT_IOC_ECHO	_IOWR('E', 1, struct ft_echo)	/* each byte + 1 */
#define FT_IOC_WHOAMI	_IOR('E', 2, struct ft_whoami)	/* the caller, as the daemon sees it */
#define FT_IOC_SET	_IOW('E', 3, __u32)
#define FT_IOC_GET	_IOR('E', 4, __u32)
#define FT_IOC_PLAIN	_IO('E', 5)			/* returns arg + 1 */
#define FT_IOC_READY	_IO('E', 6)			/* daemon sends READY(arg) for this file */
#define FT_IOC_BIG	_IOWR('E', 7, struct ft_big)	/* bytes reversed */
#define FT_IOC_STATS	_IOR('E', 8, struct ft_stats)
#define FT_IOC_FAIL	_IO('E', 9)			/* returns -arg */
#define FT_IOC_PEEK	_IOWR('E', 10, struct ft_echo)	/* in: u64 offset; out: 64 bytes of the memfd */
#define FT_IOC_POKE	_IOW('E', 11, struct ft_echo)	/* u64 offset, then 56 bytes for the memfd */
#define FT_IOC_RENEW	_IO('E', 12)			/* close the memfd, make a new one */
#define FT_IOC_SHM_CTL	_IO('E', 13)			/* arg 1: shrink the memfd to 1 page; 2: seal
							   it against writes; 3: back as it was */

/*
 * An FT_SHM device's memory: a memfd of FT_SHM_PAGES pages, page i starting "shm page i".  An
 * mmap at device page FT_MAP_BAD + k gets the k-th bad answer of ft_do_mmap(); others map the
 * memfd at the same offset.
 */
#define FT_SHM_PAGES	4
#define FT_MAP_BAD	100

#define FT_AFTER_INTERRUPT "after-interrupt"
#define FT_FIFO_MAX	(4u << 20)

/* ---- small things ---- */

static inline double ft_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void ft_msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static inline void ft_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ft: fatal: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno));
	va_end(ap);
	exit(99);
}

/* The calling thread on @cpu only. */
static inline void ft_pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		ft_die("sched_setaffinity(%d)", cpu);
}

/* ---- the daemon's side of the UAPI ---- */

/* Open a channel and say HELLO; returns the fd or -errno. */
static inline int ft_channel(void)
{
	struct fusd_hello h;
	int fd = open(FUSD_CONTROL_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(&h, 0, sizeof(h));
	h.major = FUSD_VERSION_MAJOR;
	h.minor = FUSD_VERSION_MINOR;
	if (ioctl(fd, FUSD_IOC_HELLO, &h) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Register /dev/<name>; returns 0 or -errno. */
static inline int ft_register(int fd, const char *name, unsigned int mode, unsigned int uid,
			      unsigned int gid, __u64 *dev_id)
{
	struct fusd_register r;

	memset(&r, 0, sizeof(r));
	memcpy(r.name, name, strnlen(name, sizeof(r.name)));	/* 64 bytes: unterminated */
	r.mode = mode;
	r.uid = uid;
	r.gid = gid;
	if (ioctl(fd, FUSD_IOC_REGISTER, &r) < 0)
		return -errno;
	if (dev_id)
		*dev_id = r.dev_id;
	return 0;
}

static inline int ft_unregister(int fd, __u64 dev_id)
{
	struct fusd_unregister u = { dev_id };

	return ioctl(fd, FUSD_IOC_UNREGISTER, &u) < 0 ? -errno : 0;
}

static inline int ft_force_unregister(int fd, const char *name)
{
	struct fusd_force_unregister f;

	memset(&f, 0, sizeof(f));
	memcpy(f.name, name, strnlen(name, sizeof(f.name) - 1));
	return ioctl(fd, FUSD_IOC_FORCE_UNREGISTER, &f) < 0 ? -errno : 0;
}

/* The header of a reply to @id carrying @len payload bytes after it. */
static inline void ft_reply_head(struct fusd_reply *r, __u64 id, int result, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->size = sizeof(*r) + len;
	r->type = FUSD_MSG_REPLY;
	r->id = id;
	r->result = result;
}

/* One reply: returns 0 or -errno of the write. */
static inline int ft_reply(int fd, __u64 id, int result, const void *data, size_t len)
{
	static unsigned char buf[sizeof(struct fusd_reply) + FUSD_CHUNK_MAX];
	struct fusd_reply *r = (struct fusd_reply *)buf;
	ssize_t n;

	ft_reply_head(r, id, result, len);
	if (len)
		memcpy(buf + sizeof(*r), data, len);
	n = write(fd, buf, r->size);
	if (n < 0)
		return -errno;
	return n == (ssize_t)r->size ? 0 : -EIO;
}

static inline int ft_reply_open(int fd, __u64 id, int result, int set_mask, __u32 mask)
{
	struct fusd_reply r;

	ft_reply_head(&r, id, result, 0);
	if (set_mask) {
		r.flags = FUSD_REPLY_POLL;
		r.poll_mask = mask;
	}
	return write(fd, &r, sizeof(r)) < 0 ? -errno : 0;
}

static inline int ft_ready(int fd, __u64 dev_id, __u64 file_id, __u32 mask)
{
	struct fusd_ready m;

	memset(&m, 0, sizeof(m));
	m.size = sizeof(m);
	m.type = FUSD_MSG_READY;
	m.dev_id = dev_id;
	m.file_id = file_id;
	m.mask = mask;
	return write(fd, &m, sizeof(m)) < 0 ? -errno : 0;
}

/* ---- the test daemon ---- */

/* A memfd of FT_SHM_PAGES pages, page i starting "shm page i". */
static inline int ft_shm_new(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = memfd_create("ft-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	char line[32];

	if (fd < 0 || ftruncate(fd, FT_SHM_PAGES * ps))
		ft_die("memfd");
	for (int i = 0; i < FT_SHM_PAGES; i++)
		if (pwrite(fd, line, snprintf(line, sizeof(line), "shm page %d", i) + 1, i * ps) < 0)
			ft_die("memfd write");
	return fd;
}

static inline int ft_sealed_new(void)
{
	int fd = memfd_create("ft-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, sysconf(_SC_PAGESIZE)) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW))
		ft_die("sealed memfd");
	return fd;
}

struct ft_dev {
	__u64 id;
	int kind;
};

struct ft_file {
	__u64 id, dev_id;
	unsigned char *buf;
	size_t len;
	int used;
};

struct ft_held {
	__u64 id;
	int used;
};

struct ft_daemon {
	int fd;
	int ev;			/* event lines go here (-1: nowhere) */
	struct ft_dev devs[16];
	int ndevs;
	struct ft_file files[512];
	struct ft_held held[256];
	int answer_next_hold;
	__u32 value;
	struct ft_stats st;
	unsigned char *msg;
	int shm, sealed;	/* FT_SHM: the memfd, and a write-sealed one */
};

static inline void ft_event(struct ft_daemon *d, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	if (d->ev < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(d->ev, line, n) < 0)
		return;
}

static inline struct ft_dev *ft_dev_find(struct ft_daemon *d, __u64 id)
{
	for (int i = 0; i < d->ndevs; i++)
		if (d->devs[i].id == id)
			return &d->devs[i];
	return NULL;
}

static inline struct ft_file *ft_file_find(struct ft_daemon *d, __u64 id, int create)
{
	struct ft_file *free_slot = NULL;

	for (int i = 0; i < (int)(sizeof(d->files) / sizeof(d->files[0])); i++) {
		if (d->files[i].used && d->files[i].id == id)
			return &d->files[i];
		if (!d->files[i].used && !free_slot)
			free_slot = &d->files[i];
	}
	if (!create || !free_slot)
		return NULL;
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = 1;
	free_slot->id = id;
	return free_slot;
}

static inline void ft_fifo_ready(struct ft_daemon *d, struct ft_file *f)
{
	ft_ready(d->fd, f->dev_id, f->id, f->len ? FUSD_POLLIN | FUSD_POLLOUT : FUSD_POLLOUT);
}

static inline void ft_do_open(struct ft_daemon *d, struct fusd_req_header *h, struct ft_dev *dev)
{
	struct ft_file *f = ft_file_find(d, h->file_id, 1);

	d->st.opens++;
	if (!f) {
		ft_reply(d->fd, h->id, -EMFILE, NULL, 0);
		return;
	}
	f->dev_id = h->dev_id;
	if (dev->kind == FT_ECHO)
		ft_reply_open(d->fd, h->id, 0, 1, FUSD_POLLOUT);
	else
		ft_reply_open(d->fd, h->id, 0, 0, 0);
}

static inline void ft_do_release(struct ft_daemon *d, struct fusd_req_header *h)
{
	struct ft_file *f = ft_file_find(d, h->file_id, 0);

	d->st.releases++;
	if (!f) {
		d->st.unknown_release++;
		return;
	}
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

static inline void ft_do_read(struct ft_daemon *d, struct fusd_req_header *h, struct ft_dev *dev)
{
	static unsigned char zeros[FUSD_CHUNK_MAX];
	struct ft_file *f = ft_file_find(d, h->file_id, 0);
	size_t n;

	d->st.reads++;
	if (h->len > d->st.max_read)
		d->st.max_read = h->len;
	if (dev->kind == FT_ZERO) {
		ft_reply(d->fd, h->id, h->len, zeros, h->len);
		return;
	}
	if (dev->kind == FT_HOLD) {
		if (d->answer_next_hold) {
			d->answer_next_hold = 0;
			n = strlen(FT_AFTER_INTERRUPT) < h->len ? strlen(FT_AFTER_INTERRUPT) : h->len;
			ft_reply(d->fd, h->id, n, FT_AFTER_INTERRUPT, n);
			return;
		}
		for (int i = 0; i < (int)(sizeof(d->held) / sizeof(d->held[0])); i++) {
			if (!d->held[i].used) {
				d->held[i].used = 1;
				d->held[i].id = h->id;
				ft_event(d, "held %llu", (unsigned long long)h->id);
				return;
			}
		}
		ft_reply(d->fd, h->id, -EBUSY, NULL, 0);
		return;
	}
	if (!f) {
		ft_reply(d->fd, h->id, -EBADF, NULL, 0);
		return;
	}
	if (!f->len && (h->flags & O_NONBLOCK)) {
		ft_reply(d->fd, h->id, -EAGAIN, NULL, 0);
		return;
	}
	/* readiness first: when the caller's read returns, poll() already tells the truth */
	n = f->len < h->len ? f->len : h->len;
	f->len -= n;
	ft_fifo_ready(d, f);
	ft_reply(d->fd, h->id, n, f->buf, n);
	memmove(f->buf, f->buf + n, f->len);
}

static inline void ft_do_write(struct ft_daemon *d, struct fusd_req_header *h, struct ft_dev *dev,
			       const unsigned char *data)
{
	struct ft_file *f = ft_file_find(d, h->file_id, 0);
	size_t plen = h->size - sizeof(*h);

	d->st.writes++;
	if (plen > d->st.max_write)
		d->st.max_write = plen;
	if (plen != h->len) {
		ft_event(d, "bad write payload %zu != %u", plen, h->len);
		ft_reply(d->fd, h->id, -EPROTO, NULL, 0);
		return;
	}
	if (dev->kind != FT_ECHO) {
		ft_reply(d->fd, h->id, plen, NULL, 0);
		return;
	}
	if (!f) {
		ft_reply(d->fd, h->id, -EBADF, NULL, 0);
		return;
	}
	if (f->len + plen > FT_FIFO_MAX) {
		ft_reply(d->fd, h->id, -ENOSPC, NULL, 0);
		return;
	}
	if (!f->buf)
		f->buf = malloc(FT_FIFO_MAX);
	memcpy(f->buf + f->len, data, plen);
	f->len += plen;
	ft_fifo_ready(d, f);
	ft_reply(d->fd, h->id, plen, NULL, 0);
}

static inline void ft_do_ioctl(struct ft_daemon *d, struct fusd_req_header *h,
			       const unsigned char *data)
{
	static unsigned char out[FUSD_IOCTL_MAX];
	size_t plen = h->size - sizeof(*h);
	struct ft_whoami w;

	d->st.ioctls++;
	switch (h->ioctl_cmd) {
	case FT_IOC_ECHO:
	case FT_IOC_BIG:
		if (plen != h->len || h->reply_max != h->len) {
			ft_reply(d->fd, h->id, -EPROTO, NULL, 0);
			return;
		}
		for (size_t i = 0; i < plen; i++)
			out[i] = h->ioctl_cmd == FT_IOC_ECHO ? data[i] + 1 : data[plen - 1 - i];
		ft_reply(d->fd, h->id, 0, out, plen);
		return;
	case FT_IOC_WHOAMI:
		w.pid = h->pid;
		w.uid = h->uid;
		w.gid = h->gid;
		w.fsuid = h->fsuid;
		w.fsgid = h->fsgid;
		w.flags = h->flags;
		ft_reply(d->fd, h->id, 0, &w, sizeof(w));
		return;
	case FT_IOC_SET:
		if (plen != sizeof(d->value)) {
			ft_reply(d->fd, h->id, -EPROTO, NULL, 0);
			return;
		}
		memcpy(&d->value, data, sizeof(d->value));
		ft_reply(d->fd, h->id, 0, NULL, 0);
		return;
	case FT_IOC_GET:
		ft_reply(d->fd, h->id, 0, &d->value, sizeof(d->value));
		return;
	case FT_IOC_PLAIN:
		ft_reply(d->fd, h->id, plen ? -EPROTO : (int)(h->ioctl_arg + 1), NULL, 0);
		return;
	case FT_IOC_READY:
		ft_ready(d->fd, h->dev_id, h->file_id, (__u32)h->ioctl_arg);
		ft_reply(d->fd, h->id, 0, NULL, 0);
		return;
	case FT_IOC_STATS:
		ft_reply(d->fd, h->id, 0, &d->st, sizeof(d->st));
		return;
	case FT_IOC_FAIL:
		ft_reply(d->fd, h->id, -(int)h->ioctl_arg, NULL, 0);
		return;
	case FT_IOC_PEEK: {
		unsigned char out[64] = { 0 };
		__u64 off;

		memcpy(&off, data, sizeof(off));
		ft_reply(d->fd, h->id, pread(d->shm, out, sizeof(out), off) < 0 ? -errno : 0, out,
			 sizeof(out));
		return;
	}
	case FT_IOC_POKE: {
		__u64 off;

		memcpy(&off, data, sizeof(off));
		ft_reply(d->fd, h->id, pwrite(d->shm, data + 8, 56, off) == 56 ? 0 : -EIO, NULL, 0);
		return;
	}
	case FT_IOC_SHM_CTL: {
		long ps = sysconf(_SC_PAGESIZE);
		char line[32];
		int r = h->ioctl_arg == 1 ? ftruncate(d->shm, ps) :
			h->ioctl_arg == 2 ? fcntl(d->shm, F_ADD_SEALS, F_SEAL_WRITE) :
			ftruncate(d->shm, FT_SHM_PAGES * ps);

		for (int i = 1; h->ioctl_arg == 3 && !r && i < FT_SHM_PAGES; i++)
			if (pwrite(d->shm, line, snprintf(line, sizeof(line), "shm page %d", i) + 1,
				   i * ps) < 0)
				r = -1;

		ft_reply(d->fd, h->id, r < 0 ? -errno : 0, NULL, 0);
		return;
	}
	case FT_IOC_RENEW:
		close(d->shm);
		d->shm = ft_shm_new();
		ft_reply(d->fd, h->id, d->shm < 0 ? -ENOMEM : 0, NULL, 0);
		return;
	default:
		ft_reply(d->fd, h->id, -ENOTTY, NULL, 0);
	}
}

/* Each bad answer to an mmap at device page FT_MAP_BAD + k, and what the caller gets. */
static inline void ft_do_mmap(struct ft_daemon *d, struct fusd_req_header *h, struct ft_dev *dev,
			      const unsigned char *data)
{
	struct fusd_mmap_request mr;
	struct fusd_mmap_reply rep = { 0 };
	long ps = sysconf(_SC_PAGESIZE);
	size_t len = sizeof(rep);
	int result = 0, err, tmp = -1;
	char path[64];

	if (dev->kind != FT_SHM || h->len != sizeof(mr)) {
		ft_reply(d->fd, h->id, -ENODEV, NULL, 0);
		return;
	}
	memcpy(&mr, data, sizeof(mr));
	rep.fd = d->shm;
	rep.offset = mr.offset;
	switch (mr.offset / ps) {
	case FT_MAP_BAD + 0: rep.fd = -1; break;			/* EBADF */
	case FT_MAP_BAD + 1: rep.fd = 987; break;			/* EBADF: not open */
	case FT_MAP_BAD + 2: rep.fd = d->fd; rep.offset = 0; break;	/* ENODEV: not shmem */
	case FT_MAP_BAD + 3:					/* read-only: EACCES for shared writes */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", d->shm);
		rep.fd = tmp = open(path, O_RDONLY);
		rep.offset = 0;
		break;
	case FT_MAP_BAD + 4: rep.offset = 1; break;			/* EINVAL: unaligned */
	case FT_MAP_BAD + 5: rep.offset = 0; rep.flags = 1; break;	/* EINVAL: flags */
	case FT_MAP_BAD + 6: len = sizeof(rep) - 1; break;		/* EINVAL: short payload */
	case FT_MAP_BAD + 7: result = 1; len = 0; break;		/* EINVAL: result > 0 */
	case FT_MAP_BAD + 8: result = -EPERM; len = 0; break;		/* the driver's own error */
	case FT_MAP_BAD + 9: rep.fd = d->sealed; rep.offset = 0; break;	/* write-sealed */
	case FT_MAP_BAD + 10: rep.offset = -(__u64)ps; break;		/* EINVAL: overflow */
	default: break;						/* past the memfd's end: ENXIO */
	}
	err = ft_reply(d->fd, h->id, result, &rep, len);
	if (err)	/* refused: answer the caller with the reason, as libfusd does */
		ft_reply(d->fd, h->id, err, NULL, 0);
	if (tmp >= 0)
		close(tmp);
	ft_event(d, "mmap %llu %d", (unsigned long long)(mr.offset / ps), err);
}

static inline void ft_do_interrupt(struct ft_daemon *d, struct fusd_req_header *h)
{
	d->st.interrupts++;
	for (int i = 0; i < (int)(sizeof(d->held) / sizeof(d->held[0])); i++) {
		if (d->held[i].used && d->held[i].id == h->id) {
			int late = ft_reply(d->fd, h->id, 1, "x", 1);

			d->held[i].used = 0;
			if (late == -ENOENT)
				d->st.late_enoent++;
			d->answer_next_hold = 1;
			ft_event(d, "interrupt %llu late %d", (unsigned long long)h->id, late);
			return;
		}
	}
	ft_event(d, "interrupt %llu unheld", (unsigned long long)h->id);
}

/* Handle one message already read into d->msg. */
static inline void ft_handle(struct ft_daemon *d, ssize_t n)
{
	struct fusd_req_header *h = (struct fusd_req_header *)d->msg;
	const unsigned char *data = d->msg + sizeof(*h);
	struct ft_dev *dev;

	if (n < (ssize_t)sizeof(*h) || h->size != (__u32)n) {
		ft_event(d, "bad message size %zd", n);
		return;
	}
	if (h->opcode == FUSD_OP_INTERRUPT) {
		ft_do_interrupt(d, h);
		return;
	}
	if (h->opcode == FUSD_OP_GONE) {
		d->st.gone++;
		ft_event(d, "gone %llu", (unsigned long long)h->dev_id);
		return;
	}
	if (h->opcode == FUSD_OP_RELEASE) {
		ft_do_release(d, h);
		return;
	}
	dev = ft_dev_find(d, h->dev_id);
	if (!dev) {
		ft_reply(d->fd, h->id, -ENODEV, NULL, 0);
		return;
	}
	switch (h->opcode) {
	case FUSD_OP_OPEN:
		ft_do_open(d, h, dev);
		break;
	case FUSD_OP_READ:
		ft_do_read(d, h, dev);
		break;
	case FUSD_OP_WRITE:
		ft_do_write(d, h, dev, data);
		break;
	case FUSD_OP_IOCTL:
		ft_do_ioctl(d, h, data);
		break;
	case FUSD_OP_MMAP:
		ft_do_mmap(d, h, dev, data);
		break;
	default:
		ft_event(d, "unknown opcode %u", h->opcode);
		ft_reply(d->fd, h->id, -ENOSYS, NULL, 0);
	}
}

static inline void ft_daemon_init(struct ft_daemon *d, int fd, int ev)
{
	memset(d, 0, sizeof(*d));
	d->fd = fd;
	d->ev = ev;
	d->shm = ft_shm_new();
	d->sealed = ft_sealed_new();
	d->msg = malloc(FUSD_MIN_READ_BUFFER);
	if (!d->msg)
		ft_die("malloc");
}

static inline int ft_daemon_add(struct ft_daemon *d, const char *name, int kind,
				unsigned int mode, unsigned int uid, unsigned int gid)
{
	__u64 id = 0;
	int err = ft_register(d->fd, name, mode, uid, gid, &id);

	if (err)
		return err;
	d->devs[d->ndevs].id = id;
	d->devs[d->ndevs].kind = kind;
	d->ndevs++;
	return 0;
}

/* Serve until the channel fails; returns the errno that ended it. */
static inline int ft_daemon_loop(struct ft_daemon *d)
{
	for (;;) {
		ssize_t n = read(d->fd, d->msg, FUSD_MIN_READ_BUFFER);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		ft_handle(d, n);
	}
}

/*
 * Fork a daemon serving @name (and registering it before returning).  Returns its pid;
 * *@ev_fd (if not NULL) gets the read end of its event pipe.
 */
static inline pid_t ft_spawn(const char *name, int kind, unsigned int mode, int *ev_fd)
{
	int sync[2], ev[2];
	pid_t pid;
	char c;

	if (pipe2(sync, O_CLOEXEC) || pipe2(ev, O_CLOEXEC))
		ft_die("pipe");
	pid = fork();
	if (pid < 0)
		ft_die("fork");
	if (pid == 0) {
		struct ft_daemon d;
		int fd = ft_channel();
		int err = fd < 0 ? fd : 0;

		close(sync[0]);
		close(ev[0]);
		if (!err) {
			ft_daemon_init(&d, fd, ev[1]);
			err = ft_daemon_add(&d, name, kind, mode, 0, 0);
		}
		c = err ? 'E' : 'R';
		if (write(sync[1], &c, 1) != 1 || err)
			_exit(1);
		close(sync[1]);
		ft_daemon_loop(&d);
		_exit(0);
	}
	close(sync[1]);
	close(ev[1]);
	if (read(sync[0], &c, 1) != 1 || c != 'R')
		ft_die("daemon for %s did not start", name);
	close(sync[0]);
	if (ev_fd)
		*ev_fd = ev[0];
	else
		close(ev[0]);
	return pid;
}

/* Read one event line (without newline) within @ms; returns 0 or -ETIMEDOUT. */
static inline int ft_event_wait(int ev, char *line, size_t size, int ms)
{
	size_t n = 0;
	double end = ft_now() + ms / 1000.0;

	while (n + 1 < size) {
		struct pollfd p = { ev, POLLIN, 0 };
		int left = (int)((end - ft_now()) * 1000);

		if (left < 0 || poll(&p, 1, left) <= 0)
			return -ETIMEDOUT;
		if (read(ev, line + n, 1) != 1)
			return -EIO;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	return 0;
}

static inline void ft_reap(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

#endif /* FT_H */
