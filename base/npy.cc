#include "base/npy.h"

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace knnmem {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
constexpr size_t kHeaderBytes = 128;  // magic, version, length and the dict

std::string ShapeText(const std::vector<int64_t>& shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

absl::Status Bad(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": not a float32 C-order .npy file: ", why));
}

// The text of `key`'s value in the header's dict, up to the next ", '" or
// the closing brace.
absl::string_view ValueOf(absl::string_view dict, absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "':");
  const size_t at = dict.find(quoted);
  if (at == absl::string_view::npos) return {};
  absl::string_view rest = dict.substr(at + quoted.size());
  rest = absl::StripLeadingAsciiWhitespace(rest);
  const size_t end =
      rest[0] == '(' ? rest.find(')') + 1 : rest.find_first_of(",}");
  return absl::StripAsciiWhitespace(rest.substr(0, end));
}

}  // namespace

NpyWriter::NpyWriter(std::string path, std::FILE* file,
                     std::vector<int64_t> row_shape)
    : path_(std::move(path)), file_(file), row_shape_(std::move(row_shape)) {
  for (int64_t d : row_shape_) row_floats_ *= d;
}

absl::StatusOr<std::unique_ptr<NpyWriter>> NpyWriter::Create(
    const std::string& path, std::vector<int64_t> row_shape) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot create '", path, "': ", std::strerror(errno)));
  }
  std::unique_ptr<NpyWriter> writer(
      new NpyWriter(path, file, std::move(row_shape)));
  if (absl::Status s = writer->WriteHeader(); !s.ok()) return s;
  return writer;
}

NpyWriter::~NpyWriter() {
  if (file_ != nullptr) (void)Close();
}

absl::Status NpyWriter::WriteHeader() {
  std::vector<int64_t> shape = {rows_};
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  std::string dict = absl::StrCat(
      "{'descr': '<f4', 'fortran_order': False, 'shape': ", ShapeText(shape),
      ", }");
  const size_t prefix = kMagicBytes + 2 + 2;
  if (prefix + dict.size() + 1 > kHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": shape ", ShapeText(shape), " too long"));
  }
  dict.append(kHeaderBytes - prefix - dict.size() - 1, ' ');
  dict.push_back('\n');
  std::string header(kMagic, kMagicBytes);
  header.push_back(1);  // version 1.0
  header.push_back(0);
  const uint16_t length = static_cast<uint16_t>(dict.size());
  header.push_back(static_cast<char>(length & 0xff));
  header.push_back(static_cast<char>(length >> 8));
  header += dict;
  if (std::fseek(file_, 0, SEEK_SET) != 0 ||
      std::fwrite(header.data(), 1, header.size(), file_) != header.size() ||
      std::fseek(file_, 0, SEEK_END) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot write '", path_, "': ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status NpyWriter::Append(const float* data, int64_t rows) {
  const size_t n = static_cast<size_t>(rows * row_floats_);
  if (std::fwrite(data, sizeof(float), n, file_) != n) {
    return absl::InternalError(
        absl::StrCat("cannot write '", path_, "': ", std::strerror(errno)));
  }
  rows_ += rows;
  return absl::OkStatus();
}

absl::Status NpyWriter::Close() {
  absl::Status s = WriteHeader();
  if (std::fclose(file_) != 0 && s.ok()) {
    s = absl::InternalError(
        absl::StrCat("cannot close '", path_, "': ", std::strerror(errno)));
  }
  file_ = nullptr;
  return s;
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(file, &std::fclose);
  unsigned char prefix[10];
  if (std::fread(prefix, 1, 10, file) != 10 ||
      std::memcmp(prefix, kMagic, kMagicBytes) != 0 || prefix[6] != 1) {
    return Bad(path, "no version 1.0 magic");
  }
  const size_t length = prefix[8] | (size_t{prefix[9]} << 8);
  std::string dict(length, '\0');
  if (std::fread(dict.data(), 1, length, file) != length) {
    return Bad(path, "truncated header");
  }
  if (ValueOf(dict, "descr") != "'<f4'") return Bad(path, "descr is not '<f4'");
  if (ValueOf(dict, "fortran_order") != "False") {
    return Bad(path, "fortran_order is not False");
  }
  absl::string_view shape_text = ValueOf(dict, "shape");
  if (!absl::ConsumePrefix(&shape_text, "(") ||
      !absl::ConsumeSuffix(&shape_text, ")")) {
    return Bad(path, "no shape tuple");
  }
  NpyArray array;
  int64_t count = 1;
  for (absl::string_view d :
       absl::StrSplit(shape_text, ',', absl::SkipWhitespace())) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &n) || n < 0) {
      return Bad(path, absl::StrCat("shape entry '", d, "'"));
    }
    array.shape.push_back(n);
    count *= n;
  }
  array.data.resize(static_cast<size_t>(count));
  if (std::fread(array.data.data(), sizeof(float), array.data.size(), file) !=
      array.data.size()) {
    return absl::DataLossError(absl::StrCat(path, ": fewer floats than shape ",
                                            ShapeText(array.shape)));
  }
  return array;
}

}  // namespace knnmem
