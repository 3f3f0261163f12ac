#include "tests/support/proc_status.h"

#include <filesystem>
#include <fstream>

namespace knnmem::testing {

int64_t StatusBytes(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) {
      return std::stoll(line.substr(field.size() + 1)) * 1024;
    }
  }
  return -1;
}

int OpenDescriptors(pid_t pid) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/fd")) {
    static_cast<void>(entry);
    ++n;
  }
  return n;
}

}  // namespace knnmem::testing
