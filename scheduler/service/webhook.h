// The admission webhook (admission.k8s.io/v1 AdmissionReview over HTTPS).
//
// Mutating (/mutate): a pod that asks for TideSlice or aliased resources (tideslice.io/*,
// nvidia.com/gpu*, huawei.com/Ascend*) and names no scheduler of its own gets
// schedulerName: tideslice-scheduler, and a tideslice.io/workload label when it has none (from
// its owner: Deployments and friends are inference, Jobs and training operators are training;
// otherwise the configured default). A training pod also gets a downward-API volume with its
// tidal checkpoint notice, mounted read-only in every container at notice_mount_path: the files
// "deadline" (RFC 3339, empty until a notice comes) and "notice" (the JSON) change in place when
// the tidal controller writes the annotations.
// Validating (/validate): the request contract's bad-input table (PreFilter) is rejected with the
// message that says what to change. Pods in excluded namespaces pass untouched.
#pragma once

#include <set>
#include <string>

#include "common/catalog/catalog.h"
#include "scheduler/extender/http_server.h"

namespace tideslice::service {

struct WebhookOptions {
  std::string scheduler_name = "tideslice-scheduler";
  std::string default_workload = "inference";            // "inference" or "training"
  std::set<std::string> excluded_namespaces = {"kube-system"};
  std::string notice_mount_path = "/etc/tideslice/notice";  // "" = do not mount the notice
};

inline constexpr char kNoticeVolume[] = "tideslice-checkpoint-notice";

// Both take the AdmissionReview body and return the AdmissionReview answer (HTTP 200), or HTTP
// 400 when the body is not an AdmissionReview at all.
extender::HttpReply ServeMutate(const std::string& body, const catalog::Catalog& catalog, const WebhookOptions& options);
extender::HttpReply ServeValidate(const std::string& body, const catalog::Catalog& catalog,
                                  const WebhookOptions& options);

}  // namespace tideslice::service
