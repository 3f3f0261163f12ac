// CliArgs: "--name=value" / "--name value" flags of one knnmem-model
// command. Typed getters name the flag in their errors; Unused() lists
// flags no getter asked for, so that a typo is an error, not a default.
#ifndef KNNMEM_MODEL_CLI_ARGS_H_
#define KNNMEM_MODEL_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace knnmem::model {

class CliArgs {
 public:
  // args: what follows the command name.
  static absl::StatusOr<CliArgs> Parse(const std::vector<std::string>& args);

  std::string String(const std::string& name, const std::string& fallback);
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t fallback);
  absl::StatusOr<double> Double(const std::string& name, double fallback);
  // "true" or "false".
  absl::StatusOr<bool> Bool(const std::string& name, bool fallback);
  // Comma-separated integers, e.g. --memory=0,2048,8192.
  absl::StatusOr<std::vector<int64_t>> Ints(const std::string& name,
                                            std::vector<int64_t> fallback);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // INVALID_ARGUMENT naming the flags no getter read.
  absl::Status CheckAllUsed() const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_CLI_ARGS_H_
