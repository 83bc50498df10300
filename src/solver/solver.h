// The solver: evaluates a build graph, reusing cached results and running
// what is missing. It is generic: it knows vertices, cache keys and opaque
// results (Ref), not containers or files; ops/ supplies the Op of each
// vertex (BuildKit tests its solver with integer-sum vertices; so do we).
//
// Cache keys. A vertex's cache key is the sha256 of a versioned encoding of
// its op's CacheMap digest and, per input, the input's cache key and output
// index, plus the input result's content digest when the op's CacheMap asks
// for one (Dep::content: e.g. a COPY from the build context keys on the
// checksums of exactly the paths it selects). Keys are computed top-down
// without running anything except what a content digest needs; a vertex
// whose key is in the cache is not run and its inputs are not solved at all
// (unless a content digest needs them).
//
// Evaluation: vertices with the same digest are solved once; independent
// branches run in parallel on a bounded worker pool (no thread per vertex).
// Cancel (util::Canceller) stops scheduling and is passed to running ops;
// Solve returns kCancelled after every running op has returned.
//
// Errors: the first failing vertex's error, annotated with its name
// ("[stage-0 2/3] RUN make: ..."); other running vertices are cancelled.
//
// Thread-safety: Solve may be called from one thread at a time per Solver.
// Ops are called from worker threads, several at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "solver/cache_store.h"
#include "util/cancel.h"
#include "util/digest.h"
#include "util/status.h"

namespace kiln::solver {

using util::Digest;

// A result of a vertex output, owned by ops/. Serialize() is what the cache
// stores; a Loader turns it back into a Ref.
class Ref {
 public:
  virtual ~Ref() = default;
  // "" means the result cannot be cached (it is not saved).
  virtual std::string Serialize() const = 0;
};
using RefPtr = std::shared_ptr<const Ref>;

// Returns the Ref a serialized string names, or kNotFound when what it
// named is gone (treated as a cache miss and the record is dropped).
using Loader = std::function<Result<RefPtr>(std::string_view serialized)>;

struct Context {
  util::Canceller* cancel = nullptr;  // never null inside Solve
  // Progress output of this vertex (e.g. a RUN's stdout/stderr lines).
  std::function<void(std::string_view chunk)> log;
};

struct Dep {
  // When set, the input's result is solved before the key is known and
  // this digest of it joins the key.
  std::function<Result<Digest>(Context&, const RefPtr& input)> content;
};

struct CacheMap {
  Digest digest;          // the op's own identity
  std::vector<Dep> deps;  // one per input (may be empty = no content deps)
};

class Op {
 public:
  virtual ~Op() = default;
  virtual Result<CacheMap> GetCacheMap(Context& ctx) = 0;
  // One Ref per output of the vertex. `inputs` in input order.
  virtual Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>& inputs) = 0;
  // false: results are never saved in or loaded from the cache store (the
  // op still runs once per Solve), e.g. a local context.
  virtual bool cacheable() const { return true; }
};

struct Edge {
  size_t vertex = 0;  // index into the vertex list given to Solve
  int output = 0;
};

struct Vertex {
  Digest digest;  // identity: vertices with equal digests are solved once
  std::string name;
  std::vector<Edge> inputs;  // each names an earlier vertex in the list
  std::shared_ptr<Op> op;
  bool ignore_cache = false;  // run even when cached (the result is saved)
};

struct Event {
  enum class Kind { kStarted, kCached, kLog, kCompleted, kError };
  Kind kind;
  size_t vertex;                                  // index in the Solve list
  std::string name;                               // the vertex's name
  std::string data;                               // kLog: the chunk; kError: the message
  std::chrono::steady_clock::duration elapsed{};  // kCompleted / kError
};

struct SolveOptions {
  int parallelism = 0;  // 0 = number of CPUs, at least 2
  util::Canceller* cancel = nullptr;
  // Called from worker threads, serialized by the solver (never concurrently).
  std::function<void(const Event&)> progress;
};

struct SolveStats {
  int executed = 0;  // ops run (Exec called)
  int cached = 0;    // vertices whose result came from the cache
};

struct SolveResult {
  std::vector<RefPtr> refs;  // one per requested target
  SolveStats stats;
  std::vector<Digest> cache_keys;  // one per requested target
};

class Solver {
 public:
  // `cache` may be null: nothing is cached.
  Solver(std::shared_ptr<CacheStore> cache, Loader loader);

  // Solves `targets` (edges into `vertices`). `vertices` is topologically
  // ordered; violations are kInvalidArgument.
  Result<SolveResult> Solve(const std::vector<Vertex>& vertices, const std::vector<Edge>& targets,
                            const SolveOptions& options);

 private:
  std::shared_ptr<CacheStore> cache_;
  Loader loader_;
};

}  // namespace kiln::solver
