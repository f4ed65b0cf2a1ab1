#include "common/http/client.h"

#include <condition_variable>

namespace tideslice::http {

bool CancelFlag::SleepFor(int ms) {
  auto done = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto woke = std::make_shared<bool>(false);
  int id = Register([done, woke] {
    std::lock_guard<std::mutex> lock(done->first);
    *woke = true;
    done->second.notify_all();
  });
  {
    std::unique_lock<std::mutex> lock(done->first);
    done->second.wait_for(lock, std::chrono::milliseconds(ms), [&] { return *woke; });
  }
  Unregister(id);
  return !cancelled();
}

}  // namespace tideslice::http
