// SPDX-License-Identifier: MIT
//
// fusdctl: finding, starting, signalling and reaping the commands of `fusdctl serve` (see child.hpp).
#include "child.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Boost.Process 1.74 only offers vfork() when the feature macros are old enough; glibc has it
// anyway. vfork() saves copying our page tables for every open (the child only makes system
// calls before execve; see ExecSetup).
#ifndef BOOST_POSIX_HAS_VFORK
#define BOOST_POSIX_HAS_VFORK 1
#endif
#include <boost/process/child.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>

#include <fmt/core.h>

extern char **environ;

namespace bp = boost::process;

namespace fusdctl {

namespace {

CommandError exec_error(int errnum, const std::string &word, std::string_view why) {
    return CommandError(errnum, fmt::format("cannot execute '{}': {}", word, why));
}

// errno of a file that execve would refuse, 0 when it looks executable.
int check_executable(const std::string &path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return errno;
    if (S_ISDIR(st.st_mode))
        return EISDIR;
    if (!S_ISREG(st.st_mode))
        return EACCES;
    if (::access(path.c_str(), X_OK) != 0)
        return errno;
    return 0;
}

// The environment the commands start from: ours, less any FUSD_ caller variables.
const std::vector<std::string> &base_environment() {
    static const std::vector<std::string> env = [] {
        std::vector<std::string> out;
        for (char **e = environ; e && *e; ++e) {
            std::string_view entry(*e);
            if (entry.starts_with("FUSD_DEVICE=") || entry.starts_with("FUSD_CALLER_") ||
                entry.starts_with("FUSD_OPEN_FLAGS=") || entry.starts_with("FUSD_TTY_"))
                continue;
            out.emplace_back(entry);
        }
        return out;
    }();
    return env;
}

// What the new process does between fork and exec, and what execve gets. Only async-signal-safe
// system calls in on_exec_setup: it may run in a vfork()ed child.
struct ExecSetup : bp::extend::handler {
    const char *exe = nullptr;
    char *const *argv = nullptr;
    char **envp = nullptr;
    int in = -1, out = -1, err = -1;
    pid_t parent = 0;

    template <class Executor> void on_setup(Executor &e) const {
        e.exe = exe;
        e.cmd_line = argv;
        e.env = envp;
    }

    template <class Executor> void on_exec_setup(Executor &e) const {
        if (::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
            (err >= 0 && ::dup2(err, STDERR_FILENO) < 0)) {
            e.set_error(std::error_code(errno, std::system_category()), "dup2");
            return;
        }
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent)
            ::_exit(127);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD})
            ::sigaction(sig, &dfl, nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            long max = ::sysconf(_SC_OPEN_MAX);
            for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 1024); ++fd)
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
};

void set_nonblocking(int fd) {
    int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

} // namespace

CommandSpec resolve_command(const std::vector<std::string> &words) {
    CommandSpec spec;
    spec.argv = words;
    const std::string &word = words.at(0);
    if (word.empty())
        throw exec_error(ENOENT, word, "empty command name");
    if (word.find('/') != std::string::npos) {
        if (int err = check_executable(word))
            throw exec_error(err, word, std::strerror(err));
        spec.path = word;
        if (word[0] != '/') {
            // Commands start in our working directory; keep the path valid whatever happens to it.
            char cwd[PATH_MAX];
            if (::getcwd(cwd, sizeof cwd))
                spec.path = std::string(cwd) + "/" + word;
        }
        return spec;
    }
    const char *path_env = std::getenv("PATH");
    std::string_view dirs = path_env && *path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    int first_error = ENOENT;
    while (true) {
        std::size_t colon = dirs.find(':');
        std::string_view dir = dirs.substr(0, colon);
        std::string candidate = fmt::format("{}/{}", dir.empty() ? "." : dir, word);
        int err = check_executable(candidate);
        if (err == 0) {
            spec.path = candidate;
            return spec;
        }
        if (err != ENOENT && err != ENOTDIR && first_error == ENOENT)
            first_error = err;
        if (colon == std::string_view::npos)
            break;
        dirs.remove_prefix(colon + 1);
    }
    throw exec_error(first_error, word, first_error == ENOENT ? "command not found" : std::strerror(first_error));
}

Child spawn_command(const CommandSpec &command, const std::vector<std::string> &extra_env, int stderr_fd,
                    int stdio_fd) {
    fusd::Fd in_r, in_w, out_r, out_w;
    if (stdio_fd < 0) {
        int in[2], out[2];
        if (::pipe2(in, O_CLOEXEC) != 0)
            throw CommandError(errno,
                               fmt::format("cannot start '{}': pipe2: {}", command.argv.at(0), std::strerror(errno)));
        in_r.reset(in[0]);
        in_w.reset(in[1]);
        if (::pipe2(out, O_CLOEXEC) != 0)
            throw CommandError(errno,
                               fmt::format("cannot start '{}': pipe2: {}", command.argv.at(0), std::strerror(errno)));
        out_r.reset(out[0]);
        out_w.reset(out[1]);
    }

    std::vector<char *> argv;
    argv.reserve(command.argv.size() + 1);
    for (const std::string &a : command.argv)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);

    const std::vector<std::string> &base = base_environment();
    std::vector<char *> envp;
    envp.reserve(base.size() + extra_env.size() + 1);
    for (const std::string &e : base) {
        std::string_view name(e.data(), e.find('='));
        bool replaced = false;
        for (const std::string &x : extra_env)
            replaced = replaced || (x.size() > name.size() && x.compare(0, name.size(), name) == 0 &&
                                    x[name.size()] == '=');
        if (!replaced)
            envp.push_back(const_cast<char *>(e.c_str()));
    }
    for (const std::string &e : extra_env)
        envp.push_back(const_cast<char *>(e.c_str()));
    envp.push_back(nullptr);

    ExecSetup setup;
    setup.exe = command.path.c_str();
    setup.argv = argv.data();
    setup.envp = envp.data();
    setup.in = stdio_fd >= 0 ? stdio_fd : in_r.get();
    setup.out = stdio_fd >= 0 ? stdio_fd : out_w.get();
    setup.err = stderr_fd;
    setup.parent = ::getpid();

    pid_t pid;
    try {
        bp::child c(setup, bp::posix::use_vfork);
        pid = c.id();
        c.detach(); // we reap it ourselves, through its pidfd
    } catch (const bp::process_error &e) {
        int err = e.code().value() ? e.code().value() : EIO;
        throw exec_error(err, command.argv.at(0), std::strerror(err));
    }

    Child child;
    child.pid = pid;
    child.pidfd = fusd::Fd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
    if (!child.pidfd) {
        int err = errno;
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        reap(pid);
        throw CommandError(err, fmt::format("cannot watch '{}': pidfd_open: {}", command.argv.at(0), std::strerror(err)));
    }
    if (stdio_fd >= 0)
        return child;
    set_nonblocking(in_w.get());
    set_nonblocking(out_r.get());
    child.stdin_pipe = std::move(in_w);
    child.stdout_pipe = std::move(out_r);
    return child;
}

void signal_group(pid_t pid, int sig) {
    if (pid <= 0)
        return;
    if (::kill(-pid, sig) != 0)
        ::kill(pid, sig); // not (yet) a group leader
}

int reap(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

std::string describe_status(int status) {
    if (WIFEXITED(status))
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const char *name = ::sigabbrev_np(WTERMSIG(status));
        return fmt::format("was killed by SIG{}", name ? name : std::to_string(WTERMSIG(status)));
    }
    return "ended";
}

} // namespace fusdctl
