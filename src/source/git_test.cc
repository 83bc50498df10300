// GitSource: URL parsing and redaction on their own; resolving, fetching and
// checking out against the loopback fixture's `git daemon` (repo.git: v0.1
// lightweight -> commit 1, v1.0 annotated -> commit 2, main -> commit 3, dev
// -> commit 4) and against repositories this test makes and serves itself
// through `git http-backend` (smart HTTP, optionally behind basic auth) or
// as static files (dumb HTTP), for a branch that moves between two resolves,
// submodules and credentials. Under ctest it attaches to the shared
// anonymous fixture.
#include "source/git.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"
#include "git_http_server.h"
#include "kiln_process.h"
#include "util/base64.h"

extern char** environ;

namespace kiln::source {
namespace {

namespace fs = std::filesystem;
using kiln::testing::ReadAll;
using kiln::testing::TempDir;
using kiln::testing::WriteFile;

// ---- parsing ------------------------------------------------------------------

TEST(GitParseTest, GitDaemonUrlWithRefAndSubdir) {
  auto r = ParseGitRef("git://127.0.0.1:9418/repo.git#main:sub/dir");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, GitTransport::kGit);
  EXPECT_EQ(r->remote, "git://127.0.0.1:9418/repo.git");
  EXPECT_EQ(r->host, "127.0.0.1");
  EXPECT_EQ(r->ref, "main");
  EXPECT_EQ(r->subdir, "sub/dir");
  EXPECT_EQ(r->Redacted(), "git://127.0.0.1:9418/repo.git#main:sub/dir");
}

TEST(GitParseTest, HttpsCredentialsAreSplitOff) {
  auto r = ParseGitRef("https://alice:p%40ss@example.com/org/repo.git#v1.0");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->transport, GitTransport::kHttps);
  EXPECT_EQ(r->remote, "https://example.com/org/repo.git");
  EXPECT_EQ(r->username, "alice");
  EXPECT_EQ(r->password, "p@ss");
  EXPECT_TRUE(r->has_password);
  EXPECT_EQ(r->RedactedRemote(), "https://xxxxx:xxxxx@example.com/org/repo.git");
  EXPECT_EQ(r->Redacted(), "https://xxxxx:xxxxx@example.com/org/repo.git#v1.0");

  auto token = ParseGitRef("https://ghp_secrettoken@example.com/org/repo.git");
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  EXPECT_EQ(token->username, "ghp_secrettoken");
  EXPECT_FALSE(token->has_password);
  EXPECT_EQ(token->Redacted(), "https://xxxxx@example.com/org/repo.git");
}

TEST(GitParseTest, ScpLikeAndSsh) {
  auto scp = ParseGitRef("git@github.com:org/repo.git#dev");
  ASSERT_TRUE(scp.ok()) << scp.status().ToString();
  EXPECT_EQ(scp->transport, GitTransport::kScp);
  EXPECT_EQ(scp->remote, "git@github.com:org/repo.git");
  EXPECT_EQ(scp->host, "github.com");
  EXPECT_EQ(scp->Redacted(), "git@github.com:org/repo.git#dev");

  auto alice = ParseGitRef("alice@host.example:repo");
  ASSERT_TRUE(alice.ok()) << alice.status().ToString();
  EXPECT_EQ(alice->remote, "alice@host.example:repo");  // ssh needs the user
  EXPECT_EQ(alice->Redacted(), "xxxxx@host.example:repo");

  auto ssh = ParseGitRef("ssh://git@host.example:2222/srv/repo.git#v1:docs");
  ASSERT_TRUE(ssh.ok()) << ssh.status().ToString();
  EXPECT_EQ(ssh->transport, GitTransport::kSsh);
  EXPECT_EQ(ssh->remote, "ssh://git@host.example:2222/srv/repo.git");
  EXPECT_EQ(ssh->host, "host.example");
  EXPECT_EQ(ssh->ref, "v1");
  EXPECT_EQ(ssh->subdir, "docs");
  EXPECT_EQ(ssh->Redacted(), "ssh://xxxxx@host.example:2222/srv/repo.git#v1:docs");
}

TEST(GitParseTest, BareHostPathsFollowBuildKit) {
  auto gh = ParseGitRef("github.com/org/repo#main");
  ASSERT_TRUE(gh.ok()) << gh.status().ToString();
  EXPECT_EQ(gh->transport, GitTransport::kHttps);
  EXPECT_EQ(gh->remote, "https://github.com/org/repo");

  auto bare = ParseGitRef("example.com/org/repo");
  ASSERT_FALSE(bare.ok());
  EXPECT_EQ(bare.status().message(),
            "git URL \"example.com/org/repo\": not a git URL (use git://, https://, http://, "
            "ssh:// or user@host:path)");
  auto assumed = ParseGitRef("example.com/org/repo", {.assume_git = true});
  ASSERT_TRUE(assumed.ok()) << assumed.status().ToString();
  EXPECT_EQ(assumed->remote, "https://example.com/org/repo");

  auto tarball = ParseGitRef("https://example.com/context.tar");
  ASSERT_FALSE(tarball.ok());
  EXPECT_EQ(tarball.status().message(),
            "git URL \"https://example.com/context.tar\": an http(s) URL is read as git only "
            "when its path ends in \".git\"");
  EXPECT_TRUE(ParseGitRef("https://example.com/repo", {.assume_git = true}).ok());

  EXPECT_TRUE(LooksLikeGitUrl("git://h/r"));
  EXPECT_TRUE(LooksLikeGitUrl("github.com/org/repo"));
  EXPECT_TRUE(LooksLikeGitUrl("git@github.com:org/repo.git"));
  EXPECT_TRUE(LooksLikeGitUrl("https://h/org/repo.git#main:sub"));
  EXPECT_TRUE(LooksLikeGitUrl("ssh://git@h/r.git"));
  EXPECT_FALSE(LooksLikeGitUrl("https://h/context.tar.gz"));
  EXPECT_FALSE(LooksLikeGitUrl("./repo.git"));
  EXPECT_FALSE(LooksLikeGitUrl("example.com/org/repo.git"));
}

TEST(GitParseTest, SubdirIsCleaned) {
  auto r = ParseGitRef("git://h/r.git#main:/a/./b/../c/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->subdir, "a/c");
  auto root = ParseGitRef("git://h/r.git#main:/");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(root->subdir, "");
  EXPECT_EQ(root->Redacted(), "git://h/r.git#main");
  auto no_ref = ParseGitRef("git://h/r.git#:docs");
  ASSERT_TRUE(no_ref.ok());
  EXPECT_EQ(no_ref->ref, "");
  EXPECT_EQ(no_ref->subdir, "docs");
}

struct BadUrl {
  std::string url;
  std::string message;
};

TEST(GitParseTest, MalformedUrlsGiveOneLineNamingTheRedactedUrl) {
  const std::vector<BadUrl> cases = {
      {"", "git URL: empty"},
      {"ftp://h/r.git",
       "git URL \"ftp://h/r.git\": unsupported scheme \"ftp\" (use git://, https://, http://, "
       "ssh:// or user@host:path)"},
      {"https:///r.git", "git URL \"https:///r.git\": no host"},
      {"git://h:port/r.git", "git URL \"git://h:port/r.git\": the port must be a number"},
      {"git://h", "git URL \"git://h\": no repository path"},
      {"git://h/r.git#-upload-pack=x",
       "git URL \"git://h/r.git#-upload-pack=x\": \"-upload-pack=x\" is not a valid branch, tag "
       "or commit name"},
      {"https://u:hunter22@h/r.git#a..b",
       "git URL \"https://xxxxx:xxxxx@h/r.git#a..b\": \"a..b\" is not a valid branch, tag or "
       "commit name"},
      {"git://h/r.git#main:../../etc",
       "git URL \"git://h/r.git#main:../../etc\": subdir \"../../etc\" leaves the repository"},
      {"git://u:hunter22@h/r.git",
       "git URL \"git://xxxxx:xxxxx@h/r.git\": the git:// protocol has no authentication; "
       "remove the user-info"},
      {"ssh://u:hunter22@h/r.git",
       "git URL \"ssh://xxxxx:xxxxx@h/r.git\": ssh remotes take no password in the URL; use an "
       "ssh agent or key"},
      {"git://h/r .git", "git URL \"git://h/r .git\": contains whitespace or a control character"},
      {"git@-oProxyCommand=x:r",
       "git URL \"git@-oProxyCommand=x:r\": the host must not start "
       "with '-'"},
  };
  for (const auto& c : cases) {
    auto r = ParseGitRef(c.url);
    ASSERT_FALSE(r.ok()) << c.url;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.url;
    EXPECT_EQ(r.status().message(), c.message) << c.url;
    EXPECT_EQ(r.status().message().find("hunter22"), std::string::npos);
  }
}

// ---- helpers for local repositories -------------------------------------------

// Runs git with a fixed identity and no user configuration; fails the test
// on a non-zero exit. Returns stdout without the trailing newline.
std::string Git(const fs::path& dir, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"-C", dir.string()};
  all.insert(all.end(), args.begin(), args.end());
  kiln::testing::RunOptions o;
  o.env = {{"GIT_AUTHOR_NAME", "Kiln Test"},         {"GIT_AUTHOR_EMAIL", "test@kiln.invalid"},
           {"GIT_COMMITTER_NAME", "Kiln Test"},      {"GIT_COMMITTER_EMAIL", "test@kiln.invalid"},
           {"GIT_AUTHOR_DATE", "@1600000000 +0000"}, {"GIT_COMMITTER_DATE", "@1600000000 +0000"},
           {"GIT_CONFIG_GLOBAL", "/dev/null"},       {"GIT_CONFIG_NOSYSTEM", "1"}};
  auto r = kiln::testing::Run("/usr/bin/git", all, o);
  EXPECT_EQ(r.exit_code, 0) << "git " << args[0] << ": " << kiln::testing::Describe(r);
  while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

// Makes a work repository at `dir` with `files` committed on main.
std::string MakeRepo(const fs::path& dir, const std::map<std::string, std::string>& files) {
  fs::create_directories(dir);
  Git(dir, {"init", "-q", "-b", "main"});
  for (const auto& [name, content] : files) WriteFile(dir / name, content);
  Git(dir, {"add", "-A"});
  Git(dir, {"commit", "-q", "-m", "commit"});
  return Git(dir, {"rev-parse", "HEAD"});
}

// Publishes work repository `work` as the bare `served/name` (replacing it).
void Publish(const fs::path& work, const fs::path& served, const std::string& name) {
  fs::create_directories(served);
  if (!fs::exists(served / name)) Git(served, {"init", "-q", "--bare", name});
  Git(work, {"push", "-q", "-f", (served / name).string(), "--all"});
  Git(work, {"push", "-q", "-f", (served / name).string(), "--tags"});
  Git(served / name, {"update-server-info"});  // for dumb HTTP
}

using kiln::testing::GitHttpServer;

bool IsExecutable(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IXUSR) != 0;
}

// Every file under `dir` (recursively), as one string, for "no secret
// anywhere" checks.
std::string SlurpTree(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file() && !e.is_symlink()) all += ReadAll(e.path());
  }
  return all;
}

// ---- against the fixture and local servers ----------------------------------------

class GitSourceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture::FixtureOptions options;
    const char* shared = std::getenv("KILN_FIXTURE_ENV_NONE");
    if (shared == nullptr || *shared == '\0') options.images = false;
    auto f = fixture::Fixture::Start(options);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    fixture_ = new fixture::Fixture(std::move(*f));
  }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(fixture_, nullptr);
    remote_ = fixture_->Get("GIT");
    ASSERT_EQ(remote_.rfind("git://", 0), 0u) << remote_;
    auto src = GitSource::Open(tmp_.path() / "root", nullptr);
    ASSERT_TRUE(src.ok()) << src.status().ToString();
    git_ = *src;
  }

  GitRef Ref(const std::string& fragment) {
    auto r = ParseGitRef(remote_ + (fragment.empty() ? "" : "#" + fragment));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : GitRef{};
  }
  std::string Resolve(const GitRef& ref) {
    auto r = git_->Resolve(ref, {});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->commit : "";
  }

  static fixture::Fixture* fixture_;
  TempDir tmp_{"kiln-git-test"};
  std::string remote_;
  std::shared_ptr<GitSource> git_;
};

fixture::Fixture* GitSourceTest::fixture_ = nullptr;

TEST_F(GitSourceTest, ResolvesBranches) {
  auto main = git_->Resolve(Ref("main"), {});
  ASSERT_TRUE(main.ok()) << main.status().ToString();
  EXPECT_EQ(main->commit, fixture_->Get("GIT_MAIN_COMMIT"));
  EXPECT_EQ(main->ref_name, "refs/heads/main");
  EXPECT_TRUE(main->is_branch);
  EXPECT_EQ(Resolve(Ref("dev")), fixture_->Get("GIT_DEV_COMMIT"));
  EXPECT_EQ(Resolve(Ref("refs/heads/dev")), fixture_->Get("GIT_DEV_COMMIT"));
  // No ref: the remote's HEAD, which is main.
  EXPECT_EQ(Resolve(Ref("")), fixture_->Get("GIT_MAIN_COMMIT"));
  EXPECT_EQ(git_->stats().ls_remotes, 4);
}

TEST_F(GitSourceTest, AnnotatedTagIsPeeledToItsCommit) {
  auto tag = git_->Resolve(Ref(fixture_->Get("GIT_TAG")), {});
  ASSERT_TRUE(tag.ok()) << tag.status().ToString();
  EXPECT_EQ(tag->commit, fixture_->Get("GIT_TAG_COMMIT"));
  EXPECT_NE(tag->commit, fixture_->Get("GIT_TAG_OBJECT"));
  EXPECT_EQ(tag->ref_name, "refs/tags/v1.0");
  EXPECT_FALSE(tag->is_branch);
}

TEST_F(GitSourceTest, LightweightTag) {
  EXPECT_EQ(Resolve(Ref(fixture_->Get("GIT_LIGHTWEIGHT_TAG"))),
            fixture_->Get("GIT_LIGHTWEIGHT_TAG_COMMIT"));
}

TEST_F(GitSourceTest, FullCommitIdIsTakenAsIsWithoutNetwork) {
  std::string commit = fixture_->Get("GIT_DEV_COMMIT");
  EXPECT_EQ(Resolve(Ref(commit)), commit);
  EXPECT_EQ(git_->stats().ls_remotes, 0);
  fs::path dest = tmp_.path() / "dev";
  ASSERT_TRUE(git_->Checkout(Ref(commit), commit, {}, {}, dest).ok());
  EXPECT_EQ(ReadAll(dest / "dev.txt"), "on the dev branch\n");
  EXPECT_FALSE(fs::exists(dest / "sub/other.txt"));
}

TEST_F(GitSourceTest, CommitThatIsNoBranchTipIsFetched) {
  // Commit 2 is only reachable through the annotated tag.
  std::string commit = fixture_->Get("GIT_TAG_COMMIT");
  fs::path dest = tmp_.path() / "c2";
  Status s = git_->Checkout(Ref(commit), commit, {}, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(dest / "sub/dir/version.txt"), "1.0\n");
  EXPECT_EQ(git_->stats().fetches, 1);
}

TEST_F(GitSourceTest, AbbreviatedCommitId) {
  std::string main = fixture_->Get("GIT_MAIN_COMMIT");
  EXPECT_EQ(Resolve(Ref(main.substr(0, 10))), main);
  // Commit 2 is advertised only as the peeled value of v1.0.
  std::string c2 = fixture_->Get("GIT_TAG_COMMIT");
  EXPECT_EQ(Resolve(Ref(c2.substr(0, 8))), c2);

  auto unknown = git_->Resolve(Ref("deadbeef"), {});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(),
            "git " + remote_ +
                ": ref \"deadbeef\" not found, and the remote resolves abbreviated commit ids "
                "only for branch and tag tips; give the full 40-hex commit id");
}

TEST_F(GitSourceTest, CheckoutWholeTreeWithoutGitDir) {
  std::string commit = Resolve(Ref("main"));
  fs::path dest = tmp_.path() / "out";
  Status s = git_->Checkout(Ref("main"), commit, {}, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(dest / "sub/dir/hello.txt"), "hello from sub/dir\n");
  EXPECT_EQ(ReadAll(dest / "sub/other.txt"), "on main after 1.0\n");
  EXPECT_TRUE(IsExecutable(dest / "run.sh"));
  EXPECT_FALSE(IsExecutable(dest / "README.md"));
  EXPECT_FALSE(fs::exists(dest / ".git"));
  // Nothing is left behind in the staging area.
  EXPECT_TRUE(fs::is_empty(tmp_.path() / "root/git/tmp"));
}

TEST_F(GitSourceTest, CheckoutSubdirOnly) {
  GitRef ref = Ref("v1.0:sub/dir");
  std::string commit = Resolve(ref);
  fs::path dest = tmp_.path() / "sub";
  Status s = git_->Checkout(ref, commit, {}, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dest)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"hello.txt", "version.txt"}));
}

TEST_F(GitSourceTest, BadSubdirIsNotFound) {
  GitRef ref = Ref("main:no/such/dir");
  std::string commit = Resolve(ref);
  Status s = git_->Checkout(ref, commit, {}, {}, tmp_.path() / "bad");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "git " + remote_ + "#main:no/such/dir: subdir \"no/such/dir\" is not a " +
                             "directory in commit " + commit);
  // A file is no subdir either.
  GitRef file = Ref("main:README.md");
  EXPECT_EQ(git_->Checkout(file, commit, {}, {}, tmp_.path() / "bad2").code(),
            StatusCode::kNotFound);
}

TEST_F(GitSourceTest, KeepGitDirMakesARealRepository) {
  GitRef ref = Ref("main");
  auto resolved = git_->Resolve(ref, {});
  ASSERT_TRUE(resolved.ok()) << resolved.status().ToString();
  fs::path dest = tmp_.path() / "keep";
  GitCheckoutOptions keep{.keep_git_dir = true, .branch = "main"};
  Status s = git_->Checkout(ref, resolved->commit, keep, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(fs::is_directory(dest / ".git"));
  EXPECT_EQ(Git(dest, {"rev-parse", "HEAD"}), resolved->commit);
  EXPECT_EQ(Git(dest, {"symbolic-ref", "HEAD"}), "refs/heads/main");
  EXPECT_EQ(Git(dest, {"remote", "get-url", "origin"}), remote_);
  EXPECT_EQ(Git(dest, {"status", "--porcelain"}), "");

  // A tag: detached HEAD at the peeled commit.
  fs::path tag = tmp_.path() / "keep-tag";
  std::string c2 = fixture_->Get("GIT_TAG_COMMIT");
  ASSERT_TRUE(git_->Checkout(Ref("v1.0"), c2, {.keep_git_dir = true, .branch = ""}, {}, tag).ok());
  EXPECT_EQ(Git(tag, {"rev-parse", "HEAD"}), c2);
  kiln::testing::RunOptions o;
  auto sym =
      kiln::testing::Run("/usr/bin/git", {"-C", tag.string(), "symbolic-ref", "-q", "HEAD"}, o);
  EXPECT_EQ(sym.exit_code, 1) << "HEAD should be detached: " << sym.out;
}

TEST_F(GitSourceTest, SecondFetchOfTheSameCommitFetchesNothing) {
  GitRef ref = Ref("main");
  std::string commit = Resolve(ref);
  auto first = git_->Fetch(ref, commit, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(*first);
  auto second = git_->Fetch(ref, commit, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(*second);
  EXPECT_EQ(git_->stats().fetches, 1);
  EXPECT_EQ(git_->stats().fetches_skipped, 1);
  EXPECT_TRUE(fs::exists(git_->CacheDir(ref) / "HEAD"));
  EXPECT_EQ(git_->CacheDir(ref).parent_path(), tmp_.path() / "root/git");

  // A later build (a new GitSource on the same root) reuses the cache too,
  // and its checkout fetches nothing.
  auto again = GitSource::Open(tmp_.path() / "root", nullptr);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->Checkout(ref, commit, {}, {}, tmp_.path() / "out2").ok());
  EXPECT_EQ((*again)->stats().fetches, 0);
  EXPECT_EQ((*again)->stats().fetches_skipped, 1);
  EXPECT_EQ(ReadAll(tmp_.path() / "out2/README.md"), "# kiln fixture repository\n\nversion 1.0\n");
}

TEST_F(GitSourceTest, ConcurrentFetchesOfOneCacheSerialize) {
  GitRef ref = Ref("dev");
  std::string commit = Resolve(ref);
  auto other = GitSource::Open(tmp_.path() / "root", nullptr);
  ASSERT_TRUE(other.ok());
  Result<bool> a = false;
  Result<bool> b = false;
  std::thread t1([&] { a = git_->Fetch(ref, commit, {}); });
  std::thread t2([&] { b = (*other)->Fetch(ref, commit, {}); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_NE(*a, *b);  // exactly one of them fetched
  EXPECT_EQ(git_->stats().fetches + (*other)->stats().fetches, 1);
}

TEST_F(GitSourceTest, CheckoutIntoASnapshotIsReused) {
  auto snaps = snapshot::Snapshotter::Open(tmp_.path() / "root/snapshots", {.force_copy = true});
  ASSERT_TRUE(snaps.ok()) << snaps.status().ToString();
  auto src = GitSource::Open(tmp_.path() / "root", *snaps);
  ASSERT_TRUE(src.ok());
  GitRef ref = Ref("main:sub");
  std::string commit = Resolve(ref);
  auto id = (*src)->CheckoutSnapshot(ref, commit, {}, {});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  auto info = (*snaps)->Stat(*id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->labels.at(std::string(kLabelGitCommit)), commit);
  {
    auto view = (*snaps)->Mount(*id);
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    EXPECT_EQ(ReadAll(view->path() / "dir/hello.txt"), "hello from sub/dir\n");
    EXPECT_EQ(ReadAll(view->path() / "other.txt"), "on main after 1.0\n");
    EXPECT_FALSE(fs::exists(view->path() / "run.sh"));
  }
  auto again = (*src)->CheckoutSnapshot(ref, commit, {}, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, *id);
  EXPECT_EQ((*src)->stats().checkouts, 1);
  EXPECT_EQ((*src)->stats().checkouts_reused, 1);
  // keep-git-dir is another checkout.
  auto keep =
      (*src)->CheckoutSnapshot(Ref("main"), commit, {.keep_git_dir = true, .branch = ""}, {});
  ASSERT_TRUE(keep.ok()) << keep.status().ToString();
  EXPECT_NE(*keep, *id);
}

TEST_F(GitSourceTest, CheckoutRefusesANonEmptyDestination) {
  std::string commit = fixture_->Get("GIT_MAIN_COMMIT");
  fs::path dest = tmp_.path() / "busy";
  WriteFile(dest / "mine.txt", "keep me\n");
  Status s = git_->Checkout(Ref("main"), commit, {}, {}, dest);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(s.message(),
            "git checkout: " + dest.string() + " exists and is not an empty directory");
  EXPECT_EQ(ReadAll(dest / "mine.txt"), "keep me\n");
  // An empty directory is fine.
  fs::create_directories(tmp_.path() / "empty");
  ASSERT_TRUE(git_->Checkout(Ref("main"), commit, {}, {}, tmp_.path() / "empty").ok());
  EXPECT_TRUE(fs::exists(tmp_.path() / "empty/run.sh"));
}

TEST_F(GitSourceTest, CancelledBuildStopsGit) {
  util::Canceller cancel;
  cancel.Cancel("build cancelled by the test");
  GitOptions options;
  options.cancel = &cancel;
  auto r = git_->Resolve(Ref("main"), options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_EQ(r.status().message(), "build cancelled by the test");
}

TEST_F(GitSourceTest, FetchRejectsAnAbbreviatedCommit) {
  auto r = git_->Fetch(Ref("main"), "abc123", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "git " + remote_ + ": \"abc123\" is not a full 40-hex commit id");
}

TEST_F(GitSourceTest, UnknownCommitIsNotFound) {
  std::string commit(40, 'a');
  auto r = git_->Fetch(Ref(commit), commit, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_EQ(r.status().message(),
            "git " + remote_ + ": commit " + commit + " not found on the remote");
}

TEST_F(GitSourceTest, UnknownRefIsNotFound) {
  auto r = git_->Resolve(Ref("no-such-branch"), {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "git " + remote_ +
                                      ": ref \"no-such-branch\" not found (no branch, tag or "
                                      "commit of that name)");
}

TEST_F(GitSourceTest, UnknownRepositoryIsNotFound) {
  std::string missing = remote_.substr(0, remote_.rfind('/')) + "/missing.git";
  auto ref = ParseGitRef(missing + "#main");
  ASSERT_TRUE(ref.ok());
  auto r = git_->Resolve(*ref, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().ToString();
  EXPECT_EQ(
      r.status().message().rfind("git " + missing + ": cannot list refs: no such repository: ", 0),
      0u)
      << r.status().message();
}

TEST_F(GitSourceTest, UnreachableRemote) {
  // Port 1 on the loopback: nothing listens, the connection is refused.
  auto ref = ParseGitRef("git://127.0.0.1:1/repo.git#main");
  ASSERT_TRUE(ref.ok());
  auto r = git_->Resolve(*ref, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIOError) << r.status().ToString();
  const std::string m = r.status().message();
  EXPECT_EQ(
      m.rfind("git git://127.0.0.1:1/repo.git: cannot list refs: cannot reach the remote: ", 0), 0u)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;

  // A token given as the URL's user is masked too.
  auto token = ParseGitRef("https://ghp_t0kenAsUser@127.0.0.1:1/repo.git#main");
  ASSERT_TRUE(token.ok());
  auto t = git_->Resolve(*token, {});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kIOError) << t.status().ToString();
  EXPECT_EQ(t.status().ToString().find("t0kenAsUser"), std::string::npos) << t.status().ToString();
  EXPECT_NE(t.status().message().find("https://xxxxx@127.0.0.1:1/repo.git"), std::string::npos)
      << t.status().message();
}

TEST_F(GitSourceTest, MovedBranchGetsANewPinAndFetch) {
  fs::path work = tmp_.path() / "work";
  fs::path served = tmp_.path() / "served";
  std::string a = MakeRepo(work, {{"file.txt", "one\n"}});
  Publish(work, served, "moving.git");
  GitHttpServer server(served, tmp_.path(), "smart");
  auto ref = ParseGitRef(server.Url() + "moving.git#main");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();

  EXPECT_EQ(Resolve(*ref), a);
  ASSERT_TRUE(git_->Checkout(*ref, a, {}, {}, tmp_.path() / "b1").ok());
  // Unchanged: same pin, nothing fetched.
  EXPECT_EQ(Resolve(*ref), a);
  ASSERT_TRUE(git_->Checkout(*ref, a, {}, {}, tmp_.path() / "b2").ok());
  EXPECT_EQ(git_->stats().fetches, 1);
  EXPECT_EQ(git_->stats().fetches_skipped, 1);

  WriteFile(work / "file.txt", "two\n");
  Git(work, {"commit", "-q", "-am", "two", "--date=@1600000100 +0000"});
  std::string b = Git(work, {"rev-parse", "HEAD"});
  ASSERT_NE(a, b);
  Publish(work, served, "moving.git");
  EXPECT_EQ(Resolve(*ref), b);
  Status s = git_->Checkout(*ref, b, {}, {}, tmp_.path() / "b3");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(tmp_.path() / "b3/file.txt"), "two\n");
  EXPECT_EQ(git_->stats().fetches, 2);
  EXPECT_EQ(git_->stats().full_fetches, 0);
}

TEST_F(GitSourceTest, DumbHttpFallsBackToAFullFetch) {
  fs::path work = tmp_.path() / "work";
  fs::path served = tmp_.path() / "served";
  std::string a = MakeRepo(work, {{"dumb.txt", "static\n"}});
  Publish(work, served, "dumb.git");
  GitHttpServer server(served, tmp_.path(), "dumb");
  auto ref = ParseGitRef(server.Url() + "dumb.git#main");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(Resolve(*ref), a);
  Status s = git_->Checkout(*ref, a, {}, {}, tmp_.path() / "out");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(tmp_.path() / "out/dumb.txt"), "static\n");
  EXPECT_EQ(git_->stats().full_fetches, 1);
}

TEST_F(GitSourceTest, SubmodulesAreCheckedOutRecursively) {
  fs::path served = tmp_.path() / "served";
  std::string leaf = MakeRepo(tmp_.path() / "leaf", {{"leaf.txt", "leaf\n"}});
  Publish(tmp_.path() / "leaf", served, "leaf.git");
  // mid has leaf as a submodule; top has mid. URLs relative to the remote.
  fs::path mid = tmp_.path() / "mid";
  MakeRepo(mid, {{"mid.txt", "mid\n"}});
  WriteFile(mid / ".gitmodules", "[submodule \"leaf\"]\n\tpath = leaf\n\turl = ../leaf.git\n");
  Git(mid, {"update-index", "--add", "--cacheinfo", "160000," + leaf + ",leaf"});
  Git(mid, {"add", ".gitmodules"});
  Git(mid, {"commit", "-q", "-m", "add leaf"});
  std::string mid_commit = Git(mid, {"rev-parse", "HEAD"});
  Publish(mid, served, "mid.git");
  fs::path top = tmp_.path() / "top";
  MakeRepo(top, {{"top.txt", "top\n"}});
  WriteFile(top / ".gitmodules", "[submodule \"mid\"]\n\tpath = mods/mid\n\turl = ../mid.git\n");
  Git(top, {"update-index", "--add", "--cacheinfo", "160000," + mid_commit + ",mods/mid"});
  Git(top, {"add", ".gitmodules"});
  Git(top, {"commit", "-q", "-m", "add mid"});
  Publish(top, served, "top.git");

  GitHttpServer server(served, tmp_.path(), "smart");
  auto ref = ParseGitRef(server.Url() + "top.git#main");
  ASSERT_TRUE(ref.ok());
  std::string commit = Resolve(*ref);
  fs::path dest = tmp_.path() / "out";
  Status s = git_->Checkout(*ref, commit, {}, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(dest / "top.txt"), "top\n");
  EXPECT_EQ(ReadAll(dest / "mods/mid/mid.txt"), "mid\n");
  EXPECT_EQ(ReadAll(dest / "mods/mid/leaf/leaf.txt"), "leaf\n");
  EXPECT_FALSE(fs::exists(dest / ".git"));
  EXPECT_FALSE(fs::exists(dest / "mods/mid/.git"));
  EXPECT_FALSE(fs::exists(dest / "mods/mid/leaf/.git"));

  fs::path keep = tmp_.path() / "keep";
  s = git_->Checkout(*ref, commit, {.keep_git_dir = true, .branch = "main"}, {}, keep);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(fs::exists(keep / "mods/mid/.git"));
  EXPECT_EQ(Git(keep / "mods/mid", {"rev-parse", "HEAD"}), mid_commit);
  EXPECT_EQ(Git(keep / "mods/mid/leaf", {"rev-parse", "HEAD"}), leaf);
}

TEST_F(GitSourceTest, CredentialsInTheUrlAreUsedAndNeverShown) {
  const std::string password = "pa55-w0rd-in-url";
  fs::path work = tmp_.path() / "work";
  fs::path served = tmp_.path() / "served";
  std::string a = MakeRepo(work, {{"private.txt", "private\n"}});
  Publish(work, served, "private.git");
  GitHttpServer server(served, tmp_.path(), "smart", "kiln:" + password);

  auto ref = ParseGitRef(server.Url("kiln:" + password) + "private.git#main");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->remote.find(password), std::string::npos);
  EXPECT_EQ(Resolve(*ref), a);
  fs::path dest = tmp_.path() / "out";
  Status s = git_->Checkout(*ref, a, {.keep_git_dir = true, .branch = "main"}, {}, dest);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(dest / "private.txt"), "private\n");
  EXPECT_EQ(Git(dest, {"remote", "get-url", "origin"}), server.Url("xxxxx:xxxxx") + "private.git");
  // Neither the kept .git nor the cache holds the password.
  EXPECT_EQ(SlurpTree(dest / ".git").find(password), std::string::npos);
  EXPECT_EQ(SlurpTree(tmp_.path() / "root/git").find(password), std::string::npos);

  // Every error about this remote masks the credentials.
  std::vector<Status> errors;
  errors.push_back(
      git_->Resolve(*ParseGitRef(server.Url("kiln:" + password) + "private.git#nope"), {})
          .status());
  errors.push_back(
      git_->Resolve(*ParseGitRef(server.Url("kiln:wrong-" + password) + "private.git#main"), {})
          .status());
  errors.push_back(
      git_->Checkout(*ParseGitRef(server.Url("kiln:" + password) + "private.git#main:nodir"), a, {},
                     {}, tmp_.path() / "x"));
  errors.push_back(ParseGitRef(server.Url("kiln:" + password) + "private.git#bad..ref").status());
  errors.push_back(
      git_->Resolve(*ParseGitRef("http://kiln:" + password + "@127.0.0.1:1/private.git#main"), {})
          .status());
  for (const Status& e : errors) {
    EXPECT_FALSE(e.ok());
    EXPECT_EQ(e.ToString().find(password), std::string::npos) << e.ToString();
    EXPECT_NE(e.ToString().find("xxxxx:xxxxx@"), std::string::npos) << e.ToString();
  }
  EXPECT_EQ(errors[1].code(), StatusCode::kUnauthorized) << errors[1].ToString();
  EXPECT_EQ(errors[1].message().rfind(
                "git " + server.Url("xxxxx:xxxxx") + "private.git: cannot list refs: ", 0),
            0u)
      << errors[1].message();
  EXPECT_EQ(errors[4].code(), StatusCode::kIOError) << errors[4].ToString();

  // Without credentials the server refuses, and git does not prompt.
  auto anon = git_->Resolve(*ParseGitRef(server.Url() + "private.git#main"), {});
  ASSERT_FALSE(anon.ok());
  EXPECT_EQ(anon.status().code(), StatusCode::kUnauthorized) << anon.status().ToString();
}

// Regression guard for K8: what `ps` shows (git's argv) never holds a secret.
// A `git` wrapper first in PATH logs every command line kiln runs.
TEST_F(GitSourceTest, SecretsNeverReachGitsCommandLine) {
  const std::string password = "argv-pa55word";
  const std::string token = "argv-t0ken-value";
  fs::path work = tmp_.path() / "work";
  fs::path served = tmp_.path() / "served";
  std::string a = MakeRepo(work, {{"f.txt", "f\n"}});
  Publish(work, served, "argv.git");
  GitHttpServer server(served, tmp_.path(), "smart", "kiln:" + password);

  fs::path bin = tmp_.path() / "bin";
  fs::path log = tmp_.path() / "argv.log";
  WriteFile(bin / "git", "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + log.string() +
                             "'\nexec /usr/bin/git \"$@\"\n");
  fs::permissions(bin / "git", fs::perms::owner_all);
  const char* old_path = std::getenv("PATH");
  std::string saved = old_path != nullptr ? old_path : "";
  ::setenv("PATH", (bin.string() + ":" + saved).c_str(), 1);

  auto ref = ParseGitRef(server.Url("kiln:" + password) + "argv.git#main");
  ASSERT_TRUE(ref.ok());
  GitOptions options;
  options.secrets = {{"GIT_AUTH_TOKEN", token}};
  auto r = git_->Resolve(*ref, options);
  Status s = git_->Checkout(*ref, a, {.keep_git_dir = true, .branch = "main"}, options,
                            tmp_.path() / "out");
  ::setenv("PATH", saved.c_str(), 1);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(s.ok()) << s.ToString();

  std::string argv = ReadAll(log);
  EXPECT_NE(argv.find("ls-remote"), std::string::npos) << argv;
  EXPECT_NE(argv.find("fetch"), std::string::npos) << argv;
  EXPECT_EQ(argv.find(password), std::string::npos) << argv;
  EXPECT_EQ(argv.find(token), std::string::npos) << argv;
  EXPECT_EQ(argv.find("Authorization"), std::string::npos) << argv;
}

TEST_F(GitSourceTest, TokenAndHeaderSecretsPerHost) {
  const std::string token = "tok-3f9a1c7e5b";
  fs::path work = tmp_.path() / "work";
  fs::path served = tmp_.path() / "served";
  std::string a = MakeRepo(work, {{"t.txt", "t\n"}});
  Publish(work, served, "tok.git");
  GitHttpServer server(served, tmp_.path(), "smart", "x-access-token:" + token);
  auto ref = ParseGitRef(server.Url() + "tok.git#main");
  ASSERT_TRUE(ref.ok());

  GitOptions per_host;
  per_host.secrets = {{"GIT_AUTH_TOKEN.127.0.0.1", token}, {"GIT_AUTH_TOKEN", "not-this-one"}};
  auto r = git_->Resolve(*ref, per_host);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->commit, a);
  Status s = git_->Checkout(*ref, a, {}, per_host, tmp_.path() / "out");
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadAll(tmp_.path() / "out/t.txt"), "t\n");

  // GIT_AUTH_HEADER is the whole Authorization value.
  GitOptions header;
  header.secrets = {{"GIT_AUTH_HEADER", "Basic " + util::Base64Encode("x-access-token:" + token)}};
  auto h = git_->Resolve(*ref, header);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->commit, a);

  GitOptions wrong;
  wrong.secrets = {{"GIT_AUTH_TOKEN", "wrong-" + token}};
  auto w = git_->Resolve(*ref, wrong);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kUnauthorized);
  EXPECT_EQ(w.status().ToString().find(token), std::string::npos) << w.status().ToString();
}

}  // namespace
}  // namespace kiln::source
