// Everything tideslice-scheduler runs, wired once: node, pod and DRA (ResourceClaim and
// ResourceClaimTemplate) reflectors feeding the cache (and the binder's gate), the leader elector, the extender endpoint, the health endpoints and,
// when configured, the admission webhook. main() resolves flags into AppOptions; the end-to-end
// tests start the same object against the test API server.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/catalog/catalog.h"
#include "common/log/log.h"
#include "common/trust/assignment_seal.h"
#include "common/kube/client.h"
#include "common/kube/reflector.h"
#include "common/http/server.h"
#include "scheduler/service/binder.h"
#include "scheduler/service/cache.h"
#include "scheduler/service/leader_election.h"
#include "scheduler/service/scheduler_service.h"
#include "scheduler/service/tidal_controller.h"
#include "scheduler/service/webhook.h"
#include "scheduler/tidal/pool.h"

namespace tideslice::service {

struct AppOptions {
  std::string extender_address = "http://127.0.0.1:8888/tideslice";  // kube-scheduler's urlPrefix
  std::string health_address = "http://0.0.0.0:10260";               // /healthz, /readyz
  std::string webhook_address;                                       // "https://0.0.0.0:9443", empty = off
  std::string tls_cert_file, tls_key_file;                           // for the webhook
  WebhookOptions webhook;
  bool leader_elect = true;
  LeaderElectionOptions leader;
  CacheOptions cache;
  BinderOptions binder;
  std::chrono::milliseconds refresh_period{2000};
  std::vector<tidal::PoolSpec> pools;      // validated (tidal::ValidatePools)
  TidalControllerOptions tidal;            // its `now` is replaced by this struct's
  std::function<std::chrono::system_clock::time_point()> now = [] { return std::chrono::system_clock::now(); };
  // Signs every assignment (Ed25519). Its public key verifies the assignments the cache adopts
  // and is published in the ConfigMap `key_configmap` (lease namespace, key ed25519.pub) for the
  // node agents. Null: assignments are unsigned and the cache checks only UID and node (local
  // runs and tests; the chart always sets a key).
  std::shared_ptr<const trust::AssignmentSigner> signer;
  std::string key_configmap = "tideslice-assignment-key";
  // /readyz fails once the API server has been unreachable this long.
  std::chrono::milliseconds api_unreachable_after{30000};
};

class SchedulerApp {
 public:
  static StatusOr<std::unique_ptr<SchedulerApp>> Start(kube::KubeClient* client, const catalog::Catalog& catalog,
                                                       AppOptions options);
  ~SchedulerApp();
  void Stop();

  bool ready() const { return nodes_->synced() && pods_->synced(); }
  // "" when ready to serve, else why not: caches not synced, API unreachable for longer than
  // api_unreachable_after, a listener not accepting.
  std::string NotReadyReason() const;
  // "" when every listener accepts connections, else which does not (/livez).
  std::string NotLiveReason() const;
  bool leading() const { return options_.leader_elect ? elector_->leading() : true; }
  ClusterCache& cache() { return cache_; }
  SchedulerService& service() { return *service_; }
  const Binder& binder() const { return binder_; }
  // Null when no pools are configured.
  TidalController* tidal_controller() { return tidal_.get(); }
  const TideBoard& tides() const { return tides_; }

 private:
  SchedulerApp(kube::KubeClient* client, const catalog::Catalog& catalog, AppOptions options);
  const catalog::Catalog& catalog_;
  kube::KubeClient* client_;
  AppOptions options_;
  ClusterCache cache_;
  Binder binder_;
  std::unique_ptr<FilterReasonRecorder> filter_recorder_;  // outlives service_, which points at it
  std::unique_ptr<SchedulerService> service_;
  std::unique_ptr<LeaderElector> elector_;
  TideBoard tides_;
  std::unique_ptr<TidalController> tidal_;
  std::unique_ptr<kube::Reflector> nodes_, pods_, claims_, claim_templates_;
  std::unique_ptr<http::HttpServer> extender_, health_, webhook_;
  http::CancelFlag cancel_;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
  // The leader's fencing round: report refused assignments, fail the ALLOCATING ones, re-seal
  // those of another term that still fit.
  void FenceRound(kube::KubeClient* client);
  Status PublishPublicKey(kube::KubeClient* client);
  std::atomic<bool> key_published_{false};
  log::ChangeLog key_log_;
};

}  // namespace tideslice::service
