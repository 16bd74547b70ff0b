// SPDX-License-Identifier: GPL-2.0
/*
 * trace.c - trace subscribers: FUSD_IOC_TRACE turns a channel into a reader of
 * struct fusd_trace_record, one per ended request, from a ring of FUSD_TRACE_RING
 * records.  A full ring drops records and counts them in the next record that fits.
 * A subscriber sees the devices it could remove (fusd_may_manage()): those registered by
 * its own effective uid without CAP_SYS_ADMIN, or all of them with CAP_SYS_ADMIN.  With no subscriber the cost is one static branch per request.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/ktime.h>
#include <linux/pid_namespace.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "fusd_internal.h"

/*
 * On while anyone subscribes.  Turning a static key on or off patches the kernel's text and
 * interrupts every CPU; any user may subscribe and close in a loop, so the last subscriber's
 * leave takes effect HZ later, and a subscriber arriving meanwhile flips nothing.
 */
DEFINE_STATIC_KEY_DEFERRED_FALSE(fusd_trace_active, HZ);
static DEFINE_SPINLOCK(fusd_trace_lock);
static LIST_HEAD(fusd_tracers);		/* under fusd_trace_lock */
static unsigned int fusd_tracer_count;	/* under fusd_mutex */

struct fusd_tracer {
	struct list_head node;
	struct fusd_channel *chan;	/* its owner; the tracer dies with it */
	kuid_t uid;
	bool admin;
	unsigned int head, tail;	/* free-running indices into ring */
	u32 dropped;			/* records lost since the last one stored */
	struct fusd_trace_record ring[FUSD_TRACE_RING];
};

/* Subscribers of @uid without CAP_SYS_ADMIN.  fusd_mutex held. */
static unsigned int fusd_user_tracers(kuid_t uid)
{
	struct fusd_tracer *t;
	unsigned int n = 0;

	lockdep_assert_held(&fusd_mutex);
	spin_lock(&fusd_trace_lock);
	list_for_each_entry(t, &fusd_tracers, node)
		n += !t->admin && uid_eq(t->uid, uid);
	spin_unlock(&fusd_trace_lock);
	return n;
}

long fusd_trace_subscribe(struct fusd_channel *chan, void __user *arg)
{
	struct fusd_trace_subscribe sub;
	struct fusd_tracer *t;
	int err = 0;

	if (copy_from_user(&sub, arg, sizeof(sub)))
		return -EFAULT;
	if (sub.flags || sub.ring_records || sub.reserved)
		return -EINVAL;
	t = kvzalloc(sizeof(*t), GFP_KERNEL_ACCOUNT);
	if (!t)
		return -ENOMEM;
	t->chan = chan;
	t->uid = current_euid();
	t->admin = ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);

	mutex_lock(&fusd_mutex);
	if (chan->tracer)
		err = -EALREADY;
	else if (!list_empty(&chan->devices) || fusd_tracer_count >= FUSD_MAX_TRACERS)
		err = -EBUSY;
	else if (!t->admin && fusd_tracer_count >= FUSD_MAX_TRACERS - FUSD_ADMIN_TRACERS)
		err = -EBUSY;		/* the last slots are kept for CAP_SYS_ADMIN */
	else if (!t->admin && fusd_user_tracers(t->uid) >= FUSD_USER_TRACERS)
		err = -EBUSY;		/* one user cannot take every other user's slots */
	if (!err) {
		fusd_tracer_count++;
		spin_lock(&fusd_trace_lock);
		list_add_tail(&t->node, &fusd_tracers);
		spin_unlock(&fusd_trace_lock);
		WRITE_ONCE(chan->tracer, t);
	}
	mutex_unlock(&fusd_mutex);
	if (err) {
		kvfree(t);
		return err;
	}
	static_branch_deferred_inc(&fusd_trace_active);
	sub.ring_records = FUSD_TRACE_RING;
	return copy_to_user(arg, &sub, sizeof(sub)) ? -EFAULT : 0;
}

void fusd_trace_unsubscribe(struct fusd_channel *chan)
{
	struct fusd_tracer *t = chan->tracer;

	spin_lock(&fusd_trace_lock);
	list_del(&t->node);
	spin_unlock(&fusd_trace_lock);
	static_branch_slow_dec_deferred(&fusd_trace_active);
	mutex_lock(&fusd_mutex);
	fusd_tracer_count--;
	chan->tracer = NULL;
	mutex_unlock(&fusd_mutex);
	kvfree(t);
}

static void fusd_trace_store(struct fusd_tracer *t, const struct fusd_device *fdev,
			     const struct fusd_req_header *hdr, int result, u64 start_ns, u64 now)
{
	struct fusd_trace_record *rec;

	if (t->head - t->tail >= FUSD_TRACE_RING) {
		if (t->dropped < U32_MAX)
			t->dropped++;
		return;
	}
	rec = &t->ring[t->head % FUSD_TRACE_RING];
	rec->time_ns = now;
	rec->latency_ns = now - start_ns;
	rec->dev_id = fdev->id;
	rec->req_id = hdr->id;
	rec->file_id = hdr->file_id;
	rec->pid = task_tgid_nr_ns(current, t->chan->pid_ns);
	rec->opcode = hdr->opcode;
	rec->len = hdr->len;
	rec->result = result;
	rec->dropped = t->dropped;
	rec->padding = 0;
	memcpy(rec->name, fdev->name, sizeof(rec->name));	/* NUL-padded */
	t->dropped = 0;
	t->head++;
	wake_up_interruptible_poll(&t->chan->waitq, EPOLLIN | EPOLLRDNORM);
}

void __fusd_trace(const struct fusd_device *fdev, const struct fusd_req_header *hdr,
		  int result, u64 start_ns)
{
	u64 now = ktime_get_ns();
	struct fusd_tracer *t;

	spin_lock(&fusd_trace_lock);
	list_for_each_entry(t, &fusd_tracers, node)
		if (fusd_may_manage(fdev, t->uid, t->admin))
			fusd_trace_store(t, fdev, hdr, result, start_ns, now);
	spin_unlock(&fusd_trace_lock);
}

static bool fusd_trace_pop(struct fusd_tracer *t, struct fusd_trace_record *rec)
{
	bool have;

	spin_lock(&fusd_trace_lock);
	have = t->head != t->tail;
	if (have)
		*rec = t->ring[t->tail++ % FUSD_TRACE_RING];
	spin_unlock(&fusd_trace_lock);
	return have;
}

static bool fusd_trace_ready(struct fusd_tracer *t)
{
	return READ_ONCE(t->head) != READ_ONCE(t->tail);
}

ssize_t fusd_trace_read(struct fusd_channel *chan, struct file *file, char __user *buf,
			size_t count)
{
	struct fusd_tracer *t = chan->tracer;
	struct fusd_trace_record rec;
	size_t done = 0;
	int err;

	if (count < sizeof(rec))
		return -EINVAL;
	while (done + sizeof(rec) <= count) {
		if (!fusd_trace_pop(t, &rec)) {
			if (done)
				break;
			if (file->f_flags & O_NONBLOCK)
				return -EAGAIN;
			err = wait_event_interruptible(chan->waitq, fusd_trace_ready(t));
			if (err)
				return err;
			continue;
		}
		if (copy_to_user(buf + done, &rec, sizeof(rec)))
			return done ? done : -EFAULT;
		done += sizeof(rec);
	}
	return done;
}

__poll_t fusd_trace_poll(struct fusd_channel *chan)
{
	return fusd_trace_ready(chan->tracer) ? EPOLLIN | EPOLLRDNORM : 0;
}

/* Module unload: no subscriber is left, but a deferred leave may still be pending. */
void fusd_trace_exit(void)
{
	static_key_deferred_flush(&fusd_trace_active);
}
