#include "device-plugin/plugin/agent.h"

#include <cstdio>
#include <filesystem>

namespace tideslice::deviceplugin {

Agent::Agent(AgentOptions options, DeviceBackend* backend, AllocationHandler* handler)
    : options_(std::move(options)), backend_(backend), handler_(handler) {}

Agent::~Agent() { Stop(); }

Status Agent::Start() {
  auto cards = backend_->Discover();
  if (!cards.ok()) return cards.status().WithContext("discovering cards with the " + backend_->Name() + " backend");
  if (options_.on_devices) options_.on_devices(*cards);
  state_.Set(std::move(*cards));
  watcher_ = std::make_unique<KubeletWatcher>(options_.plugin.socket_dir,
                                              std::vector<std::string>{options_.plugin.socket_name}, [this] {
                                                std::lock_guard<std::mutex> lock(mu_);
                                                restart_requested_ = true;
                                                next_register_ = std::chrono::steady_clock::now();  // now, not after back-off
                                                cv_.notify_all();
                                              });
  TS_RETURN_IF_ERROR(watcher_->Start());
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Agent::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  {
    std::lock_guard<std::mutex> lock(server_mu_);
    if (server_) server_->CancelRegister();
  }
  if (watcher_) watcher_->Stop();
  if (thread_.joinable()) thread_.join();
  if (server_) server_->Stop();
  state_.Shutdown();
}

void Agent::RefreshNow() {
  std::lock_guard<std::mutex> lock(mu_);
  refresh_requested_ = true;
  cv_.notify_all();
}

Status Agent::ServeAndRegister() {
  // Rebuild the server only when our socket is gone (the kubelet deletes it when it restarts).
  // Stopping a server whose socket still exists would delete that socket ourselves, which the
  // watcher would take for another kubelet restart.
  std::error_code ec;
  PluginServer* server;
  {
    std::lock_guard<std::mutex> lock(server_mu_);
    if (!server_ || !std::filesystem::exists(server_->socket_path(), ec)) {
      if (server_) server_->Stop();
      server_ = std::make_unique<PluginServer>(options_.plugin, &state_, handler_);
      TS_RETURN_IF_ERROR(server_->Start());
    }
    server = server_.get();  // only this thread replaces server_, so it stays valid below
  }
  const std::string kubelet = options_.plugin.socket_dir + "/" + options_.kubelet_socket_name;
  TS_RETURN_IF_ERROR(server->Register(kubelet, options_.register_timeout));
  registrations_++;
  return Status::Ok();
}

void Agent::Run() {
  auto next_poll = std::chrono::steady_clock::now() + options_.health_poll;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (restart_requested_ && std::chrono::steady_clock::now() >= next_register_) {
      restart_requested_ = false;
      lock.unlock();
      Status st = ServeAndRegister();
      lock.lock();
      if (!st.ok()) {
        std::fprintf(stderr, "tideslice-device-plugin: %s; retrying\n", st.ToString().c_str());
        restart_requested_ = true;
        next_register_ = std::chrono::steady_clock::now() + options_.retry_backoff;
      }
    }
    if (refresh_requested_ || std::chrono::steady_clock::now() >= next_poll) {
      refresh_requested_ = false;
      lock.unlock();
      auto cards = backend_->Discover();
      if (cards.ok()) {
        if (options_.on_devices) options_.on_devices(*cards);
        state_.Set(std::move(*cards));
      }
      else
        std::fprintf(stderr, "tideslice-device-plugin: %s\n", cards.status().ToString().c_str());
      lock.lock();
      next_poll = std::chrono::steady_clock::now() + options_.health_poll;
    }
    auto wake = restart_requested_ ? std::min(next_poll, next_register_) : next_poll;
    cv_.wait_until(lock, wake, [&] {
      return stop_ || refresh_requested_ || (restart_requested_ && std::chrono::steady_clock::now() >= next_register_);
    });
  }
}

}  // namespace tideslice::deviceplugin
