#include "frontend/dockerfile/convert.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <set>
#include <utility>

#include "buildinfo/exporter.h"
#include "buildinfo/identifier.h"
#include "buildinfo/redact.h"
#include "frontend/dockerfile/instructions/instructions.h"
#include "frontend/dockerfile/shell/lex.h"
#include "image/reference.h"
#include "util/json.h"

namespace kiln::dockerfile {
namespace {

std::string AsciiLowerCopy(std::string s) {
  for (char& ch : s) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return s;
}

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr std::string_view kCustomName = graph::kDescriptionName;
constexpr std::string_view kDescriptionLocation = graph::kDescriptionLocation;

// The proxy build args Docker passes to RUN without an ARG declaration, and
// keeps out of the image history.
const std::set<std::string, std::less<>> kProxyArgs = {
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
    "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy"};

std::string JoinPath(std::string_view base, std::string_view rel) {
  if (!rel.empty() && rel.front() == '/') return buildinfo::CleanPath(rel);
  std::string joined(base.empty() ? "/" : base);
  if (joined.back() != '/') joined += '/';
  joined += rel;
  return buildinfo::CleanPath(joined);
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  const size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Go's fmt %q of a []string: ["a" "b"].
std::string QuoteList(const std::vector<std::string>& words) {
  std::string out = "[";
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out += ' ';
    out += GoQuote(words[i]);
  }
  return out + "]";
}

// Go's fmt %v of a []string: [a b].
std::string PlainList(const std::vector<std::string>& words) {
  std::string out = "[";
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out += ' ';
    out += words[i];
  }
  return out + "]";
}

// The offset of the first byte that does not start a valid UTF-8 sequence
// (Go's rules), or npos when `s` is valid UTF-8.
size_t InvalidUtf8At(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = util::Utf8SequenceLength(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

bool IsUrl(std::string_view s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

void SetEnv(std::vector<std::string>* env, const std::string& key, const std::string& value) {
  const std::string prefix = key + "=";
  for (std::string& e : *env) {
    if (e.rfind(prefix, 0) == 0) {
      e = prefix + value;
      return;
    }
  }
  env->push_back(prefix + value);
}

EnvList ParseEnvList(const std::vector<std::string>& env) {
  EnvList out;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    if (eq == std::string::npos) {
      out.emplace_back(e, "");
    } else {
      out.emplace_back(e.substr(0, eq), e.substr(eq + 1));
    }
  }
  return out;
}

std::optional<graph::Owner> ParseOwner(const std::string& chown) {
  if (chown.empty()) return std::nullopt;
  graph::Owner owner;
  const size_t colon = chown.find(':');
  owner.user = chown.substr(0, colon);
  if (colon != std::string::npos) owner.group = chown.substr(colon + 1);
  return owner;
}

// What a stage, an implicit image stage or a named context gives as a base.
struct BaseState {
  graph::Output fs;
  std::optional<image::ImageConfig> config;
};

struct StageState {
  const Stage* stage = nullptr;  // null for implicit stages (COPY --from=image)
  std::string display;           // "stage-0", "build", or the image ref
  std::string base_text;         // base name after global ARG expansion
  image::Platform platform;
  bool platform_set = false;
  int base_stage = -1;                 // FROM <earlier stage>
  std::optional<std::string> context;  // replaced by a named context (by stage name)
  std::vector<int> deps;               // stages whose results it uses
  bool reachable = false;
  int visit = 0;                  // reachability walk: 0 new, 1 in progress, 2 done
  int dispatch = 0;               // conversion: 0 not yet, 1 in progress, 2 done
  std::optional<BaseState> base;  // resolved before dispatch, in stage order
  // Dispatch results.
  graph::Output fs;
  image::ImageConfig config;
  EnvList args;  // declared ARGs with values, in order
  bool cmd_set = false;
};

std::string StageKeyText(const Stage& s, size_t index) {
  return s.name.empty() ? "stage-" + std::to_string(index) : s.name;
}

class Converter {
 public:
  Converter(std::string_view text, const ConvertOptions& options) : text_(text), opt_(options) {}

  Result<ConvertResult> Run();

 private:
  // The message quotes the Dockerfile: credentials in its URLs are masked (K8).
  Status Fail(const Status& error, const SourceRange& where) const {
    const Status st = FormatSourceError(error, where, opt_.filename, text_);
    return Status(st.code(), buildinfo::RedactText(st.message()));
  }
  Status FailAt(const CommandBase& c, const Status& error) const { return Fail(error, c.location); }

  Result<std::string> ExpandGlobal(std::string_view word) const {
    return lexer_.ProcessWord(word, global_);
  }
  EnvList ExpansionEnv(const StageState& s) const;
  std::optional<std::string> LookupContext(std::string_view name, const image::Platform& p) const;
  int FindStage(std::string_view name) const;
  Result<int> StageForFrom(const std::string& from, const image::Platform& platform,
                           const SourceRange& where);
  Status Visit(int index);
  Result<BaseState> ResolveImageBase(const std::string& ref, const image::Platform& platform,
                                     const SourceRange& where);
  Result<BaseState> ResolveContext(const std::string& name, const std::string& value,
                                   const image::Platform& platform, const SourceRange& where);
  Status AddImageDep(const std::string& name, const std::string& value, const BaseState& base,
                     const SourceRange& where);
  Status ResolveBaseOf(int index);
  Status DispatchStage(int index);
  Status Dispatch(StageState& s, Command& cmd, const std::string& prefix);
  Status DispatchRun(StageState& s, RunCommand& c, const std::string& prefix);
  Status DispatchCopy(StageState& s, CopyCommand& c, const std::string& prefix);
  Result<graph::Output> SourceFor(const std::string& from, const StageState& s,
                                  const SourceRange& where, std::optional<image::ImageConfig>* cfg);
  graph::Output BuildContext();
  graph::Constraints Constraint(const StageState& s, const std::string& name,
                                const SourceRange& where = {}) const;
  void History(StageState& s, const std::string& created_by, bool layer) const;

  std::string_view text_;
  const ConvertOptions& opt_;
  Lexer lexer_;
  Dockerfile df_;
  EnvList global_;                        // platform args + global ARGs
  std::set<std::string> global_declared;  // names declared before the first FROM
  // Dockerfile stages, then implicit ones (COPY --from=<image>, named
  // contexts), appended by StageForFrom while callers hold a `StageState&`
  // (Visit, DispatchStage, Dispatch*, Constraint): a deque, whose push_back
  // never moves an element, keeps those references valid. A vector here
  // reallocates under them (issue 15: crash, or an implicit stage built for a
  // platform read from freed memory). Index by int; never store iterators.
  std::deque<StageState> stages_;
  std::map<std::string, int> implicit_;  // image ref -> implicit stage index
  std::optional<graph::Output> context_;
  ConvertResult result_;
  std::set<std::string> deps_used_;
};

graph::Constraints Converter::Constraint(const StageState& s, const std::string& name,
                                         const SourceRange& where) const {
  graph::Constraints c;
  c.platform = s.platform;
  if (!name.empty()) c.description[std::string(kCustomName)] = buildinfo::RedactText(name);
  if (where.start_line > 0) {
    c.description[std::string(kDescriptionLocation)] =
        opt_.filename + ":" + std::to_string(where.start_line);
  }
  c.ignore_cache = opt_.no_cache;
  if (!c.ignore_cache && s.stage && !opt_.no_cache_stages.empty()) {
    const std::string stage_name = AsciiLowerCopy(s.stage->name);
    for (const std::string& n : opt_.no_cache_stages) {
      if (!stage_name.empty() && AsciiLowerCopy(n) == stage_name) c.ignore_cache = true;
    }
  }
  return c;
}

void Converter::History(StageState& s, const std::string& created_by, bool layer) const {
  image::HistoryEntry h;
  // K8: a credential written in a URL never reaches the image config.
  const std::string redacted = buildinfo::RedactText(created_by);
  h.created_by = layer ? redacted + " # buildkit" : redacted;
  h.comment = "buildkit.dockerfile.v0";
  h.empty_layer = !layer;
  s.config.history.push_back(std::move(h));
}

EnvList Converter::ExpansionEnv(const StageState& s) const {
  EnvList env = s.args;
  for (auto& kv : ParseEnvList(s.config.config.env)) env.push_back(std::move(kv));
  return env;
}

std::optional<std::string> Converter::LookupContext(std::string_view name,
                                                    const image::Platform& p) const {
  const std::string n(name);
  auto it = opt_.named_contexts.find(n + "::" + image::Format(image::Normalize(p)));
  if (it != opt_.named_contexts.end()) return it->second;
  it = opt_.named_contexts.find(n);
  if (it != opt_.named_contexts.end()) return it->second;
  return std::nullopt;
}

int Converter::FindStage(std::string_view name) const {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (size_t i = 0; i < df_.stages.size(); ++i) {
    if (!df_.stages[i].name.empty() && df_.stages[i].name == lower) return static_cast<int>(i);
  }
  return -1;
}

// The stage a `--from` names: a stage by name or index, else an implicit
// stage for an image reference or a named context.
Result<int> Converter::StageForFrom(const std::string& from, const image::Platform& platform,
                                    const SourceRange& where) {
  if (const int i = FindStage(from); i >= 0) return i;
  if (!from.empty() && std::all_of(from.begin(), from.end(), ::isdigit)) {
    const long n = std::strtol(from.c_str(), nullptr, 10);
    if (n < 0 || static_cast<size_t>(n) >= df_.stages.size()) {
      return Fail(Status::InvalidArgument("invalid stage index " + from + ": the Dockerfile has " +
                                          std::to_string(df_.stages.size()) + " stages"),
                  where);
    }
    return static_cast<int>(n);
  }
  const std::string key = from + "\n" + image::Format(platform);
  if (auto it = implicit_.find(key); it != implicit_.end()) return it->second;
  StageState s;
  s.display = from;
  s.base_text = from;
  s.platform = platform;
  stages_.push_back(std::move(s));
  const int index = static_cast<int>(stages_.size()) - 1;
  implicit_[key] = index;
  return index;
}

// Marks `index` and everything it needs reachable; detects cycles.
Status Converter::Visit(int index) {
  StageState& s = stages_[index];
  if (s.visit == 2) return Status::Ok();
  if (s.visit == 1) {
    return Fail(Status::InvalidArgument("circular dependency detected on stage: " + s.display),
                s.stage ? s.stage->from.location : SourceRange{});
  }
  s.visit = 1;
  s.reachable = true;
  std::vector<int> deps;
  if (s.stage && !s.context) {
    if (s.base_stage >= 0) deps.push_back(s.base_stage);
    for (const Command& cmd : s.stage->commands) {
      std::vector<std::pair<std::string, SourceRange>> froms;
      if (const auto* c = std::get_if<CopyCommand>(&cmd); c && !c->from.empty()) {
        froms.emplace_back(c->from, c->location);
      }
      if (const auto* r = std::get_if<RunCommand>(&cmd)) {
        for (const std::string& flag : r->mount_flags) {
          // Only the from= key matters here; the full mount is parsed at dispatch.
          size_t pos = 0;
          while (pos <= flag.size()) {
            size_t comma = flag.find(',', pos);
            if (comma == std::string::npos) comma = flag.size();
            std::string_view field(flag.data() + pos, comma - pos);
            if (field.rfind("from=", 0) == 0) {
              froms.emplace_back(std::string(field.substr(5)), r->location);
            }
            pos = comma + 1;
          }
        }
      }
      for (auto& [raw, where] : froms) {
        KILN_ASSIGN_OR_RETURN(std::string from, ExpandGlobal(raw));
        KILN_ASSIGN_OR_RETURN(int dep, StageForFrom(from, s.platform, where));
        stages_[index].deps.push_back(dep);
        deps.push_back(dep);
      }
    }
  }
  for (int d : deps) {
    if (d == index) {
      return Fail(Status::InvalidArgument("circular dependency detected on stage: " +
                                          stages_[index].display),
                  stages_[index].stage ? stages_[index].stage->from.location : SourceRange{});
    }
    KILN_RETURN_IF_ERROR(Visit(d));
  }
  stages_[index].visit = 2;
  return Status::Ok();
}

Result<BaseState> Converter::ResolveImageBase(const std::string& ref,
                                              const image::Platform& platform,
                                              const SourceRange& where) {
  Result<image::Reference> parsed = image::ParseNormalizedNamed(ref);
  if (!parsed.ok()) {
    // The parser's message names the reference already.
    std::string message = parsed.status().message();
    if (ref.empty() || ref.front() == '/' || ref.find("//") != std::string::npos ||
        ref.back() == ':') {
      message += " (is a build argument it uses unset? pass it with --build-arg NAME=VALUE)";
    }
    return Fail(Status::InvalidArgument(message), where);
  }
  if (opt_.resolver == nullptr) {
    return Fail(Status::FailedPrecondition("cannot resolve image \"" + ref +
                                           "\": no image resolver configured"),
                where);
  }
  const image::Reference named = *parsed;
  const std::string lookup = image::TagNameOnly(named).String();
  Result<ResolvedImage> resolved = opt_.resolver->ResolveImage(lookup, platform);
  if (!resolved.ok()) return Fail(resolved.status().Annotate("resolving " + lookup), where);
  std::string alias = named.Name();
  if (!named.tag.empty()) alias += ":" + named.tag;
  alias += "@" + resolved->digest;

  buildinfo::Source src;
  src.type = std::string(buildinfo::kTypeDockerImage);
  src.ref = ref;
  src.alias = alias;
  src.pin = resolved->digest;
  result_.sources.sources.push_back(std::move(src));

  BaseState base;
  graph::Constraints c;
  c.platform = platform;
  c.description[std::string(kCustomName)] = "[internal] load image " + alias;
  c.ignore_cache = false;
  base.fs = graph::Source(graph::SourceOp{"docker-image://" + alias, {}}, c);
  base.config = std::move(resolved->config);
  return base;
}

// K10: an image context that carries its own record is a dependency, under
// the context's name, redacted (K8). Reached contexts only: this runs when a
// stage the target needs is based on the context.
Status Converter::AddImageDep(const std::string& name, const std::string& value,
                              const BaseState& base, const SourceRange& where) {
  for (std::string_view field :
       {buildinfo::kImageConfigField, buildinfo::kImageConfigFieldLegacy}) {
    std::optional<std::string> raw = base.config ? base.config->GetExtraRaw(field) : std::nullopt;
    if (!raw) continue;
    Result<std::optional<buildinfo::BuildInfo>> dep =
        buildinfo::ExtractFromImageConfig("{" + util::GoString(field) + ":" + *raw + "}");
    if (!dep.ok()) {
      return Fail(dep.status().Annotate("named context \"" + name + "\" (" +
                                        buildinfo::RedactUrl(value) + ")"),
                  where);
    }
    if (*dep) {
      buildinfo::RedactRecord(&**dep);
      result_.sources.deps[name.substr(0, name.find("::"))] = std::move(**dep);
    }
    break;
  }
  return Status::Ok();
}

Result<BaseState> Converter::ResolveContext(const std::string& name, const std::string& value,
                                            const image::Platform& platform,
                                            const SourceRange& where) {
  if (value.rfind("oci-layout://", 0) == 0) {
    // An image in an OCI layout directory, read by the resolver into the
    // content store; the op unpacks it by its manifest digest. No source
    // entry: the record's identifiers have no oci-layout scheme (R10); the
    // context:NAME attribute names it, deps carry its record (K10).
    if (opt_.resolver == nullptr) {
      return Fail(Status::FailedPrecondition("named context \"" + name +
                                             "\": no image resolver configured"),
                  where);
    }
    Result<ResolvedImage> resolved = opt_.resolver->ResolveImage(value, platform);
    if (!resolved.ok()) {
      return Fail(resolved.status().Annotate("named context \"" + name + "\""), where);
    }
    std::string path = value.substr(13);
    if (const size_t at = path.rfind('@'); at != std::string::npos) path.resize(at);
    graph::Constraints c;
    c.platform = platform;
    c.description[std::string(kCustomName)] =
        "[context " + name + "] load " + buildinfo::RedactUrl(value);
    BaseState base;
    base.fs =
        graph::Source(graph::SourceOp{"oci-layout://" + path + "@" + resolved->manifest, {}}, c);
    base.config = std::move(resolved->config);
    KILN_RETURN_IF_ERROR(AddImageDep(name, value, base, where));
    return base;
  }
  if (value.rfind("docker-image://", 0) == 0) {
    KILN_ASSIGN_OR_RETURN(BaseState base, ResolveImageBase(value.substr(15), platform, where));
    KILN_RETURN_IF_ERROR(AddImageDep(name, value, base, where));
    return base;
  }
  if (value.rfind("local:", 0) == 0) {
    const std::string local = value.substr(6);
    graph::Constraints c;
    c.description[std::string(kCustomName)] = "[internal] load context " + local;
    BaseState base;
    base.fs =
        graph::Source(graph::SourceOp{"local://" + local, {{"local.sharedkeyhint", local}}}, c);
    return base;
  }
  if (value.rfind("input:", 0) == 0) {
    const std::string input = value.substr(6);
    auto it = opt_.inputs.find(input);
    if (it == opt_.inputs.end()) {
      return Fail(Status::NotFound("named context \"" + name + "\" refers to input \"" + input +
                                   "\", which the build was not given"),
                  where);
    }
    BaseState base;
    base.fs = it->second.state;
    base.config = it->second.config;
    if (it->second.buildinfo) {
      const std::string dep = input.substr(0, input.find("::"));
      result_.sources.deps[dep] = *it->second.buildinfo;
    }
    return base;
  }
  if (IsGitContext(value) || IsUrl(value)) {
    BaseState base;
    graph::Constraints c;
    c.description[std::string(kCustomName)] =
        "[context " + name + "] load " + buildinfo::RedactUrl(value);
    if (IsGitContext(value)) {
      const size_t hash = value.find('#');
      const std::string remote = value.substr(0, hash);
      const std::string frag = hash == std::string::npos ? "" : value.substr(hash + 1);
      buildinfo::GitSourceSpec spec = buildinfo::MakeGitIdentifier(remote, frag);
      base.fs =
          graph::Source(graph::SourceOp{spec.identifier, {{"git.fullurl", spec.full_url}}}, c);
    } else {
      base.fs = graph::Source(
          graph::SourceOp{buildinfo::MakeHttpIdentifier(value), {{"http.filename", "context"}}}, c);
    }
    return base;
  }
  return Fail(Status::Unimplemented("named context \"" + name + "\": unsupported value \"" +
                                    buildinfo::RedactUrl(value) +
                                    "\" (expected docker-image://REF, a directory, a git URL or "
                                    "an HTTP(S) URL)"),
              where);
}

graph::Output Converter::BuildContext() {
  if (context_) return *context_;
  graph::Constraints c;
  c.description[std::string(kCustomName)] = "[internal] load build context";
  if (opt_.context.empty()) {
    context_ =
        graph::Source(graph::SourceOp{"local://context", {{"local.sharedkeyhint", "context"}}}, c);
  } else if (IsGitContext(opt_.context)) {
    const size_t hash = opt_.context.find('#');
    const std::string remote = opt_.context.substr(0, hash);
    const std::string frag = hash == std::string::npos ? "" : opt_.context.substr(hash + 1);
    buildinfo::GitSourceSpec spec = buildinfo::MakeGitIdentifier(remote, frag);
    std::map<std::string, std::string> attrs{{"git.fullurl", spec.full_url}};
    // BuildKit's control arg: the context keeps its .git directory.
    if (auto it = opt_.build_args.find("BUILDKIT_CONTEXT_KEEP_GIT_DIR");
        it != opt_.build_args.end() && (it->second == "1" || it->second == "true")) {
      attrs["git.keepgitdir"] = "true";
    }
    context_ = graph::Source(graph::SourceOp{spec.identifier, std::move(attrs)}, c);
  } else if (!opt_.context_is_archive) {
    // The URL was the Dockerfile itself: the context is empty.
    context_ = graph::Output{};
  } else {
    graph::Output http = graph::Source(graph::SourceOp{buildinfo::MakeHttpIdentifier(opt_.context),
                                                       {{"http.filename", "context"}}},
                                       c);
    graph::FileCopy unpack;
    unpack.source_input = 0;
    unpack.src = "/context";
    unpack.dest = "/";
    unpack.attempt_unpack = true;
    unpack.allow_wildcard = false;
    graph::FileOp op;
    op.actions.push_back(std::move(unpack));
    graph::Constraints uc;
    uc.description[std::string(kCustomName)] = "[internal] unpack build context";
    context_ = graph::Output{graph::MakeVertex(std::move(op), {http}, uc), 0};
  }
  return *context_;
}

Result<graph::Output> Converter::SourceFor(const std::string& from, const StageState& s,
                                           const SourceRange& where,
                                           std::optional<image::ImageConfig>* cfg) {
  if (from.empty()) return BuildContext();
  KILN_ASSIGN_OR_RETURN(int dep, StageForFrom(from, s.platform, where));
  if (stages_[dep].visit == 0) KILN_RETURN_IF_ERROR(Visit(dep));
  KILN_RETURN_IF_ERROR(DispatchStage(dep));
  if (cfg) *cfg = stages_[dep].config;
  return stages_[dep].fs;
}

Status Converter::DispatchRun(StageState& s, RunCommand& c, const std::string& prefix) {
  std::vector<std::string> args = c.cmd.args;
  std::vector<std::string> shell = s.config.config.shell;
  if (shell.empty()) shell = {"/bin/sh", "-c"};
  if (!c.files.empty() && c.cmd.prepend_shell && !args.empty()) {
    // Heredocs are handed to the shell as written: the shell reads the body
    // from its own heredoc, so quoting of the delimiter keeps its meaning.
    const std::string& line = args.front();
    const std::string trimmed = line.substr(line.find_first_not_of(" \t") == std::string::npos
                                                ? line.size()
                                                : line.find_first_not_of(" \t"));
    if (c.files.size() == 1 && trimmed.rfind("<<", 0) == 0 &&
        trimmed.find_first_of(" \t") == std::string::npos) {
      // `RUN <<EOF` alone: the body is the script.
      args = {c.files[0].data};
    } else {
      std::string script = line;
      for (const HeredocFile& f : c.files) script += "\n" + f.data + f.name;
      args = {script};
    }
  }
  if (c.cmd.prepend_shell) {
    std::vector<std::string> full = shell;
    full.insert(full.end(), args.begin(), args.end());
    args = std::move(full);
  }

  graph::ExecOp op;
  op.args = args;
  op.env = s.config.config.env;
  // ENV wins over an ARG of the same name, in the environment and in the
  // history line alike.
  std::map<std::string, std::string, std::less<>> env_values;
  for (auto& [k, v] : ParseEnvList(s.config.config.env)) env_values[k] = v;
  for (const auto& [k, v] : s.args) {
    if (!env_values.count(k)) op.env.push_back(k + "=" + v);
  }
  for (const auto& [k, v] : opt_.build_args) {
    if (kProxyArgs.count(k)) SetEnv(&op.env, k, v);
  }
  op.cwd = s.config.config.working_dir.empty() ? "/" : s.config.config.working_dir;
  op.user = s.config.config.user;
  if (c.network == "none") op.network = graph::NetworkMode::kNone;
  if (c.network == "host") op.network = graph::NetworkMode::kHost;
  if (c.security == "insecure") op.security = graph::SecurityMode::kInsecure;

  std::vector<graph::Output> inputs;
  graph::ExecMount root;
  if (!s.fs.scratch()) {
    inputs.push_back(s.fs);
    root.input = 0;
  }
  root.dest = "/";
  root.output = 0;
  op.mounts.push_back(root);
  int ssh_count = 0;
  for (const Mount& mount : c.mounts) {
    const Mount* m = &mount;
    graph::ExecMount em;
    em.dest = m->target.empty() ? "" : JoinPath(op.cwd, m->target);
    em.readonly = m->read_only;
    switch (m->type) {
      case MountType::kBind: {
        em.type = graph::MountType::kBind;
        KILN_ASSIGN_OR_RETURN(graph::Output src, SourceFor(m->from, s, c.location, nullptr));
        if (!src.scratch()) {
          inputs.push_back(src);
          em.input = static_cast<int>(inputs.size()) - 1;
        }
        em.selector = m->source.empty() ? "" : JoinPath("/", m->source);
        break;
      }
      case MountType::kCache: {
        em.type = graph::MountType::kCache;
        em.cache_id = m->cache_id.empty() ? em.dest : m->cache_id;
        em.sharing = m->sharing == CacheSharing::kPrivate  ? graph::CacheSharing::kPrivate
                     : m->sharing == CacheSharing::kLocked ? graph::CacheSharing::kLocked
                                                           : graph::CacheSharing::kShared;
        if (!m->from.empty()) {
          KILN_ASSIGN_OR_RETURN(graph::Output src, SourceFor(m->from, s, c.location, nullptr));
          if (!src.scratch()) {
            inputs.push_back(src);
            em.input = static_cast<int>(inputs.size()) - 1;
          }
          em.selector = m->source.empty() ? "" : JoinPath("/", m->source);
        }
        if (m->mode) em.mode = *m->mode;
        if (m->uid) em.uid = *m->uid;
        if (m->gid) em.gid = *m->gid;
        break;
      }
      case MountType::kTmpfs:
        em.type = graph::MountType::kTmpfs;
        em.tmpfs_size = m->size_bytes.value_or(0);
        em.readonly = false;
        break;
      case MountType::kSecret:
      case MountType::kSsh: {
        const bool secret = m->type == MountType::kSecret;
        em.type = secret ? graph::MountType::kSecret : graph::MountType::kSsh;
        em.secret_id = m->secret_or_ssh_id;
        if (em.secret_id.empty()) em.secret_id = secret ? BaseName(m->target) : "default";
        if (em.dest.empty()) {
          em.dest = secret ? "/run/secrets/" + em.secret_id
                           : "/run/buildkit/ssh_agent." + std::to_string(ssh_count);
        }
        ++ssh_count;
        em.optional = !m->required;
        em.mode = m->mode.value_or(secret ? 0400 : 0600);
        em.uid = m->uid.value_or(0);
        em.gid = m->gid.value_or(0);
        em.readonly = true;
        break;
      }
    }
    op.mounts.push_back(std::move(em));
  }

  // A container's command, environment and paths travel in the OCI runtime
  // spec, which is JSON: UTF-8 text. crun refuses other bytes; BuildKit's
  // runc path (Go's json.Marshal) turns each into U+FFFD, so what runs is
  // not what was written. Neither runs these bytes: an error at the line.
  // (The exec form's JSON and the words the shell lexer expands have had
  // invalid bytes replaced by U+FFFD already, as in BuildKit; what is left
  // is a shell-form command and build-arg values.)
  auto check_text = [&](std::string_view what, std::string_view text) -> Status {
    const size_t bad = InvalidUtf8At(text);
    if (bad == std::string_view::npos) return Status::Ok();
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[bad]));
    return FailAt(c, Status::InvalidArgument(
                         std::string(what) + " is not valid UTF-8 (byte " + hex + " at offset " +
                         std::to_string(bad) +
                         "): a container's command, environment and paths must be UTF-8 text; "
                         "save the Dockerfile (and any --build-arg value) as UTF-8"));
  };
  for (const std::string& a : op.args) KILN_RETURN_IF_ERROR(check_text("the command", a));
  for (const std::string& e : op.env) {
    const std::string name = e.substr(0, e.find('='));
    if (InvalidUtf8At(name) != std::string_view::npos) {
      KILN_RETURN_IF_ERROR(check_text("the name of an environment variable", name));
    }
    KILN_RETURN_IF_ERROR(check_text("the environment variable " + name, e));
  }
  KILN_RETURN_IF_ERROR(check_text("the working directory", op.cwd));
  KILN_RETURN_IF_ERROR(check_text("the user", op.user));
  for (const graph::ExecMount& m : op.mounts) {
    KILN_RETURN_IF_ERROR(check_text("the mount target " + util::GoString(m.dest), m.dest));
  }

  std::string shown = c.original;
  graph::VertexPtr v = graph::MakeVertex(std::move(op), std::move(inputs),
                                         Constraint(s, prefix + " " + shown, c.location));
  s.fs = graph::Output{v, 0};

  // History: RUN |N K=V ... args (BuildKit's runCommandString).
  std::string created = "RUN";
  std::vector<std::string> arg_words;
  for (const auto& [k, v] : s.args) {
    auto it = env_values.find(k);
    arg_words.push_back(k + "=" + (it == env_values.end() ? v : it->second));
  }
  if (!arg_words.empty()) {
    created += " |" + std::to_string(arg_words.size());
    for (const std::string& w : arg_words) created += " " + w;
  }
  for (const std::string& a : args) created += " " + a;
  History(s, created, true);
  return Status::Ok();
}

Status Converter::DispatchCopy(StageState& s, CopyCommand& c, const std::string& prefix) {
  const std::string cwd = s.config.config.working_dir.empty() ? "/" : s.config.config.working_dir;
  const size_t nsources = c.sources.size() + c.files.size();
  if (nsources == 0) {
    return FailAt(c, Status::InvalidArgument(std::string(c.is_add ? "ADD" : "COPY") +
                                             " requires at least one source"));
  }
  std::string dest = JoinPath(cwd, c.dest);
  const bool dest_is_dir =
      c.dest == "." || c.dest.empty() || c.dest.back() == '/' || c.dest.back() == '.';
  if (dest_is_dir && dest.back() != '/') dest += '/';
  if (nsources > 1 && !dest_is_dir) {
    return FailAt(c, Status::InvalidArgument(
                         "When using " + std::string(c.is_add ? "ADD" : "COPY") +
                         " with more than one source file, the destination must be a directory "
                         "and end with a /"));
  }
  const std::optional<unsigned> mode = c.chmod_mode;
  const std::optional<graph::Owner> owner = ParseOwner(c.chown);
  if (!c.checksum.empty() &&
      (c.sources.size() != 1 || !IsUrl(c.sources[0]) || IsGitContext(c.sources[0]))) {
    return FailAt(c, Status::InvalidArgument(
                         "checksum can't be specified for multiple sources or non-HTTP sources"));
  }

  graph::FileOp op;
  std::vector<graph::Output> inputs;
  graph::Output base = c.link ? graph::Output{} : s.fs;
  if (!base.scratch()) {
    inputs.push_back(base);
    op.base_input = 0;
  }
  auto add_input = [&inputs](const graph::Output& o) {
    inputs.push_back(o);
    return static_cast<int>(inputs.size()) - 1;
  };

  std::optional<graph::Output> from_state;
  for (const std::string& src : c.sources) {
    graph::FileCopy cp;
    cp.dest = dest;
    cp.owner = owner;
    cp.mode = mode;
    if (c.is_add && IsGitContext(src)) {
      // ADD <git url> (Dockerfile 1.5): the checkout's tree goes to dest.
      const size_t hash = src.find('#');
      const std::string remote = src.substr(0, hash);
      const std::string frag = hash == std::string::npos ? "" : src.substr(hash + 1);
      buildinfo::GitSourceSpec spec = buildinfo::MakeGitIdentifier(remote, frag);
      std::map<std::string, std::string> attrs{{"git.fullurl", spec.full_url}};
      if (c.keep_git_dir) attrs["git.keepgitdir"] = "true";
      graph::Constraints gc;
      gc.platform = s.platform;
      gc.ignore_cache = opt_.no_cache;
      gc.description[std::string(kCustomName)] =
          "[internal] load git source " + buildinfo::RedactUrl(src);
      gc.description[std::string(kDescriptionLocation)] =
          opt_.filename + ":" + std::to_string(c.location.start_line);
      graph::Output git = graph::Source(graph::SourceOp{spec.identifier, attrs}, gc);
      cp.source_input = add_input(git);
      cp.src = "/";
      cp.allow_wildcard = false;
      cp.dir_copy_contents = true;
      cp.follow_symlinks = false;
      cp.dest = dest;
    } else if (c.is_add && IsUrl(src)) {
      std::string path = src.substr(src.find("://") + 3);
      const size_t slash = path.find('/');
      path = slash == std::string::npos ? "" : path.substr(slash);
      path = path.substr(0, path.find_first_of("?#"));
      std::string filename = BaseName(path);
      if (filename.empty() || filename == "/" || filename == ".") filename = "__unnamed__";
      std::map<std::string, std::string> attrs{{"http.filename", filename}};
      if (!c.checksum.empty()) attrs["http.checksum"] = c.checksum;
      graph::Constraints hc;
      hc.platform = s.platform;
      hc.ignore_cache = opt_.no_cache;
      hc.description[std::string(kDescriptionLocation)] =
          opt_.filename + ":" + std::to_string(c.location.start_line);
      graph::Output http =
          graph::Source(graph::SourceOp{buildinfo::MakeHttpIdentifier(src), attrs}, hc);
      cp.source_input = add_input(http);
      cp.src = "/" + filename;
      cp.allow_wildcard = false;
      if (!dest_is_dir)
        cp.dest = dest;
      else
        cp.dest = dest + filename;
    } else {
      if (!from_state) {
        Result<graph::Output> fs = SourceFor(c.from, s, c.location, nullptr);
        if (!fs.ok()) return fs.status();
        from_state = *fs;
      }
      if (from_state->scratch()) {
        return FailAt(
            c, Status::NotFound("\"" + src + "\" not found: the source of " +
                                (c.from.empty() ? "the build context" : c.from) + " is empty"));
      }
      cp.source_input = add_input(*from_state);
      cp.src = JoinPath("/", src);
      cp.attempt_unpack = c.is_add;
    }
    op.actions.push_back(std::move(cp));
  }
  if (!c.files.empty()) {
    graph::FileOp files;
    const EnvList env = ExpansionEnv(s);
    for (const HeredocFile& f : c.files) {
      graph::FileMkfile mk;
      mk.path = "/" + f.name;
      mk.mode = mode.value_or(0644);
      if (f.expand) {
        Result<std::string> data =
            Lexer(LexOptions{df_.directives.escape, false, true, true, false})
                .ProcessWord(f.data, env);
        if (!data.ok()) return FailAt(c, data.status());
        mk.data = *data;
      } else {
        mk.data = f.data;
      }
      files.actions.push_back(std::move(mk));
    }
    graph::Constraints fc = Constraint(s, "");
    graph::VertexPtr fv = graph::MakeVertex(std::move(files), {}, fc);
    const int in = add_input(graph::Output{fv, 0});
    for (const HeredocFile& f : c.files) {
      graph::FileCopy cp;
      cp.source_input = in;
      cp.src = "/" + f.name;
      cp.dest = dest_is_dir ? dest + f.name : dest;
      cp.owner = owner;
      cp.mode = mode;
      cp.allow_wildcard = false;
      op.actions.push_back(std::move(cp));
    }
  }

  graph::VertexPtr v = graph::MakeVertex(std::move(op), std::move(inputs),
                                         Constraint(s, prefix + " " + c.original, c.location));
  graph::Output copied{v, 0};
  if (c.link && !s.fs.scratch()) {
    s.fs = graph::Output{graph::MakeVertex(graph::MergeOp{}, {s.fs, copied}, Constraint(s, "")), 0};
  } else {
    s.fs = copied;
  }
  std::string created = c.is_add ? "ADD" : "COPY";
  for (const std::string& src : c.sources) created += " " + src;
  for (const HeredocFile& f : c.files) created += " " + f.name;
  created += " " + c.dest;
  History(s, created, true);
  return Status::Ok();
}

Status Converter::Dispatch(StageState& s, Command& cmd, const std::string& prefix) {
  // Expansion of the fields Docker expands, with this stage's variables.
  if (!std::holds_alternative<ArgCommand>(cmd)) {
    const EnvList env = ExpansionEnv(s);
    Status st = ExpandCommand(
        cmd, [&](std::string_view w) { return lexer_.ProcessWord(w, env); },
        [&](std::string_view w) { return lexer_.ProcessWords(w, env); });
    if (!st.ok()) return Fail(st, Base(cmd).location);
  }
  image::ContainerConfig& cfg = s.config.config;
  return std::visit(
      [&](auto& c) -> Status {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, RunCommand>) {
          return DispatchRun(s, c, prefix);
        } else if constexpr (std::is_same_v<T, CopyCommand>) {
          return DispatchCopy(s, c, prefix);
        } else if constexpr (std::is_same_v<T, EnvCommand>) {
          std::string created = "ENV";
          for (const KeyValue& kv : c.env) {
            SetEnv(&cfg.env, kv.key, kv.value);
            created += " " + kv.key + "=" + kv.value;
          }
          History(s, created, false);
        } else if constexpr (std::is_same_v<T, ArgCommand>) {
          std::string created = "ARG";
          for (const ArgSpec& spec : c.args) {
            const EnvList env = ExpansionEnv(s);
            std::optional<std::string> value;
            if (auto it = opt_.build_args.find(spec.key); it != opt_.build_args.end()) {
              value = it->second;
            } else if (spec.value) {
              Result<std::string> v = lexer_.ProcessWord(*spec.value, env);
              if (!v.ok()) return FailAt(c, v.status());
              value = *v;
            } else if (auto g = LookupEnv(global_, spec.key); g) {
              value = *g;
            }
            created += " " + spec.key + (value ? "=" + *value : "");
            std::erase_if(s.args, [&](const auto& kv) { return kv.first == spec.key; });
            if (value) s.args.emplace_back(spec.key, *value);
          }
          History(s, created, false);
        } else if constexpr (std::is_same_v<T, LabelCommand>) {
          std::string created = "LABEL";
          for (const KeyValue& kv : c.labels) {
            cfg.labels[kv.key] = kv.value;
            created += " " + kv.key + "=" + kv.value;
          }
          History(s, created, false);
        } else if constexpr (std::is_same_v<T, MaintainerCommand>) {
          s.config.author = c.maintainer;
          History(s, "MAINTAINER " + c.maintainer, false);
        } else if constexpr (std::is_same_v<T, ExposeCommand>) {
          std::vector<std::string> ports;
          for (const std::string& p : c.ports) {
            std::string port = p, proto = "tcp";
            if (const size_t slash = p.find('/'); slash != std::string::npos) {
              port = p.substr(0, slash);
              proto = p.substr(slash + 1);
            }
            for (char& ch : proto)
              ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            const size_t dash = port.find('-');
            auto parse = [&](const std::string& t) -> std::optional<long> {
              if (t.empty() || !std::all_of(t.begin(), t.end(), ::isdigit) || t.size() > 5) {
                return std::nullopt;
              }
              const long n = std::strtol(t.c_str(), nullptr, 10);
              return n <= 65535 ? std::optional<long>(n) : std::nullopt;
            };
            std::optional<long> lo = parse(port.substr(0, dash));
            std::optional<long> hi = dash == std::string::npos ? lo : parse(port.substr(dash + 1));
            if (!lo || !hi || *hi < *lo || (proto != "tcp" && proto != "udp" && proto != "sctp")) {
              return FailAt(c, Status::InvalidArgument("invalid port \"" + p +
                                                       "\": expected PORT[-PORT][/tcp|udp|sctp]"));
            }
            for (long n = *lo; n <= *hi; ++n) {
              const std::string spec = std::to_string(n) + "/" + proto;
              cfg.exposed_ports.insert(spec);
              ports.push_back(spec);
            }
          }
          std::string created = "EXPOSE";
          for (const std::string& p : ports) created += " " + p;
          History(s, created, false);
        } else if constexpr (std::is_same_v<T, VolumeCommand>) {
          for (const std::string& v : c.volumes) {
            if (v.empty())
              return FailAt(c,
                            Status::InvalidArgument("VOLUME specified can not be an empty string"));
            cfg.volumes.insert(v);
          }
          History(s, "VOLUME " + PlainList(c.volumes), false);
        } else if constexpr (std::is_same_v<T, UserCommand>) {
          cfg.user = c.user;
          History(s, "USER " + c.user, false);
        } else if constexpr (std::is_same_v<T, WorkdirCommand>) {
          const std::string wd = JoinPath(cfg.working_dir.empty() ? "/" : cfg.working_dir, c.path);
          cfg.working_dir = wd;
          graph::FileOp op;
          std::vector<graph::Output> inputs;
          if (!s.fs.scratch()) {
            inputs.push_back(s.fs);
            op.base_input = 0;
          }
          graph::FileMkdir mk;
          mk.path = wd;
          mk.owner = ParseOwner(cfg.user);
          op.actions.push_back(std::move(mk));
          s.fs =
              graph::Output{graph::MakeVertex(std::move(op), std::move(inputs),
                                              Constraint(s, prefix + " " + c.original, c.location)),
                            0};
          History(s, "WORKDIR " + wd, true);
        } else if constexpr (std::is_same_v<T, CmdCommand>) {
          std::vector<std::string> args = c.cmd.args;
          if (c.cmd.prepend_shell) {
            std::vector<std::string> sh =
                cfg.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : cfg.shell;
            sh.insert(sh.end(), args.begin(), args.end());
            args = std::move(sh);
          }
          cfg.cmd = args;
          s.cmd_set = true;
          History(s, "CMD " + QuoteList(args), false);
        } else if constexpr (std::is_same_v<T, EntrypointCommand>) {
          std::vector<std::string> args = c.cmd.args;
          if (c.cmd.prepend_shell) {
            std::vector<std::string> sh =
                cfg.shell.empty() ? std::vector<std::string>{"/bin/sh", "-c"} : cfg.shell;
            sh.insert(sh.end(), args.begin(), args.end());
            args = std::move(sh);
          }
          cfg.entrypoint = args;
          if (!s.cmd_set) cfg.cmd.clear();
          History(s, "ENTRYPOINT " + QuoteList(args), false);
        } else if constexpr (std::is_same_v<T, ShellCommand>) {
          cfg.shell = c.shell;
          History(s, "SHELL " + QuoteList(c.shell), false);
        } else if constexpr (std::is_same_v<T, StopSignalCommand>) {
          cfg.stop_signal = c.signal;
          History(s, "STOPSIGNAL " + c.signal, false);
        } else if constexpr (std::is_same_v<T, HealthcheckCommand>) {
          image::HealthConfig h;
          h.test = c.test;
          h.interval = c.interval_ns;
          h.timeout = c.timeout_ns;
          h.start_period = c.start_period_ns;
          h.retries = c.retries;
          cfg.healthcheck = std::move(h);
          History(s, "HEALTHCHECK " + QuoteList(c.test), false);
        } else if constexpr (std::is_same_v<T, OnbuildCommand>) {
          cfg.on_build.push_back(c.expression);
          History(s, "ONBUILD " + c.expression, false);
        } else if constexpr (std::is_same_v<T, FromCommand>) {
          return FailAt(c, Status::Internal("FROM inside a stage"));
        }
        return Status::Ok();
      },
      cmd);
}

Status Converter::ResolveBaseOf(int index) {
  StageState& s0 = stages_[index];
  if (s0.base) return Status::Ok();
  const SourceRange where = s0.stage ? s0.stage->from.location : SourceRange{};
  BaseState base;
  if (s0.context) {
    KILN_ASSIGN_OR_RETURN(base, ResolveContext(s0.stage->name, *s0.context, s0.platform, where));
  } else if (s0.base_stage >= 0) {
    // Filled in at dispatch from the base stage's result.
  } else if (auto ctx = LookupContext(s0.base_text, s0.platform)) {
    KILN_ASSIGN_OR_RETURN(base, ResolveContext(s0.base_text, *ctx, s0.platform, where));
  } else if (s0.base_text != "scratch") {
    KILN_ASSIGN_OR_RETURN(base, ResolveImageBase(s0.base_text, s0.platform, where));
  }
  stages_[index].base = std::move(base);
  return Status::Ok();
}

Status Converter::DispatchStage(int index) {
  StageState& s0 = stages_[index];
  if (s0.dispatch == 2) return Status::Ok();
  const SourceRange where = s0.stage ? s0.stage->from.location : SourceRange{};
  if (s0.dispatch == 1) {
    return Fail(Status::InvalidArgument("circular dependency detected on stage: " + s0.display),
                where);
  }
  s0.dispatch = 1;
  KILN_RETURN_IF_ERROR(ResolveBaseOf(index));
  BaseState base = *stages_[index].base;
  if (!stages_[index].context && stages_[index].base_stage >= 0) {
    const int b = stages_[index].base_stage;
    KILN_RETURN_IF_ERROR(DispatchStage(b));
    base.fs = stages_[b].fs;
    base.config = stages_[b].config;
  }
  StageState& s = stages_[index];
  s.fs = base.fs;
  if (base.config) {
    s.config = *base.config;
    s.config.ClearLayouts();
  }
  s.config.created.clear();
  s.config.rootfs = image::RootFS{};
  s.config.architecture = s.platform.architecture;
  s.config.os = s.platform.os;
  s.config.variant = s.platform.variant;
  bool has_path = false;
  for (const std::string& e : s.config.config.env) has_path |= e.rfind("PATH=", 0) == 0;
  if (!has_path) s.config.config.env.push_back("PATH=" + std::string(kDefaultPath));

  // ONBUILD triggers of the base run first, then are cleared.
  std::vector<Command> commands;
  if (!s.context) {
    for (const std::string& trigger : s.config.config.on_build) {
      SourceRange tw;
      Result<Command> c = ParseInstructionText(trigger, &tw);
      if (!c.ok()) {
        return Fail(c.status().Annotate("ONBUILD trigger \"" + trigger + "\" of the base image"),
                    where);
      }
      commands.push_back(std::move(*c));
    }
    s.config.config.on_build.clear();
    if (s.stage) {
      for (const Command& c : s.stage->commands) commands.push_back(c);
    }
  }
  const size_t total = commands.size() + 1;
  for (size_t i = 0; i < commands.size(); ++i) {
    // As BuildKit: a Dockerfile of one stage shows no stage name ("[2/3] RUN").
    const std::string name = df_.stages.size() == 1 ? "" : s.display + " ";
    const std::string prefix =
        "[" + name + std::to_string(i + 2) + "/" + std::to_string(total) + "]";
    KILN_RETURN_IF_ERROR(Dispatch(stages_[index], commands[i], prefix));
  }
  stages_[index].dispatch = 2;
  return Status::Ok();
}

Result<ConvertResult> Converter::Run() {
  SourceRange where;
  Result<Dockerfile> parsed = ParseDockerfile(text_, &where);
  if (!parsed.ok()) return Fail(parsed.status(), where);
  df_ = std::move(*parsed);
  result_.warnings = df_.warnings;
  lexer_ = Lexer(LexOptions{df_.directives.escape});

  // Global scope: platform ARGs, then the ARGs before the first FROM.
  for (auto& kv : PlatformArgs(opt_.target_platform, opt_.build_platform)) global_.push_back(kv);
  for (const ArgCommand& meta : df_.meta_args) {
    for (const ArgSpec& spec : meta.args) {
      global_declared.insert(spec.key);
      std::optional<std::string> value;
      if (auto it = opt_.build_args.find(spec.key); it != opt_.build_args.end()) {
        value = it->second;
      } else if (spec.value) {
        Result<std::string> v = ExpandGlobal(*spec.value);
        if (!v.ok()) return Fail(v.status(), meta.location);
        value = *v;
      }
      std::erase_if(global_, [&](const auto& kv) { return kv.first == spec.key; });
      if (value) global_.emplace_back(spec.key, *value);
    }
  }
  if (df_.stages.empty()) {
    return Fail(Status::InvalidArgument("the Dockerfile has no build stage (no FROM)"), {});
  }

  // Stages: base names and platforms with the global ARGs.
  for (size_t i = 0; i < df_.stages.size(); ++i) {
    const Stage& st = df_.stages[i];
    StageState s;
    s.stage = &st;
    s.display = StageKeyText(st, i);
    Result<std::string> base = ExpandGlobal(st.from.base_name);
    if (!base.ok()) return Fail(base.status(), st.from.location);
    if (base->empty()) {
      return Fail(
          Status::InvalidArgument("base name (" + st.from.base_name + ") should not be blank"),
          st.from.location);
    }
    s.base_text = *base;
    s.platform = opt_.target_platform;
    if (!st.from.platform.empty()) {
      Result<std::string> p = ExpandGlobal(st.from.platform);
      if (!p.ok()) return Fail(p.status(), st.from.location);
      Result<image::Platform> pl = image::ParsePlatform(*p);
      if (!pl.ok()) {
        return Fail(Status::InvalidArgument("failed to parse platform " + *p + ": " +
                                            pl.status().message()),
                    st.from.location);
      }
      s.platform = image::Normalize(*pl);
      s.platform_set = true;
    }
    for (size_t j = 0; j < i; ++j) {
      if (!df_.stages[j].name.empty() && df_.stages[j].name == [&] {
            std::string l;
            for (char c : s.base_text)
              l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            return l;
          }()) {
        s.base_stage = static_cast<int>(j);
      }
    }
    if (!st.name.empty()) {
      if (auto ctx = LookupContext(st.name, s.platform)) s.context = *ctx;
    }
    if (s.base_stage >= 0 && !s.platform_set) s.platform = stages_[s.base_stage].platform;
    stages_.push_back(std::move(s));
  }

  int target = static_cast<int>(df_.stages.size()) - 1;
  if (!opt_.target.empty()) {
    target = FindStage(opt_.target);
    if (target < 0) {
      return Status::InvalidArgument("failed to reach build target " + opt_.target + " in " +
                                     opt_.filename + ": no stage is named \"" + opt_.target + "\"");
    }
  }
  KILN_RETURN_IF_ERROR(Visit(target));
  // Resolve every reached base in stage order (the record lists them so),
  // then convert.
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (stages_[i].reachable) KILN_RETURN_IF_ERROR(ResolveBaseOf(static_cast<int>(i)));
  }
  KILN_RETURN_IF_ERROR(DispatchStage(target));

  StageState& t = stages_[target];
  for (const auto& [k, v] : opt_.labels) t.config.config.labels[k] = v;
  result_.root = t.fs;
  result_.config = t.config;
  result_.target_stage = t.display;
  return std::move(result_);
}

}  // namespace

std::vector<std::pair<std::string, std::string>> PlatformArgs(const image::Platform& target,
                                                              const image::Platform& build) {
  const image::Platform t = image::Normalize(target);
  const image::Platform b = image::Normalize(build);
  return {
      {"BUILDPLATFORM", image::Format(b)},  {"BUILDOS", b.os},
      {"BUILDARCH", b.architecture},        {"BUILDVARIANT", b.variant},
      {"TARGETPLATFORM", image::Format(t)}, {"TARGETOS", t.os},
      {"TARGETARCH", t.architecture},       {"TARGETVARIANT", t.variant},
  };
}

bool IsGitContext(std::string_view context) {
  if (context.rfind("git://", 0) == 0 || context.rfind("github.com/", 0) == 0 ||
      context.rfind("git@", 0) == 0) {
    return true;
  }
  if (IsUrl(context)) {
    std::string_view path = context.substr(0, context.find('#'));
    return path.size() >= 4 && path.substr(path.size() - 4) == ".git";
  }
  return false;
}

Result<ConvertResult> ConvertToGraph(std::string_view dockerfile, const ConvertOptions& options) {
  Converter converter(dockerfile, options);
  return converter.Run();
}

}  // namespace kiln::dockerfile
