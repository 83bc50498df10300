#include "ops/ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "ops/file_actions.h"
#include "snapshot/labels.h"
#include "util/io.h"
#include "util/rootfs.h"

namespace kiln::ops {
namespace {

namespace fs = std::filesystem;
using solver::CacheMap;
using solver::Context;
using solver::RefPtr;

std::string NowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  const time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(ns % 1000000000));
  return buf;
}

std::map<std::string, std::string> CreatedLabel() {
  return {{std::string(snapshot::kLabelCreated), NowRfc3339()}};
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool IsLocalSource(const graph::Output& o) {
  if (o.scratch()) return false;
  const auto* src = std::get_if<graph::SourceOp>(&o.vertex->op);
  return src && StartsWith(src->identifier, "local://");
}

// "/a/b" -> "a/b"; "/" -> ".".
std::string ContextPattern(std::string_view src) {
  while (!src.empty() && src.front() == '/') src.remove_prefix(1);
  return src.empty() ? "." : std::string(src);
}

// `path` ("." or relative) with every symlink resolved inside `root`, as if
// `root` were "/": the result names no symlink, so the host never follows
// one (a bind mount of a stage's `/x -> /etc` must not mount the host's
// /etc). kNotFound when a component does not exist.
Result<std::string> ResolveInRoot(const util::RootDir& root, const std::string& path) {
  auto split = [](std::string_view p) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= p.size()) {
      const size_t slash = std::min(p.find('/', start), p.size());
      if (slash > start) parts.emplace_back(p.substr(start, slash - start));
      start = slash + 1;
    }
    return parts;
  };
  auto join = [](const std::vector<std::string>& parts) {
    std::string out;
    for (const std::string& c : parts) out += (out.empty() ? "" : "/") + c;
    return out;
  };
  std::vector<std::string> done;
  std::vector<std::string> todo = split(path);
  std::reverse(todo.begin(), todo.end());  // a stack: the next component last
  int hops = 0;
  while (!todo.empty()) {
    const std::string c = std::move(todo.back());
    todo.pop_back();
    if (c == ".") continue;
    if (c == "..") {
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(c);
    KILN_ASSIGN_OR_RETURN(struct stat st, root.Lstat(join(done)));
    if (!S_ISLNK(st.st_mode)) continue;
    KILN_ASSIGN_OR_RETURN(std::string target, root.Readlink(join(done)));
    if (++hops > 40) {
      return Status::InvalidArgument("too many levels of symbolic links in \"" + path + "\"");
    }
    done.pop_back();
    if (!target.empty() && target.front() == '/') done.clear();
    std::vector<std::string> parts = split(target);
    todo.insert(todo.end(), parts.rbegin(), parts.rend());
  }
  return done.empty() ? std::string(".") : join(done);
}

// A context pattern for a cache key, with symlinks resolved the way COPY
// and bind mounts follow them, so that the key covers the content behind a
// symlinked source, not the link alone. Wildcard patterns and paths that do
// not resolve are returned unchanged.
std::string ResolveInContext(const util::RootDir& root, const std::string& pattern) {
  if (pattern.find_first_of("*?[\\") != std::string::npos) return pattern;
  Result<std::string> resolved = ResolveInRoot(root, pattern);
  return resolved.ok() ? *resolved : pattern;
}

// The host path to bind for `sel` of a snapshot mounted at `dir`.
Result<fs::path> BindSource(const fs::path& dir, const std::string& sel) {
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(dir));
  Result<std::string> resolved = ResolveInRoot(root, sel);
  if (!resolved.ok()) {
    return resolved.status().Annotate("bind mount source \"/" + (sel == "." ? "" : sel) + "\"");
  }
  return *resolved == "." ? dir : dir / *resolved;
}

// A read-only tree an op reads from: a mounted snapshot or a build context.
struct InputTree {
  std::optional<snapshot::View> view;
  std::optional<util::RootDir> root;
  std::shared_ptr<source::LocalContext> local;
};

Result<InputTree> OpenInput(Environment* env, const RefPtr& ref) {
  InputTree t;
  if (const auto* local = dynamic_cast<const LocalRef*>(ref.get())) {
    t.local = local->context();
    return t;
  }
  KILN_ASSIGN_OR_RETURN(std::string id, SnapshotOf(ref));
  KILN_ASSIGN_OR_RETURN(snapshot::View view, env->snapshots->Mount(id));
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(view.path()));
  t.view.emplace(std::move(view));
  t.root.emplace(std::move(root));
  return t;
}

CopySource AsCopySource(const InputTree& t) {
  CopySource cs;
  if (t.local) {
    cs.root = &t.local->root();
    auto ctx = t.local;
    cs.excluded = [ctx](std::string_view p) { return ctx->Excluded(p); };
    cs.may_include_below = [ctx](std::string_view d) { return ctx->MayIncludeBelow(d); };
    cs.keep_owner = false;
  } else {
    cs.root = &*t.root;
    cs.keep_owner = true;
  }
  return cs;
}

// Copies `sel` ("." or a relative path) of the build context into the
// empty directory `dest` as COPY would (.dockerignore applies, symlinks
// resolve inside the context, owners become 0:0). Returns the path to bind:
// `dest` for a directory, `dest/<name>` for a file.
Result<fs::path> CopyContext(const std::shared_ptr<source::LocalContext>& context,
                             const std::string& sel, const fs::path& dest) {
  Result<struct stat> st = context->root().Stat(sel);
  if (!st.ok()) return st.status().Annotate("bind mount of the build context's \"" + sel + "\"");
  graph::FileCopy all;
  all.source_input = 0;
  all.src = sel == "." ? "/" : "/" + sel;
  all.dest = "/";
  all.follow_symlinks = true;
  all.allow_wildcard = false;
  all.dir_copy_contents = true;
  InputTree t;
  t.local = context;
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(dest));
  KILN_RETURN_IF_ERROR(ApplyFileActions(root, {all}, {AsCopySource(t)}, FileActionContext{}));
  if (S_ISDIR(st->st_mode)) return dest;
  return dest / fs::path(sel).filename();
}

// ---------------------------------------------------------------- source

class SourceOpImpl : public solver::Op {
 public:
  SourceOpImpl(Environment* env, graph::VertexPtr v, std::shared_ptr<PinTable> pins)
      : env_(env),
        v_(std::move(v)),
        op_(std::get<graph::SourceOp>(v_->op)),
        pins_(std::move(pins)) {}

  bool cacheable() const override { return !StartsWith(op_.identifier, "local://"); }

  Result<CacheMap> GetCacheMap(Context& ctx) override {
    CacheMap cm;
    cm.digest = v_->digest;
    const std::string& id = op_.identifier;
    if (StartsWith(id, "docker-image://") || StartsWith(id, "oci-layout://")) {
      const size_t at = id.rfind('@');
      if (at != std::string::npos) pins_->Set(id, id.substr(at + 1));
    } else if (StartsWith(id, "http://") || StartsWith(id, "https://")) {
      if (!env_->http) return Status::Internal("no HTTP source configured");
      source::HttpFetchOptions fo;
      fo.cancel = ctx.cancel;
      if (auto it = op_.attrs.find("http.checksum"); it != op_.attrs.end()) {
        KILN_ASSIGN_OR_RETURN(util::Digest want, util::Digest::Parse(it->second));
        fo.checksum = want;
      }
      KILN_ASSIGN_OR_RETURN(source::HttpFile file, env_->http->Fetch(id, fo));
      pins_->Set(id, file.digest.str());
      cm.digest = util::Sha256Of(v_->digest.str() + " " + file.digest.str());
      file_ = file;
    } else if (StartsWith(id, "git://")) {
      if (!env_->git) return Status::Internal("no git source configured");
      KILN_ASSIGN_OR_RETURN(source::GitRef ref, GitRefOf(op_));
      source::GitOptions go;
      go.secrets = env_->secrets;
      go.cancel = ctx.cancel;
      KILN_ASSIGN_OR_RETURN(source::GitResolved resolved,
                            env_->git_refs->Resolve(env_->git, ref, go));
      pins_->Set(id, resolved.commit);
      cm.digest = util::Sha256Of(v_->digest.str() + " " + resolved.commit);
      git_.emplace(GitCheckout{std::move(ref), std::move(resolved)});
    } else if (!StartsWith(id, "local://")) {
      return Status::Unimplemented("unsupported source " + source::RedactUrl(id));
    }
    return cm;
  }

  Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>&) override {
    const std::string& id = op_.identifier;
    if (StartsWith(id, "docker-image://")) {
      if (!env_->images) return Status::Internal("no image source configured");
      const image::Platform platform = v_->constraints.platform.value_or(image::Platform{});
      KILN_ASSIGN_OR_RETURN(source::PulledImage pulled,
                            env_->images->Pull(id.substr(15), platform, ctx.cancel));
      return std::vector<RefPtr>{std::make_shared<SnapshotRef>(pulled.snapshot)};
    }
    if (StartsWith(id, "oci-layout://")) {
      // Imported into the store by the frontend's resolver (cli/resolver.h).
      if (!env_->images) return Status::Internal("no image source configured");
      const size_t at = id.rfind('@');
      if (at == std::string::npos) {
        return Status::InvalidArgument("oci-layout source without a digest: " + id);
      }
      KILN_ASSIGN_OR_RETURN(util::Digest manifest, util::Digest::Parse(id.substr(at + 1)));
      KILN_ASSIGN_OR_RETURN(source::PulledImage pulled,
                            env_->images->Unpack(id.substr(0, at), manifest, ctx.cancel));
      return std::vector<RefPtr>{std::make_shared<SnapshotRef>(pulled.snapshot)};
    }
    if (StartsWith(id, "local://")) {
      const std::string name = id.substr(8);
      auto it = env_->locals.find(name);
      if (it == env_->locals.end()) {
        return Status::NotFound("local context \"" + name + "\" was not given to the build");
      }
      return std::vector<RefPtr>{std::make_shared<LocalRef>(it->second)};
    }
    if (StartsWith(id, "git://")) return ExecGit(ctx);
    return ExecHttp();
  }

 private:
  struct GitCheckout {
    source::GitRef ref;
    source::GitResolved resolved;
  };

  Result<std::vector<RefPtr>> ExecGit(Context& ctx) {
    if (!git_) return Status::Internal("git source run before its cache key");
    source::GitCheckoutOptions co;
    if (auto it = op_.attrs.find("git.keepgitdir"); it != op_.attrs.end()) {
      co.keep_git_dir = it->second == "true";
    }
    const std::string heads = "refs/heads/";
    if (co.keep_git_dir && git_->resolved.is_branch && StartsWith(git_->resolved.ref_name, heads)) {
      co.branch = git_->resolved.ref_name.substr(heads.size());
    }
    source::GitOptions go;
    go.secrets = env_->secrets;
    go.cancel = ctx.cancel;
    KILN_ASSIGN_OR_RETURN(std::string snap,
                          env_->git->CheckoutSnapshot(git_->ref, git_->resolved.commit, co, go));
    return std::vector<RefPtr>{std::make_shared<SnapshotRef>(snap)};
  }

  Result<std::vector<RefPtr>> ExecHttp() {
    if (!file_) return Status::Internal("HTTP source run before its cache key");
    std::string filename = file_->filename;
    if (auto it = op_.attrs.find("http.filename"); it != op_.attrs.end()) filename = it->second;
    unsigned perm = 0600;
    if (auto it = op_.attrs.find("http.perm"); it != op_.attrs.end()) {
      perm = static_cast<unsigned>(std::stoul(it->second, nullptr, 8)) & 07777;
    }
    KILN_ASSIGN_OR_RETURN(snapshot::Active active, env_->snapshots->Prepare(""));
    {  // Everything open in the mount is closed before Commit unmounts it.
      KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(active.path()));
      KILN_ASSIGN_OR_RETURN(util::UniqueFd out,
                            root.OpenAt(filename, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, perm));
      if (!env_->store) return Status::Internal("no content store configured");
      KILN_ASSIGN_OR_RETURN(content::BlobReader reader, env_->store->OpenReader(file_->digest));
      util::ByteSource src = [&reader](char* b, size_t c) { return reader.Read(b, c); };
      KILN_RETURN_IF_ERROR(util::Pump(src, util::FdSink(out.get())));
      if (::fchmod(out.get(), perm) != 0) return Status::IOError("chmod " + filename);
      if (file_->last_modified_unix > 0) {
        struct timespec ts[2];
        ts[0].tv_sec = ts[1].tv_sec = file_->last_modified_unix;
        ts[0].tv_nsec = ts[1].tv_nsec = 0;
        (void)::futimens(out.get(), ts);
      }
    }
    KILN_ASSIGN_OR_RETURN(std::string snap, active.Commit(CreatedLabel()));
    return std::vector<RefPtr>{std::make_shared<SnapshotRef>(snap)};
  }
  Environment* env_;
  graph::VertexPtr v_;
  const graph::SourceOp& op_;
  std::shared_ptr<PinTable> pins_;
  std::optional<source::HttpFile> file_;
  std::optional<GitCheckout> git_;
};

// ---------------------------------------------------------------- exec

class ExecOpImpl : public solver::Op {
 public:
  ExecOpImpl(Environment* env, graph::VertexPtr v)
      : env_(env), v_(std::move(v)), op_(std::get<graph::ExecOp>(v_->op)) {}

  Result<CacheMap> GetCacheMap(Context&) override {
    CacheMap cm;
    cm.digest = v_->digest;
    cm.deps.resize(v_->inputs.size());
    for (const graph::ExecMount& m : op_.mounts) {
      if (m.input < 0 || m.type != graph::MountType::kBind) continue;
      if (!IsLocalSource(v_->inputs[m.input])) continue;
      std::string selector = ContextPattern(m.selector);
      cm.deps[m.input].content = [selector](Context&, const RefPtr& in) -> Result<util::Digest> {
        const auto* local = dynamic_cast<const LocalRef*>(in.get());
        if (!local) return Status::Internal("bind mount of a context without a context");
        std::vector<std::string> patterns;
        const std::string resolved = ResolveInContext(local->context()->root(), selector);
        if (resolved != ".") patterns.push_back(resolved);
        return local->context()->Checksum(patterns);
      };
    }
    return cm;
  }

  Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>& inputs) override {
    std::vector<RefPtr> outputs(static_cast<size_t>(v_->num_outputs));
    const graph::ExecMount& rootm = op_.mounts[0];
    std::string parent;
    if (rootm.input >= 0) {
      KILN_ASSIGN_OR_RETURN(parent, SnapshotOf(inputs[rootm.input]));
    }
    KILN_ASSIGN_OR_RETURN(snapshot::Active root, env_->snapshots->Prepare(parent));

    executor::RunOptions ro;
    ro.rootfs = root.path();
    ro.cancel = ctx.cancel;
    ro.on_stdout = ctx.log;
    ro.on_stderr = ctx.log;
    if (v_->constraints.platform) ro.arch = v_->constraints.platform->architecture;
    std::vector<InputTree> views;
    views.reserve(op_.mounts.size());
    std::vector<std::pair<int, snapshot::Active>> writable;  // (output, active)
    std::vector<snapshot::Active> context_copies;            // discarded after the run
    for (size_t i = 1; i < op_.mounts.size(); ++i) {
      const graph::ExecMount& m = op_.mounts[i];
      executor::Mount em;
      em.dest = m.dest;
      switch (m.type) {
        case graph::MountType::kBind: {
          em.type = executor::Mount::Type::kBind;
          em.readonly = m.readonly;
          std::string sel = ContextPattern(m.selector);
          if (m.input < 0) {
            KILN_ASSIGN_OR_RETURN(snapshot::Active a, env_->snapshots->Prepare(""));
            em.source = a.path().string();
            writable.emplace_back(m.output, std::move(a));
          } else if (const auto* local = dynamic_cast<const LocalRef*>(inputs[m.input].get())) {
            // The context as COPY sees it: a copy of the selected path, with
            // .dockerignore applied and symlinks resolved inside the
            // context. Binding the directory itself would show ignored
            // files and follow a symlink out of the context to the host.
            KILN_ASSIGN_OR_RETURN(snapshot::Active a, env_->snapshots->Prepare(""));
            KILN_ASSIGN_OR_RETURN(fs::path copied, CopyContext(local->context(), sel, a.path()));
            em.source = copied.string();
            em.readonly = true;
            context_copies.push_back(std::move(a));
          } else if (!m.readonly) {
            KILN_ASSIGN_OR_RETURN(std::string id, SnapshotOf(inputs[m.input]));
            KILN_ASSIGN_OR_RETURN(snapshot::Active a, env_->snapshots->Prepare(id));
            KILN_ASSIGN_OR_RETURN(fs::path source, BindSource(a.path(), sel));
            em.source = source.string();
            writable.emplace_back(m.output, std::move(a));
          } else {
            KILN_ASSIGN_OR_RETURN(InputTree t, OpenInput(env_, inputs[m.input]));
            KILN_ASSIGN_OR_RETURN(fs::path source, BindSource(t.view->path(), sel));
            em.source = source.string();
            views.push_back(std::move(t));
          }
          break;
        }
        case graph::MountType::kCache: {
          em.type = executor::Mount::Type::kBind;
          const std::string key =
              std::string(util::Sha256Of(m.cache_id.empty() ? m.dest : m.cache_id).hex());
          fs::path dir = env_->cache_mounts_dir / key.substr(0, 32);
          std::error_code ec;
          fs::create_directories(dir, ec);
          if (ec) return Status::IOError("cache mount " + dir.string() + ": " + ec.message());
          em.source = dir.string();
          break;
        }
        case graph::MountType::kTmpfs:
          em.type = executor::Mount::Type::kTmpfs;
          em.tmpfs_size = m.tmpfs_size;
          break;
        case graph::MountType::kSecret: {
          auto it = env_->secrets.find(m.secret_id);
          if (it == env_->secrets.end()) {
            if (m.optional) continue;
            return Status::NotFound("secret \"" + m.secret_id +
                                    "\" was not provided: pass it with --secret id=" + m.secret_id +
                                    ",src=FILE");
          }
          em.type = executor::Mount::Type::kSecret;
          em.data = it->second;
          em.uid = m.uid;
          em.gid = m.gid;
          em.mode = m.mode ? m.mode : 0400;
          break;
        }
        case graph::MountType::kSsh:
          return Status::Unimplemented("RUN --mount=type=ssh is not supported by kiln build yet");
      }
      ro.mounts.push_back(std::move(em));
    }

    executor::ProcessSpec ps;
    ps.args = op_.args;
    ps.env = op_.env;
    ps.cwd = op_.cwd.empty() ? "/" : op_.cwd;
    ps.user = op_.user;
    if (!op_.hostname.empty()) ps.hostname = op_.hostname;
    switch (op_.network) {
      case graph::NetworkMode::kSandbox:
        ps.network = executor::Network::kSandbox;
        break;
      case graph::NetworkMode::kHost:
        ps.network = executor::Network::kHost;
        break;
      case graph::NetworkMode::kNone:
        ps.network = executor::Network::kNone;
        break;
    }
    if (!env_->executor) return Status::Internal("no executor configured");
    KILN_ASSIGN_OR_RETURN(executor::Executor * executor, env_->executor());
    KILN_RETURN_IF_ERROR(executor->Run(ps, ro));
    views.clear();

    if (rootm.output >= 0) {
      KILN_ASSIGN_OR_RETURN(std::string id, root.Commit(CreatedLabel()));
      outputs[rootm.output] = std::make_shared<SnapshotRef>(id);
    }
    for (auto& [out, active] : writable) {
      if (out < 0) continue;
      KILN_ASSIGN_OR_RETURN(std::string id, active.Commit(CreatedLabel()));
      outputs[out] = std::make_shared<SnapshotRef>(id);
    }
    for (RefPtr& r : outputs) {
      if (!r) r = std::make_shared<SnapshotRef>("");
    }
    return outputs;
  }

 private:
  Environment* env_;
  graph::VertexPtr v_;
  const graph::ExecOp& op_;
};

// ---------------------------------------------------------------- file

class FileOpImpl : public solver::Op {
 public:
  FileOpImpl(Environment* env, graph::VertexPtr v)
      : env_(env), v_(std::move(v)), op_(std::get<graph::FileOp>(v_->op)) {}

  Result<CacheMap> GetCacheMap(Context&) override {
    CacheMap cm;
    cm.digest = v_->digest;
    cm.deps.resize(v_->inputs.size());
    std::map<int, std::vector<std::string>> patterns;
    for (const graph::FileAction& a : op_.actions) {
      if (const auto* cp = std::get_if<graph::FileCopy>(&a)) {
        if (IsLocalSource(v_->inputs[cp->source_input])) {
          patterns[cp->source_input].push_back(ContextPattern(cp->src));
        }
      }
    }
    for (auto& [input, pats] : patterns) {
      cm.deps[input].content = [pats = pats](Context&, const RefPtr& in) -> Result<util::Digest> {
        const auto* local = dynamic_cast<const LocalRef*>(in.get());
        if (!local) return Status::Internal("copy from a context without a context");
        std::vector<std::string> resolved;
        for (const std::string& p : pats) {
          resolved.push_back(ResolveInContext(local->context()->root(), p));
        }
        return local->context()->Checksum(resolved);
      };
    }
    return cm;
  }

  Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>& inputs) override {
    std::string base;
    if (op_.base_input >= 0) {
      KILN_ASSIGN_OR_RETURN(base, SnapshotOf(inputs[op_.base_input]));
    }
    std::vector<InputTree> trees(inputs.size());
    std::vector<CopySource> sources(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (static_cast<int>(i) == op_.base_input) continue;
      KILN_ASSIGN_OR_RETURN(trees[i], OpenInput(env_, inputs[i]));
      sources[i] = AsCopySource(trees[i]);
    }
    KILN_RETURN_IF_ERROR(ctx.cancel->Check());
    KILN_ASSIGN_OR_RETURN(snapshot::Active active, env_->snapshots->Prepare(base));
    {
      KILN_ASSIGN_OR_RETURN(util::RootDir dest, util::RootDir::Open(active.path()));
      FileActionContext fac;
      fac.cancel = ctx.cancel;
      KILN_RETURN_IF_ERROR(ApplyFileActions(dest, op_.actions, sources, fac));
    }
    trees.clear();
    KILN_ASSIGN_OR_RETURN(std::string id, active.Commit(CreatedLabel()));
    return std::vector<RefPtr>{std::make_shared<SnapshotRef>(id)};
  }

 private:
  Environment* env_;
  graph::VertexPtr v_;
  const graph::FileOp& op_;
};

// ---------------------------------------------------------------- merge

class MergeOpImpl : public solver::Op {
 public:
  MergeOpImpl(Environment* env, graph::VertexPtr v) : env_(env), v_(std::move(v)) {}

  Result<CacheMap> GetCacheMap(Context&) override {
    CacheMap cm;
    cm.digest = v_->digest;
    cm.deps.resize(v_->inputs.size());
    return cm;
  }

  Result<std::vector<RefPtr>> Exec(Context& ctx, const std::vector<RefPtr>& inputs) override {
    std::string base;
    size_t first = 0;
    if (!inputs.empty()) {
      KILN_ASSIGN_OR_RETURN(base, SnapshotOf(inputs[0]));
      first = 1;
    }
    KILN_ASSIGN_OR_RETURN(snapshot::Active active, env_->snapshots->Prepare(base));
    {
      KILN_ASSIGN_OR_RETURN(util::RootDir dest, util::RootDir::Open(active.path()));
      for (size_t i = first; i < inputs.size(); ++i) {
        KILN_RETURN_IF_ERROR(ctx.cancel->Check());
        KILN_ASSIGN_OR_RETURN(InputTree t, OpenInput(env_, inputs[i]));
        graph::FileCopy all;
        all.source_input = 0;
        all.src = "/";
        all.dest = "/";
        all.follow_symlinks = false;
        all.allow_wildcard = false;
        all.dir_copy_contents = true;
        std::vector<graph::FileAction> actions{all};
        FileActionContext fac;
        fac.cancel = ctx.cancel;
        KILN_RETURN_IF_ERROR(ApplyFileActions(dest, actions, {AsCopySource(t)}, fac));
      }
    }
    KILN_ASSIGN_OR_RETURN(std::string id, active.Commit(CreatedLabel()));
    return std::vector<RefPtr>{std::make_shared<SnapshotRef>(id)};
  }

 private:
  Environment* env_;
  graph::VertexPtr v_;
};

std::string VertexName(const graph::Vertex& v) {
  auto it = v.constraints.description.find(std::string(graph::kDescriptionName));
  if (it != v.constraints.description.end()) return it->second;
  if (const auto* src = std::get_if<graph::SourceOp>(&v.op)) {
    return source::RedactUrl(src->identifier);
  }
  return std::string(graph::OpKindName(v.op)) + " " + std::string(v.digest.hex().substr(0, 12));
}

}  // namespace

void PinTable::Set(const std::string& identifier, const std::string& pin) {
  std::lock_guard<std::mutex> lock(mu_);
  pins_[identifier] = pin;
}

std::optional<std::string> PinTable::Get(const std::string& identifier) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pins_.find(identifier);
  if (it == pins_.end()) return std::nullopt;
  return it->second;
}

Result<source::GitResolved> GitRefCache::Resolve(source::GitSource* git, const source::GitRef& ref,
                                                 const source::GitOptions& options) {
  // Held across the ls-remote: two ops asking for the same ref wait for one
  // answer instead of asking twice (refs of other remotes wait too; a build
  // has few).
  std::lock_guard<std::mutex> lock(mu_);
  const std::string key = ref.remote + "#" + ref.ref;
  if (auto it = resolved_.find(key); it != resolved_.end()) return it->second;
  KILN_ASSIGN_OR_RETURN(source::GitResolved r, git->Resolve(ref, options));
  resolved_.emplace(key, r);
  return r;
}

Result<source::GitRef> GitRefOf(const graph::SourceOp& op) {
  const std::string& id = op.identifier;
  if (!StartsWith(id, "git://")) {
    return Status::InvalidArgument("not a git source: " + source::RedactUrl(id));
  }
  const size_t hash = id.find('#');
  std::string url;
  if (auto it = op.attrs.find("git.fullurl"); it != op.attrs.end() && !it->second.empty()) {
    url = it->second;
  } else {
    url = id.substr(6, hash == std::string::npos ? std::string::npos : hash - 6);
  }
  if (hash != std::string::npos && hash + 1 < id.size()) url += id.substr(hash);
  source::GitParseOptions po;
  po.assume_git = true;
  return source::ParseGitRef(url, po);
}

Result<std::string> SnapshotOf(const solver::RefPtr& ref) {
  if (const auto* s = dynamic_cast<const SnapshotRef*>(ref.get())) return s->id();
  if (!ref) return Status::Internal("missing result");
  return Status::InvalidArgument(
      "a build context cannot be used as a filesystem here (only as a COPY source or bind mount)");
}

Result<Plan> PlanGraph(const graph::Definition& def, Environment* env) {
  Plan plan;
  plan.pins = std::make_shared<PinTable>();
  std::map<util::Digest, size_t> index;
  for (const graph::VertexPtr& v : def.vertices) {
    solver::Vertex sv;
    sv.digest = v->digest;
    sv.name = VertexName(*v);
    sv.ignore_cache = v->constraints.ignore_cache;
    for (const graph::Output& in : v->inputs) {
      if (in.scratch()) {
        return Status::Internal("scratch inputs are not supported by the solver plan");
      }
      auto it = index.find(in.vertex->digest);
      if (it == index.end()) return Status::Internal("graph input after its user");
      sv.inputs.push_back(solver::Edge{it->second, in.index});
    }
    if (std::holds_alternative<graph::SourceOp>(v->op)) {
      sv.op = std::make_shared<SourceOpImpl>(env, v, plan.pins);
    } else if (std::holds_alternative<graph::ExecOp>(v->op)) {
      sv.op = std::make_shared<ExecOpImpl>(env, v);
    } else if (std::holds_alternative<graph::FileOp>(v->op)) {
      sv.op = std::make_shared<FileOpImpl>(env, v);
    } else {
      sv.op = std::make_shared<MergeOpImpl>(env, v);
    }
    index.emplace(v->digest, plan.vertices.size());
    plan.vertices.push_back(std::move(sv));
  }
  std::vector<graph::Output> roots = def.roots;
  if (roots.empty()) roots.push_back(def.root);
  for (const graph::Output& r : roots) {
    if (r.scratch()) {
      plan.roots.push_back(solver::Edge{});
      plan.roots_scratch.push_back(true);
      continue;
    }
    auto it = index.find(r.vertex->digest);
    if (it == index.end()) return Status::Internal("root vertex not in the definition");
    plan.roots.push_back(solver::Edge{it->second, r.index});
    plan.roots_scratch.push_back(false);
  }
  plan.root = plan.roots.front();
  plan.root_scratch = plan.roots_scratch.front();
  return plan;
}

solver::Loader MakeLoader(Environment* env) {
  return [env](std::string_view s) -> Result<RefPtr> {
    if (!StartsWith(s, "snapshot:")) return Status::NotFound("unknown cache record");
    std::string id(s.substr(9));
    if (!id.empty()) {
      Result<snapshot::Info> info = env->snapshots->Stat(id);
      if (!info.ok()) return Status::NotFound("snapshot " + id + " is gone");
    }
    return RefPtr(std::make_shared<SnapshotRef>(std::move(id)));
  };
}

}  // namespace kiln::ops
