// SPDX-License-Identifier: MIT
#include "module_advice.hpp"

#include <fstream>
#include <string>
#include <sys/stat.h>

#include <fmt/core.h>

namespace fusdctl {

namespace {

bool exists(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
}

// modules.dep lists each installed module as "path/name.ko[.xz|.zst]: deps".
bool listed_in_modules_dep(const std::string &path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        std::string mod = line.substr(0, line.find(':'));
        std::size_t slash = mod.rfind('/');
        std::string base = slash == std::string::npos ? mod : mod.substr(slash + 1);
        if (base == "fusd.ko" || base.starts_with("fusd.ko."))
            return true;
    }
    return false;
}

} // namespace

ModuleFacts probe_module(const std::string &root, const std::string &release, const std::string &version) {
    ModuleFacts f{release, version, ModuleState::missing};
    if (exists(root + "/sys/module/fusd"))
        f.state = ModuleState::loaded;
    else if (!exists(root + "/proc/modules"))
        f.state = ModuleState::no_modules;
    else if (listed_in_modules_dep(root + "/lib/modules/" + release + "/modules.dep"))
        f.state = ModuleState::installed;
    else if (exists(root + "/usr/src/fusd-" + version + "/dkms.conf"))
        f.state = ModuleState::dkms_source;
    return f;
}

std::string_view to_string(ModuleState state) {
    switch (state) {
    case ModuleState::loaded:
        return "loaded";
    case ModuleState::no_modules:
        return "no_modules";
    case ModuleState::installed:
        return "installed";
    case ModuleState::dkms_source:
        return "dkms_source";
    case ModuleState::missing:
        break;
    }
    return "missing";
}

std::string module_advice(const ModuleFacts &f) {
    const std::string load = "then `modprobe fusd` (at every boot: `echo fusd > /etc/modules-load.d/fusd.conf`)";
    switch (f.state) {
    case ModuleState::loaded:
        return "loaded";
    case ModuleState::no_modules:
        return fmt::format("this kernel ({}) cannot load modules (built without CONFIG_MODULES): the kernel backend "
                           "is not available here",
                           f.release);
    case ModuleState::installed:
        return fmt::format("installed for {} but not loaded: run `modprobe fusd` (at every boot: "
                           "`echo fusd > /etc/modules-load.d/fusd.conf`)",
                           f.release);
    case ModuleState::dkms_source:
        return fmt::format("not built for {}: `dkms install fusd/{}` builds and installs it from /usr/src/fusd-{} "
                           "(needs linux-headers-{}), {}",
                           f.release, f.version, f.version, f.release, load);
    case ModuleState::missing:
        break;
    }
    return fmt::format("not installed: install the fusd-dkms package (DKMS builds it for this kernel and later "
                       "ones; needs linux-headers-{}), or from fusd's source `make -C kernel install`, {}",
                       f.release, load);
}

} // namespace fusdctl
