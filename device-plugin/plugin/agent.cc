#include "device-plugin/plugin/agent.h"

#include <filesystem>

namespace tideslice::deviceplugin {

Agent::Agent(AgentOptions options, DeviceBackend* backend, AllocationHandler* handler)
    : options_(std::move(options)), backend_(backend), handler_(handler) {}

Agent::~Agent() { Stop(); }

Status Agent::Start() {
  auto cards = backend_->Discover();
  if (!cards.ok()) return cards.status().WithContext("discovering cards with the " + backend_->Name() + " backend");
  if (AfterDiscover(*cards)) {
    auto again = backend_->Discover();
    if (again.ok()) cards = std::move(again);
  }
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
      if (st.ok()) {
        health_log_.Record("register", "ok", log::Level::kInfo, "agent.registered",
                           "serving the kubelet and registered with it");
      } else {
        // Retried every back-off until the kubelet answers: logged when it starts and changes.
        health_log_.Record("register", st.ToString(), log::Level::kWarn, "agent.register_failed",
                           "cannot serve or register with the kubelet; retrying", {{"error", st.ToString()}},
                           /*log_first=*/true);
        restart_requested_ = true;
        next_register_ = std::chrono::steady_clock::now() + options_.retry_backoff;
      }
    }
    if (refresh_requested_ || std::chrono::steady_clock::now() >= next_poll) {
      refresh_requested_ = false;
      lock.unlock();
      auto cards = backend_->Discover();
      if (cards.ok() && AfterDiscover(*cards)) {
        auto again = backend_->Discover();
        if (again.ok()) cards = std::move(again);
      }
      if (cards.ok()) {
        health_log_.Record("discover", "ok", log::Level::kInfo, "agent.discover_recovered",
                           "reading the cards works again");
        if (options_.on_devices) options_.on_devices(*cards);
        state_.Set(std::move(*cards));
      } else {
        health_log_.Record("discover", cards.status().ToString(), log::Level::kWarn, "agent.discover_failed",
                           "cannot read the cards; the kubelet keeps the last list",
                           {{"error", cards.status().ToString()}}, /*log_first=*/true);
      }
      lock.lock();
      next_poll = std::chrono::steady_clock::now() + options_.health_poll;
    }
    auto wake = restart_requested_ ? std::min(next_poll, next_register_) : next_poll;
    cv_.wait_until(lock, wake, [&] {
      return stop_ || refresh_requested_ || (restart_requested_ && std::chrono::steady_clock::now() >= next_register_);
    });
  }
}

bool Agent::AfterDiscover(const std::vector<DeviceInfo>& cards) {
  LogHealth(cards);
  return ApplyMigMode(cards);
}

void Agent::LogHealth(const std::vector<DeviceInfo>& cards) {
  for (const auto& c : cards) {
    // Once when a card leaves service and once when it comes back, never per poll.
    const std::string state = c.healthy ? "healthy" : "unhealthy: " + c.health_reason;
    health_log_.Record(c.uuid, state, c.healthy ? log::Level::kInfo : log::Level::kWarn,
                       c.healthy ? "card.healthy" : "card.unhealthy",
                       c.healthy ? "card is back in service" : "card taken out of service",
                       {{"uuid", c.uuid}, {"model", c.model}, {"reason", c.health_reason}}, /*log_first=*/!c.healthy);
  }
}

bool Agent::ApplyMigMode(const std::vector<DeviceInfo>& cards) {
  if (options_.mig_mode == MigModePolicy::kLeave || !options_.catalog) return false;
  std::map<std::string, int> processes;  // uuid -> processes the driver sees
  bool processes_known = false;
  bool changed = false;
  for (const auto& c : cards) {
    if (c.vendor != "nvidia" || c.index < 0) continue;
    const auto* model = options_.catalog->Find(c.model);
    // Work on the card: first what is cheap and certain, then what the driver sees.
    std::string busy = options_.card_in_use ? options_.card_in_use(c) : "";
    auto pre = DecideMigMode(options_.mig_mode, c, model, "");
    if (pre.kind == MigModeStep::Kind::kChange && busy.empty()) {
      if (!processes_known) {
        processes_known = true;
        auto procs = backend_->Processes();
        if (procs.ok())
          for (const auto& p : *procs) processes[p.card_uuid]++;
        else
          busy = "the driver cannot list the card's processes (" + procs.status().message() + ")";
      }
      if (busy.empty() && processes.count(c.uuid))
        busy = std::to_string(processes[c.uuid]) + " process(es) run on it";
      if (busy.empty() && c.mig_enabled) {  // with MIG off no instance can exist
        auto parts = backend_->ListPartitions(c);
        if (!parts.ok())
          busy = "its MIG instances cannot be listed (" + parts.status().message() + ")";
        else if (!parts->empty())
          busy = std::to_string(parts->size()) + " MIG instance(s) exist on it";
      }
    }
    MigModeStep step = DecideMigMode(options_.mig_mode, c, model, busy);
    std::string state;
    switch (step.kind) {
      case MigModeStep::Kind::kNothing: state = "applied"; break;
      case MigModeStep::Kind::kNotMig: state = "not-mig"; break;
      case MigModeStep::Kind::kUnhealthy: state = "unhealthy"; break;
      case MigModeStep::Kind::kPendingReset: state = "pending-reset"; break;
      case MigModeStep::Kind::kBusy: state = "busy"; break;
      case MigModeStep::Kind::kChange: {
        auto done = backend_->SetMigMode(c, step.enable);
        if (!done.ok()) {
          state = "refused";
          step.why = "MIG mode on " + c.uuid + " was not changed: " + done.status().message();
        } else if (*done == MigModeChange::kPendingReset) {
          state = "pending-reset";
          step.why = "MIG mode on " + c.uuid + " becomes " + (step.enable ? "on" : "off") +
                     " at the next GPU reset (drain the card, then nvidia-smi -r -i " + std::to_string(c.index) +
                     ") or reboot; until then it is handed out with MIG " + (c.mig_enabled ? "on" : "off");
          changed = true;  // the card's pending mode changed: read it again
        } else {
          state = "applied";
          step.why = std::string("MIG mode is now ") + (step.enable ? "on" : "off") + " on " + c.uuid;
          changed = true;
        }
        break;
      }
    }
    if (step.kind == MigModeStep::Kind::kNothing && (!model || model->partitioning != catalog::Partitioning::kMig))
      continue;  // a card without MIG under "off": nothing to say
    const bool bad = state == "refused" || state == "pending-reset" || state == "busy" || state == "not-mig";
    mig_log_.Record(c.uuid, state, bad ? log::Level::kWarn : log::Level::kInfo, "mig_mode." + state,
                    step.why.empty() ? std::string("MIG mode is ") + MigModePolicyName(options_.mig_mode) + " on " + c.uuid
                                     : step.why,
                    {{"uuid", c.uuid}, {"setting", MigModePolicyName(options_.mig_mode)}},
                    /*log_first=*/step.kind != MigModeStep::Kind::kNothing);
    std::lock_guard<std::mutex> lock(mig_mu_);
    mig_states_[c.uuid] = state;
  }
  return changed;
}

std::map<std::string, std::string> Agent::MigModeStates() const {
  std::lock_guard<std::mutex> lock(mig_mu_);
  return mig_states_;
}

}  // namespace tideslice::deviceplugin
