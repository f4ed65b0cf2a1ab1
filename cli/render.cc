#include "cli/render.h"

#include <cstdio>

#include "common/kube/client.h"

namespace tideslice::cli {

namespace {

constexpr char kRed[] = "\x1b[31m";
constexpr char kReset[] = "\x1b[0m";

std::string Red(const std::string& s, const RenderOptions& o) { return o.colour ? kRed + s + kReset : s; }

// Display width: bytes outside ANSI escape sequences, UTF-8 continuation bytes not counted.
size_t Width(const std::string& s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++w;
  }
  return w;
}

// Cells come from objects anyone may write: control characters would move the cursor or hide
// text on the reader's terminal, so they are shown as '?'.
std::string Printable(const std::string& s) {
  std::string out = s;
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

std::string Or(const std::string& s, const char* empty = "-") { return s.empty() ? empty : Printable(s); }

std::string Percent(int permille) {
  if (permille % 10 == 0) return std::to_string(permille / 10) + "%";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", permille / 10.0);
  return buf;
}

std::string When(Time t, Time now) {
  if (t >= now) return "in " + ShortDuration(std::chrono::duration_cast<std::chrono::seconds>(t - now));
  return ShortDuration(std::chrono::duration_cast<std::chrono::seconds>(now - t)) + " ago";
}

json TimeOrNull(const std::optional<Time>& t) { return t ? json(Rfc3339(*t)) : json(nullptr); }

}  // namespace

std::string ShortDuration(std::chrono::seconds d) {
  long long s = d.count() < 0 ? -d.count() : d.count();
  const long long days = s / 86400, hours = s % 86400 / 3600, minutes = s % 3600 / 60, seconds = s % 60;
  if (days > 0) return std::to_string(days) + "d" + (hours ? std::to_string(hours) + "h" : "");
  if (hours > 0) return std::to_string(hours) + "h" + (minutes ? std::to_string(minutes) + "m" : "");
  if (minutes > 0) return std::to_string(minutes) + "m" + (minutes < 10 && seconds ? std::to_string(seconds) + "s" : "");
  return std::to_string(seconds) + "s";
}

std::string Mebibytes(int64_t mib) {
  if (mib == 0) return "0";
  if (mib < 1024) return std::to_string(mib) + "Mi";
  if (mib % 1024 == 0) return std::to_string(mib / 1024) + "Gi";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fGi", static_cast<double>(mib) / 1024.0);
  return buf;
}

std::string Rfc3339(Time t) {
  return kube::MicroTimeFrom(std::chrono::time_point_cast<std::chrono::seconds>(t)).substr(0, 19) + "Z";
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], Width(row[i]));
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - Width(row[i]) + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string RenderNodes(const std::vector<NodeRow>& nodes, const RenderOptions& o) {
  if (nodes.empty()) return "No TideSlice nodes found (no node carries a tideslice.io/inventory annotation).\n";
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "CARD", "MODEL", "MEMORY", "COMPUTE", "SLICES", "HEALTH", "POOL", "TIDE", "HEARTBEAT"}};
  for (const auto& n : nodes) {
    const std::string heartbeat = n.heartbeat ? When(*n.heartbeat, o.now) : "-";
    if (!n.error.empty()) {
      rows.push_back({Printable(n.name), "-", "-", "-", "-", "-", Red("InventoryUnreadable", o), Or(n.pool, "<none>"),
                      Or(n.tide), heartbeat});
      continue;
    }
    if (n.cards.empty())
      rows.push_back({Printable(n.name), "-", "-", "-", "-", "-", "NoCards", Or(n.pool, "<none>"), Or(n.tide), heartbeat});
    for (const auto& c : n.cards)
      rows.push_back({Printable(n.name), std::to_string(c.index), Or(c.model),
                      Mebibytes(c.memory_allocated_mib) + "/" + Mebibytes(c.memory_total_mib),
                      Percent(c.compute_granted_permille), std::to_string(c.slices),
                      c.health == "Healthy" ? c.health : Red(c.health, o), Or(n.pool, "<none>"), Or(n.tide), heartbeat});
  }
  std::string out = Table(rows);
  for (const auto& n : nodes)
    if (!n.error.empty()) out += Red("node " + Printable(n.name) + ": " + Printable(n.error), o) + "\n";
  return out;
}

std::string RenderPods(const std::vector<PodRow>& pods, const RenderOptions& o) {
  if (pods.empty()) return "No TideSlice pods found.\n";
  std::vector<std::string> header = {"NAME", "STATUS", "NODE", "CONTAINER", "CARD", "UUID", "MEMORY", "COMPUTE", "PROFILE", "ASSIGNMENT"};
  if (o.all_namespaces) header.insert(header.begin(), "NAMESPACE");
  std::vector<std::vector<std::string>> rows = {header};
  auto add = [&](const PodRow& p, std::vector<std::string> cells) {
    if (o.all_namespaces) cells.insert(cells.begin(), Printable(p.ns));
    rows.push_back(std::move(cells));
  };
  for (const auto& p : pods) {
    const std::string assignment =
        p.assignment.empty() ? "-" : (p.assignment == "Failed" || p.assignment == "Unreadable" ? Red(p.assignment, o) : p.assignment);
    if (p.slices.empty()) {
      add(p, {Printable(p.name), Printable(p.status), Or(p.node, "<none>"), "-", "-", "-", "-", "-", "-", assignment});
      continue;
    }
    for (const auto& s : p.slices)
      add(p, {Printable(p.name), Printable(p.status), Or(p.node, "<none>"), Printable(s.container) + (s.init ? " (init)" : ""),
              std::to_string(s.card_index), Or(s.card_uuid), s.whole_card ? "whole" : Mebibytes(s.memory_mib),
              Percent(s.compute_permille), Or(s.profile), assignment});
  }
  return Table(rows);
}

std::string RenderWhy(const WhyView& w, const RenderOptions& o) {
  const std::string pod = Printable(w.ns + "/" + w.name);
  if (!w.pending) {
    return "Pod " + pod + " is not waiting: it is " + Printable(w.status) +
           (w.node.empty() ? "" : " on node " + Printable(w.node)) + ".\n";
  }
  std::string out = "Pod " + pod + " is Pending.\n";
  if (!w.record_error.empty()) {
    out += Red("The scheduler's record of reasons is unreadable: " + Printable(w.record_error), o) + "\n";
  } else if (w.has_record) {
    out += "\nTideSlice's filter found no node for it (these reasons since " + Rfc3339(w.since) + ", " +
           When(w.since, o.now) + "):\n\n";
    std::vector<std::vector<std::string>> rows = {{"NODE", "REASON"}};
    for (const auto& r : w.reasons) rows.push_back({Printable(r.node), Printable(r.reason)});
    out += Table(rows);
    if (w.omitted > 0) out += "... and " + std::to_string(w.omitted) + " more nodes.\n";
  } else {
    out += "\nTideSlice's filter has recorded no reasons for it: either kube-scheduler filtered every node out "
           "before asking TideSlice (see below), or its schedulerName is not TideSlice's.\n";
  }
  if (!w.scheduler_event.empty())
    out += "\nkube-scheduler" + (w.event_time ? " (" + When(*w.event_time, o.now) + ")" : std::string()) + ": " +
           Printable(w.scheduler_event) + "\n";
  return out;
}

std::string RenderTide(const std::vector<PoolRow>& pools, const RenderOptions& o) {
  if (pools.empty()) return "No tidal pools found.\n";
  std::vector<std::vector<std::string>> rows = {{"POOL", "TIDE", "SINCE", "CAUSE", "NEXT SWITCH", "NODES", "UNDER NOTICE"}};
  bool any_notice = false;
  for (const auto& p : pools) {
    if (!p.error.empty()) {
      rows.push_back({Printable(p.name), Red("Unreadable", o), "-", "-", "-", std::to_string(p.nodes), "-"});
      continue;
    }
    std::string next = "-";
    if (p.next_switch) next = Rfc3339(*p.next_switch) + " (" + When(*p.next_switch, o.now) + ", to " + p.next_tide + ")";
    rows.push_back({Printable(p.name), Or(p.tide), p.since ? When(*p.since, o.now) : "-", Or(p.cause), next,
                    std::to_string(p.nodes), std::to_string(p.notices.size())});
    any_notice = any_notice || !p.notices.empty();
  }
  std::string out = Table(rows);
  for (const auto& p : pools)
    if (!p.error.empty()) out += Red("pool " + Printable(p.name) + ": " + Printable(p.error), o) + "\n";
  if (!any_notice) return out;
  out += "\nPods under notice:\n\n";
  std::vector<std::vector<std::string>> notices = {{"NAMESPACE", "POD", "NODE", "POOL", "DEADLINE", "CHECKPOINTED"}};
  for (const auto& p : pools)
    for (const auto& n : p.notices) {
      std::string deadline = Rfc3339(n.deadline) + " (" + When(n.deadline, o.now) + ")";
      if (n.deadline < o.now) deadline = Red(deadline, o);
      notices.push_back({Printable(n.ns), Printable(n.pod), Or(n.node, "<none>"), Printable(n.pool), deadline,
                         n.checkpointed ? Rfc3339(*n.checkpointed) : "-"});
    }
  return out + Table(notices);
}

json NodesJson(const std::vector<NodeRow>& nodes) {
  json out = json::array();
  for (const auto& n : nodes) {
    json cards = json::array();
    for (const auto& c : n.cards)
      cards.push_back({{"index", c.index},
                       {"uuid", c.uuid},
                       {"model", c.model},
                       {"vendor", c.vendor},
                       {"health", c.health},
                       {"memoryTotalMiB", c.memory_total_mib},
                       {"memoryAllocatedMiB", c.memory_allocated_mib},
                       {"computeGrantedPercent", c.compute_granted_permille / 10.0},
                       {"slices", c.slices}});
    json node = {{"name", n.name}, {"pool", n.pool}, {"tide", n.tide}, {"heartbeat", TimeOrNull(n.heartbeat)}, {"cards", cards}};
    if (!n.error.empty()) node["error"] = n.error;
    out.push_back(node);
  }
  return {{"nodes", out}};
}

json PodsJson(const std::vector<PodRow>& pods) {
  json out = json::array();
  for (const auto& p : pods) {
    json slices = json::array();
    for (const auto& s : p.slices)
      slices.push_back({{"container", s.container},
                        {"initContainer", s.init},
                        {"cardIndex", s.card_index},
                        {"cardUuid", s.card_uuid},
                        {"memoryMiB", s.memory_mib},
                        {"computePercent", s.compute_permille / 10.0},
                        {"profile", s.profile},
                        {"wholeCard", s.whole_card}});
    json pod = {{"namespace", p.ns}, {"name", p.name}, {"status", p.status}, {"node", p.node},
                {"assignment", p.assignment}, {"slices", slices}};
    if (!p.message.empty()) pod["message"] = p.message;
    if (!p.sized_by.empty()) pod["sizedBy"] = p.sized_by;
    out.push_back(pod);
  }
  return {{"pods", out}};
}

json WhyJson(const WhyView& w) {
  json reasons = json::array();
  for (const auto& r : w.reasons) reasons.push_back({{"node", r.node}, {"reason", r.reason}});
  json out = {{"namespace", w.ns}, {"name", w.name}, {"status", w.status}, {"node", w.node}, {"pending", w.pending},
              {"reasons", reasons}, {"omittedNodes", w.omitted},
              {"reasonsSince", w.has_record && w.record_error.empty() ? json(Rfc3339(w.since)) : json(nullptr)},
              {"schedulerEvent", w.scheduler_event}, {"schedulerEventTime", TimeOrNull(w.event_time)}};
  if (!w.record_error.empty()) out["recordError"] = w.record_error;
  return out;
}

json TideJson(const std::vector<PoolRow>& pools, Time now) {
  json out = json::array();
  for (const auto& p : pools) {
    json notices = json::array();
    for (const auto& n : p.notices)
      notices.push_back({{"namespace", n.ns}, {"pod", n.pod}, {"node", n.node}, {"pool", n.pool},
                         {"deadline", Rfc3339(n.deadline)}, {"overdue", n.deadline < now},
                         {"checkpointedAt", TimeOrNull(n.checkpointed)}});
    json pool = {{"name", p.name}, {"tide", p.tide}, {"since", TimeOrNull(p.since)}, {"cause", p.cause},
                 {"nextSwitch", TimeOrNull(p.next_switch)}, {"nextTide", p.next_tide}, {"nodes", p.nodes},
                 {"underNotice", notices}};
    if (!p.error.empty()) pool["error"] = p.error;
    out.push_back(pool);
  }
  return {{"pools", out}};
}

}  // namespace tideslice::cli
