// A minimal HTTP/1.1 client for tests that talk to the loopback fixture
// (registry API, the fault proxy's control endpoint) without going through
// kiln's own transport, so they test kiln and not with it. One exchange per
// connection (Connection: close); chunked answers are decoded.
// Thread-safety: plain functions.
#pragma once

#include <string>
#include <vector>

namespace kiln::testing {

struct HttpReply {
  int status = 0;       // 0 when no answer came (see error)
  std::string error;    // what failed: connect, send, timeout, bad answer
  std::string headers;  // the header block as received, status line first
  std::string body;

  // The value of header `name` (case-insensitive), "" when absent.
  std::string Header(const std::string& name) const;
};

// Sends `method target` to `host_port` ("127.0.0.1:5000", an IPv4 address
// and a port) with `headers` ("Name: value") and `body`, and reads the
// answer; gives up after `timeout_ms` without progress.
HttpReply HttpExchange(const std::string& host_port, const std::string& method,
                       const std::string& target, const std::vector<std::string>& headers = {},
                       const std::string& body = "", int timeout_ms = 10000);

}  // namespace kiln::testing
