// Who may decide who holds a card: only the scheduler. An assignment is trusted when it carries
// a valid Ed25519 signature by the scheduler's signing key over the fields the scheduler decides
// (pod UID, node, containers and their slices, exclusivity, bind time, lease holder and term),
// and when those fields match the pod it is found on (its UID and spec.nodeName). The node agent
// changes phase, allocated_at, message and device IDs, which the signature leaves out.
//
// The private key lives only in the scheduler (a Secret mounted into its pod); the agents and the
// scheduler's own cache verify with the public key, so a compromised node cannot mint
// assignments, and a pod author who bypasses admission cannot either: a signature also binds the
// pod's UID, which the API server assigns after admission.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tideslice/v1/tideslice.pb.h"

namespace tideslice::trust {

// The bytes the signature covers: deterministic protobuf serialization of the assignment with
// the agent-written fields and the signature cleared.
std::string SealedBytes(const v1::PodAssignment& assignment);

class AssignmentSigner {
 public:
  // A PEM private key (PKCS#8 "PRIVATE KEY", as openssl genpkey -algorithm ed25519 or Helm's
  // genPrivateKey "ed25519" write it).
  static StatusOr<std::unique_ptr<AssignmentSigner>> FromPem(const std::string& pem);
  static StatusOr<std::unique_ptr<AssignmentSigner>> FromPemFile(const std::string& path);
  // A fresh key (tests, and local runs that ask for one).
  static StatusOr<std::unique_ptr<AssignmentSigner>> Generate();
  ~AssignmentSigner();

  // Sets key_id and signature.
  Status Sign(v1::PodAssignment* assignment) const;
  std::string PublicKeyPem() const;
  std::string PrivateKeyPem() const;
  const std::string& key_id() const { return key_id_; }

 private:
  struct Key;
  explicit AssignmentSigner(std::unique_ptr<Key> key);
  std::unique_ptr<Key> key_;
  std::string key_id_;
};

// One or more public keys (several PEM blocks in one text: the old and the new key while a key
// is rotated).
class AssignmentVerifier {
 public:
  static StatusOr<std::shared_ptr<const AssignmentVerifier>> FromPem(const std::string& pem);
  static StatusOr<std::shared_ptr<const AssignmentVerifier>> FromPemFile(const std::string& path);
  ~AssignmentVerifier();

  // Ok when the signature is valid for one of the keys; PermissionDenied saying why otherwise.
  Status Verify(const v1::PodAssignment& assignment) const;
  size_t key_count() const { return keys_.size(); }
  // Each key as PEM ("BEGIN PUBLIC KEY"), in the order given, encoded as AssignmentSigner's
  // PublicKeyPem is, so the two compare as text.
  std::vector<std::string> KeyPems() const;

 private:
  struct Key;
  AssignmentVerifier() = default;
  std::vector<std::unique_ptr<Key>> keys_;
};

// Re-reads a public-key file when it changes (a ConfigMap volume updates in place), so a rotated
// key reaches a running agent. Thread-safe.
class VerifierFile {
 public:
  explicit VerifierFile(std::string path) : path_(std::move(path)) {}
  // The current verifier; an error when the file is missing or holds no usable key.
  StatusOr<std::shared_ptr<const AssignmentVerifier>> Get();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::mutex mu_;
  std::string loaded_stamp_;
  std::shared_ptr<const AssignmentVerifier> current_;
};

// Everything that binds an assignment to the pod carrying it: a valid signature (when `verifier`
// is given), the pod's UID (metadata.uid) and node (spec.nodeName). PermissionDenied says which
// check failed, for an Event and a log line.
Status CheckAssignmentOwner(const AssignmentVerifier* verifier, const nlohmann::json& pod,
                            const v1::PodAssignment& assignment);

}  // namespace tideslice::trust
