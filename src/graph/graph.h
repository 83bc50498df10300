// The build graph: what a frontend asks the solver to build.
//
// A Vertex is one operation (a source, an exec, a file op or a merge) with
// its inputs, each input being an Output of another vertex (or scratch). A
// vertex's digest is the sha256 of a canonical encoding of its op, its
// platform and its inputs' digests and output indexes, so two vertices that
// would produce the same result have the same digest, and any change that
// can change a result changes it. Descriptions (progress names such as
// "[stage-0 2/3] RUN make") are metadata: they are carried with the vertex
// but are not part of its digest, so renaming a step never invalidates a
// cache entry.
//
// Vertices are immutable once made and shared through shared_ptr; a graph is
// a DAG by construction (a vertex can only point at vertices that already
// exist). Marshal() flattens the graph reachable from one output into a
// Definition: each distinct digest once, inputs before their users.
//
// Used by the frontend (to build), the solver (to walk) and `kiln debug
// graph` (to print). Thread-safety: vertices are immutable and may be shared
// between threads; the free functions are pure.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "image/platform.h"
#include "util/digest.h"
#include "util/status.h"

namespace kiln::graph {

using util::Digest;

// The description key whose value names a vertex in progress output and in
// ToDot() (BuildKit's "llb.customname"), e.g. "[stage-0 2/3] RUN make".
inline constexpr std::string_view kDescriptionName = "llb.customname";
// The description key whose value is the instruction's place in its file,
// "Dockerfile:12", for error messages.
inline constexpr std::string_view kDescriptionLocation = "kiln.location";

// A source: the identifier names what to fetch and is what the build-sources
// walk reports ("docker-image://docker.io/library/alpine:3.15@sha256:...",
// "git://host/repo.git#ref", "https://host/file", "local://context").
// `attrs` refine it (BuildKit's names: "local.includepattern",
// "http.checksum", "http.filename", "http.perm", "git.keepgitdir",
// "image.recordtype", ...); all attrs are part of the digest.
struct SourceOp {
  std::string identifier;
  std::map<std::string, std::string> attrs;
};

enum class NetworkMode { kSandbox, kHost, kNone };
enum class SecurityMode { kSandbox, kInsecure };
enum class MountType { kBind, kCache, kTmpfs, kSecret, kSsh };
enum class CacheSharing { kShared, kPrivate, kLocked };

// One mount of an exec. Mount 0 is the root filesystem ("/").
struct ExecMount {
  int input = -1;        // index into Vertex::inputs; -1 mounts an empty dir
  std::string dest;      // absolute path in the container
  std::string selector;  // sub-path of the input that is mounted; "" = all
  int output = -1;       // the vertex output this mount becomes; -1: discarded
  bool readonly = false;
  MountType type = MountType::kBind;
  std::string cache_id;                          // kCache
  CacheSharing sharing = CacheSharing::kShared;  // kCache
  long long tmpfs_size = 0;                      // kTmpfs; 0 = default
  std::string secret_id;                         // kSecret / kSsh: the id the user passed
  unsigned uid = 0, gid = 0, mode = 0;           // kSecret / kSsh file owner and mode
  bool optional = false;                         // kSecret / kSsh: missing is not an error
};

struct ExecOp {
  std::vector<std::string> args;
  std::vector<std::string> env;  // "NAME=value", in order
  std::string cwd = "/";
  std::string user;  // "" = root
  std::string hostname;
  NetworkMode network = NetworkMode::kSandbox;
  SecurityMode security = SecurityMode::kSandbox;
  std::vector<ExecMount> mounts;
};

// File owner, as the Dockerfile wrote it ("1000", "app"); a name is resolved
// against the target's /etc/passwd and /etc/group when the op runs.
struct Owner {
  std::string user;
  std::string group;  // "" = the user's primary group
};

// One step of a FileOp, applied to the result of the previous step (the
// first applies to the op's base input).
struct FileCopy {
  int source_input = -1;  // index into Vertex::inputs (never -1 in a valid op)
  std::string src;        // path or wildcard pattern in the source
  std::string dest;       // path in the base (relative to the op's cwd if relative)
  std::optional<Owner> owner;
  std::optional<unsigned> mode;
  bool follow_symlinks = true;
  bool dir_copy_contents = true;  // copying a dir copies its contents
  bool attempt_unpack = false;    // ADD: unpack a local tar archive
  bool create_dest_path = true;
  bool allow_wildcard = true;
  bool allow_empty_wildcard = false;
};
struct FileMkdir {
  std::string path;
  unsigned mode = 0755;
  bool make_parents = true;
  std::optional<Owner> owner;
};
struct FileMkfile {
  std::string path;
  unsigned mode = 0644;
  std::string data;
  std::optional<Owner> owner;
};
struct FileRm {
  std::string path;
  bool allow_not_found = true;
  bool allow_wildcard = true;
};
using FileAction = std::variant<FileCopy, FileMkdir, FileMkfile, FileRm>;

struct FileOp {
  int base_input = -1;  // index into Vertex::inputs; -1 starts from scratch
  std::vector<FileAction> actions;
};

// Stacks its inputs' filesystems in order, later over earlier (COPY --link).
struct MergeOp {};

using Op = std::variant<SourceOp, ExecOp, FileOp, MergeOp>;

struct Vertex;
using VertexPtr = std::shared_ptr<const Vertex>;

// One output of a vertex; a null vertex is scratch (the empty filesystem).
struct Output {
  VertexPtr vertex;
  int index = 0;
  bool scratch() const { return vertex == nullptr; }
};

struct Constraints {
  std::optional<image::Platform> platform;         // in the digest
  std::map<std::string, std::string> description;  // not in the digest
  bool ignore_cache = false;                       // not in the digest
};

struct Vertex {
  Op op;
  std::vector<Output> inputs;
  Constraints constraints;
  Digest digest;        // over CanonicalEncoding()
  int num_outputs = 1;  // exec: one per mount with output >= 0
};

// Makes a vertex and computes its digest. Inputs must not be scratch for
// SourceOp (it has none) and are checked against the indexes the op uses;
// a violation is a bug in the caller (KILN_CHECK).
//
// Checked: a SourceOp has a non-empty identifier and no inputs; an ExecOp has
// args and at least one mount, mount 0 at "/", every mount input in
// [-1, inputs), and mount outputs numbering 0..n-1 with no gap or repeat; a
// FileOp's base_input is in [-1, inputs) and every FileCopy's source_input in
// [0, inputs); a MergeOp has at least one input (scratch inputs are allowed
// and add nothing); every input is scratch with index 0 or names an existing
// output of its vertex; attr keys are valid UTF-8.
//
// Make vertices only here: a vertex made by MakeVertex releases its inputs
// iteratively when destroyed, so dropping the last reference to a chain of
// 100,000 vertices does not recurse 100,000 deep.
VertexPtr MakeVertex(Op op, std::vector<Output> inputs, Constraints constraints);

// Convenience: a source vertex's single output.
Output Source(SourceOp op, Constraints constraints);

// The canonical bytes a vertex's digest is computed over: compact JSON with
// sorted keys of the op, the platform (normalized) and each input as
// {"digest","index"} (scratch inputs as null). Stable across releases;
// changing it invalidates every cache key, so it is versioned ("v": 1).
// docs/graph.md specifies every field.
std::string CanonicalEncoding(const Vertex& v);

// The graph reachable from `root`, each vertex once (by digest), inputs
// before users; `root` is the requested result (scratch for an empty image).
struct Definition {
  std::vector<VertexPtr> vertices;
  Output root;                // roots[0]
  std::vector<Output> roots;  // one per requested result (a platform's, say)
};
Definition Marshal(const Output& root);
// The graph reachable from several outputs (one build for several
// platforms): a vertex they share appears once, inputs before their users.
// `roots` must not be empty.
Definition MarshalAll(const std::vector<Output>& roots);

// The vertex of `def` with this digest, or null.
VertexPtr FindVertex(const Definition& def, const Digest& digest);

// "source", "exec", "file" or "merge": the op's "kind" in the encoding.
std::string_view OpKindName(const Op& op);

// `kiln debug graph`: the definition as indented JSON (vertices in
// Definition order, each with its digest, op, inputs, platform and
// description) and as Graphviz DOT (one node per vertex labelled with its
// kDescriptionName description or op summary, one edge per input).
std::string ToJson(const Definition& def);
std::string ToDot(const Definition& def);

}  // namespace kiln::graph
