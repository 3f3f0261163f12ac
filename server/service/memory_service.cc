#include "server/service/memory_service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "server/service/append_stream_reactor.h"
#include "server/service/request_validation.h"

namespace knnmem {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

absl::Status WhyCancelled(const grpc::ServerContextBase& ctx,
                          absl::string_view when) {
  if (ctx.deadline() <= std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError(
        absl::StrCat("the call's deadline passed ", when));
  }
  return absl::CancelledError(absl::StrCat("the call was cancelled ", when));
}

namespace {

void FillInfo(const StreamState& state, v1::StreamInfo* info) {
  info->set_stream_id(state.stream_id);
  SpecToProto(state.spec, info->mutable_spec());
  for (size_t l = 0; l < state.layers.size(); ++l) {
    v1::LayerInfo* layer = info->add_layers();
    layer->set_layer(static_cast<uint32_t>(l));
    layer->set_first_position(state.layers[l].first_position);
    layer->set_next_position(state.layers[l].next_position);
    layer->set_entries(static_cast<uint64_t>(state.layers[l].next_position -
                                             state.layers[l].first_position));
    layer->set_indexed_entries(state.layers[l].indexed_entries);
  }
  info->set_bytes_in_ram(state.bytes_in_ram);
  info->set_resident(state.resident);
  info->set_bytes_on_disk(state.bytes_on_disk);
}

void SetFloatTensor(const std::vector<float>& values,
                    std::initializer_list<int64_t> shape, v1::Tensor* t) {
  t->set_dtype(v1::FLOAT32);
  for (int64_t d : shape) t->add_shape(d);
  t->mutable_data()->assign(reinterpret_cast<const char*>(values.data()),
                            values.size() * sizeof(float));
}

bool IsWrite(Rpc rpc) {
  return rpc == Rpc::kCreateStream || rpc == Rpc::kResetStream ||
         rpc == Rpc::kDeleteStream || rpc == Rpc::kAppend;
}

}  // namespace

// The reactor of a unary call that the gate let in: lets it out once gRPC
// is done with the call (its answer written out), not when it is finished,
// so that a stopping server does not exit under an answer still being sent.
class GatedReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit GatedReactor(CallGate* gate) : gate_(gate) {}
  void OnDone() override {
    gate_->Exit();
    delete this;
  }

 private:
  CallGate* const gate_;
};

// One call in flight: replies now or after work on the pool, and records
// the call's method, code and latency in the metrics.
class MemoryService::Call {
 public:
  Call(MemoryService* service, grpc::CallbackServerContext* ctx, Rpc rpc)
      : service_(service),
        ctx_(ctx),
        rpc_(rpc),
        entered_(service->gate_.Enter()),
        start_(std::chrono::steady_clock::now()) {}

  grpc::ServerUnaryReactor* Reply(const absl::Status& status) {
    grpc::ServerUnaryReactor* reactor = NewReactor();
    Finish(reactor, status);
    return reactor;
  }

  // Admits `request_bytes` of work, runs `work` (returning absl::Status) on
  // the pool and replies with its status, unless the call was cancelled or
  // its deadline passed while it was queued. Replies RESOURCE_EXHAUSTED at
  // once when the server is over its admission limits.
  template <typename Work>
  grpc::ServerUnaryReactor* Defer(uint64_t request_bytes, Work work) {
    absl::Status admitted = service_->admission_.TryAdmit(request_bytes);
    if (!admitted.ok()) return Reply(admitted);
    grpc::ServerUnaryReactor* reactor = NewReactor();
    service_->pool_->Submit([call = *this, reactor, request_bytes,
                             work = std::move(work)]() mutable {
      const absl::Status status =
          call.ctx_->IsCancelled() ? WhyCancelled(*call.ctx_, "while queued")
          : call.service_->aborting_.load() ? ServerStopping()
                                            : work();
      call.service_->admission_.Release(request_bytes);
      call.Finish(reactor, status);
    });
    return reactor;
  }

  // The first check of every handler: the server is not stopping, and the
  // call's token allows it. Then caller() is who makes it.
  absl::Status Authorize() {
    if (!entered_) return ServerStopping();
    absl::StatusOr<Caller> caller = service_->Identify(*ctx_);
    if (!caller.ok()) return caller.status();
    caller_ = *std::move(caller);
    known_caller_ = true;
    return IsWrite(rpc_) ? CheckWrite(caller_) : absl::OkStatus();
  }
  const Caller& caller() const { return caller_; }
  // Authorize, then `stream_id` is valid and the caller reaches it.
  absl::Status AuthorizeFor(const std::string& stream_id) {
    RETURN_IF_ERROR(Authorize());
    RETURN_IF_ERROR(ValidateStreamId(stream_id));
    return caller_.Reaches(stream_id, "stream_id");
  }

 private:
  void Finish(grpc::ServerUnaryReactor* reactor, absl::Status status) {
    // A search stops between blocks once its call is cancelled, and says
    // DEADLINE_EXCEEDED: the client may have cancelled it instead.
    if (status.code() == absl::StatusCode::kDeadlineExceeded) {
      if (ctx_->IsCancelled()) {
        status = WhyCancelled(*ctx_, "while it ran");
      } else if (service_->aborting_.load()) {
        status = ServerStopping();
      }
    }
    service_->NoteDenied(rpc_, known_caller_ ? &caller_ : nullptr, status);
    if (service_->metrics_ != nullptr) {
      service_->metrics_->RecordRequest(
          rpc_, status.code(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                        start_)
              .count());
    }
    if (entered_) service_->gate_.HandOff();
    reactor->Finish(ToGrpc(status));
  }
  grpc::ServerUnaryReactor* NewReactor() {
    if (!entered_) return ctx_->DefaultReactor();
    return new GatedReactor(&service_->gate_);
  }

  MemoryService* service_;
  grpc::CallbackServerContext* ctx_;
  Rpc rpc_;
  bool entered_;  // let in by the gate: its reactor lets it out
  bool known_caller_ = false;
  Caller caller_;
  std::chrono::steady_clock::time_point start_;
};

absl::StatusOr<Caller> MemoryService::Identify(
    const grpc::CallbackServerContext& ctx) const {
  if (tokens_ == nullptr) return Caller{"", "", true};
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  const absl::string_view value =
      it == metadata.end()
          ? absl::string_view()
          : absl::string_view(it->second.data(), it->second.size());
  return tokens_->current()->Identify(value);
}

std::optional<Quota> MemoryService::QuotaFor(
    absl::string_view stream_id) const {
  if (tokens_ == nullptr) return std::nullopt;
  const Quota* quota = tokens_->current()->QuotaOf(NamespaceOf(stream_id));
  if (quota == nullptr) return std::nullopt;
  return *quota;
}

void MemoryService::NoteDenied(Rpc rpc, const Caller* caller,
                               const absl::Status& status) const {
  const char* reason =
      status.code() == absl::StatusCode::kUnauthenticated    ? "unauthenticated"
      : status.code() == absl::StatusCode::kPermissionDenied ? "permission"
      : IsQuotaRefusal(status)                               ? "quota"
                                                             : nullptr;
  if (reason == nullptr) return;
  const std::string tenant = caller != nullptr ? caller->tenant : "";
  if (metrics_ != nullptr) metrics_->RecordDenied(tenant, reason);
  constexpr int kLinesPerSecond = 10;
  const int64_t second = absl::ToUnixSeconds(absl::Now());
  uint64_t unlogged = 0;
  {
    MutexLock lock(&denied_log_mu_);
    if (second != denied_log_second_) {
      denied_log_second_ = second;
      denied_logged_ = 0;
      unlogged = denied_unlogged_;
      denied_unlogged_ = 0;
    }
    if (denied_logged_ == kLinesPerSecond) {
      ++denied_unlogged_;
      return;
    }
    ++denied_logged_;
  }
  std::string who = "an unknown token";
  if (caller != nullptr) {
    who = absl::StrCat("token '", caller->name, "'");
    if (!caller->tenant.empty()) {
      absl::StrAppend(&who, " of tenant '", caller->tenant, "'");
    }
  }
  std::fprintf(
      stderr, "knnmem-server: denied %s from %s (%s)%s: %s\n", RpcName(rpc),
      who.c_str(), reason,
      unlogged == 0
          ? ""
          : absl::StrCat("; ", unlogged, " more denials went unlogged before")
                .c_str(),
      std::string(status.message()).c_str());
}

absl::StatusOr<StreamSpec> MemoryService::DataCallSpec(
    Call& call, const google::protobuf::Message& request,
    const std::string& stream_id, absl::string_view fields) const {
  RETURN_IF_ERROR(call.Authorize());
  return AuthorizedCallSpec(call.caller(), request, stream_id, fields);
}

absl::StatusOr<StreamSpec> MemoryService::AuthorizedCallSpec(
    const Caller& caller, const google::protobuf::Message& request,
    const std::string& stream_id, absl::string_view fields) const {
  RETURN_IF_ERROR(CheckRequestSize(request, fields));
  RETURN_IF_ERROR(ValidateStreamId(stream_id));
  RETURN_IF_ERROR(caller.Reaches(stream_id, "stream_id"));
  return store_->GetSpec(stream_id);
}

absl::Status MemoryService::CheckRequestSize(
    const google::protobuf::Message& request, absl::string_view fields) const {
  const size_t bytes = request.ByteSizeLong();
  if (bytes <= max_message_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat(fields, ": the request is ", bytes,
                   " bytes, over the server's --max-message-bytes ",
                   max_message_bytes_, "; send fewer rows per call"));
}

MemoryService::MemoryService(MemoryStore* store, WorkerPool* pool,
                             Metrics* metrics, const Limits& limits)
    : store_(store),
      pool_(pool),
      metrics_(metrics),
      tokens_(limits.tokens),
      max_message_bytes_(limits.max_message_bytes),
      admission_(limits.max_inflight_requests, limits.max_inflight_bytes) {}

grpc::ServerUnaryReactor* MemoryService::CreateStream(
    grpc::CallbackServerContext* ctx, const v1::CreateStreamRequest* request,
    v1::CreateStreamResponse* response) {
  Call call(this, ctx, Rpc::kCreateStream);
  if (absl::Status a = call.AuthorizeFor(request->stream_id()); !a.ok()) {
    return call.Reply(a);
  }
  if (!request->has_spec()) {
    return call.Reply(absl::InvalidArgumentError("spec: missing"));
  }
  absl::StatusOr<StreamSpec> spec = SpecFromProto(request->spec());
  if (!spec.ok()) return call.Reply(spec.status());
  return call.Defer(
      request->ByteSizeLong(), [this, request, response, spec = *spec,
                                quota = QuotaFor(request->stream_id())] {
        bool created = false;
        ASSIGN_OR_RETURN(
            StreamState state,
            store_->CreateStream(request->stream_id(), spec, &created,
                                 quota ? &*quota : nullptr));
        FillInfo(state, response->mutable_stream());
        response->set_created(created);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* MemoryService::GetStream(
    grpc::CallbackServerContext* ctx, const v1::GetStreamRequest* request,
    v1::StreamInfo* response) {
  Call call(this, ctx, Rpc::kGetStream);
  absl::Status s = call.AuthorizeFor(request->stream_id());
  if (s.ok()) {
    absl::StatusOr<StreamState> state = store_->GetStream(request->stream_id());
    s = state.status();
    if (s.ok()) FillInfo(*state, response);
  }
  return call.Reply(s);
}

grpc::ServerUnaryReactor* MemoryService::ListStreams(
    grpc::CallbackServerContext* ctx, const v1::ListStreamsRequest* request,
    v1::ListStreamsResponse* response) {
  Call call(this, ctx, Rpc::kListStreams);
  if (absl::Status a = call.Authorize(); !a.ok()) return call.Reply(a);
  constexpr uint32_t kDefaultPage = 1000, kMaxPage = 10000;
  if (request->page_size() > kMaxPage) {
    return call.Reply(absl::InvalidArgumentError(absl::StrCat(
        "page_size: ", request->page_size(), " is more than ", kMaxPage)));
  }
  const size_t limit =
      request->page_size() == 0 ? kDefaultPage : request->page_size();
  bool more = false;
  std::vector<StreamState> states = store_->ListStreams(
      request->page_token(), limit, &more, call.caller().prefix());
  for (const StreamState& s : states) FillInfo(s, response->add_streams());
  if (more && !states.empty()) {
    response->set_next_page_token(states.back().stream_id);
  }
  return call.Reply(absl::OkStatus());
}

grpc::ServerUnaryReactor* MemoryService::ResetStream(
    grpc::CallbackServerContext* ctx, const v1::ResetStreamRequest* request,
    v1::ResetStreamResponse* response) {
  Call call(this, ctx, Rpc::kResetStream);
  if (absl::Status a = call.AuthorizeFor(request->stream_id()); !a.ok()) {
    return call.Reply(a);
  }
  return call.Defer(request->ByteSizeLong(), [this, request] {
    return store_->ResetStream(request->stream_id());
  });
}

grpc::ServerUnaryReactor* MemoryService::DeleteStream(
    grpc::CallbackServerContext* ctx, const v1::DeleteStreamRequest* request,
    v1::DeleteStreamResponse* response) {
  Call call(this, ctx, Rpc::kDeleteStream);
  if (absl::Status a = call.AuthorizeFor(request->stream_id()); !a.ok()) {
    return call.Reply(a);
  }
  return call.Defer(request->ByteSizeLong(), [this, request] {
    return store_->DeleteStream(request->stream_id());
  });
}

grpc::ServerUnaryReactor* MemoryService::Append(
    grpc::CallbackServerContext* ctx, const v1::AppendRequest* request,
    v1::AppendResponse* response) {
  Call call(this, ctx, Rpc::kAppend);
  absl::StatusOr<StreamSpec> spec =
      DataCallSpec(call, *request, request->stream_id(), "keys, values");
  if (!spec.ok()) return call.Reply(spec.status());
  // Validation reads every byte (NaN checks): it runs on the pool too.
  return call.Defer(request->ByteSizeLong(),
                    [this, request, response, spec = *spec] {
                      return StoreAppend(*request, spec, response);
                    });
}

absl::Status MemoryService::StoreAppend(const v1::AppendRequest& request,
                                        const StreamSpec& spec,
                                        v1::AppendResponse* response) {
  ASSIGN_OR_RETURN(AppendCommand cmd, ValidateAppend(request, spec));
  ASSIGN_OR_RETURN(AppendResult result, store_->Append(cmd));
  if (metrics_ != nullptr) {
    metrics_->AddAppendedVectors(result.stored * spec.heads);
    metrics_->AddEvictedVectors(result.evicted * spec.heads);
  }
  response->set_next_position(result.next_position);
  response->set_stored(result.stored);
  return absl::OkStatus();
}

grpc::ServerBidiReactor<v1::AppendRequest, v1::AppendResponse>*
MemoryService::AppendStream(grpc::CallbackServerContext* ctx) {
  return new AppendStreamReactor(this, ctx);
}

grpc::ServerUnaryReactor* MemoryService::Search(
    grpc::CallbackServerContext* ctx, const v1::SearchRequest* request,
    v1::SearchResponse* response) {
  Call call(this, ctx, Rpc::kSearch);
  absl::StatusOr<StreamSpec> spec =
      DataCallSpec(call, *request, request->stream_id(), "queries");
  if (!spec.ok()) return call.Reply(spec.status());
  return call.Defer(request->ByteSizeLong(), [this, ctx, request, response,
                                              spec = *spec] {
    ASSIGN_OR_RETURN(SearchCommand cmd, ValidateSearch(*request, spec));
    // Stops between blocks once the deadline passes: frees the workers.
    cmd.options.cancelled = [this, ctx] {
      return ctx->IsCancelled() || aborting_.load();
    };
    const size_t bytes = SearchResponseBytes(cmd);
    if (bytes > max_message_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "queries: the response would be ", bytes,
          " bytes, over the server's --max-message-bytes ", max_message_bytes_,
          "; send fewer queries, a smaller k, or omit keys/values"));
    }
    ASSIGN_OR_RETURN(Neighbours r, store_->Search(cmd));
    if (metrics_ != nullptr) metrics_->AddSearchedQueries(r.queries);
    const int64_t shape[] = {r.queries, r.heads, r.k};
    v1::Tensor* scores = response->mutable_scores();
    scores->set_dtype(v1::FLOAT32);
    for (int64_t d : shape) scores->add_shape(d);
    scores->mutable_data()->assign(
        reinterpret_cast<const char*>(r.scores.data()),
        r.scores.size() * sizeof(float));
    v1::Tensor* positions = response->mutable_positions();
    positions->set_dtype(v1::INT64);
    for (int64_t d : shape) positions->add_shape(d);
    positions->mutable_data()->assign(
        reinterpret_cast<const char*>(r.positions.data()),
        r.positions.size() * sizeof(int64_t));
    const v1::DType stored = DTypeToProto(spec.storage_dtype);
    if (request->return_keys()) {
      v1::Tensor* t = response->mutable_keys();
      t->set_dtype(stored);
      for (int64_t d : shape) t->add_shape(d);
      t->add_shape(spec.key_dim);
      t->set_data(std::move(r.keys));
    }
    if (request->return_values()) {
      v1::Tensor* t = response->mutable_values();
      t->set_dtype(stored);
      for (int64_t d : shape) t->add_shape(d);
      t->add_shape(spec.value_dim);
      t->set_data(std::move(r.values));
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* MemoryService::Attend(
    grpc::CallbackServerContext* ctx, const v1::AttendRequest* request,
    v1::AttendResponse* response) {
  Call call(this, ctx, Rpc::kAttend);
  absl::StatusOr<StreamSpec> spec =
      DataCallSpec(call, *request, request->stream_id(), "queries");
  if (!spec.ok()) return call.Reply(spec.status());
  return call.Defer(
      request->ByteSizeLong(), [this, ctx, request, response, spec = *spec] {
        ASSIGN_OR_RETURN(AttendCommand cmd, ValidateAttend(*request, spec));
        cmd.cancelled = [this, ctx] {
          return ctx->IsCancelled() || aborting_.load();
        };
        ASSIGN_OR_RETURN(Attention r, store_->Attend(cmd));
        if (metrics_ != nullptr) metrics_->AddSearchedQueries(r.queries);
        SetFloatTensor(r.output, {r.queries, r.heads, r.value_dim},
                       response->mutable_output());
        SetFloatTensor(r.lse, {r.queries, r.heads}, response->mutable_lse());
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* MemoryService::DecodeStep(
    grpc::CallbackServerContext* ctx, const v1::DecodeStepRequest* request,
    v1::DecodeStepResponse* response) {
  Call call(this, ctx, Rpc::kDecodeStep);
  if (absl::Status a = call.Authorize(); !a.ok()) return call.Reply(a);
  // Steps that append need a token that may write.
  const bool appends = std::any_of(
      request->steps().begin(), request->steps().end(),
      [](const v1::StreamStep& s) { return s.has_keys() || s.has_values(); });
  if (appends) {
    if (absl::Status a = CheckWrite(call.caller()); !a.ok()) {
      return call.Reply(a);
    }
  }
  if (absl::Status s = CheckRequestSize(*request, "steps"); !s.ok()) {
    return call.Reply(s);
  }
  if (absl::Status s = ValidateDecodeStepCall(*request); !s.ok()) {
    return call.Reply(s);
  }
  return call.Defer(request->ByteSizeLong(),
                    [this, ctx, request, response, caller = call.caller()] {
                      return RunDecodeStep(ctx, caller, *request, response);
                    });
}

absl::Status MemoryService::RunDecodeStep(grpc::CallbackServerContext* ctx,
                                          const Caller& caller,
                                          const v1::DecodeStepRequest& request,
                                          v1::DecodeStepResponse* response) {
  const int n = request.steps_size();
  std::vector<absl::Status> failed(n);
  std::vector<StepCommand> commands;
  std::vector<int> command_step;  // commands[j] is steps[command_step[j]]
  absl::flat_hash_map<std::pair<absl::string_view, uint32_t>, int> seen;
  for (int i = 0; i < n; ++i) {
    const v1::StreamStep& step = request.steps(i);
    auto [it, first] = seen.emplace(
        std::make_pair(absl::string_view(step.stream_id()), step.layer()), i);
    if (!first) {
      failed[i] = absl::InvalidArgumentError(
          absl::StrCat("steps[", i, "].stream_id: stream '", step.stream_id(),
                       "' layer ", step.layer(), " is also steps[", it->second,
                       "]; send each (stream, layer) once per call"));
      continue;
    }
    absl::Status valid = ValidateStreamId(step.stream_id());
    if (valid.ok()) valid = caller.Reaches(step.stream_id(), "stream_id");
    NoteDenied(Rpc::kDecodeStep, &caller, valid);
    absl::StatusOr<StreamSpec> spec =
        valid.ok() ? store_->GetSpec(step.stream_id()) : valid;
    if (!spec.ok()) {
      failed[i] = InStep(i, spec.status());
      continue;
    }
    absl::StatusOr<StepCommand> cmd = ValidateStep(request, i, *spec);
    if (!cmd.ok()) {
      failed[i] = cmd.status();
      continue;
    }
    if (cmd->attend) {
      cmd->attend->cancelled = [this, ctx] {
        return ctx->IsCancelled() || aborting_.load();
      };
    }
    commands.push_back(*std::move(cmd));
    command_step.push_back(i);
  }
  const size_t bytes = DecodeStepResponseBytes(commands);
  if (bytes > max_message_bytes_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "steps: the response would be ", bytes,
        " bytes, over the server's --max-message-bytes ", max_message_bytes_,
        "; send fewer steps or queries per call"));
  }
  std::vector<StepResult> results = store_->DecodeStep(commands);
  for (int i = 0; i < n; ++i) response->add_results();
  uint64_t queries = 0, appended = 0, evicted = 0;
  for (size_t j = 0; j < results.size(); ++j) {
    StepResult& r = results[j];
    if (r.status.code() == absl::StatusCode::kDeadlineExceeded) {
      return r.status;  // the call was cancelled or ran out of time
    }
    const int i = command_step[j];
    if (!r.status.ok()) {
      failed[i] = InStep(i, r.status);
      continue;
    }
    const uint32_t heads = commands[j].append ? commands[j].append->spec.heads
                                              : commands[j].attend->spec.heads;
    appended += r.appended.stored * heads;
    evicted += r.appended.evicted * heads;
    v1::StreamStepResult* out = response->mutable_results(i);
    out->set_next_position(r.next_position);
    if (commands[j].attend) {
      const Attention& a = r.attention;
      queries += a.queries;
      SetFloatTensor(a.output, {a.queries, a.heads, a.value_dim},
                     out->mutable_output());
      SetFloatTensor(a.lse, {a.queries, a.heads}, out->mutable_lse());
    }
  }
  for (int i = 0; i < n; ++i) {
    if (failed[i].ok()) continue;
    v1::StreamStepResult* out = response->mutable_results(i);
    out->set_code(static_cast<int32_t>(failed[i].code()));
    out->set_message(std::string(failed[i].message()));
  }
  if (metrics_ != nullptr) {
    metrics_->AddSearchedQueries(queries);
    metrics_->AddAppendedVectors(appended);
    metrics_->AddEvictedVectors(evicted);
  }
  return absl::OkStatus();
}

}  // namespace knnmem
