#include <cstdio>
#include <string>

#include "scheduler/sim/replay.h"

using namespace tideslice;

int main(int argc, char** argv) {
  std::string nodes_path, pods_path, policy = "fragaware";
  uint64_t seed = 42;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--nodes") nodes_path = argv[i + 1];
    if (f == "--pods") pods_path = argv[i + 1];
    if (f == "--policy") policy = argv[i + 1];
    if (f == "--seed") seed = std::stoull(argv[i + 1]);
  }
  auto nodes = sim::LoadNodeCsv(nodes_path);
  auto pods = sim::LoadPodCsv(pods_path);
  if (!nodes.ok() || !pods.ok()) { std::fprintf(stderr, "load error %s %s\n", nodes.status().ToString().c_str(), pods.status().ToString().c_str()); return 1; }
  sim::ReplayOptions o;
  o.policy = *core::ParsePolicy(policy);
  o.seed = seed;
  auto r = sim::Replay(*nodes, *pods, pods_path, o);
  if (!r.ok()) { std::fprintf(stderr, "%s\n", r.status().ToString().c_str()); return 1; }
  std::printf("unalloc@100=%.2f alloc@130=%.2f failed=%ld elapsed=%.2fs\n", r->unallocated_at_100, r->allocated_at_130, (long)r->pods_failed, r->elapsed_s);
}
