// The fuzz smoke tests' mutator: every entry point runs on its seeds and on deterministic
// mutations of them (insert a byte from the target's alphabet, erase a run, overwrite a byte with
// any value, truncate), on every build and with any compiler. The coverage-guided runs use the
// libFuzzer binaries (cmake -DTIDESLICE_FUZZ=ON with clang).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace tideslice::fuzz {

using Target = void (*)(const uint8_t*, size_t);

// Each seed, then `rounds` mutations of it of 1 to 4 edits each. `rng_seed` fixes the sequence,
// so a failure reproduces.
inline void RunMutations(Target target, const std::vector<std::string>& seeds, int rounds, std::string_view alphabet,
                         uint32_t rng_seed) {
  std::mt19937 rng(rng_seed);
  for (const auto& seed : seeds) {
    target(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    for (int r = 0; r < rounds; ++r) {
      std::string s = seed;
      for (int e = 0, edits = 1 + static_cast<int>(rng() % 4); e < edits; ++e) {
        size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
        switch (rng() % 4) {
          case 0: s.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
          case 1: if (pos < s.size()) s.erase(pos, 1 + rng() % 8); break;
          case 2: if (pos < s.size()) s[pos] = static_cast<char>(rng() % 256); break;
          case 3: s = s.substr(0, pos); break;
        }
      }
      target(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    }
  }
}

}  // namespace tideslice::fuzz
