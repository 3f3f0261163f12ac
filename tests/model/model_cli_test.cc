// knnmem-model end to end on a small corpus written here: train, resume,
// eval (table, JSON, PNG), generate, bench, and flags it refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/json.h"
#include "base/temp_dir.h"
#include "tests/support/cli_runner.h"

namespace knnmem::model {
namespace {

using Outcome = testing::CliOutput;

Outcome Model(const std::string& args) {
  return testing::RunBinary(KNNMEM_MODEL_BINARY, args, /*merge_stderr=*/true);
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The "rows" of an eval --json file.
Json EvalRows(const std::string& path) {
  absl::StatusOr<Json> file = ParseJson(Read(path));
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? file->at("rows") : Json::array();
}

class ModelCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Twelve 24 KB "source files" of repetitive code-like text.
    std::mt19937 rng(5);
    for (int f = 0; f < 12; ++f) {
      std::ofstream out(dir_.Sub("doc" + std::to_string(f) + ".txt"));
      for (int line = 0; out.tellp() < 24000; ++line) {
        out << "int value_" << rng() % 50 << " = compute(" << line % 17
            << ");\n";
      }
    }
    shape_ = " --data " + dir_.path() +
             " --holdout 500 --layers 2 --d-model 32 --heads 2 --segment 32";
  }

  TempDir dir_;
  std::string shape_;
};

TEST_F(ModelCliTest, TrainsResumesEvaluatesGeneratesAndBenchmarks) {
  const std::string ck = dir_.Sub("ck");
  Outcome train =
      Model("train --out " + ck +
            " --steps 6 --checkpoint-every 3 --lanes 2 --memory 256" + shape_);
  ASSERT_EQ(train.status, 0) << train.out;
  EXPECT_NE(train.out.find("trained to step 6"), std::string::npos)
      << train.out;
  EXPECT_NE(train.out.find("bits/byte"), std::string::npos) << train.out;
  // Resumes where it stopped, with the shape it was trained with.
  Outcome more =
      Model("train --out " + ck + " --steps 9 --lanes 2 --memory 256" + shape_);
  ASSERT_EQ(more.status, 0) << more.out;
  EXPECT_NE(more.out.find("resuming"), std::string::npos) << more.out;
  EXPECT_NE(more.out.find("trained to step 9"), std::string::npos) << more.out;
  EXPECT_NE(Read(ck + "/state.txt").find("step=9"), std::string::npos);
  // Started again at its last step (a script resuming): nothing to train,
  // and it says so instead of printing a loss of no step.
  Outcome done =
      Model("train --out " + ck + " --steps 9 --lanes 2 --memory 256" + shape_);
  ASSERT_EQ(done.status, 0) << done.out;
  EXPECT_NE(done.out.find("already trained to step 9"), std::string::npos)
      << done.out;
  EXPECT_EQ(done.out.find("loss"), std::string::npos) << done.out;

  const std::string json = dir_.Sub("eval.json"), png = dir_.Sub("eval.png");
  // Two checkpoints side by side (the same one twice: evaluation is
  // deterministic, so both give the same bits per byte).
  Outcome eval =
      Model("eval --checkpoint " + ck + "," + ck +
            " --memory 0,256 --segments 4 --lanes 2 --json " + json +
            " --png " + png + " --data " + dir_.path() + " --holdout 500");
  ASSERT_EQ(eval.status, 0) << eval.out;
  EXPECT_NE(eval.out.find("memory 256"), std::string::npos) << eval.out;
  const std::string rows = Read(json);
  int at0 = 0;
  std::vector<double> at256;  // bits per byte
  for (const Json& row : EvalRows(json)) {
    if (row.at("memory") == 0) ++at0;
    if (row.at("memory") == 256) {
      at256.push_back(row.at("bits_per_byte").get<double>());
    }
  }
  EXPECT_GT(at0, 0) << rows;
  ASSERT_GE(at256.size(), 2u) << rows;
  EXPECT_EQ(at256.front(), at256.back()) << rows;
  EXPECT_GT(at256.front(), 0.0) << rows;
  EXPECT_EQ(Read(png).substr(1, 3), "PNG");
  // The same rows again from the JSON alone (evaluations run apart).
  const std::string again = dir_.Sub("again.json");
  std::remove(png.c_str());
  Outcome redraw =
      Model("eval --rows " + json + " --json " + again + " --png " + png);
  ASSERT_EQ(redraw.status, 0) << redraw.out;
  EXPECT_EQ(Read(again), rows);
  EXPECT_EQ(Read(png).substr(1, 3), "PNG");
  Outcome bad = Model("eval --rows " + png);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.out.find("no rows of eval --json"), std::string::npos)
      << bad.out;

  Outcome gen = Model("generate --checkpoint " + ck +
                      " --prompt int --bytes 40 --memory 256");
  ASSERT_EQ(gen.status, 0) << gen.out;
  EXPECT_EQ(gen.out.rfind("int", 0), 0u) << gen.out;
  EXPECT_GE(gen.out.size(), 44u) << gen.out;

  // Two lanes at once, incremental; the first lane's text comes first.
  Outcome lanes = Model("generate --checkpoint " + ck +
                        " --prompt int --bytes 20 --memory 256 --lanes 2");
  ASSERT_EQ(lanes.status, 0) << lanes.out;
  EXPECT_EQ(lanes.out.rfind("--- lane 0\nint", 0), 0u) << lanes.out;
  EXPECT_NE(lanes.out.find("\n--- lane 1\nint"), std::string::npos)
      << lanes.out;
  Outcome generate_bench = Model(
      "bench --generate true --checkpoint " + ck +
      " --prompt-bytes 40 --bytes 8 --lanes 2 --reps 1 --memory 256 --data " +
      dir_.path() + " --holdout 500");
  ASSERT_EQ(generate_bench.status, 0) << generate_bench.out;
  EXPECT_NE(generate_bench.out.find("incremental / re-running"),
            std::string::npos)
      << generate_bench.out;

  // The kNN layer's keys and queries for W-real, read back by numpy.
  const std::string dump = dir_.Sub("dump");
  Outcome dumped = Model("dump-keys --checkpoint " + ck + " --out " + dump +
                         " --longest 2 --segments 8 --memory 64 --data " +
                         dir_.path() + " --holdout 500");
  ASSERT_EQ(dumped.status, 0) << dumped.out;
  EXPECT_NE(dumped.out.find("dump-keys: 2 document(s)"), std::string::npos)
      << dumped.out;
  // Per document: its keys are consecutive rows (8 segments of 32 bytes,
  // less what was still in the window and XL cache at its end), its
  // queries' rows follow one another, and keys_in_memory never falls.
  const std::string check =
      "import numpy as np, csv, sys\n"
      "d = sys.argv[1]\n"
      "k, v, q = (np.load(d + f) for f in ('/keys.npy', '/values.npy', "
      "'/queries.npy'))\n"
      "assert k.shape[1:] == (2, 16) and v.shape[1:] == (2, 16), (k.shape, "
      "v.shape)\n"
      "assert q.shape[1:] == (2, 16) and k.shape[0] == v.shape[0]\n"
      "docs = list(csv.DictReader(open(d + '/documents.tsv'), "
      "delimiter='\\t'))\n"
      "calls = list(csv.DictReader(open(d + '/queries.tsv'), "
      "delimiter='\\t'))\n"
      "assert len(docs) == 2, docs\n"
      "row = 0\n"
      "for doc in docs:\n"
      "  assert int(doc['key_row']) == row and 0 < int(doc['keys']) < 256, "
      "doc\n"
      "  row += int(doc['keys'])\n"
      "assert row == k.shape[0], (row, k.shape)\n"
      "assert sum(int(c['queries']) for c in calls) == q.shape[0]\n"
      "assert np.isfinite(k).all() and np.isfinite(q).all()\n"
      "assert np.abs(k).sum() > 0 and np.abs(q).sum() > 0\n"
      "print('ok', k.shape[0], q.shape[0])\n";
  std::ofstream(dir_.Sub("check.py")) << check;
  const Outcome numpy = testing::RunBinary(
      "/usr/bin/python3", dir_.Sub("check.py") + " " + dump, true);
  EXPECT_EQ(numpy.status, 0) << numpy.out;
  EXPECT_EQ(numpy.out.rfind("ok ", 0), 0u) << numpy.out;

  Outcome bench =
      Model("bench --checkpoint " + ck +
            " --segments 2 --lanes 2 --reps 1 --memory 256 --data " +
            dir_.path() + " --holdout 500");
  ASSERT_EQ(bench.status, 0) << bench.out;
  EXPECT_NE(bench.out.find("remote / in-process"), std::string::npos)
      << bench.out;
}

// A number member of one row of eval --json.
double Field(const Json& row, const std::string& key) {
  return row.at(key).get<double>();
}

// The retrofit: a model trained without memory, trained on with it. Its
// weights are the memory-less model's (with --lr 0 the two evaluate the
// same; a fresh model of the same seed does not: the memory-less one
// trained at a high rate), its shape too, and how it reads memory is its
// own: here memory starts shut (b_h = -30), where the memory-less model's
// untrained b_h = 0.4 lets it in.
TEST_F(ModelCliTest, RetrofitStartsFromAMemorylessModel) {
  const std::string xl = dir_.Sub("xl"), retro = dir_.Sub("retro");
  Outcome train = Model("train --out " + xl +
                        " --steps 4 --lanes 2 --memory 0 --lr 0.01 "
                        "--warmup 1 --gate-init 0.4" +
                        shape_);
  ASSERT_EQ(train.status, 0) << train.out;
  Outcome retrofit = Model("train --out " + retro + " --from " + xl +
                           " --steps 2 --lanes 2 --memory 256 --lr 0 "
                           "--age-penalty true --gate-init -30 --data " +
                           dir_.path() + " --holdout 500");
  ASSERT_EQ(retrofit.status, 0) << retrofit.out;
  EXPECT_NE(retrofit.out.find("from " + xl), std::string::npos) << retrofit.out;
  const std::string config = Read(retro + "/config.txt");
  EXPECT_NE(config.find("d_model=32"), std::string::npos) << config;
  EXPECT_NE(config.find("age_penalty=true"), std::string::npos) << config;
  EXPECT_NE(Read(retro + "/state.txt").find("step=2"), std::string::npos);

  const std::string json = dir_.Sub("retro.json");
  Outcome eval = Model("eval --checkpoint " + xl + "," + retro +
                       " --memory 0,256 --segments 6 --lanes 2 --json " + json +
                       " --data " + dir_.path() + " --holdout 500");
  ASSERT_EQ(eval.status, 0) << eval.out;
  // Rows: xl at 0 and 256, retro at 0, 256, and 256 without age penalty.
  const std::string rows = Read(json);
  std::vector<double> bits;
  for (const Json& row : EvalRows(json)) {
    bits.push_back(Field(row, "bits_per_byte"));
  }
  ASSERT_EQ(bits.size(), 5u) << rows;
  EXPECT_NEAR(bits[2], bits[0], 1e-6) << rows;           // the same weights
  EXPECT_GT(std::abs(bits[1] - bits[0]), 1e-3) << rows;  // memory let in
  EXPECT_NEAR(bits[3], bits[2], 1e-6) << rows;           // memory shut

  // Without the extra row: xl's two, retro's two.
  Outcome fewer = Model("eval --checkpoint " + xl + "," + retro +
                        " --memory 0,256 --segments 2 --lanes 2 --json " +
                        json + " --without-age-penalty false --data " +
                        dir_.path() + " --holdout 500");
  ASSERT_EQ(fewer.status, 0) << fewer.out;
  EXPECT_EQ(fewer.out.find("no age penalty"), std::string::npos) << fewer.out;
  EXPECT_EQ(EvalRows(json).size(), 4u) << Read(json);
}

// Directory documents: the corpus listing against the joined lengths
// computed here; training on them; and eval through a knnmem server this
// process spawns, with APPROXIMATE streams (below the exact tail, so equal
// to the in-process exact memory), and its far-repeat split adding up.
TEST_F(ModelCliTest, DirectoryDocumentsThroughASpawnedServer) {
  std::map<std::string, size_t> joined;  // document -> its bytes
  std::mt19937 rng(9);
  for (int d = 0; d < 6; ++d) {
    const std::string name = "pkg" + std::to_string(d);
    std::filesystem::create_directories(dir_.Sub("tree/" + name));
    for (int f = 0; f < 3; ++f) {
      const std::string file = "f" + std::to_string(f) + ".py";
      std::ofstream out(dir_.Sub("tree/" + name + "/" + file));
      std::string text;
      while (text.size() < 3000u + 500u * f) {
        text += "def name_" + std::to_string(rng() % 40) + "(): pass\n";
      }
      out << text;
      joined["tree/" + name] += 1 + file.size() + 1 + text.size();
    }
  }
  const std::string data = " --data " + dir_.Sub("tree") +
                           " --documents directories --min-bytes 10000"
                           " --holdout 500";
  Outcome corpus = Model("corpus" + data);
  ASSERT_EQ(corpus.status, 0) << corpus.out;
  for (const auto& [name, bytes] : joined) {
    EXPECT_NE(
        corpus.out.find(absl::StrFormat("3 files %11d bytes  %s", bytes, name)),
        std::string::npos)
        << name << "\n"
        << corpus.out;
  }
  EXPECT_NE(corpus.out.find("quartiles"), std::string::npos) << corpus.out;

  const std::string ck = dir_.Sub("dirck");
  Outcome train = Model("train --out " + ck +
                        " --steps 3 --lanes 2 --memory 256 --layers 2"
                        " --d-model 32 --heads 2 --segment 32" +
                        data);
  ASSERT_EQ(train.status, 0) << train.out;
  EXPECT_NE(train.out.find("documents"), std::string::npos) << train.out;

  const std::string local = dir_.Sub("local.json"),
                    remote = dir_.Sub("remote.json");
  const std::string eval = "eval --checkpoint " + ck +
                           " --memory 0,256 --segments 20 --lanes 2" + data;
  Outcome exact = Model(eval + " --json " + local);
  ASSERT_EQ(exact.status, 0) << exact.out;
  Outcome approximate =
      Model(eval + " --json " + remote + " --server spawn --index approximate");
  ASSERT_EQ(approximate.status, 0) << approximate.out;
  EXPECT_NE(approximate.out.find("memory 256 approximate"), std::string::npos)
      << approximate.out;
  const Json a = EvalRows(local), b = EvalRows(remote);
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].at("approximate"), true) << b[1];
  EXPECT_EQ(a[1].at("approximate"), false) << a[1];
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(Field(a[i], "bits_per_byte"), Field(b[i], "bits_per_byte"),
                1e-4)
        << a[i] << "\n"
        << b[i];
    // The far repeats and the rest make up every byte read (the JSON has
    // six significant digits: 5e-6 here).
    const double bytes = Field(a[i], "bytes"), far = Field(a[i], "far_bytes");
    EXPECT_GT(far, 0) << a[i];
    EXPECT_LT(far, bytes) << a[i];
    EXPECT_NEAR(Field(a[i], "far_bits_per_byte") * far +
                    Field(a[i], "rest_bits_per_byte") * (bytes - far),
                Field(a[i], "bits_per_byte") * bytes, 2e-5 * bytes)
        << a[i];
  }
}

TEST_F(ModelCliTest, BadFlagsAreNamed) {
  Outcome r = Model("train --out " + dir_.Sub("x") + " --bogus 3" + shape_);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("--bogus"), std::string::npos) << r.out;
  r = Model("eval --memory 0");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("--checkpoint"), std::string::npos) << r.out;
  r = Model("train --out " + dir_.Sub("x") + " --mix sometimes" + shape_);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("--mix"), std::string::npos) << r.out;
  // eval takes the corpus's flags (not the shape's: --layers is unknown
  // to it).
  const std::string corpus = " --data " + dir_.path() + " --holdout 500";
  for (const std::string flag :
       {"--documents folders", "--index fuzzy", "--index approximate",
        "--min-bytes 10 --max-bytes 5"}) {
    r = Model("eval --checkpoint " + dir_.Sub("x") + " " + flag + corpus);
    EXPECT_EQ(r.status, 2) << flag;
    EXPECT_NE(r.out.find(flag.substr(0, flag.find(' '))), std::string::npos)
        << flag << ": " << r.out;
  }
  r = Model("fly");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.out.find("unknown command"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace knnmem::model
