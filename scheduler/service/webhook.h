// The admission webhook (admission.k8s.io/v1 AdmissionReview over HTTPS).
//
// Mutating (/mutate): a pod that asks for TideSlice or aliased resources (tideslice.io/*,
// nvidia.com/gpu*, huawei.com/Ascend*) and names no scheduler of its own gets
// schedulerName: tideslice-scheduler, and a tideslice.io/workload label when it has none (from
// its owner: Deployments and friends are inference, Jobs and training operators are training;
// otherwise the configured default). A training pod also gets a downward-API volume with its
// tidal checkpoint notice, mounted read-only in every container at notice_mount_path: the files
// "deadline" (RFC 3339, empty until a notice comes) and "notice" (the JSON) change in place when
// the tidal controller writes the annotations. Only CREATE is mutated (a pod's spec is immutable
// afterwards, so a patch on UPDATE would only be refused).
// Validating (/validate), in this order:
//  - Annotations TideSlice owns (kOwnedAnnotations) are TideSlice's to write: a CREATE that
//    carries one is refused (no pod is born with an assignment or a notice), and an UPDATE that
//    adds, changes or removes one is refused unless request.userInfo.username is a trusted
//    writer. Applies in every namespace, the excluded ones included: a forged assignment in
//    kube-system would corrupt accounting just the same.
//  - CREATE only: the request contract's bad-input table (PreFilter), rejected with the message
//    that says what to change. Pods in excluded namespaces skip this.
// The body is external input: parsed with depth and size limits, read with type checks, and
// anything unreadable is a 400 (no AdmissionReview) or a refusal that names the field.
#pragma once

#include <array>
#include <set>
#include <string>
#include <string_view>

#include "common/catalog/catalog.h"
#include "common/http/server.h"

namespace tideslice::service {

// The pod annotations only TideSlice writes: who holds which card (scheduler, node agents), the
// tidal checkpoint notice (tidal controller) and why a pending pod fits no node (scheduler; what
// `kubectl tideslice why` shows). The one list; others may reuse it. webhook.cc checks that these
// match the constants their writers use.
inline constexpr std::array<std::string_view, 4> kOwnedAnnotations = {
    "tideslice.io/assignment", "tideslice.io/checkpoint-notice", "tideslice.io/checkpoint-deadline",
    "tideslice.io/filter-reasons"};

struct WebhookOptions {
  std::string scheduler_name = "tideslice-scheduler";
  std::string default_workload = "inference";            // "inference" or "training"
  std::set<std::string> excluded_namespaces = {"kube-system"};
  std::string notice_mount_path = "/etc/tideslice/notice";  // "" = do not mount the notice
  // Users allowed to change kOwnedAnnotations on UPDATE, as the API server names them in
  // request.userInfo.username: "system:serviceaccount:<namespace>:<service account>", e.g.
  // "system:serviceaccount:tideslice-system:tideslice-scheduler". An entry ending in '*' matches
  // every username that starts with the rest ("system:serviceaccount:tideslice-system:*"); a
  // bare "*" matches nobody. Empty: nobody may change them.
  std::set<std::string> trusted_writers;
};

inline constexpr char kNoticeVolume[] = "tideslice-checkpoint-notice";

// True when `username` is in `trusted` exactly or matches one of its "prefix*" entries.
bool IsTrustedWriter(const std::string& username, const std::set<std::string>& trusted);

// Both take the AdmissionReview body and return the AdmissionReview answer (HTTP 200), or HTTP
// 400 when the body is not an AdmissionReview at all. Neither throws.
http::HttpReply ServeMutate(const std::string& body, const catalog::Catalog& catalog, const WebhookOptions& options);
http::HttpReply ServeValidate(const std::string& body, const catalog::Catalog& catalog,
                                  const WebhookOptions& options);

}  // namespace tideslice::service
