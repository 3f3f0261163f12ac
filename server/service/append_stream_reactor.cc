#include "server/service/append_stream_reactor.h"

#include <utility>

namespace knnmem {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

MemoryService::AppendStreamReactor::AppendStreamReactor(
    MemoryService* service, grpc::CallbackServerContext* ctx)
    : service_(service), ctx_(ctx), entered_(service->gate_.Enter()) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (!entered_) {
      status_ = ServerStopping();
    } else if (absl::StatusOr<Caller> caller = service_->Identify(*ctx_);
               !caller.ok()) {
      status_ = caller.status();
      service_->NoteDenied(Rpc::kAppend, nullptr, status_);
    } else {
      caller_ = *std::move(caller);
      status_ = CheckWrite(caller_);
      service_->NoteDenied(Rpc::kAppend, &caller_, status_);
    }
    Plan(actions);
  }
  Run(actions);
}

void MemoryService::AppendStreamReactor::OnReadDone(bool ok) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    if (ok) {
      reading_->received = std::chrono::steady_clock::now();
      absl::StatusOr<Admission::Ticket> ticket =
          service_->admission_.Admit(reading_->request.ByteSizeLong());
      if (ticket.ok()) {
        reading_->admitted = *std::move(ticket);
        received_.push_back(std::move(reading_));
      } else {
        if (status_.ok()) status_ = ticket.status();
        if (service_->metrics_ != nullptr) {
          service_->metrics_->RecordRequest(Rpc::kAppend, status_.code(), 0);
        }
        reading_.reset();
      }
    } else {
      reading_.reset();
      read_closed_ = true;
    }
    Plan(actions);
  }
  Run(actions);
}

void MemoryService::AppendStreamReactor::OnWriteDone(bool ok) {
  Actions actions;
  {
    MutexLock lock(&mu_);
    writing_.reset();
    if (!ok) {
      if (status_.ok()) {
        status_ =
            absl::CancelledError("the client stopped reading acknowledgements");
      }
      stored_.clear();
    }
    Plan(actions);
  }
  Run(actions);
}

void MemoryService::AppendStreamReactor::Plan(Actions& actions) {
  if (finished_) return;
  if (!status_.ok()) received_.clear();  // never stored, never acknowledged
  const size_t unacknowledged = stored_.size() + (writing_ != nullptr ? 1 : 0);
  if (reading_ == nullptr && !read_closed_ && status_.ok() &&
      received_.empty() && unacknowledged < kMaxUnacknowledged) {
    // One batch read ahead of the one being stored: memory per call stays
    // at two batches, and the transfer overlaps the write. A client that
    // does not read its acknowledgements is not read from either (HTTP/2
    // flow control then stops its writes).
    reading_ = std::make_unique<Batch>();
    actions.read = &reading_->request;
  }
  if (writing_ == nullptr && !stored_.empty()) {
    writing_ = std::move(stored_.front());
    stored_.pop_front();
    actions.write = &writing_->response;
  }
  if (!storing_ && !received_.empty()) {
    storing_ = true;
    actions.store = true;
  }
  const bool idle = !storing_ && writing_ == nullptr && stored_.empty();
  const bool drained = read_closed_ && received_.empty();
  if (idle && (drained || !status_.ok())) {
    finished_ = true;
    actions.finish = true;
    actions.status = status_;
  }
}

void MemoryService::AppendStreamReactor::Run(const Actions& actions) {
  if (actions.read != nullptr) StartRead(actions.read);
  if (actions.write != nullptr) StartWrite(actions.write);
  if (actions.store) service_->pool_->Submit([this] { StoreBatches(); });
  if (actions.finish) {
    if (entered_) service_->gate_.HandOff();
    Finish(ToGrpc(actions.status));
  }
}

void MemoryService::AppendStreamReactor::StoreBatches() {
  for (;;) {
    std::unique_ptr<Batch> batch;
    Actions before;
    {
      MutexLock lock(&mu_);
      if (received_.empty() || !status_.ok()) {
        storing_ = false;
        Plan(before);
      } else {
        batch = std::move(received_.front());
        received_.pop_front();
        Plan(before);  // reads the next batch while this one is stored
      }
    }
    if (batch == nullptr) {
      Run(before);  // may Finish: nothing touches `this` after it
      return;
    }
    Run(before);
    const absl::Status status = StoreOne(*batch);
    Actions after;
    {
      MutexLock lock(&mu_);
      if (!status.ok()) {
        if (status_.ok()) status_ = status;
      } else if (status_.ok()) {  // else the call is over: no more writes
        // Waiting for its acknowledgement, it keeps no keys or values.
        batch->request = v1::AppendRequest();
        batch->admitted.Reset();
        stored_.push_back(std::move(batch));
      }
      Plan(after);
    }
    Run(after);
  }
}

absl::Status MemoryService::AppendStreamReactor::StoreOne(Batch& batch) {
  absl::Status status;
  if (ctx_->IsCancelled()) {
    status = WhyCancelled(*ctx_, "before this batch was stored");
  } else if (service_->aborting_.load()) {
    status = ServerStopping();
  } else {
    absl::StatusOr<StreamSpec> spec = service_->AuthorizedCallSpec(
        caller_, batch.request, batch.request.stream_id(), "keys, values");
    status = spec.status();
    service_->NoteDenied(Rpc::kAppend, &caller_, status);
    if (status.ok()) {
      status = service_->StoreAppend(batch.request, *spec, &batch.response);
    }
  }
  if (service_->metrics_ != nullptr) {
    service_->metrics_->RecordRequest(Rpc::kAppend, status.code(),
                                      SecondsSince(batch.received));
  }
  return status;
}

}  // namespace knnmem
