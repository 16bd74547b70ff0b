// SPDX-License-Identifier: GPL-2.0
/*
 * channel.c - /dev/fusd: a daemon's channel, its requests and its replies.
 *
 * A request moves through these states, each change under chan->lock:
 *
 *   QUEUED --daemon read()--> SENT --daemon write(reply)--> REPLYING --copied--> DONE
 *
 * and, when the caller gets a signal, QUEUED -> DONE (the daemon never hears of it),
 * SENT -> INTERRUPTING (queued as an INTERRUPT message; a later reply finds no request:
 * ENOENT), REPLYING -> DONE (the reply in progress is dropped).  A dying daemon or a removed
 * device completes every request it still has with an error.  Messages that take no
 * reply (RELEASE, GONE) are owned by the channel's queue and freed once read.
 *
 * The last reference to a request is never dropped under a spinlock (its bounce buffer
 * may be vmalloc'ed), and whoever wakes a caller holds a reference while doing so.
 */
#include <linux/cred.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/pid_namespace.h>
#include <linux/poll.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "fusd_internal.h"

/* ---- requests ---- */

static void fusd_req_release(struct kref *kref)
{
	struct fusd_req *req = container_of(kref, struct fusd_req, kref);

	if (req->buf != req->inline_buf)
		kvfree(req->buf);
	kfree(req->retry);
	if (req->map_file)
		fput(req->map_file);	/* a checked MMAP reply whose caller left */
	kfree(req);
	atomic_long_dec(&fusd_live_requests);
}

void fusd_req_put(struct fusd_req *req)
{
	kref_put(&req->kref, fusd_req_release);
}

/* Bounce buffers come in three fixed sizes: inline, one page, FUSD_CHUNK_MAX. */
static void *fusd_bounce_alloc(struct fusd_req *req, u32 need)
{
	if (need <= FUSD_INLINE_BUF)
		return req->inline_buf;
	if (need <= PAGE_SIZE)
		return kmalloc(PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (WARN_ON_ONCE(need > FUSD_CHUNK_MAX))
		return NULL;
	return kvmalloc(FUSD_CHUNK_MAX, GFP_KERNEL_ACCOUNT);
}

/*
 * Who is calling: ids in the namespaces of the task that registered @fdev (not of whoever
 * opened /dev/fusd: the descriptor may have been passed on), and the file's current flags.
 */
static void fusd_req_set_caller(struct fusd_req *req, const struct fusd_device *fdev,
				const struct file *file)
{
	const struct cred *cred = current_cred();

	req->hdr.pid = task_tgid_nr_ns(current, fdev->pid_ns);
	req->hdr.uid = from_kuid_munged(fdev->user_ns, cred->uid);
	req->hdr.gid = from_kgid_munged(fdev->user_ns, cred->gid);
	req->hdr.fsuid = from_kuid_munged(fdev->user_ns, cred->fsuid);
	req->hdr.fsgid = from_kgid_munged(fdev->user_ns, cred->fsgid);
	req->hdr.flags = file ? READ_ONCE(file->f_flags) : 0;
}

/*
 * A new request of @opcode on open file @ff (NULL for GONE) with a payload of @in_len
 * bytes to the daemon and room for @reply_max bytes back.  Both are at most
 * FUSD_CHUNK_MAX: the callers clamp them.
 */
struct fusd_req *fusd_req_new(struct fusd_file *ff, struct file *file, u32 opcode,
			      u32 len, u32 in_len, u32 reply_max)
{
	struct fusd_req *req = kmalloc(sizeof(*req), GFP_KERNEL_ACCOUNT);

	if (!req)
		return NULL;
	memset(req, 0, offsetof(struct fusd_req, inline_buf));
	req->buf = fusd_bounce_alloc(req, max(in_len, reply_max));
	if (!req->buf) {
		kfree(req);
		return NULL;
	}
	atomic_long_inc(&fusd_live_requests);
	kref_init(&req->kref);
	INIT_LIST_HEAD(&req->node);
	INIT_HLIST_NODE(&req->hnode);
	init_waitqueue_head(&req->wq);
	WRITE_ONCE(req->state, FUSD_REQ_NEW);
	req->hdr.size = sizeof(req->hdr) + in_len;
	req->hdr.opcode = opcode;
	req->hdr.len = len;
	req->hdr.reply_max = reply_max;
	if (ff) {
		req->ff = ff;
		req->fdev = ff->fdev;
		req->hdr.dev_id = ff->fdev->id;
		req->hdr.file_id = ff->id;
		fusd_req_set_caller(req, ff->fdev, file);
	}
	return req;
}

/* Final result; wakes the caller.  chan->lock held, and a reference besides the caller's. */
static void fusd_req_complete(struct fusd_req *req, int result)
{
	req->result = result;
	smp_store_release(&req->state, FUSD_REQ_DONE);
	wake_up(&req->wq);
}

/* The error a call on @fdev gets without reaching the daemon, or 0.  chan->lock held. */
static int fusd_gone_error(const struct fusd_channel *chan, const struct fusd_device *fdev,
			   u32 opcode)
{
	int err = chan->dead ? -EPIPE : fdev->gone;

	return err && opcode == FUSD_OP_OPEN ? -ENODEV : err;
}

/* ---- the caller's side ---- */

static void fusd_chan_wake(struct fusd_channel *chan)
{
	wake_up_interruptible_sync_poll(&chan->waitq, EPOLLIN | EPOLLRDNORM);
}

static bool fusd_req_done(const void *req)
{
	return smp_load_acquire(&((const struct fusd_req *)req)->state) == FUSD_REQ_DONE;
}

/*
 * The caller gave up on @req (a signal): returns -ERESTARTSYS, or the result if it came
 * first.  User space sees EINTR unless the call is restarted (SA_RESTART, a stop signal,
 * the freezer); a restarted call is a new request.
 */
static int fusd_req_interrupt(struct fusd_channel *chan, struct fusd_req *req)
{
	bool wake = false;
	int ret = -ERESTARTSYS;

	spin_lock(&chan->lock);
	switch (req->state) {
	case FUSD_REQ_DONE:
		ret = req->result;
		break;
	case FUSD_REQ_QUEUED:
		list_del_init(&req->node);
		WRITE_ONCE(req->state, FUSD_REQ_DONE);
		break;
	case FUSD_REQ_SENT:
		hash_del(&req->hnode);
		WRITE_ONCE(req->state, FUSD_REQ_INTERRUPTING);
		req->abandoned = true;
		kref_get(&req->kref);		/* the interrupt queue's */
		list_add_tail(&req->node, &chan->interrupts);
		wake = true;
		break;
	case FUSD_REQ_REPLYING:
		list_del_init(&req->node);
		WRITE_ONCE(req->state, FUSD_REQ_DONE);	/* the replier sees it and drops the reply */
		req->abandoned = true;
		break;
	}
	spin_unlock(&chan->lock);
	if (wake)
		fusd_chan_wake(chan);
	return ret;
}

/*
 * Send @req to its device's daemon and wait for the reply, interruptibly.
 * Returns the daemon's result (>= 0 or -errno), -ERESTARTSYS, or the device's gone error.
 */
int fusd_call(struct fusd_req *req)
{
	struct fusd_device *fdev = req->fdev;
	struct fusd_channel *chan = fdev->chan;
	int ret;

	req->start_ns = fusd_start_ns();
	spin_lock(&chan->lock);
	ret = fusd_gone_error(chan, fdev, req->hdr.opcode);
	if (!ret) {
		req->hdr.id = ++chan->last_id;
		WRITE_ONCE(req->state, FUSD_REQ_QUEUED);
		list_add_tail(&req->node, &chan->pending);
	}
	spin_unlock(&chan->lock);

	if (!ret) {
		fusd_chan_wake(chan);
		if (fusd_poll(fusd_req_done, req) ||
		    !wait_event_interruptible(req->wq, fusd_req_done(req)))
			ret = req->result;
		else
			ret = fusd_req_interrupt(chan, req);
	}
	fusd_trace(fdev, &req->hdr, ret == -ERESTARTSYS ? -EINTR : ret, req->start_ns);
	return ret;
}

/* Queue @req, which takes no reply; the channel owns it. chan->lock held. */
static void fusd_queue_noreply_locked(struct fusd_channel *chan, struct fusd_req *req)
{
	req->hdr.id = ++chan->last_id | FUSD_ID_NOREPLY;
	WRITE_ONCE(req->state, FUSD_REQ_QUEUED);
	list_add_tail(&req->node, &chan->pending);
}

void fusd_queue_noreply(struct fusd_channel *chan, struct fusd_req *req)
{
	bool queued = false;

	spin_lock(&chan->lock);
	if (!chan->dead) {
		fusd_queue_noreply_locked(chan, req);
		queued = true;
	}
	spin_unlock(&chan->lock);
	if (queued)
		fusd_chan_wake(chan);
	else
		fusd_req_put(req);
}

/* ---- open files ---- */

int fusd_file_link(struct fusd_file *ff)
{
	struct fusd_device *fdev = ff->fdev;
	struct fusd_channel *chan = fdev->chan;
	int err;

	spin_lock(&chan->lock);
	err = fusd_gone_error(chan, fdev, FUSD_OP_OPEN);
	if (!err) {
		list_add_tail(&ff->dev_node, &fdev->files);
		atomic_inc(&fdev->open_files);
	}
	spin_unlock(&chan->lock);
	return err;
}

/* Last close of @ff: tell the daemon (RELEASE) if it knows the file and is still there. */
void fusd_file_unlink(struct fusd_file *ff, struct file *file)
{
	struct fusd_device *fdev = ff->fdev;
	struct fusd_channel *chan = fdev->chan;
	struct fusd_req *msg = ff->release_msg;
	struct fusd_req_header hdr;
	bool queued = false;

	ff->release_msg = NULL;
	spin_lock(&chan->lock);
	list_del_init(&ff->dev_node);
	atomic_dec(&fdev->open_files);
	if (ff->opened && !fusd_gone_error(chan, fdev, FUSD_OP_RELEASE)) {
		fusd_req_set_caller(msg, fdev, file);
		fusd_queue_noreply_locked(chan, msg);
		hdr = msg->hdr;
		queued = true;
	}
	spin_unlock(&chan->lock);
	if (queued) {
		fusd_chan_wake(chan);
		fusd_trace(fdev, &hdr, 0, fusd_start_ns());
	} else {
		fusd_req_put(msg);
	}
}

static __poll_t fusd_poll_bits(u32 mask)
{
	__poll_t bits = (__force __poll_t)(mask & FUSD_POLL_ALL);

	if (mask & FUSD_POLLIN)
		bits |= EPOLLRDNORM;
	if (mask & FUSD_POLLOUT)
		bits |= EPOLLWRNORM;
	return bits;
}

__poll_t fusd_file_default_mask(void)
{
	return fusd_poll_bits(FUSD_POLL_DEFAULT);
}

/* Wake everyone polling a file of @fdev, which just went away.  chan->lock held. */
void fusd_device_wake_files(struct fusd_device *fdev)
{
	struct fusd_file *ff;

	list_for_each_entry(ff, &fdev->files, dev_node)
		wake_up_interruptible_poll(&ff->pollq, EPOLLERR | EPOLLHUP);
}

/* For sysfs: callers of @fdev waiting for the daemon, and the age of the oldest. */
void fusd_device_waiting(struct fusd_device *fdev, unsigned int *count, u64 *oldest_ns)
{
	struct fusd_channel *chan = fdev->chan;
	u64 now = ktime_get_ns(), first = now;
	struct fusd_req *req;
	int bkt;

	*count = 0;
	spin_lock(&chan->lock);
	list_for_each_entry(req, &chan->pending, node) {
		if (req->fdev == fdev && !(req->hdr.id & FUSD_ID_NOREPLY)) {
			(*count)++;
			first = min(first, req->start_ns);
		}
	}
	hash_for_each(chan->sent, bkt, req, hnode) {
		if (req->fdev == fdev) {
			(*count)++;
			first = min(first, req->start_ns);
		}
	}
	list_for_each_entry(req, &chan->replying, node) {
		if (req->fdev == fdev) {
			(*count)++;
			first = min(first, req->start_ns);
		}
	}
	spin_unlock(&chan->lock);
	*oldest_ns = now - first;
}

/* ---- purge: a daemon or a device goes away ---- */

static bool fusd_req_matches(const struct fusd_req *req, const struct fusd_device *fdev)
{
	return !fdev || req->hdr.dev_id == fdev->id;
}

static int fusd_purge_error(const struct fusd_req *req, int err)
{
	return req->hdr.opcode == FUSD_OP_OPEN ? -ENODEV : err;
}

/* Move @req (just unlinked) to @out, to be completed with @err (or just freed). */
static void fusd_purge_one(struct fusd_req *req, struct list_head *out, int err, bool waited)
{
	list_add_tail(&req->node, out);
	if (waited) {
		/*
		 * The reference first: a caller that sees DONE without the lock (its adaptive
		 * spin, its re-test after a signal) returns and drops its own at once.
		 */
		kref_get(&req->kref);		/* held while we wake the caller */
		req->result = err;
		smp_store_release(&req->state, FUSD_REQ_DONE);
	} else {
		WRITE_ONCE(req->state, FUSD_REQ_DONE);
	}
}

/*
 * Fail every request of @fdev (NULL: of the whole channel) with @err (opens: ENODEV) and
 * drop its queued messages.  The device's gone state (or chan->dead) is already set, so
 * nothing new can be queued for it.
 */
void fusd_chan_purge(struct fusd_channel *chan, struct fusd_device *fdev, int err)
{
	struct fusd_req *req, *tmp;
	struct hlist_node *htmp;
	LIST_HEAD(done);
	int bkt;

	spin_lock(&chan->lock);
	list_for_each_entry_safe(req, tmp, &chan->pending, node) {
		if (!fusd_req_matches(req, fdev))
			continue;
		list_del_init(&req->node);
		fusd_purge_one(req, &done, fusd_purge_error(req, err),
			       !(req->hdr.id & FUSD_ID_NOREPLY));
	}
	list_for_each_entry_safe(req, tmp, &chan->interrupts, node) {
		if (!fusd_req_matches(req, fdev))
			continue;
		list_del_init(&req->node);
		fusd_purge_one(req, &done, err, false);
	}
	hash_for_each_safe(chan->sent, bkt, htmp, req, hnode) {
		if (!fusd_req_matches(req, fdev))
			continue;
		hash_del(&req->hnode);
		fusd_purge_one(req, &done, fusd_purge_error(req, err), true);
	}
	/* a replier still copying finds them DONE and drops its reply */
	list_for_each_entry_safe(req, tmp, &chan->replying, node) {
		if (!fusd_req_matches(req, fdev))
			continue;
		list_del_init(&req->node);
		fusd_purge_one(req, &done, fusd_purge_error(req, err), true);
	}
	spin_unlock(&chan->lock);

	list_for_each_entry_safe(req, tmp, &done, node) {
		list_del_init(&req->node);
		wake_up(&req->wq);
		fusd_req_put(req);
	}
}

/* ---- the daemon's read(): next message ---- */

enum fusd_msg_kind { FUSD_MSG_CALL, FUSD_MSG_NOREPLY, FUSD_MSG_INTERRUPT };

bool fusd_chan_readable(const struct fusd_channel *chan)
{
	return !list_empty(&chan->interrupts) || !list_empty(&chan->pending);
}

static bool fusd_chan_has_msg(const void *chan)
{
	return fusd_chan_readable(chan);
}

/* Take the next message off @chan's queues, with a reference for the reader. Lock held. */
static struct fusd_req *fusd_take_msg(struct fusd_channel *chan, enum fusd_msg_kind *kind)
{
	struct fusd_req *req;

	req = list_first_entry_or_null(&chan->interrupts, struct fusd_req, node);
	if (req) {
		list_del_init(&req->node);	/* the queue's reference passes to the reader */
		WRITE_ONCE(req->state, FUSD_REQ_DONE);
		*kind = FUSD_MSG_INTERRUPT;
		return req;
	}
	req = list_first_entry_or_null(&chan->pending, struct fusd_req, node);
	if (!req)
		return NULL;
	list_del_init(&req->node);
	if (req->hdr.id & FUSD_ID_NOREPLY) {
		WRITE_ONCE(req->state, FUSD_REQ_DONE);
		*kind = FUSD_MSG_NOREPLY;
		return req;
	}
	WRITE_ONCE(req->state, FUSD_REQ_SENT);
	hash_add(chan->sent, &req->hnode, req->hdr.id);
	kref_get(&req->kref);
	*kind = FUSD_MSG_CALL;
	return req;
}

/* Is device @dev_id still served by @chan?  chan->lock held. */
static bool fusd_chan_serves(const struct fusd_channel *chan, u64 dev_id)
{
	const struct fusd_device *fdev;

	list_for_each_entry(fdev, &chan->devices, chan_node)
		if (fdev->id == dev_id)
			return true;
	return false;
}

/*
 * The daemon could not take @req (bad buffer): put it back at the head of its queue, unless
 * it lost its point meanwhile (the channel or its device went: a purge already ended the call
 * or would have dropped the message; a GONE is for a device gone by definition), and wake
 * another reader for it.
 */
static void fusd_untake_msg(struct fusd_channel *chan, struct fusd_req *req,
			    enum fusd_msg_kind kind)
{
	bool requeued = false;

	spin_lock(&chan->lock);
	if (kind == FUSD_MSG_NOREPLY && !chan->dead &&
	    (req->hdr.opcode == FUSD_OP_GONE || fusd_chan_serves(chan, req->hdr.dev_id))) {
		WRITE_ONCE(req->state, FUSD_REQ_QUEUED);
		list_add(&req->node, &chan->pending);
		kref_get(&req->kref);
		requeued = true;
	} else if (kind == FUSD_MSG_INTERRUPT && !chan->dead &&
		   fusd_chan_serves(chan, req->hdr.dev_id)) {
		WRITE_ONCE(req->state, FUSD_REQ_INTERRUPTING);
		list_add(&req->node, &chan->interrupts);
		kref_get(&req->kref);
		requeued = true;
	} else if (kind == FUSD_MSG_CALL && req->state == FUSD_REQ_SENT) {
		hash_del(&req->hnode);
		WRITE_ONCE(req->state, FUSD_REQ_QUEUED);
		list_add(&req->node, &chan->pending);
		requeued = true;
	}
	spin_unlock(&chan->lock);
	if (requeued)
		fusd_chan_wake(chan);
}

static int fusd_copy_msg(char __user *buf, struct fusd_req *req, enum fusd_msg_kind kind)
{
	struct fusd_req_header hdr = req->hdr;
	size_t plen = hdr.size - sizeof(hdr);

	if (kind == FUSD_MSG_INTERRUPT) {
		hdr.size = sizeof(hdr);
		hdr.opcode = FUSD_OP_INTERRUPT;
		plen = 0;
	}
	if (copy_to_user(buf, &hdr, sizeof(hdr)))
		return -EFAULT;
	if (plen && copy_to_user(buf + sizeof(hdr), req->buf, plen))
		return -EFAULT;
	return hdr.size;
}

struct fusd_either {
	struct fusd_channel *chan;
	struct file *wake;
};

/* A message, or @wake ready: either ends a wait. */
static bool fusd_either_ready(const void *arg)
{
	const struct fusd_either *e = arg;

	return fusd_chan_readable(e->chan) ||
	       (vfs_poll(e->wake, NULL) & FUSD_WAKE_EVENTS);
}

/*
 * Sleep until @chan has a message (0), @wake is ready (-EAGAIN) or a signal comes
 * (-ERESTARTSYS); -ENOMEM if a wait entry cannot be had.  This is select() on the two
 * files, built from the same parts: one poll table registers us on both wait queues, and
 * whichever wakes first ends the wait.
 */
static int fusd_chan_wait_either(struct fusd_channel *chan, struct file *self, struct file *wake)
{
	struct fusd_either either = { chan, wake };
	struct poll_wqueues pwq;
	int ret;

	fusd_poll(fusd_either_ready, &either);	/* the loop below sees what ended it */
	poll_initwait(&pwq);
	for (;;) {
		__poll_t wake_mask;

		poll_wait(self, &chan->waitq, &pwq.pt);
		if (fusd_chan_readable(chan)) {
			ret = 0;
			break;
		}
		wake_mask = vfs_poll(wake, &pwq.pt);
		/*
		 * Looked at again: vfs_poll() may sleep (epoll takes a mutex), and the caller our
		 * reply just woke may have sent its next request meanwhile.  A request wins.
		 */
		if (fusd_chan_readable(chan)) {
			ret = 0;
			break;
		}
		if (wake_mask & FUSD_WAKE_EVENTS) {
			ret = -EAGAIN;
			break;
		}
		if (pwq.error) {		/* no memory for a wait entry: we could miss a wake-up */
			ret = pwq.error;
			break;
		}
		pwq.pt._qproc = NULL;		/* on both queues now: later passes only look */
		if (signal_pending(current)) {
			ret = -ERESTARTSYS;
			break;
		}
		set_current_state(TASK_INTERRUPTIBLE);
		if (!pwq.triggered)
			schedule();
		__set_current_state(TASK_RUNNING);
		smp_store_mb(pwq.triggered, 0);
	}
	poll_freewait(&pwq);
	return ret;
}

/*
 * The next message into @buf: its size, -EAGAIN if none is queued and !@block, or what ended
 * the wait (-ERESTARTSYS; -EAGAIN when @wake, if given, got ready first).
 */
static ssize_t fusd_chan_read_msg(struct fusd_channel *chan, struct file *file,
				  char __user *buf, size_t count, bool block, struct file *wake)
{
	enum fusd_msg_kind kind;
	struct fusd_req *req;
	ssize_t ret;

	if (count < FUSD_MIN_READ_BUFFER)
		return -EINVAL;
	for (;;) {
		spin_lock(&chan->lock);
		req = fusd_take_msg(chan, &kind);
		spin_unlock(&chan->lock);
		if (req)
			break;
		if (!block)
			return -EAGAIN;
		if (wake) {
			ret = fusd_waker_wait(chan, wake);
			if (ret == -EOPNOTSUPP || ret == -EBUSY)
				ret = fusd_chan_wait_either(chan, file, wake);
		} else if (fusd_poll(fusd_chan_has_msg, chan)) {
			ret = 0;
		} else {
			ret = wait_event_interruptible(chan->waitq, fusd_chan_readable(chan));
		}
		if (ret)
			return ret;
	}
	ret = fusd_copy_msg(buf, req, kind);
	if (ret < 0)
		fusd_untake_msg(chan, req, kind);
	fusd_req_put(req);
	return ret;
}

static ssize_t fusd_chan_read(struct file *file, char __user *buf, size_t count, loff_t *ppos)
{
	struct fusd_channel *chan = file->private_data;

	if (!READ_ONCE(chan->hello))
		return -EPROTO;
	if (READ_ONCE(chan->tracer))
		return fusd_trace_read(chan, file, buf, count);
	return fusd_chan_read_msg(chan, file, buf, count, !(file->f_flags & O_NONBLOCK), NULL);
}

/* ---- the daemon's write(): replies ---- */

static struct fusd_req *fusd_sent_find(struct fusd_channel *chan, u64 id)
{
	struct fusd_req *req;

	hash_for_each_possible(chan->sent, req, hnode, id)
		if (req->hdr.id == id)
			return req;
	return NULL;
}

/* Checks that need no request: ranges, flags, padding. */
static int fusd_reply_sane(const struct fusd_reply *rep)
{
	if (rep->result < -FUSD_ERRNO_MAX)
		return -EINVAL;
	if (rep->flags & ~(FUSD_REPLY_POLL | FUSD_REPLY_RETRY) || rep->padding)
		return -EINVAL;
	if ((rep->flags & FUSD_REPLY_RETRY) && (rep->flags & FUSD_REPLY_POLL || rep->result))
		return -EINVAL;
	if (rep->poll_mask & ~FUSD_POLL_ALL)
		return -EINVAL;
	if (!(rep->flags & FUSD_REPLY_POLL) && rep->poll_mask)
		return -EINVAL;
	return 0;
}

/* Does @rep, with @plen payload bytes, answer @req? */
static int fusd_reply_check(const struct fusd_req *req, const struct fusd_reply *rep,
			    size_t plen)
{
	if (rep->flags & FUSD_REPLY_RETRY)	/* its payload was checked by fusd_retry_copy() */
		return req->hdr.opcode == FUSD_OP_IOCTL ? 0 : -EINVAL;
	if (plen > req->hdr.reply_max)
		return -EINVAL;
	if (rep->result < 0 && plen)
		return -EINVAL;
	if ((rep->flags & FUSD_REPLY_POLL) && req->hdr.opcode != FUSD_OP_OPEN)
		return -EINVAL;
	switch (req->hdr.opcode) {
	case FUSD_OP_READ:
		return rep->result >= 0 && (size_t)rep->result != plen ? -EINVAL : 0;
	case FUSD_OP_WRITE:
		return rep->result > (s64)req->hdr.len ? -EINVAL : 0;
	case FUSD_OP_MMAP:
		return rep->result > 0 ||
		       (!rep->result && plen != sizeof(struct fusd_mmap_reply)) ? -EINVAL : 0;
	default:
		return 0;
	}
}

/* Kernel-internal codes (ERESTARTSYS...) must not escape to the caller. */
static int fusd_result_sanitize(int result)
{
	return result <= -512 && result >= -529 ? -EIO : result;
}

static bool fusd_noreply_id_ok(struct fusd_channel *chan, u64 id)
{
	u64 n = id & ~FUSD_ID_NOREPLY;

	return n && n <= READ_ONCE(chan->last_id);
}

/*
 * A FUSD_REPLY_RETRY payload of @plen bytes at @ubuf, copied and checked whole: the counts,
 * every length (1..FUSD_CHUNK_MAX, no wrap past the end of the address space) and the in and
 * out totals (each at most FUSD_CHUNK_MAX).  The addresses are checked when they are used,
 * by copy_from_user and copy_to_user in the caller (ioctl.c).
 */
static struct fusd_retry_list *fusd_retry_copy(const char __user *ubuf, size_t plen)
{
	struct fusd_retry_list *rl;
	struct fusd_ioctl_retry head;
	u64 totals[2] = { 0, 0 };
	u32 n, i;

	if (plen < sizeof(head))
		return ERR_PTR(-EINVAL);
	if (copy_from_user(&head, ubuf, sizeof(head)))
		return ERR_PTR(-EFAULT);
	if (head.in_count > FUSD_RETRY_RANGES_MAX || head.out_count > FUSD_RETRY_RANGES_MAX)
		return ERR_PTR(-EINVAL);
	n = head.in_count + head.out_count;
	if (!n || n > FUSD_RETRY_RANGES_MAX || plen != sizeof(head) + n * sizeof(rl->range[0]))
		return ERR_PTR(-EINVAL);
	rl = kmalloc(struct_size(rl, range, n), GFP_KERNEL_ACCOUNT);
	if (!rl)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(rl->range, ubuf + sizeof(head), n * sizeof(rl->range[0]))) {
		kfree(rl);
		return ERR_PTR(-EFAULT);
	}
	for (i = 0; i < n; i++) {
		const struct fusd_ioctl_range *r = &rl->range[i];

		if (!r->len || r->len > FUSD_CHUNK_MAX || r->addr + r->len < r->addr) {
			kfree(rl);
			return ERR_PTR(-EINVAL);
		}
		totals[i >= head.in_count] += r->len;
	}
	if (totals[0] > FUSD_CHUNK_MAX || totals[1] > FUSD_CHUNK_MAX) {
		kfree(rl);
		return ERR_PTR(-EINVAL);
	}
	rl->in_count = head.in_count;
	rl->out_count = head.out_count;
	rl->in_len = totals[0];
	rl->out_len = totals[1];
	return rl;
}

static ssize_t fusd_chan_reply(struct fusd_channel *chan, const char __user *buf, size_t count)
{
	struct fusd_retry_list *retry = NULL;
	struct fusd_reply rep;
	struct fusd_req *req;
	size_t plen;
	int err;

	if (count < sizeof(rep))
		return -EINVAL;
	if (copy_from_user(&rep, buf, sizeof(rep)))
		return -EFAULT;
	err = fusd_reply_sane(&rep);
	if (err)
		return err;
	plen = count - sizeof(rep);
	if (rep.id & FUSD_ID_NOREPLY)		/* a reply to RELEASE: accepted, ignored */
		return fusd_noreply_id_ok(chan, rep.id) ? count : -ENOENT;
	if (rep.flags & FUSD_REPLY_RETRY) {
		retry = fusd_retry_copy(buf + sizeof(rep), plen);
		if (IS_ERR(retry))
			return PTR_ERR(retry);
		plen = 0;
	}

	spin_lock(&chan->lock);
	req = fusd_sent_find(chan, rep.id);
	err = req ? fusd_reply_check(req, &rep, plen) : -ENOENT;
	if (!err) {
		/*
		 * Still findable while its payload is copied in: the copy may fault on memory that
		 * never comes (userfaultfd, a stopped FUSE server's file), and a purge or a forced
		 * unregister must still release the caller.
		 */
		hash_del(&req->hnode);
		WRITE_ONCE(req->state, FUSD_REQ_REPLYING);
		list_add_tail(&req->node, &chan->replying);
		kref_get(&req->kref);
	}
	spin_unlock(&chan->lock);
	if (err) {
		kfree(retry);
		return err;
	}

	if (req->hdr.opcode == FUSD_OP_MMAP)
		err = fusd_map_reply(req, buf + sizeof(rep), plen);	/* its descriptor: ours */
	else if (plen && copy_from_user(req->buf, buf + sizeof(rep), plen))
		err = -EFAULT;

	spin_lock(&chan->lock);
	if (req->state == FUSD_REQ_REPLYING)
		list_del_init(&req->node);
	if (req->state != FUSD_REQ_REPLYING) {
		/* the caller left, or a purge ended the call, meanwhile: the reply is dropped */
	} else if (err) {
		int gone = fusd_gone_error(chan, req->fdev, req->hdr.opcode);

		if (gone) {
			fusd_req_complete(req, gone);
		} else {
			WRITE_ONCE(req->state, FUSD_REQ_SENT);	/* the daemon may try again */
			hash_add(chan->sent, &req->hnode, req->hdr.id);
		}
	} else {
		req->out_len = plen;
		req->retry = retry;		/* the caller goes round again with it (ioctl.c) */
		retry = NULL;
		if (rep.flags & FUSD_REPLY_POLL)
			WRITE_ONCE(req->ff->mask, fusd_poll_bits(rep.poll_mask));
		atomic64_inc(&req->fdev->calls);
		fusd_req_complete(req, fusd_result_sanitize(rep.result));
	}
	spin_unlock(&chan->lock);
	fusd_req_put(req);
	kfree(retry);
	return err ? err : count;
}

static struct fusd_file *fusd_find_file(struct fusd_channel *chan, u64 dev_id, u64 file_id)
{
	struct fusd_device *fdev;
	struct fusd_file *ff;

	list_for_each_entry(fdev, &chan->devices, chan_node) {
		if (fdev->id != dev_id)
			continue;
		list_for_each_entry(ff, &fdev->files, dev_node)
			if (ff->id == file_id)
				return ff;
		break;
	}
	return NULL;
}

static ssize_t fusd_chan_ready(struct fusd_channel *chan, const char __user *buf, size_t count)
{
	struct fusd_ready ready;
	struct fusd_file *ff;
	__poll_t mask;

	if (count != sizeof(ready))
		return -EINVAL;
	if (copy_from_user(&ready, buf, sizeof(ready)))
		return -EFAULT;
	if (ready.padding || ready.mask & ~FUSD_POLL_ALL)
		return -EINVAL;
	mask = fusd_poll_bits(ready.mask);

	spin_lock(&chan->lock);
	ff = fusd_find_file(chan, ready.dev_id, ready.file_id);
	if (ff) {
		WRITE_ONCE(ff->mask, mask);
		wake_up_interruptible_poll(&ff->pollq, mask);
	}
	spin_unlock(&chan->lock);
	return ff ? count : -ENOENT;
}

/* One message from the daemon (a REPLY or a READY), as write() takes it. */
static ssize_t fusd_chan_write_msg(struct fusd_channel *chan, const char __user *buf,
				   size_t count)
{
	struct { __u32 size, type; } head;

	if (count < sizeof(head) || count > sizeof(struct fusd_reply) + FUSD_CHUNK_MAX)
		return -EINVAL;
	if (copy_from_user(&head, buf, sizeof(head)))
		return -EFAULT;
	if (head.size != count)
		return -EINVAL;
	switch (head.type) {
	case FUSD_MSG_REPLY:
		return fusd_chan_reply(chan, buf, count);
	case FUSD_MSG_READY:
		return fusd_chan_ready(chan, buf, count);
	default:
		return -EINVAL;
	}
}

static ssize_t fusd_chan_write(struct file *file, const char __user *buf, size_t count,
			       loff_t *ppos)
{
	struct fusd_channel *chan = file->private_data;

	if (!READ_ONCE(chan->hello))
		return -EPROTO;
	if (READ_ONCE(chan->tracer))
		return -EINVAL;
	return fusd_chan_write_msg(chan, buf, count);
}

/* ---- FUSD_IOC_EXCHANGE: a write() and the next read() in one call ---- */

static int fusd_exchange_sane(const struct fusd_exchange *ex)
{
	if (ex->flags & ~FUSD_EXCHANGE_WAIT || ex->padding || ex->reserved)
		return -EINVAL;
	if (!ex->msg != !ex->msg_size)
		return -EINVAL;
	if (ex->buf_size < FUSD_MIN_READ_BUFFER)
		return -EINVAL;
	if (ex->wake_fd != -1 && (ex->wake_fd < 0 || !(ex->flags & FUSD_EXCHANGE_WAIT)))
		return -EINVAL;
	return 0;
}

/*
 * The daemon's hot path: its reply to one request and its read of the next in one system
 * call.  With FUSD_EXCHANGE_WAIT it also sleeps like a blocking read() that wakes as well for
 * wake_fd, so an event loop can wait here instead of in epoll_wait() while it has nothing
 * else to do.  A signal after the message was written gives EINTR: a restart would write it
 * again.
 */
static long fusd_ioc_exchange(struct fusd_channel *chan, struct file *file,
			      struct fusd_exchange __user *uex)
{
	struct fusd_exchange ex;
	struct fd wake = {};
	ssize_t ret;

	if (READ_ONCE(chan->tracer))
		return -EINVAL;
	if (copy_from_user(&ex, uex, sizeof(ex)))
		return -EFAULT;
	ret = fusd_exchange_sane(&ex);
	if (ret)
		return ret;
	if (ex.wake_fd >= 0) {
		wake = fdget(ex.wake_fd);	/* held like poll() holds its fds */
		if (!wake.file)
			return -EBADF;
	}
	if (ex.msg) {
		ret = fusd_chan_write_msg(chan, u64_to_user_ptr(ex.msg), ex.msg_size);
		if (put_user((__s32)ret, &uex->msg_result)) {
			ret = -EFAULT;
			goto out;
		}
	}
	ret = fusd_chan_read_msg(chan, file, u64_to_user_ptr(ex.buf), ex.buf_size,
				 ex.flags & FUSD_EXCHANGE_WAIT, wake.file);
	if (ret == -EAGAIN)
		ret = 0;
	else if (ret == -ERESTARTSYS && ex.msg)
		ret = -EINTR;
out:
	fdput(wake);
	return ret;
}

/* ---- the channel file ---- */

static __poll_t fusd_chan_poll(struct file *file, poll_table *wait)
{
	struct fusd_channel *chan = file->private_data;

	poll_wait(file, &chan->waitq, wait);
	if (READ_ONCE(chan->tracer))
		return fusd_trace_poll(chan);
	if (fusd_chan_readable(chan))
		return EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM;
	return EPOLLOUT | EPOLLWRNORM;
}

static long fusd_ioc_hello(struct fusd_channel *chan, void __user *arg)
{
	struct fusd_hello hello;
	bool match;
	u32 minor;
	int err = 0;

	if (copy_from_user(&hello, arg, sizeof(hello)))
		return -EFAULT;
	minor = hello.minor;
	if (hello.chunk_max || hello.min_read || hello.reserved[0] || hello.reserved[1])
		return -EINVAL;
	match = hello.major == FUSD_VERSION_MAJOR;
	hello.major = FUSD_VERSION_MAJOR;
	hello.minor = FUSD_VERSION_MINOR;
	hello.chunk_max = FUSD_CHUNK_MAX;
	hello.min_read = FUSD_MIN_READ_BUFFER;
	if (copy_to_user(arg, &hello, sizeof(hello)))
		return -EFAULT;
	if (!match)
		return -EPROTO;
	spin_lock(&chan->lock);
	if (chan->hello) {
		err = -EALREADY;
	} else {
		WRITE_ONCE(chan->minor, minor);
		WRITE_ONCE(chan->hello, true);
	}
	spin_unlock(&chan->lock);
	return err;
}

static long fusd_chan_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct fusd_channel *chan = file->private_data;
	void __user *argp = (void __user *)arg;

	if (cmd == FUSD_IOC_HELLO)
		return fusd_ioc_hello(chan, argp);
	if (!READ_ONCE(chan->hello))
		return -EPROTO;
	switch (cmd) {
	case FUSD_IOC_REGISTER:
		return fusd_ioc_register(chan, argp, false);
	case FUSD_IOC_REGISTER_LABELED:
		return fusd_ioc_register(chan, argp, true);
	case FUSD_IOC_UNREGISTER:
		return fusd_ioc_unregister(chan, argp);
	case FUSD_IOC_FORCE_UNREGISTER:
		return fusd_ioc_force_unregister(argp);
	case FUSD_IOC_TRACE:
		return fusd_trace_subscribe(chan, argp);
	case FUSD_IOC_EXCHANGE:
		return fusd_ioc_exchange(chan, file, argp);
	default:
		return -ENOTTY;
	}
}

static int fusd_chan_open(struct inode *inode, struct file *file)
{
	struct fusd_channel *chan = kzalloc(sizeof(*chan), GFP_KERNEL_ACCOUNT);

	if (!chan)
		return -ENOMEM;
	kref_init(&chan->kref);
	spin_lock_init(&chan->lock);
	init_waitqueue_head(&chan->waitq);
	mutex_init(&chan->waker_lock);
	INIT_LIST_HEAD(&chan->pending);
	INIT_LIST_HEAD(&chan->interrupts);
	INIT_LIST_HEAD(&chan->devices);
	INIT_LIST_HEAD(&chan->replying);
	hash_init(chan->sent);
	chan->pid_ns = get_pid_ns(task_active_pid_ns(current));
	file->private_data = chan;
	atomic_long_inc(&fusd_live_channels);
	return stream_open(inode, file);
}

static void fusd_chan_free(struct kref *kref)
{
	struct fusd_channel *chan = container_of(kref, struct fusd_channel, kref);

	put_pid_ns(chan->pid_ns);
	kfree(chan);
	atomic_long_dec(&fusd_live_channels);
}

void fusd_chan_put(struct fusd_channel *chan)
{
	kref_put(&chan->kref, fusd_chan_free);
}

/* The daemon is gone (close, exit, kill): fail everything, remove its nodes. */
static int fusd_chan_release(struct inode *inode, struct file *file)
{
	struct fusd_channel *chan = file->private_data;

	if (chan->tracer)
		fusd_trace_unsubscribe(chan);
	fusd_waker_release(chan);
	spin_lock(&chan->lock);
	chan->dead = true;
	spin_unlock(&chan->lock);
	fusd_chan_purge(chan, NULL, -EPIPE);
	fusd_channel_remove_devices(chan);
	fusd_chan_put(chan);
	return 0;
}

const struct file_operations fusd_chan_fops = {
	.owner = THIS_MODULE,
	.open = fusd_chan_open,
	.release = fusd_chan_release,
	.read = fusd_chan_read,
	.write = fusd_chan_write,
	.poll = fusd_chan_poll,
	.unlocked_ioctl = fusd_chan_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = no_llseek,
};
