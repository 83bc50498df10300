#include "cli/resolver.h"

#include <fcntl.h>
#include <stdlib.h>

#include <cstdlib>
#include <optional>
#include <system_error>

#include "buildinfo/redact.h"
#include "image/config.h"
#include "image/platform.h"
#include "image/reference.h"
#include "ops/file_actions.h"
#include "source/git.h"
#include "source/http.h"
#include "source/image.h"
#include "util/io.h"
#include "util/rootfs.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool IsHttpUrl(std::string_view s) { return StartsWith(s, "http://") || StartsWith(s, "https://"); }

// `path` inside `dir`, symlinks resolved inside it (a Dockerfile that is a
// symlink to /etc/passwd reads the tree's /etc/passwd, never the host's).
Result<std::string> ReadFileIn(const fs::path& dir, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(util::RootDir root, util::RootDir::Open(dir));
  KILN_ASSIGN_OR_RETURN(util::UniqueFd fd, root.OpenAt(path, O_RDONLY));
  std::string out;
  KILN_RETURN_IF_ERROR(util::Pump(util::FdSource(fd.get()), [&out](std::string_view chunk) {
    out.append(chunk);
    return Status::Ok();
  }));
  return out;
}

// Removes a directory when it goes out of scope.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

Result<RemoteDockerfile> ReadGitDockerfile(const std::string& url, const std::string& file,
                                           ops::Environment* env, util::Canceller* cancel) {
  Result<RemoteDockerfile> r = [&]() -> Result<RemoteDockerfile> {
    KILN_ASSIGN_OR_RETURN(source::GitRef ref, source::ParseGitRef(url));
    if (!env->git) return Status::Internal("no git source configured");
    source::GitOptions go;
    go.secrets = env->secrets;
    go.cancel = cancel;
    KILN_ASSIGN_OR_RETURN(source::GitResolved resolved, env->git_refs->Resolve(env->git, ref, go));
    KILN_ASSIGN_OR_RETURN(std::string snap,
                          env->git->CheckoutSnapshot(ref, resolved.commit, {}, go));
    KILN_ASSIGN_OR_RETURN(snapshot::View view, env->snapshots->Mount(snap));
    Result<std::string> text = ReadFileIn(view.path(), file);
    if (!text.ok() && text.status().code() == StatusCode::kNotFound) {
      return Status::NotFound(ref.Redacted() + ": no " + file + " in the repository at commit " +
                              resolved.commit + " (name the Dockerfile with -f)");
    }
    if (!text.ok()) return text.status().Annotate(ref.Redacted() + ": reading " + file);
    return RemoteDockerfile{std::move(*text), true};
  }();
  if (!r.ok()) return r.status().Annotate("build context");
  return r;
}

Result<RemoteDockerfile> ReadHttpDockerfile(const std::string& url, const std::string& file,
                                            ops::Environment* env, const fs::path& scratch,
                                            util::Canceller* cancel) {
  if (!env->http || !env->store) return Status::Internal("no HTTP source configured");
  source::HttpFetchOptions fo;
  fo.cancel = cancel;
  Result<source::HttpFile> fetched = env->http->Fetch(url, fo);
  if (!fetched.ok()) return fetched.status().Annotate("build context");
  std::error_code ec;
  fs::create_directories(scratch, ec);
  std::string tmpl = (scratch / "http-context-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return Status::IOError("cannot create a directory in " + scratch.string());
  }
  ScratchDir tmp{tmpl};
  fs::create_directories(tmp.path / "in", ec);
  fs::create_directories(tmp.path / "out", ec);
  {
    KILN_ASSIGN_OR_RETURN(content::BlobReader reader, env->store->OpenReader(fetched->digest));
    util::UniqueFd out(
        ::open((tmp.path / "in" / "context").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (!out.valid()) return Status::IOError("cannot write " + (tmp.path / "in").string());
    util::ByteSource src = [&reader](char* b, size_t c) { return reader.Read(b, c); };
    KILN_RETURN_IF_ERROR(util::Pump(src, util::FdSink(out.get())));
  }
  // ADD's unpacking decides what the body is: a tar archive (plain or
  // compressed) becomes the directory /ctx, anything else the file /ctx.
  KILN_ASSIGN_OR_RETURN(util::RootDir in, util::RootDir::Open(tmp.path / "in"));
  KILN_ASSIGN_OR_RETURN(util::RootDir out, util::RootDir::Open(tmp.path / "out"));
  graph::FileCopy unpack;
  unpack.source_input = 0;
  unpack.src = "/context";
  unpack.dest = "/ctx";
  unpack.attempt_unpack = true;
  unpack.allow_wildcard = false;
  ops::CopySource cs;
  cs.root = &in;
  cs.keep_owner = false;
  KILN_RETURN_IF_ERROR(ops::ApplyFileActions(out, {unpack}, {cs}, ops::FileActionContext{})
                           .Annotate("build context " + buildinfo::RedactUrl(url)));
  if (!fs::is_directory(tmp.path / "out" / "ctx")) {
    KILN_ASSIGN_OR_RETURN(std::string text, ReadFileIn(tmp.path / "out", "ctx"));
    return RemoteDockerfile{std::move(text), false};
  }
  Result<std::string> text = ReadFileIn(tmp.path / "out" / "ctx", file);
  if (!text.ok()) {
    return Status::NotFound("build context " + buildinfo::RedactUrl(url) + ": the archive has no " +
                            file + " (name the Dockerfile in the archive with -f)");
  }
  return RemoteDockerfile{std::move(*text), true};
}

}  // namespace

Result<dockerfile::ResolvedImage> RegistryImageResolver::ResolveImage(
    const std::string& ref, const image::Platform& platform) {
  if (StartsWith(ref, "oci-layout://")) {
    // oci-layout://PATH[@DIGEST]: copied into the store, where the image op
    // (named by the manifest digest, ops.h) unpacks it from.
    std::string path = ref.substr(13);
    std::optional<util::Digest> digest;
    if (const size_t at = path.rfind('@'); at != std::string::npos) {
      Result<util::Digest> d = util::Digest::Parse(path.substr(at + 1));
      if (!d.ok()) {
        return Status::InvalidArgument(
            ref + ": \"" + path.substr(at + 1) +
            "\" is not a digest (expected oci-layout://PATH@sha256:HEX)");
      }
      digest = *d;
      path.resize(at);
    }
    KILN_ASSIGN_OR_RETURN(source::LayoutImage img,
                          source::ImportLayoutImage(path, digest, platform, *store_));
    KILN_ASSIGN_OR_RETURN(image::ImageConfig cfg, image::ParseImageConfig(img.config));
    return dockerfile::ResolvedImage{img.top.str(), std::move(cfg), img.manifest.str()};
  }
  KILN_ASSIGN_OR_RETURN(image::Reference parsed, image::ParseNormalizedNamed(ref));
  Result<registry::Resolved> resolved_or = client_->Resolve(parsed, platform);
  if (!resolved_or.ok()) {
    // The frontend names the reference ("resolving REF: ..."): once is enough.
    const Status& st = resolved_or.status();
    const std::string prefix = ref + ": ";
    if (st.message().rfind(prefix, 0) == 0) {
      return Status(st.code(), st.message().substr(prefix.size()), st.exit_code());
    }
    return st;
  }
  registry::Resolved resolved = std::move(resolved_or).value();
  KILN_RETURN_IF_ERROR(client_->FetchBlob(parsed, resolved.config, *store_));
  KILN_ASSIGN_OR_RETURN(std::string config, store_->Read(resolved.config.digest));
  KILN_ASSIGN_OR_RETURN(image::ImageConfig cfg, image::ParseImageConfig(config));
  return dockerfile::ResolvedImage{resolved.top.digest.str(), std::move(cfg), ""};
}

Result<std::vector<image::Platform>> ParsePlatformList(const std::string& platforms) {
  if (platforms.empty()) return std::vector<image::Platform>{image::DefaultPlatform()};
  std::vector<image::Platform> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = platforms.find(',', start);
    const std::string item =
        platforms.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty()) {
      return Status::InvalidArgument("--platform " + platforms +
                                     ": empty platform (expected OS/ARCH[/VARIANT] items "
                                     "separated by commas, e.g. linux/amd64,linux/arm64)");
    }
    Result<image::Platform> p = image::ParsePlatform(item);
    if (!p.ok())
      return Status::InvalidArgument("--platform " + platforms + ": " + p.status().message());
    image::Platform normalized = image::Normalize(*p);
    for (const image::Platform& seen : out) {
      if (seen == normalized) {
        return Status::InvalidArgument("--platform " + platforms + ": " +
                                       image::Format(normalized) + " is given twice");
      }
    }
    out.push_back(std::move(normalized));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

Status ApplyFrontendFlags(const std::string& platform, const std::vector<std::string>& build_args,
                          const std::vector<std::string>& build_contexts,
                          dockerfile::ConvertOptions* opt) {
  opt->build_platform = image::DefaultPlatform();
  opt->target_platform = opt->build_platform;
  if (!platform.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<image::Platform> list, ParsePlatformList(platform));
    opt->target_platform = list.front();
  }
  for (const std::string& kv : build_args) {
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) {
      opt->build_args[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (const char* v = std::getenv(kv.c_str())) {
      opt->build_args[kv] = v;
    }
  }
  for (const std::string& kv : build_contexts) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("--build-context " + kv + ": expected NAME=VALUE");
    }
    opt->named_contexts[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return Status::Ok();
}

bool IsRemoteContext(const std::string& context) {
  return source::LooksLikeGitUrl(context) || IsHttpUrl(context);
}

Result<std::map<std::string, fs::path>> TakeLocalNamedContexts(dockerfile::ConvertOptions* opt) {
  std::map<std::string, fs::path> dirs;
  for (auto& [name, value] : opt->named_contexts) {
    if (value.find("://") != std::string::npos || StartsWith(value, "local:") ||
        StartsWith(value, "input:") || source::LooksLikeGitUrl(value)) {
      continue;
    }
    std::error_code ec;
    if (!fs::is_directory(value, ec)) {
      return Status::NotFound("--build-context " + name + "=" + value +
                              ": no such directory (expected a directory, docker-image://REF, "
                              "oci-layout://PATH, a git URL or an HTTP(S) URL)");
    }
    dirs[name] = fs::absolute(value);
    value = "local:" + name;
  }
  return dirs;
}

Result<RemoteDockerfile> ReadRemoteDockerfile(const std::string& url, const std::string& file,
                                              ops::Environment* env, const fs::path& scratch,
                                              util::Canceller* cancel) {
  if (source::LooksLikeGitUrl(url)) return ReadGitDockerfile(url, file, env, cancel);
  return ReadHttpDockerfile(url, file, env, scratch, cancel);
}

}  // namespace kiln::cli
