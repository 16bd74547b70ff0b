// SPDX-License-Identifier: MIT
//
// Base64 as fusdctl's text formats carry bytes (serve --protocol json, record/replay files):
// RFC 4648 section 4, with padding, as Python's b64encode and base64(1) write it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fusdctl {

std::string base64_encode(std::string_view bytes);
// nullopt for text that is not such base64 (wrong length, a foreign character, misplaced '=').
std::optional<std::string> base64_decode(std::string_view text);

} // namespace fusdctl
