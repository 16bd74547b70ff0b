/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fusd_internal.h - objects shared by the parts of fusd.ko (see main.c for the overview).
 *
 * Lifetimes (every arrow is a counted reference):
 *
 *	open file (struct file on a node) -> fusd_file -> fusd_device -> fusd_channel
 *	/dev/fusd struct file ----------------------------------------> fusd_channel
 *	fusd_channel -> fusd_waker -> the watched epoll set's struct file (until release)
 *	a waiting caller, a reading daemon, an interrupt queue -> fusd_req
 *
 * fusd_channel.kref counts its /dev/fusd file and its devices; a fusd_device is counted
 * by the kobject of its embedded struct device (the registry holds one reference while
 * the node exists, every fusd_file one more); a fusd_req by its own kref.
 *
 * Locking: fusd_mutex (main.c) serializes the registry: the list of all devices (names), a
 * device's way into and out of service; never held across device_add() or device_del(), which
 * wait for devtmpfs.  fusd_minor_lock guards the minor table, which every open looks up.  One spinlock per channel, chan->lock, protects
 * everything that moves during a call: the channel's queues and its table of requests in
 * flight, its device list, each device's file list and "gone" state, each request's
 * state, each file's poll mask.  Order: fusd_mutex, then chan->lock, then fusd_trace_lock.
 */
#ifndef FUSD_INTERNAL_H
#define FUSD_INTERNAL_H

#include <linux/device.h>
#include <linux/hashtable.h>
#include <linux/jump_label.h>
#include <linux/jump_label_ratelimit.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/clock.h>
#include <linux/sched/signal.h>
#include <linux/sched/stat.h>
#include <linux/spinlock.h>
#include <linux/timekeeping.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/wait.h>

#include <linux/fusd.h>

#define FUSD_MAX_DEVICES	1024	/* minors of the fusd major */
#define FUSD_MAX_TRACERS	64	/* trace subscribers at once */
#define FUSD_ADMIN_TRACERS	16	/* of which kept for CAP_SYS_ADMIN */
#define FUSD_USER_TRACERS	4	/* at most held by one uid without CAP_SYS_ADMIN */
#define FUSD_TRACE_RING		512	/* records per subscriber (64 KiB) */
#define FUSD_INLINE_BUF		256	/* payloads up to this size live inside the request */

/* One open /dev/fusd: a daemon's connection, or a trace subscriber. */
struct fusd_channel {
	struct kref kref;
	spinlock_t lock;
	wait_queue_head_t waitq;	/* daemon readers; trace readers */
	struct list_head pending;	/* fusd_req.node: queued, not yet read */
	struct list_head interrupts;	/* fusd_req.node: INTERRUPT not yet read */
	DECLARE_HASHTABLE(sent, 7);	/* fusd_req.hnode: read, waiting for a reply */
	struct list_head replying;	/* fusd_req.node: a reply's payload being copied in */
	struct list_head devices;	/* fusd_device.chan_node */
	u64 last_id;			/* last request id issued */
	bool hello;			/* FUSD_IOC_HELLO done */
	u32 minor;			/* the daemon's FUSD_VERSION_MINOR, from its HELLO */
	bool dead;			/* its file was released */
	struct fusd_tracer *tracer;	/* set once by FUSD_IOC_TRACE */
	struct mutex waker_lock;	/* tried by an exchange that waits (waker.c) */
	struct fusd_waker *waker;	/* the wake_fd watched across exchanges, or NULL */
	struct pid_namespace *pid_ns;	/* a subscriber's: trace records' pids */
};

/* One registered node, /dev/<name>. */
struct fusd_device {
	struct device dev;		/* the node's sysfs object; its kref counts us */
	struct fusd_channel *chan;	/* counted */
	struct list_head chan_node;	/* chan->devices (fusd_mutex + chan->lock) */
	struct list_head all_node;	/* fusd_devices (fusd_mutex) */
	struct list_head files;		/* fusd_file.dev_node (chan->lock) */
	u64 id;
	int minor;
	int gone;			/* 0 while served, else the error calls get */
	bool in_service;		/* its node was made (fusd_mutex) */
	bool removed;			/* taken out of service (fusd_mutex) */
	umode_t mode;
	kuid_t uid;			/* node owner */
	kgid_t gid;
	kuid_t owner;			/* effective uid that registered it */
	bool admin_owned;		/* registered with CAP_SYS_ADMIN: only that may manage it */
	struct user_namespace *user_ns;	/* the registering task's: callers' ids are shown in */
	struct pid_namespace *pid_ns;	/* these, as FUSE shows them in its mounter's */
	pid_t daemon_pid;		/* registering process, init pid namespace */
	atomic_t open_files;
	atomic64_t calls;		/* requests answered by the daemon */
	struct fusd_req *gone_msg;	/* preallocated FUSD_OP_GONE */
	struct rw_semaphore map_lock;	/* faults (read) against revocation, @maps (write) */
	struct list_head maps;		/* fusd_map.dev_node: its mappings (mmap.c) */
	bool map_revoked;		/* removed: mappings get SIGBUS (map_lock) */
	char name[FUSD_NAME_MAX];
	char clazz[FUSD_LABEL_MAX];	/* FUSD_IOC_REGISTER_LABELED's labels, checked; "" for none */
	char devname[FUSD_LABEL_MAX];
};

/* One open file on a node. */
struct fusd_file {
	struct fusd_device *fdev;	/* counted */
	struct list_head dev_node;	/* fdev->files */
	u64 id;
	__poll_t mask;			/* readiness, set by the daemon */
	wait_queue_head_t pollq;
	struct fusd_req *release_msg;	/* preallocated FUSD_OP_RELEASE */
	bool opened;			/* the daemon accepted (or may have) the OPEN */
};

enum fusd_req_state {
	FUSD_REQ_NEW,
	FUSD_REQ_QUEUED,	/* on chan->pending */
	FUSD_REQ_SENT,		/* in chan->sent: read by the daemon */
	FUSD_REQ_REPLYING,	/* on chan->replying: a reply is being copied in */
	FUSD_REQ_INTERRUPTING,	/* on chan->interrupts */
	FUSD_REQ_DONE,		/* result is final */
};

/* A daemon's FUSD_REPLY_RETRY, checked (channel.c); the ranges follow (ioctl.c). */
struct fusd_retry_list {
	u32 in_count, out_count;
	u32 in_len, out_len;		/* totals of the in and out ranges */
	struct fusd_ioctl_range range[];
};

/* One message to the daemon, and the caller's wait for its answer. */
struct fusd_req {
	struct kref kref;
	struct list_head node;
	struct hlist_node hnode;
	struct fusd_req_header hdr;	/* as the daemon will read it (size, id set at queueing) */
	wait_queue_head_t wq;		/* the caller */
	struct fusd_device *fdev;	/* valid while a caller waits */
	struct fusd_file *ff;		/* valid while a caller waits */
	int state;			/* enum fusd_req_state, under chan->lock */
	int result;
	u32 out_len;			/* reply payload bytes in buf */
	u32 poll_mask;			/* OPEN reply with FUSD_REPLY_POLL */
	bool has_poll_mask;
	bool abandoned;			/* the caller left after the daemon read it */
	u64 start_ns;
	struct fusd_retry_list *retry;	/* IOCTL answered with FUSD_REPLY_RETRY */
	struct file *map_file;		/* MMAP reply: the daemon's file, counted (mmap.c) */
	void *buf;			/* payload both ways: inline_buf or a bounce buffer */
	u8 inline_buf[FUSD_INLINE_BUF];
};

struct fusd_tracer;
struct fusd_waker;

/* main.c */
#define FUSD_POLL_NS_DEFAULT	50000		/* 50 us */
#define FUSD_POLL_NS_MAX	NSEC_PER_SEC
extern struct mutex fusd_mutex;
extern unsigned int fusd_poll_ns;
extern atomic_long_t fusd_polls_attempted, fusd_polls_successful;
extern atomic_long_t fusd_live_channels, fusd_live_devices, fusd_live_files, fusd_live_requests,
	fusd_live_wakers;
extern atomic_long_t fusd_live_maps;
long fusd_ioc_register(struct fusd_channel *chan, void __user *arg, bool labeled);
long fusd_ioc_unregister(struct fusd_channel *chan, void __user *arg);
long fusd_ioc_force_unregister(void __user *arg);
void fusd_channel_remove_devices(struct fusd_channel *chan);
struct fusd_device *fusd_device_get_by_minor(unsigned int minor);
bool fusd_may_manage(const struct fusd_device *fdev, kuid_t euid, bool admin);
void fusd_device_put(struct fusd_device *fdev);

/* channel.c */
extern const struct file_operations fusd_chan_fops;
void fusd_chan_put(struct fusd_channel *chan);
bool fusd_chan_readable(const struct fusd_channel *chan);
struct fusd_req *fusd_req_new(struct fusd_file *ff, struct file *file, u32 opcode,
			      u32 len, u32 in_len, u32 reply_max);
void fusd_req_put(struct fusd_req *req);
int fusd_call(struct fusd_req *req);
void fusd_queue_noreply(struct fusd_channel *chan, struct fusd_req *req);
int fusd_file_link(struct fusd_file *ff);
void fusd_file_unlink(struct fusd_file *ff, struct file *file);
__poll_t fusd_file_default_mask(void);
void fusd_chan_purge(struct fusd_channel *chan, struct fusd_device *fdev, int err);
void fusd_device_wake_files(struct fusd_device *fdev);
void fusd_device_waiting(struct fusd_device *fdev, unsigned int *count, u64 *oldest_ns);

/* node.c */
extern const struct file_operations fusd_node_fops;

/* ioctl.c */
long fusd_node_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
/* mmap.c */
void fusd_map_device_init(struct fusd_device *fdev);
void fusd_map_revoke(struct fusd_device *fdev);
int fusd_map_reply(struct fusd_req *req, const void __user *ubuf, size_t plen);
int fusd_node_mmap(struct file *file, struct vm_area_struct *vma);

/*
 * Adaptive polling.  A caller waiting for its reply and a daemon waiting for its next
 * request spin for up to poll_ns before they sleep, the way KVM's halt polling does, and only
 * while nothing else wants this CPU: the other side is then running on another CPU, and its
 * answer usually comes sooner than a sleep, a wake-up across CPUs and a switch back would
 * take.  Sharing one CPU, the other side must run first: single_task_running() is false, and
 * the waiter sleeps at once, as without polling.  Returns done(arg) as last seen.
 */
static __always_inline bool fusd_may_poll(void)
{
	return !need_resched() && single_task_running() && !signal_pending(current);
}

static __always_inline bool fusd_poll(bool (*done)(const void *arg), const void *arg)
{
	u64 budget = READ_ONCE(fusd_poll_ns), start;

	if (!budget || !fusd_may_poll())
		return done(arg);
	atomic_long_inc(&fusd_polls_attempted);
	start = local_clock();
	do {
		if (done(arg)) {
			atomic_long_inc(&fusd_polls_successful);
			return true;
		}
		cpu_relax();
	} while (fusd_may_poll() && local_clock() - start < budget);
	return done(arg);
}

/* waker.c */
#define FUSD_WAKE_EVENTS	(EPOLLIN | EPOLLERR | EPOLLHUP)	/* what of a wake_fd ends a wait */
int fusd_waker_wait(struct fusd_channel *chan, struct file *wake);
void fusd_waker_release(struct fusd_channel *chan);

/* trace.c */
extern struct static_key_false_deferred fusd_trace_active;
void fusd_trace_exit(void);
long fusd_trace_subscribe(struct fusd_channel *chan, void __user *arg);
void fusd_trace_unsubscribe(struct fusd_channel *chan);
ssize_t fusd_trace_read(struct fusd_channel *chan, struct file *file, char __user *buf,
			size_t count);
__poll_t fusd_trace_poll(struct fusd_channel *chan);
void __fusd_trace(const struct fusd_device *fdev, const struct fusd_req_header *hdr,
		  int result, u64 start_ns);

/*
 * When a call starts.  Precise only while someone traces (it starts the latency in the trace
 * record); otherwise the tick-coarse clock, which is enough for the age of the oldest waiting
 * call in sysfs and reads no clocksource (an HPET read, in the test guest, is emulated MMIO).
 * A tracer that subscribes while a call waits sees its latency overstated by at most one tick.
 */
static inline u64 fusd_start_ns(void)
{
	if (static_branch_unlikely(&fusd_trace_active.key))
		return ktime_get_ns();
	return ktime_get_coarse_ns();
}

/* Record one ended request for the trace subscribers; nearly free when there are none. */
static inline void fusd_trace(const struct fusd_device *fdev, const struct fusd_req_header *hdr,
			      int result, u64 start_ns)
{
	if (static_branch_unlikely(&fusd_trace_active.key))
		__fusd_trace(fdev, hdr, result, start_ns);
}

#endif /* FUSD_INTERNAL_H */
