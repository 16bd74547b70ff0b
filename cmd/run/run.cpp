// SPDX-License-Identifier: MIT
//
// fusdctl run [--serve PATH=COMMAND]... [--tty PATH=COMMAND]... [--replay PATH=FILE]... -- PROGRAM [ARG...]
//
// Fake devices for one process tree, without root. The design, process by process:
//   fusdctl (the one started)  checks the options, then unshare(2)s a mount namespace and a pid
//       namespace (and, unless root, first a user namespace mapping only the user's own uid and
//       gid, so that PROGRAM keeps them on the host's files). It forks the pid namespace's init
//       and waits for it; its exit status is init's.
//   init (pid 1 inside)  dies with fusdctl through PR_SET_PDEATHSIG(SIGKILL) (checked once
//       more after setting it, for a fusdctl killed before); it mounts the private /dev
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

[[noreturn]] void exec_program(const std::vector<std::string> &program) {
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
int init(const std::vector<DeviceSpec> &specs, const std::vector<std::string> &program) {
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
        exec_program(program);
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
    return run_init([&] { return init(specs, opts.program); });
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
    sub->add_option("PROGRAM", opts->program, "The program to run, after '--', and its arguments");
    return Command{sub, [opts] { return run::run(*opts); }};
}

} // namespace fusdctl
