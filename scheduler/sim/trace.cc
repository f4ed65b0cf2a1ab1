#include "scheduler/sim/trace.h"

#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

namespace tideslice::sim {
namespace {

constexpr int kMaxGpusPerNode = 32;

std::vector<std::string_view> SplitCsv(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      out.push_back(line.substr(start));
      break;
    }
    out.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Status LineError(const std::string& source, size_t line, const std::string& column, const std::string& what) {
  return Status::InvalidArgument(source + ":" + std::to_string(line) + (column.empty() ? "" : " column " + column), what);
}

template <typename T>
Status ParseInt(std::string_view text, T min, T max, T& out, const std::string& source, size_t line,
                const std::string& column) {
  if (text.empty()) return LineError(source, line, column, "is empty; expected a whole number");
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc() || ptr != text.data() + text.size())
    return LineError(source, line, column, "\"" + std::string(text) + "\" is not a whole number");
  if (out < min || out > max)
    return LineError(source, line, column,
                     "value " + std::to_string(out) + " is outside " + std::to_string(min) + ".." + std::to_string(max));
  return Status::Ok();
}

// Iterates lines, dropping a trailing '\r' (files edited on Windows) and blank lines.
template <typename Fn>
Status ForEachLine(std::string_view text, Fn fn) {
  size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) TS_RETURN_IF_ERROR(fn(line_no, line));
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  return Status::Ok();
}

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot open " + path + "; pass a path to a CSV from shared/traces/alibaba-gpu-v2023");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

StatusOr<std::vector<TraceNode>> ParseNodeCsv(std::string_view text, const std::string& source) {
  std::vector<TraceNode> nodes;
  bool header_seen = false;
  std::map<std::string, size_t> names;
  Status st = ForEachLine(text, [&](size_t line, std::string_view row) -> Status {
    auto f = SplitCsv(row);
    if (!header_seen) {
      if (row != "sn,cpu_milli,memory_mib,gpu,model")
        return LineError(source, line, "", "expected the header sn,cpu_milli,memory_mib,gpu,model");
      header_seen = true;
      return Status::Ok();
    }
    if (f.size() != 5) return LineError(source, line, "", "expected 5 fields, got " + std::to_string(f.size()));
    TraceNode n;
    n.name = std::string(f[0]);
    if (n.name.empty()) return LineError(source, line, "sn", "node name is empty");
    if (!names.emplace(n.name, line).second) return LineError(source, line, "sn", "duplicate node " + n.name);
    TS_RETURN_IF_ERROR(ParseInt<int64_t>(f[1], 0, 100'000'000, n.cpu_milli, source, line, "cpu_milli"));
    TS_RETURN_IF_ERROR(ParseInt<int64_t>(f[2], 0, 1'000'000'000, n.memory_mib, source, line, "memory_mib"));
    TS_RETURN_IF_ERROR(ParseInt<int>(f[3], 0, kMaxGpusPerNode, n.gpus, source, line, "gpu"));
    n.model = std::string(f[4]);
    if (n.gpus > 0 && n.model.empty()) return LineError(source, line, "model", "a node with GPUs needs a model");
    nodes.push_back(std::move(n));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (!header_seen) return Status::InvalidArgument(source, "is empty; expected a node list CSV");
  return nodes;
}

StatusOr<std::vector<TracePod>> ParsePodCsv(std::string_view text, const std::string& source) {
  std::vector<TracePod> pods;
  std::map<std::string, int> col;
  Status st = ForEachLine(text, [&](size_t line, std::string_view row) -> Status {
    auto f = SplitCsv(row);
    if (col.empty()) {
      for (size_t i = 0; i < f.size(); ++i) col[std::string(f[i])] = static_cast<int>(i);
      for (const char* need : {"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"})
        if (!col.count(need))
          return LineError(source, line, "", std::string("header lacks the column ") + need +
                                                 " (expected name,cpu_milli,memory_mib,num_gpu,gpu_milli[,gpu_spec,...])");
      return Status::Ok();
    }
    if (f.size() != col.size())
      return LineError(source, line, "", "expected " + std::to_string(col.size()) + " fields, got " +
                                             std::to_string(f.size()));
    TracePod p;
    p.name = std::string(f[col["name"]]);
    if (p.name.empty()) return LineError(source, line, "name", "pod name is empty");
    TS_RETURN_IF_ERROR(ParseInt<int64_t>(f[col["cpu_milli"]], 0, 100'000'000, p.cpu_milli, source, line, "cpu_milli"));
    TS_RETURN_IF_ERROR(ParseInt<int64_t>(f[col["memory_mib"]], 0, 1'000'000'000, p.memory_mib, source, line, "memory_mib"));
    TS_RETURN_IF_ERROR(ParseInt<int>(f[col["num_gpu"]], 0, kMaxGpusPerNode, p.num_gpu, source, line, "num_gpu"));
    TS_RETURN_IF_ERROR(ParseInt<int>(f[col["gpu_milli"]], 0, 1000, p.gpu_milli, source, line, "gpu_milli"));
    if (p.num_gpu == 0 && p.gpu_milli != 0)
      return LineError(source, line, "gpu_milli", "is set but num_gpu is 0");
    if (p.num_gpu > 0 && p.gpu_milli == 0) return LineError(source, line, "gpu_milli", "is 0 but num_gpu is set");
    if (p.gpu_milli > 0 && p.gpu_milli < 1000 && p.num_gpu != 1)
      return LineError(source, line, "num_gpu", "a partial-GPU pod (gpu_milli < 1000) must ask for exactly 1 GPU");
    if (auto it = col.find("gpu_spec"); it != col.end()) {
      std::string_view spec = f[it->second];
      size_t start = 0;
      while (start < spec.size()) {
        size_t bar = spec.find('|', start);
        std::string_view m = spec.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
        if (m.empty()) return LineError(source, line, "gpu_spec", "has an empty model between '|'");
        p.gpu_spec.emplace_back(m);
        if (bar == std::string_view::npos) break;
        start = bar + 1;
      }
    }
    pods.push_back(std::move(p));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  if (col.empty()) return Status::InvalidArgument(source, "is empty; expected a pod list CSV");
  return pods;
}

StatusOr<std::vector<TraceNode>> LoadNodeCsv(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseNodeCsv(*text, path);
}

StatusOr<std::vector<TracePod>> LoadPodCsv(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParsePodCsv(*text, path);
}

}  // namespace tideslice::sim
