/* SPDX-License-Identifier: MIT */
/*
 * fusd.h - the classic FUSD C API (FUSD 1.10, 2003, and its forks), as a thin layer over libfusd.
 *
 * A FUSD-era driver compiles and works unchanged (examples/classic/ holds such drivers, run as
 * tests on every backend). The semantics, in libfusd(3)'s words:
 *  - offsets: each open file has a position, 0 at open; read and write get it in *offset, and
 *    after a successful answer the position is what the driver left there (the driver advances
 *    it itself; the count returned does not move it);
 *  - -FUSD_NOREPLY keeps a call for one later fusd_return() from any thread; a callback may also
 *    fusd_return() its own call and then return -FUSD_NOREPLY; fusd_destroy() on an unanswered
 *    call answers it EIO, so no caller is left blocked;
 *  - poll_diff runs on the dispatching thread, never inside another callback: after open with
 *    cached state 0, again whenever an answer differs from the state it was asked with, and after
 *    I/O on a file whose last answer changed nothing; INPUT is POLLIN, OUTPUT POLLOUT, EXCEPT
 *    POLLPRI (select()'s exceptfds);
 *  - unblock gets a call of its own (FUSD_UNBLOCK) when a caller of a kept call is interrupted;
 *    the interrupted call stays the driver's to fusd_return() or fusd_destroy();
 *  - signals: no signal is blocked. SIGINT and SIGTERM left at their default get a handler that
 *    wakes the loop; the next fusd_run()/fusd_dispatch()/fusd_dispatch_fdset() unregisters every
 *    device and re-raises the signal, so the driver ends by it and leaves nothing behind;
 *  - fusd_run() exits 0 once no device is left, 1 if none was registered; it never returns;
 *  - fixes over the original: callbacks may return any -errno, not only values up to 255 (as
 *    for the C++ reply_error(): from 512 on, where no errno is, the caller gets EIO);
 *    fusd_file_info carries the caller's process id and its real uid and gid, as FUSD's did (its
 *    filesystem ids if the caller was gone before its call was read); no C++ exception leaves
 *    these functions.
 * Both registration signatures exist: fusd_register(name, mode, device_info, fops) (1.10) and
 * fusd_register(name, clazz, devname, mode, device_info, fops) (later forks; the node is /dev/NAME
 * on every backend; clazz and devname are labels, null or at most 47 of A-Z a-z 0-9 . _ - + : @ , !
 * (else EINVAL, ENAMETOOLONG) on every backend, shown by the kernel backend only, in
 * /sys/class/fusd/NAME/clazz and devname).
 */
#ifndef FUSD_H
#define FUSD_H

#include <stddef.h>
#include <stdio.h>
#include <sys/select.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FUSD_NOREPLY 0x1000

/* poll_diff states */
#define FUSD_NOTIFY_INPUT 0x1
#define FUSD_NOTIFY_OUTPUT 0x2
#define FUSD_NOTIFY_EXCEPT 0x4

/* fusd_get_call_type() */
#define FUSD_OPEN 100
#define FUSD_CLOSE 101
#define FUSD_READ 102
#define FUSD_WRITE 103
#define FUSD_IOCTL 104
#define FUSD_POLL_DIFF 105
#define FUSD_UNBLOCK 106
#define FUSD_MMAP 107 /* the forks' mmap member's call */

struct fusd_call; /* library-private */

typedef struct fusd_file_info {
	int fd;             /* the device's descriptor, as returned by fusd_register() */
	void *device_info;  /* given to fusd_register() */
	void *private_data; /* per open file; changes made in a callback are kept */
	unsigned int flags; /* open(2) flags as of this call */
	pid_t pid;          /* caller */
	uid_t uid;
	gid_t gid;
	struct fusd_call *fusd_msg; /* library-private: the call in flight */
} fusd_file_info_t;

typedef struct fusd_file_operations {
	int (*open)(struct fusd_file_info *file);
	int (*close)(struct fusd_file_info *file);
	ssize_t (*read)(struct fusd_file_info *file, char *buffer, size_t length, loff_t *offset);
	ssize_t (*write)(struct fusd_file_info *file, const char *buffer, size_t length, loff_t *offset);
	int (*ioctl)(struct fusd_file_info *file, int request, void *data);
	int (*poll_diff)(struct fusd_file_info *file, unsigned int cached_state);
	int (*unblock)(struct fusd_file_info *file);
	/* The later forks' mmap member: set *addr and *out_length to the device's memory (shared:
	 * a memfd, a tmpfs file or MAP_SHARED|MAP_ANONYMOUS memory); the caller maps
	 * [offset, offset + length) of it. Called on the kernel backend only (mmap(2) on CUSE and
	 * FUSE fails ENODEV); answered as it returns: -FUSD_NOREPLY is not supported here (EIO). */
	int (*mmap)(struct fusd_file_info *file, int offset, size_t length, int prot, int flags, void **addr,
		    size_t *out_length);
} fusd_file_operations_t;

/* Registers /dev/NAME; returns a descriptor for select() and fusd_dispatch(), or -1 with errno. */
int fusd_register4(const char *name, mode_t mode, void *device_info, struct fusd_file_operations *fops);
int fusd_register6(const char *name, const char *clazz, const char *devname, mode_t mode, void *device_info,
		   struct fusd_file_operations *fops);
#define FUSD_REGISTER_PICK(_1, _2, _3, _4, _5, _6, name, ...) name
#define fusd_register(...) \
	FUSD_REGISTER_PICK(__VA_ARGS__, fusd_register6, fusd_register5_invalid, fusd_register4, \
			   fusd_register3_invalid, fusd_register2_invalid, fusd_register1_invalid)(__VA_ARGS__)

/* The forks' one-statement registration: builds the operations table from designated
 * initializers (C99 `.read = f` or GNU `read: f`) and prints a warning when registration fails. */
#define fusd_simple_register(name, clazz, devname, perms, arg, ...) \
	do { \
		struct fusd_file_operations fusd_simple_fops_ = {__VA_ARGS__}; \
		if (fusd_register(name, clazz, devname, perms, arg, &fusd_simple_fops_) < 0) \
			perror("warning: fusd unavailable"); \
	} while (0)

int fusd_unregister(int fd);
/* Answers a call kept with -FUSD_NOREPLY, exactly once, from any thread. */
int fusd_return(struct fusd_file_info *file, ssize_t retval);
/* Drops a kept call; an unanswered one is answered EIO. */
void fusd_destroy(struct fusd_file_info *file);
/* Handles whatever is ready; never blocks. Returns 0, or -1 with errno. */
int fusd_dispatch(int fd);
/* Dispatches until a signal (see above) or until no device is left, then exit(0); never returns. */
void fusd_run(void);
void fusd_fdset_add(fd_set *set, int *max);
void fusd_dispatch_fdset(fd_set *set);

int fusd_get_call_type(struct fusd_file_info *file);
size_t fusd_get_length(struct fusd_file_info *file);
loff_t *fusd_get_offset(struct fusd_file_info *file);
char *fusd_get_read_buffer(struct fusd_file_info *file);
const char *fusd_get_write_buffer(struct fusd_file_info *file);
int fusd_get_ioctl_request(struct fusd_file_info *file);
unsigned long fusd_get_ioctl_arg(struct fusd_file_info *file);
void *fusd_get_ioctl_buffer(struct fusd_file_info *file);
unsigned int fusd_get_poll_diff_cached_state(struct fusd_file_info *file);

/* poll_diff states as text, "RWE" with '-' for a clear bit (FUSD_NOTIFY_INPUT, OUTPUT, EXCEPT).
 * The string lives in a small ring of per-thread buffers: valid for the next few calls. */
char *fusd_unparse_flags(int flags);

#ifdef __cplusplus
}
#endif

#endif /* FUSD_H */
