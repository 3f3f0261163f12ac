// The two Status helpers that abseil 20220623 does not ship, for the
// benchmark (the server's copies live in server/, which bench must not
// include).
#ifndef KNNMEM_BENCH_STATUS_MACROS_H_
#define KNNMEM_BENCH_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define BENCH_CONCAT_INNER_(a, b) a##b
#define BENCH_CONCAT_(a, b) BENCH_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define BENCH_RETURN_IF_ERROR(expr)                \
  do {                                             \
    absl::Status bench_status_ = (expr);           \
    if (!bench_status_.ok()) return bench_status_; \
  } while (0)

// `BENCH_ASSIGN_OR_RETURN(auto x, F())` evaluates F() (an absl::StatusOr<T>),
// returns its status when not OK, and otherwise moves its value into `lhs`.
#define BENCH_ASSIGN_OR_RETURN(lhs, expr)                                     \
  BENCH_ASSIGN_OR_RETURN_IMPL_(BENCH_CONCAT_(bench_statusor_, __LINE__), lhs, \
                               expr)
#define BENCH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // KNNMEM_BENCH_STATUS_MACROS_H_
