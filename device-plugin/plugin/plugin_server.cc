#include "device-plugin/plugin/plugin_server.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

namespace tideslice::deviceplugin {

grpc::Status ToGrpc(const Status& s) {
  if (s.ok()) return grpc::Status::OK;
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (s.code()) {
    case StatusCode::kInvalidArgument: code = grpc::StatusCode::INVALID_ARGUMENT; break;
    case StatusCode::kNotFound: code = grpc::StatusCode::NOT_FOUND; break;
    case StatusCode::kAlreadyExists: code = grpc::StatusCode::ALREADY_EXISTS; break;
    case StatusCode::kFailedPrecondition: code = grpc::StatusCode::FAILED_PRECONDITION; break;
    case StatusCode::kResourceExhausted: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
    case StatusCode::kUnavailable: code = grpc::StatusCode::UNAVAILABLE; break;
    default: break;
  }
  std::string msg = s.field().empty() ? s.message() : s.field() + ": " + s.message();
  return grpc::Status(code, msg);
}

bool ParseDeviceId(const std::string& id, std::string* uuid, int* replica) {
  auto sep = id.rfind("::");
  if (sep == std::string::npos || sep == 0 || sep + 2 >= id.size() || id.size() - sep - 2 > 6) return false;
  int r = 0;
  for (size_t i = sep + 2; i < id.size(); ++i) {
    if (id[i] < '0' || id[i] > '9') return false;
    r = r * 10 + (id[i] - '0');
  }
  *uuid = id.substr(0, sep);
  *replica = r;
  return true;
}

std::string MakeDeviceId(const std::string& uuid, int replica) { return uuid + "::" + std::to_string(replica); }

std::vector<v1beta1::Device> AdvertisedDevices(const std::vector<DeviceInfo>& cards, int replicas_per_card) {
  std::vector<v1beta1::Device> out;
  for (const auto& c : cards) {
    for (int r = 0; r < replicas_per_card; ++r) {
      v1beta1::Device d;
      d.set_id(MakeDeviceId(c.uuid, r));
      d.set_health(c.healthy ? kHealthy : kUnhealthy);
      if (c.numa_node >= 0) d.mutable_topology()->add_nodes()->set_id(c.numa_node);
      out.push_back(std::move(d));
    }
  }
  return out;
}

class PluginServer::Service final : public v1beta1::DevicePlugin::Service {
 public:
  Service(const PluginOptions& options, DeviceState* state, AllocationHandler* handler)
      : options_(options), state_(state), handler_(handler) {}

  void Stop() { stopping_ = true; }

  grpc::Status GetDevicePluginOptions(grpc::ServerContext*, const v1beta1::Empty*,
                                      v1beta1::DevicePluginOptions* out) override {
    out->set_pre_start_required(false);
    out->set_get_preferred_allocation_available(true);
    return grpc::Status::OK;
  }

  grpc::Status ListAndWatch(grpc::ServerContext* ctx, const v1beta1::Empty*,
                            grpc::ServerWriter<v1beta1::ListAndWatchResponse>* writer) override {
    uint64_t sent = ~0ull;
    while (!stopping_ && !ctx->IsCancelled() && !state_->shut_down()) {
      auto [version, cards] = state_->Snapshot();
      if (version != sent) {
        v1beta1::ListAndWatchResponse resp;
        for (auto& d : AdvertisedDevices(cards, options_.replicas_per_card)) *resp.add_devices() = std::move(d);
        if (!writer->Write(resp)) break;  // the kubelet went away
        sent = version;
      }
      state_->WaitForChange(sent, std::chrono::milliseconds(200));
    }
    return grpc::Status::OK;
  }

  grpc::Status GetPreferredAllocation(grpc::ServerContext*, const v1beta1::PreferredAllocationRequest* req,
                                      v1beta1::PreferredAllocationResponse* out) override {
    auto [version, cards] = state_->Snapshot();
    std::map<std::string, int> card_index;
    for (const auto& c : cards) card_index[c.uuid] = c.index;
    for (const auto& cr : req->container_requests()) {
      std::set<std::string> available(cr.available_deviceids().begin(), cr.available_deviceids().end());
      for (const auto& id : available) {
        std::string uuid;
        int replica;
        if (!ParseDeviceId(id, &uuid, &replica) || !card_index.count(uuid))
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unknown device ID \"" + id + "\" in available_deviceIDs");
      }
      for (const auto& id : cr.must_include_deviceids())
        if (!available.count(id))
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "must_include_deviceIDs names \"" + id + "\", which is not in available_deviceIDs");
      if (cr.allocation_size() <= 0 || cr.allocation_size() > static_cast<int>(available.size()))
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "allocation_size " + std::to_string(cr.allocation_size()) + " is outside 1.." +
                                std::to_string(available.size()));
      // Slices of one container go on distinct cards: must-include first, then one replica from
      // each card not yet used (lowest card index first), and only then repeats.
      std::vector<std::string> chosen(cr.must_include_deviceids().begin(), cr.must_include_deviceids().end());
      std::set<std::string> used_cards;
      for (const auto& id : chosen) {
        std::string uuid;
        int r;
        ParseDeviceId(id, &uuid, &r);
        used_cards.insert(uuid);
      }
      // The scheduler's cards for this container come first, when the handler knows them.
      std::vector<std::string> preferred = handler_->PreferredCards(cr.allocation_size());
      auto rank_of = [&](const std::string& uuid) {
        auto it = std::find(preferred.begin(), preferred.end(), uuid);
        return it == preferred.end() ? static_cast<int>(preferred.size()) : static_cast<int>(it - preferred.begin());
      };
      std::vector<std::pair<std::tuple<int, int, int>, std::string>> ordered;  // (preference, card, replica) -> id
      for (const auto& id : available) {
        std::string uuid;
        int r;
        ParseDeviceId(id, &uuid, &r);
        ordered.push_back({{rank_of(uuid), card_index[uuid], r}, id});
      }
      std::sort(ordered.begin(), ordered.end());
      for (int pass = 0; pass < 2 && static_cast<int>(chosen.size()) < cr.allocation_size(); ++pass) {
        for (const auto& [key, id] : ordered) {
          if (static_cast<int>(chosen.size()) >= cr.allocation_size()) break;
          if (std::find(chosen.begin(), chosen.end(), id) != chosen.end()) continue;
          std::string uuid;
          int r;
          ParseDeviceId(id, &uuid, &r);
          if (pass == 0 && used_cards.count(uuid)) continue;
          used_cards.insert(uuid);
          chosen.push_back(id);
        }
      }
      auto* resp = out->add_container_responses();
      for (const auto& id : chosen) resp->add_deviceids(id);
    }
    return grpc::Status::OK;
  }

  grpc::Status Allocate(grpc::ServerContext*, const v1beta1::AllocateRequest* req,
                        v1beta1::AllocateResponse* out) override {
    auto [version, cards] = state_->Snapshot();
    std::set<std::string> known;
    for (const auto& c : cards) known.insert(c.uuid);
    if (req->container_requests_size() == 0)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "AllocateRequest has no container_requests");
    for (const auto& cr : req->container_requests()) {
      if (cr.devices_ids_size() == 0)
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a container request lists no device IDs");
      std::set<std::string> seen;
      for (const auto& id : cr.devices_ids()) {
        std::string uuid;
        int replica;
        if (!ParseDeviceId(id, &uuid, &replica) || !known.count(uuid) || replica >= options_.replicas_per_card)
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "unknown device ID \"" + id + "\": this plugin advertises " + options_.resource_name +
                                  " IDs of the form <card uuid>::<0.." + std::to_string(options_.replicas_per_card - 1) + ">");
        if (!seen.insert(id).second)
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "device ID \"" + id + "\" is listed twice");
      }
      auto resp = handler_->AllocateContainer({cr.devices_ids().begin(), cr.devices_ids().end()}, cards);
      if (!resp.ok()) return ToGrpc(resp.status());
      *out->add_container_responses() = std::move(*resp);
    }
    return grpc::Status::OK;
  }

  grpc::Status PreStartContainer(grpc::ServerContext*, const v1beta1::PreStartContainerRequest*,
                                 v1beta1::PreStartContainerResponse*) override {
    return grpc::Status::OK;
  }

 private:
  PluginOptions options_;
  DeviceState* state_;
  AllocationHandler* handler_;
  std::atomic<bool> stopping_{false};
};

PluginServer::PluginServer(PluginOptions options, DeviceState* state, AllocationHandler* handler)
    : options_(std::move(options)), state_(state), service_(std::make_unique<Service>(options_, state, handler)) {}

PluginServer::~PluginServer() { Stop(); }

std::string PluginServer::socket_path() const {
  return (std::filesystem::path(options_.socket_dir) / options_.socket_name).string();
}

Status PluginServer::Start() {
  if (server_) return Status::FailedPrecondition("plugin server already started");
  if (options_.socket_name.find('/') != std::string::npos)
    return Status::InvalidArgument("socket name", "must be a file name, not a path: " + options_.socket_name);
  std::error_code ec;
  std::filesystem::remove(socket_path(), ec);  // a stale socket from an earlier run
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix://" + socket_path(), grpc::InsecureServerCredentials());
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_) return Status::Unavailable("cannot serve on " + socket_path() + " (does the directory exist and is it writable?)");
  return Status::Ok();
}

Status PluginServer::Register(const std::string& kubelet_socket, std::chrono::milliseconds timeout) {
  auto channel = grpc::CreateChannel("unix://" + kubelet_socket, grpc::InsecureChannelCredentials());
  auto stub = v1beta1::Registration::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.set_wait_for_ready(true);
  v1beta1::RegisterRequest req;
  req.set_version(kDevicePluginVersion);
  req.set_endpoint(options_.socket_name);
  req.set_resource_name(options_.resource_name);
  req.mutable_options()->set_get_preferred_allocation_available(true);
  v1beta1::Empty resp;
  {
    std::lock_guard<std::mutex> lock(register_mu_);
    if (register_cancelled_) return Status::Unavailable("registration cancelled: shutting down");
    register_ctx_ = &ctx;
  }
  grpc::Status st = stub->Register(&ctx, req, &resp);
  {
    std::lock_guard<std::mutex> lock(register_mu_);
    register_ctx_ = nullptr;
  }
  if (!st.ok())
    return Status::Unavailable("registering " + options_.resource_name + " with the kubelet at " + kubelet_socket +
                               " failed: " + st.error_message());
  return Status::Ok();
}

void PluginServer::CancelRegister() {
  std::lock_guard<std::mutex> lock(register_mu_);
  register_cancelled_ = true;
  if (register_ctx_) register_ctx_->TryCancel();
}

void PluginServer::Stop() {
  if (!server_) return;
  service_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server_.reset();
  std::error_code ec;
  std::filesystem::remove(socket_path(), ec);
}

}  // namespace tideslice::deviceplugin
