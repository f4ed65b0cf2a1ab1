// Signed assignments: what the signature covers, what the agent may change, keys from PEM files
// (as openssl and Helm write them), and the checks that bind a record to its pod.
#include "common/trust/assignment_seal.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tideslice::trust {
namespace {

v1::PodAssignment Sample() {
  v1::PodAssignment a;
  a.set_pod_uid("u-1");
  a.set_node_name("n1");
  a.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATING);
  a.set_lease_holder("sched-a");
  a.set_lease_term(3);
  auto* c = a.add_containers();
  c->set_name("main");
  auto* s = c->add_slices();
  s->set_card_uuid("GPU-1");
  s->set_memory_mib(8192);
  s->set_compute_permille(250);
  return a;
}

TEST(AssignmentSeal, SignedFieldsAreCoveredAndAgentFieldsAreNot) {
  auto signer = AssignmentSigner::Generate().value();
  auto verifier = *AssignmentVerifier::FromPem(signer->PublicKeyPem());
  v1::PodAssignment a = Sample();
  ASSERT_TRUE(signer->Sign(&a).ok());
  EXPECT_EQ(a.key_id(), signer->key_id());
  EXPECT_TRUE(verifier->Verify(a).ok());

  v1::PodAssignment acked = a;  // what the node agent writes
  acked.set_phase(v1::ASSIGNMENT_PHASE_ALLOCATED);
  acked.mutable_allocated_at()->set_seconds(99);
  acked.mutable_containers(0)->add_device_ids("GPU-1::0");
  EXPECT_TRUE(verifier->Verify(acked).ok());

  auto tampered = [&](auto edit) {
    v1::PodAssignment t = a;
    edit(t);
    return verifier->Verify(t);
  };
  EXPECT_EQ(tampered([](auto& t) { t.mutable_containers(0)->mutable_slices(0)->set_memory_mib(81920); }).code(),
            StatusCode::kPermissionDenied);
  EXPECT_FALSE(tampered([](auto& t) { t.mutable_containers(0)->mutable_slices(0)->set_whole_card(true); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_pod_uid("u-2"); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_node_name("n2"); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_lease_term(4); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_exclusive(true); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.clear_signature(); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_signature("not base64!"); }).ok());
  EXPECT_FALSE(tampered([](auto& t) { t.set_signature("AAAA"); }).ok());
}

TEST(AssignmentSeal, AnotherKeyIsRefusedAndTwoKeysAreAcceptedDuringRotation) {
  auto old_key = AssignmentSigner::Generate().value();
  auto new_key = AssignmentSigner::Generate().value();
  v1::PodAssignment a = Sample();
  ASSERT_TRUE(old_key->Sign(&a).ok());
  EXPECT_FALSE((*AssignmentVerifier::FromPem(new_key->PublicKeyPem()))->Verify(a).ok());
  auto both = *AssignmentVerifier::FromPem(new_key->PublicKeyPem() + old_key->PublicKeyPem());
  EXPECT_EQ(both->key_count(), 2u);
  EXPECT_TRUE(both->Verify(a).ok());
}

TEST(AssignmentSeal, KeysFromFilesAsOpensslWritesThemAndClearErrors) {
  auto dir = std::filesystem::temp_directory_path() / ("seal-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string priv = (dir / "key.pem").string(), pub = (dir / "key.pub").string();
  ASSERT_EQ(std::system(("openssl genpkey -algorithm ed25519 -out " + priv + " 2>/dev/null && openssl pkey -in " + priv +
                         " -pubout -out " + pub + " 2>/dev/null")
                            .c_str()),
            0);
  auto signer = AssignmentSigner::FromPemFile(priv);
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  auto verifier = AssignmentVerifier::FromPemFile(pub);
  ASSERT_TRUE(verifier.ok()) << verifier.status().ToString();
  v1::PodAssignment a = Sample();
  ASSERT_TRUE((*signer)->Sign(&a).ok());
  EXPECT_TRUE((*verifier)->Verify(a).ok());

  // An RSA key is refused with what to do instead.
  const std::string rsa = (dir / "rsa.pem").string();
  ASSERT_EQ(std::system(("openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -out " + rsa + " 2>/dev/null").c_str()), 0);
  auto wrong = AssignmentSigner::FromPemFile(rsa);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("Ed25519"), std::string::npos) << wrong.status().ToString();
  EXPECT_EQ(AssignmentSigner::FromPemFile((dir / "missing.pem").string()).status().field(), "--assignment-signing-key");
  EXPECT_FALSE(AssignmentVerifier::FromPem("no key here").ok());

  // The file is re-read when it changes (a ConfigMap volume updated in place).
  VerifierFile file(pub);
  auto first = file.Get();
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE((*first)->Verify(a).ok());
  auto rotated = AssignmentSigner::Generate().value();
  { std::ofstream(pub) << rotated->PublicKeyPem(); }
  auto second = file.Get();
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE((*second)->Verify(a).ok());
  std::filesystem::remove_all(dir);
}

TEST(AssignmentSeal, TheRecordMustNameThePodItIsOn) {
  auto signer = AssignmentSigner::Generate().value();
  auto verifier = *AssignmentVerifier::FromPem(signer->PublicKeyPem());
  v1::PodAssignment a = Sample();
  ASSERT_TRUE(signer->Sign(&a).ok());
  nlohmann::json pod = {{"metadata", {{"uid", "u-1"}}}, {"spec", {{"nodeName", "n1"}}}};
  EXPECT_TRUE(CheckAssignmentOwner(verifier.get(), pod, a).ok());
  EXPECT_TRUE(CheckAssignmentOwner(nullptr, pod, a).ok());
  nlohmann::json other = {{"metadata", {{"uid", "u-2"}}}, {"spec", {{"nodeName", "n1"}}}};
  EXPECT_EQ(CheckAssignmentOwner(verifier.get(), other, a).code(), StatusCode::kPermissionDenied);
  nlohmann::json moved = {{"metadata", {{"uid", "u-1"}}}, {"spec", {{"nodeName", "n9"}}}};
  EXPECT_FALSE(CheckAssignmentOwner(nullptr, moved, a).ok());
  nlohmann::json hostile = {{"metadata", 5}, {"spec", {{"nodeName", 7}}}};
  EXPECT_FALSE(CheckAssignmentOwner(nullptr, hostile, a).ok());
  v1::PodAssignment no_uid = a;
  no_uid.clear_pod_uid();
  nlohmann::json empty_uid = {{"metadata", nlohmann::json::object()}, {"spec", {{"nodeName", "n1"}}}};
  EXPECT_FALSE(CheckAssignmentOwner(nullptr, empty_uid, no_uid).ok()) << "an empty UID never matches";
}

}  // namespace
}  // namespace tideslice::trust
