// The pod-level settings that both the scheduler and the node agent read from a pod: its workload
// class (label tideslice.io/workload, else its owner's kind) and its compute mode (annotation
// tideslice.io/compute-mode). One table, so that the agent gives a pod's containers the class the
// scheduler's tidal pools gave the pod. Plain data, header-only (the placement core uses it).
#pragma once

#include <string_view>

namespace tideslice::kube {

inline constexpr const char* kWorkloadLabel = "tideslice.io/workload";
inline constexpr std::string_view kWorkloadInference = "inference";
inline constexpr std::string_view kWorkloadTraining = "training";

// A soft slice's compute share is a cap ("capped", the default) or a floor that may use idle
// capacity beyond it ("work-conserving"). Any other value is refused at admission.
inline constexpr const char* kComputeModeAnnotation = "tideslice.io/compute-mode";
inline constexpr std::string_view kComputeModeCapped = "capped";
inline constexpr std::string_view kComputeModeWorkConserving = "work-conserving";

// The class an owner of this kind implies: Deployment-like owners serve inference, Job-like
// owners and training operators train; "" for any other kind.
inline std::string_view WorkloadOfOwnerKind(std::string_view kind) {
  for (std::string_view k : {"ReplicaSet", "Deployment", "StatefulSet", "InferenceService", "LeaderWorkerSet"})
    if (kind == k) return kWorkloadInference;
  for (std::string_view k : {"Job", "CronJob", "PyTorchJob", "TFJob", "MPIJob", "XGBoostJob", "PaddleJob", "RayJob",
                             "TrainJob", "PodGroup"})
    if (kind == k) return kWorkloadTraining;
  return "";
}

}  // namespace tideslice::kube
