// SPDX-License-Identifier: GPL-2.0
/*
 * waker.c - FUSD_IOC_EXCHANGE's wake_fd, watched from one exchange to the next.
 *
 * An event loop that waits in FUSD_IOC_EXCHANGE passes its epoll set as wake_fd, so that the
 * wait also ends when anything else the loop watches is ready.  Looking at that set the way
 * select() does on every wait (poll_initwait, vfs_poll with a table, poll_freewait) was a
 * visible share of a 1-byte round trip in the TCG test guest (fusd-kbench: exchange-epoll
 * against exchange).  So the channel watches the set the way epoll watches its own files: one entry
 * on the set's wait queue, from the first wait that names it until the channel closes or a
 * wait names another set.
 *
 * Objects
 *   waker   (struct fusd_waker) - the watched epoll file (counted), the entry on its wait
 *           queue, a "woken" bit, and the task sleeping in an exchange now (RCU).
 *
 * The flow
 *   a wake-up on the set's queue (something in the set got ready; any context) ->
 *     fusd_waker_wake(): set woken, wake the sleeper if there is one;
 *   an exchange that must wait -> fusd_waker_wait(): spin while its CPU is otherwise idle
 *     until a request or woken (fusd_poll(), at most poll_ns); then, while woken, clear it
 *     and look at the set (vfs_poll without a table): ready ends the wait and leaves woken
 *     set.  Else sleep on chan->waitq, like a blocking read(), until a request, woken, or a
 *     signal.
 *
 * "Woken" is cleared only by a look that found the set not ready, and the set's queue is
 * woken whenever it gets ready again, so a set that stays ready (level-triggered fds the
 * loop has not drained) ends every wait, as select() would.
 *
 * Only epoll sets are watched this way: a set holds no reference to the files in it, so
 * the reference the channel keeps cannot close a cycle (a file that holds others, such as
 * another channel with a watch of its own or a unix socket with fds in flight, could hold
 * this channel and never be freed).  Any other wake_fd, and a second thread waiting on the
 * same channel at the same time (the watch has one sleeper; chan->waker_lock is tried,
 * never waited for), gets the select()-style wait of channel.c.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/poll.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "fusd_internal.h"

#define FUSD_WAKER_WOKEN	0	/* bit in waker->flags */

struct fusd_waker {
	struct file *file;			/* the epoll set; counted */
	wait_queue_entry_t wait;		/* on *whead */
	wait_queue_head_t *whead;		/* NULL once the queue went away (POLLFREE) */
	poll_table pt;				/* for the one vfs_poll() that queues us */
	bool queued_twice;			/* the file offered a second queue: not watchable */
	unsigned long flags;
	struct task_struct __rcu *sleeper;	/* in fusd_waker_wait(), under chan->waker_lock */
};

static bool fusd_is_epoll(struct file *file)
{
	/* eventpoll_fops is not exported; an epoll file is the anon inode "[eventpoll]" */
	return file_inode(file)->i_sb->s_magic == ANON_INODE_FS_MAGIC &&
	       !strcmp(file_dentry(file)->d_name.name, "[eventpoll]");
}

/* The set's wait queue was woken: from any context, under that queue's lock. */
static int fusd_waker_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct fusd_waker *w = container_of(wait, struct fusd_waker, wait);
	struct task_struct *sleeper;

	set_bit(FUSD_WAKER_WOKEN, &w->flags);
	smp_mb__after_atomic();		/* pairs with set_current_state() in fusd_waker_wait() */
	rcu_read_lock();
	sleeper = rcu_dereference(w->sleeper);
	if (sleeper)
		wake_up_process(sleeper);
	rcu_read_unlock();
	if (key_to_poll(key) & POLLFREE) {
		/*
		 * The queue is going away (an epoll set's never does while we hold the file;
		 * handled as epoll handles it).  Nothing may touch w after whead is cleared:
		 * fusd_waker_free() no longer waits for this lock.
		 */
		list_del_init(&wait->entry);
		smp_store_release(&w->whead, NULL);
	}
	return 0;
}

static void fusd_waker_queue(struct file *file, wait_queue_head_t *whead, poll_table *pt)
{
	struct fusd_waker *w = container_of(pt, struct fusd_waker, pt);

	if (w->whead) {
		w->queued_twice = true;
		return;
	}
	init_waitqueue_func_entry(&w->wait, fusd_waker_wake);
	w->whead = whead;
	add_wait_queue(whead, &w->wait);
}

static void fusd_waker_free(struct fusd_waker *w)
{
	wait_queue_head_t *whead;

	rcu_read_lock();		/* a queue cleared by POLLFREE is freed after RCU */
	whead = smp_load_acquire(&w->whead);
	if (whead)
		remove_wait_queue(whead, &w->wait);
	rcu_read_unlock();
	fput(w->file);
	kfree(w);
	atomic_long_dec(&fusd_live_wakers);
}

/* Watch @wake for @chan in place of what it watched before.  chan->waker_lock held. */
static int fusd_waker_watch(struct fusd_channel *chan, struct file *wake)
{
	struct fusd_waker *w;

	if (!fusd_is_epoll(wake))
		return -EOPNOTSUPP;
	w = kzalloc(sizeof(*w), GFP_KERNEL_ACCOUNT);
	if (!w)
		return -ENOMEM;
	atomic_long_inc(&fusd_live_wakers);
	w->file = get_file(wake);
	set_bit(FUSD_WAKER_WOKEN, &w->flags);	/* the first wait looks at the set */
	init_poll_funcptr(&w->pt, fusd_waker_queue);
	vfs_poll(wake, &w->pt);
	if (!w->whead || w->queued_twice) {
		fusd_waker_free(w);
		return -EOPNOTSUPP;
	}
	if (chan->waker)
		fusd_waker_free(chan->waker);
	chan->waker = w;
	return 0;
}

/* Is the set ready now?  Clears woken unless it is.  Task running. */
static bool fusd_waker_ready(struct fusd_waker *w)
{
	if (!test_and_clear_bit(FUSD_WAKER_WOKEN, &w->flags))
		return false;
	if (!(vfs_poll(w->file, NULL) & FUSD_WAKE_EVENTS))
		return false;
	set_bit(FUSD_WAKER_WOKEN, &w->flags);
	return true;
}

/* A message, or a wake-up of the set: either ends a wait.  chan->waker_lock held. */
static bool fusd_waker_done(const void *chan)
{
	const struct fusd_channel *c = chan;

	return fusd_chan_readable(c) || test_bit(FUSD_WAKER_WOKEN, &c->waker->flags);
}

/*
 * Sleep until @chan has a message (0), @wake is ready (-EAGAIN) or a signal comes
 * (-ERESTARTSYS).  -EOPNOTSUPP or -EBUSY when this wait cannot watch @wake (not an epoll
 * set, or no memory for the watch; another thread is in such a wait on @chan): the caller
 * waits the select() way.
 */
int fusd_waker_wait(struct fusd_channel *chan, struct file *wake)
{
	struct fusd_waker *w;
	DEFINE_WAIT(wait);
	int ret;

	if (!mutex_trylock(&chan->waker_lock))
		return -EBUSY;
	if (!chan->waker || chan->waker->file != wake) {
		ret = fusd_waker_watch(chan, wake);
		if (ret) {
			ret = -EOPNOTSUPP;
			goto out;
		}
	}
	w = chan->waker;
	fusd_poll(fusd_waker_done, chan);	/* the loop below sees what ended it */
	rcu_assign_pointer(w->sleeper, current);
	for (;;) {
		if (fusd_waker_ready(w)) {
			/* a request that came meanwhile wins, as in a blocking read() */
			ret = fusd_chan_readable(chan) ? 0 : -EAGAIN;
			break;
		}
		prepare_to_wait(&chan->waitq, &wait, TASK_INTERRUPTIBLE);
		if (fusd_chan_readable(chan)) {
			ret = 0;
			break;
		}
		if (test_bit(FUSD_WAKER_WOKEN, &w->flags)) {
			__set_current_state(TASK_RUNNING);	/* vfs_poll() may sleep */
			continue;
		}
		if (signal_pending(current)) {
			ret = -ERESTARTSYS;
			break;
		}
		schedule();
	}
	finish_wait(&chan->waitq, &wait);
	RCU_INIT_POINTER(w->sleeper, NULL);
out:
	mutex_unlock(&chan->waker_lock);
	return ret;
}

/* The channel's file is being released: stop watching. */
void fusd_waker_release(struct fusd_channel *chan)
{
	mutex_lock(&chan->waker_lock);
	if (chan->waker)
		fusd_waker_free(chan->waker);
	chan->waker = NULL;
	mutex_unlock(&chan->waker_lock);
}
