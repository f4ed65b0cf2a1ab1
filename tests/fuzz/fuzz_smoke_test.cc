// Runs every fuzz entry point on seed inputs and on deterministic mutations of them, so that
// each build (gcc included) exercises the parsers' error paths. The coverage-guided runs use
// the libFuzzer binaries (cmake -DTIDESLICE_FUZZ=ON with clang); see docs/testing.md.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/fuzz/mutate.h"
#include "tests/fuzz/targets.h"

namespace tideslice::fuzz {
namespace {

void Mutate(Target target, const std::vector<std::string>& seeds, int rounds) {
  const std::string alphabet = "{}[]\":,0123456789.-eEGiMm \\u\n|abcnulltrue";
  RunMutations(target, seeds, rounds, alphabet, 12345);
}

TEST(FuzzSmoke, Quantity) { Mutate(Fuzz_quantity, {"8Gi", "500M", "1.5e3", "100m", "-2Ki"}, 500); }

TEST(FuzzSmoke, PodJson) {
  Mutate(Fuzz_pod_json,
         {R"({"metadata":{"name":"p","annotations":{"tideslice.io/profile":"1g.10gb"}},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1"}}}]}})",
          R"({"metadata":{"name":"p","namespace":"n"},"spec":{"resourceClaims":[{"name":"a","resourceClaimTemplateName":"t"},{"name":"b","resourceClaimName":"c"}],"containers":[{"name":"c","resources":{"claims":[{"name":"a"}]}}]}})"},
         2000);
}

TEST(FuzzSmoke, Annotations) {
  Mutate(Fuzz_annotations,
         {R"({"nodeName":"n","cards":[{"uuid":"g","index":0,"model":"T4","memoryMib":"16384"}],"heartbeat":"2026-01-01T00:00:00Z"})",
          R"({"podUid":"u","nodeName":"n","containers":[{"name":"c","slices":[{"cardUuid":"g","computePermille":300}]}],"phase":"ASSIGNMENT_PHASE_ALLOCATING"})"},
         2000);
}

TEST(FuzzSmoke, TraceCsv) {
  Mutate(Fuzz_trace_csv,
         {"sn,cpu_milli,memory_mib,gpu,model\nn,64000,262144,2,P100\n",
          "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\np,1000,1024,1,500,T4|A10\n"},
         2000);
}

TEST(FuzzSmoke, Catalog) {
  Mutate(Fuzz_catalog,
         {R"({"models":[{"name":"X","vendor":"v","memory_mib":8,"compute_units":1,"partitioning":"mig","mig_memory_slices":8,"mig_compute_slices":7,
             "profiles":[{"name":"p","memory_mib":1,"compute_slices":1,"slot_size":2,"start_slots":[0,2],"max_instances":2}]}]})",
          R"({"models":[{"memory_mib":1e999}]})"},  // crashed fuzz_catalog once
         2000);
}

TEST(FuzzSmoke, PreFilter) {
  Mutate(Fuzz_prefilter,
         {R"({"metadata":{"name":"p","annotations":{"tideslice.io/card-type":"H100","tideslice.io/exclusive":"true"}},
             "spec":{"initContainers":[{"name":"i","resources":{"limits":{"tideslice.io/vnpu":"2","tideslice.io/vnpu-memory":"8Gi"}}}],
                     "containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"2","tideslice.io/vnpu-cores":"30"}}}]}})",
          R"({"metadata":{"name":"q","annotations":{"tideslice.io/profile":"3g.40gb"}},"spec":{"containers":[{"resources":{"limits":{"nvidia.com/gpu":"1"}}}]}})"},
         2000);
}

// Bodies that once ended the process: wrong types where nlohmann's value() threw, and nesting
// deep enough to exhaust the stack in a recursive copy or dump. Few rounds: they are large.
std::vector<std::string> HostileJson(const std::string& prefix, const std::string& suffix) {
  const std::string deep = std::string(90000, '[') + std::string(90000, ']');
  return {prefix + deep + suffix, prefix + std::string(90000, '{') + suffix, deep};
}

TEST(FuzzSmoke, Extender) {
  Mutate(Fuzz_extender,
         {R"({"Pod":{"metadata":{"name":"p","uid":"u"},"spec":{"containers":[{"name":"c","resources":{"limits":{"tideslice.io/vnpu":"1","tideslice.io/vnpu-memory":"8Gi"}}}]}},"Nodes":null,"NodeNames":["n1","n2"]})",
          R"({"Pod":{"metadata":{"name":"p"}},"Nodes":{"metadata":{},"items":[{"metadata":{"name":"n1"}}]},"NodeNames":null})",
          R"({"PodName":"p","PodNamespace":"d","PodUID":"u","Node":"n1"})",
          R"({"Pod":{"metadata":{"name":"p"},"spec":{"priority":9}},"NodeNameToMetaVictims":{"n1":{"Pods":[{"UID":"x"}],"NumPDBViolations":0}}})"},
         2000);
  Mutate(Fuzz_extender, HostileJson(R"({"Pod":{},"Nodes":{"items":[{"metadata":{"name":"n"},"x":)", "}]}}"), 20);
  // The DOM-free NodeNames decoder against the DOM one: case variants, repeats, nulls, escapes,
  // other members, whitespace, non-ASCII.
  Mutate(Fuzz_extender,
         {R"( { "pod" : {"metadata":{"name":"p"}} , "nodenames" : [ "a" , "b" ] , "NodeNames" : null } )",
          R"({"Pod":{"metadata":{"name":"p"}},"NodeNames":["a"],"NodeNames":["b","c"],"x":[1,{"y":"\"}"}],"z":-1.5e3})",
          R"({"Pod":{"metadata":{"name":"p"}},"NODENAMES":["a\u0062","c"],"NodeNames":["é"],"Nodes":true})",
          R"({"Pod":{"metadata":{"name":"p"}},"NodeNames":[],"Pod":null,"pOd":{"metadata":{"name":"q"}}})"},
         2000);
  Mutate(Fuzz_extender, {R"({"Pod":{"metadata":null,"spec":5},"NodeNames":[1]})", R"({"Pod":[],"Nodes":{"items":[7]}})",
                         R"({"PodName":{},"Node":[]})", R"({"Pod":{},"NodeNameToVictims":{"n":{"Pods":[5]}}})"},
         500);
}

TEST(FuzzSmoke, Admission) {
  const std::string update =
      R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","namespace":"ml","operation":"UPDATE",)"
      R"("userInfo":{"username":"mallory"},"object":{"metadata":{"name":"p","annotations":{"tideslice.io/assignment":"{}"}}},)"
      R"("oldObject":{"metadata":{"name":"p","annotations":{"tideslice.io/assignment":"{\"phase\":1}"}}}}})";
  Mutate(Fuzz_admission,
         {R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","namespace":"ml","object":{"metadata":{"name":"p","labels":{"a":"b"}},"spec":{"containers":[{"name":"c","resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}}})",
          R"({"kind":"AdmissionReview","request":{"uid":"u","object":{"spec":{"schedulerName":"default-scheduler","containers":[]}}}})",
          update,
          R"({"kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","namespace":"kube-system","userInfo":{"username":"system:serviceaccount:agents:x"},)"
          R"("object":{"metadata":{"name":"t","labels":{"tideslice.io/workload":"training"},"annotations":{"tideslice.io/checkpoint-notice":"{}"}},)"
          R"("spec":{"volumes":[{"name":"v"}],"containers":[{"name":"c","volumeMounts":[{"mountPath":"/m"}],"resources":{"limits":{"tideslice.io/vnpu":"1"}}}]}}}})",
          // Wrong types everywhere the old code used value().
          R"({"kind":5,"request":{}})", R"({"kind":"AdmissionReview","request":{"uid":7,"namespace":[],"object":{}}})",
          R"({"kind":"AdmissionReview","request":{"uid":"u","namespace":"ml","userInfo":"x","object":{"metadata":"m"}}})",
          R"({"kind":"AdmissionReview","request":{"uid":"u","object":{"metadata":null,"spec":{"containers":[{"resources":{"limits":{"tideslice.io/vnpu":"1"}}}]}}}})",
          // Flag byte + pod (or [new, old]): see Fuzz_admission.
          "\x01" R"([{"metadata":{"name":"p","annotations":{"tideslice.io/assignment":"a"}}},{"metadata":{"name":"p"}}])",
          "\x05" R"({"metadata":{"annotations":{"tideslice.io/checkpoint-deadline":"x"}},"spec":{"containers":[{"resources":{"limits":{"tideslice.io/vnpu":"1"}}}]}})",
          "\x20" R"({"metadata":null,"spec":{"containers":[{"resources":{"limits":{"nvidia.com/gpu":"1"}}}]}})"},
         2000);
  Mutate(Fuzz_admission,
         HostileJson(R"({"kind":"AdmissionReview","request":{"uid":"u","object":{"metadata":{"labels":{"a":)", "}}}}}"), 20);
}

TEST(FuzzSmoke, YamlConfig) {
  Mutate(Fuzz_yaml_config,
         {"defaultPolicy: binpack\ninventoryStaleSeconds: 90\npools:\n- name: p\n  nodeSelector: {a: b}\n",
          R"({"defaultPolicy":"fragaware","allocatingTimeoutSeconds":"30"})", "[1, 2, {a: [b, c]}]", "&a [*a]"},
         2000);
}

TEST(FuzzSmoke, KubeObjects) {
  Mutate(Fuzz_kube_objects,
         {R"({"metadata":{"name":"n1","annotations":{"tideslice.io/inventory":"{\"nodeName\":\"n1\",\"cards\":[{\"uuid\":\"g\",\"index\":0,\"model\":\"H100-80G\",\"memoryMib\":81920,\"health\":\"HEALTH_HEALTHY\"}]}"}}})",
          R"({"metadata":{"name":"p","namespace":"n","annotations":{"tideslice.io/assignment":"{\"phase\":\"ASSIGNMENT_PHASE_ALLOCATED\",\"containers\":[{\"name\":\"c\",\"slices\":[{\"cardUuid\":\"g\",\"memoryMib\":5}]}]}"}},"spec":{"nodeName":"n1"}})",
          // A signed-looking record: UID and node match, the signature is hostile base64.
          R"({"metadata":{"name":"p","namespace":"n","uid":"u","annotations":{"tideslice.io/assignment":"{\"podUid\":\"u\",\"nodeName\":\"n1\",\"phase\":\"ASSIGNMENT_PHASE_ALLOCATING\",\"leaseTerm\":\"3\",\"keyId\":\"0011223344556677\",\"signature\":\"QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==\",\"containers\":[{\"name\":\"c\",\"slices\":[{\"cardUuid\":\"g\",\"memoryMib\":5}]}]}"}},"spec":{"nodeName":"n1"}})"},
         2000);
}

TEST(FuzzSmoke, DraObjects) {
  Mutate(Fuzz_dra_objects,
         {// An allocated claim: a share of card 0 and a vNPU on card 1, and another driver's device.
          R"({"metadata":{"name":"c","namespace":"default","uid":"u1"},"spec":{"devices":{"requests":[{"name":"r","exactly":{"deviceClassName":"tideslice.io-shared","count":1,"capacity":{"requests":{"memory":"8Gi","cores":"30"}}}}]}},"status":{"allocation":{"devices":{"results":[{"request":"r","driver":"tideslice.io","pool":"n1","device":"card-0-shared","shareID":"s","consumedCapacity":{"memory":"8Gi","cores":"30"}},{"request":"v","driver":"tideslice.io","pool":"n1","device":"card-1-vnpu-vir05_1c_16g-0"},{"request":"o","driver":"gpu.example.com","pool":"n1","device":"gpu-0"}]}}}})",
          // A template with firstAvailable, a MIG class request and a whole card.
          R"({"metadata":{"name":"c","namespace":"default"},"spec":{"spec":{"devices":{"requests":[{"name":"f","firstAvailable":[{"name":"h","deviceClassName":"tideslice.io","count":1},{"name":"a","deviceClassName":"tideslice.io","count":2}]},{"name":"m","exactly":{"deviceClassName":"tideslice.io-mig","selectors":[{"cel":{"expression":"true"}}]}},{"name":"w","exactly":{"deviceClassName":"tideslice.io","allocationMode":"All"}}]}}}})",
          R"({"metadata":{"name":"c","uid":"u2"},"status":{"allocation":{"devices":{"results":[{"driver":"tideslice.io","pool":"n1","device":"card-0-mig-3g.20gb-4"}]}}}})"},
         2000);
}

TEST(FuzzSmoke, TidalRecords) {
  Mutate(Fuzz_tidal_records,
         {R"({"pool":"p","transition":"p@2026-11-23T08:00:00Z","issued":"2026-11-23T08:00:00Z","deadline":"2026-11-23T08:05:00Z"})",
          R"({"tide":"day","since":"2026-11-23T08:00:00Z","cause":"load","transition":"x","loadHoldUntil":"2026-11-23T08:30:00.5+08:00"})",
          R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.7e9,"12.5"]}]}})",
          R"({"status":"success","data":{"resultType":"scalar","result":[1.7e9,"3"]}})", "2026-02-29T23:59:60Z"},
         2000);
}

TEST(FuzzSmoke, LimiterConfig) {
  Mutate(Fuzz_limiter_config,
         {R"({"version":1,"podNamespace":"ml","podName":"p","container":"c","vendor":"nvidia",)"
          R"("regionPath":"/var/run/tideslice/limiter/region","contextReserveBytes":"268435456",)"
          R"("cards":[{"uuid":"GPU-1","memoryLimitBytes":"8589934592"},{"uuid":"GPU-2","visibleIndex":1,"regionCard":1}]})",
          R"({"version":1,"vendor":"huawei","region_path":"/r","cards":[{"uuid":"3","memory_limit_bytes":1024,"x":[{"y":null}]}]})"},
         3000);
}

}  // namespace
}  // namespace tideslice::fuzz
