// SPDX-License-Identifier: MIT
//
// fusdctl serve: errno names as drivers spell them ("EAGAIN"), for --protocol and --handler.
#pragma once

#include <string>
#include <string_view>

namespace fusdctl::serve {

// The errno called `name` (EAGAIN, ENOTTY...), or 0 when no errno has that name.
int errno_by_name(std::string_view name);
// The name of errnum ("EAGAIN"), or its number as text when it has none.
std::string errno_name(int errnum);

} // namespace fusdctl::serve
