// SPDX-License-Identifier: MIT
//
// fusdctl run: whether it can work here, for this user (for fusdctl doctor).
#pragma once

#include <string>

namespace fusdctl::run {

struct Usability {
    bool usable = false;
    std::string reason; // why not; empty when usable
};

// Tries what run needs: /dev/fuse open for reading and writing and, unless root, a user
// namespace of one's own (made in a child that exits at once).
Usability check_usable();

} // namespace fusdctl::run
