// A tiny HTTP/1.1 server on 127.0.0.1 for registry_test: each connection
// carries one request, answered by a handler with raw response bytes, then
// closed. It lets unit tests script what no real registry does on demand
// (redirects to another origin, cut bodies without range support, odd
// headers) and see exactly what the client sent.
//
// Thread-safety: the server runs one thread; requests() may be read from the
// test thread (it copies under a lock).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::registry::test {

struct ServerRequest {
  std::string method;
  std::string target;                                        // "/v2/x/blobs/sha256:..."
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// Returns the raw bytes to send (status line, headers, body); the connection
// is closed after they are written.
using Handler = std::function<std::string(const ServerRequest&)>;

class TestServer {
 public:
  explicit TestServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // "127.0.0.1:PORT"
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<ServerRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  // A complete response with Content-Length.
  static std::string Reply(int status, const std::vector<std::string>& headers,
                           const std::string& body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
    for (const auto& h : headers) out += h + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    return out + body;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ServerRequest req;
      if (Read(c, &req)) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          requests_.push_back(req);
        }
        std::string out = handler_(req);
        size_t off = 0;
        while (off < out.size()) {
          ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
      }
      ::shutdown(c, SHUT_RDWR);
      ::close(c);
    }
  }

  static bool Read(int c, ServerRequest* req) {
    std::string data;
    char buf[8192];
    size_t header_end = std::string::npos;
    while (header_end == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return false;
      data.append(buf, static_cast<size_t>(n));
      header_end = data.find("\r\n\r\n");
    }
    std::string head = data.substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string first = head.substr(0, line_end);
    size_t sp1 = first.find(' ');
    size_t sp2 = first.find(' ', sp1 + 1);
    req->method = first.substr(0, sp1);
    req->target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        req->headers.emplace_back(name, v == std::string::npos ? "" : line.substr(v));
      }
      pos = e + 2;
    }
    size_t length = 0;
    if (std::string cl = req->Header("content-length"); !cl.empty()) length = std::stoul(cl);
    req->body = data.substr(header_end + 4);
    while (req->body.size() < length) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return false;
      req->body.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<ServerRequest> requests_;
};

}  // namespace kiln::registry::test
