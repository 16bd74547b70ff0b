#include <gtest/gtest.h>

#include <fusd/fusd.hpp>

TEST(DevicePath, RelativeNamesGoUnderDev)
{
    EXPECT_EQ(fusd::device_path("clock"), "/dev/clock");
    EXPECT_EQ(fusd::device_path("/dev/clock"), "/dev/clock");
    EXPECT_EQ(fusd::device_path("ttyFAKE0"), "/dev/ttyFAKE0");
    EXPECT_EQ(fusd::device_path("a_b-c.d"), "/dev/a_b-c.d");
}

static int error_of(const std::string &name)
{
    try {
        fusd::device_path(name);
    } catch (const fusd::Error &e) {
        EXPECT_NE(std::string(e.what()).find("device name"), std::string::npos) << e.what();
        return e.code().value();
    }
    return 0;
}

TEST(DevicePath, BadNamesAreRefusedWithAReason)
{
    EXPECT_EQ(error_of(""), EINVAL);
    EXPECT_EQ(error_of("/dev/"), EINVAL);
    EXPECT_EQ(error_of(".."), EINVAL);
    EXPECT_EQ(error_of("/dev/.."), EINVAL);
    EXPECT_EQ(error_of("../etc/passwd"), EINVAL);
    EXPECT_EQ(error_of("/etc/passwd"), EINVAL);
    EXPECT_EQ(error_of("/dev/../etc"), EINVAL);
    EXPECT_EQ(error_of("with space"), EINVAL);
    EXPECT_EQ(error_of("tab\there"), EINVAL);
    EXPECT_EQ(error_of(std::string("nul\0x", 5)), EINVAL);
    EXPECT_EQ(error_of("bell\a"), EINVAL);
    EXPECT_EQ(error_of("caf\xc3\xa9"), EINVAL);
    EXPECT_EQ(error_of("-rf"), EINVAL);
    EXPECT_EQ(error_of(".hidden"), EINVAL);
    EXPECT_EQ(error_of(std::string(201, 'x')), ENAMETOOLONG);
    EXPECT_EQ(error_of(std::string(200, 'x')), 0);
}

TEST(DevicePath, NestedNamesAreAccepted)
{
    EXPECT_EQ(fusd::device_path("input/event7"), "/dev/input/event7");
    EXPECT_EQ(fusd::device_path("/dev/bus/usb/001/002"), "/dev/bus/usb/001/002");
    EXPECT_EQ(fusd::device_path("/dev/drums/bam"), "/dev/drums/bam");
    EXPECT_EQ(fusd::device_path("a/b.c/d-e_f"), "/dev/a/b.c/d-e_f");
    EXPECT_EQ(error_of(std::string(100, 'x') + "/" + std::string(99, 'y')), 0);
}

TEST(DevicePath, BadNestedNamesAreRefusedWithAReason)
{
    EXPECT_EQ(error_of("sub//dir"), EINVAL);       // empty component
    EXPECT_EQ(error_of("sub/"), EINVAL);           // trailing slash: an empty last component
    EXPECT_EQ(error_of("/dev//sub"), EINVAL);
    EXPECT_EQ(error_of("sub/./dir"), EINVAL);
    EXPECT_EQ(error_of("sub/."), EINVAL);
    EXPECT_EQ(error_of("./sub"), EINVAL);
    EXPECT_EQ(error_of("sub/../dir"), EINVAL);
    EXPECT_EQ(error_of("sub/.."), EINVAL);
    EXPECT_EQ(error_of("/dev/sub/../../etc/passwd"), EINVAL);
    EXPECT_EQ(error_of("sub/.hidden"), EINVAL);
    EXPECT_EQ(error_of("sub/-rf"), EINVAL);
    EXPECT_EQ(error_of("sub/with space"), EINVAL);
    EXPECT_EQ(error_of(std::string(100, 'x') + "/" + std::string(100, 'y')), ENAMETOOLONG);
}

TEST(Backend, NamesRoundTrip)
{
    for (auto b : {fusd::Backend::automatic, fusd::Backend::kernel, fusd::Backend::cuse, fusd::Backend::fuse})
        EXPECT_EQ(fusd::parse_backend(fusd::to_string(b)), b);
    EXPECT_FALSE(fusd::parse_backend("zfs"));
}

TEST(Backend, ProbeExplainsEveryUnusableBackend)
{
    auto all = fusd::probe_backends();
    ASSERT_EQ(all.size(), 3u);
    for (const auto &s : all) {
        if (!s.usable) {
            EXPECT_FALSE(s.reason.empty()) << fusd::to_string(s.backend);
        }
    }
}

TEST(Backend, UnknownEnvironmentBackendIsAClearError)
{
    setenv("FUSD_BACKEND", "floppy", 1);
    try {
        fusd::choose_backend(fusd::Backend::automatic);
        ADD_FAILURE() << "no error";
    } catch (const fusd::Error &e) {
        EXPECT_NE(std::string(e.what()).find("floppy"), std::string::npos);
    }
    unsetenv("FUSD_BACKEND");
}
