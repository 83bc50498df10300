// Git sources (`ADD <git url>`, remote and named build contexts): parses git
// references as BuildKit understands them, resolves a ref to the commit that
// pins it (spec K6: annotated tags peeled to their commit), fetches that
// commit shallowly into a per-remote cache and checks it out into a
// directory or a snapshot. Everything runs the `git` program, as BuildKit
// does, so the user's own git configuration (ssh agent, credential helpers,
// insteadOf rules) applies.
//
// State, under the root given to Open():
//   ROOT/git/<hex sha256 of the redacted remote>/   a bare cache repository;
//       every commit fetched is kept alive by refs/kiln/<commit>
//   ROOT/git/<hex>.lock    flock()ed while a process fetches into or reads
//                          from that cache, so concurrent builds serialize
//   ROOT/git/tmp/          checkouts being made (removed when done)
// A snapshot made by CheckoutSnapshot() carries the labels kiln.git.commit
// (the commit) and kiln.git.checkout (a digest of remote, commit, subdir and
// keep-git-dir), by which a later checkout of the same thing reuses it.
//
// Secrets (K8): credentials from the URL's user-info and from build secrets
// reach git only through GIT_CONFIG_* environment variables (an
// `http.<remote>.extraHeader`), never on its command line; git runs with
// GIT_TERMINAL_PROMPT=0, stdin on /dev/null and in a new session (no
// controlling terminal, so neither git nor ssh can prompt). git's stderr is
// redacted before it appears in a Status. No credential appears in a
// message, a return value, the cache's configuration or a kept `.git`.
//
// Thread-safety: a GitSource may be used from several threads and several
// processes at once; one cache repository is used by one at a time.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "snapshot/snapshotter.h"
#include "util/cancel.h"
#include "util/network.h"
#include "util/status.h"

namespace kiln::source {

// Snapshot labels of a git checkout (see above).
inline constexpr std::string_view kLabelGitCommit = "kiln.git.commit";
inline constexpr std::string_view kLabelGitCheckout = "kiln.git.checkout";

enum class GitTransport {
  kGit,    // git://host[:port]/path
  kHttps,  // https://host/path (also `github.com/...` without a scheme)
  kHttp,   // http://host/path (smart, or dumb when the server is static)
  kSsh,    // ssh://[user@]host[:port]/path
  kScp,    // user@host:path (ssh)
};

// A parsed git reference: REMOTE[#REF[:SUBDIR]].
struct GitRef {
  GitTransport transport = GitTransport::kHttps;
  // What git fetches from. Never holds a password or an http(s) user: those
  // are split off into `username`/`password`. ssh and scp-like remotes keep
  // their user, which is part of the address.
  std::string remote;
  std::string host;    // without user or port: the key of per-host secrets
  std::string ref;     // branch, tag, commit (full or abbreviated); "" = remote's HEAD
  std::string subdir;  // cleaned, relative ("a/b"); "" = the whole tree
  // http(s) user-info, percent-decoded. Secret: never print these.
  std::string username;
  std::string password;
  bool has_userinfo = false;
  bool has_password = false;

  // The remote for messages and records (K8): user-info as "xxxxx" /
  // "xxxxx:xxxxx", a scp-like or ssh user other than `git` as "xxxxx".
  std::string RedactedRemote() const;
  // RedactedRemote() + ("#" + ref) + (":" + subdir), each part when set.
  std::string Redacted() const;
};

struct GitParseOptions {
  // The caller already knows this is a git repository (an `ADD` of a git
  // URL, the `git.fullurl` of a source op): http(s) URLs need not end in
  // ".git", and a bare `host/path` is read as https://host/path.
  bool assume_git = false;
};

// Parses a git URL with an optional "#ref[:subdir]" fragment. Forms:
// git://, http://, https://, ssh:// URLs, scp-like `user@host:path` (user
// of [A-Za-z0-9_-]), and `github.com/...` (https). Without assume_git an
// http(s) URL must end in ".git" (before the fragment) and other bare host
// paths are not git, as in BuildKit. Errors: kInvalidArgument with one line
// naming the redacted text (empty, unknown scheme, no host or no path,
// non-numeric port, credentials where the transport cannot use them, a ref
// git would read as an option or that is no valid ref name, a subdir that
// leaves the repository).
Result<GitRef> ParseGitRef(std::string_view url, const GitParseOptions& options = {});

// BuildKit's test for "this build context / ADD source is git" (R26):
// starts with git://, ssh://, github.com/ or is scp-like, or is an http(s)
// URL whose path ends in ".git". Says nothing about validity.
bool LooksLikeGitUrl(std::string_view text);

struct GitOptions {
  // The build's secrets by id (`--secret id=...`). For a remote on HOST the
  // first present of GIT_AUTH_HEADER.HOST, GIT_AUTH_HEADER (sent as the
  // whole Authorization header value), GIT_AUTH_TOKEN.HOST, GIT_AUTH_TOKEN
  // (sent as basic auth "x-access-token:TOKEN") is used for http(s) remotes;
  // credentials in the URL come before either.
  std::map<std::string, std::string> secrets;
  // On cancellation git's whole process group is killed and reaped; the
  // call returns kCancelled within about a second.
  util::Canceller* cancel = nullptr;
};

struct GitResolved {
  std::string commit;    // 40 hex: the pin (K6)
  std::string ref_name;  // "refs/heads/main", "refs/tags/v1.0", "HEAD"; "" for a commit id
  bool is_branch = false;
};

struct GitCheckoutOptions {
  bool keep_git_dir = false;  // keep `.git`: HEAD at the commit, origin = RedactedRemote()
  // The branch to create and check out when keep_git_dir and the ref was a
  // branch ("main"); else HEAD is detached.
  std::string branch;
};

// Counters for tests and --debug=stats. Each is the number of times since
// Open() that this GitSource did that.
struct GitStats {
  int ls_remotes = 0;        // `git ls-remote` runs (Resolve without a full commit id)
  int fetches = 0;           // fetches from the remote (shallow or full)
  int full_fetches = 0;      // of those, full fetches (server refused fetch by commit)
  int fetches_skipped = 0;   // Fetch() found the commit in the cache
  int checkouts = 0;         // checkouts made
  int checkouts_reused = 0;  // CheckoutSnapshot() found a snapshot of the same checkout
};

class GitSource {
 public:
  // `root`: the state root (ROOT); caches go to ROOT/git. `snapshots` may be
  // null when only Checkout() into a directory is used.
  // `network`: ls-remote runs under its overall deadline, fetches under its
  // stall window (git is killed when it prints nothing, progress included,
  // for that long); either is kIOError naming the remote.
  static Result<std::shared_ptr<GitSource>> Open(const std::filesystem::path& root,
                                                 std::shared_ptr<snapshot::Snapshotter> snapshots,
                                                 const util::NetworkOptions& network = {});
  ~GitSource();

  // The commit `ref.ref` names on the remote, by one `git ls-remote`
  // (none for a full 40-hex commit id, which is accepted as is). A branch
  // wins over a tag of the same name; an annotated tag is peeled to its
  // commit; "" means the remote's HEAD; an abbreviated commit id (4 to 39
  // hex) is resolved when the remote advertises a unique ref tip starting
  // with it. Errors, one line naming ref.RedactedRemote(): kNotFound for an
  // unknown ref or an abbreviated id that matches no advertised tip (use the
  // full id), kIOError when the remote cannot be reached, kUnauthorized when
  // it refuses the credentials, kNotFound when it has no such repository.
  Result<GitResolved> Resolve(const GitRef& ref, const GitOptions& options);

  // Makes sure the cache repository of ref's remote has `commit` (40 hex):
  // nothing when it has it already, else a shallow fetch of that commit and,
  // when the server does not allow fetching by commit (or is dumb http), a
  // full fetch. Returns whether anything was fetched. kNotFound when the
  // remote does not have the commit.
  Result<bool> Fetch(const GitRef& ref, const std::string& commit, const GitOptions& options);

  // Fetch() then writes the files of `commit` (only `ref.subdir` when set)
  // into `dest_dir`, which must not exist or be empty; submodules are
  // initialized and updated recursively; `.git` (and submodules' `.git`
  // files) only with keep_git_dir. kNotFound when the subdir is not a
  // directory of that commit.
  Status Checkout(const GitRef& ref, const std::string& commit, const GitCheckoutOptions& checkout,
                  const GitOptions& options, const std::filesystem::path& dest_dir);

  // The same into a new committed snapshot (parent ""), labelled as the
  // header says; an existing snapshot of the same checkout is returned
  // without fetching. Returns the snapshot id.
  Result<std::string> CheckoutSnapshot(const GitRef& ref, const std::string& commit,
                                       const GitCheckoutOptions& checkout,
                                       const GitOptions& options);

  // ROOT/git/<hex>: the cache repository of a remote.
  std::filesystem::path CacheDir(const GitRef& ref) const;

  GitStats stats() const;

  struct Impl;

 private:
  explicit GitSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::source
