// Fuzz entry points for every parser of external input. Each must return normally for any
// bytes: errors are Status values, never crashes, hangs or undefined behaviour.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tideslice::fuzz {

void Fuzz_quantity(const uint8_t* data, size_t size);
void Fuzz_pod_json(const uint8_t* data, size_t size);
void Fuzz_annotations(const uint8_t* data, size_t size);
void Fuzz_trace_csv(const uint8_t* data, size_t size);
void Fuzz_catalog(const uint8_t* data, size_t size);
void Fuzz_prefilter(const uint8_t* data, size_t size);
void Fuzz_extender(const uint8_t* data, size_t size);
void Fuzz_admission(const uint8_t* data, size_t size);    // webhook AdmissionReview bodies
void Fuzz_yaml_config(const uint8_t* data, size_t size);  // --config files (YAML/JSON -> SchedulerConfig)
void Fuzz_kube_objects(const uint8_t* data, size_t size); // Node/Pod objects from the watch
void Fuzz_tidal_records(const uint8_t* data, size_t size); // notice annotations, pool state, Prometheus answers
void Fuzz_limiter_config(const uint8_t* data, size_t size); // the in-container limiter's config.json
void Fuzz_dra_objects(const uint8_t* data, size_t size);   // ResourceClaims/templates the scheduler watches

}  // namespace tideslice::fuzz
