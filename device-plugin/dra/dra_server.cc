#include "device-plugin/dra/dra_server.h"

#include <unistd.h>

#include <chrono>

#include "common/log/log.h"
#include "dra/v1/api.grpc.pb.h"
#include "dra/v1beta1/api.grpc.pb.h"
#include "drahealth/v1alpha1/api.grpc.pb.h"
#include "pluginregistration/v1/api.grpc.pb.h"

namespace tideslice::dra {
namespace {

namespace v1 = k8s::io::kubelet::pkg::apis::dra::v1;
namespace v1beta1 = k8s::io::kubelet::pkg::apis::dra::v1beta1;

constexpr size_t kMaxClaimsPerCall = 256;   // a pod has at most this many claims (reservedFor limit)

// The two DRA versions have the same messages (v1 adds share_id): one handler for both.
template <typename Req, typename Resp>
grpc::Status HandlePrepare(DraDriver& driver, const Req& req, Resp* resp, bool with_share_id) {
  if (static_cast<size_t>(req.claims_size()) > kMaxClaimsPerCall)
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "more than 256 claims in one call");
  std::vector<ClaimRef> refs;
  for (const auto& c : req.claims()) {
    if (c.uid().empty() || c.name().empty() || c.namespace_().empty())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "every claim needs namespace, uid and name");
    refs.push_back({c.namespace_(), c.name(), c.uid()});
  }
  auto outcomes = driver.Prepare(refs);
  for (const auto& [uid, o] : outcomes) {
    auto& entry = (*resp->mutable_claims())[uid];
    if (!o.error.empty()) {
      entry.set_error(o.error);
      continue;
    }
    for (const auto& d : o.devices) {
      auto* out = entry.add_devices();
      for (const auto& r : d.request_names) out->add_request_names(r);
      out->set_pool_name(d.pool);
      out->set_device_name(d.device);
      for (const auto& id : d.cdi_ids) out->add_cdi_device_ids(id);
      if constexpr (std::is_same_v<Resp, v1::NodePrepareResourcesResponse>)
        if (with_share_id && !d.share_id.empty()) out->set_share_id(d.share_id);
    }
  }
  return grpc::Status::OK;
}

template <typename Req, typename Resp>
grpc::Status HandleUnprepare(DraDriver& driver, const Req& req, Resp* resp) {
  if (static_cast<size_t>(req.claims_size()) > kMaxClaimsPerCall)
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "more than 256 claims in one call");
  std::vector<ClaimRef> refs;
  for (const auto& c : req.claims()) {
    if (c.uid().empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "every claim needs a uid");
    refs.push_back({c.namespace_(), c.name(), c.uid()});
  }
  for (const auto& [uid, err] : driver.Unprepare(refs)) {
    auto& entry = (*resp->mutable_claims())[uid];
    if (!err.empty()) entry.set_error(err);
  }
  return grpc::Status::OK;
}

void RemoveSocket(const std::string& path) { (void)::unlink(path.c_str()); }

}  // namespace

class DraServer::RegistrationService final : public pluginregistration::Registration::Service {
 public:
  explicit RegistrationService(DraServer& s) : s_(s) {}
  grpc::Status GetInfo(grpc::ServerContext*, const pluginregistration::InfoRequest*,
                       pluginregistration::PluginInfo* info) override {
    info->set_type("DRAPlugin");
    info->set_name(s_.driver_.options().driver);
    info->set_endpoint(s_.dra_socket());
    info->add_supported_versions("v1.DRAPlugin");
    info->add_supported_versions("v1beta1.DRAPlugin");
    info->add_supported_versions("v1alpha1.DRAResourceHealth");
    return grpc::Status::OK;
  }
  grpc::Status NotifyRegistrationStatus(grpc::ServerContext*, const pluginregistration::RegistrationStatus* status,
                                        pluginregistration::RegistrationStatusResponse*) override {
    s_.state_.notifications++;
    s_.state_.registered = status->plugin_registered();
    {
      std::lock_guard<std::mutex> lock(s_.mu_);
      s_.state_.last_error = status->error().substr(0, 4096);
    }
    if (status->plugin_registered())
      log::Info("dra_registered", "the kubelet registered the driver", {{"driver", s_.driver_.options().driver}});
    else
      log::Error("dra_registration_refused", "the kubelet refused the driver: " + status->error().substr(0, 4096));
    return grpc::Status::OK;
  }

 private:
  DraServer& s_;
};

class DraServer::PluginV1 final : public v1::DRAPlugin::Service {
 public:
  explicit PluginV1(DraDriver& d) : d_(d) {}
  grpc::Status NodePrepareResources(grpc::ServerContext*, const v1::NodePrepareResourcesRequest* req,
                                    v1::NodePrepareResourcesResponse* resp) override {
    return HandlePrepare(d_, *req, resp, true);
  }
  grpc::Status NodeUnprepareResources(grpc::ServerContext*, const v1::NodeUnprepareResourcesRequest* req,
                                      v1::NodeUnprepareResourcesResponse* resp) override {
    return HandleUnprepare(d_, *req, resp);
  }

 private:
  DraDriver& d_;
};

class DraServer::PluginV1beta1 final : public v1beta1::DRAPlugin::Service {
 public:
  explicit PluginV1beta1(DraDriver& d) : d_(d) {}
  grpc::Status NodePrepareResources(grpc::ServerContext*, const v1beta1::NodePrepareResourcesRequest* req,
                                    v1beta1::NodePrepareResourcesResponse* resp) override {
    return HandlePrepare(d_, *req, resp, false);
  }
  grpc::Status NodeUnprepareResources(grpc::ServerContext*, const v1beta1::NodeUnprepareResourcesRequest* req,
                                      v1beta1::NodeUnprepareResourcesResponse* resp) override {
    return HandleUnprepare(d_, *req, resp);
  }

 private:
  DraDriver& d_;
};

class DraServer::HealthService final : public v1alpha1::DRAResourceHealth::Service {
 public:
  explicit HealthService(DraServer& s) : s_(s) {}
  grpc::Status NodeWatchResources(grpc::ServerContext* ctx, const v1alpha1::NodeWatchResourcesRequest*,
                                  grpc::ServerWriter<v1alpha1::NodeWatchResourcesResponse>* writer) override {
    uint64_t seen = ~uint64_t{0};
    while (!ctx->IsCancelled()) {
      {
        std::unique_lock<std::mutex> lock(s_.mu_);
        s_.health_cv_.wait_for(lock, std::chrono::seconds(s_.options_.health_resend_seconds),
                               [&] { return s_.stopping_ || s_.health_epoch_ != seen; });
        if (s_.stopping_) return grpc::Status::OK;
        seen = s_.health_epoch_;
      }
      // The complete list every time: the kubelet marks a device it has not heard of within
      // its timeout as Unknown.
      v1alpha1::NodeWatchResourcesResponse resp;
      const int64_t now =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      const std::string pool = s_.driver_.options().node_name;
      for (const auto& d : s_.driver_.Inventory().devices) {
        auto* h = resp.add_devices();
        h->mutable_device()->set_pool_name(pool);
        h->mutable_device()->set_device_name(d.name);
        h->set_health(d.card.healthy ? v1alpha1::HEALTHY : v1alpha1::UNHEALTHY);
        h->set_last_updated_time(now);
        h->set_health_check_timeout_seconds(3 * s_.options_.health_resend_seconds);
        if (!d.card.healthy) h->set_message("card " + d.card.uuid + " is unhealthy");
      }
      if (!writer->Write(resp)) break;
    }
    return grpc::Status::OK;
  }

 private:
  DraServer& s_;
};

DraServer::DraServer(DraDriver& driver, ServerOptions options) : driver_(driver), options_(std::move(options)) {}
DraServer::~DraServer() { Stop(); }

std::string DraServer::registration_socket() const {
  return options_.registry_dir + "/" + driver_.options().driver + "-reg.sock";
}

std::string DraServer::last_registration_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_.last_error;
}

Status DraServer::Start() {
  // sun_path holds 107 characters and a NUL.
  for (const auto& p : {dra_socket(), registration_socket()})
    if (p.size() > 107) return Status::InvalidArgument("socket", p + " is longer than a Unix socket path may be");
  v1_ = std::make_unique<PluginV1>(driver_);
  v1beta1_ = std::make_unique<PluginV1beta1>(driver_);
  health_ = std::make_unique<HealthService>(*this);
  registration_ = std::make_unique<RegistrationService>(*this);
  // The DRA socket first: the kubelet dials the endpoint as soon as it sees the registration socket.
  RemoveSocket(dra_socket());
  grpc::ServerBuilder dra;
  dra.AddListeningPort("unix://" + dra_socket(), grpc::InsecureServerCredentials());
  dra.RegisterService(v1_.get());
  dra.RegisterService(v1beta1_.get());
  dra.RegisterService(health_.get());
  dra_server_ = dra.BuildAndStart();
  if (!dra_server_) return Status::Unavailable("cannot listen on " + dra_socket());
  RemoveSocket(registration_socket());
  grpc::ServerBuilder reg;
  reg.AddListeningPort("unix://" + registration_socket(), grpc::InsecureServerCredentials());
  reg.RegisterService(registration_.get());
  reg_server_ = reg.BuildAndStart();
  if (!reg_server_) {
    Stop();
    return Status::Unavailable("cannot listen on " + registration_socket());
  }
  log::Info("dra_serving", "DRA service and registration sockets are up",
            {{"dra_socket", dra_socket()}, {"registration_socket", registration_socket()}});
  return Status::Ok();
}

void DraServer::NotifyHealthChanged() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    health_epoch_++;
  }
  health_cv_.notify_all();
}

void DraServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  health_cv_.notify_all();
  // Registration first: the kubelet stops sending work before the service goes.
  if (reg_server_) {
    reg_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    reg_server_.reset();
    RemoveSocket(registration_socket());
  }
  if (dra_server_) {
    dra_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    dra_server_.reset();
    RemoveSocket(dra_socket());
  }
}

}  // namespace tideslice::dra
