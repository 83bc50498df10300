#include "loopback_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kiln::testing {

std::string HttpReply::Header(const std::string& name) const {
  size_t pos = headers.find("\r\n");
  while (pos != std::string::npos && pos + 2 < headers.size()) {
    const size_t start = pos + 2;
    const size_t end = headers.find("\r\n", start);
    const std::string line = headers.substr(start, end == std::string::npos ? end : end - start);
    const size_t colon = line.find(':');
    if (colon == name.size() && ::strncasecmp(line.c_str(), name.c_str(), colon) == 0) {
      const size_t v = line.find_first_not_of(' ', colon + 1);
      return v == std::string::npos ? "" : line.substr(v);
    }
    pos = end;
  }
  return "";
}

HttpReply HttpExchange(const std::string& host_port, const std::string& method,
                       const std::string& target, const std::vector<std::string>& headers,
                       const std::string& body, int timeout_ms) {
  HttpReply reply;
  const size_t colon = host_port.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  if (colon == std::string::npos ||
      ::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    reply.error = "not an IPv4 host:port: " + host_port;
    return reply;
  }
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    reply.error = std::string("socket: ") + std::strerror(errno);
    return reply;
  }
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    reply.error = "connect " + host_port + ": " + std::strerror(errno);
    ::close(fd);
    return reply;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host_port +
                    "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
                    "\r\n";
  for (const std::string& h : headers) req += h + "\r\n";
  req += "\r\n" + body;
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      reply.error = std::string("send: ") + std::strerror(errno);
      ::close(fd);
      return reply;
    }
    sent += static_cast<size_t>(n);
  }
  std::string in;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      reply.error = std::string("receiving the answer: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos || in.compare(0, 5, "HTTP/") != 0) {
    if (reply.error.empty())
      reply.error = "no HTTP answer (" + std::to_string(in.size()) + " bytes)";
    return reply;
  }
  reply.headers = in.substr(0, head_end);
  const size_t sp = reply.headers.find(' ');
  reply.status = sp == std::string::npos ? 0 : std::atoi(reply.headers.c_str() + sp + 1);
  std::string rest = in.substr(head_end + 4);
  if (::strcasecmp(reply.Header("Transfer-Encoding").c_str(), "chunked") == 0) {
    size_t pos = 0;
    for (;;) {
      const size_t eol = rest.find("\r\n", pos);
      if (eol == std::string::npos) break;
      const size_t size = std::stoul(rest.substr(pos, eol - pos), nullptr, 16);
      if (size == 0 || eol + 2 + size > rest.size()) break;
      reply.body += rest.substr(eol + 2, size);
      pos = eol + 2 + size + 2;
    }
  } else {
    reply.body = std::move(rest);
  }
  return reply;
}

}  // namespace kiln::testing
