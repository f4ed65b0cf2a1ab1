#include "device-plugin/backends/link_domains.h"

#include <algorithm>
#include <map>

namespace tideslice::deviceplugin {

LinkDomains::LinkDomains(int members) : members_(members), parent_(static_cast<size_t>(std::max(0, members))) {
  for (size_t i = 0; i < parent_.size(); ++i) parent_[i] = static_cast<int>(i);
}

int LinkDomains::AddHub() {
  parent_.push_back(static_cast<int>(parent_.size()));
  return static_cast<int>(parent_.size()) - 1;
}

int LinkDomains::Find(int x) {
  while (parent_[static_cast<size_t>(x)] != x) {
    parent_[static_cast<size_t>(x)] = parent_[static_cast<size_t>(parent_[static_cast<size_t>(x)])];  // path halving
    x = parent_[static_cast<size_t>(x)];
  }
  return x;
}

void LinkDomains::Link(int a, int b) {
  const int n = static_cast<int>(parent_.size());
  if (a < 0 || b < 0 || a >= n || b >= n) return;
  a = Find(a);
  b = Find(b);
  if (a != b) parent_[static_cast<size_t>(std::max(a, b))] = std::min(a, b);
}

std::vector<std::string> LinkDomains::Names(const std::string& prefix, const std::vector<int>& keys,
                                            const std::string& alone_prefix) {
  std::map<int, int> lowest;  // root -> lowest key among its cards
  std::map<int, int> size;    // root -> cards in the domain
  for (int i = 0; i < members_; ++i) {
    int key = i < static_cast<int>(keys.size()) ? keys[static_cast<size_t>(i)] : i;
    auto [it, inserted] = lowest.emplace(Find(i), key);
    if (!inserted) it->second = std::min(it->second, key);
    ++size[Find(i)];
  }
  std::vector<std::string> out;
  for (int i = 0; i < members_; ++i) {
    int root = Find(i);
    out.push_back((size[root] > 1 ? prefix : alone_prefix) + std::to_string(lowest[root]));
  }
  return out;
}

}  // namespace tideslice::deviceplugin
