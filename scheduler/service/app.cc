#include "scheduler/service/app.h"

#include "common/log/log.h"

namespace tideslice::service {

namespace {

// The cache verifies with the signer's own public key.
AppOptions WithTrust(AppOptions o) {
  if (o.signer) {
    auto v = trust::AssignmentVerifier::FromPem(o.signer->PublicKeyPem());
    if (v.ok()) o.cache.verifier = o.binder.verifier = *v;
    o.binder.signer = o.signer.get();
  }
  o.webhook.scheduler_name = o.webhook.scheduler_name.empty() ? o.cache.scheduler_name : o.webhook.scheduler_name;
  return o;
}

}  // namespace

SchedulerApp::SchedulerApp(kube::KubeClient* client, const catalog::Catalog& catalog, AppOptions options)
    : catalog_(catalog),
      client_(client),
      options_(WithTrust(std::move(options))),
      cache_(catalog, options_.cache),
      binder_(client, options_.binder) {}

Status SchedulerApp::PublishPublicKey(kube::KubeClient* client) {
  if (!options_.signer || options_.key_configmap.empty()) return Status::Ok();
  const std::string ns = options_.leader.lease_namespace;
  const std::string path = "/api/v1/namespaces/" + kube::PathSegment(ns) + "/configmaps/" +
                           kube::PathSegment(options_.key_configmap);
  const std::string own = options_.signer->PublicKeyPem();
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto current = client->Get(path);
    if (!current.ok() && current.status().code() == StatusCode::kNotFound) {
      kube::json cm = {{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", {{"name", options_.key_configmap}, {"namespace", ns}}},
                       {"data", {{"ed25519.pub", own}}}};
      auto created = client->Create("/api/v1/namespaces/" + kube::PathSegment(ns) + "/configmaps", cm);
      if (created.ok() || created.status().code() == StatusCode::kAlreadyExists) continue;  // re-read
      return created.status();
    }
    if (!current.ok()) return current.status();
    kube::json cm = *current;
    std::string published;
    if (cm.contains("data") && cm["data"].is_object() && cm["data"].contains("ed25519.pub") &&
        cm["data"]["ed25519.pub"].is_string())
      published = cm["data"]["ed25519.pub"].get<std::string>();
    // A changed signing key must not orphan the pods already running: the keys published before
    // stay trusted (by this cache, the binder's gate and the agents) next to the new one, newest
    // first, at most three. Only the scheduler may write this ConfigMap (RBAC by name).
    std::string keys = own;
    if (auto previous = trust::AssignmentVerifier::FromPem(published); previous.ok()) {
      int kept = 0;
      for (const auto& pem : (*previous)->KeyPems())
        if (pem != own && kept < 2) {
          keys += pem;
          ++kept;
        }
    }
    if (auto all = trust::AssignmentVerifier::FromPem(keys); all.ok()) {
      cache_.set_verifier(*all);
      binder_.set_verifier(*all);
    }
    key_published_ = true;
    if (published == keys) return Status::Ok();
    cm["data"]["ed25519.pub"] = keys;
    auto replaced = client->Replace(path, cm);
    if (replaced.ok()) return Status::Ok();
    key_published_ = false;
    if (replaced.status().code() != StatusCode::kAborted) return replaced.status();
  }
  return Status::Aborted("the ConfigMap " + options_.key_configmap + " kept changing while the key was published");
}

void SchedulerApp::FenceRound(kube::KubeClient* client) {
  if (options_.signer && !key_published_) {
    // Without the published key the agents cannot verify anything: keep trying, log once.
    Status s = PublishPublicKey(client);
    key_log_.Record("publish", s.ok() ? "ok" : "failing", s.ok() ? log::Level::kInfo : log::Level::kWarn,
                    s.ok() ? "assignment.key_published" : "assignment.key_publish_failed",
                    s.ok() ? "published the assignment public key" : s.ToString(),
                    {{"configmap", options_.key_configmap}});
  }
  if (!leading()) return;
  for (const auto& r : cache_.TakeRefused()) {
    log::Warn(r.reason == "ForgedAssignment" ? "assignment.forged" : "assignment.conflict", r.message,
              {{"pod", r.pod_key}, {"node", r.node}});
    (void)client->RecordEvent(r.involved, "Warning", r.reason, r.message, "tideslice-scheduler");
    if (r.allocating) {
      Status s = binder_.Refuse(r.pod_key, r.pod_uid, r.message);
      if (!s.ok()) log::Warn("assignment.refuse_failed", s.ToString(), {{"pod", r.pod_key}});
    }
  }
  if (!elector_) return;
  auto term = elector_->Term();
  if (!term) return;
  for (const auto& a : cache_.Allocating()) {
    if (a.lease_term == term->term && a.lease_holder == term->holder) continue;
    // Bound in another term: the cache accounts it, so it fits beside everything else; seal it
    // into ours so the agent will hand its cards out.
    Status s = binder_.Reseal(a.pod_key, a.assignment, *term);
    if (s.ok())
      log::Info("assignment.resealed", "re-sealed an allocating pod bound in an earlier lease term",
                {{"pod", a.pod_key}, {"from_term", std::to_string(a.lease_term)}, {"term", std::to_string(term->term)}});
    else
      log::Warn("assignment.reseal_failed", s.ToString(), {{"pod", a.pod_key}});
  }
}

std::string SchedulerApp::NotReadyReason() const {
  if (!nodes_->synced() || !pods_->synced()) return "the node and pod caches are not synced yet";
  for (const kube::Reflector* r : {nodes_.get(), pods_.get()}) {
    auto failing = r->failing_for();
    if (failing > options_.api_unreachable_after)
      return "the Kubernetes API has failed for " + std::to_string(failing.count() / 1000) + " s: " + r->last_error();
  }
  return NotLiveReason();
}

std::string SchedulerApp::NotLiveReason() const {
  // A listener that no longer accepts (accept loop dead, I/O threads stuck) makes the process
  // useless even though it still answers here: the kubelet should restart it.
  const std::pair<const char*, const http::HttpServer*> listeners[] = {
      {"extender", extender_.get()}, {"webhook", webhook_.get()}, {"health", health_.get()}};
  for (const auto& [name, server] : listeners) {
    if (!server) continue;
    Status s = server->Check();
    // At its connection cap a listener is busy, not dead: restarting it (liveness) or taking it
    // out of its Service (readiness) would hand a flood exactly what it wants.
    if (!s.ok() && s.code() != StatusCode::kResourceExhausted)
      return std::string("the ") + name + " listener is not healthy: " + s.message();
  }
  return "";
}

StatusOr<std::unique_ptr<SchedulerApp>> SchedulerApp::Start(kube::KubeClient* client, const catalog::Catalog& catalog,
                                                            AppOptions options) {
  if (options.leader_elect) TS_RETURN_IF_ERROR(ValidateLeaderElection(options.leader));
  std::unique_ptr<SchedulerApp> app(new SchedulerApp(client, catalog, std::move(options)));
  SchedulerApp* self = app.get();
  if (self->options_.leader_elect) {
    self->elector_ = std::make_unique<LeaderElector>(client, self->options_.leader);
    // Every bind carries the term it was made in and is bounded by the time left in it.
    LeaderElector* elector = self->elector_.get();
    self->binder_.set_fence([elector] { return elector->Term(); });
  }
  if (!self->options_.signer)
    log::Warn("assignment.unsigned", "no --assignment-signing-key: assignments are not signed, and the cache checks "
                                     "only their pod UID and node");
  if (Status s = self->PublishPublicKey(client); !s.ok())
    self->key_log_.Record("publish", "failing", log::Level::kWarn, "assignment.key_publish_failed", s.ToString(),
                          {{"configmap", self->options_.key_configmap}}, /*log_first=*/true);
  self->service_ = std::make_unique<SchedulerService>(catalog, &self->cache_, &self->binder_, client,
                                                      [self] { return self->leading(); });
  self->service_->set_pools(self->options_.pools, self->options_.now, &self->tides_);
  self->service_->set_scheduler_name(self->options_.cache.scheduler_name);
  self->filter_recorder_ = std::make_unique<FilterReasonRecorder>(client, self->options_.now);
  self->service_->set_filter_recorder(self->filter_recorder_.get());
  if (!self->options_.pools.empty()) {
    TidalControllerOptions to = self->options_.tidal;
    to.now = self->options_.now;
    if (LeaderElector* elector = self->elector_.get())
      to.lease_time_left = [elector] {
        auto t = elector->Term();
        return t ? t->time_left : std::chrono::milliseconds(0);
      };
    self->tidal_ = std::make_unique<TidalController>(client, &self->cache_, self->options_.pools, &self->tides_, to);
  }

  // The pod watch feeds the cache and the binder's one-allocating-pod-per-node gate.
  kube::Reflector::Handler pods = self->cache_.PodHandler();
  kube::Reflector::Handler pod_handler{[self, pods](std::vector<kube::json> items) {
                                         self->binder_.Replace(items);
                                         pods.replace(std::move(items));
                                       },
                                       [self, pods](kube::WatchEventType t, const kube::json& pod) {
                                         self->binder_.Observe(t, pod);
                                         pods.event(t, pod);
                                       }};
  self->nodes_ = std::make_unique<kube::Reflector>(client, "/api/v1/nodes", self->cache_.NodeHandler());
  self->pods_ = std::make_unique<kube::Reflector>(client, "/api/v1/pods", pod_handler);
  self->threads_.emplace_back([self] { self->nodes_->Run(&self->cancel_); });
  self->threads_.emplace_back([self] { self->pods_->Run(&self->cancel_); });
  // DRA: allocated claims are accounted on DRA nodes, claims and templates say what DRA pods ask
  // for. Not part of readiness: before Kubernetes 1.34 (no resource.k8s.io/v1) these fail, logged
  // once, and the device-plugin path works as before.
  self->claims_ = std::make_unique<kube::Reflector>(client, "/apis/resource.k8s.io/v1/resourceclaims",
                                                    self->cache_.ClaimHandler());
  self->claim_templates_ = std::make_unique<kube::Reflector>(
      client, "/apis/resource.k8s.io/v1/resourceclaimtemplates", self->cache_.ClaimTemplateHandler());
  self->threads_.emplace_back([self] { self->claims_->Run(&self->cancel_); });
  self->threads_.emplace_back([self] { self->claim_templates_->Run(&self->cancel_); });
  if (self->elector_) self->threads_.emplace_back([self] { self->elector_->Run(&self->cancel_); });
  self->threads_.emplace_back([self] {
    while (self->cancel_.SleepFor(static_cast<int>(self->options_.refresh_period.count()))) {
      self->cache_.Refresh();
      self->FenceRound(self->client_);
    }
  });
  if (self->tidal_)
    self->threads_.emplace_back([self] {
      // Decisions need the caches: wait until both have listed once.
      while (!self->ready())
        if (!self->cancel_.SleepFor(100)) return;
      self->tidal_->Run([self] { return self->leading(); }, &self->cancel_);
    });

  auto extender = http::HttpServer::Start(self->options_.extender_address,
                                              [self](const std::string& verb, const std::string& body) {
                                                return self->service_->Serve(verb, body);
                                              });
  if (!extender.ok()) {
    self->Stop();
    return extender.status().WithContext("extender endpoint");
  }
  self->extender_ = std::move(*extender);

  auto health = http::HttpServer::StartRoutes(self->options_.health_address, [self](const http::HttpCall& c) {
    if (c.method != "GET") return http::HttpReply{405, "use GET\n", "text/plain"};
    if (c.path == "/healthz") return http::HttpReply{200, "ok\n", "text/plain"};
    if (c.path == "/readyz") {
      std::string why = self->NotReadyReason();
      if (why.empty()) return http::HttpReply{200, "ok\n", "text/plain"};
      return http::HttpReply{503, why + "\n", "text/plain"};
    }
    if (c.path == "/livez") {
      std::string why = self->NotLiveReason();
      if (why.empty()) return http::HttpReply{200, "ok\n", "text/plain"};
      return http::HttpReply{503, why + "\n", "text/plain"};
    }
    return http::HttpReply{404, "not found; try /healthz, /livez or /readyz\n", "text/plain"};
  });
  if (!health.ok()) {
    self->Stop();
    return health.status().WithContext("health endpoint");
  }
  self->health_ = std::move(*health);

  if (!self->options_.webhook_address.empty()) {
    http::HttpServerOptions wo;
    wo.tls_cert_file = self->options_.tls_cert_file;
    wo.tls_key_file = self->options_.tls_key_file;
    // Any pod can reach the webhook port; the API servers need few connections each. A lower
    // per-address cap keeps a handful of tenant pods from holding every slot.
    wo.max_connections_per_client = 32;
    auto webhook = http::HttpServer::StartRoutes(
        self->options_.webhook_address,
        [self](const http::HttpCall& c) {
          if (c.method != "POST") return http::HttpReply{405, R"({"error":"use POST"})"};
          if (c.path == "/mutate") return ServeMutate(c.body, self->catalog_, self->options_.webhook);
          if (c.path == "/validate") return ServeValidate(c.body, self->catalog_, self->options_.webhook);
          return http::HttpReply{404, R"({"error":"use /mutate or /validate"})"};
        },
        wo);
    if (!webhook.ok()) {
      self->Stop();
      return webhook.status().WithContext("admission webhook");
    }
    self->webhook_ = std::move(*webhook);
  }
  return app;
}

void SchedulerApp::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (extender_) extender_->Stop();
  if (health_) health_->Stop();
  if (webhook_) webhook_->Stop();
  cancel_.Cancel();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

SchedulerApp::~SchedulerApp() { Stop(); }

}  // namespace tideslice::service
