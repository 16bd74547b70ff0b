// Registry entries that name a backend this libfusd does not know: never handled as any backend;
// and a live entry whose daemon never accepts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <fusd/admin.hpp>
#include <fusd/fusd.hpp>

namespace {

// A registry of this test's own, with one entry for `device` served through `backend`.
class ForeignEntry : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/fusd-unit-XXXXXX";
        ASSERT_NE(mkdtemp(dir), nullptr);
        dir_ = dir;
        setenv("FUSD_RUNTIME_DIR", dir, 1);
        std::filesystem::create_directory(dir_ + "/devices");
    }
    void TearDown() override
    {
        unsetenv("FUSD_RUNTIME_DIR");
        std::filesystem::remove_all(dir_);
    }

    // The entry file (as registry.cpp names it); pid and start_time say whether it is alive.
    std::string write_entry(const std::string &name, const std::string &backend, pid_t pid, std::uint64_t start_time)
    {
        std::string file = dir_ + "/devices/dev:" + name + ".json";
        std::ofstream(file) << R"({"device":"/dev/)" << name << R"(","backend":")" << backend << R"(","pid":)" << pid
                            << R"(,"start_time":)" << start_time << R"(,"command":"test","socket":")" << dir_
                            << R"(/ctl/none.sock","created_ns":0})" << '\n';
        return file;
    }

    static std::uint64_t own_start_time()
    {
        std::ifstream in("/proc/self/stat");
        std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::istringstream rest(stat.substr(stat.rfind(')') + 2));
        std::string field;
        for (int i = 3; i <= 22 && rest >> field; ++i)
            if (i == 22)
                return std::stoull(field);
        return 0;
    }

    std::string dir_;
};

TEST_F(ForeignEntry, ForcedRemovalOfAnUnknownBackendIsRefused)
{
    std::string name = "fusd-unit-" + std::to_string(getpid()) + "-zfs";
    std::string file = write_entry(name, "zfs", getpid(), own_start_time());
    try {
        fusd::admin::remove_device(name, /*force=*/true);
        ADD_FAILURE() << "removed a device of an unknown backend";
    } catch (const fusd::Error &e) {
        EXPECT_EQ(e.code().value(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("zfs"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(std::filesystem::exists(file)) << "the entry of a live daemon was dropped";
}

TEST_F(ForeignEntry, DeadEntryOfAnUnknownBackendIsListedDeadAndDropped)
{
    std::string name = "fusd-unit-" + std::to_string(getpid()) + "-zfs-dead";
    std::string file = write_entry(name, "zfs", getpid(), own_start_time() + 1); // not us: dead
    bool seen_dead = false;
    for (const auto &info : fusd::admin::list_devices())
        if (info.path == "/dev/" + name) {
            EXPECT_EQ(info.state, "dead");
            EXPECT_EQ(info.backend, "zfs");
            seen_dead = true;
        }
    EXPECT_TRUE(seen_dead);
    EXPECT_FALSE(std::filesystem::exists(file));
}

} // namespace

// admin::scratch_dir(): this process's, made once; list_devices() removes those of dead
// processes, with what is in them, and nothing else in the scratch root.
TEST_F(ForeignEntry, ScratchDirectoriesOfDeadProcessesGoAndNothingElse)
{
    const std::string mine = fusd::admin::scratch_dir();
    EXPECT_EQ(mine, fusd::admin::scratch_dir());
    ASSERT_TRUE(std::filesystem::is_directory(mine));
    EXPECT_EQ(std::filesystem::status(mine).permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_all);
    std::ofstream(mine + "/kept") << "x";

    const std::string root = dir_ + "/scratch";
    // pid 1's start time is never 12345 in a test; 0x7fffffff is above any pid_max.
    for (const char *dead : {"/1-12345", "/2147483646-1"}) {
        std::filesystem::create_directories(root + dead + "/sub");
        std::ofstream(root + dead + "/sub/file") << "x";
    }
    std::filesystem::create_symlink(mine, root + "/3-1"); // dead owner, but a link: removed, not followed
    for (const char *other : {"/notours", "/01-12345", "/1-12345x", "/-1-5"})
        std::filesystem::create_directory(root + other);

    fusd::admin::list_devices();

    EXPECT_FALSE(std::filesystem::exists(root + "/1-12345"));
    EXPECT_FALSE(std::filesystem::exists(root + "/2147483646-1"));
    EXPECT_FALSE(std::filesystem::is_symlink(root + "/3-1"));
    EXPECT_TRUE(std::filesystem::exists(mine + "/kept")) << "the link's target must be left alone";
    for (const char *other : {"/notours", "/01-12345", "/1-12345x", "/-1-5"})
        EXPECT_TRUE(std::filesystem::is_directory(root + other)) << other;
}

// A live entry whose daemon never accepts on its control socket (stopped, or hung) and whose
// backlog is full: listing and removing must not wait on it.
TEST_F(ForeignEntry, ADaemonThatNeverAcceptsHoldsUpNoListing)
{
    std::filesystem::create_directory(dir_ + "/ctl");
    std::string socket_path = dir_ + "/ctl/silent.sock";
    int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path.c_str());
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof addr), 0) << strerror(errno);
    ASSERT_EQ(::listen(listener, 0), 0);
    std::vector<int> queued; // fill the backlog: the next blocking connect() would wait forever
    for (int i = 0; i < 8; ++i) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) < 0) {
            ::close(fd);
            break;
        }
        queued.push_back(fd);
    }
    ASSERT_FALSE(queued.empty());
    std::string name = "fusd-unit-" + std::to_string(getpid()) + "-silent";
    std::string file = dir_ + "/devices/dev:" + name + ".json";
    std::ofstream(file) << R"({"device":"/dev/)" << name << R"(","backend":"fuse","pid":)" << getpid()
                        << R"(,"start_time":)" << own_start_time() << R"(,"command":"test","socket":")" << socket_path
                        << R"(","created_ns":0})" << '\n';

    // In a child, so that a regression fails the test (the hang guard) instead of hanging the run.
    pid_t child = fork();
    if (child == 0) {
        std::string state;
        for (const auto &d : fusd::admin::list_devices())
            if (d.path == "/dev/" + name)
                state = d.state;
        try {
            fusd::admin::remove_device("/dev/" + name, false);
        } catch (const fusd::Error &) {
            _exit(state == "unresponsive" ? 0 : 2); // refused, not waited on
        }
        _exit(3);
    }
    int status = -1;
    for (int i = 0; i < 600 && waitpid(child, &status, WNOHANG) == 0; ++i) // hang guard: 60 s
        usleep(100000);
    if (waitpid(child, &status, WNOHANG) == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        ADD_FAILURE() << "listing or removing waited on a daemon that never accepts";
    } else {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    }
    for (int fd : queued)
        ::close(fd);
    ::close(listener);
}
