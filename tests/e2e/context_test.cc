// End-to-end tests of git sources, remote build contexts and named contexts
// in `kiln build` (issue 7), and of what they put in the record: `ADD` of a
// git repository (branch, annotated tag, commit id, subdir, keep-git-dir)
// against the fixture's git daemon; moved and unchanged branches, and
// credentials, against local repositories served by `git http-backend`
// (smart HTTP) or as plain files (also the server of remote HTTP contexts);
// named contexts of every kind; the record of a Dockerfile using them all,
// byte for byte; and the one-line errors for bad input.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "build_harness.h"
#include "git_http_server.h"
#include "util/base64.h"
#include "util/digest.h"

namespace kiln::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps the record's member order

// Runs git in `dir` with a fixed identity; returns its trimmed stdout.
std::string Git(const fs::path& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {"-C", dir.string()});
  RunOptions ro;
  ro.env = {{"GIT_AUTHOR_NAME", "kiln"},
            {"GIT_AUTHOR_EMAIL", "kiln@example.invalid"},
            {"GIT_COMMITTER_NAME", "kiln"},
            {"GIT_COMMITTER_EMAIL", "kiln@example.invalid"},
            {"GIT_CONFIG_GLOBAL", "/dev/null"},
            {"GIT_CONFIG_NOSYSTEM", "1"},
            {"GIT_AUTHOR_DATE", "@1700000000 +0000"},
            {"GIT_COMMITTER_DATE", "@1700000000 +0000"}};
  RunResult r = Run("/usr/bin/git", args, ro);
  EXPECT_EQ(r.exit_code, 0) << "git " << args[2] << ": " << r.err;
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == '\r')) r.out.pop_back();
  return r.out;
}

// Commits `files` on main of the work repository `work` (made on first use)
// and publishes it as the bare `served/name`; returns the commit.
std::string CommitAndPublish(const fs::path& work, const std::map<std::string, std::string>& files,
                             const std::string& message, const fs::path& served,
                             const std::string& name) {
  if (!fs::exists(work / ".git")) {
    fs::create_directories(work);
    Git(work, {"init", "-q", "-b", "main"});
  }
  for (const auto& [path, content] : files) WriteFile(work / path, content);
  Git(work, {"add", "-A"});
  Git(work, {"commit", "-q", "--allow-empty", "-m", message});
  fs::create_directories(served);
  if (!fs::exists(served / name)) Git(served, {"init", "-q", "--bare", name});
  Git(work, {"push", "-q", "-f", (served / name).string(), "main"});
  Git(served / name, {"update-server-info"});
  return Git(work, {"rev-parse", "HEAD"});
}

// JSON text with object members sorted, as the metadata file holds the
// record (buildx writes it as a generic map); the record's own member order
// is checked byte for byte in the image config.
std::string Canon(const std::string& text) { return nlohmann::json::parse(text).dump(); }

// The `containerimage.buildinfo` member of a metadata file, as Canon() text.
std::string RecordOf(const fs::path& metadata_file) {
  return nlohmann::json::parse(ReadAll(metadata_file))["containerimage.buildinfo"].dump();
}

std::string GitSourceJson(const std::string& ref, const std::string& pin) {
  return "{\"type\":\"git\",\"ref\":\"" + ref + "\",\"pin\":\"" + pin + "\"}";
}

class ContextTest : public BuildTest {
 protected:
  ContextTest() { git_ = fixture_.Get("GIT"); }

  // A build of the Dockerfile `text` (context ctx()) with GIT as a build arg
  // and the metadata file meta().
  RunResult BuildDockerfile(const std::string& text, std::vector<std::string> extra = {}) {
    WriteFile(ctx() / "Dockerfile", text);
    extra.insert(extra.end(), {"--build-arg", "GIT=" + git_, "--metadata-file", meta().string()});
    return Build(extra);
  }
  fs::path meta() const { return dir_.path() / "meta.json"; }

  std::string git_;
};

// ---- ADD <git url> ----------------------------------------------------------------

TEST_F(ContextTest, AddGitByBranchAnnotatedTagCommitAndSubdir) {
  const std::string dev = fixture_.Get("GIT_DEV_COMMIT");
  RunResult r = BuildDockerfile(
      "FROM scratch\n"
      "ARG GIT\n"
      "ADD ${GIT}#main /main/\n"
      "ADD ${GIT}#v1.0 /tag\n"
      "ADD ${GIT}#" +
      dev +
      " /dev/\n"
      "ADD ${GIT}#main:sub/dir /subdir/\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["main/sub/other.txt"].data, "on main after 1.0\n");
  EXPECT_EQ(img.files["main/sub/dir/hello.txt"].data, "hello from sub/dir\n");
  EXPECT_EQ(img.files.count("main/.git"), 0u);
  EXPECT_EQ(img.files["tag/sub/dir/version.txt"].data, "1.0\n");
  EXPECT_EQ(img.files.count("tag/sub/other.txt"), 0u);
  EXPECT_EQ(img.files["dev/dev.txt"].data, "on the dev branch\n");
  EXPECT_EQ(img.files["subdir/hello.txt"].data, "hello from sub/dir\n");
  EXPECT_EQ(img.files.count("subdir/sub"), 0u);

  // K6: the remote as written with #ref[:subdir]; the pin is the commit
  // (the annotated tag peeled), sorted by ref (K3).
  const std::string sources =
      "\"sources\":[" + GitSourceJson(git_ + "#" + dev, dev) + "," +
      GitSourceJson(git_ + "#main", fixture_.Get("GIT_MAIN_COMMIT")) + "," +
      GitSourceJson(git_ + "#main:sub/dir", fixture_.Get("GIT_MAIN_COMMIT")) + "," +
      GitSourceJson(git_ + "#v1.0", fixture_.Get("GIT_TAG_COMMIT")) + "]";
  const std::string want = "{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"build-arg:GIT\":\"" +
                           git_ + "\",\"build-arg:HTTP\":\"" + http_ +
                           "\",\"build-arg:REGISTRY\":\"" + registry_ +
                           "\",\"filename\":\"Dockerfile\"}," + sources + "}";
  EXPECT_EQ(RecordOf(meta()), Canon(want));
  EXPECT_EQ(json::parse(img.config_json)["moby.buildkit.buildinfo.v1"],
            util::Base64Encode("{\"frontend\":\"dockerfile.v0\"," + sources + "}"));
}

TEST_F(ContextTest, AddGitKeepGitDir) {
  RunResult r = BuildDockerfile(
      "FROM scratch\n"
      "ARG GIT\n"
      "ADD --keep-git-dir=true ${GIT}#main /repo\n"
      "ADD ${GIT}#main /plain\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["repo/.git/HEAD"].data, "ref: refs/heads/main\n");
  EXPECT_EQ(img.files["repo/sub/other.txt"].data, "on main after 1.0\n");
  EXPECT_EQ(img.files.count("plain/.git"), 0u);
  EXPECT_EQ(img.files.count("plain/.git/HEAD"), 0u);
}

// A branch that moved between two builds resolves to its new commit (a new
// pin, a cache miss); an unchanged one is a cache hit that fetches nothing.
TEST_F(ContextTest, MovedBranchIsACacheMissUnchangedIsAHitWithoutFetch) {
  const fs::path served = dir_.path() / "served";
  const fs::path work = dir_.path() / "work";
  const std::string c1 =
      CommitAndPublish(work, {{"file.txt", "one\n"}}, "first", served, "moving.git");
  GitHttpServer server(served, dir_.path(), "smart");
  const std::string remote = server.Url() + "moving.git";
  const std::string dockerfile = "FROM scratch\nADD " + remote + "#main /src/\n";

  RunResult first = BuildDockerfile(dockerfile);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(StepState(first.err, "ADD " + remote), "DONE") << first.err;
  EXPECT_NE(RecordOf(meta()).find(Canon(GitSourceJson(remote + "#main", c1))), std::string::npos);
  EXPECT_GE(server.Fetches(), 1);

  server.ClearLog();
  RunResult again = BuildDockerfile(dockerfile);
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(StepState(again.err, "ADD " + remote), "CACHED") << again.err;
  EXPECT_NE(RecordOf(meta()).find(Canon(GitSourceJson(remote + "#main", c1))), std::string::npos);
  EXPECT_EQ(server.Fetches(), 0);

  const std::string c2 =
      CommitAndPublish(work, {{"file.txt", "two\n"}}, "second", served, "moving.git");
  ASSERT_NE(c1, c2);
  RunResult moved = BuildDockerfile(dockerfile);
  ASSERT_EQ(moved.exit_code, 0) << Describe(moved);
  EXPECT_EQ(StepState(moved.err, "ADD " + remote), "DONE") << moved.err;
  EXPECT_NE(RecordOf(meta()).find(Canon(GitSourceJson(remote + "#main", c2))), std::string::npos);
  EXPECT_EQ(Image().files["src/file.txt"].data, "two\n");
}

// K8: credentials in a remote's URL are used, and appear in no record, log
// line or error.
TEST_F(ContextTest, CredentialsInTheUrlAreUsedAndNeverShown) {
  const fs::path served = dir_.path() / "served";
  const std::string commit = CommitAndPublish(dir_.path() / "work", {{"secret.txt", "data\n"}},
                                              "first", served, "private.git");
  const std::string password = "s3cret-pw-4711";
  GitHttpServer server(served, dir_.path(), "smart", "kiln:" + password);
  const std::string remote = server.Url("kiln:" + password) + "private.git";
  const std::string shown = server.Url("xxxxx:xxxxx") + "private.git";

  RunResult r = BuildDockerfile("FROM scratch\nADD " + remote + "#main /src/\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["src/secret.txt"].data, "data\n");
  const std::string record = RecordOf(meta());
  EXPECT_NE(record.find(Canon(GitSourceJson(shown + "#main", commit))), std::string::npos)
      << record;
  EXPECT_EQ(r.out.find(password), std::string::npos);
  EXPECT_EQ(r.err.find(password), std::string::npos) << r.err;
  EXPECT_EQ(ReadAll(meta()).find(password), std::string::npos);
  EXPECT_EQ(Image().config_json.find(password), std::string::npos);

  // A wrong password: refused, and still not shown.
  RunResult bad = BuildDockerfile("FROM scratch\nADD " + server.Url("kiln:wrong-pw-0815") +
                                  "private.git#main /src/\n");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_EQ(bad.err.find("wrong-pw-0815"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find(shown), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("Dockerfile:2"), std::string::npos) << bad.err;
}

// A token from a build secret (BuildKit's GIT_AUTH_TOKEN, also per host as
// GIT_AUTH_TOKEN.<host>) authenticates the fetch; it reaches no output.
TEST_F(ContextTest, GitAuthTokenSecretAuthenticates) {
  const fs::path served = dir_.path() / "served";
  const std::string commit =
      CommitAndPublish(dir_.path() / "work", {{"t.txt", "tok\n"}}, "first", served, "tokened.git");
  const std::string token = "tok-5150-secret";
  GitHttpServer server(served, dir_.path(), "smart", "x-access-token:" + token);
  const std::string remote = server.Url() + "tokened.git";
  WriteFile(ctx() / "Dockerfile", "FROM scratch\nADD " + remote + "#main /src/\n");

  RunResult none = Build({"--metadata-file", meta().string()});
  EXPECT_NE(none.exit_code, 0) << "no credentials: refused";
  EXPECT_NE(none.err.find("GIT_AUTH_TOKEN"), std::string::npos) << none.err;

  for (const std::string id : {"GIT_AUTH_TOKEN", "GIT_AUTH_TOKEN.127.0.0.1"}) {
    RunOptions ro;
    ro.env["KILN_TEST_GIT_TOKEN"] = token;
    RunResult r = Build({"--secret", "id=" + id + ",env=KILN_TEST_GIT_TOKEN", "--no-cache",
                         "--metadata-file", meta().string()},
                        ro);
    ASSERT_EQ(r.exit_code, 0) << id << ": " << Describe(r);
    EXPECT_EQ(Image().files["src/t.txt"].data, "tok\n");
    EXPECT_NE(RecordOf(meta()).find(Canon(GitSourceJson(remote + "#main", commit))),
              std::string::npos);
    EXPECT_EQ(r.out.find(token), std::string::npos);
    EXPECT_EQ(r.err.find(token), std::string::npos) << r.err;
    EXPECT_EQ(ReadAll(meta()).find(token), std::string::npos);
    EXPECT_EQ(Image().config_json.find(token), std::string::npos);
  }
}

// ---- remote build contexts --------------------------------------------------------

TEST_F(ContextTest, GitRepositoryAsTheBuildContext) {
  const fs::path served = dir_.path() / "served";
  const std::string commit =
      CommitAndPublish(dir_.path() / "work",
                       {{"Dockerfile", "FROM scratch\nCOPY hello.txt /hello.txt\n"},
                        {"hello.txt", "from the repository\n"},
                        {"docker/alt.Dockerfile", "FROM scratch\nCOPY docker/ /d/\n"}},
                       "first", served, "ctx.git");
  GitHttpServer server(served, dir_.path(), "smart");
  const std::string url = server.Url() + "ctx.git#main";
  const fs::path meta = dir_.path() / "meta.json";
  RunResult r = Kiln({"build", "--progress", "plain", "-o", "type=oci,dest=" + out().string(),
                      "--metadata-file", meta.string(), url});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["hello.txt"].data, "from the repository\n");
  EXPECT_EQ(RecordOf(meta), Canon("{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"context\":\"" +
                                  url + "\",\"filename\":\"Dockerfile\"},\"sources\":[" +
                                  GitSourceJson(url, commit) + "]}"));

  // -f names a Dockerfile inside the repository.
  RunResult alt = Kiln({"build", "--progress", "plain", "-o", "type=oci,dest=" + out().string(),
                        "-f", "docker/alt.Dockerfile", "--metadata-file", meta.string(), url});
  ASSERT_EQ(alt.exit_code, 0) << Describe(alt);
  EXPECT_EQ(Image().files["d/alt.Dockerfile"].data, "FROM scratch\nCOPY docker/ /d/\n");
  EXPECT_NE(RecordOf(meta).find("\"filename\":\"alt.Dockerfile\""), std::string::npos);
}

TEST_F(ContextTest, HttpTarballAndPlainDockerfileAsTheBuildContext) {
  const fs::path files = dir_.path() / "files";
  WriteFile(dir_.path() / "tree" / "Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n");
  WriteFile(dir_.path() / "tree" / "a.txt", "from the tarball\n");
  fs::create_directories(files);
  ASSERT_EQ(std::system(("tar -C " + (dir_.path() / "tree").string() + " -czf " +
                         (files / "ctx.tar.gz").string() + " Dockerfile a.txt")
                            .c_str()),
            0);
  WriteFile(files / "Dockerfile.plain", "FROM scratch\nARG HTTP\nADD ${HTTP}/hello.txt /h.txt\n");
  GitHttpServer server(files, dir_.path(), "dumb");
  const fs::path meta = dir_.path() / "meta.json";

  const std::string tarball = server.Url() + "ctx.tar.gz";
  RunResult r = Kiln({"build", "--progress", "plain", "-o", "type=oci,dest=" + out().string(),
                      "--metadata-file", meta.string(), tarball});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["a.txt"].data, "from the tarball\n");
  const std::string digest = util::Sha256Of(ReadAll(files / "ctx.tar.gz")).str();
  EXPECT_EQ(RecordOf(meta),
            Canon("{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"context\":\"" + tarball +
                  "\",\"filename\":\"Dockerfile\"},\"sources\":[{\"type\":"
                  "\"http\",\"ref\":\"" +
                  tarball + "\",\"pin\":\"" + digest + "\"}]}"));

  // A URL of a Dockerfile: the context is empty, and reading the Dockerfile
  // is no source of the build (R26).
  const std::string plain = server.Url() + "Dockerfile.plain";
  RunResult p = Kiln({"build", "--progress", "plain", "-o", "type=oci,dest=" + out().string(),
                      "--build-arg", "HTTP=" + http_, "--metadata-file", meta.string(), plain});
  ASSERT_EQ(p.exit_code, 0) << Describe(p);
  EXPECT_EQ(Image().files.count("h.txt"), 1u);
  EXPECT_EQ(RecordOf(meta),
            Canon("{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"build-arg:HTTP\":\"" + http_ +
                  "\",\"context\":\"" + plain +
                  "\",\"filename\":\"Dockerfile\"},\"sources\":[{\"type\":"
                  "\"http\",\"ref\":\"" +
                  http_ + "/hello.txt\",\"pin\":\"" + fixture_.Get("HTTP_HELLO_SHA256") + "\"}]}"));
}

// ---- named contexts ---------------------------------------------------------------

TEST_F(ContextTest, LocalAndGitNamedContexts) {
  const fs::path other = dir_.path() / "other";
  WriteFile(other / "keep.txt", "kept\n");
  WriteFile(other / "ignored.txt", "ignored\n");
  WriteFile(other / ".dockerignore", "ignored.txt\n");
  RunResult r = BuildDockerfile(
      "FROM scratch\n"
      "COPY --from=other / /other/\n"
      "COPY --from=repo README.md /readme\n",
      {"--build-context", "other=" + other.string(), "--build-context", "repo=" + git_ + "#v1.0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["other/keep.txt"].data, "kept\n");
  EXPECT_EQ(img.files.count("other/ignored.txt"), 0u);
  EXPECT_NE(img.files["readme"].data.find("version 1.0"), std::string::npos);
  const json record = json::parse(RecordOf(meta()));
  EXPECT_EQ(record["attrs"]["context:other"], "local:other");
  EXPECT_EQ(record["attrs"]["context:repo"], git_ + "#v1.0");
  EXPECT_EQ(record["sources"].dump(),
            Canon("[" + GitSourceJson(git_ + "#v1.0", fixture_.Get("GIT_TAG_COMMIT")) + "]"));
}

// K10: an image context carrying its own record becomes deps[NAME],
// redacted (K8); a context the build does not use is neither a source nor
// a dep.
TEST_F(ContextTest, NamedImageContextWithItsOwnRecordIsADep) {
  const std::string dep_image = registry_ + "/context-dep:v1";
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\nFROM ${REGISTRY}/busybox:latest\nARG GIT\nADD ${GIT}#v1.0 /src/\n");
  RunResult first =
      Kiln({"build", "--progress", "plain", "--build-arg", "REGISTRY=" + registry_, "--build-arg",
            "GIT=" + git_, "--build-arg", "MIRROR=http://kiln:mirror-pw-99@127.0.0.1:1/", "-o",
            "type=image,name=" + dep_image + ",push=true,buildinfo-attrs=true", ctx().string()});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);

  RunResult r =
      BuildDockerfile("FROM base\nRUN true\n",
                      {"--build-context", "base=docker-image://" + dep_image, "--build-context",
                       "unused=docker-image://" + registry_ + "/busybox-docker:latest"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const json record = json::parse(RecordOf(meta()));
  ASSERT_TRUE(record.contains("deps")) << record.dump();
  ASSERT_TRUE(record["deps"].contains("base")) << record.dump();
  EXPECT_FALSE(record["deps"].contains("unused"));
  const json& dep = record["deps"]["base"];
  EXPECT_EQ(dep["attrs"]["build-arg:MIRROR"], "http://xxxxx:xxxxx@127.0.0.1:1/");
  EXPECT_NE(dep["sources"].dump().find(
                Canon(GitSourceJson(git_ + "#v1.0", fixture_.Get("GIT_TAG_COMMIT")))),
            std::string::npos)
      << dep.dump();
  EXPECT_EQ(ReadAll(meta()).find("mirror-pw-99"), std::string::npos);
  for (const json& s : record["sources"]) {
    EXPECT_EQ(s["ref"].get<std::string>().find("busybox-docker"), std::string::npos) << s.dump();
  }
  EXPECT_EQ(record["attrs"]["context:unused"],
            "docker-image://" + registry_ + "/busybox-docker:latest");
  // K5: the image context is pinned to the digest it resolved to.
  ASSERT_EQ(record["sources"].size(), 1u) << record.dump();
  EXPECT_EQ(record["sources"][0]["ref"], dep_image);
  EXPECT_EQ(record["sources"][0]["pin"].get<std::string>().rfind("sha256:", 0), 0u);
}

// An OCI layout directory as a named context: the image (chosen by
// index.json, or by @DIGEST) is the stage's base, its own record is
// deps[NAME] (K10), and the context is named by its attribute only.
TEST_F(ContextTest, OciLayoutNamedContext) {
  WriteFile(ctx() / "Dockerfile",
            "ARG REGISTRY\nFROM ${REGISTRY}/busybox:latest\nARG GIT\nADD ${GIT}#v1.0 /src/\n");
  const fs::path tar = dir_.path() / "layout.tar";
  RunResult first =
      Kiln({"build", "--progress", "plain", "--build-arg", "REGISTRY=" + registry_, "--build-arg",
            "GIT=" + git_, "-o", "type=oci,dest=" + tar.string(), ctx().string()});
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  const fs::path layout = dir_.path() / "layout";
  fs::create_directories(layout);
  ASSERT_EQ(std::system(("tar -C " + layout.string() + " -xf " + tar.string()).c_str()), 0);
  const std::string manifest =
      nlohmann::json::parse(ReadAll(layout / "index.json"))["manifests"][0]["digest"];

  for (const std::string& value :
       {"oci-layout://" + layout.string(), "oci-layout://" + layout.string() + "@" + manifest}) {
    RunResult r = BuildDockerfile("FROM base\nRUN cp /src/README.md /copy\n",
                                  {"--build-context", "base=" + value});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_NE(Image().files["copy"].data.find("version 1.0"), std::string::npos);
    const json record = json::parse(RecordOf(meta()));
    EXPECT_EQ(record["attrs"]["context:base"], value);
    ASSERT_TRUE(record.contains("deps")) << record.dump();
    EXPECT_NE(record["deps"]["base"]["sources"].dump().find(
                  Canon(GitSourceJson(git_ + "#v1.0", fixture_.Get("GIT_TAG_COMMIT")))),
              std::string::npos)
        << record.dump();
    EXPECT_FALSE(record.contains("sources")) << record.dump();
  }

  RunResult bad = BuildDockerfile(
      "FROM base\n", {"--build-context", "base=oci-layout://" + (dir_.path() / "nope").string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("named context \"base\": OCI layout " + (dir_.path() / "nope").string()),
            std::string::npos)
      << bad.err;
}

// The record of a Dockerfile using a base image, an HTTP file, a git
// repository by tag and a named image context: spec Part A, byte for byte.
TEST_F(ContextTest, RecordOfImageHttpGitAndNamedContextIsExact) {
  RunResult r = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "ARG HTTP\n"
      "ARG GIT\n"
      "ADD ${HTTP}/hello.txt /hello.txt\n"
      "ADD ${GIT}#v1.0 /src/\n"
      "COPY --from=tools /bin/busybox /tools/busybox\n",
      {"--build-context", "tools=docker-image://" + registry_ + "/busybox-docker:latest"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  const std::string sources =
      "\"sources\":["
      "{\"type\":\"docker-image\",\"ref\":\"" +
      registry_ + "/busybox-docker:latest\",\"pin\":\"" + fixture_.Get("BUSYBOX_DOCKER_DIGEST") +
      "\"},"
      "{\"type\":\"docker-image\",\"ref\":\"" +
      registry_ + "/busybox:latest\",\"pin\":\"" + fixture_.Get("BUSYBOX_DIGEST") + "\"}," +
      GitSourceJson(git_ + "#v1.0", fixture_.Get("GIT_TAG_COMMIT")) +
      ",{\"type\":\"http\",\"ref\":\"" + http_ + "/hello.txt\",\"pin\":\"" +
      fixture_.Get("HTTP_HELLO_SHA256") + "\"}]";
  const std::string full = "{\"frontend\":\"dockerfile.v0\",\"attrs\":{\"build-arg:GIT\":\"" +
                           git_ + "\",\"build-arg:HTTP\":\"" + http_ +
                           "\",\"build-arg:REGISTRY\":\"" + registry_ +
                           "\",\"context:tools\":\"docker-image://" + registry_ +
                           "/busybox-docker:latest\",\"filename\":\"Dockerfile\"}," + sources + "}";
  EXPECT_EQ(RecordOf(meta()), Canon(full));
  EXPECT_EQ(json::parse(Image().config_json)["moby.buildkit.buildinfo.v1"],
            util::Base64Encode("{\"frontend\":\"dockerfile.v0\"," + sources + "}"));
}

// ---- issue 15: stages added while converting ---------------------------------------

// Issue 15, failure 1: the converter held a reference into its stage vector
// while COPY --from=<named context | image ref> appended implicit stages;
// this shape crashed every time (use after reallocation).
TEST_F(ContextTest, CopyFromGitContextTwiceThenAnImageAfterTwoAddsBuilds) {
  WriteFile(ctx() / "local.txt", "local\n");
  RunResult r = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "ARG REGISTRY\n"
      "ARG HTTP\n"
      "ADD ${HTTP}/hello.txt /h1\n"
      "ADD ${HTTP}/data.bin /h2\n"
      "COPY --from=gitctx /README.md /r1\n"
      "COPY --from=gitctx /sub/dir/version.txt /r2\n"
      "COPY --from=${REGISTRY}/busybox-docker:latest /bin/busybox /bb\n"
      "COPY local.txt /local.txt\n"
      "RUN cat /r2 /local.txt > /joined\n",
      {"--build-context", "gitctx=" + git_ + "#v1.0"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_NE(img.files["r1"].data.find("version 1.0"), std::string::npos);
  EXPECT_EQ(img.files["joined"].data, "1.0\nlocal\n");
  EXPECT_EQ(img.files["bb"].data, img.files["bin/busybox"].data);
}

// Issue 15, failure 1: a build using 3, 5, 6, 7 or 9 named contexts crashed
// (each is an implicit stage; those counts appended at a reallocation).
TEST_F(ContextTest, AnyNumberOfNamedContextsBuilds) {
  for (int n = 1; n <= 9; ++n) {
    SCOPED_TRACE(std::to_string(n) + " named contexts");
    std::string df = "FROM scratch\n";
    std::vector<std::string> extra;
    for (int i = 0; i < n; ++i) {
      const std::string name = "c" + std::to_string(i);
      WriteFile(dir_.path() / "contexts" / name / "f.txt", name + "\n");
      extra.insert(extra.end(),
                   {"--build-context", name + "=" + (dir_.path() / "contexts" / name).string()});
      df += "COPY --from=" + name + " /f.txt /" + name + ".txt\n";
    }
    RunResult r = BuildDockerfile(df, extra);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    OciImage img = Image();
    for (int i = 0; i < n; ++i) {
      const std::string name = "c" + std::to_string(i);
      EXPECT_EQ(img.files[name + ".txt"].data, name + "\n");
    }
  }
}

// Issue 15, failure 2: the second COPY --from=<image ref> of a stage was
// resolved for a platform read from freed memory (the converter's stage
// vector had reallocated under the stage naming it) and failed with "no
// manifest for linux in the index (it has linux/amd64, linux/arm64/v8)".
TEST_F(ContextTest, TwoCopyFromImagesOfDifferentImagesInOneStage) {
  for (const std::string platform : {"linux/amd64", "linux/arm64"}) {
    SCOPED_TRACE(platform);
    RunResult r = BuildDockerfile(
        "ARG REGISTRY\n"
        "FROM scratch\n"
        "ARG REGISTRY\n"
        "COPY --from=${REGISTRY}/busybox-multi:latest /bin/busybox /a\n"
        "COPY --from=${REGISTRY}/busybox-docker-multi:latest /bin/busybox /b\n",
        {"--platform", platform});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    OciImage img = Image();
    const std::string& a = img.files["a"].data;
    ASSERT_GT(a.size(), 20u);
    EXPECT_EQ(a, img.files["b"].data);
    // ELF e_machine: 0x3e x86-64, 0xb7 AArch64.
    EXPECT_EQ(static_cast<unsigned char>(a[18]), platform == "linux/amd64" ? 0x3e : 0xb7);
    const json record = json::parse(RecordOf(meta()));
    ASSERT_EQ(record["sources"].size(), 2u) << record.dump();
    EXPECT_EQ(record["sources"][0]["pin"], fixture_.Get("BUSYBOX_DOCKER_MULTI_DIGEST"));
    EXPECT_EQ(record["sources"][1]["pin"], fixture_.Get("BUSYBOX_MULTI_DIGEST"));
  }
  // And with a RUN using both, on the host's platform.
  RunResult r = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "ARG REGISTRY\n"
      "COPY --from=${REGISTRY}/busybox-multi:latest /bin/busybox /a\n"
      "COPY --from=${REGISTRY}/busybox-docker-multi:latest /bin/busybox /b\n"
      "RUN cmp /a /b && cmp /a /bin/busybox && echo same > /same\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Image().files["same"].data, "same\n");
}

// ---- issue 15: bytes that are not UTF-8 ---------------------------------------------

// Issue 15, failure 10: a RUN command that is not UTF-8 gave nlohmann::json's
// type_error text from the executor; now a Dockerfile error at the line.
TEST_F(ContextTest, RunThatIsNotUtf8IsAnErrorAtItsLine) {
  RunResult r = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "RUN echo caf\xe9 > /greeting\n");
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("Dockerfile:3: the command is not valid UTF-8 (byte 0xe9 at offset 8)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("json"), std::string::npos) << r.err;
}

// Issue 15, failure 10: file names in a context are bytes (as in BuildKit,
// whose context transfer sends them unchanged): a name that is not UTF-8 is
// copied as it is, by COPY . and by a wildcard, and reaches RUN.
TEST_F(ContextTest, ContextFileNamesThatAreNotUtf8AreCopiedAsTheyAre) {
  const std::string latin1 = "caf\xe9.txt";
  WriteFile(ctx() / latin1, "latin-1 name\n");
  WriteFile(ctx() / "sub" / ("d\xfc" + std::string("r")) / "x.txt", "in a latin-1 dir\n");
  RunResult r = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "COPY . /ctx/\n"
      "COPY caf* /wild/\n"
      "RUN cat \"/wild/$(printf 'caf\\351.txt')\" > /via-run\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  OciImage img = Image();
  EXPECT_EQ(img.files["ctx/" + latin1].data, "latin-1 name\n");
  EXPECT_EQ(img.files["wild/" + latin1].data, "latin-1 name\n");
  EXPECT_EQ(img.files["ctx/sub/d\xfcr/x.txt"].data, "in a latin-1 dir\n");
  EXPECT_EQ(img.files["via-run"].data, "latin-1 name\n");
  // A second build is cached (the context index holds the names).
  RunResult again = BuildDockerfile(
      "ARG REGISTRY\n"
      "FROM ${REGISTRY}/busybox:latest\n"
      "COPY . /ctx/\n"
      "COPY caf* /wild/\n"
      "RUN cat \"/wild/$(printf 'caf\\351.txt')\" > /via-run\n");
  ASSERT_EQ(again.exit_code, 0) << Describe(again);
  EXPECT_EQ(StepState(again.err, "RUN cat"), "CACHED") << again.err;
}

// ---- bad input --------------------------------------------------------------------

TEST_F(ContextTest, UnknownRefNamesTheSourceAndTheLine) {
  RunResult r = BuildDockerfile("FROM scratch\nARG GIT\nADD ${GIT}#no-such-ref /src/\n");
  ASSERT_NE(r.exit_code, 0);
  EXPECT_NE(
      r.err.find("kiln: error: [internal] load git source " + git_ + "#no-such-ref: git " + git_ +
                 ": ref \"no-such-ref\" not found (no branch, tag or commit of that "
                 "name)\n"),
      std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Dockerfile:3"), std::string::npos) << r.err;
}

TEST_F(ContextTest, UnreachableRemoteNamesTheSourceAndTheLine) {
  RunResult r = BuildDockerfile("FROM scratch\nADD git://127.0.0.1:1/gone.git#main /src/\n");
  ASSERT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("git://127.0.0.1:1/gone.git"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("kiln: error: [internal] load git source git://127.0.0.1:1/gone.git#main: "
                       "git git://127.0.0.1:1/gone.git: cannot list refs: cannot reach the remote: "
                       "unable to connect to 127.0.0.1: 127.0.0.1[0: 127.0.0.1]: "
                       "errno=Connection refused\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Dockerfile:2"), std::string::npos) << r.err;
}

TEST_F(ContextTest, MalformedGitUrlNamesTheSourceAndTheLine) {
  RunResult r = BuildDockerfile("FROM scratch\nADD git://127.0.0.1:port/x.git /src/\n");
  ASSERT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("kiln: error: [internal] load git source git://127.0.0.1:port/x.git: git "
                       "URL \"git://127.0.0.1:port/x.git\": the port must be a number\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Dockerfile:2"), std::string::npos) << r.err;
}

TEST_F(ContextTest, ChecksumMismatchNamesTheSourceAndTheLine) {
  RunResult r = BuildDockerfile(
      "FROM scratch\nARG HTTP\nADD --checksum=sha256:"
      "0000000000000000000000000000000000000000000000000000000000000000 ${HTTP}/hello.txt /h\n");
  ASSERT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(http_ + "/hello.txt"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Dockerfile:3"), std::string::npos) << r.err;
}

TEST_F(ContextTest, UnreachableRemoteContextNamesTheRedactedUrl) {
  RunResult r = Kiln({"build", "--progress", "plain", "-o", "type=oci,dest=" + out().string(),
                      "https://kiln:ctx-pw-31@127.0.0.1:1/repo.git#main"});
  ASSERT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.find("ctx-pw-31"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("https://xxxxx:xxxxx@127.0.0.1:1/repo.git"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kiln::testing
