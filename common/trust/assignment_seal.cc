#include "common/trust/assignment_seal.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <sstream>

#include "common/kube/objects.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

namespace tideslice::trust {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::string Base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

StatusOr<std::string> Unbase64(const std::string& in) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 1024) return Status::PermissionDenied("signature is not base64");
  std::string out(3 * in.size() / 4, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return Status::PermissionDenied("signature is not base64");
  size_t pad = (in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

StatusOr<std::string> RawPublicKey(EVP_PKEY* key) {
  unsigned char raw[64];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1) return Status::InvalidArgument("key", "is not an Ed25519 key");
  return std::string(reinterpret_cast<char*>(raw), len);
}

std::string KeyId(const std::string& raw_public) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(raw_public.data()), raw_public.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 8; ++i) {
    id += hex[digest[i] >> 4];
    id += hex[digest[i] & 15];
  }
  return id;
}

StatusOr<std::string> ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(what, "cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (ss.str().size() > (64 << 10)) return Status::InvalidArgument(what, path + " is larger than a key file can be");
  return ss.str();
}

}  // namespace

std::string SealedBytes(const v1::PodAssignment& assignment) {
  v1::PodAssignment sealed = assignment;
  sealed.clear_phase();
  sealed.clear_allocated_at();
  sealed.clear_message();
  sealed.clear_signature();
  sealed.clear_key_id();
  for (auto& c : *sealed.mutable_containers()) c.clear_device_ids();
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    sealed.SerializeToCodedStream(&coded);
  }
  return out;
}

struct AssignmentSigner::Key {
  Pkey pkey;
};

AssignmentSigner::AssignmentSigner(std::unique_ptr<Key> key) : key_(std::move(key)) {
  auto raw = RawPublicKey(key_->pkey.get());
  key_id_ = raw.ok() ? KeyId(*raw) : "";
}
AssignmentSigner::~AssignmentSigner() = default;

StatusOr<std::unique_ptr<AssignmentSigner>> AssignmentSigner::FromPem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey) return Status::InvalidArgument("--assignment-signing-key", "is not a PEM private key");
  if (EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519)
    return Status::InvalidArgument("--assignment-signing-key",
                                   "must be an Ed25519 key (openssl genpkey -algorithm ed25519)");
  auto key = std::make_unique<Key>();
  key->pkey = std::move(pkey);
  return std::unique_ptr<AssignmentSigner>(new AssignmentSigner(std::move(key)));
}

StatusOr<std::unique_ptr<AssignmentSigner>> AssignmentSigner::FromPemFile(const std::string& path) {
  auto text = ReadFile(path, "--assignment-signing-key");
  if (!text.ok()) return text.status();
  auto s = FromPem(*text);
  if (!s.ok()) return Status::InvalidArgument("--assignment-signing-key", path + " " + s.status().message());
  return s;
}

StatusOr<std::unique_ptr<AssignmentSigner>> AssignmentSigner::Generate() {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                   EVP_PKEY_CTX_free);
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
    return Status::Internal("cannot generate an Ed25519 key");
  auto key = std::make_unique<Key>();
  key->pkey.reset(raw);
  return std::unique_ptr<AssignmentSigner>(new AssignmentSigner(std::move(key)));
}

Status AssignmentSigner::Sign(v1::PodAssignment* assignment) const {
  assignment->set_key_id(key_id_);
  const std::string bytes = SealedBytes(*assignment);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  unsigned char sig[64];
  size_t sig_len = sizeof sig;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, nullptr, nullptr, key_->pkey.get()) != 1 ||
      EVP_DigestSign(md.get(), sig, &sig_len, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) != 1)
    return Status::Internal("cannot sign the assignment");
  assignment->set_signature(Base64(sig, sig_len));
  return Status::Ok();
}

namespace {
std::string WritePem(EVP_PKEY* key, bool private_key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  int ok = private_key ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                       : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}
}  // namespace

std::string AssignmentSigner::PublicKeyPem() const { return WritePem(key_->pkey.get(), false); }
std::string AssignmentSigner::PrivateKeyPem() const { return WritePem(key_->pkey.get(), true); }

struct AssignmentVerifier::Key {
  Pkey pkey;
  std::string id;
};
AssignmentVerifier::~AssignmentVerifier() = default;

StatusOr<std::shared_ptr<const AssignmentVerifier>> AssignmentVerifier::FromPem(const std::string& pem) {
  std::shared_ptr<AssignmentVerifier> v(new AssignmentVerifier());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  while (v->keys_.size() < 8) {
    Pkey pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!pkey) break;
    if (EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519)
      return Status::InvalidArgument("assignment verify key", "holds a key that is not Ed25519");
    auto raw = RawPublicKey(pkey.get());
    if (!raw.ok()) return raw.status();
    auto key = std::make_unique<Key>();
    key->id = KeyId(*raw);
    key->pkey = std::move(pkey);
    v->keys_.push_back(std::move(key));
  }
  if (v->keys_.empty())
    return Status::InvalidArgument("assignment verify key", "holds no PEM public key (BEGIN PUBLIC KEY)");
  return std::shared_ptr<const AssignmentVerifier>(std::move(v));
}

std::vector<std::string> AssignmentVerifier::KeyPems() const {
  std::vector<std::string> out;
  for (const auto& key : keys_) out.push_back(WritePem(key->pkey.get(), false));
  return out;
}

StatusOr<std::shared_ptr<const AssignmentVerifier>> AssignmentVerifier::FromPemFile(const std::string& path) {
  auto text = ReadFile(path, "--assignment-verify-key");
  if (!text.ok()) return text.status();
  auto v = FromPem(*text);
  if (!v.ok()) return Status::InvalidArgument("--assignment-verify-key", path + ": " + v.status().message());
  return v;
}

Status AssignmentVerifier::Verify(const v1::PodAssignment& assignment) const {
  if (assignment.signature().empty()) return Status::PermissionDenied("the assignment is not signed");
  auto sig = Unbase64(assignment.signature());
  if (!sig.ok()) return sig.status();
  if (sig->size() != 64) return Status::PermissionDenied("the signature is not an Ed25519 signature");
  const std::string bytes = SealedBytes(assignment);
  for (const auto& key : keys_) {
    if (!assignment.key_id().empty() && assignment.key_id() != key->id) continue;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (md && EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, key->pkey.get()) == 1 &&
        EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                         reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()) == 1)
      return Status::Ok();
  }
  return Status::PermissionDenied("the signature does not match the scheduler's key (key id \"" +
                                  assignment.key_id().substr(0, 32) + "\")");
}

StatusOr<std::shared_ptr<const AssignmentVerifier>> VerifierFile::Get() {
  struct stat st {};
  std::lock_guard<std::mutex> lock(mu_);
  if (::stat(path_.c_str(), &st) != 0) {
    if (current_) return current_;  // a ConfigMap volume swaps its link: keep the last good key meanwhile
    return Status::Unavailable("the assignment verify key " + path_ + " does not exist (yet)");
  }
  const std::string stamp = std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) + "/" +
                            std::to_string(st.st_size) + "/" + std::to_string(st.st_ino);
  if (current_ && stamp == loaded_stamp_) return current_;
  auto v = AssignmentVerifier::FromPemFile(path_);
  if (!v.ok()) {
    if (current_) return current_;
    return v.status();
  }
  current_ = *v;
  loaded_stamp_ = stamp;
  return current_;
}

Status CheckAssignmentOwner(const AssignmentVerifier* verifier, const nlohmann::json& pod,
                            const v1::PodAssignment& assignment) {
  const std::string uid = kube::UidOf(pod), node = kube::NodeNameOf(pod);
  if (assignment.pod_uid().empty() || assignment.pod_uid() != uid)
    return Status::PermissionDenied("the assignment names pod UID \"" + assignment.pod_uid().substr(0, 64) +
                                    "\", not this pod's \"" + uid + "\"");
  if (assignment.node_name() != node)
    return Status::PermissionDenied("the assignment names node \"" + assignment.node_name().substr(0, 253) +
                                    "\", but the pod is bound to \"" + node + "\"");
  if (verifier) TS_RETURN_IF_ERROR(verifier->Verify(assignment));
  return Status::Ok();
}

}  // namespace tideslice::trust
