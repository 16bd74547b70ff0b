// SPDX-License-Identifier: GPL-2.0
/*
 * node.c - the file operations of /dev/<name>: each call becomes one or more requests.
 *
 * Nodes are streams (stream_open): no offsets, lseek and pread/pwrite fail with ESPIPE.
 * read/write move at most FUSD_CHUNK_MAX bytes per request through a bounce buffer of a
 * fixed size and loop while chunks come back full; ioctl is ioctl.c's.
 * poll() never asks the daemon: it answers from the mask the daemon last set.
 * mmap asks the daemon for shared memory of its own (mmap.c).
 */
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "fusd_internal.h"

static atomic64_t fusd_last_file_id = ATOMIC64_INIT(0);

static struct fusd_file *fusd_file_alloc(struct fusd_device *fdev)
{
	struct fusd_file *ff = kzalloc(sizeof(*ff), GFP_KERNEL_ACCOUNT);

	if (!ff)
		return NULL;
	ff->fdev = fdev;
	ff->id = atomic64_inc_return(&fusd_last_file_id);
	ff->mask = fusd_file_default_mask();
	init_waitqueue_head(&ff->pollq);
	INIT_LIST_HEAD(&ff->dev_node);
	ff->release_msg = fusd_req_new(ff, NULL, FUSD_OP_RELEASE, 0, 0, 0);
	if (!ff->release_msg) {
		kfree(ff);
		return NULL;
	}
	atomic_long_inc(&fusd_live_files);
	return ff;
}

/* Frees @ff and drops its device reference. */
static void fusd_file_free(struct fusd_file *ff)
{
	if (ff->release_msg)
		fusd_req_put(ff->release_msg);
	fusd_device_put(ff->fdev);
	kfree(ff);
	atomic_long_dec(&fusd_live_files);
}

/* Ask the daemon; a file it may have seen opened gets a RELEASE when it goes. */
static int fusd_open_call(struct fusd_file *ff, struct file *file)
{
	struct fusd_req *req = fusd_req_new(ff, file, FUSD_OP_OPEN, 0, 0, 0);
	int ret;

	if (!req)
		return -ENOMEM;
	ret = fusd_call(req);
	ff->opened = ret >= 0 || req->abandoned;
	fusd_req_put(req);
	return ret < 0 ? ret : 0;
}

static int fusd_node_open(struct inode *inode, struct file *file)
{
	struct fusd_device *fdev = fusd_device_get_by_minor(iminor(inode));
	struct fusd_file *ff;
	int err;

	if (!fdev)
		return -ENODEV;
	ff = fusd_file_alloc(fdev);
	if (!ff) {
		fusd_device_put(fdev);
		return -ENOMEM;
	}
	err = fusd_file_link(ff);
	if (err)
		goto out_free;
	stream_open(inode, file);
	file->private_data = ff;
	err = fusd_open_call(ff, file);
	if (!err)
		return 0;
	fusd_file_unlink(ff, file);
out_free:
	fusd_file_free(ff);
	return err;
}

static int fusd_node_release(struct inode *inode, struct file *file)
{
	struct fusd_file *ff = file->private_data;

	fusd_file_unlink(ff, file);
	fusd_file_free(ff);
	return 0;
}

/* One READ request for @chunk bytes, copied to @ubuf.  Returns bytes or -errno. */
static ssize_t fusd_read_chunk(struct fusd_file *ff, struct file *file, char __user *ubuf,
			       u32 chunk)
{
	struct fusd_req *req = fusd_req_new(ff, file, FUSD_OP_READ, chunk, 0, chunk);
	ssize_t ret;

	if (!req)
		return -ENOMEM;
	ret = fusd_call(req);
	if (ret > 0 && copy_to_user(ubuf, req->buf, ret))
		ret = -EFAULT;
	fusd_req_put(req);
	return ret;
}

static ssize_t fusd_node_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	struct fusd_file *ff = file->private_data;
	size_t done = 0;
	ssize_t ret = 0;

	while (done < count) {
		u32 chunk = min_t(size_t, count - done, FUSD_CHUNK_MAX);

		ret = fusd_read_chunk(ff, file, ubuf + done, chunk);
		if (ret <= 0)
			break;
		done += ret;
		if (ret < chunk)
			break;
	}
	return done ? done : ret;
}

/* One WRITE request of @chunk bytes from @ubuf.  Returns bytes taken or -errno. */
static ssize_t fusd_write_chunk(struct fusd_file *ff, struct file *file,
				const char __user *ubuf, u32 chunk)
{
	struct fusd_req *req = fusd_req_new(ff, file, FUSD_OP_WRITE, chunk, chunk, 0);
	ssize_t ret;

	if (!req)
		return -ENOMEM;
	if (copy_from_user(req->buf, ubuf, chunk))
		ret = -EFAULT;
	else
		ret = fusd_call(req);
	fusd_req_put(req);
	return ret;
}

static ssize_t fusd_node_write(struct file *file, const char __user *ubuf, size_t count,
			       loff_t *ppos)
{
	struct fusd_file *ff = file->private_data;
	size_t done = 0;
	ssize_t ret = 0;

	while (done < count) {
		u32 chunk = min_t(size_t, count - done, FUSD_CHUNK_MAX);

		ret = fusd_write_chunk(ff, file, ubuf + done, chunk);
		if (ret <= 0)
			break;
		done += ret;
		if (ret < chunk)
			break;
	}
	return done ? done : ret;
}

static __poll_t fusd_node_poll(struct file *file, poll_table *wait)
{
	struct fusd_file *ff = file->private_data;

	poll_wait(file, &ff->pollq, wait);
	if (READ_ONCE(ff->fdev->gone) || READ_ONCE(ff->fdev->chan->dead))
		return EPOLLERR | EPOLLHUP;
	return READ_ONCE(ff->mask);
}

const struct file_operations fusd_node_fops = {
	.owner = THIS_MODULE,
	.open = fusd_node_open,
	.release = fusd_node_release,
	.read = fusd_node_read,
	.write = fusd_node_write,
	.unlocked_ioctl = fusd_node_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.poll = fusd_node_poll,
	.mmap = fusd_node_mmap,
	.llseek = no_llseek,
};
