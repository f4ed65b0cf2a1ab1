// A TCP proxy on 127.0.0.1 for fault tests: it forwards to an upstream address until told to
// hang, then holds every byte a client sends (the connection stays open, nothing is answered),
// and on Release() delivers the held bytes upstream, late, as a congested or partitioned network
// would. The split-brain test puts a leader's API connection behind it.
#pragma once

#include <memory>
#include <string>

namespace tideslice::testsupport {

class HangProxy {
 public:
  // `upstream_url` like "http://127.0.0.1:PORT".
  static std::unique_ptr<HangProxy> Start(const std::string& upstream_url);
  virtual ~HangProxy() = default;
  virtual std::string url() const = 0;      // "http://127.0.0.1:PORT" of the proxy
  virtual void Hang() = 0;                  // from now on hold what clients send
  virtual void Release() = 0;               // deliver what was held, forward again
  virtual size_t held_bytes() const = 0;
};

}  // namespace tideslice::testsupport
