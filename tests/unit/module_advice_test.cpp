// SPDX-License-Identifier: MIT
//
// fusdctl doctor's word on the kernel module (cmd/module_advice.cpp): each state found from the
// files a real machine has, under a scratch root, and the command each state tells the user to run.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "module_advice.hpp"

using namespace fusdctl;
namespace fs = std::filesystem;

namespace {

struct ScratchRoot {
    fs::path dir;
    ScratchRoot() {
        std::string t = (fs::temp_directory_path() / "fusd-module-advice-XXXXXX").string();
        dir = ::mkdtemp(t.data());
    }
    ~ScratchRoot() { fs::remove_all(dir); }
    void file(const std::string &path, const std::string &text = "") {
        fs::create_directories((dir / path).parent_path());
        std::ofstream(dir / path) << text;
    }
    ModuleFacts probe() const { return probe_module(dir.string(), "6.1.0-57-amd64", "0.1.0"); }
};

} // namespace

TEST(ModuleAdvice, NoProcModulesMeansTheKernelCannotLoadModules)
{
    ScratchRoot r;
    ModuleFacts f = r.probe();
    EXPECT_EQ(f.state, ModuleState::no_modules);
    EXPECT_NE(module_advice(f).find("cannot load modules"), std::string::npos) << module_advice(f);
}

TEST(ModuleAdvice, NothingInstalledNamesThePackageAndMakeInstall)
{
    ScratchRoot r;
    r.file("proc/modules");
    r.file("lib/modules/6.1.0-57-amd64/modules.dep", "kernel/fs/fuse/cuse.ko: kernel/fs/fuse/fuse.ko\n"
                                                     "kernel/drivers/misc/fusdx.ko:\n");
    ModuleFacts f = r.probe();
    EXPECT_EQ(f.state, ModuleState::missing);
    std::string a = module_advice(f);
    EXPECT_NE(a.find("fusd-dkms package"), std::string::npos) << a;
    EXPECT_NE(a.find("make -C kernel install"), std::string::npos) << a;
    EXPECT_NE(a.find("linux-headers-6.1.0-57-amd64"), std::string::npos) << a;
    EXPECT_NE(a.find("modprobe fusd"), std::string::npos) << a;
}

TEST(ModuleAdvice, DkmsSourceWithoutABuildGivesTheDkmsCommand)
{
    ScratchRoot r;
    r.file("proc/modules");
    r.file("usr/src/fusd-0.1.0/dkms.conf", "PACKAGE_NAME=\"fusd\"\n");
    ModuleFacts f = r.probe();
    EXPECT_EQ(f.state, ModuleState::dkms_source);
    std::string a = module_advice(f);
    EXPECT_NE(a.find("`dkms install fusd/0.1.0`"), std::string::npos) << a;
    EXPECT_NE(a.find("modprobe fusd"), std::string::npos) << a;
}

TEST(ModuleAdvice, AnotherVersionsDkmsSourceIsNotThisOne)
{
    ScratchRoot r;
    r.file("proc/modules");
    r.file("usr/src/fusd-0.0.9/dkms.conf");
    EXPECT_EQ(r.probe().state, ModuleState::missing);
}

TEST(ModuleAdvice, InstalledModuleCompressedOrNotOnlyNeedsModprobe)
{
    for (const char *name : {"updates/dkms/fusd.ko", "updates/fusd.ko.xz", "updates/dkms/fusd.ko.zst"}) {
        ScratchRoot r;
        r.file("proc/modules");
        r.file("usr/src/fusd-0.1.0/dkms.conf");
        r.file("lib/modules/6.1.0-57-amd64/modules.dep", std::string("kernel/a.ko:\n") + name + ":\n");
        ModuleFacts f = r.probe();
        EXPECT_EQ(f.state, ModuleState::installed) << name;
        EXPECT_NE(module_advice(f).find("run `modprobe fusd`"), std::string::npos) << module_advice(f);
    }
}

TEST(ModuleAdvice, LoadedWinsOverEverythingElse)
{
    ScratchRoot r;
    r.file("sys/module/fusd/parameters/poll_ns", "50000\n");
    ModuleFacts f = r.probe();
    EXPECT_EQ(f.state, ModuleState::loaded);
    EXPECT_EQ(module_advice(f), "loaded");
}
