// The extender's HTTP endpoint: POST /filter, /prioritize, /bind, /preempt under a URL prefix.
// Our own small interface; cpprestsdk is the implementation and its headers stay in the .cc
// (its macro U breaks other headers).
//
// kube-scheduler treats any status but 200 as an error and decodes the body regardless of its
// Content-Type; verb failures are therefore 200 with the Error field set (filter, bind) or an
// empty answer (prioritize, whose errors kube-scheduler ignores anyway). Unknown paths are 404,
// other methods 405, bodies over the limit 413.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace tideslice::extender {

struct HttpReply {
  int status = 200;
  std::string body;
};

// verb ("filter", "prioritize", "bind", "preempt") + request body -> reply.
using VerbHandler = std::function<HttpReply(const std::string& verb, const std::string& body)>;

class HttpServer {
 public:
  // `address` like "http://127.0.0.1:8888/sched" (the urlPrefix kube-scheduler is given).
  static StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& address, VerbHandler handler,
                                                     size_t max_body_bytes = 4 << 20);
  virtual ~HttpServer() = default;
  virtual void Stop() = 0;
};

}  // namespace tideslice::extender
