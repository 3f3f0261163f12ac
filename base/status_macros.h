// The two Status helpers that abseil 20220623 does not ship.
#ifndef KNNMEM_BASE_STATUS_MACROS_H_
#define KNNMEM_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KNNMEM_CONCAT_INNER_(a, b) a##b
#define KNNMEM_CONCAT_(a, b) KNNMEM_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    absl::Status knnmem_status_ = (expr);            \
    if (!knnmem_status_.ok()) return knnmem_status_; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, F())` evaluates F() (an absl::StatusOr<T>),
// returns its status when not OK, and otherwise moves its value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(KNNMEM_CONCAT_(knnmem_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

#endif  // KNNMEM_BASE_STATUS_MACROS_H_
