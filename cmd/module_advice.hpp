// SPDX-License-Identifier: MIT
//
// fusdctl doctor: where this machine stands with the fusd kernel module, and exactly how to get
// it when it is not loaded (the fusd-dkms package, the dkms command, or `make -C kernel install`).
#pragma once

#include <string>
#include <string_view>

namespace fusdctl {

enum class ModuleState {
    loaded,       // /sys/module/fusd
    no_modules,   // the kernel cannot load modules (no /proc/modules): the kernel backend never works here
    installed,    // in /lib/modules/RELEASE (modules.dep) but not loaded
    dkms_source,  // /usr/src/fusd-VERSION is there, not built for this kernel
    missing,      // none of the above
};

struct ModuleFacts {
    std::string release;  // uname -r
    std::string version;  // this fusdctl's version, which names the DKMS source directory
    ModuleState state = ModuleState::missing;
};

// Looks under `root` ("" for the real one): /sys/module/fusd, /proc/modules,
// /lib/modules/RELEASE/modules.dep, /usr/src/fusd-VERSION/dkms.conf.
ModuleFacts probe_module(const std::string &root, const std::string &release, const std::string &version);

std::string_view to_string(ModuleState state);
// One sentence: the state, then what to run to get the module loaded.
std::string module_advice(const ModuleFacts &facts);

} // namespace fusdctl
