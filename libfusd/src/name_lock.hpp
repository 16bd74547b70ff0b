// SPDX-License-Identifier: MIT
//
// NameLock: one device name's lock in the runtime directory ($FUSD_RUNTIME_DIR/claims/<name>.lock,
// flock(2)), taken by everything that makes or removes what a name leaves behind: a registration
// from its stale cleanup until its registry entry is written, fusd-cleaner while it removes a dead
// daemon's node and entry, and fusdctl when it cleans a dead entry. Why: a daemon restarted at
// once after SIGKILL otherwise meets its predecessor's node half removed by the cleaner (mount
// gone, placeholder still there) and refuses the name, or the cleaner, a moment late, removes
// the new daemon's node.
//
// The lock file is unlinked by every holder as it lets go, so none is left behind. That is safe
// because a taker checks, once it holds the lock, that the file it locked is still the one at the
// path (else it locked a removed file and tries again); the unlink is the holder's last act.
// Without a writable runtime directory (a user's daemon without /run/fusd) there is no lock, as
// there is no registry entry to race over either.
#pragma once

#include <string>

#include "fd.hpp"

namespace fusd::detail {

class NameLock {
public:
    explicit NameLock(const std::string &device_path); // waits for the lock (killable)
    ~NameLock();
    NameLock(const NameLock &) = delete;
    NameLock &operator=(const NameLock &) = delete;

    bool held() const { return bool(fd_); }

private:
    std::string file_;
    Fd fd_;
};

} // namespace fusd::detail
