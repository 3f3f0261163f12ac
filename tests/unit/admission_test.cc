#include "server/service/admission.h"

#include <gtest/gtest.h>

#include <utility>

namespace knnmem {
namespace {

TEST(AdmissionTest, BoundsRequestsByCount) {
  Admission admission(/*max_requests=*/2, /*max_bytes=*/0);
  EXPECT_TRUE(admission.TryAdmit(10).ok());
  EXPECT_TRUE(admission.TryAdmit(10).ok());
  const absl::Status third = admission.TryAdmit(10);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("--max-inflight-requests"), std::string::npos)
      << third;
  admission.Release(10);
  EXPECT_TRUE(admission.TryAdmit(10).ok());
  EXPECT_EQ(admission.requests(), 2u);
  EXPECT_EQ(admission.bytes(), 20u);
}

TEST(AdmissionTest, BoundsBytesButAdmitsOneLargeRequestAlone) {
  Admission admission(/*max_requests=*/0, /*max_bytes=*/100);
  // Alone, a request over the byte limit runs: the message size allows it.
  EXPECT_TRUE(admission.TryAdmit(150).ok());
  const absl::Status beside = admission.TryAdmit(1);
  EXPECT_EQ(beside.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(beside.message().find("--max-inflight-bytes 100"),
            std::string::npos)
      << beside;
  admission.Release(150);
  EXPECT_TRUE(admission.TryAdmit(60).ok());
  EXPECT_TRUE(admission.TryAdmit(40).ok());  // exactly the limit
  EXPECT_FALSE(admission.TryAdmit(1).ok());
}

TEST(AdmissionTest, ATicketReleasesOnceWhenDestroyedResetOrMovedFrom) {
  Admission admission(/*max_requests=*/0, /*max_bytes=*/100);
  {
    absl::StatusOr<Admission::Ticket> a = admission.Admit(70);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(admission.bytes(), 70u);
    EXPECT_FALSE(admission.Admit(40).ok());  // 110 > 100
    Admission::Ticket moved = *std::move(a);
    EXPECT_EQ(admission.bytes(), 70u);  // moving does not release
    moved.Reset();
    EXPECT_EQ(admission.bytes(), 0u);
    moved.Reset();  // a second reset releases nothing
    EXPECT_EQ(admission.requests(), 0u);
    absl::StatusOr<Admission::Ticket> b = admission.Admit(30);
    ASSERT_TRUE(b.ok());
    moved = *std::move(b);  // assigning to a released ticket
    EXPECT_EQ(admission.bytes(), 30u);
  }
  // Both tickets gone: everything released, exactly once.
  EXPECT_EQ(admission.bytes(), 0u);
  EXPECT_EQ(admission.requests(), 0u);
}

}  // namespace
}  // namespace knnmem
