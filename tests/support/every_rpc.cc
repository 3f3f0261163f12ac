#include "tests/support/every_rpc.h"

#include "client/append_pipeline.h"
#include "client/decode_step.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

// One DecodeStep of `id`, with a row to append when `rows`.
absl::Status OneStep(client::MemoryClient& c, const std::string& id,
                     bool rows) {
  const std::vector<float> row(4, 0.5f);
  client::Step step;
  step.stream_id = id;
  step.heads = 1;
  step.key_dim = step.value_dim = 4;
  step.queries = row;
  if (rows) step.keys = step.values = row;
  auto r = c.DecodeStep({&step, 1}, client::StepParams());
  return r.ok() ? (*r)[0].status : r.status();
}

}  // namespace

std::vector<std::pair<std::string, RpcCall>> EveryRpc(const std::string& id) {
  const v1::StreamSpec spec = ServerFixture::MakeSpec(1, 1, 4, 4, 10);
  const std::vector<float> row(4, 0.5f);
  return {
      {"CreateStream",
       [=](client::MemoryClient& c) {
         return c.CreateStream(id, spec).status();
       }},
      {"Append",
       [=](client::MemoryClient& c) {
         return c.Append(id, 0, 0, row, row, 1, 1).status();
       }},
      {"AppendStream",
       [=](client::MemoryClient& c) {
         absl::StatusOr<v1::AppendRequest> request =
             client::MakeAppendRequest(id, 0, 1, row, row, 1, 1);
         if (!request.ok()) return request.status();
         std::unique_ptr<client::AppendPipeline> pipeline =
             c.OpenAppendPipeline();
         absl::Status sent = pipeline->Send(*std::move(request));
         absl::Status finished = pipeline->Finish();
         return sent.ok() ? finished : sent;
       }},
      {"GetStream",
       [=](client::MemoryClient& c) { return c.GetStream(id).status(); }},
      {"ListStreams",
       [](client::MemoryClient& c) { return c.ListStreams().status(); }},
      {"Search",
       [=](client::MemoryClient& c) {
         return c.Search(id, 0, row, 1, 1, 1).status();
       }},
      {"Attend",
       [=](client::MemoryClient& c) {
         return c.Attend(id, 0, row, 1, 1, 1).status();
       }},
      {"DecodeStep",
       [=](client::MemoryClient& c) { return OneStep(c, id, false); }},
      // A step that appends needs a token that may write.
      {"DecodeStep with rows",
       [=](client::MemoryClient& c) { return OneStep(c, id, true); }},
      {"ResetStream",
       [=](client::MemoryClient& c) { return c.ResetStream(id); }},
      {"DeleteStream",
       [=](client::MemoryClient& c) { return c.DeleteStream(id); }},
  };
}

bool IsWriteRpc(const std::string& name) {
  return name == "CreateStream" || name == "Append" || name == "AppendStream" ||
         name == "ResetStream" || name == "DeleteStream" ||
         name == "DecodeStep with rows";
}

}  // namespace knnmem::testing
