// How Solve works.
//
// One coordinator (the thread that called Solve) owns every node's state;
// a bounded pool of workers runs the slow parts (GetCacheMap, content
// digests, cache lookups, Exec). A job runs on a worker and returns an
// "apply" step that the coordinator runs to record what the job found, so
// node state needs no locking. Propagation ("this node now wants its input's
// key", "this input's result is ready") goes through a worklist, never
// through recursion, so graph depth costs no stack.
//
// Per node, two demands travel down the graph:
//   want_key:    its cache key is needed (by a dependent's key, or because
//                its result is needed): run GetCacheMap, want the inputs'
//                keys, want the results of content-dep inputs, then hash.
//   want_result: its result is needed (a target, a dependent that missed
//                the cache, or a dependent's content dep): look the key up;
//                on a miss want every input's result, then Exec and save.
// A cache hit therefore never demands anything of its inputs' results.
#include "solver/solver.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace kiln::solver {
namespace {

using Clock = std::chrono::steady_clock;

// Runs on the coordinator after a job has finished.
using Apply = std::function<void()>;
// Runs on a worker; returns the step that records its outcome.
using Job = std::function<Apply()>;

// One input of a cache key: see docs/cache.md for the encoding.
struct KeyInput {
  Digest key;
  int output = 0;
  Digest content;  // empty: the Dep asks for no content digest
};

Digest ComputeCacheKey(const Digest& op, const std::vector<KeyInput>& inputs) {
  std::string text = "kiln-cache-key-v1\nop " + op.str() + "\n";
  for (const KeyInput& in : inputs) {
    text += "input " + in.key.str() + " " + std::to_string(in.output) + " " +
            (in.content.empty() ? std::string("-") : in.content.str()) + "\n";
  }
  return util::Sha256Of(text);
}

// Calls into an op, turning a stray exception into a Status so none
// escapes a worker thread.
template <typename T, typename F>
Result<T> Guard(F&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("op threw an exception: ") + e.what());
  } catch (...) {
    return Status::Internal("op threw an exception");
  }
}

struct Node {
  size_t vertex = 0;  // the first index in the Solve list with this digest
  const Vertex* v = nullptr;
  std::vector<Edge> inputs;        // Edge::vertex is a node index here
  std::vector<size_t> dependents;  // nodes with this one as an input

  // The vertex ignores the cache, or an input does (transitively): its
  // result is solved before any vertex above it is looked up in the cache.
  bool must_run = false;

  bool want_key = false;
  bool want_result = false;

  bool map_started = false;
  std::optional<CacheMap> map;
  bool key_started = false;
  std::optional<Digest> key;

  bool lookup_started = false;
  bool lookup_done = false;  // a miss (or no lookup applies)
  bool exec_started = false;
  std::optional<std::vector<RefPtr>> outputs;
};

class Run;

// Lets a cancel callback reach a Run only while it is alive.
struct ExternalLink {
  std::mutex mu;
  Run* run = nullptr;  // null once Solve is returning
};

class Run {
 public:
  Run(CacheStore* cache, const Loader& loader, const SolveOptions& options)
      : cache_(cache), loader_(loader), options_(options) {}

  Result<SolveResult> Solve(const std::vector<Vertex>& vertices, const std::vector<Edge>& targets);
  // SolveOptions::cancel fired (called on the cancelling thread).
  void OnExternalCancel(const std::string& why);

 private:
  Status Build(const std::vector<Vertex>& vertices, const std::vector<Edge>& targets);
  void Loop();
  void Advance(size_t n);
  void WantKey(size_t n);
  void WantResult(size_t n);
  void ComputeKey(size_t n);
  // The input refs of `n` in input order; an error when an edge names an
  // output its vertex does not have.
  Result<std::vector<RefPtr>> InputRefs(size_t n, bool content_only = false);
  void ScheduleMap(size_t n);
  void ScheduleContentKey(size_t n, std::vector<RefPtr> inputs);
  void ScheduleLookup(size_t n);
  void ScheduleExec(size_t n, std::vector<RefPtr> inputs);
  void Schedule(Job job);
  void SetKey(size_t n, Digest key);
  void SetOutputs(size_t n, std::vector<RefPtr> outputs);
  // Records the first failure and cancels the rest of the build. A failure
  // outside Exec (which reports its own) is also reported as kError.
  void Fail(size_t n, const Status& status, bool report = true);
  void Stop(Status status);
  void Worker();
  Context MakeContext(size_t n);
  void Emit(Event event);
  std::string Name(size_t n) const;

  CacheStore* cache_;
  const Loader& loader_;
  const SolveOptions& options_;

  // Coordinator-only state.
  std::vector<Node> nodes_;
  std::vector<Edge> targets_;  // Edge::vertex is a node index
  std::deque<size_t> worklist_;
  std::optional<Status> error_;
  SolveStats stats_;
  size_t running_ = 0;  // jobs queued or running

  util::Canceller build_cancel_;  // seen by ops as Context::cancel

  std::mutex mu_;                    // guards the fields below
  std::condition_variable work_cv_;  // workers: jobs_ or stop_ changed
  std::condition_variable done_cv_;  // coordinator: completions_ or external cancel
  std::deque<Job> jobs_;
  std::deque<Apply> completions_;
  bool stop_ = false;
  bool external_cancelled_ = false;

  std::mutex progress_mu_;  // serializes options_.progress
};

std::string Run::Name(size_t n) const {
  const Vertex& v = *nodes_[n].v;
  return v.name.empty() ? v.digest.str() : v.name;
}

Status Run::Build(const std::vector<Vertex>& vertices, const std::vector<Edge>& targets) {
  std::unordered_map<std::string, size_t> by_digest;
  std::vector<size_t> node_of(vertices.size());
  for (size_t i = 0; i < vertices.size(); ++i) {
    const Vertex& v = vertices[i];
    std::string where = "vertex " + std::to_string(i) + " (\"" + v.name + "\")";
    if (v.digest.empty()) return Status::InvalidArgument(where + " has no digest");
    if (!v.op) return Status::InvalidArgument(where + " has no op");
    for (size_t j = 0; j < v.inputs.size(); ++j) {
      const Edge& in = v.inputs[j];
      if (in.vertex >= i) {
        return Status::InvalidArgument(where + " input " + std::to_string(j) + " names vertex " +
                                       std::to_string(in.vertex) +
                                       ", which is not earlier in the list");
      }
      if (in.output < 0) {
        return Status::InvalidArgument(where + " input " + std::to_string(j) + " names output " +
                                       std::to_string(in.output));
      }
    }
    auto [it, inserted] = by_digest.emplace(v.digest.str(), nodes_.size());
    node_of[i] = it->second;
    if (!inserted) continue;
    Node node;
    node.vertex = i;
    node.v = &v;
    node.must_run = v.ignore_cache;
    for (const Edge& in : v.inputs) {
      node.inputs.push_back({node_of[in.vertex], in.output});
      node.must_run |= nodes_[node_of[in.vertex]].must_run;
    }
    nodes_.push_back(std::move(node));
  }
  for (size_t n = 0; n < nodes_.size(); ++n) {
    for (const Edge& in : nodes_[n].inputs) nodes_[in.vertex].dependents.push_back(n);
  }
  for (size_t t = 0; t < targets.size(); ++t) {
    const Edge& target = targets[t];
    if (target.vertex >= vertices.size()) {
      return Status::InvalidArgument("target " + std::to_string(t) + " names vertex " +
                                     std::to_string(target.vertex) + ", but there are only " +
                                     std::to_string(vertices.size()) + " vertices");
    }
    if (target.output < 0) {
      return Status::InvalidArgument("target " + std::to_string(t) + " names output " +
                                     std::to_string(target.output));
    }
    targets_.push_back({node_of[target.vertex], target.output});
  }
  return Status::Ok();
}

Result<SolveResult> Run::Solve(const std::vector<Vertex>& vertices,
                               const std::vector<Edge>& targets) {
  KILN_RETURN_IF_ERROR(Build(vertices, targets));
  if (options_.cancel != nullptr) KILN_RETURN_IF_ERROR(options_.cancel->Check());

  int parallelism = options_.parallelism;
  if (parallelism <= 0) {
    parallelism = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  }
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(parallelism));
  for (int i = 0; i < parallelism; ++i) workers.emplace_back([this] { Worker(); });
  {
    // An external cancel stops scheduling and reaches running ops. The
    // callback may still be running on the cancelling thread after the
    // scope is gone, so it reaches this Run through `link`, which is
    // detached (under its lock) before Solve returns.
    auto link = std::make_shared<ExternalLink>();
    link->run = this;
    util::CancelScope scope(options_.cancel, [link, cancel = options_.cancel] {
      std::lock_guard<std::mutex> guard(link->mu);
      if (link->run != nullptr) link->run->OnExternalCancel(cancel->Check().message());
    });
    Loop();
    std::lock_guard<std::mutex> guard(link->mu);
    link->run = nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    work_cv_.notify_all();
  }
  for (std::thread& t : workers) t.join();
  if (error_) return *error_;

  SolveResult result;
  result.stats = stats_;
  for (const Edge& target : targets_) {
    const Node& node = nodes_[target.vertex];
    KILN_CHECK(node.outputs && node.key, "solver finished without a target's result");
    if (static_cast<size_t>(target.output) >= node.outputs->size()) {
      return Status::InvalidArgument(Name(target.vertex) + ": a target names output " +
                                     std::to_string(target.output) + " but the vertex has " +
                                     std::to_string(node.outputs->size()) + " outputs");
    }
    result.refs.push_back((*node.outputs)[static_cast<size_t>(target.output)]);
    result.cache_keys.push_back(*node.key);
  }
  return result;
}

void Run::Loop() {
  for (const Edge& target : targets_) WantResult(target.vertex);
  for (;;) {
    while (!worklist_.empty()) {
      size_t n = worklist_.front();
      worklist_.pop_front();
      Advance(n);
    }
    bool done = std::all_of(targets_.begin(), targets_.end(),
                            [this](const Edge& t) { return nodes_[t.vertex].outputs.has_value(); });
    if (running_ == 0) {
      if (error_ || done) return;
      KILN_CHECK(false, "solver stalled: nothing running and the targets are not solved");
    }
    Apply apply;
    {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock,
                    [this] { return !completions_.empty() || (external_cancelled_ && !error_); });
      if (completions_.empty()) {
        lock.unlock();
        Stop(options_.cancel->Check());
        continue;
      }
      apply = std::move(completions_.front());
      completions_.pop_front();
    }
    --running_;
    apply();
  }
}

void Run::WantKey(size_t n) {
  if (nodes_[n].want_key) return;
  nodes_[n].want_key = true;
  worklist_.push_back(n);
}

void Run::WantResult(size_t n) {
  if (nodes_[n].want_result) return;
  nodes_[n].want_key = true;
  nodes_[n].want_result = true;
  worklist_.push_back(n);
}

void Run::Advance(size_t n) {
  Node& node = nodes_[n];
  if (error_ || !node.want_key) return;

  // The key: the op's CacheMap, the inputs' keys and content digests.
  if (!node.map_started) {
    node.map_started = true;
    ScheduleMap(n);
    for (const Edge& in : node.inputs) WantKey(in.vertex);
  }
  if (!node.map) return;
  if (!node.key) {
    bool ready = true;
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      const Node& input = nodes_[node.inputs[i].vertex];
      if (!input.key) ready = false;
      if (!node.map->deps.empty() && node.map->deps[i].content) {
        WantResult(node.inputs[i].vertex);
        if (!input.outputs) ready = false;
      }
    }
    if (!ready || node.key_started) return;
    node.key_started = true;
    ComputeKey(n);
    if (!node.key) return;  // a content digest is being computed
  }

  // The result: the cache, or Exec over the inputs' results.
  if (!node.want_result || node.outputs) return;
  if (!node.lookup_done) {
    bool lookup = cache_ != nullptr && node.v->op->cacheable() && !node.v->ignore_cache;
    if (lookup) {
      if (!node.lookup_started) {
        // An input that must run runs even when this vertex is cached.
        bool inputs_ran = true;
        for (const Edge& in : node.inputs) {
          if (!nodes_[in.vertex].must_run) continue;
          WantResult(in.vertex);
          if (!nodes_[in.vertex].outputs) inputs_ran = false;
        }
        if (!inputs_ran) return;
        node.lookup_started = true;
        ScheduleLookup(n);
      }
      return;
    }
    node.lookup_done = true;
  }
  bool ready = true;
  for (const Edge& in : node.inputs) {
    WantResult(in.vertex);
    if (!nodes_[in.vertex].outputs) ready = false;
  }
  if (!ready || node.exec_started) return;
  node.exec_started = true;
  auto inputs = InputRefs(n);
  if (!inputs.ok()) return Fail(n, inputs.status());
  ScheduleExec(n, std::move(*inputs));
}

Result<std::vector<RefPtr>> Run::InputRefs(size_t n, bool content_only) {
  std::vector<RefPtr> refs;
  const Node& node = nodes_[n];
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const Edge& in = node.inputs[i];
    if (content_only && !node.map->deps[i].content) {
      refs.push_back(nullptr);  // not solved for the key: only content deps are
      continue;
    }
    KILN_CHECK(nodes_[in.vertex].outputs.has_value(), "input result used before it was solved");
    const std::vector<RefPtr>& outputs = *nodes_[in.vertex].outputs;
    if (static_cast<size_t>(in.output) >= outputs.size()) {
      return Status::InvalidArgument(
          "input " + std::to_string(i) + " names output " + std::to_string(in.output) + " of \"" +
          Name(in.vertex) + "\", which has " + std::to_string(outputs.size()) + " outputs");
    }
    refs.push_back(outputs[static_cast<size_t>(in.output)]);
  }
  return refs;
}

void Run::ComputeKey(size_t n) {
  Node& node = nodes_[n];
  const CacheMap& map = *node.map;
  bool content = std::any_of(map.deps.begin(), map.deps.end(),
                             [](const Dep& d) { return static_cast<bool>(d.content); });
  if (!content) {
    std::vector<KeyInput> inputs;
    for (const Edge& in : node.inputs) inputs.push_back({*nodes_[in.vertex].key, in.output, {}});
    return SetKey(n, ComputeCacheKey(map.digest, inputs));
  }
  auto refs = InputRefs(n, /*content_only=*/true);
  if (!refs.ok()) return Fail(n, refs.status());
  ScheduleContentKey(n, std::move(*refs));
}

void Run::SetKey(size_t n, Digest key) {
  nodes_[n].key = std::move(key);
  worklist_.push_back(n);
  for (size_t d : nodes_[n].dependents) worklist_.push_back(d);
}

void Run::SetOutputs(size_t n, std::vector<RefPtr> outputs) {
  nodes_[n].outputs = std::move(outputs);
  for (size_t d : nodes_[n].dependents) worklist_.push_back(d);
}

void Run::ScheduleMap(size_t n) {
  std::shared_ptr<Op> op = nodes_[n].v->op;
  size_t inputs = nodes_[n].inputs.size();
  Schedule([this, n, op, inputs]() -> Apply {
    Context ctx = MakeContext(n);
    Result<CacheMap> map = Guard<CacheMap>([&] { return op->GetCacheMap(ctx); });
    if (map.ok() && map->digest.empty()) {
      map = Status::Internal("op returned a CacheMap without a digest");
    }
    if (map.ok() && !map->deps.empty() && map->deps.size() != inputs) {
      map = Status::Internal("op's CacheMap has " + std::to_string(map->deps.size()) +
                             " deps for " + std::to_string(inputs) + " inputs");
    }
    return [this, n, map = std::move(map)]() mutable {
      if (!map.ok()) return Fail(n, map.status());
      nodes_[n].map = std::move(*map);
      worklist_.push_back(n);
    };
  });
}

void Run::ScheduleContentKey(size_t n, std::vector<RefPtr> refs) {
  const Node& node = nodes_[n];
  std::vector<KeyInput> inputs;
  for (const Edge& in : node.inputs) inputs.push_back({*nodes_[in.vertex].key, in.output, {}});
  Schedule([this, n, map = *node.map, refs = std::move(refs),
            inputs = std::move(inputs)]() mutable -> Apply {
    Context ctx = MakeContext(n);
    Status status;
    for (size_t i = 0; i < inputs.size() && status.ok(); ++i) {
      if (!map.deps[i].content) continue;
      Result<Digest> digest = Guard<Digest>([&] { return map.deps[i].content(ctx, refs[i]); });
      if (!digest.ok()) {
        status = digest.status();
      } else if (digest->empty()) {
        status = Status::Internal("content digest of input " + std::to_string(i) + " is empty");
      } else {
        inputs[i].content = *digest;
      }
    }
    Digest key;
    if (status.ok()) key = ComputeCacheKey(map.digest, inputs);
    return [this, n, status, key]() {
      if (!status.ok()) return Fail(n, status);
      SetKey(n, key);
    };
  });
}

void Run::ScheduleLookup(size_t n) {
  Digest key = *nodes_[n].key;
  Schedule([this, n, key]() -> Apply {
    // nullopt outputs with an OK status: a miss.
    auto lookup = [&]() -> Result<std::optional<std::vector<RefPtr>>> {
      KILN_ASSIGN_OR_RETURN(std::optional<CacheRecord> record, cache_->Lookup(key));
      if (!record) return std::optional<std::vector<RefPtr>>();
      std::vector<RefPtr> refs;
      for (const std::string& serialized : record->results) {
        Result<RefPtr> ref = Guard<RefPtr>([&] { return loader_(serialized); });
        if (ref.ok() && *ref == nullptr) ref = Status::Internal("loader returned a null ref");
        if (!ref.ok() && ref.status().code() == StatusCode::kNotFound) {
          // What the record named is gone: drop it and run the op.
          KILN_RETURN_IF_ERROR(cache_->Delete(key));
          return std::optional<std::vector<RefPtr>>();
        }
        if (!ref.ok()) return ref.status();
        refs.push_back(std::move(*ref));
      }
      return std::optional<std::vector<RefPtr>>(std::move(refs));
    };
    auto found = lookup();
    return [this, n, found = std::move(found)]() mutable {
      if (!found.ok()) return Fail(n, found.status());
      Node& node = nodes_[n];
      node.lookup_done = true;
      if (*found) {
        ++stats_.cached;
        Emit({Event::Kind::kCached, node.vertex, node.v->name, "", {}});
        SetOutputs(n, std::move(**found));
      } else {
        worklist_.push_back(n);
      }
    };
  });
}

void Run::ScheduleExec(size_t n, std::vector<RefPtr> inputs) {
  const Node& node = nodes_[n];
  std::shared_ptr<Op> op = node.v->op;
  bool save = cache_ != nullptr && op->cacheable();
  Digest key = *node.key;
  Schedule([this, n, op, save, key, inputs = std::move(inputs), vertex = node.vertex,
            name = node.v->name]() -> Apply {
    Context ctx = MakeContext(n);
    Emit({Event::Kind::kStarted, vertex, name, "", {}});
    Clock::time_point start = Clock::now();
    auto outputs = Guard<std::vector<RefPtr>>([&] { return op->Exec(ctx, inputs); });
    if (outputs.ok()) {
      bool has_null = std::any_of(outputs->begin(), outputs->end(),
                                  [](const RefPtr& r) { return r == nullptr; });
      if (outputs->empty() || has_null) outputs = Status::Internal("op returned no result");
    }
    if (outputs.ok() && save) {
      std::vector<std::string> serialized;
      for (const RefPtr& ref : *outputs) serialized.push_back(ref->Serialize());
      bool cacheable = std::none_of(serialized.begin(), serialized.end(),
                                    [](const std::string& s) { return s.empty(); });
      if (cacheable) {
        Status saved = cache_->Save(key, serialized);
        if (!saved.ok()) outputs = saved;
      }
    }
    Event done{outputs.ok() ? Event::Kind::kCompleted : Event::Kind::kError, vertex, name,
               outputs.ok() ? "" : outputs.status().message(), Clock::now() - start};
    Emit(std::move(done));
    return [this, n, outputs = std::move(outputs)]() mutable {
      ++stats_.executed;
      if (!outputs.ok()) return Fail(n, outputs.status(), /*report=*/false);
      SetOutputs(n, std::move(*outputs));
    };
  });
}

void Run::Schedule(Job job) {
  ++running_;
  std::lock_guard<std::mutex> lock(mu_);
  jobs_.push_back(std::move(job));
  work_cv_.notify_one();
}

void Run::Fail(size_t n, const Status& status, bool report) {
  if (error_) return;
  if (report)
    Emit({Event::Kind::kError, nodes_[n].vertex, nodes_[n].v->name, status.message(), {}});
  // An op that fails because the user cancelled reports the cancellation.
  if (options_.cancel != nullptr && options_.cancel->cancelled()) {
    return Stop(options_.cancel->Check());
  }
  Stop(status.Annotate(Name(n)));
}

void Run::Stop(Status status) {
  if (error_) return;
  error_ = status;
  build_cancel_.Cancel("build cancelled: " + status.message());
  std::lock_guard<std::mutex> lock(mu_);
  running_ -= jobs_.size();  // queued jobs never start
  jobs_.clear();
}

void Run::Worker() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    Apply apply = job();
    lock.lock();
    completions_.push_back(std::move(apply));
    done_cv_.notify_one();
  }
}

void Run::OnExternalCancel(const std::string& why) {
  build_cancel_.Cancel(why);
  std::lock_guard<std::mutex> lock(mu_);
  external_cancelled_ = true;
  done_cv_.notify_one();
}

Context Run::MakeContext(size_t n) {
  Context ctx;
  ctx.cancel = &build_cancel_;
  size_t vertex = nodes_[n].vertex;
  std::string name = nodes_[n].v->name;
  ctx.log = [this, vertex, name](std::string_view chunk) {
    Emit({Event::Kind::kLog, vertex, name, std::string(chunk), {}});
  };
  return ctx;
}

void Run::Emit(Event event) {
  if (!options_.progress) return;
  std::lock_guard<std::mutex> lock(progress_mu_);
  options_.progress(event);
}

}  // namespace

Solver::Solver(std::shared_ptr<CacheStore> cache, Loader loader)
    : cache_(std::move(cache)), loader_(std::move(loader)) {
  KILN_CHECK(cache_ == nullptr || loader_ != nullptr, "a Solver with a cache needs a Loader");
}

Result<SolveResult> Solver::Solve(const std::vector<Vertex>& vertices,
                                  const std::vector<Edge>& targets, const SolveOptions& options) {
  Run run(cache_.get(), loader_, options);
  return run.Solve(vertices, targets);
}

}  // namespace kiln::solver
