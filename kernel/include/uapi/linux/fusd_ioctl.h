/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR BSD-2-Clause */
/*
 * fusd_ioctl.h - the argument sizes of ioctl commands whose numbers carry none.
 *
 * An ioctl command made with _IOR/_IOW/_IOWR says in its number how many bytes its argument
 * points to and which way they go; the fusd module and libfusd (for CUSE) copy exactly those.
 * Older commands (the terminal ioctls, I2C's) are plain numbers.  This is the one list of those
 * that fusd carries with their real sizes: the module (kernel/ioctl.c) and libfusd (for CUSE,
 * libfusd/src/ioctl_shape.cpp) both expand it.  A command that is in neither form passes its
 * argument by value, as _IO commands do.
 *
 *	FUSD_IOCTL_TABLE(X) expands X(command, direction, size) once per command:
 *	direction is _IOC_NONE (the argument is a value), _IOC_WRITE (size bytes at the argument
 *	go to the driver), _IOC_READ (size bytes come back to it) or both, as in _IOC.
 *
 * The sizes are the kernel's own structures (struct termios here is the kernel's, not the C
 * library's).  User space can include this header only where it does not include
 * <termios.h> or <sys/ioctl.h>, whose structures of the same names differ.
 *
 * For pointer-carrying commands (I2C_RDWR, I2C_SMBUS) the size is that of the top structure
 * only; a driver asks for what it points to with a retry (see FUSD_REPLY_RETRY in fusd.h).
 */
#ifndef _UAPI_LINUX_FUSD_IOCTL_H
#define _UAPI_LINUX_FUSD_IOCTL_H

#include <linux/ioctl.h>
#include <linux/i2c-dev.h>
#include <linux/serial.h>
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <asm/termios.h>

#define FUSD_IOCTL_TABLE(X) \
	/* terminals: termios, the line discipline, flow, modem lines */ \
	X(TCGETS,	_IOC_READ,	sizeof(struct termios)) \
	X(TCSETS,	_IOC_WRITE,	sizeof(struct termios)) \
	X(TCSETSW,	_IOC_WRITE,	sizeof(struct termios)) \
	X(TCSETSF,	_IOC_WRITE,	sizeof(struct termios)) \
	X(TCGETA,	_IOC_READ,	sizeof(struct termio)) \
	X(TCSETA,	_IOC_WRITE,	sizeof(struct termio)) \
	X(TCSETAW,	_IOC_WRITE,	sizeof(struct termio)) \
	X(TCSETAF,	_IOC_WRITE,	sizeof(struct termio)) \
	X(TCSBRK,	_IOC_NONE,	0) \
	X(TCSBRKP,	_IOC_NONE,	0) \
	X(TCXONC,	_IOC_NONE,	0) \
	X(TCFLSH,	_IOC_NONE,	0) \
	X(TIOCEXCL,	_IOC_NONE,	0) \
	X(TIOCNXCL,	_IOC_NONE,	0) \
	X(TIOCSCTTY,	_IOC_NONE,	0) \
	X(TIOCNOTTY,	_IOC_NONE,	0) \
	X(TIOCSBRK,	_IOC_NONE,	0) \
	X(TIOCCBRK,	_IOC_NONE,	0) \
	X(TIOCGPGRP,	_IOC_READ,	sizeof(int)) \
	X(TIOCSPGRP,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCGSID,	_IOC_READ,	sizeof(int)) \
	X(TIOCOUTQ,	_IOC_READ,	sizeof(int)) \
	X(TIOCINQ,	_IOC_READ,	sizeof(int)) \
	X(TIOCSTI,	_IOC_WRITE,	sizeof(char)) \
	X(TIOCGWINSZ,	_IOC_READ,	sizeof(struct winsize)) \
	X(TIOCSWINSZ,	_IOC_WRITE,	sizeof(struct winsize)) \
	X(TIOCMGET,	_IOC_READ,	sizeof(int)) \
	X(TIOCMBIS,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCMBIC,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCMSET,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCMIWAIT,	_IOC_NONE,	0) \
	X(TIOCGICOUNT,	_IOC_READ,	sizeof(struct serial_icounter_struct)) \
	X(TIOCGSOFTCAR,	_IOC_READ,	sizeof(int)) \
	X(TIOCSSOFTCAR,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCPKT,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCGETD,	_IOC_READ,	sizeof(int)) \
	X(TIOCSETD,	_IOC_WRITE,	sizeof(int)) \
	X(TIOCSERGETLSR, _IOC_READ,	sizeof(int)) \
	X(TIOCGSERIAL,	_IOC_READ,	sizeof(struct serial_struct)) \
	X(TIOCSSERIAL,	_IOC_WRITE,	sizeof(struct serial_struct)) \
	X(TIOCGRS485,	_IOC_READ,	sizeof(struct serial_rs485)) \
	X(TIOCSRS485,	_IOC_READ | _IOC_WRITE, sizeof(struct serial_rs485)) \
	/* I2C (i2c-dev) */ \
	X(I2C_RETRIES,	_IOC_NONE,	0) \
	X(I2C_TIMEOUT,	_IOC_NONE,	0) \
	X(I2C_SLAVE,	_IOC_NONE,	0) \
	X(I2C_SLAVE_FORCE, _IOC_NONE,	0) \
	X(I2C_TENBIT,	_IOC_NONE,	0) \
	X(I2C_PEC,	_IOC_NONE,	0) \
	X(I2C_FUNCS,	_IOC_READ,	sizeof(unsigned long)) \
	X(I2C_RDWR,	_IOC_WRITE,	sizeof(struct i2c_rdwr_ioctl_data)) \
	X(I2C_SMBUS,	_IOC_WRITE,	sizeof(struct i2c_smbus_ioctl_data))

#endif /* _UAPI_LINUX_FUSD_IOCTL_H */
