#include "server/service/admission.h"

#include "absl/strings/str_cat.h"

namespace knnmem {

absl::Status Admission::TryAdmit(uint64_t bytes) {
  MutexLock lock(&mu_);
  if (max_requests_ != 0 && requests_ >= max_requests_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("overloaded: ", requests_,
                     " requests in flight, the limit set by "
                     "--max-inflight-requests; retry later"));
  }
  if (max_bytes_ != 0 && requests_ > 0 && bytes_ + bytes > max_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "overloaded: ", bytes_, " request bytes in flight and this one adds ",
        bytes, ", over --max-inflight-bytes ", max_bytes_, "; retry later"));
  }
  ++requests_;
  bytes_ += bytes;
  return absl::OkStatus();
}

absl::StatusOr<Admission::Ticket> Admission::Admit(uint64_t bytes) {
  absl::Status admitted = TryAdmit(bytes);
  if (!admitted.ok()) return admitted;
  return Ticket(this, bytes);
}

void Admission::Release(uint64_t bytes) {
  MutexLock lock(&mu_);
  --requests_;
  bytes_ -= bytes;
}

size_t Admission::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

uint64_t Admission::bytes() const {
  MutexLock lock(&mu_);
  return bytes_;
}

}  // namespace knnmem
