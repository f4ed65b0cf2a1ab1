// Keeps this node's ResourceSlices of the driver in the API server equal to the inventory: one
// pool named after the node, slices written by name (PUT with the read resourceVersion, POST when
// missing), slices no longer wanted deleted. The pool's generation moves on whenever anything in
// it changes, in every slice at once (consumers use only the highest generation of a pool).
// Called on every inventory change (health, cards, partition mode) and periodically, which also
// re-creates slices the kubelet wiped (it deletes a node's slices at its start and 30 s after a
// driver goes away). The API server may re-serialize quantities, so "unchanged" means "what it
// returned when this publisher last wrote, for the same inventory", never a string comparison
// with what the builder makes.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/kube/client.h"
#include "device-plugin/dra/resource_slices.h"

namespace tideslice::dra {

class SlicePublisher {
 public:
  SlicePublisher(kube::KubeClient& client, std::string driver, std::string node_name)
      : client_(client), driver_(std::move(driver)), node_(std::move(node_name)) {}

  // Returns what it could not do; on an error the next Sync starts over from a fresh list.
  Status Sync(const NodeInventory& inventory);

  int64_t generation() const { return generation_; }
  int writes() const { return writes_; }

 private:
  kube::KubeClient& client_;
  std::string driver_, node_;
  std::string node_uid_;
  int64_t generation_ = 0;
  nlohmann::json last_desired_;                     // the builder's slices at the last complete write
  std::map<std::string, nlohmann::json> written_;   // name -> spec as the server returned it
  int writes_ = 0;
};

}  // namespace tideslice::dra
