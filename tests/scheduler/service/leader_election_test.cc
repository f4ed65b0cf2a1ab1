// Lease leader election against the test API server: acquisition, standby, release, crash
// takeover only after the lease duration, and stepping down when renewals fail.
#include "scheduler/service/leader_election.h"

#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "tests/support/kube_env.h"
#include "tests/support/test_apiserver.h"
#include "tests/support/test_support.h"

namespace tideslice::service {
namespace {

using testsupport::WaitFor;

class Replica {
 public:
  Replica(kube::KubeClient* client, const std::string& id, bool release = true) {
    LeaderElectionOptions o;
    o.identity = id;
    o.lease_duration = std::chrono::milliseconds(2000);
    o.renew_deadline = std::chrono::milliseconds(1000);
    o.retry_period = std::chrono::milliseconds(100);
    o.release_on_cancel = release;
    elector_ = std::make_unique<LeaderElector>(client, o);
    thread_ = std::thread([this] { elector_->Run(&cancel_); });
  }
  ~Replica() { Stop(); }
  void Stop() {
    cancel_.Cancel();
    if (thread_.joinable()) thread_.join();
  }
  bool leading() const { return elector_->leading(); }

 private:
  std::unique_ptr<LeaderElector> elector_;
  http::CancelFlag cancel_;
  std::thread thread_;
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  testsupport::KubeEnv env_;
  std::unique_ptr<testsupport::TestApiServer>& server_ = env_.server;
  std::unique_ptr<kube::KubeClient>& client_ = env_.client;
  kube::json Lease() { return *server_->Get("leases", "tideslice-system", "tideslice-scheduler"); }
};

TEST(LeaderElectionOptionsTest, ValidationNamesTheFlag) {
  LeaderElectionOptions o;
  EXPECT_EQ(ValidateLeaderElection(o).field(), "--leader-elect-identity");
  o.identity = "a";
  EXPECT_TRUE(ValidateLeaderElection(o).ok());
  o.renew_deadline = o.lease_duration;
  EXPECT_EQ(ValidateLeaderElection(o).field(), "--leader-elect-lease-duration");
  o.renew_deadline = std::chrono::milliseconds(2000);
  EXPECT_EQ(ValidateLeaderElection(o).field(), "--leader-elect-renew-deadline");  // not > 1.2 x 2 s
}

TEST_F(LeaderElectionTest, OneLeadsTheOtherWaitsAndTakesOverOnRelease) {
  Replica a(client_.get(), "a");
  ASSERT_TRUE(WaitFor([&] { return a.leading(); }, 3000));
  Replica b(client_.get(), "b");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE(b.leading());
  kube::json lease = Lease();
  EXPECT_EQ(lease["spec"]["holderIdentity"], "a");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 2);
  const std::regex micro(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)");  // MicroTime: exactly 6 digits
  EXPECT_TRUE(std::regex_match(lease["spec"]["renewTime"].get<std::string>(), micro)) << lease.dump();
  EXPECT_TRUE(std::regex_match(lease["spec"]["acquireTime"].get<std::string>(), micro));
  auto released_at = std::chrono::steady_clock::now();
  a.Stop();
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "");
  ASSERT_TRUE(WaitFor([&] { return b.leading(); }, 3000));
  // A released lease is taken at the next retry, not after the lease duration.
  EXPECT_LT(std::chrono::steady_clock::now() - released_at, std::chrono::milliseconds(1500));
  EXPECT_EQ(Lease()["spec"]["holderIdentity"], "b");
  EXPECT_EQ(Lease()["spec"]["leaseTransitions"], 1);
}

TEST_F(LeaderElectionTest, ACrashedLeaderIsReplacedOnlyAfterTheLeaseDuration) {
  Replica a(client_.get(), "a", /*release=*/false);
  ASSERT_TRUE(WaitFor([&] { return a.leading(); }, 3000));
  Replica b(client_.get(), "b");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto crashed_at = std::chrono::steady_clock::now();
  a.Stop();  // no release: like a killed pod
  ASSERT_TRUE(WaitFor([&] { return b.leading(); }, 6000));
  // b waited for the lease to go unrenewed for its duration (2 s) by b's own clock.
  EXPECT_GE(std::chrono::steady_clock::now() - crashed_at, std::chrono::milliseconds(1700));
}

TEST_F(LeaderElectionTest, ALeaderThatCannotRenewStepsDown) {
  Replica a(client_.get(), "a");
  ASSERT_TRUE(WaitFor([&] { return a.leading(); }, 3000));
  server_->FailNext("PUT", "/leases/", 503, 1000, "ServiceUnavailable");
  server_->FailNext("GET", "/leases/", 503, 1000, "ServiceUnavailable");
  EXPECT_TRUE(WaitFor([&] { return !a.leading(); }, 6000)) << "must stop leading after the renew deadline";
}

}  // namespace
}  // namespace tideslice::service
