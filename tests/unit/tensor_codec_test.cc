#include "proto/tensor_codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "absl/strings/match.h"

namespace knnmem {
namespace {

// Reference binary16 decoding straight from the IEEE definition.
double HalfReference(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? std::nan("") : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(TensorCodecTest, HalfDecodingMatchesIeeeDefinitionForEveryBitPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const double want = HalfReference(static_cast<uint16_t>(h));
    const float got = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(got, want) << h;
    }
  }
}

TEST(TensorCodecTest, HalfEncodingRoundsToNearestEven) {
  // For random floats, the encoding must be the binary16 value nearest to
  // the input (ties: even mantissa), found by searching all finite halves.
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> mag(-20, 16);
  std::vector<std::pair<double, uint16_t>> halves;
  for (uint32_t h = 0; h < 0x7c00; ++h) halves.push_back({HalfReference(h), h});
  for (int i = 0; i < 20000; ++i) {
    const float f =
        std::ldexp(1.0f + (rng() % 1000) / 1000.0f, static_cast<int>(mag(rng)));
    const uint16_t got = FloatToHalf(f);
    auto it = std::lower_bound(halves.begin(), halves.end(),
                               std::make_pair(double(f), uint16_t(0)));
    uint16_t want;
    if (it == halves.end()) {
      want = 0x7c00;  // overflow to infinity
      if (f < 65520.0f) want = 0x7bff;
    } else if (it == halves.begin() || it->first == f) {
      want = it->second;
    } else {
      const auto lo = *(it - 1), hi = *it;
      const double dlo = f - lo.first, dhi = hi.first - f;
      want = dlo < dhi   ? lo.second
             : dhi < dlo ? hi.second
                         : ((lo.second & 1) ? hi.second : lo.second);
    }
    ASSERT_EQ(got, want) << "f=" << f;
  }
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
}

TEST(TensorCodecTest, BulkConversionEqualsScalarConversion) {
  std::mt19937 rng(2);
  std::normal_distribution<float> d(0, 3);
  std::vector<float> in(1001);
  for (float& f : in) f = d(rng);
  for (DType t : {DType::kFloat16, DType::kBFloat16, DType::kFloat32}) {
    std::string bytes = PackFloats(in, t);
    ASSERT_EQ(bytes.size(), in.size() * ElementSize(t));
    std::vector<float> out = UnpackFloats(bytes, t);
    for (size_t i = 0; i < in.size(); ++i) {
      float want = in[i];
      if (t == DType::kFloat16) want = HalfToFloat(FloatToHalf(in[i]));
      if (t == DType::kBFloat16) want = BFloat16ToFloat(FloatToBFloat16(in[i]));
      ASSERT_EQ(out[i], want) << DTypeName(t) << " " << i;
    }
  }
}

TEST(TensorCodecTest, BFloat16RoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between bfloat16 1.0 and 1 + 2^-7: even wins.
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(NAN))));
}

TEST(TensorCodecTest, AllFiniteFindsNanAndInfInEveryDtype) {
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    std::vector<float> v(37, 1.5f);
    EXPECT_TRUE(AllFinite(PackFloats(v, t).data(), v.size(), t));
    v[36] = NAN;
    EXPECT_FALSE(AllFinite(PackFloats(v, t).data(), v.size(), t))
        << DTypeName(t);
    v[36] = -INFINITY;
    EXPECT_FALSE(AllFinite(PackFloats(v, t).data(), v.size(), t))
        << DTypeName(t);
  }
}

TEST(TensorCodecTest, AllWithinBoundsMagnitudesInEveryDtype) {
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    std::vector<float> v = {1.0f, -1000.0f, 65280.0f,
                            -0.0f};  // exact in all three
    EXPECT_TRUE(AllWithin(PackFloats(v, t).data(), v.size(), t, 65504.0f))
        << DTypeName(t);
    EXPECT_FALSE(AllWithin(PackFloats(v, t).data(), v.size(), t, 999.0f))
        << DTypeName(t);
    v.push_back(NAN);
    EXPECT_FALSE(AllWithin(PackFloats(v, t).data(), v.size(), t, 1e30f))
        << DTypeName(t);
  }
  EXPECT_EQ(LargestFinite(DType::kFloat16), 65504.0f);
  EXPECT_TRUE(std::isfinite(LargestFinite(DType::kBFloat16)));
  EXPECT_TRUE(std::isinf(
      BFloat16ToFloat(FloatToBFloat16(LargestFinite(DType::kFloat32)))));
}

TEST(TensorCodecTest, CheckFloatTensorNamesTheFieldAndTheDimension) {
  std::vector<float> v(2 * 3 * 4, 0.5f);
  v1::Tensor t = MakeTensor(v, {2, 3, 4}, DType::kFloat16);
  auto ok = CheckFloatTensor(t, {-1, 3, 4}, "keys");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0], 2);

  auto bad_dim = CheckFloatTensor(t, {-1, 3, 5}, "keys");
  EXPECT_EQ(bad_dim.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_dim.status().message(), "keys.shape[2] = 4, want 5");

  t.mutable_data()->pop_back();
  auto bad_len = CheckFloatTensor(t, {-1, 3, 4}, "queries");
  EXPECT_EQ(bad_len.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StartsWith(bad_len.status().message(), "queries.data: 47 bytes"))
      << bad_len.status();

  t.set_dtype(v1::INT64);
  auto bad_dtype = CheckFloatTensor(t, {-1, 3, 4}, "values");
  EXPECT_TRUE(
      absl::StartsWith(bad_dtype.status().message(), "values: dtype INT64"))
      << bad_dtype.status();
}

}  // namespace
}  // namespace knnmem
