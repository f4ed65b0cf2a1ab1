// What the in-container limiters measure, as metrics: each container holding a soft slice keeps
// an accounting region (device-plugin/limiter/region_layout.h) that its processes update on
// every allocation; the agent reads every region under <limiter-dir>/containers/*/*/region/region
// with the config.json beside it and exports, per container and soft-slice card, the memory in
// use, the limit and the allocations refused, and per card the sums over its soft slices.
//
// A region is written by the container it belongs to, so it is input from a possibly hostile
// process: it is read with pread (never mapped: a file truncated under a mapping would kill the
// agent with SIGBUS), opened without following links and only if it is a regular file of exactly
// sizeof(Region) bytes, its header checked with RegionHeaderValid, and every value clamped. A
// region that fails any check exports no measured series (the limit, from the agent's own config,
// stays) and is reported once per change of the reason.
//
// Used bytes: the sum of slots[s].bytes[card] over the slots whose owner is alive, which the
// agent tests itself: a live owner holds an OFD lock on the slot's first byte, and fcntl
// F_OFD_GETLK finds it (a slot whose lock is free is dead, whatever its state word says, and is
// left out). Only if the kernel cannot test the lock does it fall back to CardBook.used_bytes,
// which the limiter keeps but which includes a dead process's bytes until someone reclaims them.
// Whole cards and hard partitions are not limited and have no series here (their use is
// tideslice_pod_memory_used_bytes, from the driver).
//
// Compute shares: every card directory <limiter-dir>/cards/<uuid>/ (limiter/card_coordination.h)
// holds the agent's roster and one entry per container, written by that container's limiter, so
// again hostile input: read with pread, no links followed, exact sizes, header checks, values
// clamped. Joined with the containers' configs (their slot on each card), they give per container
// and card the share achieved (busy time over wall time between two polls), the time throttled,
// the yields to inference peers and the time yielded, and per card the sum of the shares granted
// (from the roster), next to the card's measured utilisation (tideslice_card_utilization_ratio).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "common/status.h"
#include "device-plugin/backends/device_backend.h"

namespace tideslice::deviceplugin {

struct LimiterCardReading {
  std::string card;            // as the config names it: GPU UUID, or the Ascend physical device id
  uint32_t region_card = 0;
  uint64_t limit_bytes = 0;    // from config.json (the agent's own file)
  bool measured = false;       // false: the region could not be read, used/refused unknown
  uint64_t used_bytes = 0;
  uint64_t refused = 0;
  // A compute share on this card (config.json): the container's slot in the card's roster.
  bool coordinated = false;
  uint32_t coordination_slot = 0;
  uint32_t share_permille = 0;
};

struct LimiterContainerReading {
  std::string pod_uid, pod_namespace, pod, container, vendor;
  uint64_t region_created_unix_s = 0;
  bool liveness_tested = false;     // used_bytes from live slots (true) or CardBook.used_bytes
  std::string problem;              // why the region was not measured; empty when it was
  // Soft-slice cards only: a memory limit (limit_bytes > 0), a compute share (coordinated), or both.
  std::vector<LimiterCardReading> cards;
};

// One taken slot of a card's roster and what the container's limiter wrote in its entry.
struct CardSlotReading {
  uint32_t slot = 0;
  std::string pod_uid;             // from the roster; "" when not a plausible UID
  uint32_t workload_class = 0;     // WorkloadClassCode; unknown codes read as 0
  uint32_t share_permille = 0;     // clamped to 1000
  bool work_conserving = false;
  bool measured = false;           // the entry was read and valid
  std::string problem;             // why not
  uint64_t busy_ns = 0, throttled_ns = 0, yields = 0, yielded_ns = 0;  // clamped
};

struct CardCoordinationReading {
  std::string card_uuid;           // the directory's name (DeviceInfo::uuid)
  std::string problem;             // the roster could not be read (then no slots)
  uint64_t generation = 0;
  std::vector<CardSlotReading> slots;  // taken slots only, by slot
};

// Cumulative nanoseconds above this (146 years) are garbage; clamped.
inline constexpr uint64_t kLimiterAbsurdNs = uint64_t(1) << 62;

// One card directory (<limiter-dir>/cards/<uuid>).
CardCoordinationReading ReadCardCoordination(const std::string& card_dir);
// Every card directory under <limiter_dir>/cards (real directories with a plausible name only).
std::vector<CardCoordinationReading> ReadCardsCoordination(const std::string& limiter_dir);

// Values above this are garbage (no card has a petabyte); they are clamped to it.
inline constexpr uint64_t kLimiterAbsurdBytes = uint64_t(1) << 50;

// One container's directory (<limiter-dir>/containers/<uid>/<container>). An error only when its
// config.json is missing or unusable: then nothing about it can be labelled.
StatusOr<LimiterContainerReading> ReadLimiterContainer(const std::string& container_dir);

// Every container under <limiter_dir>/containers; directories without a usable config are
// skipped and named in `problems`.
std::vector<LimiterContainerReading> ReadLimiterContainers(const std::string& limiter_dir,
                                                           std::vector<std::string>* problems = nullptr);

class LimiterMetrics {
 public:
  LimiterMetrics(std::shared_ptr<prometheus::Registry> registry, std::string node_name);
  // Sets every series from `containers`; series of containers and cards no longer present are
  // removed. `cards` (the node's, for labels and bounds): Ascend device ids become the card's
  // UUID, and used bytes are clamped to the card's memory. Problems (the readings' and
  // `unreadable`, from ReadLimiterContainers) are logged once per change.
  void Update(const std::vector<LimiterContainerReading>& containers, const std::vector<DeviceInfo>& cards,
              const std::vector<std::string>& unreadable = {});
  // The compute-share series from the containers' configs joined with the card directories: a
  // container's card counts when its config names a slot that the card's roster gives to the
  // container's pod and whose entry is valid. The achieved share is the busy time the entry
  // gained over the wall time since the previous sample (at least 1 s apart; `now` for tests),
  // clamped to 0..1; none until two samples exist, and none the poll a count went back.
  void UpdateCompute(const std::vector<LimiterContainerReading>& containers,
                     const std::vector<CardCoordinationReading>& coordination, const std::vector<DeviceInfo>& cards,
                     std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

 private:
  struct CounterSeries {
    prometheus::Counter* counter = nullptr;
    uint64_t last = 0;
  };
  struct BusySample {
    uint64_t busy_ns = 0;
    std::chrono::steady_clock::time_point at;
    bool has_ratio = false;
    double ratio = 0;
  };
  using Labels = std::map<std::string, std::string>;
  void SetGauges(prometheus::Family<prometheus::Gauge>& family, std::map<Labels, prometheus::Gauge*>& live,
                 const std::map<Labels, double>& want);
  // Counters follow a cumulative count: increments as they come (divided by `divisor`: 1e9 turns
  // nanoseconds into seconds); a count that went back restarts the series, which Prometheus reads
  // as a counter reset.
  static void FollowCounters(prometheus::Family<prometheus::Counter>& family, std::map<Labels, CounterSeries>& live,
                             const std::map<Labels, uint64_t>& want, double divisor);
  void LogProblems(const std::map<std::string, std::string>& problems, std::map<std::string, std::string>& logged,
                   const char* event, const std::string& what, const char* field);

  std::string node_;
  prometheus::Family<prometheus::Gauge>& used_;
  prometheus::Family<prometheus::Gauge>& limit_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Family<prometheus::Gauge>& card_used_;
  prometheus::Family<prometheus::Gauge>& card_limit_;
  prometheus::Family<prometheus::Gauge>& share_;
  prometheus::Family<prometheus::Counter>& throttled_;
  prometheus::Family<prometheus::Counter>& yields_;
  prometheus::Family<prometheus::Counter>& yielded_;
  prometheus::Family<prometheus::Gauge>& granted_;
  std::map<Labels, prometheus::Gauge*> used_series_, limit_series_, card_used_series_, card_limit_series_;
  std::map<Labels, CounterSeries> refused_series_;
  std::map<Labels, prometheus::Gauge*> share_series_, granted_series_;
  std::map<Labels, CounterSeries> throttled_series_, yields_series_, yielded_series_;
  std::map<Labels, BusySample> busy_;
  std::map<std::string, std::string> problems_;          // container dir key -> last problem logged
  std::map<std::string, std::string> compute_problems_;  // card (and slot) -> last problem logged
};

}  // namespace tideslice::deviceplugin
