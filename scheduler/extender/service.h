// Glue between the HTTP endpoint and the verbs: decodes each verb's body, runs it against the
// current cluster snapshot, encodes the answer kube-scheduler expects.
#pragma once

#include <functional>
#include <memory>

#include "common/http/server.h"
#include "scheduler/extender/verbs.h"

namespace tideslice::extender {

using SnapshotSource = std::function<std::shared_ptr<const core::ClusterState>()>;
// Bind needs the Kubernetes API (Binding + assignment in one call); until that client exists
// the service answers bind with an Error rather than pretending.
http::HttpReply ServeVerb(const Verbs& verbs, const SnapshotSource& snapshot, const std::string& verb, const std::string& body);

}  // namespace tideslice::extender
