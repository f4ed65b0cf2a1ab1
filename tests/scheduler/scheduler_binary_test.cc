// The real tideslice-scheduler binary against the test API server: flag errors, then a run that
// becomes ready, answers the extender over HTTP, serves metrics, and exits cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace {

using nlohmann::json;

std::pair<int, std::string> RunScheduler(const std::string& args) {
  std::string cmd = std::string(TIDESLICE_SCHEDULER_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  return {WEXITSTATUS(rc), out};
}

TEST(SchedulerBinary, BadFlagsAndFilesSayWhatToChange) {
  tideslice::testsupport::TempDir dir;
  auto [rc, out] = RunScheduler("--frobnicate 1");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("unknown flag --frobnicate"), std::string::npos) << out;
  std::tie(rc, out) = RunScheduler("--leader-elect maybe");
  EXPECT_NE(out.find("--leader-elect: must be true or false"), std::string::npos) << out;
  std::tie(rc, out) = RunScheduler("--webhook-address https://0.0.0.0:9443");
  EXPECT_NE(out.find("--tls-cert-file"), std::string::npos) << out;
  std::ofstream(dir.path() + "/c.yaml") << "defaultPolicy: tetris\n";
  std::tie(rc, out) = RunScheduler("--config " + dir.path() + "/c.yaml");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("defaultPolicy"), std::string::npos) << out;
  std::ofstream(dir.path() + "/c.yaml") << "defaultPolcy: binpack\n";
  std::tie(rc, out) = RunScheduler("--config " + dir.path() + "/c.yaml");
  EXPECT_NE(out.find("defaultPolcy"), std::string::npos) << out;
  std::ofstream(dir.path() + "/c.yaml") << "pools:\n- name: p\n  nodeSelector: {pool: p}\n  timezone: Mars/Olympus\n"
                                          "  dayWindows: [{start: '08:00', end: '20:00'}]\n";
  std::tie(rc, out) = RunScheduler("--config " + dir.path() + "/c.yaml");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("pools[0].timezone"), std::string::npos) << out;
  std::ofstream(dir.path() + "/c.yaml") << "pools:\n- name: p\n  nodeSelector: {pool: p}\n  timezone: UTC\n"
                                          "  dayWindows: [{start: '08:00', end: '20:00'}]\n"
                                          "  loadTrigger: {prometheusQuery: 'sum(up)', prometheusThreshold: 1}\n";
  std::tie(rc, out) = RunScheduler("--config " + dir.path() + "/c.yaml");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("pool p sets loadTrigger.prometheusQuery but no --prometheus-url"), std::string::npos) << out;
  std::tie(rc, out) = RunScheduler("--prometheus-url prometheus:9090");
  EXPECT_NE(out.find("--prometheus-url: must start with http:// or https://"), std::string::npos) << out;
  std::tie(rc, out) = RunScheduler("--tidal-period-seconds 0");
  EXPECT_NE(out.find("--tidal-period-seconds: must be"), std::string::npos) << out;
  std::tie(rc, out) = RunScheduler("--leader-elect-lease-duration 5 --leader-elect-renew-deadline 10 --kubeconfig /nonexistent");
  EXPECT_EQ(rc, 2);
  std::tie(rc, out) = RunScheduler("--help");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("--extender-address"), std::string::npos);
}

TEST(SchedulerBinary, ServesExtenderHealthAndMetricsThenStops) {
  auto server = tideslice::testsupport::TestApiServer::Start();
  tideslice::testsupport::TempDir dir;
  std::string kubeconfig = server->WriteKubeconfig(dir.path());
  std::ofstream(dir.path() + "/config.yaml") << "defaultPolicy: binpack\ninventoryStaleSeconds: 120\n";
  int ext = tideslice::testsupport::FreeLoopbackPort(), health = tideslice::testsupport::FreeLoopbackPort(),
      metrics = tideslice::testsupport::FreeLoopbackPort();
  std::string ext_url = "http://127.0.0.1:" + std::to_string(ext) + "/tideslice";
  std::string health_url = "http://127.0.0.1:" + std::to_string(health);
  std::string metrics_addr = "127.0.0.1:" + std::to_string(metrics);
  std::string config = dir.path() + "/config.yaml";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(TIDESLICE_SCHEDULER_BINARY, TIDESLICE_SCHEDULER_BINARY, "--kubeconfig", kubeconfig.c_str(), "--config",
          config.c_str(), "--extender-address", ext_url.c_str(), "--health-address", health_url.c_str(),
          "--metrics-address", metrics_addr.c_str(), "--lease-namespace", "tideslice-system",
          "--leader-elect-retry-period", "1", "--leader-elect-renew-deadline", "2", "--leader-elect-lease-duration",
          "3", static_cast<char*>(nullptr));
    _exit(127);
  }
  bool ready = false;
  for (int i = 0; i < 300 && !ready; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ready = tideslice::testsupport::HttpRequest(health, "GET", "/readyz").first == 200;
  }
  EXPECT_TRUE(ready);
  EXPECT_EQ(tideslice::testsupport::HttpRequest(health, "GET", "/healthz").first, 200);
  auto [status, body] = tideslice::testsupport::HttpRequest(
      ext, "POST", "/tideslice/filter",
      R"({"Pod":{"metadata":{"name":"p","namespace":"d"},"spec":{"containers":[{"name":"c"}]}},"NodeNames":["n1"]})");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(json::parse(body)["NodeNames"], json::array({"n1"})) << body;  // asks for no accelerator: passes
  bool leader = false;
  std::string text;
  for (int i = 0; i < 300 && !leader; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    text = tideslice::testsupport::HttpRequest(metrics, "GET", "/metrics").second;
    leader = text.find("tideslice_scheduler_state{what=\"leader\"} 1") != std::string::npos;
  }
  EXPECT_TRUE(leader) << text;
  EXPECT_NE(text.find("tideslice_extender_requests_total{verb=\"filter\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("tideslice_extender_errors_total{verb=\"filter\"} 0"), std::string::npos) << text;
  EXPECT_TRUE(server->Get("leases", "tideslice-system", "tideslice-scheduler").has_value());
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  // The lease was released on the way out so that a standby takes over at once.
  EXPECT_EQ((*server->Get("leases", "tideslice-system", "tideslice-scheduler"))["spec"]["holderIdentity"], "");
}

}  // namespace
