// The test API server's implementation; the only file in tests/support that includes cpprest.
#include "tests/support/test_apiserver.h"

#include <cpprest/http_listener.h>
#include <cpprest/producerconsumerstream.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "tests/support/test_support.h"

namespace tideslice::testsupport {
namespace {

using nlohmann::json;
using web::http::http_request;
using web::http::http_response;
using web::http::experimental::listener::http_listener;

const std::set<std::string> kClusterScoped = {"nodes", "resourceslices", "deviceclasses"};
const std::set<std::string> kKnown = {"nodes", "pods", "events", "leases", "poddisruptionbudgets", "configmaps",
                                      // resource.k8s.io/v1 (DRA)
                                      "resourceslices", "resourceclaims", "resourceclaimtemplates", "deviceclasses"};

// Collections that take DELETE (deletecollection).
const std::set<std::string> kDeleteCollection = {"resourceslices"};

std::string Kind(const std::string& resource) {
  static const std::map<std::string, std::string> kinds = {{"nodes", "Node"},
                                                            {"pods", "Pod"},
                                                            {"events", "Event"},
                                                            {"leases", "Lease"},
                                                            {"poddisruptionbudgets", "PodDisruptionBudget"},
                                                            {"configmaps", "ConfigMap"},
                                                            {"resourceslices", "ResourceSlice"},
                                                            {"resourceclaims", "ResourceClaim"},
                                                            {"resourceclaimtemplates", "ResourceClaimTemplate"},
                                                            {"deviceclasses", "DeviceClass"}};
  return kinds.at(resource);
}
std::string ApiVersion(const std::string& resource) {
  if (resource == "leases") return "coordination.k8s.io/v1";
  if (resource == "poddisruptionbudgets") return "policy/v1";
  if (resource == "resourceslices" || resource == "resourceclaims" || resource == "resourceclaimtemplates" ||
      resource == "deviceclasses")
    return "resource.k8s.io/v1";
  return "v1";
}

json StatusBody(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},     {"apiVersion", "v1"}, {"metadata", json::object()},
          {"status", code < 300 ? "Success" : "Failure"}, {"message", message},
          {"reason", reason},     {"code", code}};
}

struct Reply {
  int status = 200;
  json body;
};

Reply Fail(int code, const std::string& reason, const std::string& message) {
  return {code, StatusBody(code, reason, message)};
}

// One parsed request path: /api/v1[/namespaces/{ns}]/{resource}[/{name}[/{sub}]] or the same
// under /apis/{group}/{version}.
struct Target {
  std::string resource, ns, name, sub;
  bool ok = false;
};

Target ParsePath(const std::string& path) {
  std::vector<std::string> seg;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) seg.push_back(web::uri::decode(path.substr(i, j - i)));
    i = j + 1;
  }
  size_t k;
  if (seg.size() >= 2 && seg[0] == "api" && seg[1] == "v1") k = 2;
  else if (seg.size() >= 3 && seg[0] == "apis") k = 3;
  else return {};
  Target t;
  if (seg.size() > k + 1 && seg[k] == "namespaces") {
    t.ns = seg[k + 1];
    k += 2;
  }
  if (k >= seg.size()) return {};
  t.resource = seg[k];
  if (k + 1 < seg.size()) t.name = seg[k + 1];
  if (k + 2 < seg.size()) t.sub = seg[k + 2];
  if (k + 3 < seg.size()) return {};
  t.ok = kKnown.count(t.resource) > 0;
  return t;
}

const json* Lookup(const json& obj, const std::string& dotted) {
  const json* cur = &obj;
  size_t i = 0;
  while (i <= dotted.size()) {
    size_t j = dotted.find('.', i);
    if (j == std::string::npos) j = dotted.size();
    std::string key = dotted.substr(i, j - i);
    if (!cur->is_object() || !cur->contains(key)) return nullptr;
    cur = &(*cur)[key];
    i = j + 1;
  }
  return cur;
}

struct Selector {
  struct Term {
    std::string key, value;
    enum { kEq, kNe, kExists } op;
  };
  std::vector<Term> labels, fields;

  bool Matches(const json& obj) const {
    const json* lbls = Lookup(obj, "metadata.labels");
    for (const auto& t : labels) {
      const json* v = lbls && lbls->is_object() && lbls->contains(t.key) ? &(*lbls)[t.key] : nullptr;
      bool has = v && v->is_string();
      if (t.op == Term::kExists && !has) return false;
      if (t.op == Term::kEq && (!has || v->get<std::string>() != t.value)) return false;
      if (t.op == Term::kNe && has && v->get<std::string>() == t.value) return false;
    }
    for (const auto& t : fields) {
      const json* v = Lookup(obj, t.key);
      std::string s = v && v->is_string() ? v->get<std::string>() : "";
      if ((t.op == Term::kEq) != (s == t.value)) return false;
    }
    return true;
  }
};

std::optional<std::string> ParseTerms(const std::string& text, bool fields, std::vector<Selector::Term>* out) {
  static const std::set<std::string> kFields = {"metadata.name", "metadata.namespace", "spec.nodeName",
                                                "spec.schedulerName", "status.phase",
                                                // Events about one object (kubectl-tideslice why)
                                                "involvedObject.name", "involvedObject.uid",
                                                // ResourceSlices
                                                "spec.driver", "spec.pool.name"};
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string term = text.substr(i, j - i);
    i = j + 1;
    if (term.empty()) continue;
    Selector::Term t;
    size_t p;
    if ((p = term.find("!=")) != std::string::npos) {
      t = {term.substr(0, p), term.substr(p + 2), Selector::Term::kNe};
    } else if ((p = term.find("==")) != std::string::npos) {
      t = {term.substr(0, p), term.substr(p + 2), Selector::Term::kEq};
    } else if ((p = term.find('=')) != std::string::npos) {
      t = {term.substr(0, p), term.substr(p + 1), Selector::Term::kEq};
    } else if (!fields) {
      t = {term, "", Selector::Term::kExists};
    } else {
      return "invalid field selector term \"" + term + "\"";
    }
    if (fields && !kFields.count(t.key)) return "field label not supported: " + t.key;
    out->push_back(t);
  }
  return std::nullopt;
}

std::string Now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Watcher {
  std::string resource, ns;
  Selector selector;
  bool bookmarks = false;
  std::chrono::steady_clock::time_point deadline;
  concurrency::streams::producer_consumer_buffer<uint8_t> buf;
  bool closed = false;

  void Write(const json& event) {
    if (closed) return;
    std::string line = event.dump() + "\n";
    buf.putn_nocopy(reinterpret_cast<const uint8_t*>(line.data()), line.size()).wait();
    // A reader waits for a full chunk unless the buffer is synced: sync = send this event now.
    buf.sync().wait();
  }
  void Close() {
    if (closed) return;
    closed = true;
    buf.close(std::ios_base::out).wait();
  }
};

class Server : public TestApiServer {
 public:
  explicit Server(Options o) : options_(std::move(o)) {}

  bool Open() {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreeLoopbackPort();
      listener_ = std::make_unique<http_listener>(web::uri("http://127.0.0.1:" + std::to_string(port_)));
      listener_->support([this](http_request req) { Accept(std::move(req)); });
      try {
        listener_->open().wait();
        ticker_ = std::thread([this] { Tick(); });
        return true;
      } catch (const std::exception&) {
        listener_.reset();
      }
    }
    return false;
  }

  ~Server() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& w : watchers_) w->Close();
      watchers_.clear();
    }
    tick_cv_.notify_all();
    if (ticker_.joinable()) ticker_.join();
    for (int i = 0; i < 5000 && in_flight_.load() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    try {
      listener_->close().wait();
    } catch (...) {
    }
  }

  std::string url() const override { return "http://127.0.0.1:" + std::to_string(port_); }

  std::string WriteKubeconfig(const std::string& dir) const override {
    std::string path = dir + "/kubeconfig";
    std::ofstream out(path);
    out << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        << "clusters:\n- name: test\n  cluster:\n    server: " << url() << "\n"
        << "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n"
        << "users:\n- name: test\n  user:\n";
    std::lock_guard<std::mutex> lock(mu_);
    if (!options_.required_token.empty()) out << "    token: " << options_.required_token << "\n";
    else out << "    {}\n";
    return path;
  }

  json Upsert(const std::string& resource, json object) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::string ns = kClusterScoped.count(resource) ? "" : object["metadata"].value("namespace", std::string("default"));
    std::string name = object["metadata"].value("name", std::string());
    auto& bucket = store_[resource];
    auto it = bucket.find(Key(ns, name));
    if (it == bucket.end()) {
      // The back door may back-date an object (tests with a fake clock); the API never does.
      json created = object["metadata"].value("creationTimestamp", json());
      json stored = Insert(resource, ns, std::move(object));
      if (!created.is_string()) return stored;
      stored["metadata"]["creationTimestamp"] = created;
      return Store(resource, ns, std::move(stored), "MODIFIED");
    }
    object["metadata"]["uid"] = it->second["metadata"]["uid"];
    object["metadata"]["creationTimestamp"] = it->second["metadata"]["creationTimestamp"];
    return Store(resource, ns, std::move(object), "MODIFIED");
  }

  std::optional<json> Get(const std::string& resource, const std::string& ns, const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = store_.find(resource);
    if (r == store_.end()) return std::nullopt;
    auto it = r->second.find(Key(ns, name));
    if (it == r->second.end()) return std::nullopt;
    return it->second;
  }

  std::vector<json> List(const std::string& resource) const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<json> out;
    auto r = store_.find(resource);
    if (r != store_.end())
      for (const auto& [k, v] : r->second) out.push_back(v);
    return out;
  }

  bool Remove(const std::string& resource, const std::string& ns, const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    return Erase(resource, ns, name);
  }

  void Compact() override {
    std::lock_guard<std::mutex> lock(mu_);
    history_.clear();
    oldest_rv_ = rv_;
  }

  void CloseWatches() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& w : watchers_) w->Close();
    watchers_.clear();
  }

  void FailNext(const std::string& method, const std::string& path_part, int status, int count,
                const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    failures_.push_back({method, path_part, status, count, reason});
  }

  void set_required_token(const std::string& token) override {
    std::lock_guard<std::mutex> lock(mu_);
    options_.required_token = token;
  }

  int64_t resource_version() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return rv_;
  }
  int open_watches() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(watchers_.size());
  }
  int requests(const std::string& key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = counts_.find(key);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  struct Failure {
    std::string method, path_part;
    int status, count;
    std::string reason;
  };
  struct HistoryEvent {
    int64_t rv;
    std::string resource, type;
    json object;
  };

  static std::string Key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

  // --- store (mu_ held) ---
  json Insert(const std::string& resource, const std::string& ns, json object) {
    auto& meta = object["metadata"];
    if (!ns.empty()) meta["namespace"] = ns;
    char uid[40];
    std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012llx", static_cast<unsigned long long>(++uid_seq_));
    meta["uid"] = uid;
    meta["creationTimestamp"] = Now();
    return Store(resource, ns, std::move(object), "ADDED");
  }

  json Store(const std::string& resource, const std::string& ns, json object, const std::string& type) {
    object["kind"] = Kind(resource);
    object["apiVersion"] = ApiVersion(resource);
    object["metadata"]["resourceVersion"] = std::to_string(++rv_);
    std::string name = object["metadata"].value("name", std::string());
    store_[resource][Key(ns, name)] = object;
    Emit(resource, type, object);
    return object;
  }

  bool Erase(const std::string& resource, const std::string& ns, const std::string& name) {
    auto& bucket = store_[resource];
    auto it = bucket.find(Key(ns, name));
    if (it == bucket.end()) return false;
    json last = it->second;
    bucket.erase(it);
    last["metadata"]["resourceVersion"] = std::to_string(++rv_);
    Emit(resource, "DELETED", last);
    return true;
  }

  void Emit(const std::string& resource, const std::string& type, const json& object) {
    history_.push_back({rv_, resource, type, object});
    while (history_.size() > options_.history_limit) {
      oldest_rv_ = history_.front().rv;
      history_.pop_front();
    }
    json ev = {{"type", type}, {"object", object}};
    for (auto& w : watchers_)
      if (w->resource == resource && Visible(*w, object)) w->Write(ev);
  }

  static bool Visible(const Watcher& w, const json& object) {
    if (!w.ns.empty() && object["metadata"].value("namespace", std::string()) != w.ns) return false;
    return w.selector.Matches(object);
  }

  // --- HTTP ---
  void Accept(http_request req) {
    in_flight_++;
    req.extract_utf8string(true).then([this, req](pplx::task<std::string> body_task) mutable {
      std::string body;
      try {
        body = body_task.get();
      } catch (...) {
      }
      std::optional<Reply> reply;
      std::shared_ptr<Watcher> watch;
      try {
        reply = Handle(req, body, &watch);
      } catch (const std::exception& e) {
        reply = Fail(500, "InternalError", std::string("test apiserver: ") + e.what());
      }
      if (watch) {
        http_response resp(200);
        resp.headers().set_content_type("application/json");
        resp.set_body(concurrency::streams::istream(watch->buf));
        Send(req, resp);
        return;
      }
      http_response resp(static_cast<web::http::status_code>(reply->status));
      resp.set_body(reply->body.dump(), "application/json");
      Send(req, resp);
    });
  }

  void Send(http_request& req, http_response& resp) {
    req.reply(resp).then([this](pplx::task<void> t) {
      try {
        t.get();
      } catch (...) {
      }
      in_flight_--;
    });
  }

  std::optional<Reply> Handle(const http_request& req, const std::string& body, std::shared_ptr<Watcher>* watch) {
    const std::string method = req.method();
    const std::string path = req.request_uri().path();
    auto query = web::uri::split_query(req.request_uri().query());
    for (auto& [k, v] : query) v = web::uri::decode(v);
    std::lock_guard<std::mutex> lock(mu_);
    if (!options_.required_token.empty()) {
      auto it = req.headers().find("Authorization");
      if (it == req.headers().end() || it->second != "Bearer " + options_.required_token)
        return Fail(401, "Unauthorized", "Unauthorized");
    }
    for (auto& f : failures_) {
      if (f.count > 0 && f.method == method && path.find(f.path_part) != std::string::npos) {
        f.count--;
        return Fail(f.status, f.reason, "injected failure " + std::to_string(f.status));
      }
    }
    Target t = ParsePath(path);
    if (!t.ok) return Fail(404, "NotFound", "the server could not find the requested resource (" + path + ")");
    counts_[method + " " + t.resource + (t.sub.empty() ? "" : "/" + t.sub)]++;
    if (kClusterScoped.count(t.resource) && !t.ns.empty()) return Fail(404, "NotFound", t.resource + " are not namespaced");
    json obj;
    if (!body.empty()) {
      obj = json::parse(body, nullptr, false);
      if (obj.is_discarded()) return Fail(400, "BadRequest", "the request body is not JSON");
    }
    if (t.name.empty()) {
      if (method == "GET") {
        bool is_watch = query.count("watch") && (query["watch"] == "true" || query["watch"] == "1");
        return is_watch ? StartWatch(t, query, watch) : ListObjects(t, query);
      }
      if (method == "POST") return Create(t, std::move(obj));
      if (method == "DELETE" && kDeleteCollection.count(t.resource)) return DeleteCollection(t, query);
      return Fail(405, "MethodNotAllowed", method + " is not allowed on a collection");
    }
    const std::string ns = kClusterScoped.count(t.resource) ? "" : t.ns;
    auto& bucket = store_[t.resource];
    auto it = bucket.find(Key(ns, t.name));
    const std::string what = t.resource + " \"" + t.name + "\"";
    if (t.sub == "binding" && t.resource == "pods" && method == "POST") return Bind(t, ns, obj);
    if (t.sub == "eviction" && t.resource == "pods" && method == "POST") return Evict(t, ns, obj);
    if (!t.sub.empty() && t.sub != "status") return Fail(404, "NotFound", "no subresource " + t.sub);
    if (it == bucket.end()) return Fail(404, "NotFound", what + " not found");
    json& current = it->second;
    if (method == "GET") return Reply{200, current};
    if (method == "DELETE") {
      json last = current;
      Erase(t.resource, ns, t.name);
      return Reply{200, last};
    }
    json updated;
    if (method == "PUT") {
      updated = std::move(obj);
      if (!updated.is_object() || !updated.contains("metadata"))
        return Fail(400, "BadRequest", "the body must be the whole object with metadata");
      if (updated["metadata"].value("name", std::string()) != t.name)
        return Fail(400, "BadRequest", "the name in the body does not match the URL");
    } else if (method == "PATCH") {
      std::string ct = req.headers().content_type();
      ct = ct.substr(0, ct.find(';'));
      updated = current;
      try {
        if (ct == "application/merge-patch+json" || ct == "application/strategic-merge-patch+json") {
          updated.merge_patch(obj);
        } else if (ct == "application/json-patch+json") {
          updated = current.patch(obj);
        } else {
          return Fail(415, "UnsupportedMediaType", "the body of the request was in an unknown format: " + ct);
        }
      } catch (const std::exception& e) {
        return Fail(422, "Invalid", std::string("the patch cannot be applied: ") + e.what());
      }
      // A patch that sets metadata.resourceVersion is a precondition, as on a real server.
      const json* prv = Lookup(obj, "metadata.resourceVersion");
      if (!prv || !prv->is_string()) updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"];
    } else {
      return Fail(405, "MethodNotAllowed", method + " is not allowed");
    }
    std::string want_rv = updated["metadata"].value("resourceVersion", std::string());
    if (!want_rv.empty() && want_rv != current["metadata"].value("resourceVersion", std::string()))
      return Fail(409, "Conflict",
                  "Operation cannot be fulfilled on " + what +
                      ": the object has been modified; please apply your changes to the latest version and try again");
    updated["metadata"]["uid"] = current["metadata"]["uid"];
    updated["metadata"]["creationTimestamp"] = current["metadata"]["creationTimestamp"];
    updated["metadata"]["name"] = t.name;
    if (!ns.empty()) updated["metadata"]["namespace"] = ns;
    // The main resource does not change status and the status subresource changes nothing else.
    if (t.sub == "status") {
      json s = updated.value("status", json::object());
      updated = current;
      updated["status"] = s;
    } else if (current.contains("status")) {
      updated["status"] = current["status"];
    }
    return Reply{200, Store(t.resource, ns, std::move(updated), "MODIFIED")};
  }

  Reply Create(const Target& t, json obj) {
    if (!obj.is_object()) return Fail(400, "BadRequest", "the body must be an object");
    auto& meta = obj["metadata"];
    std::string name = meta.value("name", std::string());
    if (name.empty() && meta.contains("generateName")) {
      static const char* alphabet = "bcdfghjklmnpqrstvwxz2456789";
      std::uniform_int_distribution<int> pick(0, 26);
      name = meta.value("generateName", std::string());
      for (int i = 0; i < 5; ++i) name += alphabet[pick(rng_)];
      meta["name"] = name;
    }
    if (name.empty()) return Fail(422, "Invalid", "metadata.name: Required value: name or generateName is required");
    std::string ns = kClusterScoped.count(t.resource) ? "" : (t.ns.empty() ? "default" : t.ns);
    if (store_[t.resource].count(Key(ns, name)))
      return Fail(409, "AlreadyExists", t.resource + " \"" + name + "\" already exists");
    meta.erase("resourceVersion");
    return Reply{201, Insert(t.resource, ns, std::move(obj))};
  }

  Reply Bind(const Target& t, const std::string& ns, const json& binding) {
    auto it = store_["pods"].find(Key(ns, t.name));
    if (it == store_["pods"].end()) return Fail(404, "NotFound", "pods \"" + t.name + "\" not found");
    if (!binding.is_object() || binding.value("kind", std::string()) != "Binding")
      return Fail(400, "BadRequest", "the body must be a Binding");
    const json* target_name = Lookup(binding, "target.name");
    if (!target_name || !target_name->is_string() || target_name->get<std::string>().empty())
      return Fail(422, "Invalid", "target.name: Required value");
    const json* kind = Lookup(binding, "target.kind");
    if (kind && kind->is_string() && !kind->get<std::string>().empty() && kind->get<std::string>() != "Node")
      return Fail(422, "Invalid", "target.kind: must be empty or Node");
    if (Lookup(binding, "metadata.name") && binding["metadata"].value("name", std::string()) != t.name)
      return Fail(400, "BadRequest", "the name in the body does not match the URL");
    json pod = it->second;
    const json* uid = Lookup(binding, "metadata.uid");
    if (uid && uid->is_string() && !uid->get<std::string>().empty() && *uid != pod["metadata"]["uid"])
      return Fail(409, "Conflict", "Precondition failed: UID in precondition: " + uid->get<std::string>() +
                                       ", UID in object meta: " + pod["metadata"]["uid"].get<std::string>());
    std::string bound = pod.value("spec", json::object()).value("nodeName", std::string());
    if (!bound.empty())
      return Fail(409, "Conflict", "pod " + t.name + " is already assigned to node \"" + bound + "\"");
    pod["spec"]["nodeName"] = *target_name;
    if (const json* ann = Lookup(binding, "metadata.annotations"); ann && ann->is_object())
      for (const auto& [k, v] : ann->items()) pod["metadata"]["annotations"][k] = v;
    pod["status"]["conditions"].push_back({{"type", "PodScheduled"}, {"status", "True"}});
    Store("pods", ns, std::move(pod), "MODIFIED");
    return Reply{201, StatusBody(201, "", "")};
  }

  Reply Evict(const Target& t, const std::string& ns, const json& eviction) {
    auto it = store_["pods"].find(Key(ns, t.name));
    if (it == store_["pods"].end()) return Fail(404, "NotFound", "pods \"" + t.name + "\" not found");
    if (Lookup(eviction, "metadata.name") && eviction["metadata"].value("name", std::string()) != t.name)
      return Fail(400, "BadRequest", "name in URL does not match name in Eviction object");
    const json& pod = it->second;
    if (const json* uid = Lookup(eviction, "deleteOptions.preconditions.uid");
        uid && uid->is_string() && *uid != pod["metadata"]["uid"])
      return Fail(409, "Conflict", "Precondition failed: UID in precondition: " + uid->get<std::string>());
    std::string phase = pod.value("status", json::object()).value("phase", std::string());
    if (phase == "Running") {
      std::vector<const json*> pdbs;
      for (const auto& [k, pdb] : store_["poddisruptionbudgets"]) {
        if (pdb["metadata"].value("namespace", std::string()) != ns) continue;
        const json* ml = Lookup(pdb, "spec.selector.matchLabels");
        if (!ml || !ml->is_object()) continue;
        Selector s;
        for (const auto& [lk, lv] : ml->items()) s.labels.push_back({lk, lv.get<std::string>(), Selector::Term::kEq});
        if (s.Matches(pod)) pdbs.push_back(&pdb);
      }
      if (pdbs.size() > 1)
        return Fail(500, "InternalError",
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.");
      if (pdbs.size() == 1) {
        const json& pdb = *pdbs[0];
        Selector s;
        for (const auto& [lk, lv] : pdb["spec"]["selector"]["matchLabels"].items())
          s.labels.push_back({lk, lv.get<std::string>(), Selector::Term::kEq});
        int expected = 0, healthy = 0;
        for (const auto& [k, p] : store_["pods"]) {
          if (p["metadata"].value("namespace", std::string()) != ns || !s.Matches(p)) continue;
          ++expected;
          if (p.value("status", json::object()).value("phase", std::string()) == "Running") ++healthy;
        }
        int allowed = pdb["spec"].contains("minAvailable") ? healthy - pdb["spec"]["minAvailable"].get<int>()
                                                           : pdb["spec"].value("maxUnavailable", 0) - (expected - healthy);
        if (allowed <= 0) {
          Reply r = Fail(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.");
          r.body["details"] = {{"causes", {{{"reason", "DisruptionBudget"},
                                            {"message", "The disruption budget " + pdb["metadata"]["name"].get<std::string>() +
                                                            " needs " + std::to_string(healthy - allowed) +
                                                            " healthy pods and has " + std::to_string(healthy) +
                                                            " currently"}}}},
                               {"retryAfterSeconds", 10}};
          return r;
        }
      }
    }
    Erase("pods", ns, t.name);
    return Reply{201, StatusBody(201, "", "")};
  }

  // DELETE on a collection (the kubelet wipes a node's ResourceSlices this way): every object
  // the selectors match goes, each with a DELETED event; the reply is the list of what went.
  Reply DeleteCollection(const Target& t, std::map<std::string, std::string>& query) {
    Selector sel;
    if (auto e = ParseSelector(query, &sel)) return Fail(400, "BadRequest", *e);
    std::vector<std::pair<std::string, std::string>> gone;
    json items = json::array();
    for (const auto& [key, obj] : store_[t.resource]) {
      if (!t.ns.empty() && obj["metadata"].value("namespace", std::string()) != t.ns) continue;
      if (!sel.Matches(obj)) continue;
      gone.emplace_back(obj["metadata"].value("namespace", std::string()), obj["metadata"].value("name", std::string()));
      items.push_back(obj);
    }
    for (const auto& [ns, name] : gone) Erase(t.resource, ns, name);
    return Reply{200, {{"kind", Kind(t.resource) + "List"}, {"apiVersion", ApiVersion(t.resource)},
                       {"metadata", {{"resourceVersion", std::to_string(rv_)}}}, {"items", items}}};
  }

  std::optional<std::string> ParseSelector(std::map<std::string, std::string>& query, Selector* s) {
    if (auto e = ParseTerms(query["labelSelector"], false, &s->labels)) return e;
    return ParseTerms(query["fieldSelector"], true, &s->fields);
  }

  Reply ListObjects(const Target& t, std::map<std::string, std::string>& query) {
    Selector sel;
    if (auto e = ParseSelector(query, &sel)) return Fail(400, "BadRequest", *e);
    int64_t limit = query.count("limit") ? std::atoll(query["limit"].c_str()) : 0;
    std::string after;
    int64_t list_rv = rv_;
    if (!query["continue"].empty()) {
      const std::string& token = query["continue"];
      size_t bar = token.find('|');
      if (bar == std::string::npos) return Fail(400, "BadRequest", "continue key is not valid");
      list_rv = std::atoll(token.substr(0, bar).c_str());
      after = token.substr(bar + 1);
      if (list_rv < oldest_rv_)
        return Fail(410, "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter.");
    }
    json items = json::array();
    std::string cont;
    int64_t remaining = 0;
    for (const auto& [key, obj] : store_[t.resource]) {
      if (!after.empty() && key <= after) continue;
      if (!t.ns.empty() && obj["metadata"].value("namespace", std::string()) != t.ns) continue;
      if (!sel.Matches(obj)) continue;
      if (limit > 0 && static_cast<int64_t>(items.size()) >= limit) {
        ++remaining;
        continue;
      }
      json item = obj;
      item.erase("kind");
      item.erase("apiVersion");
      items.push_back(std::move(item));
      if (limit > 0 && static_cast<int64_t>(items.size()) == limit) cont = std::to_string(list_rv) + "|" + key;
    }
    json meta = {{"resourceVersion", std::to_string(list_rv)}};
    if (remaining > 0) {
      meta["continue"] = cont;
      meta["remainingItemCount"] = remaining;
    }
    return Reply{200, {{"kind", Kind(t.resource) + "List"}, {"apiVersion", ApiVersion(t.resource)},
                       {"metadata", meta}, {"items", items}}};
  }

  std::optional<Reply> StartWatch(const Target& t, std::map<std::string, std::string>& query,
                                  std::shared_ptr<Watcher>* out) {
    auto w = std::make_shared<Watcher>();
    if (auto e = ParseSelector(query, &w->selector)) return Fail(400, "BadRequest", *e);
    w->resource = t.resource;
    w->ns = t.ns;
    w->bookmarks = query["allowWatchBookmarks"] == "true" || query["allowWatchBookmarks"] == "1";
    int timeout_s = query.count("timeoutSeconds") ? std::atoi(query["timeoutSeconds"].c_str()) : 1800;
    w->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(1, timeout_s));
    const std::string& rv_text = query["resourceVersion"];
    if (rv_text.empty() || rv_text == "0") {
      // "Any" / "most recent": synthetic ADDED events for the current state, then live.
      for (const auto& [key, obj] : store_[t.resource])
        if (Visible(*w, obj)) w->Write({{"type", "ADDED"}, {"object", obj}});
    } else {
      int64_t from = std::atoll(rv_text.c_str());
      if (from < oldest_rv_) {
        w->Write({{"type", "ERROR"},
                  {"object", StatusBody(410, "Expired", "too old resource version: " + rv_text + " (" +
                                                            std::to_string(oldest_rv_ + 1) + ")")}});
        w->Close();
        *out = w;
        return std::nullopt;
      }
      for (const auto& ev : history_)
        if (ev.rv > from && ev.resource == t.resource && Visible(*w, ev.object))
          w->Write({{"type", ev.type}, {"object", ev.object}});
    }
    watchers_.push_back(w);
    *out = w;
    return std::nullopt;
  }

  // Bookmarks and watch timeouts.
  void Tick() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      tick_cv_.wait_for(lock, std::chrono::milliseconds(options_.bookmark_interval_ms));
      if (stopping_) break;
      auto now = std::chrono::steady_clock::now();
      for (auto it = watchers_.begin(); it != watchers_.end();) {
        auto& w = **it;
        if (now >= w.deadline) {
          w.Close();
          it = watchers_.erase(it);
          continue;
        }
        if (w.bookmarks)
          w.Write({{"type", "BOOKMARK"},
                   {"object", {{"kind", Kind(w.resource)}, {"apiVersion", ApiVersion(w.resource)},
                               {"metadata", {{"resourceVersion", std::to_string(rv_)}}}}}});
        ++it;
      }
    }
  }

  Options options_;
  int port_ = 0;
  std::unique_ptr<http_listener> listener_;
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, json>> store_;
  std::deque<HistoryEvent> history_;
  int64_t rv_ = 100;
  int64_t oldest_rv_ = 100;
  uint64_t uid_seq_ = 0;
  std::vector<std::shared_ptr<Watcher>> watchers_;
  std::vector<Failure> failures_;
  std::map<std::string, int> counts_;
  std::mt19937 rng_{42};
  bool stopping_ = false;
  std::condition_variable tick_cv_;
  std::thread ticker_;
  std::atomic<int> in_flight_{0};
};

}  // namespace

std::unique_ptr<TestApiServer> TestApiServer::Start() { return Start(Options{}); }

std::unique_ptr<TestApiServer> TestApiServer::Start(Options options) {
  auto s = std::make_unique<Server>(std::move(options));
  if (!s->Open()) return nullptr;
  return s;
}

}  // namespace tideslice::testsupport
