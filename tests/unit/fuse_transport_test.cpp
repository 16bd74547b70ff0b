// SPDX-License-Identifier: MIT
// FUSD_FUSE_TRANSPORT: the FUSE backend's transport choice, and its refusal of what cannot be had.
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "fusd/admin.hpp"
#include "fusd/fusd.hpp"

namespace {

// Sets (or, given null, unsets) FUSD_FUSE_TRANSPORT, restoring what the test run was given.
struct TransportEnv {
    explicit TransportEnv(const char *value)
    {
        if (const char *old = std::getenv("FUSD_FUSE_TRANSPORT"))
            saved = old, had = true;
        if (value)
            setenv("FUSD_FUSE_TRANSPORT", value, 1);
        else
            unsetenv("FUSD_FUSE_TRANSPORT");
    }
    ~TransportEnv()
    {
        if (had)
            setenv("FUSD_FUSE_TRANSPORT", saved.c_str(), 1);
        else
            unsetenv("FUSD_FUSE_TRANSPORT");
    }
    std::string saved;
    bool had = false;
};

bool uring_on()
{
    std::ifstream in("/sys/module/fuse/parameters/enable_uring");
    std::string v;
    return std::getline(in, v) && (v == "Y" || v == "1");
}

} // namespace

TEST(FuseTransport, UnknownNameIsAClearError)
{
    TransportEnv env("carrier-pigeon");
    std::string why;
    EXPECT_EQ(fusd::admin::fuse_transport(why), "");
    EXPECT_NE(why.find("carrier-pigeon"), std::string::npos) << why;
}

TEST(FuseTransport, LibfuseIsTheDefaultAndCanBeAskedFor)
{
    std::string why;
    {
        TransportEnv unset(nullptr);
        EXPECT_EQ(fusd::admin::fuse_transport(why), "libfuse") << why;
    }
    TransportEnv env("libfuse");
    EXPECT_EQ(fusd::admin::fuse_transport(why), "libfuse") << why;
}

TEST(FuseTransport, UringWhereItIsOffIsRefusedSayingHowToTurnItOn)
{
    if (uring_on())
        GTEST_SKIP() << "enable_uring is on here";
    TransportEnv env("uring");
    std::string why;
    EXPECT_EQ(fusd::admin::fuse_transport(why), "");
    EXPECT_NE(why.find("io_uring"), std::string::npos) << why;
}

TEST(FuseTransport, UringWhereItIsOnIsUsed)
{
    if (!uring_on())
        GTEST_SKIP() << "enable_uring is off here";
    TransportEnv env("uring");
    std::string why;
    EXPECT_EQ(fusd::admin::fuse_transport(why), "uring") << why;
}
