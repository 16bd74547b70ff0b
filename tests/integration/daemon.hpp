// Test helper: run a device daemon (fusd-testd, an example, ...) as a child process.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdio>
#include <dirent.h>
#include <cstdlib>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace fusd_test {

inline std::string build_dir()
{
    const char *b = std::getenv("FUSD_BUILD");
    return b ? b : FUSD_DEFAULT_BUILD_DIR;
}

inline std::string unique_name(const std::string &tag)
{
    static int n = 0;
    return "fusd-it-" + std::to_string(getpid()) + "-" + tag + "-" + std::to_string(++n);
}

// How long any wait in the integration tests may last: a hang guard, never a speed target. It
// only ends a test that would otherwise wait forever, so it is far above the slowest run seen
// (the TCG guest on a loaded 2-core host).
inline constexpr std::chrono::milliseconds kHangGuard{60000};

// Starts `argv`, waits for its first line ("ready ..." or "serving ..."). SIGTERM + reap on exit.
class Daemon {
public:
    explicit Daemon(std::vector<std::string> argv, int timeout_ms = kHangGuard.count())
    {
        int out[2];
        if (pipe2(out, O_CLOEXEC) < 0)
            throw std::runtime_error("pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        std::vector<char *> args;
        for (auto &a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0)
            throw std::runtime_error("spawn " + argv[0]);
        posix_spawn_file_actions_destroy(&fa);
        close(out[1]);
        out_ = out[0];
        std::string line;
        char c;
        for (;;) {
            pollfd p{out_, POLLIN, 0};
            if (::poll(&p, 1, timeout_ms) <= 0)
                break;
            if (::read(out_, &c, 1) != 1)
                break;
            if (c == '\n') {
                first_line_ = line;
                break;
            }
            line += c;
        }
    }
    ~Daemon() { stop(); }
    Daemon(const Daemon &) = delete;
    Daemon &operator=(const Daemon &) = delete;

    bool ready() const { return !first_line_.empty(); }
    const std::string &first_line() const { return first_line_; }
    pid_t pid() const { return pid_; }
    void signal(int sig)
    {
        if (sig == SIGSTOP || sig == SIGCONT)
            stopped_ = sig == SIGSTOP;
        kill(pid_, sig);
    }
    // Sends sig (a daemon stopped with signal(SIGSTOP) is continued first), waits for the exit;
    // returns the wait status.
    int stop(int sig = SIGTERM)
    {
        if (pid_ <= 0)
            return status_;
        // SIGCONT only to a daemon we stopped, and once: a SIGCONT that reaches a daemon while
        // it exits can discard the SIGSTOP with which LeakSanitizer's exit-time tracer attaches
        // to it (ASan builds); the tracer then waits for that stop forever and the daemon spins
        // waiting for the tracer.
        if (stopped_ || sig == SIGCONT)
            kill(pid_, SIGCONT);
        stopped_ = false;
        if (sig != SIGCONT)
            kill(pid_, sig);
        for (int i = 0; i < kHangGuard.count() / 10; ++i) { // up to kHangGuard, then SIGKILL
            if (waitpid(pid_, &status_, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            usleep(10000);
        }
        if (pid_ > 0) {
            report_stuck();
            kill(pid_, SIGKILL);
            waitpid(pid_, &status_, 0);
            pid_ = -1;
        }
        if (out_ >= 0)
            close(out_);
        out_ = -1;
        return status_;
    }

private:
    // A daemon that outlived the guard: where each of its threads, and each of its children
    // (LeakSanitizer's tracer is one), waits, for the test's log.
    void report_stuck() const
    {
        std::fprintf(stderr, "daemon %d did not exit; its threads and its children's (pid tid state wchan):\n", pid_);
        report_threads(pid_);
        for (pid_t child : children(pid_))
            report_threads(child);
    }
    static std::vector<pid_t> children(pid_t pid)
    {
        std::vector<pid_t> out;
        std::string list = read_line("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
        for (std::size_t at = 0; at < list.size();) {
            std::size_t end = list.find(' ', at);
            if (end == std::string::npos)
                end = list.size();
            if (end > at)
                out.push_back(pid_t(std::stoi(list.substr(at, end - at))));
            at = end + 1;
        }
        return out;
    }
    static void report_threads(pid_t pid)
    {
        std::string dir = "/proc/" + std::to_string(pid) + "/task";
        if (DIR *d = opendir(dir.c_str())) {
            while (dirent *e = readdir(d)) {
                if (e->d_name[0] == '.')
                    continue;
                std::string t = dir + "/" + e->d_name;
                std::string stat = read_line(t + "/stat"), wchan = read_line(t + "/wchan");
                auto paren = stat.rfind(')');
                char state = paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '?';
                std::fprintf(stderr, "  %d %s %c %s\n", int(pid), e->d_name, state, wchan.c_str());
            }
            closedir(d);
        }
    }
    static std::string read_line(const std::string &path)
    {
        std::string line;
        if (FILE *f = std::fopen(path.c_str(), "r")) {
            char buf[512];
            if (std::fgets(buf, sizeof buf, f))
                line = buf;
            std::fclose(f);
        }
        if (!line.empty() && line.back() == '\n')
            line.pop_back();
        return line;
    }

    pid_t pid_ = -1;
    int out_ = -1;
    int status_ = 0;
    bool stopped_ = false;
    std::string first_line_;
};

} // namespace fusd_test
