// SPDX-License-Identifier: GPL-2.0
/*
 * ioctl.c - ioctl(2) on /dev/<name>: what is copied in and out, and the daemon's retries.
 *
 * Objects
 *   shape      the bytes at the argument that go to the daemon and come back: the command
 *              number's _IOC direction and size, or, for a legacy command whose number carries
 *              none (TCGETS, TIOCMGET, I2C_FUNCS...), its entry in FUSD_IOCTL_TABLE
 *              (<linux/fusd_ioctl.h>).  Any other command passes its argument by value.
 *   ranges     (struct fusd_ioctl_ranges) the caller's memory one IOCTL request carries:
 *              "in" ranges copied to the daemon, "out" ranges its reply is copied over.  The
 *              first request's are the shape's one range at the argument.
 *
 * The flow of one call: fusd_node_ioctl() gathers the in ranges with copy_from_user into a
 * request and waits for the reply (fusd_call); the reply's data is scattered over the out
 * ranges with copy_to_user.  A daemon that needs more of the caller's memory (an argument
 * holding pointers: I2C_RDWR, SPI_IOC_MESSAGE) answers FUSD_REPLY_RETRY with a new list of
 * ranges (checked whole in channel.c: counts and sizes within the limits of fusd.h); the call
 * then goes round again with those, at most FUSD_RETRY_ROUNDS_MAX times.  The caller's memory
 * is only ever touched here, in the caller's own context, through copy_from_user and
 * copy_to_user: an address the caller could not use itself fails the call with EFAULT.
 */
#include <linux/fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include <linux/fusd_ioctl.h>

#include "fusd_internal.h"

struct fusd_ioctl_shape {
	unsigned int cmd;
	u8 dir;
	u16 size;
};

#define FUSD_SHAPE(c, d, s)	{ .cmd = (c), .dir = (d), .size = (s) },
static const struct fusd_ioctl_shape fusd_ioctl_table[] = {
	FUSD_IOCTL_TABLE(FUSD_SHAPE)
};
#undef FUSD_SHAPE

/* Sets *@dir and *@size for @cmd: its _IOC encoding, its table entry, or by value. */
static void fusd_ioctl_shape(unsigned int cmd, u32 *dir, u32 *size)
{
	size_t i;

	*dir = _IOC_DIR(cmd);
	*size = _IOC_SIZE(cmd);
	if (*dir == _IOC_NONE)
		*size = 0;
	if (cmd >> _IOC_SIZESHIFT)		/* an _IOC number: it says it all */
		return;
	for (i = 0; i < ARRAY_SIZE(fusd_ioctl_table); i++) {
		if (fusd_ioctl_table[i].cmd == cmd) {
			*dir = fusd_ioctl_table[i].dir;
			*size = fusd_ioctl_table[i].size;
			return;
		}
	}
}

/* One request's view of the caller's memory: in ranges, then out ranges. */
struct fusd_ioctl_ranges {
	u32 in_count, out_count;
	u32 in_len, out_len;			/* totals, each <= FUSD_CHUNK_MAX */
	const struct fusd_ioctl_range *range;
};

static void fusd_ranges_of_retry(struct fusd_ioctl_ranges *r, const struct fusd_retry_list *rl)
{
	r->in_count = rl->in_count;
	r->out_count = rl->out_count;
	r->in_len = rl->in_len;
	r->out_len = rl->out_len;
	r->range = rl->range;
}

static int fusd_ioctl_gather(void *dst, const struct fusd_ioctl_ranges *r)
{
	u32 i;

	for (i = 0; i < r->in_count; i++) {
		const struct fusd_ioctl_range *in = &r->range[i];

		if (copy_from_user(dst, u64_to_user_ptr(in->addr), in->len))
			return -EFAULT;
		dst += in->len;
	}
	return 0;
}

/* The reply's @len bytes at @src over the out ranges, in order, as far as they go. */
static int fusd_ioctl_scatter(const void *src, u32 len, const struct fusd_ioctl_ranges *r)
{
	const struct fusd_ioctl_range *out = r->range + r->in_count;
	u32 i;

	for (i = 0; i < r->out_count && len; i++) {
		u32 n = min_t(u64, out[i].len, len);

		if (copy_to_user(u64_to_user_ptr(out[i].addr), src, n))
			return -EFAULT;
		src += n;
		len -= n;
	}
	return 0;
}

/*
 * One IOCTL request over @r.  Returns the daemon's result or -errno; a retry's list goes to
 * *@retry (the caller frees it).
 */
static long fusd_ioctl_round(struct fusd_file *ff, struct file *file, unsigned int cmd,
			     unsigned long arg, u32 len, const struct fusd_ioctl_ranges *r,
			     struct fusd_retry_list **retry)
{
	struct fusd_req *req = fusd_req_new(ff, file, FUSD_OP_IOCTL, len, r->in_len, r->out_len);
	long ret;

	if (!req)
		return -ENOMEM;
	req->hdr.ioctl_cmd = cmd;
	req->hdr.ioctl_arg = arg;
	ret = fusd_ioctl_gather(req->buf, r);
	if (!ret)
		ret = fusd_call(req);
	if (ret >= 0 && req->retry) {
		*retry = req->retry;
		req->retry = NULL;
	} else if (ret >= 0 && req->out_len && fusd_ioctl_scatter(req->buf, req->out_len, r)) {
		ret = -EFAULT;
	}
	fusd_req_put(req);
	return ret;
}

long fusd_node_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct fusd_file *ff = file->private_data;
	struct fusd_ioctl_range at_arg[2];
	struct fusd_retry_list *list = NULL, *next;
	struct fusd_ioctl_ranges r = { .range = at_arg };
	u32 dir, size, rounds = 0;
	long ret;

	fusd_ioctl_shape(cmd, &dir, &size);
	if (dir & _IOC_WRITE) {
		at_arg[r.in_count++] = (struct fusd_ioctl_range){ arg, size };
		r.in_len = size;
	}
	if (dir & _IOC_READ) {
		at_arg[r.in_count + r.out_count++] = (struct fusd_ioctl_range){ arg, size };
		r.out_len = size;
	}
	for (;;) {
		next = NULL;
		ret = fusd_ioctl_round(ff, file, cmd, arg, list ? r.out_len : size, &r, &next);
		kfree(list);
		list = next;
		if (!list)
			break;
		if (++rounds > FUSD_RETRY_ROUNDS_MAX) {
			ret = -EIO;
			break;
		}
		fusd_ranges_of_retry(&r, list);
	}
	kfree(list);
	return ret;
}
