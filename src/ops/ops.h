// ops/: where the build graph meets the machinery. PlanGraph turns a
// graph::Definition into solver vertices whose Ops pull images, fetch HTTP
// files, read the build context, run RUN steps in the executor, apply file
// actions and merge filesystems, all on snapshots.
//
// Results are SnapshotRefs (a committed snapshot id; "" is the empty
// filesystem), serialized as "snapshot:<id>" in the cache, or LocalRefs (a
// build context, never cached). Cache keys: each op's own identity is its
// vertex digest; a FileOp copying from the build context adds the checksum
// of exactly the paths it copies (source/local.h), an exec that mounts the
// context adds the checksum of the whole (filtered) context. Secrets never
// enter a key: only their ids are part of the vertex.
//
// Build sources (K4): after a solve, Pins() reports (identifier, pin) per
// source vertex the frontend can feed to buildinfo::CollectSources: images
// pin their digest, HTTP sources the sha256 of the body they fetched (known
// after the key computation, which fetches, even when everything else is
// cached), git sources the commit their ref resolved to (K6).
//
// Git sources: the cache key is the vertex digest plus the commit, found by
// one `git ls-remote` per remote and ref per build (GitRefCache); a moved
// branch is therefore a cache miss and an unchanged one a hit that fetches
// nothing. Exec checks the commit out into a snapshot (source/git.h), with
// the op's `git.keepgitdir` attribute and the identifier's subdir.
//
// Thread-safety: the Environment's members are thread-safe; ops run on the
// solver's workers.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "content/store.h"
#include "executor/executor.h"
#include "graph/graph.h"
#include "snapshot/snapshotter.h"
#include "solver/solver.h"
#include "source/git.h"
#include "source/http.h"
#include "source/image.h"
#include "source/local.h"

namespace kiln::ops {

// Pins learned while solving: identifier -> pin.
class PinTable {
 public:
  void Set(const std::string& identifier, const std::string& pin);
  std::optional<std::string> Get(const std::string& identifier) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> pins_;
};

// Git refs resolved during one build, so that every use of a remote's ref
// (ADD, the build context, a named context, reading the Dockerfile) sees
// the same commit and the remote is asked once. Thread-safe.
class GitRefCache {
 public:
  // The commit `ref` names, resolved through `git` on first use.
  Result<source::GitResolved> Resolve(source::GitSource* git, const source::GitRef& ref,
                                      const source::GitOptions& options);

 private:
  std::mutex mu_;
  std::map<std::string, source::GitResolved> resolved_;  // remote + "#" + ref
};

struct Environment {
  const content::Store* store = nullptr;
  std::shared_ptr<snapshot::Snapshotter> snapshots;
  // The executor, opened on first use (a build served from the cache never
  // starts the runtime). Called from several threads.
  std::function<Result<executor::Executor*>()> executor;
  source::ImageSource* images = nullptr;
  source::HttpSource* http = nullptr;
  source::GitSource* git = nullptr;  // null: git sources are an error
  std::shared_ptr<GitRefCache> git_refs = std::make_shared<GitRefCache>();
  // Local contexts by name ("context", "dockerfile", named local contexts).
  std::map<std::string, std::shared_ptr<source::LocalContext>> locals;
  std::map<std::string, std::string> secrets;  // id -> bytes
  std::filesystem::path cache_mounts_dir;      // ROOT/cache-mounts
};

class SnapshotRef : public solver::Ref {
 public:
  explicit SnapshotRef(std::string id) : id_(std::move(id)) {}
  const std::string& id() const { return id_; }
  std::string Serialize() const override { return "snapshot:" + id_; }

 private:
  std::string id_;
};

class LocalRef : public solver::Ref {
 public:
  explicit LocalRef(std::shared_ptr<source::LocalContext> ctx) : ctx_(std::move(ctx)) {}
  const std::shared_ptr<source::LocalContext>& context() const { return ctx_; }
  std::string Serialize() const override { return ""; }

 private:
  std::shared_ptr<source::LocalContext> ctx_;
};

struct Plan {
  std::vector<solver::Vertex> vertices;
  solver::Edge root;  // roots[0]; meaningless when root_scratch
  bool root_scratch = false;
  // One per def.roots, in order (a multi-platform build: one per platform);
  // roots[i] is meaningless when roots_scratch[i].
  std::vector<solver::Edge> roots;
  std::vector<bool> roots_scratch;
  std::shared_ptr<PinTable> pins;
};

// The solver vertices for `def` (a vertex the roots share appears once);
// `env` must outlive the solve.
Result<Plan> PlanGraph(const graph::Definition& def, Environment* env);

// The git reference of a git source op: its `git.fullurl` attribute (else
// the identifier's remote) with the identifier's "#ref[:subdir]". Errors
// name the redacted URL.
Result<source::GitRef> GitRefOf(const graph::SourceOp& op);

// Turns "snapshot:<id>" back into a SnapshotRef when the snapshot exists.
solver::Loader MakeLoader(Environment* env);

// The snapshot id of a solved ref ("" for the empty filesystem);
// kInvalidArgument for a build context.
Result<std::string> SnapshotOf(const solver::RefPtr& ref);

}  // namespace kiln::ops
