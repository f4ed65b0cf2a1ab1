// A test Kubernetes API server with a KubeClient talking to it over loopback, and a polling
// helper, for the component tests of everything that uses the API.
#pragma once

#include <chrono>
#include <memory>
#include <thread>

#include "common/kube/client.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::testsupport {

// Polls `pred` every 10 ms for up to `ms`; returns its last value.
template <typename Pred>
bool WaitFor(Pred pred, int ms = 15000) {
  for (int i = 0; i < ms / 10; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// Bookmarks every 50 ms, for tests of watch streams that wait for them.
inline TestApiServer::Options FastBookmarks() {
  TestApiServer::Options o;
  o.bookmark_interval_ms = 50;
  return o;
}

struct KubeEnv {
  explicit KubeEnv(TestApiServer::Options options = {}) {
    server = TestApiServer::Start(options);
    auto access = kube::LoadKubeconfig(server->WriteKubeconfig(dir.path()));
    client = std::make_unique<kube::KubeClient>(*kube::NewCppRestTransport(*access));
  }
  TempDir dir{"tskube"};
  std::unique_ptr<TestApiServer> server;
  std::unique_ptr<kube::KubeClient> client;
};

}  // namespace tideslice::testsupport
