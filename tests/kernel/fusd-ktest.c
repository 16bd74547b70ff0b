// SPDX-License-Identifier: GPL-2.0
/*
 * fusd-ktest - tests of fusd.ko through its raw UAPI, run as root in the test guest.
 *
 *   fusd-ktest [TEST...]     run the named tests (default: all, in order), one line each:
 *                            "PASS name (seconds)" or "FAIL name" after the failed checks
 *   fusd-ktest --list        the test names
 *   fusd-ktest whoami DEV    print what the daemon sees of this caller: "pid uid gid"
 *   fusd-ktest serve NAME KIND MODE   be a test daemon (KIND: echo, zero, hold) until killed
 *   fusd-ktest force NAME    FUSD_IOC_FORCE_UNREGISTER NAME; prints "removed" or the error
 * Exit status: 0 if every test passed.
 */
#include "ft.h"

#include <dirent.h>
#include <grp.h>
#include <pthread.h>
#include <setjmp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>

static int tfail;
static void *volatile bad_ptr;	/* NULL, hidden from the compiler */

#define CHECK(cond, ...) do {							\
	if (!(cond)) {								\
		printf("  check failed (%s:%d): %s: ", __func__, __LINE__, #cond);	\
		printf(__VA_ARGS__);						\
		printf(" [errno %d %s]\n", errno, strerror(errno));		\
		fflush(stdout);							\
		tfail = 1;							\
	}									\
} while (0)

#define CHECK_ERR(expr, err) do {						\
	errno = 0;								\
	long _r = (long)(expr);							\
	CHECK(_r == -1 && errno == (err), "%s: got %ld, want errno %d",	\
	      #expr, _r, (err));						\
} while (0)

/* ---- helpers ---- */

static void devpath(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "/dev/%s", name);
}

static int node_exists(const char *name)
{
	char p[128];
	struct stat st;

	devpath(p, sizeof(p), name);
	return stat(p, &st) == 0;
}

static int open_node(const char *name, int flags)
{
	char p[128];

	devpath(p, sizeof(p), name);
	return open(p, flags | O_CLOEXEC);
}

/* Read a sysfs attribute of a fusd device (name with '/' spelled '!'). */
static int sysfs_read(const char *name, const char *attr, char *buf, size_t size)
{
	char p[256], sysname[64];
	ssize_t n;
	int fd;

	snprintf(sysname, sizeof(sysname), "%s", name);
	for (char *c = sysname; *c; c++)
		if (*c == '/')
			*c = '!';
	snprintf(p, sizeof(p), "/sys/class/fusd/%s/%s", sysname, attr);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return 0;
}

static long sysfs_num(const char *name, const char *attr)
{
	char buf[64];

	return sysfs_read(name, attr, buf, sizeof(buf)) ? -1 : atol(buf);
}

/* /sys/module/fusd/parameters/@name as a number, or -1. */
static long param(const char *name)
{
	char p[128], buf[32] = "";
	FILE *f;

	snprintf(p, sizeof(p), "/sys/module/fusd/parameters/%s", name);
	f = fopen(p, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return atol(buf);
}

/* Writes @value to the module parameter @name: 0 or -errno. */
static int param_write(const char *name, const char *value)
{
	char p[128];
	int fd, r;

	snprintf(p, sizeof(p), "/sys/module/fusd/parameters/%s", name);
	fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write(fd, value, strlen(value)) < 0 ? -errno : 0;
	close(fd);
	return r;
}

static long live(const char *what)
{
	char name[64];

	snprintf(name, sizeof(name), "live_%s", what);
	return param(name);
}

/* Number of entries in /sys/class/fusd. */
static int class_count(void)
{
	DIR *d = opendir("/sys/class/fusd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int wait_gone(const char *name, int ms)
{
	double end = ft_now() + ms / 1000.0;

	while (node_exists(name)) {
		if (ft_now() > end)
			return 0;
		ft_msleep(5);
	}
	return 1;
}

/* device_del() removes the node before the sysfs directory: wait for both. */
static int wait_sysfs_gone(const char *name, int ms)
{
	double end = ft_now() + ms / 1000.0;

	while (sysfs_num(name, "dev_id") >= 0) {
		if (ft_now() > end)
			return 0;
		ft_msleep(5);
	}
	return 1;
}

static int wait_class_count(int n, int ms)
{
	double end = ft_now() + ms / 1000.0;

	while (class_count() != n) {
		if (ft_now() > end)
			return 0;
		ft_msleep(5);
	}
	return 1;
}

/* Wait for an event line starting with @prefix. */
static int wait_event(int ev, const char *prefix, char *line, size_t size, int ms)
{
	double end = ft_now() + ms / 1000.0;

	for (;;) {
		int left = (int)((end - ft_now()) * 1000);

		if (left <= 0 || ft_event_wait(ev, line, size, left))
			return 0;
		if (!strncmp(line, prefix, strlen(prefix)))
			return 1;
	}
}

/* Become @uid/@gid, keeping CAP_MKNOD (effective) if asked.  0 or -1. */
static int become(uid_t uid, gid_t gid, int keep_mknod)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (keep_mknod && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
		return -1;
	if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
		return -1;
	if (!keep_mknod)
		return 0;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = 1u << CAP_MKNOD;
	return syscall(SYS_capset, &h, d) ? -1 : 0;
}

/* Run @fn in a child as @uid/@gid (no capabilities); returns its exit status or -1. */
static int as_user(uid_t uid, gid_t gid, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (become(uid, gid, 0))
			_exit(98);
		_exit(fn(arg));
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/*
 * Another user sees that a device exists (name, dev_id, owner_uid, state, the labels), not its
 * traffic: the counters, the waits and the daemon's pid are root's.
 */
static int sysfs_as_nobody(void *arg)
{
	static const char *const open_to_all[] = { "name", "dev_id", "owner_uid", "state", "clazz",
						   "devname" };
	static const char *const root_only[] = { "daemon_pid", "open_files", "calls", "waiting",
						 "oldest_wait_ms" };
	const char *dev = arg;
	char buf[64];
	int bad = 0;

	for (size_t i = 0; i < sizeof(open_to_all) / sizeof(*open_to_all); i++)
		if (sysfs_read(dev, open_to_all[i], buf, sizeof(buf)) != 0) {
			printf("  nobody cannot read %s\n", open_to_all[i]);
			bad = 1;
		}
	for (size_t i = 0; i < sizeof(root_only) / sizeof(*root_only); i++)
		if (sysfs_read(dev, root_only[i], buf, sizeof(buf)) != -EACCES) {
			printf("  nobody can read %s\n", root_only[i]);
			bad = 1;
		}
	return bad;
}

static struct ft_stats get_stats(int fd)
{
	struct ft_stats st;

	memset(&st, 0, sizeof(st));
	if (ioctl(fd, FT_IOC_STATS, &st) < 0)
		printf("  FT_IOC_STATS failed: %s\n", strerror(errno));
	return st;
}

/* ---- tests ---- */

static void t_hello(void)
{
	unsigned char *buf = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_trace_subscribe ts;
	struct fusd_register reg;
	struct fusd_hello h;
	struct pollfd p;
	int fd = open(FUSD_CONTROL_DEVICE, O_RDWR);
	struct stat st;

	CHECK(stat(FUSD_CONTROL_DEVICE, &st) == 0 && (st.st_mode & 0777) == 0666,
	      "/dev/fusd mode %o", st.st_mode & 0777);
	CHECK(fd >= 0, "open /dev/fusd");
	memset(&reg, 0, sizeof(reg));
	strcpy(reg.name, "fusd-t-nohello");
	memset(&ts, 0, sizeof(ts));
	CHECK_ERR(read(fd, buf, FUSD_MIN_READ_BUFFER), EPROTO);
	CHECK_ERR(write(fd, buf, 32), EPROTO);
	CHECK_ERR(ioctl(fd, FUSD_IOC_REGISTER, &reg), EPROTO);
	CHECK_ERR(ioctl(fd, FUSD_IOC_TRACE, &ts), EPROTO);
	CHECK(!node_exists("fusd-t-nohello"), "registered without HELLO");

	memset(&h, 0, sizeof(h));
	h.major = FUSD_VERSION_MAJOR + 1;
	CHECK_ERR(ioctl(fd, FUSD_IOC_HELLO, &h), EPROTO);
	CHECK(h.major == FUSD_VERSION_MAJOR, "module major written back: %u", h.major);
	memset(&h, 0, sizeof(h));
	h.major = FUSD_VERSION_MAJOR;
	h.reserved[1] = 1;
	CHECK_ERR(ioctl(fd, FUSD_IOC_HELLO, &h), EINVAL);
	CHECK_ERR(ioctl(fd, FUSD_IOC_REGISTER, &reg), EPROTO);

	memset(&h, 0, sizeof(h));
	h.major = FUSD_VERSION_MAJOR;
	h.minor = 77;
	CHECK(ioctl(fd, FUSD_IOC_HELLO, &h) == 0, "HELLO");
	CHECK(h.major == FUSD_VERSION_MAJOR && h.minor == FUSD_VERSION_MINOR, "version %u.%u",
	      h.major, h.minor);
	CHECK(h.chunk_max == FUSD_CHUNK_MAX && h.min_read == FUSD_MIN_READ_BUFFER,
	      "chunk_max %u min_read %u", h.chunk_max, h.min_read);
	memset(&h, 0, sizeof(h));
	h.major = FUSD_VERSION_MAJOR;
	CHECK_ERR(ioctl(fd, FUSD_IOC_HELLO, &h), EALREADY);

	CHECK_ERR(read(fd, buf, FUSD_MIN_READ_BUFFER - 1), EINVAL);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(fd, buf, FUSD_MIN_READ_BUFFER), EAGAIN);
	p.fd = fd;
	p.events = POLLIN | POLLOUT;
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLOUT, "idle channel poll %#x", p.revents);
	CHECK_ERR(ioctl(fd, _IO(FUSD_IOC_MAGIC, 99)), ENOTTY);
	CHECK(ft_unregister(fd, 123456) == -ENOENT, "unregister an unknown id");
	close(fd);
	free(buf);
}

static int try_register_65534(void *arg)
{
	int fd = ft_channel();

	(void)arg;
	if (fd < 0)
		return 1;
	return ft_register(fd, "fusd-t-nocap", 0666, 0, 0, NULL) == -EPERM ? 0 : 2;
}

static void t_perm(void)
{
	CHECK(as_user(65534, 65534, try_register_65534, NULL) == 0,
	      "an unprivileged REGISTER must fail with EPERM");
	CHECK(!node_exists("fusd-t-nocap"), "node created");
}

static void t_names(void)
{
	static const char *bad[] = {
		"", ".", "..", "../x", "a/../b", "a/./b", "/abs", "a//b", "a/", "sp ace",
		"tab\t", "\x01" "ctl", "bang!", "\xc3\xa9", "q\"uote", "star*", "new\nline",
		"back\\slash", "dollar$", "semi;colon",
	};
	int before = class_count(), fd = ft_channel(), fd2 = ft_channel(), err;
	long devs_before = live("devices");
	char name[80], buf[128];
	struct stat st;
	__u64 id = 0, id2 = 0;

	CHECK(fd >= 0 && fd2 >= 0, "channels");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = ft_register(fd, bad[i], 0666, 0, 0, NULL);
		CHECK(err == -EINVAL, "bad name \"%s\": %d", bad[i], err);
	}
	memset(name, 'a', 64);
	name[64] = 0;
	CHECK(ft_register(fd, name, 0666, 0, 0, NULL) == -ENAMETOOLONG, "64-byte name");
	CHECK(class_count() == before && live("devices") == devs_before,
	      "something was created: %d -> %d", before, class_count());

	CHECK(ft_register(fd, "null", 0666, 0, 0, NULL) == -EEXIST, "/dev/null");
	CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
	      minor(st.st_rdev) == 3, "/dev/null changed");
	CHECK(ft_register(fd, "fusd", 0666, 0, 0, NULL) == -EEXIST, "/dev/fusd");
	CHECK(ft_register(fd, "fusd-t-dup", 01666, 0, 0, NULL) == -EINVAL, "mode 01666");
	CHECK(ft_register(fd, "fusd-t-dup", 0640, 123, 456, &id) == 0, "register");
	CHECK(stat("/dev/fusd-t-dup", &st) == 0 && S_ISCHR(st.st_mode) &&
	      (st.st_mode & 07777) == 0640 && st.st_uid == 123 && st.st_gid == 456,
	      "node mode %o uid %u gid %u", st.st_mode, st.st_uid, st.st_gid);
	CHECK(ft_register(fd, "fusd-t-dup", 0666, 0, 0, NULL) == -EEXIST, "same channel");
	CHECK(ft_register(fd2, "fusd-t-dup", 0666, 0, 0, NULL) == -EEXIST, "other channel");
	err = ft_register(fd, "fusd-t-dup/x", 0666, 0, 0, NULL);
	CHECK(err == -ENOTDIR || err == -EEXIST, "below a node: %d", err);
	CHECK(class_count() == before + 1, "class count %d", class_count());

	CHECK(ft_register(fd, "fusd-t-dir/sub/node", 0600, 0, 0, &id2) == 0, "subdirectory");
	CHECK(stat("/dev/fusd-t-dir/sub/node", &st) == 0 && S_ISCHR(st.st_mode), "subdir node");
	CHECK(sysfs_read("fusd-t-dir/sub/node", "name", buf, sizeof(buf)) == 0 &&
	      !strcmp(buf, "fusd-t-dir/sub/node"), "sysfs name '%s'", buf);
	CHECK(ft_unregister(fd, id2) == 0, "unregister");
	CHECK(stat("/dev/fusd-t-dir/sub/node", &st) < 0 && stat("/dev/fusd-t-dir", &st) < 0,
	      "subdir node or directory left");

	memset(name, 'b', 63);
	name[63] = 0;
	memcpy(name, "fusd-t-", 7);
	CHECK(ft_register(fd, name, 0666, 0, 0, &id2) == 0 && node_exists(name), "63-byte name");
	close(fd);
	close(fd2);
	CHECK(wait_gone("fusd-t-dup", 1000) && wait_gone(name, 1000), "nodes left after close");
	CHECK(wait_class_count(before, 1000), "class count %d", class_count());
}

/* FUSD_IOC_REGISTER_LABELED with @clazz and @devname (copied unterminated if 48 bytes long). */
static int register_labeled(int fd, const char *name, const char *clazz, const char *devname,
			    __u64 *dev_id)
{
	struct fusd_register_labeled in;

	memset(&in, 0, sizeof(in));
	strcpy(in.reg.name, name);
	in.reg.mode = 0600;
	memcpy(in.clazz, clazz, strnlen(clazz, sizeof(in.clazz)));
	memcpy(in.devname, devname, strnlen(devname, sizeof(in.devname)));
	if (ioctl(fd, FUSD_IOC_REGISTER_LABELED, &in) < 0)
		return -errno;
	if (dev_id)
		*dev_id = in.reg.dev_id;
	return 0;
}

/*
 * The classic API's class and device name: kept as two sysfs labels, each checked (length, NUL,
 * characters) before anything is made; FUSD_IOC_REGISTER gives empty ones.
 */
static void t_labels(void)
{
	static const char *bad[] = {
		"sp ace", "new\nline", "sl/ash", "tab\t", "\x01", "\xc3\xa9", "q\"uote", "star*",
		"dollar$", "back\\slash", "per%cent",
	};
	int before = class_count(), fd = ft_channel(), err;
	long devs_before = live("devices");
	char buf[128], full[FUSD_LABEL_MAX];
	struct fusd_register_labeled in;
	__u64 id = 0;

	CHECK(fd >= 0, "channel");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = register_labeled(fd, "fusd-t-label", bad[i], "ok", NULL);
		CHECK(err == -EINVAL, "bad class \"%s\": %d", bad[i], err);
		err = register_labeled(fd, "fusd-t-label", "misc", bad[i], NULL);
		CHECK(err == -EINVAL, "bad devname \"%s\": %d", bad[i], err);
	}
	memset(full, 'c', sizeof(full));	/* no NUL in its 48 bytes */
	CHECK(register_labeled(fd, "fusd-t-label", full, "ok", NULL) == -ENAMETOOLONG, "48-byte class");
	CHECK(register_labeled(fd, "fusd-t-label", "misc", full, NULL) == -ENAMETOOLONG, "48-byte devname");
	CHECK(register_labeled(fd, "bad name", "misc", "ok", NULL) == -EINVAL, "bad node name");
	memset(&in, 0, sizeof(in));
	strcpy(in.reg.name, "fusd-t-label");
	in.reg.flags = 1;
	CHECK_ERR(ioctl(fd, FUSD_IOC_REGISTER_LABELED, &in), EINVAL);
	CHECK_ERR(ioctl(fd, FUSD_IOC_REGISTER_LABELED, (void *)16), EFAULT);
	CHECK(!node_exists("fusd-t-label") && class_count() == before && live("devices") == devs_before,
	      "something was made: %d -> %d", before, class_count());

	full[FUSD_LABEL_MAX - 1] = 0;	/* 47 characters: the longest */
	CHECK(register_labeled(fd, "fusd-t-label/a", "pager", "pager!input", &id) == 0, "labeled");
	CHECK(node_exists("fusd-t-label/a"), "labeled node");
	CHECK(sysfs_read("fusd-t-label/a", "clazz", buf, sizeof(buf)) == 0 && !strcmp(buf, "pager"),
	      "clazz '%s'", buf);
	CHECK(sysfs_read("fusd-t-label/a", "devname", buf, sizeof(buf)) == 0 &&
	      !strcmp(buf, "pager!input"), "devname '%s'", buf);
	CHECK(register_labeled(fd, "fusd-t-label/b", full, "", NULL) == 0, "47-byte class");
	CHECK(sysfs_read("fusd-t-label/b", "clazz", buf, sizeof(buf)) == 0 && !strcmp(buf, full),
	      "long clazz '%s'", buf);
	CHECK(sysfs_read("fusd-t-label/b", "devname", buf, sizeof(buf)) == 0 && !strcmp(buf, ""),
	      "empty devname '%s'", buf);
	CHECK(ft_register(fd, "fusd-t-label/c", 0600, 0, 0, NULL) == 0, "unlabeled");
	CHECK(sysfs_read("fusd-t-label/c", "clazz", buf, sizeof(buf)) == 0 && !strcmp(buf, ""),
	      "unlabeled clazz '%s'", buf);
	close(fd);
	CHECK(wait_gone("fusd-t-label/a", 1000) && wait_gone("fusd-t-label/b", 1000) &&
	      wait_gone("fusd-t-label/c", 1000), "nodes left after close");
	CHECK(wait_class_count(before, 1000), "class count %d", class_count());
}

static void t_roundtrip(void)
{
	const char *dev = "fusd-t-echo";
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL);
	int fd = open_node(dev, O_RDWR);
	char buf[256], p[64];
	struct ft_echo e;
	struct ft_big *big = malloc(sizeof(*big));
	struct ft_stats st;
	struct stat sb;
	__u32 v = 0xdeadbeef;

	CHECK(fd >= 0, "open");
	CHECK(fstat(fd, &sb) == 0 && S_ISCHR(sb.st_mode), "not a character device");
	CHECK(write(fd, "hello", 5) == 5, "write");
	memset(buf, 0, sizeof(buf));
	CHECK(read(fd, buf, sizeof(buf)) == 5 && !memcmp(buf, "hello", 5), "read '%s'", buf);
	CHECK(read(fd, buf, sizeof(buf)) == 0, "EOF");
	CHECK(write(fd, "", 0) == 0 && read(fd, buf, 0) == 0, "zero-length calls");

	for (int i = 0; i < 64; i++)
		e.b[i] = i * 3;
	CHECK(ioctl(fd, FT_IOC_ECHO, &e) == 0, "_IOWR");
	for (int i = 0; i < 64; i++)
		CHECK(e.b[i] == (unsigned char)(i * 3 + 1), "_IOWR byte %d", i);
	CHECK(ioctl(fd, FT_IOC_SET, &v) == 0, "_IOW");
	v = 0;
	CHECK(ioctl(fd, FT_IOC_GET, &v) == 0 && v == 0xdeadbeef, "_IOR %#x", v);
	CHECK(ioctl(fd, FT_IOC_PLAIN, 41) == 42, "_IO passes the value");
	for (int i = 0; i < 16000; i++)
		big->b[i] = i % 251;
	CHECK(ioctl(fd, FT_IOC_BIG, big) == 0, "16000-byte _IOWR");
	CHECK(big->b[0] == 15999 % 251 && big->b[15999] == 0, "16000-byte _IOWR data");
	CHECK_ERR(ioctl(fd, FT_IOC_FAIL, EIO), EIO);
	CHECK_ERR(ioctl(fd, FT_IOC_FAIL, 4095), 4095);
	CHECK_ERR(ioctl(fd, FT_IOC_FAIL, 512), EIO);	/* ERESTARTSYS must not leak */
	CHECK_ERR(ioctl(fd, _IO('E', 99)), ENOTTY);
	CHECK_ERR(ioctl(fd, FT_IOC_GET, (void *)16), EFAULT);
	CHECK_ERR(ioctl(fd, FT_IOC_SET, (void *)16), EFAULT);
	CHECK_ERR(lseek(fd, 0, SEEK_SET), ESPIPE);
	CHECK_ERR(pread(fd, buf, 1, 0), ESPIPE);
	CHECK_ERR(pwrite(fd, buf, 1, 0), ESPIPE);
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED && errno == ENODEV,
	      "mmap");

	CHECK(sysfs_num(dev, "open_files") == 1, "open_files %ld", sysfs_num(dev, "open_files"));
	CHECK(sysfs_num(dev, "daemon_pid") == d, "daemon_pid %ld", sysfs_num(dev, "daemon_pid"));
	CHECK(sysfs_num(dev, "owner_uid") == 0, "owner_uid");
	CHECK(sysfs_num(dev, "calls") >= 10, "calls %ld", sysfs_num(dev, "calls"));
	CHECK(sysfs_read(dev, "state", p, sizeof(p)) == 0 && !strcmp(p, "live"), "state %s", p);
	CHECK(as_user(65534, 65534, sysfs_as_nobody, (void *)dev) == 0, "sysfs as nobody");
	CHECK(sysfs_read(dev, "uevent", buf, sizeof(buf)) == 0 && strstr(buf, "DEVNAME=fusd-t-echo") &&
	      strstr(buf, "DEVMODE=0666"), "uevent: %s", buf);
	close(fd);
	fd = open_node(dev, O_RDWR);
	st = get_stats(fd);
	CHECK(st.opens == 2 && st.releases == 1, "opens %llu releases %llu",
	      (unsigned long long)st.opens, (unsigned long long)st.releases);
	close(fd);
	ft_reap(d);
	CHECK(wait_gone(dev, 1000), "node left after the daemon died");
	free(big);
}

static void t_creds_child_check(const char *dev, unsigned int uid, unsigned int gid)
{
	struct ft_whoami w;
	int fd = open_node(dev, O_RDWR);

	memset(&w, 0, sizeof(w));
	CHECK(fd >= 0 && ioctl(fd, FT_IOC_WHOAMI, &w) == 0, "WHOAMI");
	CHECK(w.pid == (unsigned int)getpid() && w.uid == uid && w.gid == gid && w.fsuid == uid &&
	      w.fsgid == gid, "pid %u uid %u gid %u fsuid %u fsgid %u", w.pid, w.uid, w.gid,
	      w.fsuid, w.fsgid);
	close(fd);
}

static int creds_as_nobody(void *arg)
{
	t_creds_child_check(arg, 65534, 65534);
	return tfail;
}

static void t_creds(void)
{
	const char *dev = "fusd-t-creds";
	pid_t d = ft_spawn(dev, FT_ZERO, 0666, NULL);
	struct ft_whoami w;
	int fd;

	t_creds_child_check(dev, 0, 0);
	fd = open_node(dev, O_RDONLY);
	CHECK(ioctl(fd, FT_IOC_WHOAMI, &w) == 0 && !(w.flags & O_NONBLOCK) &&
	      (w.flags & O_ACCMODE) == O_RDONLY, "flags %#x", w.flags);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK(ioctl(fd, FT_IOC_WHOAMI, &w) == 0 && (w.flags & O_NONBLOCK), "O_NONBLOCK via fcntl");
	close(fd);
	CHECK(as_user(65534, 65534, creds_as_nobody, (void *)dev) == 0, "caller 65534");
	ft_reap(d);
}

struct poll_arg {
	int fd;
	short events;
	int timeout;
	short revents;
	double secs;
};

static void *poll_thread(void *p)
{
	struct poll_arg *a = p;
	struct pollfd pf = { a->fd, a->events, 0 };
	double t = ft_now();

	poll(&pf, 1, a->timeout);
	a->revents = pf.revents;
	a->secs = ft_now() - t;
	return NULL;
}

static short poll_now(int fd, short events)
{
	struct pollfd pf = { fd, events, 0 };

	return poll(&pf, 1, 0) < 0 ? -1 : pf.revents;
}

static void t_poll(void)
{
	const char *dev = "fusd-t-poll", *zdev = "fusd-t-pollz";
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL), z = ft_spawn(zdev, FT_ZERO, 0666, NULL);
	int fd = open_node(dev, O_RDWR), zfd = open_node(zdev, O_RDWR), ep;
	struct poll_arg a = { fd, POLLIN, 5000, 0, 0 };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET }, out;
	pthread_t th;
	char c;

	CHECK(poll_now(fd, POLLIN | POLLOUT) == POLLOUT, "initial mask from the open reply: %#x",
	      poll_now(fd, POLLIN | POLLOUT));
	CHECK(poll_now(zfd, POLLIN | POLLOUT) == (POLLIN | POLLOUT), "default mask %#x",
	      poll_now(zfd, POLLIN | POLLOUT));
	CHECK(write(fd, "x", 1) == 1, "write");
	CHECK(poll_now(fd, POLLIN | POLLOUT) == (POLLIN | POLLOUT), "after write %#x",
	      poll_now(fd, POLLIN | POLLOUT));
	CHECK(read(fd, &c, 1) == 1, "read");
	CHECK(poll_now(fd, POLLIN | POLLOUT) == POLLOUT, "after read %#x",
	      poll_now(fd, POLLIN | POLLOUT));

	/* a poll() that sleeps wakes up on READY */
	pthread_create(&th, NULL, poll_thread, &a);
	ft_msleep(200);
	CHECK(write(zfd, "y", 1) == 1, "unrelated write");
	ioctl(fd, FT_IOC_READY, FUSD_POLLIN);
	pthread_join(th, NULL);
	CHECK(a.revents == POLLIN && a.secs < 1.0 && a.secs > 0.15, "woken poll %#x after %.3fs",
	      a.revents, a.secs);
	ioctl(fd, FT_IOC_READY, FUSD_POLLOUT);

	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.u32 = 7;
	CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl");
	CHECK(epoll_wait(ep, &out, 1, 0) == 0, "epoll: nothing yet");
	CHECK(write(fd, "z", 1) == 1, "write");
	CHECK(epoll_wait(ep, &out, 1, 1000) == 1 && out.data.u32 == 7 && (out.events & EPOLLIN),
	      "epoll after READY");
	ioctl(fd, FT_IOC_READY, FUSD_POLLPRI | FUSD_POLLERR);
	CHECK(poll_now(fd, POLLPRI) == (POLLPRI | POLLERR), "PRI|ERR %#x", poll_now(fd, POLLPRI));

	/* the daemon dies: a sleeping poll wakes with POLLERR|POLLHUP */
	ioctl(fd, FT_IOC_READY, 0);
	a.revents = 0;
	pthread_create(&th, NULL, poll_thread, &a);
	ft_msleep(200);
	ft_reap(d);
	pthread_join(th, NULL);
	CHECK((a.revents & (POLLERR | POLLHUP)) == (POLLERR | POLLHUP) && a.secs < 1.0,
	      "poll after the daemon died: %#x after %.3fs", a.revents, a.secs);
	close(ep);
	close(fd);
	close(zfd);
	ft_reap(z);
}

static void t_big(void)
{
	const char *dev = "fusd-t-big";
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL);
	size_t mib = 1 << 20, odd = 300000;
	unsigned char *w = malloc(mib), *r = malloc(4 * mib);
	int fd = open_node(dev, O_RDWR), zfd;
	struct ft_stats st;
	ssize_t n;

	for (size_t i = 0; i < mib; i++)
		w[i] = (i * 7 + i / 4096) & 0xff;
	n = write(fd, w, mib);
	CHECK(n == (ssize_t)mib, "1 MiB write: %zd", n);
	n = read(fd, r, mib);
	CHECK(n == (ssize_t)mib && !memcmp(w, r, mib), "1 MiB read back: %zd", n);
	st = get_stats(fd);
	CHECK(st.writes == 8 && st.max_write == FUSD_CHUNK_MAX && st.max_read == FUSD_CHUNK_MAX,
	      "writes %llu max_write %llu max_read %llu", (unsigned long long)st.writes,
	      (unsigned long long)st.max_write, (unsigned long long)st.max_read);
	n = write(fd, w + 17, odd);
	CHECK(n == (ssize_t)odd, "unaligned write %zd", n);
	memset(r, 0, mib);
	n = read(fd, r, 4 * mib);
	CHECK(n == (ssize_t)odd && !memcmp(w + 17, r, odd), "read stops at a short chunk: %zd", n);
	st = get_stats(fd);
	CHECK(st.writes == 11, "writes %llu", (unsigned long long)st.writes);
	close(fd);
	ft_reap(d);

	d = ft_spawn("fusd-t-bigz", FT_ZERO, 0666, NULL);
	zfd = open_node("fusd-t-bigz", O_RDONLY);
	memset(r, 1, 4 * mib);
	n = read(zfd, r, 4 * mib);
	CHECK(n == (ssize_t)(4 * mib) && r[0] == 0 && r[4 * mib - 1] == 0, "4 MiB of zeros: %zd", n);
	close(zfd);
	ft_reap(d);
	free(w);
	free(r);
}

/* Child: open @dev, read one byte, report "errno seconds" on @out. */
static pid_t blocked_reader(const char *dev, int out)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open_node(dev, O_RDONLY);
		char c, line[64];
		ssize_t n;
		double t;
		int len;

		if (fd < 0)
			_exit(2);
		t = ft_now();
		n = read(fd, &c, 1);
		len = snprintf(line, sizeof(line), "%d %.3f\n", n < 0 ? errno : 0, ft_now() - t);
		_exit(write(out, line, len) == len ? 0 : 3);
	}
	return pid;
}

/* Collect @n reports of blocked_reader: all must be @err within @secs of @since. */
static void check_readers(int in, int n, int err, double since, double secs)
{
	for (int i = 0; i < n; i++) {
		char line[64];
		int e = -1;

		if (ft_event_wait(in, line, sizeof(line), 3000)) {
			CHECK(0, "reader %d did not return", i);
			continue;
		}
		sscanf(line, "%d", &e);
		CHECK(e == err && ft_now() - since < secs, "reader %d: errno %d (want %d) after %.3fs",
		      i, e, err, ft_now() - since);
	}
}

static void t_kill(void)
{
	const char *dev = "fusd-t-kill";
	int ev, rp[2], fd;
	pid_t d = ft_spawn(dev, FT_HOLD, 0666, &ev), r[3];
	char line[128];
	double t;

	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	fd = open_node(dev, O_RDWR);
	for (int i = 0; i < 3; i++)
		r[i] = blocked_reader(dev, rp[1]);
	for (int i = 0; i < 3; i++)
		CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read %d not held", i);
	t = ft_now();
	kill(d, SIGKILL);
	check_readers(rp[0], 3, EPIPE, t, 1.0);
	CHECK(wait_gone(dev, 1000), "node still there 1 s after the daemon died");
	CHECK(open_node(dev, O_RDONLY) < 0 && errno == ENOENT, "open after death");
	CHECK(wait_sysfs_gone(dev, 1000), "sysfs entry left");
	CHECK_ERR(read(fd, line, 1), EPIPE);
	CHECK_ERR(write(fd, line, 1), EPIPE);
	CHECK_ERR(ioctl(fd, FT_IOC_PLAIN, 1), EPIPE);
	CHECK(poll_now(fd, POLLIN) == (POLLERR | POLLHUP), "poll %#x", poll_now(fd, POLLIN));
	close(fd);
	for (int i = 0; i < 3; i++)
		waitpid(r[i], NULL, 0);
	waitpid(d, NULL, 0);
	close(rp[0]);
	close(rp[1]);
	close(ev);
}

static int force_as_user(void *name)
{
	int fd = ft_channel(), err;

	if (fd < 0)
		return 100;
	err = -ft_force_unregister(fd, name);
	close(fd);
	return err;
}

/* Daemon for t_force: uid 1000 with CAP_MKNOD only; reports on @ev. */
static pid_t spawn_uid1000_daemon(const char *dev, int *ev_out)
{
	int ev[2], fd;
	pid_t pid;

	if (pipe2(ev, O_CLOEXEC))
		ft_die("pipe");
	pid = fork();
	if (pid == 0) {
		struct ft_daemon d;

		close(ev[0]);
		if (become(1000, 1000, 1))
			_exit(97);
		fd = ft_channel();
		ft_daemon_init(&d, fd, ev[1]);
		if (fd < 0 || ft_daemon_add(&d, dev, FT_HOLD, 0666, 1000, 1000)) {
			ft_event(&d, "failed %d", errno);
			_exit(1);
		}
		ft_event(&d, "registered");
		ft_daemon_loop(&d);
		_exit(0);
	}
	close(ev[1]);
	*ev_out = ev[0];
	return pid;
}

static void t_force(void)
{
	const char *dev = "fusd-t-force", *dev2 = "fusd-t-force2";
	char line[128];
	int ev, ev2, rp[2];
	pid_t d = spawn_uid1000_daemon(dev, &ev), d2, r;
	struct stat st;
	double t;

	CHECK(wait_event(ev, "registered", line, sizeof(line), 3000), "uid 1000 daemon: %s", line);
	CHECK(stat("/dev/fusd-t-force", &st) == 0 && st.st_uid == 1000, "node owner");
	CHECK(sysfs_num(dev, "owner_uid") == 1000, "owner_uid %ld", sysfs_num(dev, "owner_uid"));
	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	r = blocked_reader(dev, rp[1]);
	CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read not held");
	kill(d, SIGSTOP);
	CHECK(as_user(2000, 2000, force_as_user, (void *)dev) == EPERM, "uid 2000 must get EPERM");
	CHECK(node_exists(dev), "node removed by the wrong user");
	t = ft_now();
	CHECK(as_user(1000, 1000, force_as_user, (void *)dev) == 0, "the registering uid may");
	check_readers(rp[0], 1, ENODEV, t, 1.0);
	CHECK(wait_gone(dev, 1000), "node still there");
	kill(d, SIGCONT);
	CHECK(wait_event(ev, "gone", line, sizeof(line), 3000), "daemon told GONE");
	CHECK(as_user(1000, 1000, force_as_user, (void *)dev) == ENOENT, "twice");
	waitpid(r, NULL, 0);

	d2 = ft_spawn(dev2, FT_HOLD, 0666, &ev2);
	CHECK(as_user(1000, 1000, force_as_user, (void *)dev2) == EPERM, "uid 1000 on root's device");
	CHECK(force_as_user((void *)dev2) == 0, "CAP_SYS_ADMIN may");
	CHECK(wait_gone(dev2, 1000), "node still there");
	ft_reap(d2);
	ft_reap(d);
	close(ev);
	close(ev2);
	close(rp[0]);
	close(rp[1]);
}

/* A reply whose payload is copied in from memory that never comes: a userfaultfd page. */
struct stuck_reply {
	int fd;
	const void *msg;
	size_t size;
	ssize_t n;
	int err;
};

static void *stuck_reply_main(void *p)
{
	struct stuck_reply *s = p;

	s->n = write(s->fd, s->msg, s->size);
	s->err = s->n < 0 ? errno : 0;
	return NULL;
}

/*
 * The daemon's write of a READ reply faults on a userfaultfd page nobody resolves: the caller
 * still counts as waiting, and a forced unregister releases it at once.
 */
static void t_force_uffd(void)
{
	const char *dev = "fusd-t-uffd";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER), *map;
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register ureg;
	struct stuck_reply s;
	struct fusd_reply rep;
	int fd = ft_channel(), ctl = ft_channel(), rp[2], uffd, ps = getpagesize();
	struct pollfd pf;
	pthread_t th;
	pid_t r;
	double t;

	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	r = blocked_reader(dev, rp[1]);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN");
	CHECK(ft_reply_open(fd, h->id, 0, 0, 0) == 0, "OPEN reply");
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_READ, "READ");

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	CHECK(uffd >= 0 && ioctl(uffd, UFFDIO_API, &api) == 0, "userfaultfd");
	map = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(&ureg, 0, sizeof(ureg));
	ureg.range.start = (unsigned long)(map + ps);
	ureg.range.len = ps;
	ureg.mode = UFFDIO_REGISTER_MODE_MISSING;
	CHECK(ioctl(uffd, UFFDIO_REGISTER, &ureg) == 0, "UFFDIO_REGISTER");
	ft_reply_head(&rep, h->id, 1, 1);	/* the header readable, its one byte not */
	memcpy(map + ps - sizeof(rep), &rep, sizeof(rep));
	s = (struct stuck_reply){ fd, map + ps - sizeof(rep), sizeof(rep) + 1, 0, 0 };
	CHECK(pthread_create(&th, NULL, stuck_reply_main, &s) == 0, "replier thread");
	pf = (struct pollfd){ uffd, POLLIN, 0 };
	CHECK(poll(&pf, 1, 3000) == 1, "the reply's copy never faulted");
	CHECK(sysfs_num(dev, "waiting") == 1, "waiting %ld while the reply is copied in",
	      sysfs_num(dev, "waiting"));

	t = ft_now();
	CHECK(ft_force_unregister(ctl, dev) == 0, "force unregister");
	check_readers(rp[0], 1, ENODEV, t, 1.0);
	CHECK(wait_gone(dev, 1000), "node still there");

	close(uffd);			/* the fault is served as plain memory now */
	pthread_join(th, NULL);
	CHECK(s.n == (ssize_t)s.size || s.err == ENOENT, "the late reply: %zd errno %d", s.n, s.err);
	waitpid(r, NULL, 0);
	munmap(map, 2 * ps);
	close(fd);
	close(ctl);
	close(rp[0]);
	close(rp[1]);
	free(msg);
}

/* A daemon told GONE may register the name again at once: the old node is gone by then. */
static void t_force_reregister(void)
{
	const char *dev = "fusd-t-rereg";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	int fd = ft_channel(), ctl = ft_channel();
	struct pollfd p = { fd, POLLIN, 0 };

	for (int i = 0; i < 20; i++) {
		CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register %d", i);
		CHECK(ft_force_unregister(ctl, dev) == 0, "force %d", i);
		CHECK(poll(&p, 1, 3000) == 1 && read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 &&
		      h->opcode == FUSD_OP_GONE, "GONE %d", i);
	}
	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register after GONE");
	close(fd);
	close(ctl);
	free(msg);
}

static void on_signal(int sig)
{
	(void)sig;
}

struct reader_arg {
	int fd;
	ssize_t n;
	int err;
	char buf[64];
	double secs;
};

static void *read_thread(void *p)
{
	struct reader_arg *a = p;
	double t = ft_now();

	memset(a->buf, 0, sizeof(a->buf));
	a->n = read(a->fd, a->buf, sizeof(a->buf) - 1);
	a->err = a->n < 0 ? errno : 0;
	a->secs = ft_now() - t;
	return NULL;
}

static void interrupt_once(int fd, int ev, int restart)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = restart ? SA_RESTART : 0 };
	struct reader_arg a = { .fd = fd };
	char line[128];
	pthread_t th;
	double t;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&th, NULL, read_thread, &a);
	CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read not held");
	t = ft_now();
	pthread_kill(th, SIGUSR1);
	pthread_join(th, NULL);
	if (restart) {
		CHECK(a.n == (ssize_t)strlen(FT_AFTER_INTERRUPT) && !strcmp(a.buf, FT_AFTER_INTERRUPT),
		      "SA_RESTART: read %zd '%s' errno %d", a.n, a.buf, a.err);
	} else {
		CHECK(a.n == -1 && a.err == EINTR && ft_now() - t < 0.5,
		      "read %zd errno %d after %.3fs", a.n, a.err, ft_now() - t);
	}
	CHECK(wait_event(ev, "interrupt", line, sizeof(line), 2000) && strstr(line, "late -2"),
	      "daemon: '%s'", line);
}

static void t_interrupt(void)
{
	const char *dev = "fusd-t-intr";
	int ev, fd, st;
	pid_t d = ft_spawn(dev, FT_HOLD, 0666, &ev), c;
	long reqs;
	char buf[64] = "", line[128];

	fd = open_node(dev, O_RDWR);
	interrupt_once(fd, ev, 0);
	CHECK(read(fd, buf, sizeof(buf)) == (ssize_t)strlen(FT_AFTER_INTERRUPT),
	      "the daemon keeps serving");
	interrupt_once(fd, ev, 1);

	/* a stopped and continued caller: the call is restarted, not failed */
	c = fork();
	if (c == 0) {
		char b[64] = "";

		_exit(read(fd, b, sizeof(b)) == (ssize_t)strlen(FT_AFTER_INTERRUPT) ? 0 : 1);
	}
	CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read not held");
	kill(c, SIGSTOP);
	ft_msleep(100);
	kill(c, SIGCONT);
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "SIGSTOP/SIGCONT: the read must restart and succeed (status %#x)", st);

	/* a SIGKILLed caller leaves nothing behind */
	reqs = live("requests");
	c = fork();
	if (c == 0) {
		char b[8];

		_exit(read(fd, b, sizeof(b)) < 0);
	}
	CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read not held");
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	CHECK(wait_event(ev, "interrupt", line, sizeof(line), 2000), "daemon: '%s'", line);
	CHECK(live("requests") == reqs, "requests %ld -> %ld", reqs, live("requests"));
	close(fd);
	ft_reap(d);
	close(ev);
}

#define NCALLERS 100
#define CALLER_BYTES 9000

static int caller_roundtrips(const char *dev, int id)
{
	unsigned char w[CALLER_BYTES], r[CALLER_BYTES];

	for (int round = 0; round < 3; round++) {
		int fd = open_node(dev, O_RDWR);
		size_t got = 0;

		if (fd < 0)
			return 10;
		for (int i = 0; i < CALLER_BYTES; i++)
			w[i] = (unsigned char)(id * 31 + round * 7 + i);
		if (write(fd, w, 4000) != 4000 || write(fd, w + 4000, CALLER_BYTES - 4000) !=
		    CALLER_BYTES - 4000)
			return 11;
		while (got < CALLER_BYTES) {
			ssize_t n = read(fd, r + got, CALLER_BYTES - got);

			if (n <= 0)
				return 12;
			got += n;
		}
		if (memcmp(w, r, CALLER_BYTES))
			return 13;
		close(fd);
	}
	return 0;
}

static void t_concurrent(void)
{
	const char *dev = "fusd-t-conc";
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL), kids[NCALLERS];
	int bad = 0, st;

	for (int i = 0; i < NCALLERS; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			_exit(caller_roundtrips(dev, i));
	}
	for (int i = 0; i < NCALLERS; i++) {
		if (waitpid(kids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			if (bad++ < 5)
				printf("  caller %d: status %#x\n", i, st);
		}
	}
	CHECK(bad == 0, "%d of %d callers lost or crossed data", bad, NCALLERS);
	ft_reap(d);
}

struct thread_caller {
	const char *dev;
	int id;
	int result;
};

static void *thread_caller_main(void *p)
{
	struct thread_caller *c = p;

	c->result = caller_roundtrips(c->dev, c->id);
	return NULL;
}

/* The same with 100 threads of one process, each with its own open file. */
static void t_threads(void)
{
	const char *dev = "fusd-t-threads";
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL);
	struct thread_caller c[NCALLERS];
	pthread_t th[NCALLERS];
	int bad = 0;

	for (int i = 0; i < NCALLERS; i++) {
		c[i] = (struct thread_caller){ dev, i, -1 };
		if (pthread_create(&th[i], NULL, thread_caller_main, &c[i]))
			c[i].result = 99;
	}
	for (int i = 0; i < NCALLERS; i++) {
		pthread_join(th[i], NULL);
		if (c[i].result && bad++ < 5)
			printf("  thread %d: %d\n", i, c[i].result);
	}
	CHECK(bad == 0, "%d of %d threads lost or crossed data", bad, NCALLERS);
	ft_reap(d);
}

/* Daemon in this process, caller in a child: every kind of bad reply is refused cleanly. */
static void t_replies(void)
{
	const char *dev = "fusd-t-rep";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER), big[64];
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	struct fusd_reply rep;
	struct fusd_ready rdy;
	int fd = ft_channel(), st, ps = getpagesize();
	__u64 dev_id = 0, open_id, read_id, file_id, release_id;
	unsigned char *map;
	pid_t c;

	CHECK(ft_register(fd, dev, 0666, 0, 0, &dev_id) == 0, "register");
	c = fork();
	if (c == 0) {
		char b[10] = "";
		int f = open_node(dev, O_RDWR);

		if (f < 0 || read(f, b, 10) != 5 || memcmp(b, "hello", 5))
			_exit(1);
		if (write(f, "abc", 3) != 3)
			_exit(2);
		close(f);
		_exit(0);
	}
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_OPEN,
	      "OPEN");
	open_id = h->id;
	file_id = h->file_id;
	CHECK(h->dev_id == dev_id && h->pid == (__u32)c && h->uid == 0 && h->len == 0,
	      "open header");
	CHECK(ft_reply(fd, open_id, 0, "x", 1) == -EINVAL, "OPEN takes no payload");
	CHECK(ft_reply_open(fd, open_id, 0, 1, 0x8000) == -EINVAL, "bad initial mask");
	CHECK(ft_reply_open(fd, open_id, 0, 1, FUSD_POLLIN) == 0, "OPEN reply");
	memset(&rep, 0, sizeof(rep));
	rep.size = sizeof(rep);
	rep.type = FUSD_MSG_REPLY;
	/* a read buffer the module cannot write: EFAULT, and the request is still there */
	CHECK_ERR(read(fd, bad_ptr, FUSD_MIN_READ_BUFFER), EFAULT);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_READ &&
	      h->len == 10 && h->reply_max == 10 && h->id > open_id, "READ after EFAULT");
	read_id = h->id;

	rep.id = read_id;
	CHECK_ERR(write(fd, &rep, 7), EINVAL);			/* truncated header */
	rep.size = sizeof(rep) + 1;
	CHECK_ERR(write(fd, &rep, sizeof(rep)), EINVAL);	/* size != count */
	rep.size = sizeof(rep);
	rep.type = 99;
	CHECK_ERR(write(fd, &rep, sizeof(rep)), EINVAL);	/* unknown type */
	rep.type = FUSD_MSG_REPLY;
	CHECK(ft_reply(fd, read_id + 1000, 0, NULL, 0) == -ENOENT, "unknown id");
	CHECK(ft_reply(fd, read_id, -4096, NULL, 0) == -EINVAL, "result -4096");
	CHECK(ft_reply(fd, read_id, -2147483647 - 1, NULL, 0) == -EINVAL, "result INT_MIN");
	memset(big, 'q', sizeof(big));
	CHECK(ft_reply(fd, read_id, 11, big, 11) == -EINVAL, "11 bytes for 10 asked");
	CHECK(ft_reply(fd, read_id, 5, big, 3) == -EINVAL, "result 5, payload 3");
	CHECK(ft_reply(fd, read_id, -EIO, big, 3) == -EINVAL, "error with payload");
	CHECK(ft_reply_open(fd, read_id, 0, 1, FUSD_POLLIN) == -EINVAL, "poll mask on READ");
	rep.padding = 1;
	CHECK_ERR(write(fd, &rep, sizeof(rep)), EINVAL);
	rep.padding = 0;
	rep.flags = 0x100;
	CHECK_ERR(write(fd, &rep, sizeof(rep)), EINVAL);
	rep.flags = 0;
	/* a payload the module cannot read: EFAULT, and the request is still there */
	map = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(map + ps, ps);
	rep.size = sizeof(rep) + 5;
	rep.result = 5;
	memcpy(map + ps - sizeof(rep), &rep, sizeof(rep));
	CHECK_ERR(write(fd, map + ps - sizeof(rep), sizeof(rep) + 5), EFAULT);
	munmap(map, ps);
	CHECK(ft_reply(fd, read_id, 5, "hello", 5) == 0, "the good reply");
	CHECK(ft_reply(fd, read_id, 5, "hello", 5) == -ENOENT, "a second reply");

	/* the header fits but the payload does not: EFAULT, and the WRITE is still queued */
	map = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(map + ps, ps);
	for (int tries = 0; tries < 200; tries++) {	/* wait for the caller's WRITE */
		struct pollfd pf = { fd, POLLIN, 0 };

		if (poll(&pf, 1, 10) == 1)
			break;
	}
	CHECK_ERR(read(fd, map + ps - sizeof(*h), FUSD_MIN_READ_BUFFER), EFAULT);
	munmap(map, ps);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) + 3 && h->opcode == FUSD_OP_WRITE &&
	      h->len == 3 && !memcmp(msg + sizeof(*h), "abc", 3), "WRITE");
	CHECK(ft_reply(fd, h->id, 4, NULL, 0) == -EINVAL, "wrote 4 of 3");
	CHECK(ft_reply(fd, h->id, 0, "x", 1) == -EINVAL, "payload on a WRITE reply");

	/* READY checks */
	memset(&rdy, 0, sizeof(rdy));
	rdy.size = sizeof(rdy);
	rdy.type = FUSD_MSG_READY;
	rdy.dev_id = dev_id;
	rdy.file_id = file_id;
	rdy.mask = FUSD_POLLIN;
	CHECK(write(fd, &rdy, sizeof(rdy)) == sizeof(rdy), "READY");
	rdy.mask = 0x4000;
	CHECK_ERR(write(fd, &rdy, sizeof(rdy)), EINVAL);
	rdy.mask = FUSD_POLLIN;
	rdy.file_id = file_id + 1000;
	CHECK_ERR(write(fd, &rdy, sizeof(rdy)), ENOENT);
	rdy.file_id = file_id;
	rdy.dev_id = dev_id + 1000;
	CHECK_ERR(write(fd, &rdy, sizeof(rdy)), ENOENT);
	rdy.dev_id = dev_id;
	rdy.size = sizeof(rdy) + 4;
	CHECK_ERR(write(fd, &rdy, sizeof(rdy)), EINVAL);

	CHECK(ft_reply(fd, h->id, 3, NULL, 0) == 0, "WRITE reply");
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_RELEASE &&
	      (h->id & FUSD_ID_NOREPLY) && h->file_id == file_id, "RELEASE");
	release_id = h->id;
	CHECK(ft_reply(fd, release_id, 0, NULL, 0) == 0, "a reply to RELEASE is accepted");
	CHECK(ft_reply(fd, (release_id + 100) | FUSD_ID_NOREPLY, 0, NULL, 0) == -ENOENT,
	      "a no-reply id never issued");
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "caller status %#x", st);
	close(fd);
	CHECK(wait_gone(dev, 1000), "node left");
	free(msg);
}

static void t_trace(void)
{
	const char *dev = "fusd-t-trace";
	struct fusd_trace_subscribe sub;
	struct fusd_trace_record rec[8];
	int tfd = ft_channel(), fd, seen = 0, more = 0;
	pid_t d = ft_spawn(dev, FT_ECHO, 0666, NULL);
	unsigned int dropped = 0, total = 0, ring;
	char b[4];
	ssize_t n;

	memset(&sub, 0, sizeof(sub));
	CHECK(ioctl(tfd, FUSD_IOC_TRACE, &sub) == 0 && sub.ring_records >= 64, "TRACE %u",
	      sub.ring_records);
	ring = sub.ring_records;
	CHECK_ERR(ioctl(tfd, FUSD_IOC_TRACE, &sub), EINVAL);	/* ring_records now set */
	memset(&sub, 0, sizeof(sub));
	CHECK_ERR(ioctl(tfd, FUSD_IOC_TRACE, &sub), EALREADY);
	CHECK(ft_register(tfd, "fusd-t-tracereg", 0666, 0, 0, NULL) == -EINVAL, "register on a tracer");
	CHECK_ERR(read(tfd, rec, sizeof(rec[0]) - 1), EINVAL);
	fd = open_node(dev, O_RDWR);
	CHECK(write(fd, "abc", 3) == 3 && read(fd, b, 4) == 3, "round trip");
	close(fd);
	fcntl(tfd, F_SETFL, O_NONBLOCK);
	while ((n = read(tfd, rec, sizeof(rec))) > 0) {
		for (int i = 0; i < n / (int)sizeof(rec[0]); i++) {
			struct fusd_trace_record *r = &rec[i];

			if (strcmp(r->name, dev))
				continue;
			CHECK(r->pid == (__u32)getpid() && r->time_ns > 0, "pid %u", r->pid);
			if (r->opcode == FUSD_OP_OPEN && r->result == 0)
				seen |= 1;
			if (r->opcode == FUSD_OP_WRITE && r->len == 3 && r->result == 3 && r->latency_ns)
				seen |= 2;
			if (r->opcode == FUSD_OP_READ && r->len == 4 && r->result == 3)
				seen |= 4;
			if (r->opcode == FUSD_OP_RELEASE)
				seen |= 8;
		}
	}
	CHECK(seen == 15, "records seen %#x", seen);
	CHECK(n < 0 && errno == EAGAIN, "empty ring: EAGAIN");
	/* a full ring drops, and says how many */
	fd = open_node(dev, O_RDWR);
	for (unsigned int i = 0; i < ring + 100; i++)
		ioctl(fd, FT_IOC_PLAIN, 1);
	close(fd);
	while ((n = read(tfd, rec, sizeof(rec))) > 0)
		for (int i = 0; i < n / (int)sizeof(rec[0]); i++, total++)
			dropped += rec[i].dropped;
	fd = open_node(dev, O_RDWR);
	close(fd);
	while ((n = read(tfd, rec, sizeof(rec))) > 0)
		for (int i = 0; i < n / (int)sizeof(rec[0]); i++, more++)
			dropped += rec[i].dropped;
	CHECK(total == ring && dropped >= 100 && more >= 1,
	      "ring %u records, %u read, %u dropped", ring, total, dropped);
	close(tfd);
	ft_reap(d);
}

static void t_sysfs(void)
{
	const char *dev = "fusd-t-sys";
	int ev, rp[2];
	pid_t d = ft_spawn(dev, FT_HOLD, 0640, &ev), r;
	char line[128];

	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	CHECK(sysfs_num(dev, "waiting") == 0 && sysfs_num(dev, "open_files") == 0, "idle");
	r = blocked_reader(dev, rp[1]);
	CHECK(wait_event(ev, "held", line, sizeof(line), 3000), "read not held");
	ft_msleep(150);
	CHECK(sysfs_num(dev, "waiting") == 1, "waiting %ld", sysfs_num(dev, "waiting"));
	CHECK(sysfs_num(dev, "oldest_wait_ms") >= 100, "oldest_wait_ms %ld",
	      sysfs_num(dev, "oldest_wait_ms"));
	CHECK(sysfs_num(dev, "open_files") == 1, "open_files");
	CHECK(sysfs_num(dev, "daemon_pid") == d, "daemon_pid");
	CHECK(sysfs_num(dev, "dev_id") > 0, "dev_id");
	kill(r, SIGKILL);
	waitpid(r, NULL, 0);
	CHECK(wait_event(ev, "interrupt", line, sizeof(line), 2000), "interrupt");
	CHECK(sysfs_num(dev, "waiting") == 0 && sysfs_num(dev, "oldest_wait_ms") == 0, "idle again");
	ft_reap(d);
	close(ev);
	close(rp[0]);
	close(rp[1]);
}

static void t_unregister(void)
{
	const char *dev = "fusd-t-unreg";
	int fd = ft_channel(), c, st;
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	__u64 id = 0;

	CHECK(ft_register(fd, dev, 0666, 0, 0, &id) == 0, "register");
	c = fork();
	if (c == 0) {
		int f = open_node(dev, O_RDWR);
		char b[4];

		if (f < 0)
			_exit(1);
		_exit(read(f, b, 4) == -1 && errno == ENODEV ? 0 : 2);
	}
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN");
	ft_reply_open(fd, h->id, 0, 0, 0);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_READ, "READ");
	CHECK(ft_unregister(fd, id) == 0, "unregister");
	CHECK(!node_exists(dev), "node left");
	CHECK(ft_reply(fd, h->id, 0, NULL, 0) == -ENOENT, "a reply after UNREGISTER");
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the reader must get ENODEV (status %#x)", st);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(fd, msg, FUSD_MIN_READ_BUFFER), EAGAIN);	/* no RELEASE after UNREGISTER */
	CHECK(ft_unregister(fd, id) == -ENOENT, "twice");
	CHECK(ft_register(fd, dev, 0666, 0, 0, &id) == 0, "the name is free again");
	close(fd);
	free(msg);
}

/* An OPEN the daemon read, then interrupted: INTERRUPT, then RELEASE of that file. */
static void t_open_interrupt(void)
{
	const char *dev = "fusd-t-openintr";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	int fd = ft_channel();
	__u64 open_id, file_id;
	pid_t c;

	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	c = fork();
	if (c == 0)
		_exit(open_node(dev, O_RDWR) < 0 ? 1 : 0);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN");
	open_id = h->id;
	file_id = h->file_id;
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_INTERRUPT &&
	      h->id == open_id, "INTERRUPT of the OPEN (op %u id %llu)", h->opcode,
	      (unsigned long long)h->id);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_RELEASE &&
	      h->file_id == file_id, "RELEASE of the abandoned file (op %u)", h->opcode);
	CHECK(ft_reply_open(fd, open_id, 0, 0, 0) == -ENOENT, "late OPEN reply");

	/* an OPEN refused by the daemon gets no RELEASE */
	c = fork();
	if (c == 0)
		_exit(open_node(dev, O_RDWR) < 0 && errno == EACCES ? 0 : 1);
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN 2");
	CHECK(ft_reply(fd, h->id, -EACCES, NULL, 0) == 0, "refuse");
	CHECK(waitpid(c, NULL, 0) == c, "wait");
	fcntl(fd, F_SETFL, O_NONBLOCK);
	CHECK_ERR(read(fd, msg, FUSD_MIN_READ_BUFFER), EAGAIN);
	close(fd);
	free(msg);
}

/* Two devices on one channel: routed by dev_id; removing one leaves the other. */
static void t_multi(void)
{
	struct ft_daemon d;
	int fd = ft_channel(), st;
	pid_t c;

	ft_daemon_init(&d, fd, -1);
	CHECK(ft_daemon_add(&d, "fusd-t-m1", FT_ECHO, 0666, 0, 0) == 0 &&
	      ft_daemon_add(&d, "fusd-t-m2", FT_ZERO, 0666, 0, 0) == 0, "register two");
	c = fork();
	if (c == 0) {
		ft_daemon_loop(&d);
		_exit(0);
	}
	{
		int a = open_node("fusd-t-m1", O_RDWR), b = open_node("fusd-t-m2", O_RDWR);
		char buf[8] = "";

		CHECK(write(a, "one", 3) == 3 && read(b, buf, 4) == 4 && !memcmp(buf, "\0\0\0\0", 4),
		      "zero device");
		CHECK(read(a, buf, 8) == 3 && !memcmp(buf, "one", 3), "echo device");
		CHECK(ft_unregister(fd, d.devs[1].id) == 0, "unregister the second");
		CHECK_ERR(read(b, buf, 1), ENODEV);
		CHECK(write(a, "two", 3) == 3 && read(a, buf, 8) == 3, "the first still works");
		close(a);
		close(b);
	}
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	close(fd);
	CHECK(wait_gone("fusd-t-m1", 1000), "node left");
	free(d.msg);
}

/* A subscriber without CAP_SYS_ADMIN sees only the devices its uid registered. */
static void t_trace_user(void)
{
	int ev, go[2], done[2], st, fd;
	pid_t d = spawn_uid1000_daemon("fusd-t-tu", &ev), r = ft_spawn("fusd-t-tr", FT_ZERO, 0666, NULL);
	pid_t tr;
	char line[128];

	CHECK(wait_event(ev, "registered", line, sizeof(line), 3000), "uid 1000 daemon");
	if (pipe(go) || pipe(done))
		ft_die("pipe");
	tr = fork();
	if (tr == 0) {
		struct fusd_trace_subscribe sub;
		struct fusd_trace_record rec;
		int t, mine = 0, other = 0;
		char c;

		if (become(1000, 1000, 0))
			_exit(97);
		t = ft_channel();
		memset(&sub, 0, sizeof(sub));
		if (t < 0 || ioctl(t, FUSD_IOC_TRACE, &sub))
			_exit(96);
		if (write(done[1], "s", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(95);
		fcntl(t, F_SETFL, O_NONBLOCK);
		while (read(t, &rec, sizeof(rec)) == sizeof(rec)) {
			mine += !strcmp(rec.name, "fusd-t-tu");
			other += strcmp(rec.name, "fusd-t-tu") != 0;
		}
		_exit(mine >= 2 && other == 0 ? 0 : 10 + (other > 0));
	}
	CHECK(read(done[0], line, 1) == 1, "subscriber ready");
	fd = open_node("fusd-t-tu", O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, FT_IOC_PLAIN, 1) == 2, "call on the uid 1000 device");
	close(fd);
	fd = open_node("fusd-t-tr", O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, FT_IOC_PLAIN, 1) == 2, "call on root's device");
	close(fd);
	CHECK(write(go[1], "g", 1) == 1, "go");
	CHECK(waitpid(tr, &st, 0) == tr && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the uid 1000 subscriber must see its device only (status %d)", WEXITSTATUS(st));
	ft_reap(d);
	ft_reap(r);
	close(ev);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

/* Keep uid 0, drop every capability (as setpriv --inh-caps=-all --bounding-set=-all). */
static int drop_all_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	return syscall(SYS_capset, &h, d) ? -1 : 0;
}

/*
 * uid 0 without capabilities is not root: it may neither remove nor trace a device that a
 * daemon registered with CAP_SYS_ADMIN.
 */
static void t_nocap(void)
{
	const char *dev = "fusd-t-nocap";
	pid_t r = ft_spawn(dev, FT_ZERO, 0666, NULL), tr;
	int go[2], done[2], st, fd;
	char line[8];

	if (pipe(go) || pipe(done))
		ft_die("pipe");
	tr = fork();
	if (tr == 0) {
		struct fusd_trace_subscribe sub;
		struct fusd_trace_record rec;
		int t, seen = 0, force;
		char c;

		if (drop_all_caps())
			_exit(97);
		t = ft_channel();
		memset(&sub, 0, sizeof(sub));
		if (t < 0 || ioctl(t, FUSD_IOC_TRACE, &sub))
			_exit(96);
		if (write(done[1], "s", 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(95);
		fcntl(t, F_SETFL, O_NONBLOCK);
		while (read(t, &rec, sizeof(rec)) == sizeof(rec))
			seen++;
		close(t);
		t = ft_channel();
		force = t < 0 ? t : ft_force_unregister(t, dev);
		printf("  capless uid 0: %d trace records of root's device, force unregister %d\n",
		       seen, force);
		fflush(stdout);
		_exit(seen == 0 && force == -EPERM ? 0 : 10);
	}
	CHECK(read(done[0], line, 1) == 1, "subscriber ready");
	fd = open_node(dev, O_RDWR);
	CHECK(fd >= 0 && ioctl(fd, FT_IOC_PLAIN, 1) == 2, "call on root's device");
	close(fd);
	CHECK(write(go[1], "g", 1) == 1, "go");
	CHECK(waitpid(tr, &st, 0) == tr && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "uid 0 without capabilities traced or removed root's device (status %d)",
	      WEXITSTATUS(st));
	CHECK(node_exists(dev), "root's node removed");
	ft_reap(r);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
}

/*
 * A caller's pid as the registering daemon's pid namespace sees it, not as that of whoever
 * opened /dev/fusd: the channel is opened here, the device registered on it by pid 1 of a new
 * pid namespace, and that daemon's child calls.
 */
static void t_pidns(void)
{
	const char *dev = "fusd-t-pidns";
	int fd = ft_channel(), rp[2];
	char line[128] = "";
	pid_t a;
	int st;

	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	a = fork();
	if (a == 0) {
		pid_t g;

		if (unshare(CLONE_NEWPID))
			_exit(90);
		g = fork();
		if (g == 0) {
			struct ft_daemon d;
			pid_t c;

			ft_daemon_init(&d, fd, -1);
			if (ft_daemon_add(&d, dev, FT_ECHO, 0666, 0, 0))
				_exit(91);
			c = fork();
			if (c == 0) {
				struct ft_whoami w;
				int f = open_node(dev, O_RDWR), n;

				memset(&w, 0, sizeof(w));
				if (f < 0 || ioctl(f, FT_IOC_WHOAMI, &w) < 0)
					w.pid = (__u32)-1;
				n = snprintf(line, sizeof(line), "%u %d\n", w.pid, getpid());
				_exit(write(rp[1], line, n) == n ? 0 : 1);
			}
			while (waitpid(c, NULL, WNOHANG) == 0) {
				struct pollfd p = { fd, POLLIN, 0 };
				ssize_t n;

				if (poll(&p, 1, 10) == 1 &&
				    (n = read(fd, d.msg, FUSD_MIN_READ_BUFFER)) > 0)
					ft_handle(&d, n);
			}
			_exit(0);
		}
		_exit(g > 0 && waitpid(g, &st, 0) == g && WIFEXITED(st) ? WEXITSTATUS(st) : 92);
	}
	CHECK(ft_event_wait(rp[0], line, sizeof(line), 5000) == 0, "no answer from the caller");
	{
		unsigned int seen = 0;
		int own = -2;

		sscanf(line, "%u %d", &seen, &own);
		CHECK((int)seen == own && own > 1, "the daemon saw pid %u, the caller is %d in its "
		      "namespace", seen, own);
	}
	CHECK(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
	close(fd);
	close(rp[0]);
	close(rp[1]);
}

/* Child: as @uid, subscribe as often as the module lets; report the count on @out, then hold. */
static pid_t trace_hog(uid_t uid, int out)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct fusd_trace_subscribe sub;
		int n = 0;
		char line[32];

		if (become(uid, uid, 0))
			_exit(97);
		for (int i = 0; i < 100; i++) {
			int t = ft_channel();

			memset(&sub, 0, sizeof(sub));
			if (t < 0 || ioctl(t, FUSD_IOC_TRACE, &sub)) {
				if (t >= 0)
					close(t);
				break;
			}
			n++;
		}
		snprintf(line, sizeof(line), "%d\n", n);
		if (write(out, line, strlen(line)) < 0)
			_exit(96);
		pause();
		_exit(0);
	}
	return pid;
}

/* One user taking every trace slot it can leaves some for another. */
static void t_trace_slots(void)
{
	int rp[2], n1 = -1, n2 = -1;
	char line[32];
	pid_t a, b;

	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	a = trace_hog(1000, rp[1]);
	CHECK(ft_event_wait(rp[0], line, sizeof(line), 5000) == 0, "uid 1000 hog");
	n1 = atoi(line);
	b = trace_hog(2000, rp[1]);
	CHECK(ft_event_wait(rp[0], line, sizeof(line), 5000) == 0, "uid 2000 hog");
	n2 = atoi(line);
	printf("  subscriptions: uid 1000 got %d, then uid 2000 got %d\n", n1, n2);
	CHECK(n1 >= 1 && n2 >= 1, "a second user cannot trace while the first holds %d", n1);
	CHECK(n1 == n2, "both users are limited alike");
	ft_reap(a);
	ft_reap(b);
	close(rp[0]);
	close(rp[1]);
}

/* ---- FUSD_IOC_EXCHANGE ---- */

/* One exchange: returns the ioctl's result (>= 0) or -errno; *msg_result gets the write's. */
static int exchange(int fd, const void *msg, size_t msg_size, void *buf, size_t buf_size,
		    unsigned int flags, int wake_fd, int *msg_result)
{
	struct fusd_exchange ex;
	int r;

	memset(&ex, 0, sizeof(ex));
	ex.msg = (uintptr_t)msg;
	ex.msg_size = msg_size;
	ex.msg_result = 12345;		/* out only: whatever is here is ignored */
	ex.buf = (uintptr_t)buf;
	ex.buf_size = buf_size;
	ex.flags = flags;
	ex.wake_fd = wake_fd;
	r = ioctl(fd, FUSD_IOC_EXCHANGE, &ex);
	if (msg_result)
		*msg_result = ex.msg_result;
	return r < 0 ? -errno : r;
}

struct exch_caller {
	const char *dev;
	int rounds, ok;
	int cpu;			/* the caller's CPU, or -1: wherever it runs */
};

static void *exch_caller_main(void *p)
{
	struct exch_caller *c = p;
	int fd;
	char b[8];

	if (c->cpu >= 0)
		ft_pin_to_cpu(c->cpu);
	fd = open_node(c->dev, O_RDWR);

	for (int i = 0; fd >= 0 && i < c->rounds; i++)
		if (read(fd, b, 1) == 1 && b[0] == (char)('a' + i % 26))
			c->ok++;
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void *kick_later(void *p)
{
	ft_msleep(150);
	if (write(*(int *)p, &(uint64_t){ 1 }, 8) < 0) {}
	return NULL;
}

/*
 * An exchange on channel @fd that waits with @wake_fd while a thread makes eventfd @kick
 * ready 150 ms later: it must end with no message, and not before the kick.
 */
static void check_woken_later(int fd, void *buf, int wake_fd, int *kick, const char *what)
{
	pthread_t th;
	double t, waited;
	int n;

	pthread_create(&th, NULL, kick_later, kick);
	t = ft_now();
	n = exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, FUSD_EXCHANGE_WAIT, wake_fd, NULL);
	waited = ft_now() - t;
	CHECK(n == 0 && waited >= 0.1, "woken by %s: %d after %.3fs", what, n, waited);
	pthread_join(th, NULL);
}

/*
 * A caller thread (on @caller_cpu, unless -1) does @rounds 1-byte reads of @dev; this thread
 * serves them by exchanges alone (each reply and the next request in one call, waiting with
 * @wake_fd), and checks every byte and every reply's msg_result.  @fd is the channel that
 * registered @dev.
 */
static void serve_by_exchanges(int fd, const char *dev, int rounds, int wake_fd, int caller_cpu)
{
	static unsigned char buf[FUSD_MIN_READ_BUFFER];
	struct fusd_req_header *h = (struct fusd_req_header *)buf;
	unsigned char rep[sizeof(struct fusd_reply) + 8];
	struct fusd_reply *r = (struct fusd_reply *)rep;
	struct exch_caller caller = { dev, rounds, 0, caller_cpu };
	const int W = FUSD_EXCHANGE_WAIT;
	pthread_t th;
	int n, i, res;

	pthread_create(&th, NULL, exch_caller_main, &caller);
	n = exchange(fd, NULL, 0, buf, sizeof(buf), W, wake_fd, NULL);
	for (i = 0; n > 0 && h->opcode != FUSD_OP_RELEASE; i++) {
		size_t size = sizeof(*r);

		ft_reply_head(r, h->id, 0, 0);
		if (h->opcode == FUSD_OP_READ) {
			r->result = 1;
			rep[sizeof(*r)] = 'a' + (i - 1) % 26;
			size++;
		}
		r->size = size;
		n = exchange(fd, r, size, buf, sizeof(buf), W, wake_fd, &res);
		CHECK(res == (int)size, "reply %d: msg_result %d", i, res);
	}
	pthread_join(th, NULL);
	CHECK(caller.ok == caller.rounds && i == caller.rounds + 1,
	      "%d of %d reads right, %d messages", caller.ok, caller.rounds, i);
}

/*
 * SIGUSR1 to @child until it writes the int it got from a call to @rfd (it is in the wait to
 * be interrupted only after some while); that int, or 1 if none came in 10 s.
 */
static int signal_until_answer(pid_t child, int rfd)
{
	int n = 1;

	for (int i = 0; i < 100 && n == 1; i++) {
		struct pollfd pp = { rfd, POLLIN, 0 };

		kill(child, SIGUSR1);
		if (poll(&pp, 1, 100) == 1 && read(rfd, &n, sizeof(n)) != sizeof(n))
			n = 1;
	}
	return n;
}

static void t_exchange(void)
{
	const char *dev = "fusd-t-exch";
	const int W = FUSD_EXCHANGE_WAIT;
	unsigned char *buf = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)buf;
	unsigned char rep[sizeof(struct fusd_reply) + 8];
	struct fusd_reply *r = (struct fusd_reply *)rep;
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	int fd = ft_channel(), ev = eventfd(0, EFD_CLOEXEC), res, n, pfd[2];
	struct fusd_exchange ex;
	struct fusd_trace_subscribe ts;
	pthread_t th;
	pid_t child;

	CHECK(fd >= 0 && ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");

	/* bad arguments: refused before anything is written or read */
	ft_reply_head(r, 1, 0, 0);
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL) == 0, "nothing queued");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER - 1, 0, -1, NULL) == -EINVAL, "small buffer");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0x80, -1, NULL) == -EINVAL, "flags");
	CHECK(exchange(fd, NULL, 8, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL) == -EINVAL, "size, no msg");
	CHECK(exchange(fd, r, 0, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL) == -EINVAL, "msg, no size");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0, ev, NULL) == -EINVAL, "wake_fd without WAIT");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, -7, NULL) == -EINVAL, "wake_fd -7");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, 987654, NULL) == -EBADF, "wake_fd closed");
	memset(&ex, 0, sizeof(ex));
	ex.buf = (uintptr_t)buf;
	ex.buf_size = FUSD_MIN_READ_BUFFER;
	ex.wake_fd = -1;
	ex.padding = 1;
	CHECK_ERR(ioctl(fd, FUSD_IOC_EXCHANGE, &ex), EINVAL);
	ex.padding = 0;
	ex.reserved = 1;
	CHECK_ERR(ioctl(fd, FUSD_IOC_EXCHANGE, &ex), EINVAL);
	CHECK_ERR(ioctl(fd, FUSD_IOC_EXCHANGE, bad_ptr), EFAULT);
	CHECK_ERR(ioctl(fd, FUSD_IOC_EXCHANGE, (void *)16), EFAULT);

	/* a message nobody waits for: its write error is reported, the read still happens */
	CHECK(exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, 0, -1, &res) == 0 &&
	      res == -ENOENT, "unknown id: msg_result %d", res);
	r->padding = 1;
	CHECK(exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, 0, -1, &res) == 0 &&
	      res == -EINVAL, "bad reply: msg_result %d", res);
	CHECK(exchange(fd, (void *)16, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, 0, -1, &res) == 0 &&
	      res == -EFAULT, "msg at 16: msg_result %d", res);

	/* the wait ends for wake_fd: already ready, made ready later, or for a signal */
	if (write(ev, &(uint64_t){ 1 }, 8) < 0) {}
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, ev, NULL) == 0, "ready wake_fd");
	if (read(ev, &(uint64_t){ 0 }, 8) < 0) {}
	check_woken_later(fd, buf, ev, &ev, "wake_fd");
	if (read(ev, &(uint64_t){ 0 }, 8) < 0) {}

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(pfd) < 0)
		pfd[0] = pfd[1] = -1;
	child = fork();
	if (child == 0) {	/* blocked in the wait: signalled, then SIGKILLed */
		ft_reply_head(r, 1, 0, 0);
		n = exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, W, ev, NULL);
		if (write(pfd[1], &n, sizeof(n)) < 0) {}
		exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, -1, NULL);
		_exit(2);
	}
	n = signal_until_answer(child, pfd[0]);
	/* the message was written already: EINTR, never a restart, even with SA_RESTART */
	CHECK(n == -EINTR, "signalled in the wait: %d", n);
	ft_msleep(100);
	kill(child, SIGKILL);
	CHECK(waitpid(child, &res, 0) == child && WIFSIGNALED(res) && WTERMSIG(res) == SIGKILL,
	      "killed while waiting: status %#x", res);
	close(pfd[0]);
	close(pfd[1]);

	/* a caller served by exchanges only: each reply and the next request in one call */
	serve_by_exchanges(fd, dev, 500, ev, -1);

	/* a message that cannot be delivered (bad buffer) stays queued */
	pthread_create(&th, NULL, exch_caller_main, &(struct exch_caller){ dev, 1, 0, -1 });
	CHECK(exchange(fd, NULL, 0, bad_ptr, FUSD_MIN_READ_BUFFER, W, -1, NULL) == -EFAULT, "bad buf");
	n = exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, -1, NULL);
	CHECK(n > 0 && h->opcode == FUSD_OP_OPEN, "the open is still there: %d op %u", n, h->opcode);
	ft_reply_head(r, h->id, 0, 0);
	n = exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, W, -1, NULL);
	CHECK(n > 0 && h->opcode == FUSD_OP_READ, "read: %d op %u", n, h->opcode);
	ft_reply_head(r, h->id, -EIO, 0);
	n = exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, W, -1, NULL);
	CHECK(n > 0 && h->opcode == FUSD_OP_RELEASE, "release: %d op %u", n, h->opcode);
	pthread_join(th, NULL);

	close(fd);
	fd = ft_channel();
	memset(&ts, 0, sizeof(ts));
	CHECK(ioctl(fd, FUSD_IOC_TRACE, &ts) == 0, "trace");
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL) == -EINVAL, "tracer");
	close(fd);
	fd = open(FUSD_CONTROL_DEVICE, O_RDWR);
	CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL) == -EPROTO, "no HELLO");
	close(fd);
	close(ev);
	free(buf);
}

/* An epoll set with one eventfd in it: the wake_fd shape of libfusd's loop. */
static int epoll_with(int efd)
{
	struct epoll_event e = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e))
		ft_die("epoll set");
	return ep;
}

struct exch_waiter {
	int fd, wake_fd, n;
	double took;
};

static void *exch_waiter_main(void *p)
{
	static __thread unsigned char buf[FUSD_MIN_READ_BUFFER];
	struct exch_waiter *w = p;
	double t = ft_now();

	w->n = exchange(w->fd, NULL, 0, buf, sizeof(buf), FUSD_EXCHANGE_WAIT, w->wake_fd, NULL);
	w->took = ft_now() - t;
	return NULL;
}

/*
 * An epoll wake_fd is watched from one exchange to the next (kernel/waker.c): it must still
 * end every wait while it is ready, end a wait when it gets ready, follow a new set, survive
 * its fd being closed, and serve two threads waiting at once.
 */
static void t_exchange_epoll(void)
{
	const char *dev = "fusd-t-exep";
	const int W = FUSD_EXCHANGE_WAIT;
	unsigned char *buf = malloc(FUSD_MIN_READ_BUFFER);
	unsigned char rep[sizeof(struct fusd_reply) + 8];
	struct fusd_reply *r = (struct fusd_reply *)rep;
	struct sigaction sa = { .sa_handler = on_signal };
	int fd = ft_channel(), ev = eventfd(0, EFD_CLOEXEC), ev2 = eventfd(0, EFD_CLOEXEC);
	int ep = epoll_with(ev), ep2 = epoll_with(ev2), n, i, pfd[2];
	struct exch_waiter w1, w2;
	pthread_t th, th2;
	double t;
	pid_t child;

	CHECK(fd >= 0 && ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	CHECK(live("wakers") == 0, "no watch yet: %ld", live("wakers"));

	/* ready: every wait ends at once, as long as it stays ready (level) */
	if (write(ev, &(uint64_t){ 1 }, 8) < 0) {}
	for (i = 0; i < 3; i++)
		CHECK(exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, W, ep, NULL) == 0, "ready set %d", i);
	CHECK(live("wakers") == 1, "the set is watched: %ld", live("wakers"));
	if (read(ev, &(uint64_t){ 0 }, 8) < 0) {}

	/* not ready: the wait ends when it gets ready, not before */
	check_woken_later(fd, buf, ep, &ev, "the set");

	/* another set: the watch follows it, and the old one (still ready) no longer ends a wait */
	check_woken_later(fd, buf, ep2, &ev2, "the new set");
	CHECK(live("wakers") == 1, "one watch: %ld", live("wakers"));
	if (read(ev, &(uint64_t){ 0 }, 8) < 0) {}
	if (read(ev2, &(uint64_t){ 0 }, 8) < 0) {}

	/* the watched set's fd closed, a new set at the same number: the new one counts */
	close(ep2);
	ep2 = epoll_with(ev2);
	check_woken_later(fd, buf, ep2, &ev2, "the reopened set");
	if (read(ev2, &(uint64_t){ 0 }, 8) < 0) {}

	/* two threads waiting on one channel and one set: both wake (one watches, one polls) */
	w1 = (struct exch_waiter){ fd, ep2, 1, 0 };
	w2 = w1;
	pthread_create(&th, NULL, exch_waiter_main, &w1);
	pthread_create(&th2, NULL, exch_waiter_main, &w2);
	ft_msleep(200);
	if (write(ev2, &(uint64_t){ 1 }, 8) < 0) {}
	pthread_join(th, NULL);
	pthread_join(th2, NULL);
	CHECK(w1.n == 0 && w2.n == 0 && w1.took >= 0.15 && w2.took >= 0.15,
	      "two waiters: %d after %.3fs, %d after %.3fs", w1.n, w1.took, w2.n, w2.took);
	if (read(ev2, &(uint64_t){ 0 }, 8) < 0) {}

	/* a signal in the watched wait: EINTR once the message is written */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (pipe(pfd) < 0)
		pfd[0] = pfd[1] = -1;
	child = fork();
	if (child == 0) {
		ft_reply_head(r, 1, 0, 0);
		n = exchange(fd, r, sizeof(*r), buf, FUSD_MIN_READ_BUFFER, W, ep2, NULL);
		if (write(pfd[1], &n, sizeof(n)) < 0) {}
		_exit(0);
	}
	n = signal_until_answer(child, pfd[0]);
	CHECK(n == -EINTR, "signalled in the watched wait: %d", n);
	ft_reap(child);
	close(pfd[0]);
	close(pfd[1]);

	/* a caller served by exchanges that watch the set */
	serve_by_exchanges(fd, dev, 300, ep2, -1);

	/* the watch goes with the channel, whatever happened to the set's fd */
	close(ep2);
	close(fd);
	t = ft_now();
	while (live("wakers") != 0 && ft_now() - t < 2)
		ft_msleep(10);
	CHECK(live("wakers") == 0, "watch released with the channel: %ld", live("wakers"));
	close(ep);
	close(ev);
	close(ev2);
	free(buf);
}

/* ---- adaptive polling (poll_ns) ---- */

/* The scheduler state of thread @tid of process @pid ('R', 'S', ...), or '?'. */
static char task_state(pid_t pid, pid_t tid)
{
	char p[96], buf[512];
	char *close_paren;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%d/task/%d/stat", pid, tid);
	f = fopen(p, "r");
	if (!f)
		return '?';
	buf[0] = 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	close_paren = strrchr(buf, ')');
	return close_paren && close_paren[1] == ' ' ? close_paren[2] : '?';
}

/* The next message on channel @fd, taken without waiting in the module: its size, 0 after @secs. */
static int next_msg(int fd, void *buf, double secs)
{
	double end = ft_now() + secs;
	int n;

	while ((n = exchange(fd, NULL, 0, buf, FUSD_MIN_READ_BUFFER, 0, -1, NULL)) == 0 && ft_now() < end)
		ft_msleep(1);
	return n;
}

/* Waits until thread @tid of @pid sleeps ('S'), for at most @secs; whether it does. */
static int becomes_asleep(pid_t pid, pid_t tid, double secs)
{
	double end = ft_now() + secs;

	while (task_state(pid, tid) != 'S' && ft_now() < end)
		ft_msleep(2);
	return task_state(pid, tid) == 'S';
}

struct poll_waiter {
	int fd;			/* the channel */
	int wake_fd;
	int cpu;
	pid_t tid;
	int n;			/* what the exchange returned */
};

static void *poll_waiter_main(void *p)
{
	static unsigned char buf[FUSD_MIN_READ_BUFFER];
	struct poll_waiter *w = p;

	ft_pin_to_cpu(w->cpu);
	__atomic_store_n(&w->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	w->n = exchange(w->fd, NULL, 0, buf, sizeof(buf), FUSD_EXCHANGE_WAIT, w->wake_fd, NULL);
	return NULL;
}

/*
 * A daemon thread alone on CPU 1 waiting (with @wake_fd) for a request that does not come:
 * it spins first (a spin can also end early, when RCU or another task wants the CPU: tried
 * a few times), then sleeps, and a signal ends its wait.
 */
static void check_daemon_poll(int fd, int wake_fd, const char *what)
{
	int spun = 0;

	for (int try = 0; try < 5 && !spun; try++) {
		struct poll_waiter w = { fd, wake_fd, 1, 0, 0 };
		long attempted = param("polls_attempted");
		pthread_t th;
		pid_t tid;

		pthread_create(&th, NULL, poll_waiter_main, &w);
		while (!(tid = __atomic_load_n(&w.tid, __ATOMIC_ACQUIRE)))
			ft_msleep(1);
		CHECK(becomes_asleep(getpid(), tid, 10), "%s: the daemon sleeps after poll_ns: state %c",
		      what, task_state(getpid(), tid));
		spun = param("polls_attempted") > attempted;
		pthread_kill(th, SIGUSR1);
		pthread_join(th, NULL);
		CHECK(w.n == -EINTR, "%s: a signal ends the daemon's wait: %d", what, w.n);
	}
	CHECK(spun, "%s: a daemon alone on its CPU spins before it sleeps", what);
}

/*
 * A caller (a child on CPU 0) whose daemon, this process on CPU 1 taking messages without
 * waiting in the module (so that every spin counted is the caller's), read its request and
 * does not answer: it spins while alone on its CPU, and a signal ends the call with EINTR.
 * (Whether the signal ended a spin or a sleep is not told apart: another task waking on CPU 0
 * ends a spin too, and which comes first is the scheduler's business.)
 */
static int caller_poll_once(int fd, const char *dev)
{
	static unsigned char buf[FUSD_MIN_READ_BUFFER];
	struct fusd_req_header *h = (struct fusd_req_header *)buf;
	long attempted = param("polls_attempted");
	int pfd[2], n, got = 0, spun;
	double sent;
	pid_t child;

	CHECK(pipe(pfd) == 0, "pipe");
	child = fork();
	if (child == 0) {
		int dfd, r;
		char b;

		ft_pin_to_cpu(0);
		dfd = open_node(dev, O_RDWR);
		r = dfd >= 0 && read(dfd, &b, 1) < 0 ? -errno : 1;
		if (write(pfd[1], &r, sizeof(r)) < 0) {}
		_exit(0);
	}
	n = next_msg(fd, buf, 10);
	CHECK(n > 0 && h->opcode == FUSD_OP_OPEN, "the open: %d", n);
	if (n > 0)
		ft_reply_open(fd, h->id, 0, 0, 0);
	n = next_msg(fd, buf, 10);
	CHECK(n > 0 && h->opcode == FUSD_OP_READ, "the read: %d", n);	/* and no answer */
	ft_msleep(20);
	sent = ft_now();
	kill(child, SIGUSR1);
	{
		struct pollfd pp = { pfd[0], POLLIN, 0 };

		if (poll(&pp, 1, 10000) == 1 && read(pfd[0], &n, sizeof(n)) == sizeof(n))
			got = 1;
	}
	CHECK(got && n == -EINTR, "signalled while waiting: %d after %.3fs", got ? n : 0, ft_now() - sent);
	spun = param("polls_attempted") > attempted;
	ft_reap(child);
	n = next_msg(fd, buf, 10);
	CHECK(n > 0 && h->opcode == FUSD_OP_INTERRUPT, "the daemon is told: %d, op %u", n, h->opcode);
	n = next_msg(fd, buf, 10);
	CHECK(n > 0 && h->opcode == FUSD_OP_RELEASE, "then the release: %d, op %u", n, h->opcode);
	close(pfd[0]);
	close(pfd[1]);
	return spun;
}

/*
 * "Alone on its CPU" is the guest scheduler's to grant: on a loaded host a kworker or a timer
 * may share CPU 0 for a whole wait, and then the caller rightly sleeps at once. So spinning must
 * show in one of a few tries, as for the daemon above.
 */
static void check_caller_poll(int fd, const char *dev)
{
	int spun = 0;

	for (int try = 0; try < 5 && !spun; try++)
		spun = caller_poll_once(fd, dev);
	CHECK(spun, "a caller alone on its CPU spins (in one of 5 tries)");
}

/*
 * poll_ns: who spins, when, and for how long (see fusd_poll() in kernel/fusd_internal.h).
 * Sharing one CPU, nobody spins (the other side must run first); on two CPUs waits end
 * while spinning; a spin ends at poll_ns, on a signal, and whenever its CPU is wanted.
 */
static void t_adaptive_poll(void)
{
	const char *dev = "fusd-t-apoll";
	long saved = param("poll_ns"), attempted, successful;
	int fd = ft_channel(), ep, ev = eventfd(0, EFD_CLOEXEC);
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	char saved_text[32];
	struct stat st;

	sigaction(SIGUSR1, &sa, NULL);
	CHECK(saved >= 0, "poll_ns readable: %ld", saved);
	CHECK(stat("/sys/module/fusd/parameters/poll_ns", &st) == 0 && (st.st_mode & 0777) == 0644,
	      "poll_ns is root's to change: mode %o", st.st_mode & 0777);
	snprintf(saved_text, sizeof(saved_text), "%ld", saved);
	CHECK(param_write("poll_ns", "1000000001") == -EINVAL, "more than 1 s refused");
	CHECK(param_write("poll_ns", "-1") == -EINVAL, "negative refused");
	CHECK(param_write("poll_ns", "50us") == -EINVAL, "not a number refused");
	CHECK(param_write("poll_ns", "99999999999") == -EINVAL, "far too large refused");
	CHECK(param("poll_ns") == saved, "a refused write changes nothing: %ld", param("poll_ns"));
	CHECK(fd >= 0 && ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	ep = epoll_with(ev);

	/* one CPU for daemon and caller, polls of up to 1 s: nobody ever spins */
	CHECK(param_write("poll_ns", "1000000000") == 0, "poll_ns = 1 s");
	ft_pin_to_cpu(0);
	attempted = param("polls_attempted");
	serve_by_exchanges(fd, dev, 200, -1, 0);
	serve_by_exchanges(fd, dev, 200, ep, 0);
	CHECK(param("polls_attempted") == attempted, "sharing a CPU, %ld waits spun",
	      param("polls_attempted") - attempted);

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("  (one CPU: the two-CPU checks are skipped)\n");
		goto out;
	}

	/* alone on a CPU: a daemon and a caller spin, then sleep; a signal ends either wait */
	check_daemon_poll(fd, -1, "read");
	check_daemon_poll(fd, ep, "epoll wake_fd");
	check_daemon_poll(fd, ev, "eventfd wake_fd");
	ft_pin_to_cpu(1);
	check_caller_poll(fd, dev);

	/* daemon on CPU 1, caller on CPU 0: waits end while spinning */
	CHECK(param_write("poll_ns", "1000000") == 0, "poll_ns = 1 ms");
	successful = param("polls_successful");
	serve_by_exchanges(fd, dev, 200, -1, 0);
	serve_by_exchanges(fd, dev, 200, ep, 0);
	CHECK(param("polls_successful") > successful, "on two CPUs, no wait ended while spinning");
out:
	CHECK(param_write("poll_ns", saved_text) == 0, "poll_ns restored");
	close(fd);
	close(ep);
	close(ev);
}

/* ---- the malformed-message loop ---- */

/* ---- ioctl shapes and retries (kernel/ioctl.c) ---- */

#define RT_PAIR		0x7777	/* arg -> struct rt_pair: out[i] = in[i] + 1, over 2 retries */
#define RT_KADDR_IN	0x7778	/* the daemon asks for a kernel address: EFAULT */
#define RT_KADDR_OUT	0x7779	/* ... to write one: EFAULT */
#define RT_FOREVER	0x777a	/* the daemon retries without end: EIO */
#define KT_TERMIOS	36	/* sizeof the kernel's struct termios (TCGETS) */

struct rt_pair {
	__u64 in, out;		/* addresses of 8 bytes each */
};

static int retry_caller(const char *dev)
{
	unsigned char t[KT_TERMIOS + 4], in[8], out[8];
	struct rt_pair pair = { (uintptr_t)in, (uintptr_t)out };
	int f = open_node(dev, O_RDWR);

	if (f < 0)
		return 1;
	memset(t, 0, sizeof(t));
	if (ioctl(f, TCGETS, t) != 0 || t[0] != 'T' || t[KT_TERMIOS - 1] != 'T' || t[KT_TERMIOS])
		return 2;
	for (int i = 0; i < 8; i++)
		in[i] = 10 * i;
	if (ioctl(f, RT_PAIR, &pair) != 8)
		return 3;
	for (int i = 0; i < 8; i++)
		if (out[i] != 10 * i + 1)
			return 4;
	if (ioctl(f, RT_KADDR_IN, &pair) != -1 || errno != EFAULT)
		return 5;
	if (ioctl(f, RT_KADDR_OUT, &pair) != -1 || errno != EFAULT)
		return 6;
	if (ioctl(f, RT_FOREVER, &pair) != -1 || errno != EIO)
		return 7;
	if (read(f, t, 1) != 0)
		return 8;
	close(f);
	return 0;
}

/* A FUSD_REPLY_RETRY to @id with @nin in and @nout out ranges; returns 0 or -errno. */
static int rt_retry(int fd, __u64 id, int result, __u32 flags, __u32 nin, __u32 nout,
		    const struct fusd_ioctl_range *r, size_t nranges)
{
	static unsigned char buf[sizeof(struct fusd_reply) + sizeof(struct fusd_ioctl_retry) +
				 100 * sizeof(struct fusd_ioctl_range)];
	struct fusd_reply *rep = (struct fusd_reply *)buf;
	struct fusd_ioctl_retry *list = (struct fusd_ioctl_retry *)(rep + 1);
	size_t len = sizeof(*list) + nranges * sizeof(*r);

	ft_reply_head(rep, id, result, len);
	rep->flags = flags;
	list->in_count = nin;
	list->out_count = nout;
	memcpy(list + 1, r, nranges * sizeof(*r));
	return write(fd, buf, rep->size) < 0 ? -errno : 0;
}

/* The next request, which must be an IOCTL of @cmd with @in payload bytes and @out reply_max. */
static struct fusd_req_header *rt_next(int fd, unsigned char *msg, __u32 cmd, __u32 in, __u32 out)
{
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	ssize_t n = read(fd, msg, FUSD_MIN_READ_BUFFER);

	CHECK(n == (ssize_t)(sizeof(*h) + in) && h->opcode == FUSD_OP_IOCTL && h->ioctl_cmd == cmd &&
	      h->reply_max == out, "cmd %#x: got %zd bytes, opcode %u cmd %#x reply_max %u", cmd, n,
	      h->opcode, h->ioctl_cmd, h->reply_max);
	return h;
}

static void t_retry(void)
{
	const char *dev = "fusd-t-retry";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER), t[KT_TERMIOS + 1];
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	const __u64 kaddr = 0xffff888000000000ULL, big = FUSD_CHUNK_MAX;
	struct fusd_ioctl_range r[FUSD_RETRY_RANGES_MAX + 1];
	struct rt_pair pair;
	unsigned char out[8];
	int fd = ft_channel(), st, i;
	__u64 dev_id, arg;
	pid_t c;

	CHECK(ft_register(fd, dev, 0666, 0, 0, &dev_id) == 0, "register");
	c = fork();
	if (c == 0)
		_exit(retry_caller(dev));
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_OPEN, "OPEN");
	CHECK(ft_reply(fd, h->id, 0, NULL, 0) == 0, "OPEN reply");

	/* TCGETS carries no size in its number: the table gives it the kernel's termios */
	h = rt_next(fd, msg, TCGETS, 0, KT_TERMIOS);
	CHECK(h->len == KT_TERMIOS, "TCGETS len %u", h->len);
	memset(t, 'T', sizeof(t));
	CHECK(ft_reply(fd, h->id, 0, t, KT_TERMIOS + 1) == -EINVAL, "more than TCGETS takes");
	CHECK(ft_reply(fd, h->id, 0, t, KT_TERMIOS) == 0, "TCGETS reply");

	/* RT_PAIR: every bad list is refused and changes nothing; then the good ones */
	h = rt_next(fd, msg, RT_PAIR, 0, 0);
	arg = h->ioctl_arg;
	r[0] = (struct fusd_ioctl_range){ arg, sizeof(pair) };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0, 0, r, 0) == -EINVAL, "no ranges");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 0) == -EINVAL, "count > given");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0, 0, r, 1) == -EINVAL, "count < given");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0x80000000u, 0x80000001u, r, 1) == -EINVAL,
	      "counts that wrap");
	for (i = 0; i <= FUSD_RETRY_RANGES_MAX; i++)
		r[i] = (struct fusd_ioctl_range){ arg, 1 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, FUSD_RETRY_RANGES_MAX + 1, 0, r,
		       FUSD_RETRY_RANGES_MAX + 1) == -EINVAL, "too many ranges");
	r[0] = (struct fusd_ioctl_range){ arg, 0 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "empty range");
	r[0] = (struct fusd_ioctl_range){ arg, big + 1 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0, 1, r, 1) == -EINVAL, "range too long");
	r[0] = (struct fusd_ioctl_range){ arg, ~0ULL };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "huge range");
	r[0] = (struct fusd_ioctl_range){ arg, big };
	r[1] = (struct fusd_ioctl_range){ arg, 1 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 2, 0, r, 2) == -EINVAL, "in total too big");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0, 2, r, 2) == -EINVAL, "out total too big");
	r[0] = (struct fusd_ioctl_range){ ~0ULL - 4, 16 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "wraps");
	r[0] = (struct fusd_ioctl_range){ arg, sizeof(pair) };
	CHECK(rt_retry(fd, h->id, 1, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "result 1");
	CHECK(rt_retry(fd, h->id, -5, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "result -5");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY | FUSD_REPLY_POLL, 1, 0, r, 1) == -EINVAL,
	      "with FUSD_REPLY_POLL");
	CHECK(rt_retry(fd, h->id + 1000, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == -ENOENT, "unknown id");
	/* in ranges may overlap: the argument, and its second half again */
	r[1] = (struct fusd_ioctl_range){ arg + 8, 8 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 2, 0, r, 2) == 0, "first retry");
	h = rt_next(fd, msg, RT_PAIR, sizeof(pair) + 8, 0);
	memcpy(&pair, h + 1, sizeof(pair));
	CHECK(!memcmp((char *)(h + 1) + sizeof(pair), &pair.out, 8), "overlapping range's bytes");
	r[1] = (struct fusd_ioctl_range){ pair.in, 8 };
	r[2] = (struct fusd_ioctl_range){ pair.out, 3 };	/* out in two pieces */
	r[3] = (struct fusd_ioctl_range){ pair.out + 3, 5 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 2, 2, r, 4) == 0, "second retry");
	h = rt_next(fd, msg, RT_PAIR, sizeof(pair) + 8, 8);
	CHECK(h->len == 8, "a retried request's len is its out total: %u", h->len);
	for (i = 0; i < 8; i++)
		out[i] = ((unsigned char *)(h + 1))[sizeof(pair) + i] + 1;
	CHECK(ft_reply(fd, h->id, 8, out, sizeof(out)) == 0, "RT_PAIR reply");

	/* kernel addresses are the caller's to refuse: EFAULT, in and out */
	h = rt_next(fd, msg, RT_KADDR_IN, 0, 0);
	r[0] = (struct fusd_ioctl_range){ kaddr, 8 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == 0, "retry in kernel memory");
	h = rt_next(fd, msg, RT_KADDR_OUT, 0, 0);
	r[0] = (struct fusd_ioctl_range){ 0xffffffff81000000ULL, 8 };
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 0, 1, r, 1) == 0, "retry out to the kernel");
	h = rt_next(fd, msg, RT_KADDR_OUT, 0, 8);
	CHECK(ft_reply(fd, h->id, 0, out, 8) == 0, "reply to be copied to the kernel");

	/* retries are bounded */
	r[0] = (struct fusd_ioctl_range){ h->ioctl_arg, 1 };
	for (i = 0; i <= FUSD_RETRY_ROUNDS_MAX; i++) {
		h = rt_next(fd, msg, RT_FOREVER, i ? 1 : 0, 0);
		CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == 0, "retry %d", i);
	}

	/* only ioctls retry */
	CHECK(read(fd, msg, FUSD_MIN_READ_BUFFER) == sizeof(*h) && h->opcode == FUSD_OP_READ, "READ");
	CHECK(rt_retry(fd, h->id, 0, FUSD_REPLY_RETRY, 1, 0, r, 1) == -EINVAL, "retry of a READ");
	CHECK(ft_reply(fd, h->id, 0, NULL, 0) == 0, "READ reply");
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "caller: status %#x", st);
	close(fd);
	free(msg);
}

/* ---- mmap ---- */

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/* The byte at @p (written first with @write), or -1 if the access got SIGBUS. */
static int touch(volatile char *p, int write)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int v;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1)) {
		v = -1;
	} else {
		if (write)
			*p = *p;
		v = (unsigned char)*p;
	}
	sigaction(SIGBUS, &old, NULL);
	return v;
}

/* 64 bytes of the daemon's memfd at @off, as the daemon reads them. */
static void shm_peek(int fd, __u64 off, char *out)
{
	struct ft_echo e = { { 0 } };

	memcpy(e.b, &off, sizeof(off));
	if (ioctl(fd, FT_IOC_PEEK, &e))
		memset(e.b, 0, sizeof(e.b));
	memcpy(out, e.b, sizeof(e.b));
	out[63] = 0;
}

/* The daemon writes @text into its memfd at @off. */
static int shm_poke(int fd, __u64 off, const char *text)
{
	struct ft_echo e = { { 0 } };

	memcpy(e.b, &off, sizeof(off));
	strncpy((char *)e.b + 8, text, 55);
	return ioctl(fd, FT_IOC_POKE, &e);
}

static void *map_pages(int fd, long page, long pages, int prot, int flags)
{
	long ps = sysconf(_SC_PAGESIZE);

	return mmap(NULL, pages * ps, prot, flags, fd, page * ps);
}

static int map_as_nobody(void *dev)
{
	int fd = open_node(dev, O_RDWR);
	char *m = fd < 0 ? MAP_FAILED : map_pages(fd, 1, 1, PROT_READ | PROT_WRITE, MAP_SHARED);

	return m != MAP_FAILED && !strcmp(m, "shm page 1") ? 0 : 1;
}

/* A daemon of protocol 1.1 never gets FUSD_OP_MMAP: its callers' mmap() fails with ENODEV. */
static void mmap_old_daemon(void)
{
	const char *dev = "fusd-t-shm-old";
	struct fusd_hello h = { .major = FUSD_VERSION_MAJOR, .minor = 1 };
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *hdr = (struct fusd_req_header *)msg;
	int c = open(FUSD_CONTROL_DEVICE, O_RDWR | O_CLOEXEC), st = -1;
	pid_t child;

	if (c < 0 || ioctl(c, FUSD_IOC_HELLO, &h) || ft_register(c, dev, 0666, 0, 0, NULL)) {
		CHECK(0, "old-protocol channel: %s", strerror(errno));
		goto out;
	}
	child = fork();
	if (child == 0) {
		int fd = open_node(dev, O_RDWR);

		_exit(fd >= 0 && map_pages(fd, 0, 1, PROT_READ, MAP_SHARED) == MAP_FAILED &&
		      errno == ENODEV ? 0 : 1);
	}
	while (read(c, msg, FUSD_MIN_READ_BUFFER) > 0 && hdr->opcode != FUSD_OP_RELEASE)
		if (hdr->opcode == FUSD_OP_OPEN)
			ft_reply(c, hdr->id, 0, NULL, 0);
		else if (!(hdr->id & FUSD_ID_NOREPLY))
			ft_reply(c, hdr->id, -EPROTO, NULL, 0);
	waitpid(child, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "mmap on a 1.1 daemon's node: ENODEV (%#x)", st);
out:
	if (c >= 0)
		close(c);
	free(msg);
}

static void t_mmap(void)
{
	static const struct { int k, prot, err; } bad[] = {
		{ 0, PROT_READ, EBADF }, { 1, PROT_READ, EBADF }, { 2, PROT_READ, ENODEV },
		{ 3, PROT_READ | PROT_WRITE, EACCES }, { 4, PROT_READ, EINVAL },
		{ 5, PROT_READ, EINVAL }, { 6, PROT_READ, EINVAL }, { 7, PROT_READ, EINVAL },
		{ 8, PROT_READ, EPERM }, { 9, PROT_READ, EPERM },
		{ 10, PROT_READ, EINVAL },
	};
	const char *dev = "fusd-t-shm";
	const int rw = PROT_READ | PROT_WRITE;
	long ps = sysconf(_SC_PAGESIZE);
	pid_t d = ft_spawn(dev, FT_SHM, 0666, NULL), child;
	int fd = open_node(dev, O_RDWR), ro = open_node(dev, O_RDONLY), c, st;
	char got[64], *m, *p;

	m = map_pages(fd, 0, FT_SHM_PAGES, rw, MAP_SHARED);
	CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
	if (m == MAP_FAILED)
		goto out;
	CHECK(!strcmp(m, "shm page 0") && !strcmp(m + 3 * ps, "shm page 3"), "the driver's data: %s",
	      m);
	CHECK(live("maps") == 1, "live_maps %ld", live("maps"));
	strcpy(m + ps + 100, "from the caller");
	shm_peek(fd, ps + 100, got);
	CHECK(!strcmp(got, "from the caller"), "the driver sees the caller's write: %s", got);
	CHECK(shm_poke(fd, 2 * ps + 100, "from the driver") == 0 &&
	      !strcmp(m + 2 * ps + 100, "from the driver"), "the caller sees the driver's write: %s",
	      m + 2 * ps + 100);
	errno = 0;
	CHECK(ioctl(fd, FT_IOC_SHM_CTL, 2) == -1 && errno == EBUSY,
	      "no write seal while mapped writable: %s", strerror(errno));
	CHECK(mremap(m, FT_SHM_PAGES * ps, (FT_SHM_PAGES + 1) * ps, MREMAP_MAYMOVE) == MAP_FAILED,
	      "mremap cannot grow a mapping");
	CHECK(munmap(m + ps, ps) == 0 && m[0] == 's' && m[2 * ps] == 's' && live("maps") == 1,
	      "a split mapping");
	munmap(m, FT_SHM_PAGES * ps);
	CHECK(live("maps") == 0, "live_maps after munmap: %ld", live("maps"));

	m = map_pages(fd, 0, 3, PROT_READ, MAP_SHARED);
	CHECK(m != MAP_FAILED && touch(m + ps, 0) == 's', "mapped: %s", strerror(errno));
	if (m != MAP_FAILED) {
		CHECK(ioctl(fd, FT_IOC_SHM_CTL, 1) == 0 && touch(m, 0) == 's' &&
		      touch(m + ps, 0) == -1 && touch(m + 2 * ps, 0) == -1,
		      "the driver shrank its memfd: SIGBUS past its end");
		CHECK(ioctl(fd, FT_IOC_SHM_CTL, 3) == 0 && touch(m + 2 * ps, 0) == 's',
		      "grown again");
		munmap(m, 3 * ps);
	}

	p = map_pages(fd, 0, 1, rw, MAP_PRIVATE);
	CHECK(p != MAP_FAILED, "MAP_PRIVATE: %s", strerror(errno));
	if (p != MAP_FAILED) {
		CHECK(shm_poke(fd, 16, "driver") == 0 && !strcmp(p + 16, "driver"),
		      "MAP_PRIVATE sees the driver's writes before its own");
		strcpy(p + 16, "private");
		shm_peek(fd, 16, got);
		CHECK(!strcmp(got, "driver") && !strcmp(p + 16, "private"),
		      "MAP_PRIVATE writes stay private: %s", got);
		munmap(p, ps);
	}
	p = map_pages(fd, 2, 1, PROT_READ, MAP_SHARED);
	CHECK(p != MAP_FAILED && !strcmp(p, "shm page 2"), "an offset");
	if (p != MAP_FAILED)
		munmap(p, ps);

	CHECK(map_pages(ro, 0, 1, rw, MAP_SHARED) == MAP_FAILED && errno == EACCES,
	      "PROT_WRITE, MAP_SHARED on an O_RDONLY file: EACCES");
	p = map_pages(ro, 0, 1, PROT_READ, MAP_SHARED);
	CHECK(p != MAP_FAILED && !strcmp(p, "shm page 0"), "PROT_READ on an O_RDONLY file");
	if (p != MAP_FAILED) {
		CHECK(mprotect(p, ps, rw) == -1 && errno == EACCES, "... cannot become writable");
		munmap(p, ps);
	}

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = map_pages(fd, FT_MAP_BAD + bad[i].k, 1, bad[i].prot, MAP_SHARED);
		CHECK(p == MAP_FAILED && errno == bad[i].err, "bad answer %d: %s, wanted %s", bad[i].k,
		      p == MAP_FAILED ? strerror(errno) : "mapped", strerror(bad[i].err));
		if (p != MAP_FAILED)
			munmap(p, ps);
	}
	for (int k = 3; k <= 9; k += 6) {	/* read-only and sealed memory: read-only mappings */
		p = map_pages(k == 3 ? fd : ro, FT_MAP_BAD + k, 1, PROT_READ, MAP_SHARED);
		CHECK(p != MAP_FAILED, "bad answer %d, PROT_READ: %s", k, strerror(errno));
		if (p != MAP_FAILED) {
			CHECK(mprotect(p, ps, rw) == -1 && errno == EACCES,
			      "bad answer %d: never writable", k);
			munmap(p, ps);
		}
	}
	CHECK(map_pages(fd, 0, FT_SHM_PAGES + 1, PROT_READ, MAP_SHARED) == MAP_FAILED &&
	      errno == ENXIO, "longer than the memfd: ENXIO");
	CHECK(map_pages(fd, FT_SHM_PAGES, 1, PROT_READ, MAP_SHARED) == MAP_FAILED && errno == ENXIO,
	      "past the memfd: ENXIO");

	/* the driver closes its memfd: the mapping keeps that memory, a new one gets the new */
	m = map_pages(fd, 0, 1, rw, MAP_SHARED);
	CHECK(m != MAP_FAILED && ioctl(fd, FT_IOC_RENEW) == 0, "renew: %s", strerror(errno));
	if (m != MAP_FAILED) {
		strcpy(m, "old memory");
		p = map_pages(fd, 0, 1, PROT_READ, MAP_SHARED);
		CHECK(p != MAP_FAILED && !strcmp(p, "shm page 0") && !strcmp(m, "old memory"),
		      "after the driver closed its memfd");
		if (p != MAP_FAILED)
			munmap(p, ps);
		munmap(m, ps);
	}
	CHECK(live("maps") == 0, "live_maps %ld", live("maps"));
	CHECK(as_user(65534, 65534, map_as_nobody, (void *)dev) == 0, "mmap as nobody");

	/* the mapping outlives its descriptor, is inherited, and is revoked by rm --force */
	c = open_node(dev, O_RDWR);
	m = c < 0 ? MAP_FAILED : map_pages(c, 0, 2, rw, MAP_SHARED);
	if (c >= 0)
		close(c);
	CHECK(m != MAP_FAILED && touch(m, 1) == 's', "mapped after close()");
	if (m == MAP_FAILED)
		goto out;
	child = fork();
	if (child == 0)
		_exit(touch(m + ps, 1) == 's' ? 0 : 1);
	CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a forked child reads the mapping");
	c = ft_channel();
	CHECK(c >= 0 && ft_force_unregister(c, dev) == 0, "rm --force");
	if (c >= 0)
		close(c);
	CHECK(touch(m, 0) == -1 && touch(m + ps, 1) == -1, "SIGBUS after rm --force");
	CHECK(map_pages(fd, 0, 1, PROT_READ, MAP_SHARED) == MAP_FAILED && errno == ENODEV,
	      "no new mmap: %s", strerror(errno));
	munmap(m, 2 * ps);
	CHECK(live("maps") == 0, "live_maps %ld", live("maps"));
	close(fd);
	close(ro);
	fd = ro = -1;
	ft_reap(d);

	/* the daemon dies while mapped */
	d = ft_spawn(dev, FT_SHM, 0666, NULL);
	fd = open_node(dev, O_RDWR);
	m = fd < 0 ? MAP_FAILED : map_pages(fd, 0, 1, rw, MAP_SHARED);
	CHECK(m != MAP_FAILED && touch(m, 1) == 's', "mapped");
	ft_reap(d);
	d = -1;
	if (m != MAP_FAILED) {
		CHECK(touch(m, 0) == -1, "SIGBUS after the daemon's death");
		munmap(m, ps);
	}
	mmap_old_daemon();
out:
	if (fd >= 0)
		close(fd);
	if (ro >= 0)
		close(ro);
	if (d > 0)
		ft_reap(d);
	CHECK(live("maps") == 0, "live_maps %ld", live("maps"));
}

/* ---- devtmpfs stalls ---- */

struct stall_arg {
	int fd;			/* getdents: the directory; register: the channel */
	void *buf;
	long result;
	int err;
	pid_t tid;
};

static void *getdents_main(void *p)
{
	struct stall_arg *a = p;

	a->tid = gettid();
	a->result = syscall(SYS_getdents64, a->fd, a->buf, getpagesize());
	a->err = errno;
	return NULL;
}

static void *register_main(void *p)
{
	struct stall_arg *a = p;

	__atomic_store_n(&a->tid, gettid(), __ATOMIC_RELEASE);
	a->result = ft_register(a->fd, "fusd-t-stall/n", 0666, 0, 0, NULL);
	return NULL;
}

/*
 * A registration whose node devtmpfs cannot make yet (its directory is held by a getdents()
 * that faults on a userfaultfd page) waits, uninterruptibly, in device_add(); the opens of other
 * fusd devices must not wait with it.
 */
static void t_devtmpfs_stall(void)
{
	const char *other = "fusd-t-stall-other";
	pid_t d = ft_spawn(other, FT_ECHO, 0666, NULL), c;
	struct uffdio_api api = { .api = UFFD_API };
	struct stall_arg g = { 0 }, r = { 0 };
	struct uffdio_register ureg;
	pthread_t gt, rt;
	int uffd, rp[2], ps = getpagesize(), in_d = 0;
	struct pollfd pf;
	char line[64];

	CHECK(mkdir("/dev/fusd-t-stall", 0755) == 0 || errno == EEXIST, "mkdir");
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	CHECK(uffd >= 0 && ioctl(uffd, UFFDIO_API, &api) == 0, "userfaultfd");
	g.buf = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(&ureg, 0, sizeof(ureg));
	ureg.range.start = (unsigned long)g.buf;
	ureg.range.len = ps;
	ureg.mode = UFFDIO_REGISTER_MODE_MISSING;
	CHECK(ioctl(uffd, UFFDIO_REGISTER, &ureg) == 0, "UFFDIO_REGISTER");
	g.fd = open("/dev/fusd-t-stall", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(g.fd >= 0, "open the directory");
	CHECK(pthread_create(&gt, NULL, getdents_main, &g) == 0, "getdents thread");
	pf = (struct pollfd){ uffd, POLLIN, 0 };
	CHECK(poll(&pf, 1, 3000) == 1, "getdents never faulted");

	r.fd = ft_channel();
	CHECK(pthread_create(&rt, NULL, register_main, &r) == 0, "register thread");
	for (double end = ft_now() + 5; !in_d && ft_now() < end; ft_msleep(5)) {
		pid_t tid = __atomic_load_n(&r.tid, __ATOMIC_ACQUIRE);

		in_d = tid && task_state(getpid(), tid) == 'D';
	}
	CHECK(in_d, "the registration never waited for devtmpfs");

	CHECK(pipe2(rp, O_CLOEXEC) == 0, "pipe");
	c = fork();
	if (c == 0) {
		int f = open_node(other, O_RDWR), n;

		n = snprintf(line, sizeof(line), "%d\n", f < 0 ? errno : 0);
		_exit(write(rp[1], line, n) == n ? 0 : 1);
	}
	CHECK(ft_event_wait(rp[0], line, sizeof(line), 5000) == 0 && atoi(line) == 0,
	      "an open of another device waited for devtmpfs ('%s')", line);

	{
		/* resolved here, not by close(): the child may still hold the descriptor */
		struct uffdio_zeropage z = { .range = { (unsigned long)g.buf, ps } };

		CHECK(ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0, "UFFDIO_ZEROPAGE");
	}
	close(uffd);
	pthread_join(gt, NULL);
	pthread_join(rt, NULL);
	CHECK(g.result > 0, "getdents: %ld errno %d", g.result, g.err);
	CHECK(r.result == 0, "the stalled registration: %ld", r.result);
	CHECK(node_exists("fusd-t-stall/n"), "its node");
	close(r.fd);
	CHECK(wait_gone("fusd-t-stall/n", 3000), "node left");
	close(g.fd);
	rmdir("/dev/fusd-t-stall");
	waitpid(c, NULL, 0);
	ft_reap(d);
	munmap(g.buf, ps);
	close(rp[0]);
	close(rp[1]);
}

/* ---- messages the daemon could not take ---- */

/* The next message within @ms: its size, or -errno (-ETIMEDOUT). */
static int msg_within(int fd, void *buf, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	n = read(fd, buf, FUSD_MIN_READ_BUFFER);
	return n < 0 ? -errno : (int)n;
}

/* A read of the channel whose copy-out faults on a userfaultfd page, then fails. */
#define STUCK_READ_LEN	((FUSD_MIN_READ_BUFFER + 65535) & ~(size_t)65535)	/* whole pages */
struct stuck_read {
	int fd, uffd;
	unsigned char *page;
	pthread_t th;
	ssize_t n;
	int err;
};

static void *stuck_read_main(void *p)
{
	struct stuck_read *s = p;

	s->n = read(s->fd, s->page, FUSD_MIN_READ_BUFFER);
	s->err = errno;
	return NULL;
}

/* Start it; returns once the read has taken a message and waits in its copy-out. */
static int stuck_read_start(struct stuck_read *s, int fd)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register ureg;
	struct pollfd pf;
	size_t len = STUCK_READ_LEN;

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0 || ioctl(s->uffd, UFFDIO_API, &api))
		return -1;
	s->page = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(&ureg, 0, sizeof(ureg));
	ureg.range.start = (unsigned long)s->page;
	ureg.range.len = len;
	ureg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (s->page == MAP_FAILED || ioctl(s->uffd, UFFDIO_REGISTER, &ureg))
		return -1;
	if (pthread_create(&s->th, NULL, stuck_read_main, s))
		return -1;
	pf = (struct pollfd){ s->uffd, POLLIN, 0 };
	return poll(&pf, 1, 3000) == 1 ? 0 : -1;
}

/* Unmap its buffer and let the fault go on: the read fails with EFAULT. */
static int stuck_read_fail(struct stuck_read *s)
{
	munmap(s->page, STUCK_READ_LEN);
	close(s->uffd);
	pthread_join(s->th, NULL);
	return s->n == -1 && s->err == EFAULT ? 0 : -1;
}

static void *blocking_read_main(void *p)
{
	struct stall_arg *a = p;

	__atomic_store_n(&a->tid, gettid(), __ATOMIC_RELEASE);
	a->result = read(a->fd, a->buf, FUSD_MIN_READ_BUFFER);
	a->err = errno;
	__atomic_store_n(&a->tid, -1, __ATOMIC_RELEASE);
	return NULL;
}

/* A message put back after a failed copy-out wakes a reader that went to sleep meanwhile. */
static void t_untake(void)
{
	const char *dev = "fusd-t-untake";
	struct stall_arg b = { 0 };
	struct fusd_req_header *h;
	struct stuck_read s;
	int fd = ft_channel(), asleep = 0;
	pthread_t bt;

	b.buf = malloc(FUSD_MIN_READ_BUFFER);
	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	if (fork() == 0) {		/* the caller: its OPEN */
		int c = open_node(dev, O_RDWR);

		_exit(c < 0 ? 1 : close(c));
	}
	/* its OPEN: taken by a read that fails, while a second reader sleeps */
	for (double end = ft_now() + 3; ft_now() < end; ft_msleep(2)) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, 0) == 1)
			break;
	}
	CHECK(stuck_read_start(&s, fd) == 0, "stuck read");
	b.fd = fd;
	CHECK(pthread_create(&bt, NULL, blocking_read_main, &b) == 0, "second reader");
	for (double end = ft_now() + 3; !asleep && ft_now() < end; ft_msleep(2)) {
		pid_t tid = __atomic_load_n(&b.tid, __ATOMIC_ACQUIRE);

		asleep = tid > 0 && task_state(getpid(), tid) == 'S';
	}
	CHECK(asleep, "the second reader never slept");
	CHECK(stuck_read_fail(&s) == 0, "the stuck read: %zd errno %d", s.n, s.err);
	for (double end = ft_now() + 3; ft_now() < end; ft_msleep(2))
		if (__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE) == -1)
			break;
	if (__atomic_load_n(&b.tid, __ATOMIC_ACQUIRE) != -1) {
		CHECK(0, "the OPEN put back woke no reader");
		fflush(stdout);
		_exit(1);		/* the sleeping reader: ended with the test's process */
	}
	pthread_join(bt, NULL);
	h = (struct fusd_req_header *)b.buf;
	CHECK(b.result > 0 && h->opcode == FUSD_OP_OPEN, "the second reader: %ld op %u",
	      b.result, h->opcode);
	CHECK(ft_reply_open(fd, h->id, 0, 0, 0) == 0, "OPEN reply");
	wait(NULL);
	close(fd);
	free(b.buf);
}

/* A RELEASE taken back after its device went (UNREGISTER) is dropped, not re-queued. */
static void t_untake_release(void)
{
	const char *dev = "fusd-t-untake-rel";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	struct stuck_read s;
	int fd = ft_channel();
	__u64 id = 0;

	CHECK(ft_register(fd, dev, 0666, 0, 0, &id) == 0, "register");
	if (fork() == 0) {		/* the caller: open, close */
		int c = open_node(dev, O_RDWR);

		_exit(c < 0 ? 1 : close(c));
	}
	CHECK(msg_within(fd, msg, 3000) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN");
	CHECK(ft_reply_open(fd, h->id, 0, 0, 0) == 0, "OPEN reply");
	for (double end = ft_now() + 3; ft_now() < end; ft_msleep(2)) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, 0) == 1)
			break;
	}
	CHECK(stuck_read_start(&s, fd) == 0, "stuck read of the RELEASE");
	CHECK(ft_unregister(fd, id) == 0, "unregister");
	CHECK(stuck_read_fail(&s) == 0, "the stuck read: %zd errno %d", s.n, s.err);
	CHECK(msg_within(fd, msg, 300) == -ETIMEDOUT, "a message after UNREGISTER: op %u",
	      h->opcode);
	wait(NULL);
	close(fd);
	free(msg);
}

/* An INTERRUPT the daemon's buffer could not take is read again. */
static void t_interrupt_efault(void)
{
	const char *dev = "fusd-t-intr-efault";
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	int fd = ft_channel();
	__u64 read_id;
	pid_t c;

	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "register");
	c = fork();
	if (c == 0) {
		struct sigaction sa = { .sa_handler = on_signal };
		int f = open_node(dev, O_RDWR);
		char b;

		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
		_exit(f >= 0 && read(f, &b, 1) < 0 && errno == EINTR ? 0 : 1);
	}
	CHECK(msg_within(fd, msg, 3000) > 0 && h->opcode == FUSD_OP_OPEN, "OPEN");
	CHECK(ft_reply_open(fd, h->id, 0, 0, 0) == 0, "OPEN reply");
	CHECK(msg_within(fd, msg, 3000) > 0 && h->opcode == FUSD_OP_READ, "READ");
	read_id = h->id;
	kill(c, SIGUSR1);
	{
		struct pollfd p = { fd, POLLIN, 0 };

		CHECK(poll(&p, 1, 3000) == 1, "no INTERRUPT queued");
	}
	CHECK_ERR(read(fd, bad_ptr, FUSD_MIN_READ_BUFFER), EFAULT);
	CHECK(msg_within(fd, msg, 1000) > 0 && h->opcode == FUSD_OP_INTERRUPT && h->id == read_id,
	      "the INTERRUPT again after EFAULT: op %u", h->opcode);
	waitpid(c, NULL, 0);
	close(fd);
	free(msg);
}

/* A REGISTER whose answer cannot be written back makes nothing. */
static void t_register_efault(void)
{
	const char *dev = "fusd-t-reg-efault";
	int fd = ft_channel(), ps = getpagesize();
	struct fusd_register *r = mmap(NULL, ps, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	memset(r, 0, sizeof(*r));
	strcpy(r->name, dev);
	r->mode = 0666;
	mprotect(r, ps, PROT_READ);
	CHECK_ERR(ioctl(fd, FUSD_IOC_REGISTER, r), EFAULT);
	CHECK(!node_exists(dev), "a node the daemon has no id for");
	CHECK(sysfs_num(dev, "dev_id") < 0, "a sysfs entry the daemon has no id for");
	CHECK(ft_register(fd, dev, 0666, 0, 0, NULL) == 0, "the name is free");
	munmap(r, ps);
	close(fd);
}

static unsigned long long rng_state = 88172645463325252ULL;

static unsigned long long rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fuzz_caller(const char *dev, unsigned int seed)
{
	static unsigned char buf[300000];
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: EINTR */
	int fd = -1;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	rng_state ^= seed * 0x9E3779B97F4A7C15ULL;
	for (;;) {
		unsigned int op = rnd() % 16;

		if (fd < 0 || op == 0) {
			if (fd >= 0)
				close(fd);
			fd = open_node(dev, (rnd() & 1 ? O_NONBLOCK : 0) | O_RDWR);
			if (fd < 0) {
				ft_msleep(1);
				continue;
			}
		}
		switch (op) {
		case 1: case 2: case 3:
			if (read(fd, buf, rnd() % 4 ? rnd() % 64 : rnd() % sizeof(buf)) < 0) {}
			break;
		case 4: case 5: case 6:
			if (write(fd, buf, rnd() % 4 ? rnd() % 64 : rnd() % sizeof(buf)) < 0) {}
			break;
		case 7:
			if (read(fd, (void *)(rnd() & 0xffffffffffffULL), 100) < 0) {}
			break;
		case 8: case 9: case 10: case 11: {
			static const unsigned int legacy[] = { TCGETS, TCSETS, TIOCMGET, TIOCINQ,
							       TIOCGSERIAL, 0x0705, 0x0707, 0x0720,
							       0x5400, 0x7777 };
			unsigned int cmd = rnd() % 4 ? _IOC(rnd() % 4, 'E', rnd() % 16, rnd() % 16384) :
					   legacy[rnd() % 10];
			void *arg = rnd() % 8 ? (void *)buf : (void *)(rnd() & 0xffffffffffffULL);

			if (ioctl(fd, rnd() % 8 ? cmd : (unsigned int)rnd(), arg) < 0) {}
			break;
		}
		case 12: {
			struct pollfd p = { fd, POLLIN | POLLOUT, 0 };

			poll(&p, 1, 0);
			break;
		}
		case 13: case 14: case 15: {	/* mmap, touch every page (SIGBUS caught), unmap */
			long pages = rnd() % 3 + 1, ps = sysconf(_SC_PAGESIZE);
			int w = rnd() % 2;
			char *m = map_pages(fd, (long)(rnd() % 4 ? rnd() % 3 : rnd() % 1000),
					    pages, PROT_READ | (w ? PROT_WRITE : 0),
					    rnd() % 4 ? MAP_SHARED : MAP_PRIVATE);

			if (m == MAP_FAILED)
				break;
			for (long i = 0; i < pages; i++)
				touch(m + i * ps, w);
			munmap(m, pages * ps);
			break;
		}
		default:
			if (ioctl(fd, FT_IOC_PLAIN, 1) < 0) {}
		}
	}
}

struct fuzz_req {
	__u64 id, dev_id, file_id;
	__u32 opcode, len, reply_max;
	__u64 arg;		/* IOCTL: the caller's argument */
};

static int fuzz_ready_fd = -1;	/* an eventfd that is always readable */
static unsigned long fuzz_retries_taken;	/* FUSD_REPLY_RETRY messages the module accepted */
static int fuzz_shm = -1;	/* a memfd of two pages, for MMAP replies */
static int fuzz_ready_ep = -1;	/* an epoll set with it: watched across exchanges */

/* Send @msg by FUSD_IOC_EXCHANGE with mutated fields; returns the size of what it read. */
static ssize_t fuzz_exchange(int fd, const void *msg, size_t size, unsigned char *rx, int *err)
{
	struct fusd_exchange ex;
	int r;

	memset(&ex, 0, sizeof(ex));
	ex.msg = rnd() % 32 ? (uintptr_t)msg : rnd() % 2 ? 0 : rnd() & 0xffffffffffffULL;
	ex.msg_size = rnd() % 32 ? size : (__u32)rnd();
	ex.buf = rnd() % 32 ? (uintptr_t)rx : rnd() & 0xffffffffffffULL;
	ex.buf_size = rnd() % 32 ? FUSD_MIN_READ_BUFFER : (__u32)rnd();
	ex.wake_fd = -1;
	if (rnd() % 4 == 0) {	/* a wait that always ends: wake_fd is ready */
		ex.flags = FUSD_EXCHANGE_WAIT;
		ex.wake_fd = rnd() % 2 ? fuzz_ready_fd : fuzz_ready_ep;
	}
	if (rnd() % 32 == 0)
		ex.flags |= rnd() % 2 ? 2 : (__u32)rnd() & ~FUSD_EXCHANGE_WAIT;
	if (rnd() % 32 == 0 && !ex.flags)	/* never a wait that might not end */
		ex.wake_fd = rnd() % 2 ? (int)(rnd() % 64) - 2 : (int)rnd();
	if (rnd() % 64 == 0)
		ex.padding = 1;
	if (rnd() % 64 == 0)
		ex.reserved = rnd();
	r = ioctl(fd, FUSD_IOC_EXCHANGE, rnd() % 128 ? (void *)&ex : bad_ptr);
	*err = r < 0 ? errno : ex.msg && ex.msg_result < 0 ? -ex.msg_result : 0;
	return r > 0 ? r : 0;
}

/* A reply to an MMAP request: mostly well formed, with hostile descriptors and offsets. */
static size_t fuzz_mmap_reply(struct fusd_reply *rep, unsigned char *payload, int chan)
{
	const int fds[] = { fuzz_shm, fuzz_shm, -1, chan, fuzz_ready_fd, 1000, (int)rnd(), 0 };
	const __u64 offsets[] = { 0, 4096, 8192, 1, 4095, -4096ULL, 1ULL << 62, rnd() };
	struct fusd_mmap_reply mr = { 0 };

	mr.fd = fds[rnd() % 8];
	mr.offset = offsets[rnd() % 8];
	mr.flags = rnd() % 16 ? 0 : (__u32)rnd();
	memcpy(payload, &mr, sizeof(mr));
	rep->result = rnd() % 8 ? 0 : rnd() % 2 ? 1 : -EIO;
	rep->flags = 0;
	rep->poll_mask = 0;
	return sizeof(*rep) + (rnd() % 8 ? sizeof(mr) : rnd() % 32);
}

/*
 * A FUSD_REPLY_RETRY to @r of hostile ranges: around the caller's argument (valid), kernel
 * addresses, NULL, the top of the address space, lengths of 0, huge or at the limits,
 * overlapping, and counts beyond the limit or not matching the ranges given.  Returns its size.
 */
static size_t fuzz_retry(const struct fuzz_req *r, unsigned char *buf)
{
	static const __u64 addrs[] = { 0, 16, 0xffff888000000000ULL, 0xffffffff81000000ULL,
				       0x7ffffffff000ULL, 0x800000000000ULL, ~0ULL - 7, ~0ULL };
	static const __u64 lens[] = { 0, 1, 8, 4096, FUSD_CHUNK_MAX, FUSD_CHUNK_MAX + 1,
				      0x100000000ULL, ~0ULL };
	struct fusd_reply *rep = (struct fusd_reply *)buf;
	struct fusd_ioctl_retry *list = (struct fusd_ioctl_retry *)(rep + 1);
	struct fusd_ioctl_range *range = (struct fusd_ioctl_range *)(list + 1);
	__u32 n = rnd() % 8 ? 1 + rnd() % 4 : rnd() % (FUSD_RETRY_RANGES_MAX + 4);
	size_t size;

	for (__u32 i = 0; i < n; i++) {
		range[i].addr = rnd() % 4 ? r->arg + rnd() % 64 : addrs[rnd() % 8];
		range[i].len = rnd() % 4 ? 1 + rnd() % 300 : lens[rnd() % 8];
	}
	list->in_count = rnd() % (n + 1);
	list->out_count = n - list->in_count;
	if (rnd() % 16 == 0)
		list->in_count += rnd() % 3;
	if (rnd() % 32 == 0)
		list->out_count = (__u32)rnd();
	size = sizeof(*rep) + sizeof(*list) + n * sizeof(*range);
	memset(rep, 0, sizeof(*rep));
	rep->size = size;
	rep->type = FUSD_MSG_REPLY;
	rep->id = r->id;
	rep->flags = rnd() % 16 ? FUSD_REPLY_RETRY : (__u32)rnd() % 4;
	rep->result = rnd() % 16 ? 0 : (int)rnd();
	return size;
}

/*
 * One mutated message on the channel, built around a real request when there is one, sent
 * by write() or by FUSD_IOC_EXCHANGE; returns the size of a request the exchange read into
 * @rx (0: none).
 */
static unsigned char *fuzz_edge;	/* a page followed by an unmapped one */
static unsigned long fuzz_short_msgs, fuzz_edge_msgs, fuzz_waits[4];	/* cases reached */

static ssize_t fuzz_write(int fd, const struct fuzz_req *r, int have, unsigned char *buf,
			  unsigned char *rx, unsigned long *counts)
{
	static const int results[] = { 0, 1, -1, -4095, -4096, -512, 2147483647, -2147483647 - 1,
				       10, 63, 64, 131072, 131073 };
	struct fusd_reply *rep = (struct fusd_reply *)buf;
	struct fusd_ready *rdy = (struct fusd_ready *)buf;
	size_t size;
	ssize_t n;

	memset(buf, 0, 64);
	if (have && r->opcode == FUSD_OP_IOCTL && rnd() % 3 == 0) {
		size = fuzz_retry(r, buf);
		if (rnd() % 2) {		/* sent whole, to count what gets through */
			n = write(fd, buf, size);
			fuzz_retries_taken += n == (ssize_t)size;
			counts[n < 0 ? (errno < 200 ? errno : 199) : 0]++;
			return 0;
		}
	} else if (rnd() % 4 == 0) {
		rdy->size = sizeof(*rdy);
		rdy->type = FUSD_MSG_READY;
		rdy->dev_id = have ? r->dev_id + (rnd() % 4 == 0) : rnd() % 50;
		rdy->file_id = have ? r->file_id + (rnd() % 4 == 0) : rnd() % 5000;
		rdy->mask = rnd() % 2 ? rnd() % 32 : (__u32)rnd();
		rdy->padding = rnd() % 16 == 0;
		size = sizeof(*rdy);
	} else {
		rep->type = FUSD_MSG_REPLY;
		rep->id = have && rnd() % 4 ? r->id : rnd() % 3 == 0 ? rnd() : rnd() % 100000;
		if (rnd() % 8 == 0)
			rep->id |= FUSD_ID_NOREPLY;
		rep->result = rnd() % 2 ? results[rnd() % (sizeof(results) / sizeof(results[0]))] :
				(int)(have ? r->len : rnd());
		rep->flags = rnd() % 4 == 0 ? (__u32)rnd() % 4 : 0;
		rep->poll_mask = rnd() % 4 == 0 ? (__u32)rnd() % 64 : 0;
		rep->padding = rnd() % 32 == 0;
		size = sizeof(*rep) + (rnd() % 2 ? (have ? r->len : 0) : rnd() % 100);
		if (rnd() % 64 == 0)
			size = rnd() % (sizeof(*rep) + FUSD_CHUNK_MAX + 10);
		if (have && r->opcode == FUSD_OP_MMAP && rnd() % 2)
			size = fuzz_mmap_reply(rep, buf + sizeof(*rep), fd);
	}
	if (rnd() % 8 == 0)
		buf[rnd() % 32] = rnd();		/* flip a byte of the header */
	*(__u32 *)buf = rnd() % 16 == 0 ? (__u32)rnd() : (__u32)size;
	if (rnd() % 32 == 0)
		size = rnd() % 24;			/* truncated */
	if (rnd() % 32 == 0) {			/* short, and its size field agrees */
		size = sizeof(__u32) + rnd() % (sizeof(*rep) - sizeof(__u32));
		*(__u32 *)buf = size;
		fuzz_short_msgs++;
	}
	if (rnd() % 16 == 0 && size > sizeof(*rep) && size <= (size_t)getpagesize()) {
		/* the header readable, the payload on an unmapped page */
		unsigned char *at = fuzz_edge + getpagesize() - sizeof(*rep);

		memcpy(at, buf, sizeof(*rep));
		buf = at;
		fuzz_edge_msgs++;
	}
	if (rnd() % 4 == 0) {
		int err;

		n = fuzz_exchange(fd, buf, size, rx, &err);
		counts[err < 200 ? err : 199]++;
		return n;
	}
	n = write(fd, buf, size);
	counts[n < 0 ? (errno < 200 ? errno : 199) : 0]++;
	return 0;
}

static void fuzz_ioctl(int fd, unsigned char *buf)
{
	static const unsigned int cmds[] = { FUSD_IOC_HELLO, FUSD_IOC_REGISTER, FUSD_IOC_UNREGISTER,
					     FUSD_IOC_FORCE_UNREGISTER, FUSD_IOC_TRACE };
	unsigned int cmd = cmds[rnd() % 5];
	struct fusd_register *reg = (struct fusd_register *)buf;
	void *arg = buf;

	if (rnd() % 4 == 0)
		cmd = _IOC(rnd() % 4, FUSD_IOC_MAGIC, rnd() % 8, rnd() % 256);
	if (rnd() % 16 == 0)
		arg = (void *)(rnd() % 2 ? 0UL : rnd() & 0xffffffffffffULL);
	for (int i = 0; i < 128; i++)
		buf[i] = rnd() % 3 == 0 ? rnd() : 0;
	if (cmd == FUSD_IOC_REGISTER && rnd() % 2) {
		/* a name that is often valid: the device is made and then unregistered */
		static const char cs[] = "abcxyz019._-+:@,/ !.\x01";

		memset(reg, 0, sizeof(*reg));
		strcpy(reg->name, "fusd-f-");
		for (int i = 7; i < 7 + (int)(rnd() % 12); i++)
			reg->name[i] = cs[rnd() % (sizeof(cs) - 1)];
		reg->mode = rnd() % 4 ? 0600 : (__u32)rnd();
		reg->uid = rnd() % 4 ? 0 : (__u32)rnd();
		reg->gid = rnd() % 4 ? 0 : (__u32)rnd();
		if (ioctl(fd, cmd, reg) == 0) {
			struct fusd_unregister u = { reg->dev_id };

			if (ioctl(fd, FUSD_IOC_UNREGISTER, &u) < 0)
				printf("  fuzz: cannot unregister %s\n", reg->name);
		}
		return;
	}
	if (cmd == FUSD_IOC_FORCE_UNREGISTER && rnd() % 64 == 0)
		strcpy((char *)buf, "fusd-t-fuzz");	/* sometimes the live device itself */
	if (ioctl(fd, cmd, arg) < 0) {}
}

static volatile int fuzz_alarm_fd = -1;	/* closed by the alarm: a wake_fd mid-wait */

static void fuzz_on_alarm(int sig)
{
	(void)sig;
	if (fuzz_alarm_fd >= 0) {
		close(fuzz_alarm_fd);
		fuzz_alarm_fd = -1;
	}
}

/* SIGALRM every @us until fuzz_alarm(0): one that came before the wait began ends none. */
static void fuzz_alarm(long us)
{
	struct itimerval it = { { 0, us }, { 0, us } };

	setitimer(ITIMER_REAL, &it, NULL);
}

/*
 * Waits that a signal ends (SIGALRM, without SA_RESTART): a blocking read of the daemon's
 * channel (an exchange that waits while the helper thread shares it), of a trace subscriber, of a channel before HELLO, and an exchange whose wake_fd is
 * closed while it waits.  Returns the size of a message it took into @rx, else 0.
 */
static ssize_t fuzz_blocking(int fd, int tracer, unsigned char *rx, int shared)
{
	int flags = fcntl(fd, F_GETFL), c;
	struct fusd_exchange ex;
	int which = rnd() % 4;
	ssize_t n = 0;

	fuzz_waits[which]++;
	switch (which) {
	case 0:
		if (shared) {	/* the helper thread polls, then reads: its reads must not block */
			memset(&ex, 0, sizeof(ex));
			ex.buf = (uintptr_t)rx;
			ex.buf_size = FUSD_MIN_READ_BUFFER;
			ex.flags = FUSD_EXCHANGE_WAIT;
			ex.wake_fd = -1;
			fuzz_alarm(2000);
			n = ioctl(fd, FUSD_IOC_EXCHANGE, &ex);
			fuzz_alarm(0);
			break;
		}
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
		fuzz_alarm(2000);
		n = read(fd, rx, FUSD_MIN_READ_BUFFER);
		fuzz_alarm(0);
		fcntl(fd, F_SETFL, flags);
		break;
	case 1:
		fuzz_alarm(2000);
		if (read(tracer, rx, FUSD_MIN_READ_BUFFER) < 0) {}
		fuzz_alarm(0);
		break;
	case 2:
		c = open(FUSD_CONTROL_DEVICE, O_RDWR | O_CLOEXEC);
		if (c >= 0 && read(c, rx, FUSD_MIN_READ_BUFFER) != -1)
			printf("  fuzz: a read before HELLO did not fail\n");
		if (c >= 0)
			close(c);
		break;
	default:
		memset(&ex, 0, sizeof(ex));
		ex.buf = (uintptr_t)rx;
		ex.buf_size = FUSD_MIN_READ_BUFFER;
		ex.flags = FUSD_EXCHANGE_WAIT;
		ex.wake_fd = fuzz_alarm_fd = rnd() % 2 ? eventfd(0, EFD_CLOEXEC) : epoll_create1(EPOLL_CLOEXEC);
		fuzz_alarm(1000);
		n = ioctl(fd, FUSD_IOC_EXCHANGE, &ex);
		fuzz_alarm(0);
		if (fuzz_alarm_fd >= 0)
			close(fuzz_alarm_fd);
		fuzz_alarm_fd = -1;
		break;
	}
	return n > 0 ? n : 0;
}

/* A second daemon thread on the same channel: answers whatever it reads, correctly. */
struct fuzz_helper {
	int fd;
	volatile int stop;
};

static void *fuzz_replier(void *p)
{
	struct fuzz_helper *hp = p;
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER), *out = calloc(1, FUSD_CHUNK_MAX);
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	sigset_t alarm;

	sigemptyset(&alarm);
	sigaddset(&alarm, SIGALRM);	/* fuzz_blocking()'s alarm is for the main thread */
	pthread_sigmask(SIG_BLOCK, &alarm, NULL);
	while (!hp->stop) {
		struct pollfd pf = { hp->fd, POLLIN, 0 };

		if (poll(&pf, 1, 5) <= 0 || read(hp->fd, msg, FUSD_MIN_READ_BUFFER) <= 0)
			continue;
		if (h->opcode == FUSD_OP_INTERRUPT || (h->id & FUSD_ID_NOREPLY))
			continue;
		if (h->opcode == FUSD_OP_READ)
			ft_reply(hp->fd, h->id, h->len, out, h->len);
		else if (h->opcode == FUSD_OP_IOCTL)
			ft_reply(hp->fd, h->id, 0, out, h->reply_max);
		else if (h->opcode == FUSD_OP_OPEN)
			ft_reply_open(hp->fd, h->id, 0, 1, FUSD_POLLOUT);
		else
			ft_reply(hp->fd, h->id, h->len, NULL, 0);
	}
	free(msg);
	free(out);
	return NULL;
}

static void t_fuzz(void)
{
	static const char *const devs[] = { "fusd-t-fuzz", "fusd-t-fuzz2", "fusd-t-fuzz3" };
	unsigned char *msg = malloc(FUSD_MIN_READ_BUFFER), *out = malloc(2 * FUSD_MIN_READ_BUFFER);
	struct sigaction alarm_sa = { .sa_handler = fuzz_on_alarm };	/* no SA_RESTART */
	struct fusd_trace_subscribe sub = { 0 };
	int tracer = ft_channel();
	struct fusd_req_header *h = (struct fusd_req_header *)msg;
	struct fuzz_req reqs[64];
	unsigned long counts[200] = { 0 }, ioctls = 0, msgs = 0, rounds = 0, mmaps = 0;
	const long target = getenv("FUSD_FUZZ_N") ? atol(getenv("FUSD_FUZZ_N")) : 200000;
	int fd = -1, side = ft_channel(), nreq = 0;
	pid_t callers[3];
	double t = ft_now();

	struct fuzz_helper helper = { -1, 0 };
	pthread_t helper_th;
	int helper_on = 0;

	sigemptyset(&alarm_sa.sa_mask);
	sigaction(SIGALRM, &alarm_sa, NULL);
	CHECK(tracer >= 0 && ioctl(tracer, FUSD_IOC_TRACE, &sub) == 0, "fuzz: trace");
	fuzz_edge = mmap(NULL, 2 * getpagesize(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(fuzz_edge != MAP_FAILED, "fuzz: mmap");
	munmap(fuzz_edge + getpagesize(), getpagesize());
	fuzz_ready_fd = eventfd(1, EFD_CLOEXEC);
	fuzz_ready_ep = epoll_with(fuzz_ready_fd);
	fuzz_shm = memfd_create("fuzz-shm", MFD_CLOEXEC);
	if (fuzz_shm < 0 || ftruncate(fuzz_shm, 2 * sysconf(_SC_PAGESIZE)))
		CHECK(0, "fuzz: memfd");

	for (long i = 0; msgs + ioctls < (unsigned long)target; i++) {
		if (fd < 0) {		/* (re)start the daemon side: a fresh channel, three devices */
			int bad = (fd = ft_channel()) < 0;

			for (int k = 0; k < 3 && !bad; k++)
				bad = ft_register(fd, devs[k], 0666, 0, 0, NULL) != 0;
			if (bad) {
				CHECK(0, "fuzz: cannot register");
				break;
			}
			fcntl(fd, F_SETFL, O_NONBLOCK);
			if (rounds % 2) {	/* every other life, two daemon threads */
				helper.fd = fd;
				helper.stop = 0;
				helper_on = !pthread_create(&helper_th, NULL, fuzz_replier, &helper);
			}
			for (int k = 0; k < 3; k++) {
				callers[k] = fork();
				if (callers[k] == 0)
					fuzz_caller(devs[k], k + 1 + rounds * 3);
			}
			nreq = 0;
			rounds++;
		}
		/* take real requests; answer some correctly, keep the rest for mutation */
		for (int k = 0; k < 4; k++) {
			ssize_t n = read(fd, rnd() % 64 ? (void *)msg : bad_ptr,
					 rnd() % 64 ? FUSD_MIN_READ_BUFFER : rnd() % 200);

			if (n <= 0)
				break;
			mmaps += h->opcode == FUSD_OP_MMAP;
			if (h->opcode == FUSD_OP_INTERRUPT || (h->id & FUSD_ID_NOREPLY))
				continue;
			if (h->opcode == FUSD_OP_IOCTL && rnd() % 3 == 0) {	/* a fresh one: retry it */
				struct fuzz_req fr = { h->id, h->dev_id, h->file_id, h->opcode, h->len,
						       h->reply_max, h->ioctl_arg };
				size_t size = fuzz_retry(&fr, out);

				fuzz_retries_taken += write(fd, out, size) == (ssize_t)size;
				msgs++;
				reqs[nreq++ % 64] = fr;		/* refused: answered later, or not */
				continue;
			}
			if (rnd() % 2 && h->opcode == FUSD_OP_MMAP) {
				struct fusd_mmap_reply mr = { fuzz_shm, 0, 0 };

				if (ft_reply(fd, h->id, 0, &mr, sizeof(mr)))	/* too long: ENXIO */
					ft_reply(fd, h->id, -ENXIO, NULL, 0);
				continue;
			}
			if (rnd() % 2) {
				int res = h->opcode == FUSD_OP_OPEN ? 0 : (int)(rnd() % (h->len + 1));

				if (h->opcode == FUSD_OP_READ || (h->opcode == FUSD_OP_IOCTL && h->reply_max))
					ft_reply(fd, h->id, h->opcode == FUSD_OP_IOCTL ? 0 : res, out,
						 h->opcode == FUSD_OP_IOCTL ? h->reply_max : (size_t)res);
				else
					ft_reply(fd, h->id, res, NULL, 0);
				continue;
			}
			reqs[nreq % 64] = (struct fuzz_req){ h->id, h->dev_id, h->file_id, h->opcode,
							     h->len, h->reply_max, h->ioctl_arg };
			nreq++;
		}
		for (int k = 0; k < 8; k++, msgs++) {
			int have = nreq > 0;
			ssize_t got = fuzz_write(fd, have ? &reqs[rnd() % (nreq < 64 ? nreq : 64)] : NULL,
						 have, out, msg, counts);

			mmaps += got > 0 && h->opcode == FUSD_OP_MMAP;
			if (got > 0 && h->opcode != FUSD_OP_INTERRUPT && !(h->id & FUSD_ID_NOREPLY)) {
				reqs[nreq % 64] = (struct fuzz_req){ h->id, h->dev_id, h->file_id,
								     h->opcode, h->len, h->reply_max,
								     h->ioctl_arg };
				nreq++;
			}
		}
		fuzz_ioctl(rnd() % 4 ? side : fd, out);
		ioctls++;
		if (rnd() % 64 == 0 && fuzz_blocking(fd, tracer, msg, helper_on) > 0 &&
		    h->opcode != FUSD_OP_INTERRUPT && !(h->id & FUSD_ID_NOREPLY)) {
			reqs[nreq % 64] = (struct fuzz_req){ h->id, h->dev_id, h->file_id, h->opcode,
							     h->len, h->reply_max, h->ioctl_arg };
			nreq++;
		}
		if (rnd() % 4 == 0)	/* interrupt a caller, wherever its call is */
			kill(callers[rnd() % 3], SIGUSR1);
		if (i % 2000 == 1999) {	/* now and then the daemon dies with callers inside */
			if (helper_on) {
				helper.stop = 1;
				pthread_join(helper_th, NULL);
				helper_on = 0;
			}
			for (int k = 0; k < 3; k++)
				kill(callers[k], SIGKILL);
			if (rnd() % 2) {
				close(fd);
				fd = -1;
			} else {	/* one, two or all three removed by force first */
				for (int k = 0, n = 1 + rnd() % 3; k < n; k++)
					ft_force_unregister(side, devs[k]);
				close(fd);
				fd = -1;
			}
			for (int k = 0; k < 3; k++)
				waitpid(callers[k], NULL, 0);
		}
	}
	if (helper_on) {
		helper.stop = 1;
		pthread_join(helper_th, NULL);
	}
	if (fd >= 0) {
		for (int k = 0; k < 3; k++)
			kill(callers[k], SIGKILL);
		close(fd);
		for (int k = 0; k < 3; k++)
			waitpid(callers[k], NULL, 0);
	}
	close(side);
	close(tracer);
	munmap(fuzz_edge, getpagesize());
	close(fuzz_ready_ep);
	close(fuzz_ready_fd);
	close(fuzz_shm);
	printf("  fuzz: %lu messages + %lu ioctls in %.1fs, %lu daemon lives, %lu retries taken, "
	       "%lu MMAP requests; write results:", msgs, ioctls, ft_now() - t, rounds,
	       fuzz_retries_taken, mmaps);
	for (int e = 0; e < 200; e++)
		if (counts[e])
			printf(" %s=%lu", e ? strerrorname_np(e) ?: "?" : "ok", counts[e]);
	printf("\n  fuzz: %lu short messages agreeing with their size, %lu with the payload "
	       "unmapped; blocking waits: %lu channel reads, %lu tracer reads, %lu reads before "
	       "HELLO, %lu exchanges whose wake_fd was closed\n", fuzz_short_msgs, fuzz_edge_msgs,
	       fuzz_waits[0], fuzz_waits[1], fuzz_waits[2], fuzz_waits[3]);
	CHECK(msgs + ioctls >= (unsigned long)target, "only %lu", msgs + ioctls);
	CHECK(counts[0] > 0 && counts[EINVAL] > 0 && counts[ENOENT] > 0 && mmaps > 0, "no variety");
	CHECK(fuzz_retries_taken > 0, "no retry was ever taken");
	CHECK(fuzz_short_msgs && fuzz_edge_msgs && fuzz_waits[0] && fuzz_waits[1] && fuzz_waits[2] &&
	      fuzz_waits[3], "a fuzz case never reached");
	free(msg);
	free(out);
}

/* Who holds /dev/fusd or a fusd node open (for a failed leak check). */
static void show_holders(void)
{
	DIR *proc = opendir("/proc");
	struct dirent *p;

	while (proc && (p = readdir(proc))) {
		char dir[300], link[600], target[256], comm[64] = "";
		struct dirent *f;
		DIR *fds;
		FILE *c;

		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(dir, sizeof(dir), "/proc/%s/comm", p->d_name);
		c = fopen(dir, "r");
		if (c) {
			if (!fgets(comm, sizeof(comm), c))
				comm[0] = 0;
			comm[strcspn(comm, "\n")] = 0;
			fclose(c);
		}
		snprintf(dir, sizeof(dir), "/proc/%s/fd", p->d_name);
		fds = opendir(dir);
		while (fds && (f = readdir(fds))) {
			ssize_t n;

			snprintf(link, sizeof(link), "%s/%s", dir, f->d_name);
			n = readlink(link, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			if (strstr(target, "fusd"))
				printf("  pid %s (%s) fd %s -> %s\n", p->d_name, comm, f->d_name, target);
		}
		if (fds)
			closedir(fds);
	}
	if (proc)
		closedir(proc);
}

static void t_leaks(void)
{
	static const char *what[] = { "channels", "devices", "files", "requests", "wakers", "maps" };
	double end = ft_now() + 2;

	for (int i = 0; i < 6; i++) {
		while (live(what[i]) != 0 && ft_now() < end)
			ft_msleep(10);
		CHECK(live(what[i]) == 0, "live_%s = %ld", what[i], live(what[i]));
	}
	if (tfail)
		show_holders();
}

/* ---- driver ---- */

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "hello", t_hello },
	{ "perm", t_perm },
	{ "names", t_names },
	{ "labels", t_labels },
	{ "roundtrip", t_roundtrip },
	{ "creds", t_creds },
	{ "poll", t_poll },
	{ "big", t_big },
	{ "replies", t_replies },
	{ "unregister", t_unregister },
	{ "devtmpfs-stall", t_devtmpfs_stall },
	{ "untake", t_untake },
	{ "untake-release", t_untake_release },
	{ "interrupt-efault", t_interrupt_efault },
	{ "register-efault", t_register_efault },
	{ "kill", t_kill },
	{ "force", t_force },
	{ "force-uffd", t_force_uffd },
	{ "force-reregister", t_force_reregister },
	{ "interrupt", t_interrupt },
	{ "sysfs", t_sysfs },
	{ "trace", t_trace },
	{ "trace-user", t_trace_user },
	{ "nocap", t_nocap },
	{ "trace-slots", t_trace_slots },
	{ "pidns", t_pidns },
	{ "open-interrupt", t_open_interrupt },
	{ "multi", t_multi },
	{ "concurrent", t_concurrent },
	{ "threads", t_threads },
	{ "exchange", t_exchange },
	{ "exchange-epoll", t_exchange_epoll },
	{ "adaptive-poll", t_adaptive_poll },
	{ "retry", t_retry },
	{ "mmap", t_mmap },
	{ "fuzz", t_fuzz },
	{ "roundtrip-after-fuzz", t_roundtrip },
	{ "leaks", t_leaks },
};

#define TEST_TIMEOUT 60.0

/*
 * Each test runs in a child of its own process group: a test that hangs is killed after
 * TEST_TIMEOUT seconds, and whatever a test leaves running is killed when it ends.
 */
static int run(const char *name, void (*fn)(void))
{
	double t = ft_now();
	int st = 0, failed;
	pid_t p;

	fflush(stdout);
	p = fork();
	if (p == 0) {
		setpgid(0, 0);
		tfail = 0;
		fn();
		fflush(stdout);
		_exit(tfail);
	}
	setpgid(p, p);
	while (waitpid(p, &st, WNOHANG) == 0) {
		if (ft_now() - t > TEST_TIMEOUT) {
			kill(-p, SIGKILL);
			waitpid(p, &st, 0);
			printf("  timeout after %.0fs\n", TEST_TIMEOUT);
			st = 1 << 8;
			break;
		}
		ft_msleep(5);
	}
	kill(-p, SIGKILL);
	failed = !WIFEXITED(st) || WEXITSTATUS(st);
	printf("%s %s (%.2fs)\n", failed ? "FAIL" : "PASS", name, ft_now() - t);
	fflush(stdout);
	return failed;
}

static int cmd_whoami(const char *path)
{
	struct ft_whoami w;
	int fd = open(path, O_RDWR);

	if (fd < 0 || ioctl(fd, FT_IOC_WHOAMI, &w) < 0) {
		perror(path);
		return 1;
	}
	printf("%u %u %u\n", w.pid, w.uid, w.gid);
	return 0;
}

/* FUSD_IOC_FORCE_UNREGISTER of @name: prints the result, exits 0 only if it was removed. */
static int cmd_force(const char *name)
{
	int fd = ft_channel(), err = fd < 0 ? fd : ft_force_unregister(fd, name);

	printf("%s\n", err ? strerror(-err) : "removed");
	return err ? 1 : 0;
}

static int cmd_serve(const char *name, const char *kind, const char *mode)
{
	int k = !strcmp(kind, "zero") ? FT_ZERO : !strcmp(kind, "hold") ? FT_HOLD : FT_ECHO;
	struct ft_daemon d;
	int fd = ft_channel();

	if (fd < 0) {
		fprintf(stderr, "fusd-ktest: /dev/fusd: %s\n", strerror(-fd));
		return 1;
	}
	ft_daemon_init(&d, fd, -1);
	if (ft_daemon_add(&d, name, k, strtoul(mode, NULL, 8), 0, 0)) {
		perror("register");
		return 1;
	}
	printf("serving /dev/%s\n", name);
	fflush(stdout);
	return ft_daemon_loop(&d) ? 1 : 0;
}

int main(int argc, char **argv)
{
	int failed = 0, ran = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "whoami"))
		return cmd_whoami(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "force"))
		return cmd_force(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "serve"))
		return cmd_serve(argv[2], argv[3], argv[4]);
	if (argc == 2 && !strcmp(argv[1], "--list")) {
		for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int want = argc == 1;

		for (int a = 1; a < argc; a++)
			want |= !strcmp(argv[a], tests[i].name);
		if (want) {
			failed += run(tests[i].name, tests[i].fn);
			ran++;
		}
	}
	if (!ran) {
		fprintf(stderr, "fusd-ktest: no such test\n");
		return 2;
	}
	printf("%s: %d of %d tests failed\n", failed ? "FAIL" : "PASS", failed, ran);
	return failed ? 1 : 0;
}
