#include "scheduler/sim/sweep.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace tideslice::sim {
namespace {

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string OurPolicyName(const std::string& published) {
  if (published == "01-Random") return "random";
  if (published == "02-DotProd") return "dotprod";
  if (published == "03-GpuClustering") return "gpuclustering";
  if (published == "04-GpuPacking") return "gpupacking";
  if (published == "05-BestFit") return "bestfit";
  if (published == "06-FGD") return "fgd";
  return published;
}

}  // namespace

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double SweepCell::MedianUnallocatedAt100() const {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.unallocated_at_100);
  return Median(v);
}

double SweepCell::MedianAllocatedAt130() const {
  std::vector<double> v;
  for (const auto& r : runs) v.push_back(r.allocated_at_130);
  return Median(v);
}

StatusOr<std::vector<SweepCell>> RunSweep(const SweepOptions& o) {
  auto nodes = LoadNodeCsv(o.trace_dir + "/openb_node_list_gpu_node.csv");
  if (!nodes.ok()) return nodes.status();
  std::map<std::string, std::vector<TracePod>> pods;
  for (const auto& t : o.traces) {
    auto p = LoadPodCsv(o.trace_dir + "/openb_pod_list_" + t + ".csv");
    if (!p.ok()) return p.status();
    pods[t] = std::move(*p);
  }
  struct Job {
    size_t cell;
    uint64_t seed;
  };
  std::vector<SweepCell> cells;
  std::vector<Job> jobs;
  for (const auto& t : o.traces)
    for (auto pol : o.policies) {
      SweepCell c;
      c.trace = t;
      c.policy = core::PolicyName(pol);
      c.runs.resize(o.seeds.size());
      cells.push_back(std::move(c));
      for (uint64_t s : o.seeds) jobs.push_back({cells.size() - 1, s});
    }
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status failure;
  auto worker = [&] {
    while (true) {
      size_t j = next.fetch_add(1);
      if (j >= jobs.size()) return;
      const Job& job = jobs[j];
      SweepCell& cell = cells[job.cell];
      ReplayOptions ro;
      ro.policy = *core::ParsePolicy(cell.policy);
      ro.seed = job.seed;
      ro.inflate = o.inflate;
      ro.record_fragmentation = false;
      auto r = Replay(*nodes, pods[cell.trace], cell.trace, ro);
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        failure = r.status();
        continue;
      }
      size_t idx = std::find(o.seeds.begin(), o.seeds.end(), job.seed) - o.seeds.begin();
      cell.runs[idx] = std::move(*r);
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < std::max(1, o.threads); ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (!failure.ok()) return failure;
  return cells;
}

StatusOr<PublishedResults> LoadPublished(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open " + path);
  std::string line;
  if (!std::getline(in, line)) return Status::InvalidArgument(path, "is empty");
  std::vector<std::string> header;
  {
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, ',')) header.push_back(f);
  }
  auto col = [&](const std::string& name) {
    return static_cast<int>(std::find(header.begin(), header.end(), name) - header.begin());
  };
  int c_workload = col("workload"), c_policy = col("sc_policy"), c100 = col("100"), c130 = col("130");
  if (c130 >= static_cast<int>(header.size()) || c_workload >= static_cast<int>(header.size()))
    return Status::InvalidArgument(path, "lacks the workload/sc_policy/100/130 columns");
  PublishedResults out;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    if (static_cast<int>(f.size()) <= c130) continue;
    std::string trace = f[c_workload];
    const std::string prefix = "openb_pod_list_";
    if (trace.rfind(prefix, 0) == 0) trace = trace.substr(prefix.size());
    std::string pol = OurPolicyName(f[c_policy]);
    out.allocated_at_100[trace][pol].push_back(std::stod(f[c100]));
    out.allocated_at_130[trace][pol].push_back(std::stod(f[c130]));
  }
  return out;
}

std::string SweepMarkdown(const std::vector<SweepCell>& cells, const PublishedResults* published) {
  std::ostringstream out;
  out << "| trace | policy | seeds | unallocated @100 % (ours) | published | diff | allocated @130 % (ours) | published | diff |\n";
  out << "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& c : cells) {
    double u100 = c.MedianUnallocatedAt100(), a130 = c.MedianAllocatedAt130();
    out << "| " << c.trace << " | " << c.policy << " | " << c.runs.size() << " | " << Fmt(u100) << " | ";
    bool have = false;
    if (published) {
      auto t = published->allocated_at_100.find(c.trace);
      if (t != published->allocated_at_100.end() && t->second.count(c.policy)) {
        double p100 = 100.0 - Median(t->second.at(c.policy));
        double p130 = Median(published->allocated_at_130.at(c.trace).at(c.policy));
        out << Fmt(p100) << " | " << Fmt(u100 - p100) << " | " << Fmt(a130) << " | " << Fmt(p130) << " | "
            << Fmt(a130 - p130) << " |\n";
        have = true;
      }
    }
    if (!have) out << "- | - | " << Fmt(a130) << " | - | - |\n";
  }
  return out.str();
}

}  // namespace tideslice::sim
