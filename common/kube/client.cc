#include "common/kube/client.h"

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <iomanip>
#include <sstream>
#include <thread>

namespace tideslice::kube {

StatusOr<std::shared_ptr<http::Client>> NewCppRestTransport(const KubeAccess& access, int request_timeout_s,
                                                             int stream_idle_timeout_s) {
  http::ClientOptions options;
  options.server = access.server;
  options.ca_pem = access.ca_pem;
  options.client_cert_pem = access.client_cert_pem;
  options.client_key_pem = access.client_key_pem;
  options.token = access.token;
  options.token_file = access.token_file;
  options.insecure_skip_tls_verify = access.insecure_skip_tls_verify;
  options.peer = "the Kubernetes API";
  options.request_timeout_s = request_timeout_s;
  options.stream_idle_timeout_s = stream_idle_timeout_s;
  auto client = http::NewCppRestClient(options);
  if (!client.ok())
    return Status::InvalidArgument("server", "\"" + access.server + "\" from " + access.source +
                                                 " is not a usable API server URL: " + client.status().message());
  return client;
}

std::string PathSegment(const std::string& value) {
  // "." and ".." would walk the path; every other byte outside the unreserved set is
  // percent-encoded, so a name can never add a segment ("ml/../kube-system") or a query ("?watch").
  if (value.empty()) return "%00-empty";  // never a valid name: the API answers 404, not a list
  if (value == "." || value == "..") return value == "." ? "%2E" : "%2E%2E";
  return QueryEscape(value);
}

std::string PodPath(const std::string& ns, const std::string& name) {
  return "/api/v1/namespaces/" + PathSegment(ns) + "/pods/" + PathSegment(name);
}
std::string NodePath(const std::string& name) { return "/api/v1/nodes/" + PathSegment(name); }
std::string LeasePath(const std::string& ns, const std::string& name) {
  return "/apis/coordination.k8s.io/v1/namespaces/" + PathSegment(ns) + "/leases/" + PathSegment(name);
}

std::string QueryEscape(const std::string& value) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

namespace {

bool Retryable(int status) { return status == 429 || status == 500 || status == 502 || status == 503 || status == 504; }

// Splits a watch body into its JSON values. The API server frames events only by JSON itself
// (json.Encoder adds '\n', ?pretty=true spreads one event over many lines), so this tracks
// braces outside strings instead of trusting line ends.
class JsonValueSplitter {
 public:
  // Feeds text; calls emit(value_text) for each complete top-level value. Returns false (and
  // stops) on text that cannot start a JSON object.
  template <typename Emit>
  bool Feed(std::string_view text, Emit&& emit) {
    for (char c : text) {
      if (depth_ == 0) {
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
        if (c != '{') return false;
      }
      buf_ += c;
      if (in_string_) {
        if (escaped_) escaped_ = false;
        else if (c == '\\') escaped_ = true;
        else if (c == '"') in_string_ = false;
        continue;
      }
      if (c == '"') in_string_ = true;
      else if (c == '{' || c == '[') ++depth_;
      else if ((c == '}' || c == ']') && --depth_ == 0) {
        if (!emit(buf_)) return true;
        buf_.clear();
      }
      if (buf_.size() > (64u << 20)) return false;  // one event over 64 MiB is not an event
    }
    return true;
  }

 private:
  std::string buf_;
  int depth_ = 0;
  bool in_string_ = false;
  bool escaped_ = false;
};

}  // namespace

Status KubeClient::ReplyToStatus(const http::Reply& reply, const std::string& what) {
  std::string message, reason;
  json body = json::parse(reply.body, nullptr, false);
  if (body.is_object()) {
    message = body.value("message", std::string());
    reason = body.value("reason", std::string());
  }
  if (message.empty()) message = reply.body.substr(0, 300);
  std::string text = what + ": HTTP " + std::to_string(reply.status) + (reason.empty() ? "" : " " + reason) + ": " + message;
  switch (reply.status) {
    case 400:
    case 422: return Status::InvalidArgument("", text);
    case 401:
    case 403: return Status::PermissionDenied(text);
    case 404: return Status::NotFound(text);
    case 409: return reason == "AlreadyExists" ? Status::AlreadyExists(text) : Status::Aborted(text);
    case 410: return Status::Expired(text);
    case 429: return Status::ResourceExhausted(text);
    default: return reply.status >= 500 ? Status::Unavailable(text) : Status::Internal(text);
  }
}

StatusOr<json> KubeClient::Call(const http::Request& request, const std::string& what, bool retry_throttled) {
  const int attempts = retry_throttled ? 5 : 1;
  for (int i = 0;; ++i) {
    auto reply = transport_->Send(request);
    bool last = i + 1 >= attempts;
    if (!reply.ok()) {
      if (last) return reply.status();
    } else if (reply->status >= 200 && reply->status < 300) {
      if (reply->body.empty()) return json::object();
      json body = json::parse(reply->body, nullptr, false);
      if (body.is_discarded()) return Status::Internal(what + ": the API server answered with something that is not JSON");
      return body;
    } else if (last || !Retryable(reply->status)) {
      return ReplyToStatus(*reply, what);
    }
    // Throttled or briefly unavailable: back off (Retry-After if given), 100 ms doubling, 2 s cap.
    int wait_ms = std::min(2000, 100 << i);
    if (reply.ok() && reply->retry_after_seconds > 0) wait_ms = std::min(reply->retry_after_seconds, 10) * 1000;
    std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
  }
}

StatusOr<json> KubeClient::Get(const std::string& path, std::chrono::milliseconds timeout) {
  http::Request r{"GET", path, "", "application/json"};
  r.timeout = timeout;
  // A bounded read is not retried: its caller has a deadline to keep.
  return Call(r, "GET " + path, timeout.count() == 0);
}

StatusOr<ListResult> KubeClient::List(const std::string& path, const std::string& query, int page_size) {
  ListResult out;
  std::string cont;
  do {
    std::string q = "?limit=" + std::to_string(page_size);
    if (!query.empty()) q += "&" + query;
    if (!cont.empty()) q += "&continue=" + QueryEscape(cont);
    auto page = Call({"GET", path + q, "", "application/json"}, "list " + path, true);
    if (!page.ok()) return page.status();
    if (!page->contains("items") || !(*page)["items"].is_array())
      return Status::Internal("list " + path + ": the answer has no items array");
    for (auto& item : (*page)["items"]) out.items.push_back(std::move(item));
    const json& meta = page->value("metadata", json::object());
    out.resource_version = meta.value("resourceVersion", std::string());
    cont = meta.value("continue", std::string());
  } while (!cont.empty());
  return out;
}

Status KubeClient::Watch(const std::string& path, const std::string& query, const std::string& resource_version,
                         int timeout_s, const std::function<bool(const WatchEvent&)>& on_event, http::CancelFlag* cancel) {
  std::string q = "?watch=true&allowWatchBookmarks=true&resourceVersion=" + QueryEscape(resource_version) +
                  "&timeoutSeconds=" + std::to_string(timeout_s);
  if (!query.empty()) q += "&" + query;
  Status failure;
  bool stop = false;
  JsonValueSplitter splitter;
  auto on_value = [&](const std::string& text) -> bool {
    json ev = json::parse(text, nullptr, false);
    if (!ev.is_object() || !ev.contains("type") || !ev.contains("object")) {
      failure = Status::Internal("watch " + path + ": an event is not {type, object}");
      return false;
    }
    std::string type = ev["type"].is_string() ? ev["type"].get<std::string>() : "";
    WatchEvent we;
    if (type == "ADDED") we.type = WatchEventType::kAdded;
    else if (type == "MODIFIED") we.type = WatchEventType::kModified;
    else if (type == "DELETED") we.type = WatchEventType::kDeleted;
    else if (type == "BOOKMARK") we.type = WatchEventType::kBookmark;
    else if (type == "ERROR") {
      const json& st = ev["object"];
      int code = st.is_object() ? st.value("code", 0) : 0;
      std::string reason = st.is_object() ? st.value("reason", std::string()) : "";
      http::Reply as_reply{code == 0 ? 500 : code, st.dump(), 0};
      // client-go's isExpiredError: reason Expired, or 410 with reason Gone / none.
      if (reason == "Expired" || code == 410) as_reply.status = 410;
      failure = ReplyToStatus(as_reply, "watch " + path);
      return false;
    } else {
      failure = Status::Internal("watch " + path + ": unknown event type \"" + type + "\"");
      return false;
    }
    we.object = std::move(ev["object"]);
    if (!on_event(we)) {
      stop = true;
      return false;
    }
    return true;
  };
  auto reply = transport_->Stream(
      {"GET", path + q, "", "application/json"},
      [&](std::string_view line) {
        std::string with_newline(line);
        with_newline += '\n';
        bool keep = true;
        bool framed = splitter.Feed(with_newline, [&](const std::string& v) { return keep = on_value(v); });
        if (!framed) failure = Status::Internal("watch " + path + ": the stream is not a sequence of JSON objects");
        return framed && keep && !stop;
      },
      cancel);
  if (!reply.ok()) return reply.status();
  if (reply->status != 200) return ReplyToStatus(*reply, "watch " + path);
  return failure;
}

StatusOr<json> KubeClient::Create(const std::string& collection_path, const json& object,
                                  std::chrono::milliseconds timeout) {
  http::Request r{"POST", collection_path, object.dump(), "application/json"};
  r.timeout = timeout;
  return Call(r, "create in " + collection_path, false);
}

StatusOr<json> KubeClient::Replace(const std::string& path, const json& object, std::chrono::milliseconds timeout) {
  http::Request r{"PUT", path, object.dump(), "application/json"};
  r.timeout = timeout;
  return Call(r, "update " + path, false);
}

StatusOr<json> KubeClient::MergePatch(const std::string& path, const json& patch) {
  return Call({"PATCH", path, patch.dump(), "application/merge-patch+json"}, "patch " + path, true);
}

Status KubeClient::Delete(const std::string& path) {
  auto r = Call({"DELETE", path, "", "application/json"}, "delete " + path, false);
  return r.ok() || r.status().code() == StatusCode::kNotFound ? Status::Ok() : r.status();
}

StatusOr<json> KubeClient::ReadModifyWrite(const std::string& path,
                                           const std::function<Status(json&, bool* changed)>& mutate, int attempts) {
  Status last;
  for (int i = 0; i < attempts; ++i) {
    auto current = Get(path);
    if (!current.ok()) return current.status();
    bool changed = true;
    TS_RETURN_IF_ERROR(mutate(*current, &changed));
    if (!changed) return current;
    // The object still carries the resourceVersion we read: the server refuses (409) if
    // anyone wrote in between, and we go round again with fresh state.
    auto written = Replace(path, *current);
    if (written.ok() || written.status().code() != StatusCode::kAborted) return written;
    last = written.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(5 << std::min(i, 6)));
  }
  return last.WithContext("gave up after " + std::to_string(attempts) + " conflicting writes");
}

Status KubeClient::Bind(const std::string& ns, const std::string& name, const std::string& uid,
                        const std::string& node, const std::map<std::string, std::string>& annotations,
                        std::chrono::milliseconds timeout) {
  json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", name}, {"namespace", ns}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", node}}}};
  if (!uid.empty()) binding["metadata"]["uid"] = uid;
  if (!annotations.empty()) binding["metadata"]["annotations"] = annotations;
  http::Request request{"POST", PodPath(ns, name) + "/binding", binding.dump(), "application/json"};
  request.timeout = timeout;
  auto r = Call(request, "bind " + ns + "/" + name + " to " + node, false);
  return r.status();
}

Status KubeClient::Evict(const std::string& ns, const std::string& name, const std::string& uid, int grace_seconds,
                         std::chrono::milliseconds timeout) {
  json eviction = {{"apiVersion", "policy/v1"}, {"kind", "Eviction"}, {"metadata", {{"name", name}, {"namespace", ns}}}};
  // The UID precondition makes sure we evict the pod we decided about, not a namesake.
  if (!uid.empty()) eviction["deleteOptions"]["preconditions"] = {{"uid", uid}};
  if (grace_seconds >= 0) eviction["deleteOptions"]["gracePeriodSeconds"] = grace_seconds;
  http::Request request{"POST", PodPath(ns, name) + "/eviction", eviction.dump(), "application/json"};
  request.timeout = timeout;
  auto r = Call(request, "evict " + ns + "/" + name, false);
  return r.status();
}

Status KubeClient::RecordEvent(const json& involved, const std::string& type, const std::string& reason,
                               const std::string& message, const std::string& component) {
  const json meta = involved.value("metadata", json::object());
  std::string ns = meta.value("namespace", std::string("default"));
  std::string now = MicroTimeNow();
  std::string stamp = now.substr(0, 19) + "Z";  // metav1.Time: seconds, UTC
  json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", meta.value("name", std::string("tideslice")) + "."}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", involved.value("apiVersion", std::string("v1"))},
        {"kind", involved.value("kind", std::string("Pod"))},
        {"namespace", ns},
        {"name", meta.value("name", std::string())},
        {"uid", meta.value("uid", std::string())}}},
      {"type", type},
      {"reason", reason},
      {"message", message},
      {"source", {{"component", component}}},
      {"firstTimestamp", stamp},
      {"lastTimestamp", stamp},
      {"count", 1},
      {"reportingComponent", component}};
  auto r = Create("/api/v1/namespaces/" + ns + "/events", event);
  return r.status();
}

std::string MicroTimeFrom(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%06ldZ", buf, frac);
  return out;
}

std::string MicroTimeNow() { return MicroTimeFrom(std::chrono::system_clock::now()); }

StatusOr<std::chrono::system_clock::time_point> ParseRfc3339(const std::string& field, const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return Status::InvalidArgument(field, "\"" + text + "\" is not an RFC 3339 time like 2026-11-24T10:00:00Z");
  long long micros = 0;
  std::string rest;
  std::getline(in, rest);
  size_t i = 0;
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    int digits = 0;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) {
      if (digits < 6) micros = micros * 10 + (rest[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return Status::InvalidArgument(field, "\"" + text + "\" has an empty fraction");
    for (; digits < 6; ++digits) micros *= 10;
  }
  long offset_s = 0;
  if (i < rest.size() && (rest[i] == 'Z' || rest[i] == 'z')) {
    ++i;
  } else if (i + 6 <= rest.size() && (rest[i] == '+' || rest[i] == '-') && rest[i + 3] == ':') {
    int h = std::atoi(rest.substr(i + 1, 2).c_str()), m = std::atoi(rest.substr(i + 4, 2).c_str());
    offset_s = (rest[i] == '-' ? -1 : 1) * (h * 3600 + m * 60);
    i += 6;
  } else {
    return Status::InvalidArgument(field, "\"" + text + "\" has no time zone (end it with Z or +hh:mm)");
  }
  if (i != rest.size()) return Status::InvalidArgument(field, "\"" + text + "\" has trailing text");
  // system_clock counts nanoseconds in 64 bits (about 1678..2262): keep well inside.
  if (tm.tm_year < 70 || tm.tm_year >= 300)
    return Status::InvalidArgument(field, "\"" + text + "\" is not between 1970 and 2200");
  std::time_t secs = timegm(&tm) - offset_s;
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs) + std::chrono::microseconds(micros));
}

}  // namespace tideslice::kube
