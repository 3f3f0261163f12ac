#include "bench/decode_peers.h"

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <omp.h>

#include <algorithm>
#include <exception>
#include <string>

#include "absl/strings/str_cat.h"

namespace knnmem::bench {
namespace {

constexpr int kM = 15;
constexpr int64_t kTrainPerList = 64;  // as the server's tier

}  // namespace

DecodePeer::DecodePeer(Kind kind, int indexes, int dim, int nlist, int nprobe)
    : kind_(kind), dim_(dim), nlist_(nlist), nprobe_(nprobe) {
  for (int i = 0; i < indexes; ++i) {
    switch (kind) {
      case Kind::kFlat:
        indexes_.push_back(std::make_unique<faiss::IndexFlatIP>(dim));
        break;
      case Kind::kIvf: {
        quantizers_.push_back(std::make_unique<faiss::IndexFlatIP>(dim));
        auto ivf = std::make_unique<faiss::IndexIVFFlat>(
            quantizers_.back().get(), dim, nlist, faiss::METRIC_INNER_PRODUCT);
        ivf->nprobe = nprobe;
        indexes_.push_back(std::move(ivf));
        break;
      }
      case Kind::kHnsw:
        indexes_.push_back(std::make_unique<faiss::IndexHNSWFlat>(
            dim, kM, faiss::METRIC_INNER_PRODUCT));
        break;
    }
  }
}

DecodePeer::~DecodePeer() = default;

absl::Status DecodePeer::Add(int i, const float* keys, int64_t rows) {
  try {
    faiss::Index& index = *indexes_[i];
    if (kind_ == Kind::kIvf) {
      auto& ivf = static_cast<faiss::IndexIVFFlat&>(index);
      const int64_t sample = std::min(rows, kTrainPerList * nlist_);
      faiss::ClusteringParameters cp;
      cp.niter = 10;
      cp.max_points_per_centroid = static_cast<int>(kTrainPerList);
      faiss::Clustering clustering(dim_, nlist_, cp);
      clustering.train(sample, keys, *ivf.quantizer);
      ivf.is_trained = true;
    }
    index.add(rows, keys);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("decode peer: FAISS: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> DecodePeer::Search(
    const std::vector<int>& indexes, const std::vector<const float*>& queries,
    int k) const {
  const int n = static_cast<int>(indexes.size());
  std::vector<int64_t> labels(static_cast<size_t>(n) * k);
  std::vector<float> distances(labels.size());
  std::string error;
#pragma omp parallel for schedule(dynamic)
  for (int j = 0; j < n; ++j) {
    try {
      std::vector<faiss::Index::idx_t> l(k);
      indexes_[indexes[j]]->search(1, queries[j], k, distances.data() + j * k,
                                   l.data());
      std::copy(l.begin(), l.end(), labels.begin() + j * k);
    } catch (const std::exception& e) {
#pragma omp critical
      error = e.what();
    }
  }
  if (!error.empty()) {
    return absl::InternalError(absl::StrCat("decode peer: FAISS: ", error));
  }
  return labels;
}

void DecodePeer::set_nprobe(int nprobe) {
  nprobe_ = nprobe;
  for (auto& index : indexes_) {
    static_cast<faiss::IndexIVFFlat&>(*index).nprobe = nprobe;
  }
}

void DecodePeer::set_ef_search(int ef) {
  for (auto& index : indexes_) {
    static_cast<faiss::IndexHNSWFlat&>(*index).hnsw.efSearch = ef;
  }
}

}  // namespace knnmem::bench
