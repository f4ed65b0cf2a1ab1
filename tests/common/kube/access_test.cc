#include "common/kube/access.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/support/test_support.h"

namespace tideslice::kube {
namespace {

using testsupport::TempDir;

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(KubeconfigTest, PlainHttpServerWithTokenAndNamespace) {
  TempDir dir;
  Write(dir.path() + "/config", R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: local
  cluster:
    server: http://127.0.0.1:6443/
contexts:
- name: dev
  context: {cluster: local, user: me, namespace: ml-team}
users:
- name: me
  user:
    token: abc123
)");
  auto a = LoadKubeconfig(dir.path() + "/config");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->server, "http://127.0.0.1:6443");
  EXPECT_TRUE(a->plain_http());
  EXPECT_EQ(a->token, "abc123");
  EXPECT_EQ(a->default_namespace, "ml-team");
}

TEST(KubeconfigTest, Base64DataAndRelativeFilesAndExplicitContext) {
  TempDir dir;
  Write(dir.path() + "/certs/client.crt", "CERT-PEM");
  Write(dir.path() + "/certs/client.key", "KEY-PEM");
  Write(dir.path() + "/token", "rotating-token\n");
  // "Q0EtUEVN" is base64 for "CA-PEM".
  Write(dir.path() + "/config", R"({"apiVersion":"v1","kind":"Config","current-context":"a",
"clusters":[{"name":"prod","cluster":{"server":"https://10.0.0.1:443","certificate-authority-data":"Q0EtUEVN"}}],
"contexts":[{"name":"a","context":{"cluster":"prod","user":"u1"}},{"name":"b","context":{"cluster":"prod","user":"u2"}}],
"users":[{"name":"u1","user":{"token":"x"}},
         {"name":"u2","user":{"client-certificate":"certs/client.crt","client-key":"certs/client.key","tokenFile":"token"}}]})");
  auto a = LoadKubeconfig(dir.path() + "/config", "b");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->ca_pem, "CA-PEM");
  EXPECT_EQ(a->client_cert_pem, "CERT-PEM");
  EXPECT_EQ(a->client_key_pem, "KEY-PEM");
  EXPECT_EQ(a->token_file, dir.path() + "/token");
  EXPECT_FALSE(a->plain_http());
  EXPECT_EQ(a->default_namespace, "default");
}

TEST(KubeconfigTest, BadFilesSayWhatToChange) {
  TempDir dir;
  auto load = [&](const std::string& text) {
    Write(dir.path() + "/config", text);
    return LoadKubeconfig(dir.path() + "/config").status();
  };
  const std::string head = "clusters:\n- name: c\n  cluster: {server: https://h:1}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n";
  EXPECT_NE(load("a: [unclosed").message().find("not valid YAML"), std::string::npos);
  EXPECT_NE(load(head + "users: []\n").message().find("current-context"), std::string::npos);
  Status s = load(head + "current-context: missing\nusers: []\n");
  EXPECT_EQ(s.field(), "contexts");
  EXPECT_NE(s.message().find("missing"), std::string::npos);
  s = load(head + "current-context: x\nusers:\n- name: u\n  user: {exec: {command: aws}}\n");
  EXPECT_NE(s.message().find("exec/auth-provider"), std::string::npos);
  s = load(head + "current-context: x\nusers:\n- name: u\n  user: {client-certificate-data: QUJD}\n");
  EXPECT_NE(s.message().find("without a key"), std::string::npos);
  s = load(head + "current-context: x\nusers:\n- name: u\n  user: {client-certificate-data: 'not base64!'}\n");
  EXPECT_NE(s.ToString().find("client-certificate-data"), std::string::npos);
  s = load("current-context: x\nclusters:\n- name: c\n  cluster: {server: 'h:1'}\ncontexts:\n- name: x\n  context: {cluster: c}\n");
  EXPECT_EQ(s.field(), "clusters.cluster.server");
  EXPECT_FALSE(LoadKubeconfig(dir.path() + "/nope").ok());
}

TEST(InClusterTest, ServiceAccountMountAndEnvironment) {
  TempDir root;
  const std::string sa = root.path() + "/var/run/secrets/kubernetes.io/serviceaccount";
  Write(sa + "/ca.crt", "CLUSTER-CA");
  Write(sa + "/token", "t1");
  Write(sa + "/namespace", "tideslice-system\n");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto a = InClusterAccess(root.path());
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->server, "https://[fd00::1]:443");
  EXPECT_EQ(a->ca_pem, "CLUSTER-CA");
  EXPECT_EQ(a->token_file, sa + "/token");
  EXPECT_EQ(a->default_namespace, "tideslice-system");
  unsetenv("KUBERNETES_SERVICE_HOST");
  Status s = InClusterAccess(root.path()).status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("--kubeconfig"), std::string::npos);
  unsetenv("KUBERNETES_SERVICE_PORT");
}

}  // namespace
}  // namespace tideslice::kube
