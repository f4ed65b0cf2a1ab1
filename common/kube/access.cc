#include "common/kube/access.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tideslice::kube {
namespace {

StatusOr<std::string> ReadWholeFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidArgument(what, "cannot read \"" + path + "\"");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Kubeconfig *-data fields are standard base64 (OpenSSL does the decoding).
StatusOr<std::string> DecodeBase64(const std::string& field, std::string text) {
  std::string clean;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.empty() || clean.size() % 4 != 0)
    return Status::InvalidArgument(field, "is not base64 (length must be a multiple of 4)");
  std::string out(clean.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return Status::InvalidArgument(field, "is not valid base64");
  size_t pad = clean.size() - clean.find_last_not_of('=') - 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string Scalar(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts) and returns its
// inner object (the "cluster", "user" or "context" key).
StatusOr<YAML::Node> Named(const YAML::Node& root, const char* list, const char* inner, const std::string& name) {
  const YAML::Node entries = root[list];
  if (entries && entries.IsSequence()) {
    for (const auto& e : entries)
      if (Scalar(e, "name") == name) {
        YAML::Node v = e[inner];
        return v ? v : YAML::Node(YAML::NodeType::Map);
      }
  }
  return Status::InvalidArgument(list, std::string("no entry named \"") + name + "\"");
}

StatusOr<std::string> DataOrFile(const YAML::Node& node, const std::string& base_dir, const char* data_key,
                                 const char* file_key, const std::string& where) {
  std::string data = Scalar(node, data_key);
  if (!data.empty()) return DecodeBase64(where + "." + data_key, data);
  std::string file = Scalar(node, file_key);
  if (file.empty()) return std::string();
  std::filesystem::path p(file);
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return ReadWholeFile(p.string(), where + "." + file_key);
}

}  // namespace

StatusOr<KubeAccess> InClusterAccess(const std::string& root) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return Status::FailedPrecondition(
        "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig FILE");
  const std::string dir = root + "/var/run/secrets/kubernetes.io/serviceaccount";
  KubeAccess a;
  std::string h = host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";  // IPv6 service address
  a.server = "https://" + h + ":" + port;
  auto ca = ReadWholeFile(dir + "/ca.crt", "service account CA");
  if (!ca.ok()) return ca.status();
  a.ca_pem = *ca;
  a.token_file = dir + "/token";
  if (!std::filesystem::exists(a.token_file))
    return Status::FailedPrecondition("service account token " + a.token_file + " is missing (automountServiceAccountToken off?)");
  auto ns = ReadWholeFile(dir + "/namespace", "service account namespace");
  if (ns.ok() && !ns->empty()) a.default_namespace = *ns;
  while (!a.default_namespace.empty() && std::isspace(static_cast<unsigned char>(a.default_namespace.back())))
    a.default_namespace.pop_back();
  a.source = "in-cluster";
  return a;
}

StatusOr<KubeAccess> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto text = ReadWholeFile(path, "--kubeconfig");
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("--kubeconfig", path + " is not valid YAML: " + e.what());
  }
  if (!root.IsMap()) return Status::InvalidArgument("--kubeconfig", path + " is not a kubeconfig (top level is not a map)");
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  std::string ctx_name = context.empty() ? Scalar(root, "current-context") : context;
  if (ctx_name.empty())
    return Status::InvalidArgument("--kubeconfig", path + " has no current-context; set one with kubectl config use-context");
  auto ctx = Named(root, "contexts", "context", ctx_name);
  if (!ctx.ok()) return ctx.status().WithContext(path);
  auto cluster = Named(root, "clusters", "cluster", Scalar(*ctx, "cluster"));
  if (!cluster.ok()) return cluster.status().WithContext(path + ": context \"" + ctx_name + "\"");
  KubeAccess a;
  a.source = path;
  a.server = Scalar(*cluster, "server");
  if (a.server.rfind("https://", 0) != 0 && a.server.rfind("http://", 0) != 0)
    return Status::InvalidArgument("clusters.cluster.server", path + ": server \"" + a.server + "\" must start with https:// or http://");
  while (!a.server.empty() && a.server.back() == '/') a.server.pop_back();
  a.insecure_skip_tls_verify = Scalar(*cluster, "insecure-skip-tls-verify") == "true";
  auto ca = DataOrFile(*cluster, base_dir, "certificate-authority-data", "certificate-authority", "cluster");
  if (!ca.ok()) return ca.status().WithContext(path);
  a.ca_pem = *ca;
  std::string ns = Scalar(*ctx, "namespace");
  if (!ns.empty()) a.default_namespace = ns;

  const std::string user_name = Scalar(*ctx, "user");
  if (!user_name.empty()) {
    auto user = Named(root, "users", "user", user_name);
    if (!user.ok()) return user.status().WithContext(path + ": context \"" + ctx_name + "\"");
    if ((*user)["exec"] || (*user)["auth-provider"])
      return Status::InvalidArgument("users.user", path + ": user \"" + user_name +
                                                       "\" uses an exec/auth-provider plugin, which TideSlice does not run; "
                                                       "use a token, token file or client certificate");
    a.token = Scalar(*user, "token");
    std::string token_file = Scalar(*user, "tokenFile");
    if (!token_file.empty()) {
      std::filesystem::path p(token_file);
      if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
      a.token_file = p.string();
      if (!std::filesystem::exists(a.token_file))
        return Status::InvalidArgument("users.user.tokenFile", path + ": \"" + a.token_file + "\" does not exist");
    }
    auto cert = DataOrFile(*user, base_dir, "client-certificate-data", "client-certificate", "user");
    if (!cert.ok()) return cert.status().WithContext(path);
    auto key = DataOrFile(*user, base_dir, "client-key-data", "client-key", "user");
    if (!key.ok()) return key.status().WithContext(path);
    if (cert->empty() != key->empty())
      return Status::InvalidArgument("users.user", path + ": user \"" + user_name + "\" has a client certificate without a key or a key without a certificate");
    a.client_cert_pem = *cert;
    a.client_key_pem = *key;
  }
  return a;
}

StatusOr<KubeAccess> ResolveAccess(const std::string& kubeconfig_flag) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag);
  return InClusterAccess();
}

}  // namespace tideslice::kube
