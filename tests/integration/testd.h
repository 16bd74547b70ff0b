// The test daemon's ioctls (tests/integration/testd.cpp), shared with the tests.
#pragma once
#include <linux/ioctl.h>
#include <stdint.h>

struct testd_caller {
    uint32_t pid, uid, gid, flags;
};
#define TESTD_GET_CALLER _IOR('F', 1, struct testd_caller)
#define TESTD_SET _IOW('F', 2, uint64_t)
#define TESTD_GET _IOR('F', 3, uint64_t)
#define TESTD_REVERSE _IOWR('F', 4, char[64])
#define TESTD_ADD1 _IO('F', 5)
#define TESTD_INTERRUPTS _IOR('F', 6, uint64_t)
#define TESTD_BIG _IOR('F', 7, char[16000])
// Fails with the errno given (reply_error), whatever it is.
#define TESTD_FAIL_WITH _IOW('F', 20, int32_t)
