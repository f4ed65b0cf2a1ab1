// How to reach the Kubernetes API server: in-cluster (service account) or a kubeconfig file.
// Resolved and validated once at start-up; file references are read here so that a missing CA
// or key stops start-up with a message naming it. The one exception is the bearer token file,
// which the kubelet rotates under a running pod: the transport re-reads it when it changes.
#pragma once

#include <string>

#include "common/status.h"

namespace tideslice::kube {

struct KubeAccess {
  std::string server;                   // "https://10.96.0.1:443" or "http://127.0.0.1:PORT"
  std::string ca_pem;                   // trusted CA bundle (PEM); empty = system roots
  std::string client_cert_pem;          // client certificate (PEM), with client_key_pem
  std::string client_key_pem;
  std::string token;                    // static bearer token
  std::string token_file;               // bearer token re-read as it rotates (wins over token)
  bool insecure_skip_tls_verify = false;
  std::string default_namespace = "default";
  std::string source;                   // "in-cluster" or the kubeconfig path, for messages

  bool plain_http() const { return server.rfind("http://", 0) == 0; }
};

// The service-account mount and KUBERNETES_SERVICE_HOST/PORT. `root` prefixes the mount path
// (tests); production passes "".
StatusOr<KubeAccess> InClusterAccess(const std::string& root = "");

// A kubeconfig (YAML or JSON). `context` empty = current-context. Relative file paths are
// resolved against the kubeconfig's directory, as kubectl does.
StatusOr<KubeAccess> LoadKubeconfig(const std::string& path, const std::string& context = "");

// --kubeconfig given: that file; otherwise in-cluster.
StatusOr<KubeAccess> ResolveAccess(const std::string& kubeconfig_flag);

}  // namespace tideslice::kube
