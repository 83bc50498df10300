#include "graph/graph.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "util/base64.h"
#include "util/json.h"

namespace kiln::graph {
namespace {

using util::JsonWriter;

// ---- Destruction --------------------------------------------------------

// While a VertexDeleter call is releasing a graph on this thread, the vertices
// whose last reference it still has to drop; nested deleter calls add to it
// instead of recursing.
thread_local std::vector<VertexPtr>* pending_release = nullptr;

// Deletes a vertex made by MakeVertex without recursing into its inputs: the
// inputs' references are moved to a work list and dropped one at a time, so
// the stack depth stays constant however long the chain is.
struct VertexDeleter {
  void operator()(const Vertex* cv) const noexcept {
    // MakeVertex allocated a non-const Vertex, so moving its inputs out is
    // allowed; nobody else holds a reference any more.
    auto* v = const_cast<Vertex*>(cv);
    if (pending_release != nullptr) {
      for (Output& in : v->inputs) {
        if (in.vertex) pending_release->push_back(std::move(in.vertex));
      }
      delete v;
      return;
    }
    std::vector<VertexPtr> list;
    pending_release = &list;
    for (Output& in : v->inputs) {
      if (in.vertex) list.push_back(std::move(in.vertex));
    }
    delete v;
    while (!list.empty()) {
      VertexPtr next = std::move(list.back());
      list.pop_back();
      next.reset();  // may append that vertex's inputs to `list`
    }
    pending_release = nullptr;
  }
};

[[noreturn]] void Unreachable(const char* what) {
  CheckFailed(__FILE__, __LINE__, "unreachable", what);
}

// ---- Strings --------------------------------------------------------------

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = util::Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A string in the canonical encoding. JSON strings hold text, and the Go
// writer replaces each invalid UTF-8 byte with U+FFFD, which would map
// different byte strings (file data, args) to one digest. Text that is not
// valid UTF-8 is written as {"base64":"..."} instead, which no JSON string
// equals, so the encoding stays injective.
void WriteBytes(JsonWriter& w, std::string_view s) {
  if (IsValidUtf8(s)) {
    w.String(s);
    return;
  }
  w.BeginObject();
  w.Key("base64");
  w.String(util::Base64Encode(s));
  w.EndObject();
}

void WriteStrings(JsonWriter& w, const std::vector<std::string>& list) {
  w.BeginArray();
  for (const std::string& s : list) WriteBytes(w, s);
  w.EndArray();
}

std::string_view NetworkName(NetworkMode m) {
  switch (m) {
    case NetworkMode::kSandbox:
      return "sandbox";
    case NetworkMode::kHost:
      return "host";
    case NetworkMode::kNone:
      return "none";
  }
  Unreachable("unknown NetworkMode");
}

std::string_view SecurityName(SecurityMode m) {
  switch (m) {
    case SecurityMode::kSandbox:
      return "sandbox";
    case SecurityMode::kInsecure:
      return "insecure";
  }
  Unreachable("unknown SecurityMode");
}

std::string_view MountTypeName(MountType t) {
  switch (t) {
    case MountType::kBind:
      return "bind";
    case MountType::kCache:
      return "cache";
    case MountType::kTmpfs:
      return "tmpfs";
    case MountType::kSecret:
      return "secret";
    case MountType::kSsh:
      return "ssh";
  }
  Unreachable("unknown MountType");
}

std::string_view SharingName(CacheSharing s) {
  switch (s) {
    case CacheSharing::kShared:
      return "shared";
    case CacheSharing::kPrivate:
      return "private";
    case CacheSharing::kLocked:
      return "locked";
  }
  Unreachable("unknown CacheSharing");
}

// ---- Canonical encoding ---------------------------------------------------
//
// Every object below writes its members in bytewise-sorted key order (the
// test checks this against GoMarshal), and every member is always present:
// an unset optional is null, never omitted. docs/graph.md lists the fields.

void WriteOwner(JsonWriter& w, const std::optional<Owner>& owner) {
  if (!owner) {
    w.Null();
    return;
  }
  w.BeginObject();
  w.Key("group");
  WriteBytes(w, owner->group);
  w.Key("user");
  WriteBytes(w, owner->user);
  w.EndObject();
}

void WriteOp(JsonWriter& w, const SourceOp& op) {
  w.BeginObject();
  w.Key("attrs");
  w.BeginObject();
  for (const auto& [key, value] : op.attrs) {  // std::map: bytewise order
    w.Key(key);
    WriteBytes(w, value);
  }
  w.EndObject();
  w.Key("identifier");
  WriteBytes(w, op.identifier);
  w.Key("kind");
  w.String("source");
  w.EndObject();
}

void WriteMount(JsonWriter& w, const ExecMount& m) {
  w.BeginObject();
  w.Key("cache_id");
  WriteBytes(w, m.cache_id);
  w.Key("dest");
  WriteBytes(w, m.dest);
  w.Key("gid");
  w.Int(m.gid);
  w.Key("input");
  w.Int(m.input);
  w.Key("mode");
  w.Int(m.mode);
  w.Key("optional");
  w.Bool(m.optional);
  w.Key("output");
  w.Int(m.output);
  w.Key("readonly");
  w.Bool(m.readonly);
  w.Key("secret_id");
  WriteBytes(w, m.secret_id);
  w.Key("selector");
  WriteBytes(w, m.selector);
  w.Key("sharing");
  w.String(SharingName(m.sharing));
  w.Key("tmpfs_size");
  w.Int(m.tmpfs_size);
  w.Key("type");
  w.String(MountTypeName(m.type));
  w.Key("uid");
  w.Int(m.uid);
  w.EndObject();
}

void WriteOp(JsonWriter& w, const ExecOp& op) {
  w.BeginObject();
  w.Key("args");
  WriteStrings(w, op.args);
  w.Key("cwd");
  WriteBytes(w, op.cwd);
  w.Key("env");
  WriteStrings(w, op.env);
  w.Key("hostname");
  WriteBytes(w, op.hostname);
  w.Key("kind");
  w.String("exec");
  w.Key("mounts");
  w.BeginArray();
  for (const ExecMount& m : op.mounts) WriteMount(w, m);
  w.EndArray();
  w.Key("network");
  w.String(NetworkName(op.network));
  w.Key("security");
  w.String(SecurityName(op.security));
  w.Key("user");
  WriteBytes(w, op.user);
  w.EndObject();
}

void WriteAction(JsonWriter& w, const FileCopy& a) {
  w.BeginObject();
  w.Key("allow_empty_wildcard");
  w.Bool(a.allow_empty_wildcard);
  w.Key("allow_wildcard");
  w.Bool(a.allow_wildcard);
  w.Key("attempt_unpack");
  w.Bool(a.attempt_unpack);
  w.Key("create_dest_path");
  w.Bool(a.create_dest_path);
  w.Key("dest");
  WriteBytes(w, a.dest);
  w.Key("dir_copy_contents");
  w.Bool(a.dir_copy_contents);
  w.Key("follow_symlinks");
  w.Bool(a.follow_symlinks);
  w.Key("kind");
  w.String("copy");
  w.Key("mode");
  if (a.mode) {
    w.Int(*a.mode);
  } else {
    w.Null();
  }
  w.Key("owner");
  WriteOwner(w, a.owner);
  w.Key("source_input");
  w.Int(a.source_input);
  w.Key("src");
  WriteBytes(w, a.src);
  w.EndObject();
}

void WriteAction(JsonWriter& w, const FileMkdir& a) {
  w.BeginObject();
  w.Key("kind");
  w.String("mkdir");
  w.Key("make_parents");
  w.Bool(a.make_parents);
  w.Key("mode");
  w.Int(a.mode);
  w.Key("owner");
  WriteOwner(w, a.owner);
  w.Key("path");
  WriteBytes(w, a.path);
  w.EndObject();
}

void WriteAction(JsonWriter& w, const FileMkfile& a) {
  w.BeginObject();
  w.Key("data");
  WriteBytes(w, a.data);
  w.Key("kind");
  w.String("mkfile");
  w.Key("mode");
  w.Int(a.mode);
  w.Key("owner");
  WriteOwner(w, a.owner);
  w.Key("path");
  WriteBytes(w, a.path);
  w.EndObject();
}

void WriteAction(JsonWriter& w, const FileRm& a) {
  w.BeginObject();
  w.Key("allow_not_found");
  w.Bool(a.allow_not_found);
  w.Key("allow_wildcard");
  w.Bool(a.allow_wildcard);
  w.Key("kind");
  w.String("rm");
  w.Key("path");
  WriteBytes(w, a.path);
  w.EndObject();
}

void WriteOp(JsonWriter& w, const FileOp& op) {
  w.BeginObject();
  w.Key("actions");
  w.BeginArray();
  for (const FileAction& a : op.actions) {
    std::visit([&w](const auto& action) { WriteAction(w, action); }, a);
  }
  w.EndArray();
  w.Key("base_input");
  w.Int(op.base_input);
  w.Key("kind");
  w.String("file");
  w.EndObject();
}

void WriteOp(JsonWriter& w, const MergeOp&) {
  w.BeginObject();
  w.Key("kind");
  w.String("merge");
  w.EndObject();
}

void WriteAnyOp(JsonWriter& w, const Op& op) {
  std::visit([&w](const auto& o) { WriteOp(w, o); }, op);
}

void WritePlatform(JsonWriter& w, const std::optional<image::Platform>& platform) {
  if (!platform) {
    w.Null();
    return;
  }
  image::Platform p = image::Normalize(*platform);
  w.BeginObject();
  w.Key("architecture");
  WriteBytes(w, p.architecture);
  w.Key("os");
  WriteBytes(w, p.os);
  w.Key("os.features");
  WriteStrings(w, p.os_features);
  w.Key("os.version");
  WriteBytes(w, p.os_version);
  w.Key("variant");
  WriteBytes(w, p.variant);
  w.EndObject();
}

// {"digest","index"} for a vertex output, null for scratch.
void WriteOutputRef(JsonWriter& w, const Output& out) {
  if (out.scratch()) {
    w.Null();
    return;
  }
  w.BeginObject();
  w.Key("digest");
  w.String(out.vertex->digest.str());
  w.Key("index");
  w.Int(out.index);
  w.EndObject();
}

// ---- Validation -----------------------------------------------------------

void CheckInputIndex(int index, size_t num_inputs, bool allow_none, std::string_view what) {
  int low = allow_none ? -1 : 0;
  KILN_CHECK(index >= low && index < static_cast<int>(num_inputs),
             std::string(what) + " " + std::to_string(index) + " is not an input index (" +
                 std::to_string(num_inputs) + " inputs)");
}

// Returns the number of outputs of the op.
int CheckOp(const Op& op, const std::vector<Output>& inputs) {
  size_t n = inputs.size();
  if (const auto* source = std::get_if<SourceOp>(&op)) {
    KILN_CHECK(!source->identifier.empty(), "SourceOp without an identifier");
    KILN_CHECK(n == 0, "SourceOp " + source->identifier + " given " + std::to_string(n) +
                           " inputs; a source has none");
    for (const auto& [key, value] : source->attrs) {
      KILN_CHECK(IsValidUtf8(key), "SourceOp attr key is not valid UTF-8");
    }
    return 1;
  }
  if (const auto* exec = std::get_if<ExecOp>(&op)) {
    KILN_CHECK(!exec->args.empty(), "ExecOp without args");
    KILN_CHECK(!exec->mounts.empty() && exec->mounts[0].dest == "/",
               "ExecOp: mount 0 must be the root filesystem \"/\"");
    std::vector<int> outputs;
    for (const ExecMount& m : exec->mounts) {
      CheckInputIndex(m.input, n, /*allow_none=*/true, "ExecMount.input");
      KILN_CHECK(m.output >= -1, "ExecMount.output " + std::to_string(m.output) + " < -1");
      if (m.output >= 0) outputs.push_back(m.output);
    }
    std::sort(outputs.begin(), outputs.end());
    for (size_t i = 0; i < outputs.size(); ++i) {
      KILN_CHECK(outputs[i] == static_cast<int>(i),
                 "ExecOp mount outputs must be numbered 0.." + std::to_string(outputs.size() - 1) +
                     " each once; found output " + std::to_string(outputs[i]) + " at position " +
                     std::to_string(i));
    }
    return static_cast<int>(outputs.size());
  }
  if (const auto* file = std::get_if<FileOp>(&op)) {
    CheckInputIndex(file->base_input, n, /*allow_none=*/true, "FileOp.base_input");
    for (const FileAction& a : file->actions) {
      if (const auto* copy = std::get_if<FileCopy>(&a)) {
        CheckInputIndex(copy->source_input, n, /*allow_none=*/false, "FileCopy.source_input");
      }
    }
    return 1;
  }
  KILN_CHECK(std::holds_alternative<MergeOp>(op), "unknown Op alternative");
  KILN_CHECK(n >= 1, "MergeOp needs at least one input");
  return 1;
}

void CheckInputs(const std::vector<Output>& inputs) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Output& in = inputs[i];
    if (in.scratch()) {
      KILN_CHECK(in.index == 0, "input " + std::to_string(i) + " is scratch with index " +
                                    std::to_string(in.index) + "; scratch has index 0");
      continue;
    }
    KILN_CHECK(in.index >= 0 && in.index < in.vertex->num_outputs,
               "input " + std::to_string(i) + " names output " + std::to_string(in.index) + " of " +
                   in.vertex->digest.str() + ", which has " +
                   std::to_string(in.vertex->num_outputs));
  }
}

// ---- Display --------------------------------------------------------------

std::string ShortDigest(const Digest& d) {
  return std::string(d.algorithm()) + ":" + std::string(d.hex().substr(0, 12));
}

std::string Summary(const Vertex& v) {
  std::string out(OpKindName(v.op));
  if (const auto* source = std::get_if<SourceOp>(&v.op)) {
    out += " " + source->identifier;
  } else if (const auto* exec = std::get_if<ExecOp>(&v.op)) {
    for (const std::string& arg : exec->args) out += " " + arg;
  } else if (const auto* file = std::get_if<FileOp>(&v.op)) {
    bool first = true;
    for (const FileAction& a : file->actions) {
      out += first ? " " : "; ";
      first = false;
      if (const auto* copy = std::get_if<FileCopy>(&a)) {
        out += "copy " + copy->src + " " + copy->dest;
      } else if (const auto* mkdir = std::get_if<FileMkdir>(&a)) {
        out += "mkdir " + mkdir->path;
      } else if (const auto* mkfile = std::get_if<FileMkfile>(&a)) {
        out += "mkfile " + mkfile->path;
      } else if (const auto* rm = std::get_if<FileRm>(&a)) {
        out += "rm " + rm->path;
      }
    }
  }
  return out;
}

constexpr size_t kMaxLabelBytes = 100;

// Text for a quoted DOT string (the quotes not included): valid UTF-8 at most
// kMaxLabelBytes long (cut at a character boundary, "..." appended), `"` and
// `\` escaped, a newline as DOT's centred line break `\n`, other control
// characters shown as `\xHH`.
std::string DotEscape(std::string_view text) {
  std::string storage;
  std::string_view s = util::ReplaceInvalidUtf8(text, &storage);
  bool cut = false;
  if (s.size() > kMaxLabelBytes) {
    size_t end = 0;
    while (end < s.size()) {
      size_t n = util::Utf8SequenceLength(s, end);
      if (end + n > kMaxLabelBytes) break;
      end += n;
    }
    s = s.substr(0, end);
    cut = true;
  }
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  if (cut) out += "...";
  return out;
}

}  // namespace

std::string_view OpKindName(const Op& op) {
  switch (op.index()) {
    case 0:
      return "source";
    case 1:
      return "exec";
    case 2:
      return "file";
    case 3:
      return "merge";
  }
  Unreachable("unknown Op alternative");
}

VertexPtr MakeVertex(Op op, std::vector<Output> inputs, Constraints constraints) {
  int num_outputs = CheckOp(op, inputs);
  CheckInputs(inputs);
  auto* v =
      new Vertex{std::move(op), std::move(inputs), std::move(constraints), Digest(), num_outputs};
  VertexPtr ptr(v, VertexDeleter{});  // deletes `v` itself if this throws
  v->digest = util::Sha256Of(CanonicalEncoding(*v));
  return ptr;
}

Output Source(SourceOp op, Constraints constraints) {
  return Output{MakeVertex(std::move(op), {}, std::move(constraints)), 0};
}

std::string CanonicalEncoding(const Vertex& v) {
  JsonWriter w;
  w.BeginObject();
  w.Key("inputs");
  w.BeginArray();
  for (const Output& in : v.inputs) WriteOutputRef(w, in);
  w.EndArray();
  w.Key("op");
  WriteAnyOp(w, v.op);
  w.Key("platform");
  WritePlatform(w, v.constraints.platform);
  w.Key("v");
  w.Int(1);
  w.EndObject();
  return w.Take();
}

Definition Marshal(const Output& root) { return MarshalAll({root}); }

Definition MarshalAll(const std::vector<Output>& roots) {
  Definition def;
  def.roots = roots;
  if (!roots.empty()) def.root = roots.front();
  // Digests already on the stack or emitted; the views point into vertices
  // that `roots` keep alive.
  std::unordered_set<std::string_view> seen;
  for (const Output& root : roots) {
    if (root.scratch() || !seen.insert(root.vertex->digest.str()).second) continue;
    // Depth-first with an explicit stack (a chain may be 100,000 deep): each
    // frame is a vertex and the next of its inputs to visit. A vertex is
    // emitted when all its inputs are, so inputs come before their users.
    std::vector<std::pair<VertexPtr, size_t>> stack;
    stack.emplace_back(root.vertex, 0);
    while (!stack.empty()) {
      auto& [vertex, next] = stack.back();
      if (next < vertex->inputs.size()) {
        const Output& in = vertex->inputs[next++];
        if (!in.scratch() && seen.insert(in.vertex->digest.str()).second) {
          stack.emplace_back(in.vertex, 0);  // invalidates `vertex` and `next`
        }
        continue;
      }
      def.vertices.push_back(std::move(vertex));
      stack.pop_back();
    }
  }
  return def;
}

VertexPtr FindVertex(const Definition& def, const Digest& digest) {
  for (const VertexPtr& v : def.vertices) {
    if (v->digest == digest) return v;
  }
  return nullptr;
}

std::string ToJson(const Definition& def) {
  JsonWriter w;
  w.BeginObject();
  w.Key("root");
  WriteOutputRef(w, def.root);
  w.Key("vertices");
  w.BeginArray();
  for (const VertexPtr& v : def.vertices) {
    w.BeginObject();
    w.Key("digest");
    w.String(v->digest.str());
    w.Key("op");
    WriteAnyOp(w, v->op);
    w.Key("inputs");
    w.BeginArray();
    for (const Output& in : v->inputs) WriteOutputRef(w, in);
    w.EndArray();
    if (v->constraints.platform) {
      w.Key("platform");
      w.String(image::Format(image::Normalize(*v->constraints.platform)));
    }
    w.Key("description");
    w.BeginObject();
    for (const auto& [key, value] : v->constraints.description) {
      w.Key(key);
      w.String(value);
    }
    w.EndObject();
    if (v->constraints.ignore_cache) {
      w.Key("ignore_cache");
      w.Bool(true);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  Result<std::string> indented = util::GoIndent(w.str(), "  ");
  KILN_CHECK(indented.ok(), "ToJson wrote invalid JSON: " + indented.status().ToString());
  return std::move(indented).value() + "\n";
}

std::string ToDot(const Definition& def) {
  std::string out = "digraph kiln {\n  node [shape=box];\n";
  bool any_scratch = def.root.scratch();
  for (const VertexPtr& v : def.vertices) {
    for (const Output& in : v->inputs) any_scratch = any_scratch || in.scratch();
  }
  auto root_mark = [&def](const VertexPtr& v) {
    return def.root.vertex && def.root.vertex->digest == v->digest ? ", peripheries=2" : "";
  };
  if (any_scratch) {
    out += "  \"scratch\" [label=\"scratch\", shape=plaintext";
    out += def.root.scratch() ? ", peripheries=2" : "";
    out += "];\n";
  }
  for (const VertexPtr& v : def.vertices) {
    auto name = v->constraints.description.find(std::string(kDescriptionName));
    std::string label = name != v->constraints.description.end() ? name->second : Summary(*v);
    out += "  \"" + ShortDigest(v->digest) + "\" [label=\"" + DotEscape(label) + "\"" +
           root_mark(v) + "];\n";
  }
  for (const VertexPtr& v : def.vertices) {
    std::string user = ShortDigest(v->digest);
    for (const Output& in : v->inputs) {
      out += "  \"" + (in.scratch() ? std::string("scratch") : ShortDigest(in.vertex->digest)) +
             "\" -> \"" + user + "\"";
      if (in.index != 0) out += " [label=\"" + std::to_string(in.index) + "\"]";
      out += ";\n";
    }
  }
  out += "}\n";
  return out;
}

}  // namespace kiln::graph
