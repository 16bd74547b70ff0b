// SPDX-License-Identifier: GPL-2.0
/*
 * fusd - Framework for User-Space Devices: character devices served by a daemon.
 *
 * Objects
 *   channel    (struct fusd_channel, channel.c) - one open /dev/fusd: a daemon's connection.
 *              It owns a queue of requests to read, a table of requests in flight, and
 *              its devices.  Or, after FUSD_IOC_TRACE, a trace subscriber (trace.c).
 *   device     (struct fusd_device, this file) - one node /dev/<name> registered by a
 *              channel: a minor of the fusd major, a struct device in class "fusd"
 *              (devtmpfs makes the node, sysfs shows its status).
 *   open file  (struct fusd_file, node.c) - one open() of a node; has an id, the
 *              readiness mask the daemon last set, and a preallocated RELEASE message.
 *   request    (struct fusd_req, channel.c) - one message to the daemon and the caller's
 *              wait for its reply; carries a bounce buffer of a fixed size class.
 *   waker      (struct fusd_waker, waker.c) - the epoll set a channel's FUSD_IOC_EXCHANGE
 *              waits also end for, watched from one exchange to the next.
 *   mapping    (struct fusd_map, mmap.c) - one mmap() of a node: the daemon's shared memory
 *              in the caller, revoked when the device goes.
 *
 * The flow of one call, read(2) on /dev/foo:
 *   fusd_node_read() builds a READ request for at most FUSD_CHUNK_MAX bytes;
 *   fusd_call() gives it a fresh id, queues it on the channel, wakes the daemon and
 *   waits interruptibly (spinning first while its CPU has nothing else to run, see
 *   fusd_poll(), then asleep); the daemon's read(2) of /dev/fusd (fusd_chan_read) moves it to
 *   the in-flight table and copies out its header (and payload); the daemon's write(2)
 *   of a struct fusd_reply (fusd_chan_write) finds it by id, checks the reply against
 *   it, copies the payload into its bounce buffer, marks it done and wakes the caller;
 *   fusd_node_read() copies the data to the caller and loops while chunks come back full.
 *   A signal ends the wait at once (EINTR, or a restart as a new request: SA_RESTART,
 *   stop signals, the freezer); a request the daemon had already read is then queued
 *   again as an INTERRUPT message.  A daemon that goes away fails every
 *   waiting and later call with EPIPE (opens: ENODEV) and its nodes disappear.
 *
 * Nothing a daemon writes is trusted: every message is checked whole before it has any
 * effect, and a rejected message changes nothing.  See fusd(4) for the user interface.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/cdev.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/pid_namespace.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>

#include "fusd_internal.h"

DEFINE_MUTEX(fusd_mutex);
static LIST_HEAD(fusd_devices);		/* fusd_device.all_node */
static DEFINE_SPINLOCK(fusd_minor_lock);	/* fusd_minors: every open looks there */
static DEFINE_IDR(fusd_minors);		/* minor -> fusd_device (NULL while not in service) */
static u64 fusd_last_dev_id;		/* under fusd_mutex */
static dev_t fusd_devt;
static struct cdev fusd_cdev;

/* ---- live object counters: /sys/module/fusd/parameters/live_* ---- */

atomic_long_t fusd_live_channels, fusd_live_devices, fusd_live_files, fusd_live_requests,
	fusd_live_wakers;

static int fusd_counter_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read(kp->arg));
}

static const struct kernel_param_ops fusd_counter_ops = {
	.get = fusd_counter_get,
};

module_param_cb(live_channels, &fusd_counter_ops, &fusd_live_channels, 0444);
MODULE_PARM_DESC(live_channels, "open /dev/fusd channels (and channels still referenced)");
module_param_cb(live_devices, &fusd_counter_ops, &fusd_live_devices, 0444);
MODULE_PARM_DESC(live_devices, "device objects, registered or still referenced");
module_param_cb(live_files, &fusd_counter_ops, &fusd_live_files, 0444);
MODULE_PARM_DESC(live_files, "open files on fusd nodes");
module_param_cb(live_requests, &fusd_counter_ops, &fusd_live_requests, 0444);
MODULE_PARM_DESC(live_requests, "request objects allocated");
module_param_cb(live_wakers, &fusd_counter_ops, &fusd_live_wakers, 0444);
MODULE_PARM_DESC(live_wakers, "wake_fds watched across FUSD_IOC_EXCHANGE waits");
atomic_long_t fusd_live_maps;
module_param_cb(live_maps, &fusd_counter_ops, &fusd_live_maps, 0444);
MODULE_PARM_DESC(live_maps, "mmap()s of fusd nodes still mapped");

/* ---- adaptive polling: /sys/module/fusd/parameters/poll_ns (see fusd_poll()) ---- */

unsigned int fusd_poll_ns = FUSD_POLL_NS_DEFAULT;

static int fusd_poll_ns_set(const char *val, const struct kernel_param *kp)
{
	unsigned int ns;

	if (kstrtouint(val, 0, &ns) || ns > FUSD_POLL_NS_MAX)
		return -EINVAL;		/* also for a number too large for kstrtouint (ERANGE) */
	WRITE_ONCE(fusd_poll_ns, ns);
	return 0;
}

static const struct kernel_param_ops fusd_poll_ns_ops = {
	.set = fusd_poll_ns_set,
	.get = param_get_uint,
};

module_param_cb(poll_ns, &fusd_poll_ns_ops, &fusd_poll_ns, 0644);
MODULE_PARM_DESC(poll_ns, "how long a waiting caller or daemon spins before it sleeps, while its CPU "
		 "has nothing else to run (ns, 0 to 1000000000; 0: never)");

atomic_long_t fusd_polls_attempted, fusd_polls_successful;
module_param_cb(polls_attempted, &fusd_counter_ops, &fusd_polls_attempted, 0444);
MODULE_PARM_DESC(polls_attempted, "waits that spun before sleeping (since the module was loaded)");
module_param_cb(polls_successful, &fusd_counter_ops, &fusd_polls_successful, 0444);
MODULE_PARM_DESC(polls_successful, "waits that ended while spinning, without sleeping");

/*
 * ---- sysfs: /sys/class/fusd/<name>/ ----
 * That a device exists is public (name, dev_id, owner_uid, state: as ls -l of its node); its
 * traffic is not (the counters, the waits, the daemon's pid in the initial namespace): root's.
 */

static struct fusd_device *to_fusd_device(struct device *dev)
{
	return container_of(dev, struct fusd_device, dev);
}

static ssize_t name_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_fusd_device(dev)->name);
}
static DEVICE_ATTR_RO(name);

static ssize_t dev_id_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", to_fusd_device(dev)->id);
}
static DEVICE_ATTR_RO(dev_id);

static ssize_t daemon_pid_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", to_fusd_device(dev)->daemon_pid);
}
static DEVICE_ATTR_ADMIN_RO(daemon_pid);

static ssize_t owner_uid_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", from_kuid_munged(&init_user_ns, to_fusd_device(dev)->owner));
}
static DEVICE_ATTR_RO(owner_uid);

static ssize_t open_files_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_fusd_device(dev)->open_files));
}
static DEVICE_ATTR_ADMIN_RO(open_files);

static ssize_t calls_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(&to_fusd_device(dev)->calls));
}
static DEVICE_ATTR_ADMIN_RO(calls);

static ssize_t waiting_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	unsigned int count;
	u64 oldest;

	fusd_device_waiting(to_fusd_device(dev), &count, &oldest);
	return sysfs_emit(buf, "%u\n", count);
}
static DEVICE_ATTR_ADMIN_RO(waiting);

static ssize_t oldest_wait_ms_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	unsigned int count;
	u64 oldest;

	fusd_device_waiting(to_fusd_device(dev), &count, &oldest);
	return sysfs_emit(buf, "%llu\n", oldest / NSEC_PER_MSEC);
}
static DEVICE_ATTR_ADMIN_RO(oldest_wait_ms);

/* The classic API's class and device name: labels as public as the name (FUSD_IOC_REGISTER_LABELED). */
static ssize_t clazz_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_fusd_device(dev)->clazz);
}
static DEVICE_ATTR_RO(clazz);

static ssize_t devname_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", to_fusd_device(dev)->devname);
}
static DEVICE_ATTR_RO(devname);

static ssize_t state_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", READ_ONCE(to_fusd_device(dev)->gone) ? "gone" : "live");
}
static DEVICE_ATTR_RO(state);

static struct attribute *fusd_dev_attrs[] = {
	&dev_attr_name.attr,
	&dev_attr_dev_id.attr,
	&dev_attr_daemon_pid.attr,
	&dev_attr_owner_uid.attr,
	&dev_attr_open_files.attr,
	&dev_attr_calls.attr,
	&dev_attr_waiting.attr,
	&dev_attr_oldest_wait_ms.attr,
	&dev_attr_state.attr,
	&dev_attr_clazz.attr,
	&dev_attr_devname.attr,
	NULL
};
ATTRIBUTE_GROUPS(fusd_dev);

static struct class fusd_class = {
	.name = FUSD_CLASS_NAME,
	.owner = THIS_MODULE,
	.dev_groups = fusd_dev_groups,
};

/* devtmpfs: the node gets the mode and owner the daemon asked for; "a!b" becomes a/b. */
static char *fusd_devnode(struct device *dev, umode_t *mode, kuid_t *uid, kgid_t *gid)
{
	struct fusd_device *fdev = to_fusd_device(dev);

	if (mode)
		*mode = fdev->mode;
	if (uid)
		*uid = fdev->uid;
	if (gid)
		*gid = fdev->gid;
	return NULL;
}

static void fusd_device_release(struct device *dev)
{
	struct fusd_device *fdev = to_fusd_device(dev);

	if (fdev->gone_msg)
		fusd_req_put(fdev->gone_msg);
	if (fdev->chan)
		fusd_chan_put(fdev->chan);
	if (fdev->pid_ns)
		put_pid_ns(fdev->pid_ns);
	if (fdev->user_ns)
		put_user_ns(fdev->user_ns);
	kfree(fdev);
	atomic_long_dec(&fusd_live_devices);
}

static const struct device_type fusd_device_type = {
	.name = "fusd",
	.devnode = fusd_devnode,
	.release = fusd_device_release,
};

void fusd_device_put(struct fusd_device *fdev)
{
	put_device(&fdev->dev);
}

/* The device behind a node's minor, counted, or NULL if none is in service. */
struct fusd_device *fusd_device_get_by_minor(unsigned int minor)
{
	struct fusd_device *fdev;

	spin_lock(&fusd_minor_lock);
	fdev = idr_find(&fusd_minors, minor);
	if (fdev)
		get_device(&fdev->dev);	/* the registry's reference is still held */
	spin_unlock(&fusd_minor_lock);
	return fdev;
}

/*
 * May a task of effective uid @euid, with CAP_SYS_ADMIN over the device (@admin), remove or trace
 * @fdev?  The registering uid may, unless the registrant held CAP_SYS_ADMIN: a uid alone would
 * let a uid-0 process without capabilities (a sandbox) manage root's daemons.
 */
bool fusd_may_manage(const struct fusd_device *fdev, kuid_t euid, bool admin)
{
	return admin || (!fdev->admin_owned && uid_eq(fdev->owner, euid));
}

/* ---- names ---- */

static bool fusd_name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("._-+:@,", c));
}

/*
 * A node name is a relative path below /dev: components of [A-Za-z0-9._-+:@,]
 * separated by single '/', none empty, "." or "..".  At most FUSD_NAME_MAX - 1 bytes.
 */
static int fusd_name_check(const char *name)
{
	size_t len = strnlen(name, FUSD_NAME_MAX);
	const char *comp = name;
	size_t i;

	if (len == FUSD_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0)
		return -EINVAL;
	for (i = 0; i <= len; i++) {
		if (name[i] == '/' || name[i] == '\0') {
			size_t clen = name + i - comp;

			if (clen == 0 || (clen == 1 && comp[0] == '.') ||
			    (clen == 2 && comp[0] == '.' && comp[1] == '.'))
				return -EINVAL;
			comp = name + i + 1;
		} else if (!fusd_name_char_ok(name[i])) {
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * A label of FUSD_IOC_REGISTER_LABELED: NUL-terminated within its FUSD_LABEL_MAX bytes, empty or
 * of the name characters and '!' (sysfs's spelling of '/', as the classic drivers write it):
 * nothing that could break a line of sysfs or a listing.  What follows the NUL is ignored.
 */
static int fusd_label_check(const char *label)
{
	size_t len = strnlen(label, FUSD_LABEL_MAX), i;

	if (len == FUSD_LABEL_MAX)
		return -ENAMETOOLONG;
	for (i = 0; i < len; i++)
		if (label[i] != '!' && !fusd_name_char_ok(label[i]))
			return -EINVAL;
	return 0;
}

/*
 * Is there nothing at /dev/<name> as the caller sees it?  Checked without fusd_mutex (a
 * path walk may block on other filesystems); fusd's own names are checked under it.
 */
static int fusd_dev_path_free(const char *name)
{
	char path[sizeof("/dev/") + FUSD_NAME_MAX];
	struct path p;
	int err;

	snprintf(path, sizeof(path), "/dev/%s", name);
	err = kern_path(path, 0, &p);
	if (!err) {
		path_put(&p);
		return -EEXIST;
	}
	return err == -ENOENT ? 0 : err;
}

static struct fusd_device *fusd_find_name(const char *name)
{
	struct fusd_device *fdev;

	lockdep_assert_held(&fusd_mutex);
	list_for_each_entry(fdev, &fusd_devices, all_node)
		if (!strcmp(fdev->name, name))
			return fdev;
	return NULL;
}

/* ---- registration ---- */

static int fusd_register_check(struct fusd_register *reg, kuid_t *uid, kgid_t *gid)
{
	int err;

	if (reg->flags || reg->reserved[0] || reg->reserved[1] || reg->dev_id ||
	    reg->major || reg->minor)
		return -EINVAL;
	if (reg->mode & ~0777U)
		return -EINVAL;
	err = fusd_name_check(reg->name);
	if (err)
		return err;
	*uid = make_kuid(current_user_ns(), reg->uid);
	*gid = make_kgid(current_user_ns(), reg->gid);
	if (!uid_valid(*uid) || !gid_valid(*gid))
		return -EINVAL;
	return 0;
}

static struct fusd_device *fusd_device_alloc(struct fusd_channel *chan,
					     const struct fusd_register *reg,
					     kuid_t uid, kgid_t gid)
{
	struct fusd_device *fdev = kzalloc(sizeof(*fdev), GFP_KERNEL_ACCOUNT);

	if (!fdev)
		return NULL;
	fdev->gone_msg = fusd_req_new(NULL, NULL, FUSD_OP_GONE, 0, 0, 0);
	if (!fdev->gone_msg) {
		kfree(fdev);
		return NULL;
	}
	fusd_map_device_init(fdev);
	atomic_long_inc(&fusd_live_devices);
	INIT_LIST_HEAD(&fdev->chan_node);
	INIT_LIST_HEAD(&fdev->all_node);
	INIT_LIST_HEAD(&fdev->files);
	strscpy(fdev->name, reg->name, sizeof(fdev->name));
	fdev->mode = reg->mode;
	fdev->uid = uid;
	fdev->gid = gid;
	fdev->owner = current_euid();
	fdev->admin_owned = ns_capable_noaudit(&init_user_ns, CAP_SYS_ADMIN);
	fdev->user_ns = get_user_ns(current_user_ns());
	fdev->pid_ns = get_pid_ns(task_active_pid_ns(current));
	fdev->daemon_pid = task_tgid_nr(current);
	atomic_set(&fdev->open_files, 0);
	atomic64_set(&fdev->calls, 0);
	device_initialize(&fdev->dev);
	fdev->dev.class = &fusd_class;
	fdev->dev.type = &fusd_device_type;
	kref_get(&chan->kref);
	fdev->chan = chan;
	return fdev;
}

static void fusd_minor_set(int minor, struct fusd_device *fdev)
{
	spin_lock(&fusd_minor_lock);
	idr_replace(&fusd_minors, fdev, minor);
	spin_unlock(&fusd_minor_lock);
}

static void fusd_minor_free(int minor)
{
	spin_lock(&fusd_minor_lock);
	idr_remove(&fusd_minors, minor);
	spin_unlock(&fusd_minor_lock);
}

/*
 * Reserve @fdev's name, minor and id; not yet in service.  fusd_mutex held.  The node is made
 * afterwards without fusd_mutex: device_add() waits for devtmpfs, and every open, forced
 * unregister and daemon exit would wait with it.
 */
static int fusd_device_reserve(struct fusd_device *fdev)
{
	int minor;

	lockdep_assert_held(&fusd_mutex);
	idr_preload(GFP_KERNEL);
	spin_lock(&fusd_minor_lock);
	minor = idr_alloc(&fusd_minors, NULL, 0, FUSD_MAX_DEVICES, GFP_NOWAIT);
	spin_unlock(&fusd_minor_lock);
	idr_preload_end();
	if (minor < 0)
		return minor;		/* -ENOSPC: all FUSD_MAX_DEVICES minors in use */
	fdev->minor = minor;
	fdev->dev.devt = MKDEV(MAJOR(fusd_devt), minor);
	fdev->gone_msg->hdr.dev_id = fdev->id = ++fusd_last_dev_id;
	list_add_tail(&fdev->all_node, &fusd_devices);	/* the name is taken */
	return 0;
}

/* Put @fdev, whose node device_add() just made, in service.  fusd_mutex held. */
static void fusd_device_serve(struct fusd_device *fdev)
{
	struct fusd_channel *chan = fdev->chan;

	lockdep_assert_held(&fusd_mutex);
	spin_lock(&chan->lock);
	list_add_tail(&fdev->chan_node, &chan->devices);
	spin_unlock(&chan->lock);
	fdev->in_service = true;
	fusd_minor_set(fdev->minor, fdev);
}

/* Give back what fusd_device_reserve() took.  fusd_mutex held. */
static void fusd_device_unreserve(struct fusd_device *fdev)
{
	lockdep_assert_held(&fusd_mutex);
	list_del_init(&fdev->all_node);
	fusd_minor_free(fdev->minor);
}

/*
 * FUSD_IOC_REGISTER, or with @labeled FUSD_IOC_REGISTER_LABELED: its struct fusd_register comes
 * first, then the two labels (empty for FUSD_IOC_REGISTER), checked and kept before the device
 * is visible.
 */
long fusd_ioc_register(struct fusd_channel *chan, void __user *arg, bool labeled)
{
	struct fusd_register_labeled in = {};
	struct fusd_register *reg = &in.reg;
	struct fusd_device *fdev;
	bool added;
	kuid_t uid;
	kgid_t gid;
	int err;

	if (!capable(CAP_SYS_ADMIN) && !capable(CAP_MKNOD))
		return -EPERM;
	if (copy_from_user(&in, arg, labeled ? sizeof(in) : sizeof(in.reg)))
		return -EFAULT;
	err = fusd_register_check(reg, &uid, &gid);
	if (!err)
		err = fusd_label_check(in.clazz);
	if (!err)
		err = fusd_label_check(in.devname);
	if (err)
		return err;
	fdev = fusd_device_alloc(chan, reg, uid, gid);
	if (!fdev)
		return -ENOMEM;
	strscpy(fdev->clazz, in.clazz, sizeof(fdev->clazz));
	strscpy(fdev->devname, in.devname, sizeof(fdev->devname));

	err = fusd_dev_path_free(reg->name);
	mutex_lock(&fusd_mutex);
	if (!err && chan->tracer)
		err = -EINVAL;
	else if (!err && fusd_find_name(reg->name))
		err = -EEXIST;
	if (!err)
		err = fusd_device_reserve(fdev);
	mutex_unlock(&fusd_mutex);
	if (err) {
		put_device(&fdev->dev);
		return err;
	}
	err = dev_set_name(&fdev->dev, "%s", fdev->name);	/* '/' becomes '!' */
	if (!err)
		err = device_add(&fdev->dev);
	added = !err;
	if (!err) {
		/* before it serves: a device whose id the daemon never got is not made at all */
		reg->dev_id = fdev->id;
		reg->major = MAJOR(fdev->dev.devt);
		reg->minor = MINOR(fdev->dev.devt);
		if (copy_to_user(arg, reg, sizeof(*reg)))	/* labeled: its leading reg */
			err = -EFAULT;
	}
	mutex_lock(&fusd_mutex);
	if (!err && chan->tracer)	/* another thread made the channel a subscriber meanwhile */
		err = -EINVAL;
	if (!err)
		fusd_device_serve(fdev);
	mutex_unlock(&fusd_mutex);
	if (!err)
		return 0;
	if (added)
		device_del(&fdev->dev);	/* no open reached it: its minor was never set */
	mutex_lock(&fusd_mutex);
	fusd_device_unreserve(fdev);
	mutex_unlock(&fusd_mutex);
	put_device(&fdev->dev);
	return err;
}

/*
 * Take @fdev out of service: every waiting and later call fails with @err (opens with
 * ENODEV), poll waiters wake with EPOLLERR|EPOLLHUP.  With @notify, returns the FUSD_OP_GONE
 * to send the daemon.  fusd_mutex held; the caller then removes the node with
 * fusd_device_finish(), which sends it.
 */
static struct fusd_req *fusd_device_retire(struct fusd_device *fdev, int err, bool notify)
{
	struct fusd_channel *chan = fdev->chan;
	struct fusd_req *gone = NULL;

	lockdep_assert_held(&fusd_mutex);
	fdev->removed = true;
	fusd_minor_set(fdev->minor, NULL);

	spin_lock(&chan->lock);
	WRITE_ONCE(fdev->gone, err);		/* from here on nothing is queued for it */
	list_del_init(&fdev->chan_node);
	fusd_device_wake_files(fdev);
	if (notify && !chan->dead) {
		gone = fdev->gone_msg;
		fdev->gone_msg = NULL;
	}
	spin_unlock(&chan->lock);
	fusd_chan_purge(chan, fdev, err);
	fusd_map_revoke(fdev);
	return gone;
}

/*
 * The node and sysfs entry of a retired @fdev go away, without fusd_mutex (device_del() waits
 * for devtmpfs); then its minor and its name are free again, and only then is @gone (if any)
 * sent: a daemon that registers the name again on GONE finds it free.
 */
static void fusd_device_finish(struct fusd_device *fdev, struct fusd_req *gone)
{
	device_del(&fdev->dev);
	mutex_lock(&fusd_mutex);
	fusd_device_unreserve(fdev);
	mutex_unlock(&fusd_mutex);
	if (gone)			/* after the purge, which would drop it */
		fusd_queue_noreply(fdev->chan, gone);
	put_device(&fdev->dev);		/* the registry's reference */
}

long fusd_ioc_unregister(struct fusd_channel *chan, void __user *arg)
{
	struct fusd_unregister unreg;
	struct fusd_device *fdev, *found = NULL;

	if (copy_from_user(&unreg, arg, sizeof(unreg)))
		return -EFAULT;
	mutex_lock(&fusd_mutex);
	list_for_each_entry(fdev, &chan->devices, chan_node) {
		if (fdev->id == unreg.dev_id) {
			found = fdev;
			break;
		}
	}
	if (found)
		fusd_device_retire(found, -ENODEV, false);
	mutex_unlock(&fusd_mutex);
	if (!found)
		return -ENOENT;
	fusd_device_finish(found, NULL);
	return 0;
}

long fusd_ioc_force_unregister(void __user *arg)
{
	struct fusd_force_unregister fu;
	struct fusd_req *gone = NULL;
	struct fusd_device *fdev;
	int err = 0;

	if (copy_from_user(&fu, arg, sizeof(fu)))
		return -EFAULT;
	if (strnlen(fu.name, sizeof(fu.name)) == sizeof(fu.name))
		return -ENAMETOOLONG;
	mutex_lock(&fusd_mutex);
	fdev = fusd_find_name(fu.name);
	if (!fdev || !fdev->in_service || fdev->removed)
		err = -ENOENT;
	else if (!fusd_may_manage(fdev, current_euid(),
				  ns_capable_noaudit(fdev->user_ns, CAP_SYS_ADMIN)))
		err = -EPERM;
	else
		gone = fusd_device_retire(fdev, -ENODEV, true);
	mutex_unlock(&fusd_mutex);
	if (!err)
		fusd_device_finish(fdev, gone);
	return err;
}

/* The daemon is gone: remove all of @chan's devices.  Their callers get EPIPE. */
void fusd_channel_remove_devices(struct fusd_channel *chan)
{
	for (;;) {
		struct fusd_device *fdev;

		mutex_lock(&fusd_mutex);
		fdev = list_first_entry_or_null(&chan->devices, struct fusd_device, chan_node);
		if (fdev)
			fusd_device_retire(fdev, -EPIPE, false);
		mutex_unlock(&fusd_mutex);
		if (!fdev)
			break;
		fusd_device_finish(fdev, NULL);
	}
}

/* ---- module ---- */

static struct miscdevice fusd_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "fusd",
	.fops = &fusd_chan_fops,
	.mode = 0666,
};

static int __init fusd_init(void)
{
	int err;

	err = alloc_chrdev_region(&fusd_devt, 0, FUSD_MAX_DEVICES, "fusd");
	if (err)
		return err;
	cdev_init(&fusd_cdev, &fusd_node_fops);
	fusd_cdev.owner = THIS_MODULE;
	err = cdev_add(&fusd_cdev, fusd_devt, FUSD_MAX_DEVICES);
	if (err)
		goto out_region;
	err = class_register(&fusd_class);
	if (err)
		goto out_cdev;
	err = misc_register(&fusd_misc);
	if (err)
		goto out_class;
	pr_info("protocol %d.%d, major %d\n", FUSD_VERSION_MAJOR, FUSD_VERSION_MINOR,
		MAJOR(fusd_devt));
	return 0;

out_class:
	class_unregister(&fusd_class);
out_cdev:
	cdev_del(&fusd_cdev);
out_region:
	unregister_chrdev_region(fusd_devt, FUSD_MAX_DEVICES);
	return err;
}

static void __exit fusd_exit(void)
{
	misc_deregister(&fusd_misc);
	fusd_trace_exit();
	class_unregister(&fusd_class);
	cdev_del(&fusd_cdev);
	unregister_chrdev_region(fusd_devt, FUSD_MAX_DEVICES);
	idr_destroy(&fusd_minors);
}

module_init(fusd_init);
module_exit(fusd_exit);
MODULE_DESCRIPTION("Framework for User-Space Devices: character devices served by a daemon");
MODULE_LICENSE("GPL");
