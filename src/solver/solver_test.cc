// The solver with toy ops: each vertex's result is its value plus the sum of
// its inputs (BuildKit tests its solver the same way); a Ref serializes as
// the integer. Counters record which ops ran.
#include "solver/solver.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace kiln::solver {
namespace {

using util::Sha256Of;

// Long enough never to fire on a slow machine; a test that hits it fails
// instead of hanging.
constexpr auto kBoundedWait = std::chrono::seconds(60);

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kiln-solver-test-XXXXXX";
    KILN_CHECK(mkdtemp(tmpl) != nullptr, "mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class IntRef : public Ref {
 public:
  explicit IntRef(int64_t value) : value_(value) {}
  std::string Serialize() const override { return std::to_string(value_); }
  int64_t value() const { return value_; }

 private:
  int64_t value_;
};

int64_t ValueOf(const RefPtr& ref) { return static_cast<const IntRef&>(*ref).value(); }

Result<RefPtr> LoadInt(std::string_view serialized) {
  return RefPtr(std::make_shared<IntRef>(std::stoll(std::string(serialized))));
}

// Which ops ran Exec, by name.
class Counters {
 public:
  void Record(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    ++runs_[name];
  }
  int runs(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_[name];
  }
  std::set<std::string> ran() {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> names;
    for (auto& [name, n] : runs_) names.insert(name);
    return names;
  }
  void Reset() {
    std::lock_guard<std::mutex> lock(mu_);
    runs_.clear();
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> runs_;
};

class SumOp : public Op {
 public:
  SumOp(std::string name, int64_t value, Counters* counters)
      : name_(std::move(name)), value_(value), counters_(counters) {}

  // The op's identity (CacheMap digest and part of the vertex digest).
  std::string identity() const {
    return identity_override_.empty() ? "sum " + std::to_string(value_) : identity_override_;
  }

  Result<CacheMap> GetCacheMap(Context&) override {
    CacheMap map;
    map.digest = Sha256Of(identity());
    for (bool content : content_deps_) {
      Dep dep;
      if (content) {
        // Keys on the parity of the input's value only.
        dep.content = [](Context&, const RefPtr& input) -> Result<Digest> {
          return Sha256Of("parity " + std::to_string(ValueOf(input) % 2));
        };
      }
      map.deps.push_back(std::move(dep));
    }
    return map;
  }

  Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>& inputs) override {
    counters_->Record(name_);
    if (hook_) KILN_RETURN_IF_ERROR(hook_(ctx));
    int64_t sum = dynamic_value_ ? dynamic_value_->load() : value_;
    for (const RefPtr& in : inputs) sum += ValueOf(in);
    return std::vector<RefPtr>{std::make_shared<IntRef>(sum)};
  }

  bool cacheable() const override { return cacheable_; }

  std::string name_;
  int64_t value_;
  Counters* counters_;
  bool cacheable_ = true;
  std::string identity_override_;
  std::atomic<int64_t>* dynamic_value_ = nullptr;  // read at Exec when set
  std::vector<bool> content_deps_;                 // per input
  std::function<Status(Context&)> hook_;           // runs first in Exec
};

// Builds a vertex list; a vertex's digest covers its op's identity and its
// inputs' digests, as graph/ does.
class Graph {
 public:
  explicit Graph(Counters* counters) : counters_(counters) {}

  size_t Add(const std::string& name, int64_t value, std::vector<size_t> inputs = {}) {
    return AddOp(name, std::make_shared<SumOp>(name, value, counters_), std::move(inputs));
  }

  size_t AddOp(const std::string& name, std::shared_ptr<SumOp> op, std::vector<size_t> inputs) {
    Vertex v;
    v.name = name;
    std::string text = op->identity();
    for (size_t in : inputs) {
      v.inputs.push_back({in, 0});
      text += " " + vertices[in].digest.str();
    }
    v.digest = Sha256Of(text);
    v.op = std::move(op);
    vertices.push_back(std::move(v));
    return vertices.size() - 1;
  }

  SumOp& op(size_t i) { return static_cast<SumOp&>(*vertices[i].op); }

  std::vector<Vertex> vertices;

 private:
  Counters* counters_;
};

class SolverTest : public ::testing::Test {
 protected:
  std::shared_ptr<CacheStore> OpenStore() {
    auto store = CacheStore::Open(dir_.path() / "cache.db");
    KILN_CHECK(store.ok(), store.status().ToString());
    return *store;
  }

  Result<SolveResult> Solve(const Graph& g, std::vector<Edge> targets, SolveOptions options = {},
                            std::shared_ptr<CacheStore> store = {}, Loader loader = LoadInt) {
    Solver solver(std::move(store), std::move(loader));
    return solver.Solve(g.vertices, targets, options);
  }

  TempDir dir_;
  Counters counters_;
};

TEST_F(SolverTest, SumsWithoutCache) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  size_t c = g.Add("c", 3, {a});
  size_t d = g.Add("d", 4, {b, c});
  auto result = Solve(g, {{d, 0}});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->refs.size(), 1u);
  EXPECT_EQ(ValueOf(result->refs[0]), 4 + (2 + 1) + (3 + 1));
  EXPECT_EQ(result->stats.executed, 4);
  EXPECT_EQ(result->stats.cached, 0);
  EXPECT_EQ(counters_.runs("a"), 1);
}

TEST_F(SolverTest, SecondSolveExecutesNothing) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  size_t c = g.Add("c", 3, {a});
  size_t d = g.Add("d", 4, {b, c});
  auto first = Solve(g, {{d, 0}, {b, 0}}, {}, OpenStore());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->stats.executed, 4);

  counters_.Reset();
  // A fresh store object on the same file: what a second `kiln build` sees.
  auto second = Solve(g, {{d, 0}, {b, 0}}, {}, OpenStore());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->stats.executed, 0);
  EXPECT_TRUE(counters_.ran().empty());
  // Only the targets are loaded: a hit does not solve its inputs.
  EXPECT_EQ(second->stats.cached, 2);
  ASSERT_EQ(second->refs.size(), 2u);
  EXPECT_EQ(ValueOf(second->refs[0]), ValueOf(first->refs[0]));
  EXPECT_EQ(ValueOf(second->refs[0]), 11);
  EXPECT_EQ(ValueOf(second->refs[1]), 3);
  EXPECT_EQ(second->cache_keys, first->cache_keys);
}

TEST_F(SolverTest, ChangingALeafReexecutesExactlyTheDependentPath) {
  auto build = [&](int64_t a_value) {
    Graph g(&counters_);
    size_t a = g.Add("a", a_value);
    size_t x = g.Add("x", 10);
    size_t b = g.Add("b", 2, {a});
    size_t c = g.Add("c", 3, {x});
    g.Add("d", 4, {b, c});
    return g;
  };
  auto store = OpenStore();
  auto first = Solve(build(1), {{4, 0}}, {}, store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ValueOf(first->refs[0]), 4 + 2 + 1 + 3 + 10);

  counters_.Reset();
  auto second = Solve(build(5), {{4, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"a", "b", "d"}));
  EXPECT_EQ(second->stats.executed, 3);
  EXPECT_EQ(second->stats.cached, 1);  // c; x is not needed at all
  EXPECT_EQ(ValueOf(second->refs[0]), 4 + 2 + 5 + 3 + 10);
  EXPECT_NE(second->cache_keys, first->cache_keys);
}

TEST_F(SolverTest, EqualContentDigestKeepsDownstreamCached) {
  // ctx is like a local build context: never cached, its CacheMap digest
  // is fixed, and its result changes between solves. m keys on the parity
  // of ctx's result.
  std::atomic<int64_t> ctx_value{4};
  auto build = [&]() {
    Graph g(&counters_);
    auto ctx = std::make_shared<SumOp>("ctx", 0, &counters_);
    ctx->cacheable_ = false;
    ctx->identity_override_ = "local context";
    ctx->dynamic_value_ = &ctx_value;
    size_t c = g.AddOp("ctx", ctx, {});
    auto m = std::make_shared<SumOp>("m", 100, &counters_);
    m->content_deps_ = {true};
    size_t mi = g.AddOp("m", m, {c});
    g.Add("n", 1000, {mi});
    return g;
  };
  auto store = OpenStore();
  auto first = Solve(build(), {{2, 0}}, {}, store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->stats.executed, 3);
  EXPECT_EQ(ValueOf(first->refs[0]), 1104);
  auto records = store->List();
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 2u) << "the uncacheable ctx must not be saved";

  // Same parity: ctx runs (its result is needed for m's key), the rest hits.
  ctx_value = 6;
  counters_.Reset();
  auto second = Solve(build(), {{2, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"ctx"}));
  EXPECT_EQ(second->stats.cached, 1);
  EXPECT_EQ(ValueOf(second->refs[0]), 1104);
  EXPECT_EQ(second->cache_keys, first->cache_keys);

  // Other parity: the content digest changes, so m and n run again.
  ctx_value = 7;
  counters_.Reset();
  auto third = Solve(build(), {{2, 0}}, {}, store);
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"ctx", "m", "n"}));
  EXPECT_EQ(counters_.runs("ctx"), 1);
  EXPECT_EQ(ValueOf(third->refs[0]), 1107);
  EXPECT_NE(third->cache_keys, first->cache_keys);
}

// Regression: a content key needs only its content inputs' results. An op
// with a content input and a plain input (COPY from the build context onto
// an earlier step) once read the plain input's result before it existed.
TEST_F(SolverTest, ContentKeyBesideAPlainInput) {
  Graph g(&counters_);
  auto ctx = std::make_shared<SumOp>("ctx", 5, &counters_);
  ctx->cacheable_ = false;
  size_t c = g.AddOp("ctx", ctx, {});
  size_t base = g.Add("base", 10);
  auto copy = std::make_shared<SumOp>("copy", 100, &counters_);
  copy->content_deps_ = {false, true};
  size_t cp = g.AddOp("copy", copy, {base, c});
  auto store = OpenStore();
  auto first = Solve(g, {{cp, 0}}, {}, store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ValueOf(first->refs[0]), 115);
  counters_.Reset();
  auto second = Solve(g, {{cp, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"ctx"})) << "base is not needed";
  EXPECT_EQ(ValueOf(second->refs[0]), 115);
}

// --no-cache-filter on an earlier stage: a vertex that ignores the cache
// runs even when a vertex above it is cached (which is then still used).
TEST_F(SolverTest, IgnoreCacheBelowACachedVertexStillRuns) {
  auto build = [&](bool ignore) {
    Graph g(&counters_);
    size_t a = g.Add("a", 1);
    g.vertices[a].ignore_cache = ignore;
    size_t b = g.Add("b", 10, {a});
    g.Add("c", 100, {b});
    return g;
  };
  auto store = OpenStore();
  ASSERT_TRUE(Solve(build(false), {{2, 0}}, {}, store).ok());
  counters_.Reset();
  auto second = Solve(build(true), {{2, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"a"}));
  EXPECT_EQ(ValueOf(second->refs[0]), 111);
}

TEST_F(SolverTest, EqualDigestsAreSolvedOnce) {
  Graph g(&counters_);
  size_t a1 = g.Add("a", 1);
  size_t a2 = g.Add("a", 1);  // same digest
  ASSERT_EQ(g.vertices[a1].digest, g.vertices[a2].digest);
  size_t s = g.Add("s", 10, {a1, a2});
  auto result = Solve(g, {{s, 0}, {a1, 0}, {a2, 0}, {s, 0}}, {}, OpenStore());
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(counters_.runs("a"), 1);
  EXPECT_EQ(result->stats.executed, 2);
  EXPECT_EQ(ValueOf(result->refs[0]), 12);
  EXPECT_EQ(result->refs[1], result->refs[2]);  // the very same result
  EXPECT_EQ(result->refs[0], result->refs[3]);
}

TEST_F(SolverTest, IgnoreCacheRunsAndSaves) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  auto store = OpenStore();
  ASSERT_TRUE(Solve(g, {{b, 0}}, {}, store).ok());

  // b ignores the cache: it runs; its input comes from the cache.
  g.vertices[b].ignore_cache = true;
  counters_.Reset();
  auto second = Solve(g, {{b, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"b"}));
  EXPECT_EQ(second->stats.cached, 1);
  EXPECT_EQ(ValueOf(second->refs[0]), 3);

  // With an empty store, ignore_cache still saves what it ran.
  ASSERT_TRUE(store->Clear().ok());
  g.vertices[a].ignore_cache = true;
  counters_.Reset();
  ASSERT_TRUE(Solve(g, {{b, 0}}, {}, store).ok());
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"a", "b"}));
  g.vertices[a].ignore_cache = false;
  g.vertices[b].ignore_cache = false;
  counters_.Reset();
  auto fourth = Solve(g, {{b, 0}}, {}, store);
  ASSERT_TRUE(fourth.ok()) << fourth.status().ToString();
  EXPECT_EQ(fourth->stats.executed, 0);
  EXPECT_EQ(fourth->stats.cached, 1);
}

TEST_F(SolverTest, LoaderNotFoundIsAMissAndDropsTheRecord) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  auto store = OpenStore();
  auto first = Solve(g, {{b, 0}}, {}, store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();

  // b's result ("3") is gone; a's ("1") is still there.
  std::atomic<int> not_found{0};
  Loader loader = [&](std::string_view s) -> Result<RefPtr> {
    if (s == "3") {
      ++not_found;
      return Status::NotFound("snapshot 3 was pruned");
    }
    return LoadInt(s);
  };
  counters_.Reset();
  auto second = Solve(g, {{b, 0}}, {}, store, loader);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(not_found, 1);
  EXPECT_EQ(counters_.ran(), (std::set<std::string>{"b"}));
  EXPECT_EQ(second->stats.cached, 1);
  EXPECT_EQ(ValueOf(second->refs[0]), 3);
  // The re-run saved a fresh record under the same key.
  auto record = store->Lookup(first->cache_keys[0]);
  ASSERT_TRUE(record.ok());
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->results, std::vector<std::string>{"3"});
}

TEST_F(SolverTest, LoaderErrorFailsTheBuild) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  auto store = OpenStore();
  ASSERT_TRUE(Solve(g, {{a, 0}}, {}, store).ok());
  Loader loader = [](std::string_view) -> Result<RefPtr> {
    return Status::IOError("/var/lib/kiln/snapshots/1: permission denied");
  };
  auto result = Solve(g, {{a, 0}}, {}, store, loader);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kIOError);
  EXPECT_EQ(result.status().message(), "a: /var/lib/kiln/snapshots/1: permission denied");
}

TEST_F(SolverTest, CacheKeyEncoding) {
  // docs/cache.md: sha256 of the versioned text encoding.
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  auto m = std::make_shared<SumOp>("m", 3, &counters_);
  m->content_deps_ = {true};
  size_t c = g.AddOp("m", m, {b});
  auto result = Solve(g, {{a, 0}, {b, 0}, {c, 0}});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  Digest key_a = Sha256Of("kiln-cache-key-v1\nop " + Sha256Of("sum 1").str() + "\n");
  Digest key_b = Sha256Of("kiln-cache-key-v1\nop " + Sha256Of("sum 2").str() + "\ninput " +
                          key_a.str() + " 0 -\n");
  Digest key_c = Sha256Of("kiln-cache-key-v1\nop " + Sha256Of("sum 3").str() + "\ninput " +
                          key_b.str() + " 0 " + Sha256Of("parity 1").str() + "\n");
  EXPECT_EQ(result->cache_keys, (std::vector<Digest>{key_a, key_b, key_c}));
}

TEST_F(SolverTest, FailureIsAnnotatedWithTheVertexName) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("[stage-0 2/3] RUN make", 2, {a});
  g.op(b).hook_ = [](Context&) { return Status::ExecFailed("process exited with status 2", 2); };
  size_t c = g.Add("c", 3, {b});
  auto store = OpenStore();
  auto result = Solve(g, {{c, 0}}, {}, store);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kExecFailed);
  EXPECT_EQ(result.status().exit_code(), 2);
  EXPECT_EQ(result.status().message(), "[stage-0 2/3] RUN make: process exited with status 2");
  EXPECT_EQ(counters_.runs("c"), 0);
  auto records = store->List();
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 1u);  // only a
}

// Blocks until `cancel` fires (true) or the bounded wait ends (false).
bool WaitCancelled(util::Canceller* cancel) {
  std::mutex mu;
  std::condition_variable cv;
  bool fired = false;
  util::CancelScope scope(cancel, [&] {
    std::lock_guard<std::mutex> lock(mu);
    fired = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu);
  return cv.wait_for(lock, kBoundedWait, [&] { return fired; });
}

// A latch with a bounded wait.
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--count_ <= 0) cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, kBoundedWait, [&] { return count_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_;
};

TEST_F(SolverTest, IndependentBranchesRunInParallel) {
  Graph g(&counters_);
  Latch both(2);
  auto arrive = [&](Context&) -> Status {
    both.CountDown();
    if (!both.Wait()) return Status::Internal("the other branch never started");
    return Status::Ok();
  };
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2);
  g.op(a).hook_ = arrive;
  g.op(b).hook_ = arrive;
  size_t s = g.Add("s", 0, {a, b});
  std::atomic<int> in_progress{0};
  std::atomic<bool> overlapped{false};
  SolveOptions options;
  options.parallelism = 2;
  options.progress = [&](const Event&) {
    if (in_progress.fetch_add(1) != 0) overlapped = true;
    std::this_thread::yield();
    in_progress.fetch_sub(1);
  };
  auto result = Solve(g, {{s, 0}}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(ValueOf(result->refs[0]), 3);
  EXPECT_FALSE(overlapped) << "progress was called concurrently";
}

TEST_F(SolverTest, FailingBranchCancelsARunningSibling) {
  Graph g(&counters_);
  Latch started(1);
  std::atomic<bool> sibling_cancelled{false};
  std::atomic<bool> sibling_returned{false};
  size_t slow = g.Add("slow", 1);
  g.op(slow).hook_ = [&](Context& ctx) -> Status {
    started.CountDown();
    sibling_cancelled = WaitCancelled(ctx.cancel);
    sibling_returned = true;
    return ctx.cancel->Check();
  };
  size_t bad = g.Add("bad", 2);
  g.op(bad).hook_ = [&](Context&) -> Status {
    if (!started.Wait()) return Status::Internal("slow never started");
    return Status::ExecFailed("exit status 1", 1);
  };
  size_t s = g.Add("s", 0, {slow, bad});
  SolveOptions options;
  options.parallelism = 2;
  auto result = Solve(g, {{s, 0}}, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kExecFailed);
  EXPECT_EQ(result.status().message(), "bad: exit status 1");
  EXPECT_TRUE(sibling_cancelled);
  EXPECT_TRUE(sibling_returned) << "Solve returned before a running op";
}

TEST_F(SolverTest, ExternalCancelStopsTheBuild) {
  Graph g(&counters_);
  util::Canceller cancel;
  std::atomic<bool> op_cancelled{false};
  std::atomic<bool> op_returned{false};
  size_t a = g.Add("a", 1);
  g.op(a).hook_ = [&](Context& ctx) -> Status {
    op_cancelled = WaitCancelled(ctx.cancel);
    op_returned = true;
    return ctx.cancel->Check();
  };
  size_t b = g.Add("b", 2, {a});
  SolveOptions options;
  options.cancel = &cancel;
  std::vector<Event::Kind> kinds;
  std::thread interrupter;  // plays the CLI's signal handler
  options.progress = [&](const Event& e) {
    kinds.push_back(e.kind);
    if (e.kind == Event::Kind::kStarted) {
      interrupter = std::thread([&cancel] { cancel.Cancel("interrupted by SIGINT"); });
    }
  };
  auto result = Solve(g, {{b, 0}}, options);
  ASSERT_TRUE(interrupter.joinable());
  interrupter.join();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(result.status().message(), "interrupted by SIGINT");
  EXPECT_TRUE(op_cancelled);
  EXPECT_TRUE(op_returned);
  EXPECT_EQ(counters_.runs("b"), 0);
  EXPECT_EQ(kinds, (std::vector<Event::Kind>{Event::Kind::kStarted, Event::Kind::kError}));

  // Already cancelled: nothing runs.
  counters_.Reset();
  auto again = Solve(g, {{b, 0}}, options);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kCancelled);
  EXPECT_TRUE(counters_.ran().empty());
}

TEST_F(SolverTest, ProgressEvents) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  g.op(a).hook_ = [](Context& ctx) {
    ctx.log("hello\n");
    return Status::Ok();
  };
  std::vector<Event> events;
  SolveOptions options;
  options.progress = [&](const Event& e) { events.push_back(e); };
  auto store = OpenStore();
  ASSERT_TRUE(Solve(g, {{a, 0}}, options, store).ok());
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, Event::Kind::kStarted);
  EXPECT_EQ(events[1].kind, Event::Kind::kLog);
  EXPECT_EQ(events[1].data, "hello\n");
  EXPECT_EQ(events[2].kind, Event::Kind::kCompleted);
  for (const Event& e : events) {
    EXPECT_EQ(e.vertex, a);
    EXPECT_EQ(e.name, "a");
  }

  events.clear();
  ASSERT_TRUE(Solve(g, {{a, 0}}, options, store).ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Event::Kind::kCached);
  EXPECT_EQ(events[0].name, "a");
}

TEST_F(SolverTest, ParallelismBoundsRunningOps) {
  Graph g(&counters_);
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::vector<size_t> leaves;
  for (int i = 0; i < 8; ++i) {
    size_t leaf = g.Add("leaf" + std::to_string(i), i);
    g.op(leaf).hook_ = [&](Context&) {
      int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::yield();
      --running;
      return Status::Ok();
    };
    leaves.push_back(leaf);
  }
  size_t s = g.Add("s", 0, leaves);
  SolveOptions options;
  options.parallelism = 3;
  auto result = Solve(g, {{s, 0}}, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(ValueOf(result->refs[0]), 0 + 1 + 2 + 3 + 4 + 5 + 6 + 7);
  EXPECT_GE(most.load(), 1);
  EXPECT_LE(most.load(), 3);
}

// An op with two outputs: its value and its value times ten.
class PairOp : public Op {
 public:
  explicit PairOp(int64_t value) : value_(value) {}
  Result<CacheMap> GetCacheMap(Context&) override {
    return CacheMap{Sha256Of("pair " + std::to_string(value_)), {}};
  }
  Result<std::vector<RefPtr>> Exec(Context&, const std::vector<RefPtr>&) override {
    return std::vector<RefPtr>{std::make_shared<IntRef>(value_),
                               std::make_shared<IntRef>(value_ * 10)};
  }

 private:
  int64_t value_;
};

TEST_F(SolverTest, EdgesSelectOutputs) {
  Graph g(&counters_);
  Vertex pair;
  pair.name = "pair";
  pair.digest = Sha256Of("pair vertex");
  pair.op = std::make_shared<PairOp>(7);
  g.vertices.push_back(pair);
  size_t b = g.Add("b", 1);
  g.vertices[b].inputs = {{0, 1}, {0, 0}};
  g.vertices[b].digest = Sha256Of("b over both outputs");
  auto store = OpenStore();
  for (int round = 0; round < 2; ++round) {
    auto result = Solve(g, {{b, 0}, {0, 1}}, {}, store);
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(ValueOf(result->refs[0]), 1 + 70 + 7);
    EXPECT_EQ(ValueOf(result->refs[1]), 70);
  }
  // Both outputs were saved in one record.
  auto record = store->Lookup(Sha256Of("kiln-cache-key-v1\nop " + Sha256Of("pair 7").str() + "\n"));
  ASSERT_TRUE(record.ok());
  ASSERT_TRUE(record->has_value());
  EXPECT_EQ((*record)->results, (std::vector<std::string>{"7", "70"}));
}

TEST_F(SolverTest, AnExceptionFromAnOpIsAnError) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  g.op(a).hook_ = [](Context&) -> Status { throw std::runtime_error("boom"); };
  auto result = Solve(g, {{a, 0}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
  EXPECT_EQ(result.status().message(), "a: op threw an exception: boom");
}

// An op whose GetCacheMap fails (e.g. a COPY source that does not exist).
class BadMapOp : public Op {
 public:
  Result<CacheMap> GetCacheMap(Context&) override {
    return Status::NotFound("COPY source \"missing.txt\" not found in the build context");
  }
  Result<std::vector<RefPtr>> Exec(Context&, const std::vector<RefPtr>&) override {
    return Status::Internal("Exec must not be called");
  }
};

TEST_F(SolverTest, CacheMapErrorIsAnnotated) {
  Graph g(&counters_);
  Vertex v;
  v.name = "[stage-0 3/3] COPY missing.txt /";
  v.digest = Sha256Of("bad map");
  v.op = std::make_shared<BadMapOp>();
  g.vertices.push_back(v);
  std::vector<Event> events;
  SolveOptions options;
  options.progress = [&](const Event& e) { events.push_back(e); };
  auto result = Solve(g, {{0, 0}}, options, OpenStore());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Event::Kind::kError);
  EXPECT_EQ(events[0].data, "COPY source \"missing.txt\" not found in the build context");
  EXPECT_EQ(result.status().message(),
            "[stage-0 3/3] COPY missing.txt /: COPY source \"missing.txt\" not found in the "
            "build context");
}

TEST_F(SolverTest, TenThousandVertexChain) {
  Graph g(&counters_);
  size_t last = g.Add("v0", 1);
  for (int i = 1; i < 10'000; ++i) last = g.Add("v" + std::to_string(i), 1, {last});
  auto store = OpenStore();
  auto first = Solve(g, {{last, 0}}, {}, store);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ValueOf(first->refs[0]), 10'000);
  EXPECT_EQ(first->stats.executed, 10'000);

  auto second = Solve(g, {{last, 0}}, {}, store);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->stats.executed, 0);
  EXPECT_EQ(second->stats.cached, 1);
  EXPECT_EQ(ValueOf(second->refs[0]), 10'000);
}

TEST_F(SolverTest, InputNamingALaterVertexIsInvalid) {
  Graph g(&counters_);
  g.Add("a", 1);
  g.Add("b", 2);
  g.vertices[0].inputs.push_back({1, 0});
  auto result = Solve(g, {{1, 0}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "vertex 0 (\"a\") input 0 names vertex 1, which is not earlier in the list");
  EXPECT_TRUE(counters_.ran().empty());
}

TEST_F(SolverTest, TargetOutOfRangeIsInvalid) {
  Graph g(&counters_);
  g.Add("a", 1);
  auto result = Solve(g, {{3, 0}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "target 0 names vertex 3, but there are only 1 vertices");
}

TEST_F(SolverTest, EdgeToAMissingOutputIsInvalid) {
  Graph g(&counters_);
  size_t a = g.Add("a", 1);
  size_t b = g.Add("b", 2, {a});
  g.vertices[b].inputs[0].output = 1;
  auto result = Solve(g, {{b, 0}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "b: input 0 names output 1 of \"a\", which has 1 outputs");
}

}  // namespace
}  // namespace kiln::solver
