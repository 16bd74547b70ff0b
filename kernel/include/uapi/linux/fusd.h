/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR BSD-2-Clause */
/*
 * fusd.h - wire format between the fusd kernel module and user-space device daemons.
 *
 * A daemon opens /dev/fusd (a "channel"), calls FUSD_IOC_HELLO, then registers one or
 * more devices with FUSD_IOC_REGISTER; the module creates /dev/<name> for each.  Every
 * system call on such a node becomes a request that the daemon read()s from its channel:
 *
 *	struct fusd_req_header  [payload: WRITE data or IOCTL in-data]
 *
 * The daemon answers it with exactly one write() of
 *
 *	struct fusd_reply       [payload: READ data or IOCTL out-data]
 *
 * and changes the readiness (poll mask) of an open file with one write() of
 * struct fusd_ready.  Requests of kind RELEASE, INTERRUPT and GONE take no reply.
 * One read() returns exactly one message; one write() carries exactly one message.
 * FUSD_IOC_EXCHANGE (minor 1) does one write() and the next read() in one system call, and
 * can wait for a message and for another file descriptor (the daemon's epoll set) at once.
 *
 * Every field is a fixed-width integer at its natural alignment, every structure has
 * an explicit size (checked below) and no kernel pointer crosses the boundary (user buffers
 * of FUSD_IOC_EXCHANGE are passed as __u64 addresses).  The protocol is
 * versioned by FUSD_IOC_HELLO: a different major version is refused with EPROTO;
 * minor versions only add message kinds, flags or trailing fields announced by flags.
 * See fusd(4) for the complete semantics and error conventions.
 */
#ifndef _UAPI_LINUX_FUSD_H
#define _UAPI_LINUX_FUSD_H

#include <linux/types.h>
#include <linux/ioctl.h>

#define FUSD_VERSION_MAJOR	1
#define FUSD_VERSION_MINOR	3	/* 2: ioctl shapes of <linux/fusd_ioctl.h>, FUSD_REPLY_RETRY, FUSD_OP_MMAP;
					 * 3: FUSD_IOC_REGISTER_LABELED */

#define FUSD_CONTROL_DEVICE	"/dev/fusd"
#define FUSD_CLASS_NAME		"fusd"		/* /sys/class/fusd/<node>/ */

#define FUSD_NAME_MAX		64		/* bytes with the terminating NUL */
#define FUSD_LABEL_MAX		48		/* bytes with the NUL: the classic API's 47 characters */
#define FUSD_CHUNK_MAX		(128 * 1024)	/* largest READ/WRITE payload of one request */
#define FUSD_IOCTL_MAX		16383		/* largest _IOC_SIZE (14 bits) */
#define FUSD_ERRNO_MAX		4095		/* a reply result is >= -FUSD_ERRNO_MAX */

/* ------------------------------------------------------------------------------------ */
/* Control ioctls on a /dev/fusd file descriptor                                        */

#define FUSD_IOC_MAGIC		0xFD

/* FUSD_IOC_HELLO: first call on every channel; everything else fails with EPROTO before. */
struct fusd_hello {
	__u32 major;		/* in: FUSD_VERSION_MAJOR of the daemon; out: the module's */
	__u32 minor;		/* in: FUSD_VERSION_MINOR of the daemon; out: the module's */
	__u32 chunk_max;	/* out: FUSD_CHUNK_MAX */
	__u32 min_read;		/* out: FUSD_MIN_READ_BUFFER */
	__u64 reserved[2];	/* in: 0 */
};

/* FUSD_IOC_REGISTER: create /dev/<name> served by this channel. */
struct fusd_register {
	char  name[FUSD_NAME_MAX];	/* in: path relative to /dev, NUL-terminated */
	__u32 mode;		/* in: permission bits (<= 0777) of the node */
	__u32 uid;		/* in: owner of the node, in the caller's user namespace */
	__u32 gid;		/* in: group of the node, in the caller's user namespace */
	__u32 flags;		/* in: 0 */
	__u64 dev_id;		/* out: device id, never reused while the module is loaded */
	__u32 major;		/* out: device number of the node */
	__u32 minor;
	__u64 reserved[2];	/* in: 0 */
};

/*
 * FUSD_IOC_REGISTER_LABELED (minor 3): FUSD_IOC_REGISTER, plus the class and device name that the
 * classic FUSD API's fusd_register() takes.  They are labels only: shown in
 * /sys/class/fusd/<node>/clazz and devname, never a kernel class or a node of their own.  Each is
 * NUL-terminated, empty for none, of A-Z a-z 0-9 . _ - + : @ , ! (EINVAL otherwise).
 */
struct fusd_register_labeled {
	struct fusd_register reg;	/* in and out, as for FUSD_IOC_REGISTER */
	char  clazz[FUSD_LABEL_MAX];	/* in */
	char  devname[FUSD_LABEL_MAX];	/* in */
};

/* FUSD_IOC_UNREGISTER: remove one of this channel's devices (argument: the dev_id). */
struct fusd_unregister {
	__u64 dev_id;
};

/* FUSD_IOC_FORCE_UNREGISTER: remove a device by name, from any channel (see fusd(4)). */
struct fusd_force_unregister {
	char  name[FUSD_NAME_MAX];
};

/* FUSD_IOC_TRACE: turn this channel into a trace subscriber (see struct fusd_trace_record). */
struct fusd_trace_subscribe {
	__u32 flags;		/* in: 0 */
	__u32 ring_records;	/* out: capacity of this subscriber's ring */
	__u64 reserved;		/* in: 0 */
};

/*
 * FUSD_IOC_EXCHANGE (minor 1): write the message at msg (a REPLY or READY, exactly as a write()
 * would; its outcome goes to msg_result), then read the next request into buf (as a read()
 * would).  Returns the size of the message read, or 0 when there is none: none queued without
 * FUSD_EXCHANGE_WAIT, or wake_fd became readable (or got an error or hang-up) first.  With
 * FUSD_EXCHANGE_WAIT it sleeps until a message comes, wake_fd is ready or a signal arrives
 * (EINTR once msg was written, else restartable), whatever O_NONBLOCK says.
 */
struct fusd_exchange {
	__u64 msg;		/* in: user address of the message to write first, or 0 for none */
	__u32 msg_size;		/* in: its size in bytes; 0 when msg is 0 */
	__s32 msg_result;	/* out: what write() of msg would have returned: msg_size or -errno */
	__u64 buf;		/* in: user address of the receive buffer */
	__u32 buf_size;		/* in: its size: at least FUSD_MIN_READ_BUFFER */
	__u32 flags;		/* in: FUSD_EXCHANGE_* */
	__s32 wake_fd;		/* in: with FUSD_EXCHANGE_WAIT, a descriptor that also ends the wait; or -1 */
	__u32 padding;		/* in: 0 */
	__u64 reserved;		/* in: 0 */
};

#define FUSD_EXCHANGE_WAIT	0x0001	/* sleep until a message, wake_fd readiness or a signal */

#define FUSD_IOC_HELLO		_IOWR(FUSD_IOC_MAGIC, 0, struct fusd_hello)
#define FUSD_IOC_REGISTER	_IOWR(FUSD_IOC_MAGIC, 1, struct fusd_register)
#define FUSD_IOC_UNREGISTER	_IOW(FUSD_IOC_MAGIC, 2, struct fusd_unregister)
#define FUSD_IOC_FORCE_UNREGISTER _IOW(FUSD_IOC_MAGIC, 3, struct fusd_force_unregister)
#define FUSD_IOC_TRACE		_IOWR(FUSD_IOC_MAGIC, 4, struct fusd_trace_subscribe)
#define FUSD_IOC_EXCHANGE	_IOWR(FUSD_IOC_MAGIC, 5, struct fusd_exchange)
#define FUSD_IOC_REGISTER_LABELED _IOWR(FUSD_IOC_MAGIC, 6, struct fusd_register_labeled)

/* ------------------------------------------------------------------------------------ */
/* Requests: module -> daemon, one per read() of the channel                            */

enum fusd_opcode {
	FUSD_OP_OPEN		= 1,	/* reply: result 0 or -errno; may set the poll mask */
	FUSD_OP_RELEASE		= 2,	/* no reply: last close of an open file */
	FUSD_OP_READ		= 3,	/* reply: result = n bytes, n bytes of payload */
	FUSD_OP_WRITE		= 4,	/* payload: len bytes; reply: result = bytes taken */
	FUSD_OP_IOCTL		= 5,	/* payload: in-data; reply: result, out-data */
	FUSD_OP_INTERRUPT	= 6,	/* no reply: id is the interrupted request's id */
	FUSD_OP_GONE		= 7,	/* no reply: dev_id was removed by force */
	FUSD_OP_MMAP		= 8	/* payload: struct fusd_mmap_request; reply: see there */
};

/* Set in the id of every request that takes no reply (RELEASE, GONE). */
#define FUSD_ID_NOREPLY		(1ULL << 63)

struct fusd_req_header {
	__u32 size;		/* bytes of this message: header + payload */
	__u32 opcode;		/* enum fusd_opcode */
	__u64 id;		/* request id: unique in the channel's life */
	__u64 dev_id;		/* from FUSD_IOC_REGISTER */
	__u64 file_id;		/* one per open file, unique in the module's life */
	__u32 pid;		/* caller's process id (tgid), in the daemon's pid namespace */
	__u32 uid;		/* caller's real uid, in the daemon's user namespace */
	__u32 gid;		/* caller's real gid, in the daemon's user namespace */
	__u32 flags;		/* the open file's current f_flags (O_NONBLOCK, O_ACCMODE...) */
	__u32 fsuid;		/* caller's filesystem (effective) uid */
	__u32 fsgid;		/* caller's filesystem (effective) gid */
	__u32 len;		/* READ: bytes wanted; WRITE: payload bytes; IOCTL: see below */
	__u32 reply_max;	/* largest reply payload accepted */
	__u32 ioctl_cmd;	/* IOCTL: the command number */
	__u32 padding;		/* 0 */
	__u64 ioctl_arg;	/* IOCTL: the raw argument value */
};

#define FUSD_MIN_READ_BUFFER	(sizeof(struct fusd_req_header) + FUSD_CHUNK_MAX)

/*
 * FUSD_OP_MMAP (protocol 1.2; daemons that said an older minor in FUSD_IOC_HELLO never get it:
 * their callers' mmap() fails with ENODEV).  The request's len is sizeof(struct
 * fusd_mmap_request), its payload says what the caller's mmap(2) asked for.  The daemon answers
 * -errno, or result 0 with a struct fusd_mmap_reply naming a descriptor of its own: a memfd or
 * another file on shmem (tmpfs), looked up when the reply is written.  A reply whose descriptor
 * is not open (EBADF), not a shmem file (ENODEV), not open for reading, or not for writing when
 * the caller maps MAP_SHARED with PROT_WRITE (EACCES), or shorter than offset + length (ENXIO), is
 * refused like any bad reply: the write fails with that error and changes nothing.
 */
struct fusd_mmap_request {
	__u64 offset;		/* bytes into the device; a multiple of the page size */
	__u64 length;		/* bytes; a multiple of the page size */
	__u32 prot;		/* FUSD_PROT_* */
	__u32 flags;		/* FUSD_MAP_SHARED or FUSD_MAP_PRIVATE */
};

#define FUSD_PROT_READ		0x1	/* the values of PROT_READ, PROT_WRITE, PROT_EXEC */
#define FUSD_PROT_WRITE		0x2
#define FUSD_PROT_EXEC		0x4
#define FUSD_MAP_SHARED		0x1	/* the values of MAP_SHARED, MAP_PRIVATE */
#define FUSD_MAP_PRIVATE	0x2

struct fusd_mmap_reply {
	__s32 fd;		/* the daemon's descriptor of the memory */
	__u32 flags;		/* 0 */
	__u64 offset;		/* where the mapping starts in it; a multiple of the page size */
};

/* ------------------------------------------------------------------------------------ */
/* Messages: daemon -> module, one per write() of the channel                           */

enum fusd_msg_type {
	FUSD_MSG_REPLY		= 1,	/* struct fusd_reply */
	FUSD_MSG_READY		= 2	/* struct fusd_ready */
};

/* Readiness bits (the values of EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLERR, EPOLLHUP). */
#define FUSD_POLLIN		0x0001
#define FUSD_POLLPRI		0x0002
#define FUSD_POLLOUT		0x0004
#define FUSD_POLLERR		0x0008
#define FUSD_POLLHUP		0x0010
#define FUSD_POLL_ALL		(FUSD_POLLIN | FUSD_POLLPRI | FUSD_POLLOUT | FUSD_POLLERR | \
				 FUSD_POLLHUP)
#define FUSD_POLL_DEFAULT	(FUSD_POLLIN | FUSD_POLLOUT)

/* fusd_reply.flags */
#define FUSD_REPLY_POLL		0x0001	/* OPEN only: poll_mask is the file's initial mask */
#define FUSD_REPLY_RETRY	0x0002	/* IOCTL only: result 0, payload struct fusd_ioctl_retry */

struct fusd_reply {
	__u32 size;		/* bytes of this message: header + payload */
	__u32 type;		/* FUSD_MSG_REPLY */
	__u64 id;		/* the request's id */
	__s32 result;		/* >= 0, or -errno with errno in 1..FUSD_ERRNO_MAX */
	__u32 flags;		/* FUSD_REPLY_* */
	__u32 poll_mask;	/* with FUSD_REPLY_POLL: FUSD_POLL* bits */
	__u32 padding;		/* 0 */
};

/*
 * IOCTL requests.  The payload is the bytes the call's shape sends, and reply_max is how many
 * may come back: the command number's _IOC direction and size, or for a command whose number
 * carries none its entry in FUSD_IOCTL_TABLE (<linux/fusd_ioctl.h>); any other command passes
 * its argument by value (ioctl_arg) and carries no data.  len is that size (in a retried
 * request: the out ranges' total).
 *
 * A daemon that needs more of the caller's memory (an argument that holds pointers) answers
 * with FUSD_REPLY_RETRY and a struct fusd_ioctl_retry followed by in_count "in" ranges and
 * out_count "out" ranges of the caller's address space.  The caller, still inside its ioctl(),
 * copies the in ranges (copy_from_user: an address it could not read itself fails the call
 * with EFAULT) and the module sends a new IOCTL request, same command and argument, whose
 * payload is those bytes in order and whose reply_max is the out ranges' total; that request's
 * reply payload is copied out over the out ranges in order.  A reply with a bad list is
 * refused (EINVAL) and may be sent again.  Limits per retry: FUSD_RETRY_RANGES_MAX ranges, each
 * not empty, in total and out total each at most FUSD_CHUNK_MAX; per call
 * FUSD_RETRY_ROUNDS_MAX retries, after which the caller gets EIO.
 */
#define FUSD_RETRY_RANGES_MAX	64
#define FUSD_RETRY_ROUNDS_MAX	8

struct fusd_ioctl_range {
	__u64 addr;		/* an address in the caller */
	__u64 len;		/* bytes: 1..FUSD_CHUNK_MAX */
};

struct fusd_ioctl_retry {
	__u32 in_count;		/* then in_count + out_count struct fusd_ioctl_range */
	__u32 out_count;
};

struct fusd_ready {
	__u32 size;		/* sizeof(struct fusd_ready) */
	__u32 type;		/* FUSD_MSG_READY */
	__u64 dev_id;
	__u64 file_id;
	__u32 mask;		/* FUSD_POLL* bits: the file's new readiness */
	__u32 padding;		/* 0 */
};

/* ------------------------------------------------------------------------------------ */
/* Trace records: read() of a channel after FUSD_IOC_TRACE returns whole records        */

struct fusd_trace_record {
	__u64 time_ns;		/* CLOCK_MONOTONIC when the request ended */
	__u64 latency_ns;	/* from queueing to the end */
	__u64 dev_id;
	__u64 req_id;
	__u64 file_id;
	__u32 pid;		/* caller's tgid, in the subscriber's pid namespace */
	__u32 opcode;		/* enum fusd_opcode */
	__u32 len;		/* fusd_req_header.len */
	__s32 result;		/* the reply's result, or the error the caller got */
	__u32 dropped;		/* records lost just before this one (ring was full) */
	__u32 padding;
	char  name[FUSD_NAME_MAX];	/* device name, NUL-terminated */
};

/* The sizes are part of the ABI. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define FUSD_STATIC_ASSERT(e, m) static_assert(e, m)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define FUSD_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif
#ifdef FUSD_STATIC_ASSERT
FUSD_STATIC_ASSERT(sizeof(struct fusd_hello) == 32, "fusd_hello size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_register) == 112, "fusd_register size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_register_labeled) == 208, "fusd_register_labeled size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_unregister) == 8, "fusd_unregister size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_force_unregister) == 64, "fusd_force_unregister size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_trace_subscribe) == 16, "fusd_trace_subscribe size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_exchange) == 48, "fusd_exchange size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_req_header) == 80, "fusd_req_header size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_reply) == 32, "fusd_reply size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_ready) == 32, "fusd_ready size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_trace_record) == 128, "fusd_trace_record size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_ioctl_range) == 16, "fusd_ioctl_range size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_ioctl_retry) == 8, "fusd_ioctl_retry size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_mmap_request) == 24, "fusd_mmap_request size");
FUSD_STATIC_ASSERT(sizeof(struct fusd_mmap_reply) == 16, "fusd_mmap_reply size");
#undef FUSD_STATIC_ASSERT
#endif

#endif /* _UAPI_LINUX_FUSD_H */
