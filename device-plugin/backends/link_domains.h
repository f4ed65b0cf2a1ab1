// Cards joined by a fast card-to-card fabric (NVLink, HCCS, SIO) grouped into link domains with a
// union-find: two cards are in one domain when a chain of links joins them. Pure; the backends
// collect the links from the driver and name the result.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tideslice::deviceplugin {

class LinkDomains {
 public:
  // `members`: how many cards (0..n-1); extra nodes (a switch fabric) may be added with AddHub.
  explicit LinkDomains(int members);
  // A node that is not a card, such as an NVSwitch fabric; returns its id for Link.
  int AddHub();
  void Link(int a, int b);
  // Domain names for the cards: "<prefix><lowest card key in the domain>", where `keys[i]` names
  // card i (its index on the node). A card linked to no other card gets a domain of its own,
  // "<alone_prefix><key>", so every card has a name and no two unlinked cards share one.
  std::vector<std::string> Names(const std::string& prefix, const std::vector<int>& keys,
                                 const std::string& alone_prefix);

 private:
  int Find(int x);
  int members_;
  std::vector<int> parent_;
};

}  // namespace tideslice::deviceplugin
