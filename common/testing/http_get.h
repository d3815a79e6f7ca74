#pragma once

// A plain HTTP GET for tests of the daemons' metrics and health endpoints.

#include <string>

namespace shoal {

// The body of `url`, or "" when the request fails (10 s timeout).
std::string HttpGet(const std::string& url);

}  // namespace shoal
