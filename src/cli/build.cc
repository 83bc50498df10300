#include "cli/build.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "buildinfo/attrs.h"
#include "buildinfo/exporter.h"
#include "buildinfo/merge.h"
#include "buildinfo/redact.h"
#include "buildinfo/walk.h"
#include "cli/config.h"
#include "cli/progress.h"
#include "cli/ref_index.h"
#include "cli/resolver.h"
#include "cli/secret_spec.h"
#include "content/store.h"
#include "executor/executor.h"
#include "exporter/image_writer.h"
#include "exporter/outputs.h"
#include "frontend/dockerfile/convert.h"
#include "graph/graph.h"
#include "image/platform.h"
#include "image/reference.h"
#include "ops/ops.h"
#include "registry/client.h"
#include "snapshot/labels.h"
#include "snapshot/snapshotter.h"
#include "solver/cache_store.h"
#include "solver/solver.h"
#include "source/dockerignore.h"
#include "source/git.h"
#include "source/http.h"
#include "source/image.h"
#include "source/local.h"
#include "util/base64.h"
#include "util/cancel.h"
#include "util/io.h"
#include "util/metrics.h"
#include "util/owner.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
namespace bi = buildinfo;

Result<std::string> ReadText(const fs::path& path, std::string_view what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::NotFound("cannot read " + std::string(what) + " " + path.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Removes what killed kiln processes left under ROOT (util/owner.h):
// containers (killed first), bundles and runtime state, snapshot temp
// entries and mount points, ingest files. With `exclusive` (the caller holds
// ROOT/lock exclusively, so no build is running) entries without an owner
// tag (an older kiln's) go too. Says on stderr what it removed.
Status ReapStale(const fs::path& root, bool exclusive) {
  KILN_ASSIGN_OR_RETURN(util::StaleOwners owners, util::StaleOwners::Find(root));
  auto stale = [&](std::string_view name) { return owners.IsStale(name, exclusive); };
  util::ReapStats total;
  std::error_code ec;
  if (fs::exists(root / "executor", ec)) {
    KILN_ASSIGN_OR_RETURN(util::ReapStats s, executor::ReapContainers(root / "executor", stale));
    total.Add(s);
  }
  for (const char* dir : {"snapshots", "snapshots-copy"}) {
    if (!fs::exists(root / dir, ec)) continue;
    KILN_ASSIGN_OR_RETURN(util::ReapStats s, snapshot::ReapTemp(root / dir, stale));
    total.Add(s);
  }
  if (fs::exists(root / "content" / "ingest", ec)) {
    KILN_ASSIGN_OR_RETURN(content::Store store, content::Store::Open(root / "content"));
    // Ingest files of processes that never register (kiln pull) are left
    // to their lock and their age.
    KILN_ASSIGN_OR_RETURN(util::ReapStats s,
                          store.ReapIngest(stale, std::chrono::seconds(exclusive ? 0 : 60)));
    total.Add(s);
  }
  if (total.items > 0) {
    std::fprintf(stderr, "reaped %llu stale item%s (%s) left by a killed kiln\n",
                 static_cast<unsigned long long>(total.items), total.items == 1 ? "" : "s",
                 HumanSize(total.bytes).c_str());
  }
  return Status::Ok();
}

// ROOT/lock: shared by builds, exclusive for prune. Taking it registers
// this process as an owner of temporary entries under ROOT and reaps what
// killed processes left.
class RootLock {
 public:
  static Result<RootLock> Acquire(const fs::path& root, bool exclusive) {
    KILN_RETURN_IF_ERROR(PrepareRoot(root));  // 0700
    const fs::path p = root / "lock";
    util::UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return Status::IOError("cannot open " + p.string());
    if (::flock(fd.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
      return Status::IOError("cannot lock " + p.string());
    }
    RootLock lock(std::move(fd));
    KILN_ASSIGN_OR_RETURN(lock.owner_, util::OwnerRegistration::Register(root));
    KILN_RETURN_IF_ERROR(ReapStale(root, exclusive));
    return lock;
  }

 private:
  explicit RootLock(util::UniqueFd fd) : fd_(std::move(fd)) {}
  util::UniqueFd fd_;
  util::OwnerRegistration owner_;
};

// SIGINT and SIGTERM cancel the build; a dedicated thread waits for them.
class SignalWatcher {
 public:
  explicit SignalWatcher(util::Canceller* cancel) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    thread_ = std::thread([cancel, set] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGUSR2) return;
        cancel->Cancel(sig == SIGINT ? "build cancelled (interrupted)"
                                     : "build cancelled (terminated)");
      }
    });
  }
  ~SignalWatcher() {
    pthread_kill(thread_.native_handle(), SIGUSR2);
    thread_.join();
  }

 private:
  std::thread thread_;
};

Result<std::map<std::string, std::string>> ParseSecrets(const std::vector<std::string>& specs) {
  std::map<std::string, std::string> out;
  for (const std::string& spec : specs) {
    KILN_ASSIGN_OR_RETURN(SecretSpec parsed, ParseSecretSpec(spec));
    const std::string& id = parsed.id;
    const std::string& src = parsed.src;
    const std::string& env = parsed.env;
    if (!src.empty()) {
      Result<std::string> data = ReadText(src, "secret file");
      if (!data.ok()) return Status::NotFound("--secret id=" + id + ": cannot read " + src);
      out[id] = *data;
    } else {
      const char* v = std::getenv((env.empty() ? id : env).c_str());
      if (!v) {
        return Status::NotFound("--secret id=" + id + ": environment variable " +
                                (env.empty() ? id : env) + " is not set");
      }
      out[id] = v;
    }
  }
  return out;
}

// SOURCE_DATE_EPOCH: whole seconds since 1970, as BuildKit and buildah take it.
Result<int64_t> ParseSourceDateEpoch(const std::string& value) {
  int64_t v = -1;
  size_t used = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < 0) {
    return Status::InvalidArgument("SOURCE_DATE_EPOCH=\"" + value +
                                   "\" is not a number of seconds since 1970 (e.g. "
                                   "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct))");
  }
  return v;
}

// ROOT/snapshots with the driver KILN_SNAPSHOTTER names ("overlay", the
// default where it works, or "copy").
Result<std::shared_ptr<snapshot::Snapshotter>> OpenSnapshots(const GlobalOptions& global) {
  snapshot::Options so;
  if (const char* d = std::getenv("KILN_SNAPSHOTTER"); d && *d) {
    const std::string driver = d;
    if (driver == "copy") {
      so.force_copy = true;
    } else if (driver != "overlay") {
      return Status::InvalidArgument("KILN_SNAPSHOTTER=" + driver +
                                     ": unknown snapshotter (expected overlay or copy)");
    }
  }
  const fs::path dir = global.root / (so.force_copy ? "snapshots-copy" : "snapshots");
  return snapshot::Snapshotter::Open(dir, so);
}

// One platform's record: what the frontend asked for, merged with what the
// sources reported along its solved graph (K4).
Result<bi::BuildInfo> RecordOf(const dockerfile::ConvertResult& converted,
                               const bi::RequestAttrs& attrs, const ops::PinTable& pins_learned) {
  bi::SourcePins pins;
  if (!converted.root.scratch()) {
    std::string missing;
    auto report =
        [&](const graph::VertexPtr& v) -> std::optional<std::pair<std::string, std::string>> {
      const auto* src = std::get_if<graph::SourceOp>(&v->op);
      // Local contexts report nothing (R10); an oci-layout context is named by
      // its context:NAME attribute and deps (docs/contexts.md).
      if (!src || src->identifier.rfind("local://", 0) == 0 ||
          src->identifier.rfind("oci-layout://", 0) == 0) {
        return std::nullopt;
      }
      if (std::optional<std::string> pin = pins_learned.Get(src->identifier)) {
        return std::make_pair(src->identifier, *pin);
      }
      missing = src->identifier;
      return std::nullopt;
    };
    auto inputs_of = [](const graph::VertexPtr& v) {
      std::vector<graph::VertexPtr> in;
      for (const graph::Output& o : v->inputs) {
        if (!o.scratch()) in.push_back(o.vertex);
      }
      return in;
    };
    pins = bi::CollectSources(converted.root.vertex, inputs_of, report);
    if (!missing.empty()) {
      return Status::Internal("no pin was recorded for source " + source::RedactUrl(missing));
    }
  }
  KILN_ASSIGN_OR_RETURN(bi::BuildInfo bridged,
                        bi::BridgeMerge(bi::kMetadataKey, "dockerfile.v0", attrs, converted.sources,
                                        /*deps_from_request=*/false));
  return bi::Finalize(bridged, pins);
}

}  // namespace

static Result<std::string> Build(const GlobalOptions& global, const BuildOptions& options);

Status PrepareBuildProcess() { return snapshot::EnterPrivateMountNamespace(); }

Result<std::string> RunBuild(const GlobalOptions& global, const BuildOptions& options) {
  Result<std::string> r = Build(global, options);
  if (options.debug == "stats") std::fputs(util::MetricsReport().c_str(), stderr);
  return r;
}

static Result<std::string> Build(const GlobalOptions& global, const BuildOptions& options) {
  KILN_METRIC("build (total)");
  util::Canceller cancel;
  SignalWatcher signals(&cancel);
  KILN_ASSIGN_OR_RETURN(RootLock lock, RootLock::Acquire(global.root, false));

  // The build context: a local directory, or a remote one (a git repository
  // or an HTTP(S) URL, R26) whose Dockerfile is read once the sources are open.
  const std::string context_arg = options.context.empty() ? "." : options.context;
  const bool remote_context = IsRemoteContext(context_arg);
  const fs::path context = remote_context ? fs::path() : fs::path(context_arg);
  const fs::path file = !options.file.empty() ? fs::path(options.file)
                        : remote_context      ? fs::path("Dockerfile")
                                              : context / "Dockerfile";
  std::string dockerfile_text;  // as read; `dockerfile` below is what errors show
  if (!remote_context) {
    KILN_ASSIGN_OR_RETURN(dockerfile_text, ReadText(file, "Dockerfile"));
  }

  // Build request, as buildx sends it.
  dockerfile::ConvertOptions opt;
  bi::RequestAttrs attrs;
  opt.filename = file.filename().string();
  attrs["filename"] = opt.filename;
  opt.target = options.target;
  if (!options.target.empty()) attrs["target"] = options.target;
  KILN_RETURN_IF_ERROR(
      ApplyFrontendFlags(options.platform, options.build_args, options.build_contexts, &opt));
  // One conversion, image and record per platform; several make an index.
  KILN_ASSIGN_OR_RETURN(const std::vector<image::Platform> platforms,
                        ParsePlatformList(options.platform));
  const bool multi = platforms.size() > 1;
  KILN_ASSIGN_OR_RETURN(auto local_contexts, TakeLocalNamedContexts(&opt));
  if (remote_context) {
    opt.context = context_arg;
    attrs["context"] = bi::RedactUrl(context_arg);  // K8, K13
  }
  if (!options.platform.empty()) attrs["platform"] = options.platform;
  for (const auto& [k, v] : opt.build_args) attrs["build-arg:" + k] = v;
  for (const auto& [k, v] : opt.named_contexts) attrs["context:" + k] = v;
  opt.no_cache = options.no_cache;
  if (options.no_cache) attrs["no-cache"] = "";
  opt.no_cache_stages = options.no_cache_filter;

  // SOURCE_DATE_EPOCH: a build arg, else the environment (passed on as the
  // build arg, as buildx does, so the record shows it).
  if (!opt.build_args.count("SOURCE_DATE_EPOCH")) {
    if (const char* e = std::getenv("SOURCE_DATE_EPOCH"); e && *e) {
      opt.build_args["SOURCE_DATE_EPOCH"] = e;
      attrs["build-arg:SOURCE_DATE_EPOCH"] = e;
    }
  }
  std::optional<int64_t> epoch;
  if (auto it = opt.build_args.find("SOURCE_DATE_EPOCH"); it != opt.build_args.end()) {
    KILN_ASSIGN_OR_RETURN(epoch, ParseSourceDateEpoch(it->second));
  }

  // Outputs, with buildx's shortcuts: --push is type=image,push=true.
  std::vector<exporter::Output> outputs;
  for (const std::string& spec : options.outputs) {
    Result<exporter::Output> out = exporter::ParseOutput(spec);
    if (!out.ok()) return Status(out.status().code(), "-o: " + out.status().message());
    if (multi && out->type == "docker") {
      return Status::InvalidArgument(
          "-o type=docker: a Docker archive holds one platform, and --platform names " +
          std::to_string(platforms.size()) + " (" + options.platform +
          "): use type=oci or type=image for several platforms, or build one --platform");
    }
    outputs.push_back(std::move(*out));
  }
  if (options.push) {
    bool any = false;
    for (exporter::Output& o : outputs) {
      if (o.type == "image") {
        o.attrs["push"] = "true";
        any = true;
      }
    }
    if (!any && !outputs.empty()) {
      return Status::InvalidArgument(
          "--push needs an image output; drop -o, or use -o type=image,push=true");
    }
    if (!any) outputs.push_back({"image", {{"push", "true"}}});
  }
  std::vector<bi::ExportOptions> record_options;
  std::vector<exporter::ImageOutputOptions> image_options;
  for (exporter::Output& out : outputs) {
    out.attrs = bi::MapClientExportAttrs(out.type, out.attrs, opt.build_args);
    KILN_ASSIGN_OR_RETURN(bi::ExportOptions eo, bi::ParseExportOptions(out.attrs));
    record_options.push_back(eo);
    exporter::ImageOutputOptions io;
    if (exporter::IsImageOutput(out)) {
      Result<exporter::ImageOutputOptions> parsed =
          exporter::ParseImageOutputOptions(out, options.tags);
      if (!parsed.ok()) return Status(parsed.status().code(), "-o: " + parsed.status().message());
      io = std::move(*parsed);
      io.layers.source_date_epoch = epoch;
    }
    image_options.push_back(std::move(io));
  }
  KILN_ASSIGN_OR_RETURN(auto secrets, ParseSecrets(options.secrets));

  // Machinery.
  std::optional<util::ScopedMetric> phase;
  static util::Metric open_metric("open state (store, snapshots, cache)");
  phase.emplace(&open_metric);
  registry::RegistryOptions ropt;
  ropt.insecure_registries = global.insecure_registries;
  ApplyNetworkOptions(global.network, &ropt);
  // Every registry wait of the build (resolve, pull, push) ends on Ctrl-C.
  ropt.cancel = &cancel;
  static util::Metric m1("  registry client"), m2("  snapshotter"), m3("  cache store"),
      m4("  http source");
  std::optional<util::ScopedMetric> step(&m1);
  KILN_ASSIGN_OR_RETURN(registry::Client client, registry::Client::Create(ropt));
  KILN_ASSIGN_OR_RETURN(content::Store store, content::Store::Open(global.root / "content"));
  step.emplace(&m2);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<snapshot::Snapshotter> snapshots, OpenSnapshots(global));
  step.emplace(&m3);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<solver::CacheStore> cache,
                        solver::CacheStore::Open(global.root / "cache.db"));
  step.emplace(&m4);
  KILN_ASSIGN_OR_RETURN(
      std::shared_ptr<source::HttpSource> http,
      source::HttpSource::Open(store, global.root / "http-cache.db", global.network));
  step.reset();
  source::ImageSource images(&client, store, snapshots);
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<source::GitSource> git,
                        source::GitSource::Open(global.root, snapshots, global.network));

  ops::Environment env;
  env.store = &store;
  env.snapshots = snapshots;
  env.images = &images;
  env.http = http.get();
  env.git = git.get();
  env.secrets = std::move(secrets);
  env.cache_mounts_dir = global.root / "cache-mounts";
  if (remote_context) {
    KILN_ASSIGN_OR_RETURN(
        RemoteDockerfile remote,
        ReadRemoteDockerfile(context_arg, file.string(), &env, global.root / "tmp", &cancel));
    dockerfile_text = std::move(remote.text);
    opt.context_is_archive = remote.context_is_archive;
  }
  // The Dockerfile as errors quote it: credentials in its URLs masked (K8).
  const std::string dockerfile = bi::RedactText(dockerfile_text);

  RegistryImageResolver resolver(&client, &store);
  opt.resolver = &resolver;
  static util::Metric convert_metric("frontend (resolve+convert)");
  phase.emplace(&convert_metric);
  // Once per platform: platform ARGs follow the target, and stages built
  // for $BUILDPLATFORM come out the same, so their vertices are shared.
  std::vector<dockerfile::ConvertResult> converted_all;
  for (const image::Platform& p : platforms) {
    dockerfile::ConvertOptions po = opt;
    po.target_platform = p;
    Result<dockerfile::ConvertResult> converted_or =
        dockerfile::ConvertToGraph(dockerfile_text, po);
    if (!converted_or.ok()) return converted_or.status();
    converted_all.push_back(std::move(converted_or).value());
  }
  const dockerfile::ConvertResult& converted = converted_all.front();
  static util::Metric plan_metric("context + plan");
  phase.emplace(&plan_metric);
  {
    // Warnings come before the display starts: plain text, or with
    // --progress=rawjson a JSON line shaped like SolveStatus's warnings.
    KILN_ASSIGN_OR_RETURN(ProgressMode mode, ParseProgressMode(options.progress));
    for (const dockerfile::Warning& w : converted.warnings) {
      const std::string text = opt.filename + ":" + std::to_string(w.line) + ": " + w.message;
      if (mode == ProgressMode::kRawJson) {
        nlohmann::json j = {{"warnings", {{{"level", 1}, {"short", util::Base64Encode(text)}}}}};
        std::fprintf(stderr, "%s\n", j.dump().c_str());
      } else if (mode != ProgressMode::kQuiet) {
        std::fprintf(stderr, "warning: %s\n", text.c_str());
      }
    }
  }

  // The build context, filtered by <Dockerfile>.dockerignore or CONTEXT/.dockerignore.
  source::LocalOptions lopt;
  if (!remote_context) lopt.dir = fs::absolute(context);
  lopt.index_dir = global.root / "contexts";
  fs::path ignore = file;
  ignore += ".dockerignore";
  if (!fs::exists(ignore)) ignore = context / ".dockerignore";
  if (!remote_context && fs::exists(ignore)) {
    KILN_ASSIGN_OR_RETURN(std::string text, ReadText(ignore, ".dockerignore"));
    KILN_ASSIGN_OR_RETURN(lopt.excludes, source::IgnoreMatcher::Parse(text));
  }

  std::vector<graph::Output> roots;
  for (const dockerfile::ConvertResult& c : converted_all) roots.push_back(c.root);
  const graph::Definition def = graph::MarshalAll(roots);
  std::mutex executor_mu;
  std::unique_ptr<executor::Executor> executor;
  env.executor = [&]() -> Result<executor::Executor*> {
    std::lock_guard<std::mutex> lock(executor_mu);
    if (!executor) {
      executor::Options eopt;
      eopt.state_dir = global.root / "executor";
      KILN_ASSIGN_OR_RETURN(executor, executor::Executor::Open(eopt));
    }
    return executor.get();
  };
  if (!remote_context && fs::is_directory(context)) {
    KILN_ASSIGN_OR_RETURN(env.locals["context"], source::LocalContext::Open(lopt));
  }
  // Named contexts that are directories, each with its own DIR/.dockerignore.
  for (const auto& [name, dir] : local_contexts) {
    source::LocalOptions nl;
    nl.dir = dir;
    nl.index_dir = global.root / "contexts";
    if (fs::exists(dir / ".dockerignore")) {
      KILN_ASSIGN_OR_RETURN(std::string text, ReadText(dir / ".dockerignore", ".dockerignore"));
      KILN_ASSIGN_OR_RETURN(nl.excludes, source::IgnoreMatcher::Parse(text));
    }
    KILN_ASSIGN_OR_RETURN(env.locals[name], source::LocalContext::Open(nl));
  }

  KILN_ASSIGN_OR_RETURN(ops::Plan plan, ops::PlanGraph(def, &env));
  ProgressOptions popt;
  KILN_ASSIGN_OR_RETURN(popt.mode, ParseProgressMode(options.progress));
  for (const solver::Vertex& v : plan.vertices) popt.vertex_digests.push_back(v.digest.str());
  Progress progress(std::move(popt));
  // The final snapshot per platform ("" for scratch); one solve for all, so
  // a vertex the platforms share runs once.
  std::vector<std::string> tops(platforms.size());
  static util::Metric solve_metric("solve");
  phase.emplace(&solve_metric);
  std::vector<solver::Edge> targets;
  for (size_t i = 0; i < plan.roots.size(); ++i) {
    if (!plan.roots_scratch[i]) targets.push_back(plan.roots[i]);
  }
  if (!targets.empty()) {
    solver::Solver solver(cache, ops::MakeLoader(&env));
    solver::SolveOptions so;
    so.cancel = &cancel;
    so.progress = [&progress](const solver::Event& e) { progress.Event(e); };
    Result<solver::SolveResult> solved = solver.Solve(plan.vertices, targets, so);
    if (!solved.ok()) {
      Status st = solved.status();
      std::string where;
      if (st.code() != StatusCode::kCancelled) where = progress.FailureContext(def, dockerfile);
      return Status(st.code(), st.message() + where, st.exit_code());
    }
    size_t next = 0;
    for (size_t i = 0; i < plan.roots.size(); ++i) {
      if (plan.roots_scratch[i]) continue;
      KILN_ASSIGN_OR_RETURN(tops[i], ops::SnapshotOf(solved->refs.at(next++)));
    }
  }
  const std::string& top = tops.front();

  phase.reset();
  // The record per platform: what the frontend asked for, merged with what
  // the sources reported along that platform's solved graph (K4).
  std::vector<bi::BuildInfo> records;
  for (const dockerfile::ConvertResult& c : converted_all) {
    KILN_ASSIGN_OR_RETURN(bi::BuildInfo r, RecordOf(c, attrs, *plan.pins));
    records.push_back(std::move(r));
  }
  const bi::BuildInfo& record = records.front();

  // The image.
  static util::Metric export_metric("export (layers+image+outputs)");
  phase.emplace(&export_metric);
  exporter::LayerStats stats;
  exporter::OutputEnv out_env;
  out_env.store = &store;
  out_env.snapshots = snapshots.get();
  out_env.client = &client;
  out_env.state_dir = global.root / "outputs";
  out_env.cancel = &cancel;
  out_env.source_date_epoch = epoch;
  out_env.report = [&progress](const util::TaskUpdate& u) { progress.Task(u); };
  for (const bi::BuildInfo& rec : records) {
    for (const bi::Source& s : rec.sources) {
      if (s.type != bi::kTypeDockerImage) continue;
      if (Result<image::Reference> from = image::ParseNormalizedNamed(s.ref); from.ok()) {
        if (std::find(out_env.mount_from.begin(), out_env.mount_from.end(), *from) ==
            out_env.mount_from.end()) {
          out_env.mount_from.push_back(*std::move(from));
        }
      }
    }
  }
  // Layers per platform and variant (compression, clamp), each exported once.
  std::map<std::string, std::vector<exporter::Layer>> layers_by_variant;
  auto variant_key = [](const exporter::LayerOptions& lo, size_t platform) {
    return std::to_string(platform) + ":" + exporter::VariantSuffix(lo) +
           (lo.force ? "+force" : "");
  };
  // `sink`: an archive output written while the layers are made.
  auto layers_for = [&](const exporter::LayerOptions& lo, size_t platform,
                        exporter::LayerSink* sink =
                            nullptr) -> Result<const std::vector<exporter::Layer>*> {
    const std::string key = variant_key(lo, platform);
    auto it = layers_by_variant.find(key);
    if (it == layers_by_variant.end()) {
      KILN_ASSIGN_OR_RETURN(std::vector<exporter::Layer> layers,
                            exporter::ExportLayers(*snapshots, store, tops[platform], lo, 2,
                                                   &cancel, &stats, out_env.report, sink));
      it = layers_by_variant.emplace(key, std::move(layers)).first;
    }
    return &it->second;
  };
  // A multi-platform build's images, one per platform, in an index.
  auto write_index = [&](const exporter::LayerOptions& lo, const bi::ExportOptions& ro,
                         bool oci_mediatypes) -> Result<exporter::WrittenIndex> {
    std::vector<exporter::PlatformImage> images;
    for (size_t p = 0; p < platforms.size(); ++p) {
      KILN_ASSIGN_OR_RETURN(const std::vector<exporter::Layer>* layers, layers_for(lo, p));
      exporter::ImageRequest r;
      r.config = converted_all[p].config;
      r.layers = *layers;
      r.record = &records[p];
      r.record_options = ro;
      r.oci_mediatypes = oci_mediatypes;
      r.source_date_epoch = epoch;
      KILN_ASSIGN_OR_RETURN(exporter::WrittenImage written, exporter::WriteImage(store, r));
      // The platform asked for, as the record's key names it (the config
      // says the same unless a stage forced another platform).
      images.push_back({platforms[p], std::move(written)});
    }
    return exporter::WriteIndex(store, std::move(images), oci_mediatypes);
  };
  // One image per image output (its options may differ); the first, or the
  // image alone when there is no output, is the one the response describes.
  std::optional<exporter::WrittenImage> img;
  std::optional<exporter::WrittenIndex> index;  // multi-platform
  std::vector<std::string> img_names = options.tags;
  bool filesystem_only = !outputs.empty();
  for (size_t i = 0; i < outputs.size(); ++i) {
    exporter::OutputResult result;
    if (!exporter::IsImageOutput(outputs[i])) {
      if (!multi) {
        KILN_RETURN_IF_ERROR(exporter::WriteFilesystemOutput(out_env, outputs[i], top, &result));
        continue;
      }
      // A folder per platform, as buildx writes them.
      std::vector<exporter::PlatformFilesystem> fss;
      for (size_t p = 0; p < platforms.size(); ++p) fss.push_back({platforms[p], tops[p]});
      KILN_RETURN_IF_ERROR(exporter::WriteFilesystemOutput(out_env, outputs[i], fss, &result));
      continue;
    }
    filesystem_only = false;
    const exporter::ImageOutputOptions& io = image_options[i];
    if (multi) {
      KILN_ASSIGN_OR_RETURN(exporter::WrittenIndex written,
                            write_index(io.layers, record_options[i], io.oci_mediatypes));
      KILN_RETURN_IF_ERROR(exporter::WriteImageOutput(out_env, outputs[i], io, written, &result));
      if (outputs[i].type == "image") {
        for (const std::string& n : io.names) {
          KILN_ASSIGN_OR_RETURN(image::Reference ref, image::ParseNormalizedNamed(n));
          KILN_RETURN_IF_ERROR(RecordReference(global.root, image::TagNameOnly(ref).String(),
                                               written.descriptor.digest));
        }
      }
      if (!index) {
        index = std::move(written);
        img_names = io.names;
      }
      continue;
    }
    // An archive output whose layers are yet to be exported is written while
    // they are: the copy into it overlaps their compression.
    std::unique_ptr<exporter::ArchiveStream> early;
    if (layers_by_variant.count(variant_key(io.layers, 0)) == 0) {
      KILN_ASSIGN_OR_RETURN(early, exporter::StartArchiveOutput(out_env, outputs[i]));
    }
    KILN_ASSIGN_OR_RETURN(const std::vector<exporter::Layer>* layers,
                          layers_for(io.layers, 0, early.get()));
    exporter::ImageRequest r;
    r.config = converted.config;
    r.layers = *layers;
    r.record = &record;
    r.record_options = record_options[i];
    r.oci_mediatypes = io.oci_mediatypes;
    r.source_date_epoch = epoch;
    KILN_ASSIGN_OR_RETURN(exporter::WrittenImage written, exporter::WriteImage(store, r));
    KILN_RETURN_IF_ERROR(
        exporter::WriteImageOutput(out_env, outputs[i], io, written, &result, early.get()));
    if (outputs[i].type == "image") {
      // Named images are kept by `kiln prune` (ROOT/refs.json).
      for (const std::string& n : io.names) {
        KILN_ASSIGN_OR_RETURN(image::Reference ref, image::ParseNormalizedNamed(n));
        KILN_RETURN_IF_ERROR(RecordReference(global.root, image::TagNameOnly(ref).String(),
                                             written.manifest.digest));
      }
    }
    if (!img) {
      img = std::move(written);
      img_names = io.names;
    }
  }
  std::map<std::string, std::string> response;
  if (multi) {
    // Each platform's record under its own key (R40, K3).
    std::map<std::string, bi::BuildInfo> by_key;
    for (size_t p = 0; p < platforms.size(); ++p) {
      by_key.emplace(bi::ResponseKey(image::Format(platforms[p])), records[p]);
    }
    if (filesystem_only) {
      KILN_ASSIGN_OR_RETURN(response, bi::ExporterResponse(by_key));
    } else {
      if (!index) {
        exporter::LayerOptions lo;
        lo.source_date_epoch = epoch;
        KILN_ASSIGN_OR_RETURN(index, write_index(lo, bi::ExportOptions{}, true));
      }
      KILN_ASSIGN_OR_RETURN(response, exporter::IndexResponse(*index, by_key, img_names));
    }
  } else if (filesystem_only) {
    // type=local/tar only: no image, the record still in the response (R40).
    KILN_ASSIGN_OR_RETURN(response,
                          bi::ExporterResponse({{std::string(bi::kMetadataKey), record}}));
  } else {
    if (!img) {
      exporter::LayerOptions lo;
      lo.source_date_epoch = epoch;
      KILN_ASSIGN_OR_RETURN(const std::vector<exporter::Layer>* layers, layers_for(lo, 0));
      exporter::ImageRequest r;
      r.config = converted.config;
      r.layers = *layers;
      r.record = &record;
      r.source_date_epoch = epoch;
      KILN_ASSIGN_OR_RETURN(img, exporter::WriteImage(store, r));
    }
    KILN_ASSIGN_OR_RETURN(response, exporter::Response(*img, &record, img_names));
  }
  phase.reset();
  if (!options.metadata_file.empty()) {
    const std::string text = bi::MetadataFileContent(response);
    std::ofstream f(options.metadata_file, std::ios::binary | std::ios::trunc);
    if (!f || !(f << text) || !f.flush()) {
      return Status::IOError("cannot write metadata file " + options.metadata_file);
    }
  }
  progress.Finish("exporting: " + std::to_string(stats.compressed) + " layers compressed, " +
                  std::to_string(stats.reused) + " reused");
  if (index) return index->descriptor.digest.str() + "\n";
  if (!img) return std::string();
  return img->manifest.digest.str() + "\n";
}

Result<std::string> RunDu(const GlobalOptions& global) {
  KILN_ASSIGN_OR_RETURN(RootLock lock, RootLock::Acquire(global.root, false));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<snapshot::Snapshotter> snapshots, OpenSnapshots(global));
  KILN_ASSIGN_OR_RETURN(std::vector<snapshot::Info> usage, snapshots->Usage());
  uint64_t layers = 0, built = 0;
  size_t nlayers = 0, nbuilt = 0;
  for (const snapshot::Info& i : usage) {
    const bool pulled = i.labels.count(std::string(snapshot::kLabelCreated)) == 0;
    (pulled ? layers : built) += i.disk_bytes;
    ++(pulled ? nlayers : nbuilt);
  }
  KILN_ASSIGN_OR_RETURN(content::Store store, content::Store::Open(global.root / "content"));
  KILN_ASSIGN_OR_RETURN(std::vector<util::Digest> blobs, store.List());
  uint64_t blob_bytes = 0;
  for (const util::Digest& d : blobs) {
    Result<uint64_t> s = store.Size(d);
    if (s.ok()) blob_bytes += *s;
  }
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<solver::CacheStore> cache,
                        solver::CacheStore::Open(global.root / "cache.db"));
  KILN_ASSIGN_OR_RETURN(std::vector<solver::CacheRecord> records, cache->List());
  std::string out;
  out += "KIND              COUNT  SIZE\n";
  auto row = [&out](const char* kind, size_t n, uint64_t bytes) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%-16s %6zu  %s\n", kind, n, HumanSize(bytes).c_str());
    out += buf;
  };
  row("image layers", nlayers, layers);
  row("build snapshots", nbuilt, built);
  row("content blobs", blobs.size(), blob_bytes);
  row("cache records", records.size(), 0);
  return out;
}

Result<std::string> RunPrune(const GlobalOptions& global, const PruneOptions&) {
  KILN_ASSIGN_OR_RETURN(RootLock lock, RootLock::Acquire(global.root, true));
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<solver::CacheStore> cache,
                        solver::CacheStore::Open(global.root / "cache.db"));
  KILN_ASSIGN_OR_RETURN(int64_t records, cache->Clear());
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<snapshot::Snapshotter> snapshots, OpenSnapshots(global));
  // Children before parents: repeat until nothing more can go.
  int removed = 0;
  uint64_t bytes = 0;
  for (bool progress = true; progress;) {
    progress = false;
    KILN_ASSIGN_OR_RETURN(std::vector<snapshot::Info> all, snapshots->Usage());
    std::set<std::string> parents;
    for (const snapshot::Info& i : all) parents.insert(i.parent);
    for (const snapshot::Info& i : all) {
      if (parents.count(i.id)) continue;
      if (snapshots->Remove(i.id).ok()) {
        ++removed;
        bytes += i.disk_bytes;
        progress = true;
      }
    }
  }
  std::error_code ec;
  fs::remove_all(global.root / "cache-mounts", ec);

  // Content blobs: keep what `kiln pull` recorded (and what it reaches), drop
  // the rest (built layers, configs, manifests, base layers unpacked above).
  KILN_ASSIGN_OR_RETURN(content::Store store, content::Store::Open(global.root / "content"));
  KILN_ASSIGN_OR_RETURN(auto pulled, ReadReferences(global.root));
  std::vector<util::Digest> roots;
  for (const auto& [name, digest] : pulled) roots.push_back(digest);
  auto refs = [&store](const util::Digest& blob) -> Result<std::vector<util::Digest>> {
    std::vector<util::Digest> out;
    KILN_ASSIGN_OR_RETURN(uint64_t size, store.Size(blob));
    if (size > (4u << 20)) return out;  // layers are leaves; never read them
    {
      KILN_ASSIGN_OR_RETURN(content::BlobReader r, store.OpenReader(blob));
      char first = 0;
      KILN_ASSIGN_OR_RETURN(size_t n, r.Read(&first, 1));
      if (n == 0 || first != '{') return out;
    }
    KILN_ASSIGN_OR_RETURN(std::string bytes, store.Read(blob));
    nlohmann::json doc = nlohmann::json::parse(bytes, nullptr, false);
    if (!doc.is_object()) return out;
    auto add = [&out](const nlohmann::json& d) {
      if (!d.is_object() || !d.contains("digest") || !d["digest"].is_string()) return;
      Result<util::Digest> dg = util::Digest::Parse(d["digest"].get<std::string>());
      if (dg.ok()) out.push_back(*dg);
    };
    if (doc.contains("config")) add(doc["config"]);
    for (const char* list : {"layers", "manifests"}) {
      if (doc.contains(list) && doc[list].is_array()) {
        for (const auto& d : doc[list]) add(d);
      }
    }
    return out;
  };
  KILN_ASSIGN_OR_RETURN(content::GcStats gc, store.Gc(roots, refs));
  return "removed " + std::to_string(records) + " cache records, " + std::to_string(removed) +
         " snapshots (" + HumanSize(bytes) + ") and " + std::to_string(gc.blobs_removed) +
         " content blobs (" + HumanSize(gc.bytes_removed) + ")\n";
}

}  // namespace kiln::cli
