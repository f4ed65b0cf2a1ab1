// A Kubernetes API client over http::Client: JSON in and out (nlohmann), errors carrying the
// API's own Status message, 409 retries for read-modify-write, 429/5xx back-off for reads, and
// the typed calls TideSlice needs (Binding, Eviction, Lease, Events). Shared by the scheduler
// and the node agent.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http/client.h"
#include "common/kube/access.h"
#include "common/status.h"

namespace tideslice::kube {

using nlohmann::json;

struct ListResult {
  std::vector<json> items;
  std::string resource_version;   // the list's, to start a watch from
};

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark };

struct WatchEvent {
  WatchEventType type;
  json object;
};

// The Kubernetes API at `access` over cpprestsdk (http::NewCppRestClient), with its credentials.
// `stream_idle_timeout_s` bounds silence on a watch (watches carry bookmarks well inside it).
StatusOr<std::shared_ptr<http::Client>> NewCppRestTransport(const KubeAccess& access, int request_timeout_s = 30,
                                                             int stream_idle_timeout_s = 300);

// "pods" path helpers: PodPath("ns", "name") = /api/v1/namespaces/ns/pods/name.
// Names are escaped as one path segment each (see PathSegment).
std::string PodPath(const std::string& ns, const std::string& name);
std::string NodePath(const std::string& name);
std::string LeasePath(const std::string& ns, const std::string& name);
// One path segment: percent-encodes everything outside [A-Za-z0-9-._~]; "." and ".." are encoded
// whole. Names from outside (a pod name in an extender request) can never change the path.
std::string PathSegment(const std::string& value);
// Percent-encodes a query value (selectors contain '=' and ',').
std::string QueryEscape(const std::string& value);

class KubeClient {
 public:
  explicit KubeClient(std::shared_ptr<http::Client> transport) : transport_(std::move(transport)) {}

  // Calls with a `timeout` > 0 are bounded by it (and reads are then not retried).
  StatusOr<json> Get(const std::string& path, std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // All pages (limit/continue) of a list; `query` like "fieldSelector=spec.nodeName%3Dn1".
  StatusOr<ListResult> List(const std::string& path, const std::string& query = "", int page_size = 500);
  // Watches from `resource_version` with bookmarks until the server closes the stream
  // (timeout_s), `cancel` fires, or on_event returns false. An expired resource version (410,
  // as an HTTP status or an ERROR event) is Status kExpired: the caller must re-list.
  Status Watch(const std::string& path, const std::string& query, const std::string& resource_version, int timeout_s,
               const std::function<bool(const WatchEvent&)>& on_event, http::CancelFlag* cancel);

  StatusOr<json> Create(const std::string& collection_path, const json& object,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  StatusOr<json> Replace(const std::string& path, const json& object,            // PUT
                         std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  StatusOr<json> MergePatch(const std::string& path, const json& patch);        // JSON merge patch
  Status Delete(const std::string& path);

  // Read, mutate, write back with the read's resourceVersion as precondition; on 409 re-read and
  // mutate again (up to `attempts`). `mutate` may return an error to give up, or set *changed =
  // false to skip the write.
  StatusOr<json> ReadModifyWrite(const std::string& path, const std::function<Status(json&, bool* changed)>& mutate,
                                 int attempts = 8);

  // POST pods/{name}/binding: binds and merges `annotations` into the pod in one call.
  // `timeout` > 0 bounds the call (the leader's remaining lease time).
  Status Bind(const std::string& ns, const std::string& name, const std::string& uid, const std::string& node,
              const std::map<std::string, std::string>& annotations,
              std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // POST pods/{name}/eviction (policy/v1). A PodDisruptionBudget refusal (429) is
  // kResourceExhausted with the API's message; the caller decides when to try again.
  // `grace_seconds` >= 0 sets deleteOptions.gracePeriodSeconds (the pod's termination grace).
  // `timeout` > 0 bounds the call (the leader's remaining lease time).
  Status Evict(const std::string& ns, const std::string& name, const std::string& uid, int grace_seconds = -1,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // A core/v1 Event about an object (involvedObject from its kind/namespace/name/uid).
  Status RecordEvent(const json& involved, const std::string& type, const std::string& reason,
                     const std::string& message, const std::string& component);

  // Maps an HTTP reply to a Status with the API's message ("pods \"x\" not found").
  static Status ReplyToStatus(const http::Reply& reply, const std::string& what);

 private:
  StatusOr<json> Call(const http::Request& request, const std::string& what, bool retry_throttled);

  std::shared_ptr<http::Client> transport_;
};

// RFC 3339 with microseconds, as metav1.MicroTime serializes ("2026-11-24T10:00:00.123456Z").
std::string MicroTimeNow();
std::string MicroTimeFrom(std::chrono::system_clock::time_point t);
// Parses RFC 3339 (fractional seconds optional, Z or offset); error names `field`.
StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(const std::string& field, const std::string& text);

}  // namespace tideslice::kube
