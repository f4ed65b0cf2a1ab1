// A Kubernetes API server for tests, on 127.0.0.1, with the semantics TideSlice depends on:
// one global resourceVersion, list paging with continue tokens, chunked watch streams with
// bookmarks and replay from a resourceVersion, HTTP 200 + ERROR 410 for a compacted one, 409
// on a stale resourceVersion (PUT or a patch that names one), merge and JSON patches, pod
// binding (201, annotations merged, 409 when already bound), eviction (201, 429 when a
// PodDisruptionBudget forbids it), leases, events, label and field selectors, bearer-token
// auth, and injected failures. Resources: nodes, pods, events, leases, poddisruptionbudgets, configmaps,
// and resource.k8s.io/v1 resourceslices (field selectors spec.nodeName, spec.driver, spec.pool.name;
// DELETE on the collection), resourceclaims (with /status), resourceclaimtemplates, deviceclasses.
// Not a full apiserver: no admission, no defaulting, no graceful deletion.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tideslice::testsupport {

class TestApiServer {
 public:
  struct Options {
    int bookmark_interval_ms = 200;
    size_t history_limit = 100000;   // events kept for watch replay; older ones are compacted
    std::string required_token;      // non-empty: every request needs "Bearer <token>"
  };

  static std::unique_ptr<TestApiServer> Start();
  static std::unique_ptr<TestApiServer> Start(Options options);
  virtual ~TestApiServer() = default;

  virtual std::string url() const = 0;  // "http://127.0.0.1:PORT"
  // A kubeconfig pointing at this server (with the required token, if any) written into `dir`.
  virtual std::string WriteKubeconfig(const std::string& dir) const = 0;

  // Direct access, as if another client wrote (events go to watchers). `resource` is the
  // plural ("pods"); namespaced objects take their namespace from metadata.namespace. Unlike
  // the API, a creationTimestamp given here is kept (for tests on a fake clock).
  virtual nlohmann::json Upsert(const std::string& resource, nlohmann::json object) = 0;
  virtual std::optional<nlohmann::json> Get(const std::string& resource, const std::string& ns,
                                            const std::string& name) const = 0;
  virtual std::vector<nlohmann::json> List(const std::string& resource) const = 0;
  virtual bool Remove(const std::string& resource, const std::string& ns, const std::string& name) = 0;

  // Forgets watch history up to now: any watch or continue token from before gets 410.
  virtual void Compact() = 0;
  // Ends every open watch stream cleanly (as a server does at its timeout or on restart).
  virtual void CloseWatches() = 0;
  // The next `count` requests whose method matches and whose path contains `path_part` get
  // `status` with a Status body (reason as given).
  virtual void FailNext(const std::string& method, const std::string& path_part, int status, int count,
                        const std::string& reason = "InternalError") = 0;
  virtual void set_required_token(const std::string& token) = 0;

  virtual int64_t resource_version() const = 0;
  virtual int open_watches() const = 0;
  // Requests served, by "METHOD resource[/subresource]" ("POST pods/binding", "GET pods").
  virtual int requests(const std::string& key) const = 0;
};

}  // namespace tideslice::testsupport
