#include "scheduler/service/app.h"

namespace tideslice::service {

SchedulerApp::SchedulerApp(kube::KubeClient* client, const catalog::Catalog& catalog, AppOptions options)
    : catalog_(catalog),
      options_(std::move(options)),
      cache_(catalog, options_.cache),
      binder_(client, options_.binder) {}

StatusOr<std::unique_ptr<SchedulerApp>> SchedulerApp::Start(kube::KubeClient* client, const catalog::Catalog& catalog,
                                                            AppOptions options) {
  if (options.leader_elect) TS_RETURN_IF_ERROR(ValidateLeaderElection(options.leader));
  std::unique_ptr<SchedulerApp> app(new SchedulerApp(client, catalog, std::move(options)));
  SchedulerApp* self = app.get();
  if (self->options_.leader_elect)
    self->elector_ = std::make_unique<LeaderElector>(client, self->options_.leader);
  self->service_ = std::make_unique<SchedulerService>(catalog, &self->cache_, &self->binder_, client,
                                                      [self] { return self->leading(); });
  self->service_->set_pools(self->options_.pools, self->options_.now, &self->tides_);
  if (!self->options_.pools.empty()) {
    TidalControllerOptions to = self->options_.tidal;
    to.now = self->options_.now;
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
  if (self->elector_) self->threads_.emplace_back([self] { self->elector_->Run(&self->cancel_); });
  self->threads_.emplace_back([self] {
    while (self->cancel_.SleepFor(static_cast<int>(self->options_.refresh_period.count()))) self->cache_.Refresh();
  });
  if (self->tidal_)
    self->threads_.emplace_back([self] {
      // Decisions need the caches: wait until both have listed once.
      while (!self->ready())
        if (!self->cancel_.SleepFor(100)) return;
      self->tidal_->Run([self] { return self->leading(); }, &self->cancel_);
    });

  auto extender = extender::HttpServer::Start(self->options_.extender_address,
                                              [self](const std::string& verb, const std::string& body) {
                                                return self->service_->Serve(verb, body);
                                              });
  if (!extender.ok()) {
    self->Stop();
    return extender.status().WithContext("extender endpoint");
  }
  self->extender_ = std::move(*extender);

  auto health = extender::HttpServer::StartRoutes(self->options_.health_address, [self](const extender::HttpCall& c) {
    if (c.method != "GET") return extender::HttpReply{405, "use GET\n", "text/plain"};
    if (c.path == "/healthz") return extender::HttpReply{200, "ok\n", "text/plain"};
    if (c.path == "/readyz") {
      if (self->ready()) return extender::HttpReply{200, "ok\n", "text/plain"};
      return extender::HttpReply{503, "the node and pod caches are not synced yet\n", "text/plain"};
    }
    return extender::HttpReply{404, "not found; try /healthz or /readyz\n", "text/plain"};
  });
  if (!health.ok()) {
    self->Stop();
    return health.status().WithContext("health endpoint");
  }
  self->health_ = std::move(*health);

  if (!self->options_.webhook_address.empty()) {
    extender::HttpServerOptions wo;
    wo.tls_cert_file = self->options_.tls_cert_file;
    wo.tls_key_file = self->options_.tls_key_file;
    auto webhook = extender::HttpServer::StartRoutes(
        self->options_.webhook_address,
        [self](const extender::HttpCall& c) {
          if (c.method != "POST") return extender::HttpReply{405, R"({"error":"use POST"})"};
          if (c.path == "/mutate") return ServeMutate(c.body, self->catalog_, self->options_.webhook);
          if (c.path == "/validate") return ServeValidate(c.body, self->catalog_, self->options_.webhook);
          return extender::HttpReply{404, R"({"error":"use /mutate or /validate"})"};
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
