// SPDX-License-Identifier: MIT
//
// fusdctl run [--serve PATH=COMMAND]... [--tty PATH=COMMAND]... [--replay PATH=FILE]... -- PROGRAM [ARG...]
//
// Fake devices for one process tree, without root. The design, process by process:
//   fusdctl (the one started)  checks the options, then (unless root) unshare(2)s a user
//       namespace mapping only the user's own uid and gid, so that PROGRAM keeps them on the
//       host's files. It clone(2)s the init of a new pid namespace and waits for it; its exit
//       status is init's. It stays in the host's pid and mount namespaces.
//   init (pid 1 inside)  dies with fusdctl through PR_SET_PDEATHSIG(SIGKILL) (checked once
//       more after setting it, for a fusdctl killed before); it enters a mount namespace of its
//       own, mounts the private /dev
//       (private_dev.cpp), starts one server per device (servers.cpp) and waits until each is
//       mounted, then runs PROGRAM and waits for it. Its exit status is PROGRAM's.
// Why a pid namespace: when its init ends, however it ends (PROGRAM done, PROGRAM or fusdctl
// SIGKILLed), the kernel SIGKILLs every process in it: the servers, their commands, anything
// PROGRAM left running. With the last process gone the mount namespace goes, and with it the
// private /dev, the FUSE mounts and the runtime directory kept in it. Nothing is ever made in
// the host's view, so there is nothing to clean up there and nothing a SIGKILL can leave.
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "run/namespaces.hpp"
#include "run/private_dev.hpp"
#include "run/servers.hpp"
#include "run/spec.hpp"

namespace fusdctl {

namespace run {

namespace {

volatile int g_program = 0;

// --drivers: CAP_SYS_ADMIN made ambient, so that it survives PROGRAM's exec (as a uid other than
// 0 an exec drops every capability) and a libfusd driver PROGRAM runs may mount FUSE over its own
// nodes in the private /dev. It counts in the run's user namespace only: nothing of the host's.
bool keep_mount_capability() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0)
        return false;
    data[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable |= CAP_TO_MASK(CAP_SYS_ADMIN);
    if (::syscall(SYS_capset, &header, data) != 0)
        return false;
    return ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0) == 0;
}

[[noreturn]] void exec_program(const std::vector<std::string> &program, bool drivers) {
    if (drivers && ::geteuid() != 0 && !keep_mount_capability()) {
        error("run: --drivers: cannot keep CAP_SYS_ADMIN for {}: {}", program[0], std::strerror(errno));
        ::_exit(exit_failure);
    }
    struct sigaction dfl{};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGTERM, SIGHUP, SIGINT, SIGQUIT})
        ::sigaction(sig, &dfl, nullptr);
    std::vector<char *> argv;
    for (const std::string &a : program)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    int err = errno;
    error("run: {}: {}", program[0], std::strerror(err));
    std::fflush(nullptr);
    ::_exit(err == ENOENT ? 127 : 126); // as a shell says it
}

// The body of the pid namespace's init.
int init(const std::vector<DeviceSpec> &specs, const std::vector<std::string> &program, bool drivers) {
    make_private_dev();
    ::setenv("FUSD_RUNTIME_DIR", kRuntimeDir, 1);
    for (const DeviceSpec &spec : specs)
        start_server(spec);
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) {
        error("run: fork: {}", std::strerror(errno));
        return exit_failure;
    }
    if (pid == 0)
        exec_program(program, drivers);
    g_program = pid;
    forward_signals_to(&g_program);
    // As init, we are every orphan's parent too: reap them all until PROGRAM ends.
    while (true) {
        int st = 0;
        pid_t done = ::waitpid(-1, &st, 0);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0) {
            error("run: waitpid: {}", std::strerror(errno));
            return exit_failure;
        }
        if (done != pid)
            continue;
        g_program = 0;
        return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
    }
}

int run(const RunOptions &opts) {
    std::vector<DeviceSpec> specs = check_options(opts);
    enter_namespaces();
    return run_init([&] { return init(specs, opts.program, opts.drivers); });
}

} // namespace

} // namespace run

Command add_run(CLI::App &app) {
    auto opts = std::make_shared<run::RunOptions>();
    CLI::App *sub = app.add_subcommand(
        "run", "Run PROGRAM with fake devices in a private /dev (own user, mount and pid namespaces; no root needed)");
    auto one_each = [](CLI::Option *o) {
        o->allow_extra_args(false);
    };
    one_each(sub->add_option("--serve", opts->serve,
                             "PATH=COMMAND: serve PATH as 'fusdctl serve --shared' would, COMMAND run by sh -c"));
    one_each(sub->add_option("--tty", opts->tty, "PATH=COMMAND: a terminal, as 'fusdctl serve --tty --shared' would"));
    one_each(sub->add_option("--replay", opts->replay, "PATH=FILE: replay the recording FILE as PATH"));
    sub->add_flag("--drivers", opts->drivers,
                  "PROGRAM keeps CAP_SYS_ADMIN in the run's user namespace: libfusd drivers it runs may serve "
                  "devices in the private /dev");
    sub->add_option("PROGRAM", opts->program, "The program to run, after '--', and its arguments");
    return Command{sub, [opts] { return run::run(*opts); }};
}

} // namespace fusdctl
