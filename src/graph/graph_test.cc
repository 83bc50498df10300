#include "graph/graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "util/json.h"

namespace kiln::graph {
namespace {

image::Platform Plat(std::string os, std::string arch, std::string variant = "") {
  image::Platform p;
  p.os = std::move(os);
  p.architecture = std::move(arch);
  p.variant = std::move(variant);
  return p;
}

Constraints Named(std::string name) {
  Constraints c;
  c.description[std::string(kDescriptionName)] = std::move(name);
  return c;
}

Output Alpine() {
  return Source(SourceOp{"docker-image://docker.io/library/alpine:3.15", {}}, Constraints{});
}

ExecMount RootMount(int input) {
  ExecMount m;
  m.input = input;
  m.dest = "/";
  m.output = 0;
  return m;
}

// An exec of `args` over `base` with the root mount as output 0.
Output Exec(Output base, std::vector<std::string> args, Constraints c = {}) {
  ExecOp op;
  op.args = std::move(args);
  op.mounts.push_back(RootMount(0));
  return Output{MakeVertex(std::move(op), {std::move(base)}, std::move(c)), 0};
}

Output Mkdir(Output base, std::string path) {
  FileMkdir mkdir;
  mkdir.path = std::move(path);
  FileOp op;
  op.base_input = 0;
  op.actions.push_back(mkdir);
  return Output{MakeVertex(std::move(op), {std::move(base)}, {}), 0};
}

// A fixed small graph for linux/arm64 (written "linux/arm64/v8", which
// normalizes to "linux/arm64"): alpine, RUN apk add, COPY from a local
// context (which has no platform).
Output SmallGraph() {
  auto on_arm64 = [](std::string name) {
    Constraints c = Named(std::move(name));
    c.platform = Plat("linux", "arm64", "v8");
    return c;
  };
  Output alpine = Source(SourceOp{"docker-image://docker.io/library/alpine:3.15", {}},
                         on_arm64("[internal] load metadata for alpine:3.15"));
  Output run =
      Exec(alpine, {"/bin/sh", "-c", "apk add git"}, on_arm64("[stage-0 1/2] RUN apk add git"));
  Output context =
      Source(SourceOp{"local://context", {{"local.includepattern", "app"}}}, Named("load context"));
  FileCopy copy;
  copy.source_input = 1;
  copy.src = "/app";
  copy.dest = "/srv/app";
  copy.owner = Owner{"1000", ""};
  FileOp file;
  file.base_input = 0;
  file.actions.push_back(copy);
  return Output{MakeVertex(file, {run, context}, on_arm64("[stage-0 2/2] COPY app /srv/app")), 0};
}

// ---- Digest -------------------------------------------------------------------

// Golden values: these pin the canonical encoding (v1). If this test fails,
// the encoding changed, which silently invalidates every cache key users
// have. Change the encoding only on purpose, bump "v", and update
// docs/graph.md together with these values.
TEST(GraphDigest, GoldenEncodingAndDigest) {
  Output alpine = Alpine();
  EXPECT_EQ(CanonicalEncoding(*alpine.vertex),
            R"({"inputs":[],"op":{"attrs":{},"identifier":"docker-image://docker.io/library/)"
            R"(alpine:3.15","kind":"source"},"platform":null,"v":1})");
  EXPECT_EQ(alpine.vertex->digest.str(),
            "sha256:c52f2f11291bb37f469a88de592c5abf96ad2df07863bd0b812a2b43a61f670b");

  Constraints arm64;
  arm64.platform = Plat("linux", "arm64", "v8");
  EXPECT_EQ(CanonicalEncoding(*Source(SourceOp{"local://context", {{"a", "<&>"}}}, arm64).vertex),
            R"({"inputs":[],"op":{"attrs":{"a":"\u003c\u0026\u003e"},"identifier":"local://)"
            R"(context","kind":"source"},"platform":{"architecture":"arm64","os":"linux",)"
            R"("os.features":[],"os.version":"","variant":""},"v":1})");

  Output root = SmallGraph();
  EXPECT_EQ(root.vertex->digest.str(),
            "sha256:ce261a854bd460d1d4d8db9b073ab6835f39d3e13ee9e805133b12e563609ecf");
}

TEST(GraphDigest, DigestIsSha256OfCanonicalEncoding) {
  Output root = SmallGraph();
  EXPECT_EQ(root.vertex->digest, util::Sha256Of(CanonicalEncoding(*root.vertex)));
}

// A base vertex for each op kind with every field set away from its default,
// and a list of mutations, each changing one field.
struct Mutation {
  std::string name;
  std::function<void(Op&)> apply;
};

ExecOp BaseExec() {
  ExecOp op;
  op.args = {"/bin/sh", "-c", "make"};
  op.env = {"PATH=/usr/bin", "A=1"};
  op.cwd = "/src";
  op.user = "app";
  op.hostname = "box";
  op.network = NetworkMode::kSandbox;
  op.security = SecurityMode::kSandbox;
  op.mounts.push_back(RootMount(0));
  ExecMount m;
  m.input = 1;
  m.dest = "/cache";
  m.selector = "sub";
  m.output = -1;
  m.readonly = false;
  m.type = MountType::kCache;
  m.cache_id = "go-build";
  m.sharing = CacheSharing::kShared;
  m.tmpfs_size = 1024;
  m.secret_id = "token";
  m.uid = 1;
  m.gid = 2;
  m.mode = 0400;
  m.optional = false;
  op.mounts.push_back(m);
  return op;
}

FileOp BaseFile() {
  FileCopy copy;
  copy.source_input = 1;
  copy.src = "/a";
  copy.dest = "/b";
  copy.owner = Owner{"1000", "1000"};
  copy.mode = 0755;
  FileMkdir mkdir;
  mkdir.path = "/d";
  mkdir.owner = Owner{"app", ""};
  FileMkfile mkfile;
  mkfile.path = "/f";
  mkfile.data = "hello\n";
  FileRm rm;
  rm.path = "/r";
  FileOp op;
  op.base_input = 0;
  op.actions = {copy, mkdir, mkfile, rm};
  return op;
}

std::function<void(Op&)> OnExec(std::function<void(ExecOp&)> f) {
  return [f](Op& op) { f(std::get<ExecOp>(op)); };
}
std::function<void(Op&)> OnMount(std::function<void(ExecMount&)> f) {
  return [f](Op& op) { f(std::get<ExecOp>(op).mounts[1]); };
}
template <typename A>
std::function<void(Op&)> OnAction(size_t i, std::function<void(A&)> f) {
  return [f, i](Op& op) { f(std::get<A>(std::get<FileOp>(op).actions[i])); };
}

void ExpectEveryMutationChangesDigest(const Op& base, const std::vector<Output>& inputs,
                                      const std::vector<Mutation>& mutations) {
  Digest base_digest = MakeVertex(base, inputs, {})->digest;
  std::set<Digest> seen = {base_digest};
  for (const Mutation& m : mutations) {
    Op op = base;
    m.apply(op);
    Digest d = MakeVertex(op, inputs, {})->digest;
    EXPECT_NE(d, base_digest) << m.name << " did not change the digest";
    EXPECT_TRUE(seen.insert(d).second) << m.name << " collides with another mutation";
  }
}

TEST(GraphDigest, EverySourceFieldChangesDigest) {
  SourceOp base{"git://host/repo.git#main", {{"git.keepgitdir", "true"}}};
  std::vector<Mutation> mutations = {
      {"identifier", [](Op& op) { std::get<SourceOp>(op).identifier = "git://host/repo.git#v1"; }},
      {"attr value", [](Op& op) { std::get<SourceOp>(op).attrs["git.keepgitdir"] = "false"; }},
      {"attr added", [](Op& op) { std::get<SourceOp>(op).attrs["http.filename"] = "x"; }},
      {"attr removed", [](Op& op) { std::get<SourceOp>(op).attrs.clear(); }},
  };
  ExpectEveryMutationChangesDigest(base, {}, mutations);
}

TEST(GraphDigest, EveryExecFieldChangesDigest) {
  std::vector<Output> inputs = {Alpine(), Mkdir(Alpine(), "/cache")};
  std::vector<Mutation> mutations = {
      {"args", OnExec([](ExecOp& e) { e.args[2] = "make install"; })},
      {"args split", OnExec([](ExecOp& e) {
         e.args = {"/bin/sh -c", "make"};
       })},
      {"env", OnExec([](ExecOp& e) { e.env[1] = "A=2"; })},
      {"env order", OnExec([](ExecOp& e) { std::swap(e.env[0], e.env[1]); })},
      {"cwd", OnExec([](ExecOp& e) { e.cwd = "/"; })},
      {"user", OnExec([](ExecOp& e) { e.user = ""; })},
      {"hostname", OnExec([](ExecOp& e) { e.hostname = "other"; })},
      {"network host", OnExec([](ExecOp& e) { e.network = NetworkMode::kHost; })},
      {"network none", OnExec([](ExecOp& e) { e.network = NetworkMode::kNone; })},
      {"security", OnExec([](ExecOp& e) { e.security = SecurityMode::kInsecure; })},
      {"mount removed", OnExec([](ExecOp& e) { e.mounts.pop_back(); })},
      {"root mount input", OnExec([](ExecOp& e) { e.mounts[0].input = -1; })},
      {"root mount selector", OnExec([](ExecOp& e) { e.mounts[0].selector = "sub"; })},
      {"mount input", OnMount([](ExecMount& m) { m.input = 0; })},
      {"mount input none", OnMount([](ExecMount& m) { m.input = -1; })},
      {"mount dest", OnMount([](ExecMount& m) { m.dest = "/cache2"; })},
      {"mount selector", OnMount([](ExecMount& m) { m.selector = ""; })},
      {"mount output", OnMount([](ExecMount& m) { m.output = 1; })},
      {"mount readonly", OnMount([](ExecMount& m) { m.readonly = true; })},
      {"mount type bind", OnMount([](ExecMount& m) { m.type = MountType::kBind; })},
      {"mount type tmpfs", OnMount([](ExecMount& m) { m.type = MountType::kTmpfs; })},
      {"mount type secret", OnMount([](ExecMount& m) { m.type = MountType::kSecret; })},
      {"mount type ssh", OnMount([](ExecMount& m) { m.type = MountType::kSsh; })},
      {"mount cache_id", OnMount([](ExecMount& m) { m.cache_id = "npm"; })},
      {"mount sharing private", OnMount([](ExecMount& m) { m.sharing = CacheSharing::kPrivate; })},
      {"mount sharing locked", OnMount([](ExecMount& m) { m.sharing = CacheSharing::kLocked; })},
      {"mount tmpfs_size", OnMount([](ExecMount& m) { m.tmpfs_size = 2048; })},
      {"mount secret_id", OnMount([](ExecMount& m) { m.secret_id = "other"; })},
      {"mount uid", OnMount([](ExecMount& m) { m.uid = 5; })},
      {"mount gid", OnMount([](ExecMount& m) { m.gid = 5; })},
      {"mount mode", OnMount([](ExecMount& m) { m.mode = 0440; })},
      {"mount optional", OnMount([](ExecMount& m) { m.optional = true; })},
  };
  ExpectEveryMutationChangesDigest(BaseExec(), inputs, mutations);
}

TEST(GraphDigest, EveryFileFieldChangesDigest) {
  std::vector<Output> inputs = {Alpine(), Mkdir(Alpine(), "/x")};
  std::vector<Mutation> mutations = {
      {"base_input", [](Op& op) { std::get<FileOp>(op).base_input = -1; }},
      {"action order",
       [](Op& op) {
         auto& a = std::get<FileOp>(op).actions;
         std::swap(a[1], a[2]);
       }},
      {"action removed", [](Op& op) { std::get<FileOp>(op).actions.pop_back(); }},
      {"copy source_input", OnAction<FileCopy>(0, [](FileCopy& c) { c.source_input = 0; })},
      {"copy src", OnAction<FileCopy>(0, [](FileCopy& c) { c.src = "/a2"; })},
      {"copy dest", OnAction<FileCopy>(0, [](FileCopy& c) { c.dest = "/b2"; })},
      {"copy owner none", OnAction<FileCopy>(0, [](FileCopy& c) { c.owner.reset(); })},
      {"copy owner user", OnAction<FileCopy>(0, [](FileCopy& c) { c.owner->user = "0"; })},
      {"copy owner group", OnAction<FileCopy>(0, [](FileCopy& c) { c.owner->group = "0"; })},
      {"copy owner empty", OnAction<FileCopy>(0, [](FileCopy& c) { c.owner = Owner{}; })},
      {"copy mode", OnAction<FileCopy>(0, [](FileCopy& c) { c.mode = 0644; })},
      {"copy mode none", OnAction<FileCopy>(0, [](FileCopy& c) { c.mode.reset(); })},
      {"copy follow_symlinks",
       OnAction<FileCopy>(0, [](FileCopy& c) { c.follow_symlinks = false; })},
      {"copy dir_copy_contents",
       OnAction<FileCopy>(0, [](FileCopy& c) { c.dir_copy_contents = false; })},
      {"copy attempt_unpack", OnAction<FileCopy>(0, [](FileCopy& c) { c.attempt_unpack = true; })},
      {"copy create_dest_path",
       OnAction<FileCopy>(0, [](FileCopy& c) { c.create_dest_path = false; })},
      {"copy allow_wildcard", OnAction<FileCopy>(0, [](FileCopy& c) { c.allow_wildcard = false; })},
      {"copy allow_empty_wildcard",
       OnAction<FileCopy>(0, [](FileCopy& c) { c.allow_empty_wildcard = true; })},
      {"mkdir path", OnAction<FileMkdir>(1, [](FileMkdir& d) { d.path = "/d2"; })},
      {"mkdir mode", OnAction<FileMkdir>(1, [](FileMkdir& d) { d.mode = 0700; })},
      {"mkdir make_parents", OnAction<FileMkdir>(1, [](FileMkdir& d) { d.make_parents = false; })},
      {"mkdir owner", OnAction<FileMkdir>(1, [](FileMkdir& d) { d.owner.reset(); })},
      {"mkdir owner group", OnAction<FileMkdir>(1, [](FileMkdir& d) { d.owner->group = "app"; })},
      {"mkfile path", OnAction<FileMkfile>(2, [](FileMkfile& f) { f.path = "/f2"; })},
      {"mkfile mode", OnAction<FileMkfile>(2, [](FileMkfile& f) { f.mode = 0600; })},
      {"mkfile data", OnAction<FileMkfile>(2, [](FileMkfile& f) { f.data = "hello"; })},
      {"mkfile owner", OnAction<FileMkfile>(2,
                                            [](FileMkfile& f) {
                                              f.owner = Owner{"1", "1"};
                                            })},
      {"rm path", OnAction<FileRm>(3, [](FileRm& r) { r.path = "/r2"; })},
      {"rm allow_not_found", OnAction<FileRm>(3, [](FileRm& r) { r.allow_not_found = false; })},
      {"rm allow_wildcard", OnAction<FileRm>(3, [](FileRm& r) { r.allow_wildcard = false; })},
  };
  ExpectEveryMutationChangesDigest(BaseFile(), inputs, mutations);
}

TEST(GraphDigest, OpKindChangesDigest) {
  // The same inputs under different ops never share a digest.
  Output a = Alpine();
  FileOp empty_file;
  empty_file.base_input = 0;
  Digest merge = MakeVertex(MergeOp{}, {a}, {})->digest;
  Digest file = MakeVertex(empty_file, {a}, {})->digest;
  EXPECT_NE(merge, file);
}

// Regression: the Go writer turns each invalid UTF-8 byte into U+FFFD, so
// without the {"base64":...} form these two files would share a digest.
TEST(GraphDigest, InvalidUtf8BytesStayDistinct) {
  auto mkfile = [](std::string data) {
    FileMkfile f;
    f.path = "/bin.dat";
    f.data = std::move(data);
    FileOp op;
    op.actions.push_back(f);
    return MakeVertex(op, {}, {});
  };
  VertexPtr ff = mkfile("\xff");
  VertexPtr fe = mkfile("\xfe");
  VertexPtr replacement = mkfile("\xef\xbf\xbd");  // U+FFFD itself
  EXPECT_NE(ff->digest, fe->digest);
  EXPECT_NE(ff->digest, replacement->digest);
  EXPECT_NE(CanonicalEncoding(*ff).find(R"("data":{"base64":"/w=="})"), std::string::npos);
}

TEST(GraphDigest, DescriptionAndIgnoreCacheAreNotInDigest) {
  SourceOp op{"https://example.com/tool.tgz", {{"http.checksum", "sha256:00"}}};
  Constraints plain;
  Constraints described = Named("[stage-0 1/3] ADD tool.tgz /");
  described.description["other"] = "x";
  Constraints ignore;
  ignore.ignore_cache = true;
  Digest d = MakeVertex(op, {}, plain)->digest;
  EXPECT_EQ(MakeVertex(op, {}, described)->digest, d);
  EXPECT_EQ(MakeVertex(op, {}, ignore)->digest, d);
}

TEST(GraphDigest, PlatformIsNormalized) {
  auto digest = [](std::optional<image::Platform> p) {
    Constraints c;
    c.platform = std::move(p);
    return MakeVertex(SourceOp{"docker-image://docker.io/library/alpine:3.15", {}}, {}, c)->digest;
  };
  Digest arm64 = digest(Plat("linux", "arm64"));
  EXPECT_EQ(digest(Plat("linux", "arm64", "v8")), arm64);
  EXPECT_EQ(digest(Plat("linux", "aarch64")), arm64);
  EXPECT_EQ(digest(Plat("Linux", "ARM64", "8")), arm64);
  EXPECT_EQ(digest(Plat("linux", "arm")), digest(Plat("linux", "arm", "v7")));
  EXPECT_EQ(digest(Plat("linux", "x86_64")), digest(Plat("linux", "amd64")));

  std::set<Digest> distinct = {arm64, digest(std::nullopt), digest(Plat("linux", "amd64")),
                               digest(Plat("linux", "arm", "v6")),
                               digest(Plat("windows", "arm64"))};
  image::Platform with_version = Plat("linux", "arm64");
  with_version.os_version = "10.0.17763";
  distinct.insert(digest(with_version));
  image::Platform with_features = Plat("linux", "arm64");
  with_features.os_features = {"sse4"};
  distinct.insert(digest(with_features));
  EXPECT_EQ(distinct.size(), 7u);
}

TEST(GraphDigest, InputsAndTheirOrderMatter) {
  Output a = Alpine();
  Output b = Mkdir(a, "/b");
  Digest ab = MakeVertex(MergeOp{}, {a, b}, {})->digest;
  Digest ba = MakeVertex(MergeOp{}, {b, a}, {})->digest;
  Digest a_scratch = MakeVertex(MergeOp{}, {a, Output{}}, {})->digest;
  EXPECT_NE(ab, ba);
  EXPECT_NE(ab, a_scratch);
  EXPECT_NE(a_scratch, MakeVertex(MergeOp{}, {a}, {})->digest);

  // The output index of an input is part of the digest.
  ExecOp two;
  two.args = {"true"};
  two.mounts.push_back(RootMount(0));
  ExecMount out;
  out.input = -1;
  out.dest = "/out";
  out.output = 1;
  two.mounts.push_back(out);
  VertexPtr exec = MakeVertex(two, {a}, {});
  EXPECT_EQ(exec->num_outputs, 2);
  EXPECT_NE(MakeVertex(MergeOp{}, {Output{exec, 0}}, {})->digest,
            MakeVertex(MergeOp{}, {Output{exec, 1}}, {})->digest);
}

TEST(GraphDigest, EqualDefinitionsHaveEqualDigests) {
  EXPECT_EQ(SmallGraph().vertex->digest, SmallGraph().vertex->digest);
  EXPECT_NE(SmallGraph().vertex.get(), SmallGraph().vertex.get());
}

// The encoding promises sorted keys and compact form: re-marshalling it with
// Go's generic-map rules must give the same bytes.
TEST(GraphDigest, EncodingIsCompactWithSortedKeys) {
  std::vector<Output> inputs = {Alpine(), Mkdir(Alpine(), "/x")};
  Constraints platform;
  platform.platform = Plat("linux", "arm", "v7");
  platform.platform->os_features = {"a"};
  std::vector<VertexPtr> vertices = {
      MakeVertex(SourceOp{"local://context", {{"b", "2"}, {"a", "1"}}}, {}, platform),
      MakeVertex(BaseExec(), inputs, platform),
      MakeVertex(BaseFile(), inputs, {}),
      MakeVertex(MergeOp{}, {inputs[0], Output{}}, {}),
  };
  for (const VertexPtr& v : vertices) {
    std::string enc = CanonicalEncoding(*v);
    Result<nlohmann::json> parsed = util::ParseJson(enc, "encoding");
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    EXPECT_EQ(util::GoMarshal(*parsed), enc);
    EXPECT_EQ((*parsed)["v"], 1);
    EXPECT_EQ((*parsed)["op"]["kind"], OpKindName(v->op));
  }
}

// ---- MakeVertex ---------------------------------------------------------------

TEST(MakeVertex, NumOutputs) {
  Output a = Alpine();
  EXPECT_EQ(a.vertex->num_outputs, 1);
  ExecOp op = BaseExec();
  EXPECT_EQ(MakeVertex(op, {a, a}, {})->num_outputs, 1);
  op.mounts[0].output = -1;
  EXPECT_EQ(MakeVertex(op, {a, a}, {})->num_outputs, 0);
  op.mounts[0].output = 1;
  op.mounts[1].output = 0;
  EXPECT_EQ(MakeVertex(op, {a, a}, {})->num_outputs, 2);
  EXPECT_EQ(MakeVertex(MergeOp{}, {a, a}, {})->num_outputs, 1);
}

TEST(MakeVertex, MergeOfScratchIsAllowed) {
  VertexPtr v = MakeVertex(MergeOp{}, {Output{}, Output{}}, {});
  EXPECT_EQ(CanonicalEncoding(*v), R"({"inputs":[null,null],"op":{"kind":"merge"},)"
                                   R"("platform":null,"v":1})");
}

TEST(MakeVertex, KeepsConstraints) {
  Constraints c = Named("x");
  c.platform = Plat("linux", "arm64", "v8");
  c.ignore_cache = true;
  VertexPtr v = MakeVertex(SourceOp{"local://context", {}}, {}, c);
  EXPECT_EQ(v->constraints.description.at(std::string(kDescriptionName)), "x");
  EXPECT_TRUE(v->constraints.ignore_cache);
  EXPECT_EQ(v->constraints.platform->variant, "v8");  // stored as given
}

using MakeVertexDeathTest = ::testing::Test;

TEST(MakeVertexDeathTest, BrokenInvariantsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Output a = Alpine();
  EXPECT_DEATH(MakeVertex(SourceOp{"local://x", {}}, {a}, {}), "a source has none");
  EXPECT_DEATH(MakeVertex(SourceOp{"", {}}, {}, {}), "without an identifier");
  EXPECT_DEATH(MakeVertex(SourceOp{"local://x", {{"\xff", "v"}}}, {}, {}), "not valid UTF-8");
  EXPECT_DEATH(MakeVertex(MergeOp{}, {}, {}), "at least one input");

  ExecOp exec = BaseExec();
  EXPECT_DEATH(MakeVertex(exec, {a}, {}), "ExecMount.input 1 is not an input index");
  exec.mounts[1].output = 2;
  EXPECT_DEATH(MakeVertex(exec, {a, a}, {}), "numbered 0..1");
  exec.mounts[1].output = 0;
  EXPECT_DEATH(MakeVertex(exec, {a, a}, {}), "each once");
  exec = BaseExec();
  exec.mounts[0].dest = "/root";
  EXPECT_DEATH(MakeVertex(exec, {a, a}, {}), "mount 0 must be the root");
  exec = BaseExec();
  exec.args.clear();
  EXPECT_DEATH(MakeVertex(exec, {a, a}, {}), "without args");

  FileOp file = BaseFile();
  EXPECT_DEATH(MakeVertex(file, {a}, {}), "FileCopy.source_input 1");
  std::get<FileCopy>(file.actions[0]).source_input = -1;
  EXPECT_DEATH(MakeVertex(file, {a, a}, {}), "FileCopy.source_input -1");
  file = BaseFile();
  file.base_input = 2;
  EXPECT_DEATH(MakeVertex(file, {a, a}, {}), "FileOp.base_input 2");

  EXPECT_DEATH(MakeVertex(MergeOp{}, {Output{a.vertex, 1}}, {}), "names output 1");
  EXPECT_DEATH(MakeVertex(MergeOp{}, {Output{nullptr, 1}}, {}), "scratch has index 0");
}

// ---- Marshal ------------------------------------------------------------------

std::vector<std::string> Kinds(const Definition& def) {
  std::vector<std::string> out;
  for (const VertexPtr& v : def.vertices) {
    out.push_back(std::string(OpKindName(v->op)));
    if (auto* s = std::get_if<SourceOp>(&v->op)) out.back() += " " + s->identifier;
    if (auto* e = std::get_if<ExecOp>(&v->op)) out.back() += " " + e->args[0];
  }
  return out;
}

TEST(Marshal, ScratchRootIsEmpty) {
  Definition def = Marshal(Output{});
  EXPECT_TRUE(def.vertices.empty());
  EXPECT_TRUE(def.root.scratch());
}

TEST(Marshal, InputsBeforeUsersInInputOrder) {
  Output a = Source(SourceOp{"local://a", {}}, {});
  Output b = Source(SourceOp{"local://b", {}}, {});
  Output ra = Exec(a, {"ra"});
  Output rb = Exec(b, {"rb"});
  Output merged{MakeVertex(MergeOp{}, {rb, ra, b}, {}), 0};
  Definition def = Marshal(merged);
  EXPECT_EQ(Kinds(def), (std::vector<std::string>{"source local://b", "exec rb", "source local://a",
                                                  "exec ra", "merge"}));
  EXPECT_EQ(def.root.vertex, merged.vertex);
  EXPECT_EQ(FindVertex(def, ra.vertex->digest), ra.vertex);
  EXPECT_EQ(FindVertex(def, Digest()), nullptr);
}

TEST(Marshal, EqualDigestsCollapseToTheFirstSeen) {
  // Two separately made, equal sources: one entry, the first one visited.
  Output first = Source(SourceOp{"local://ctx", {}}, Named("first"));
  Output second = Source(SourceOp{"local://ctx", {}}, Named("second"));
  ASSERT_NE(first.vertex, second.vertex);
  ASSERT_EQ(first.vertex->digest, second.vertex->digest);
  Output merged{MakeVertex(MergeOp{}, {first, Mkdir(second, "/x"), second}, {}), 0};
  Definition def = Marshal(merged);
  ASSERT_EQ(def.vertices.size(), 3u);
  EXPECT_EQ(def.vertices[0], first.vertex);
  EXPECT_EQ(Kinds(def), (std::vector<std::string>{"source local://ctx", "file", "merge"}));
}

// Several roots (one per platform): shared vertices once, each root's graph
// after the roots before it; scratch and repeated roots add nothing.
TEST(Marshal, AllRootsShareVertices) {
  Output ctx = Source(SourceOp{"local://context", {}}, {});
  Output a = Exec(ctx, {"build-a"});
  Output b = Exec(ctx, {"build-b"});
  Definition def = MarshalAll({a, b, Output{}, a});
  EXPECT_EQ(Kinds(def),
            (std::vector<std::string>{"source local://context", "exec build-a", "exec build-b"}));
  ASSERT_EQ(def.roots.size(), 4u);
  EXPECT_EQ(def.root.vertex, a.vertex);
  EXPECT_EQ(def.roots[1].vertex, b.vertex);
  EXPECT_TRUE(def.roots[2].scratch());
  EXPECT_EQ(Marshal(b).roots.size(), 1u);
}

TEST(Marshal, DiamondOnce) {
  Output a = Alpine();
  Output left = Exec(a, {"left"});
  Output right = Exec(a, {"right"});
  Definition def = Marshal(Output{MakeVertex(MergeOp{}, {left, right}, {}), 0});
  EXPECT_EQ(Kinds(def),
            (std::vector<std::string>{"source docker-image://docker.io/library/alpine:3.15",
                                      "exec left", "exec right", "merge"}));
}

constexpr int kDeepChain = 100000;

// Regression: recursion in Marshal, or in shared_ptr releasing a chain link
// by link, overflows the stack at this depth.
TEST(Marshal, DeepChainMarshalsAndIsDestroyedIteratively) {
  Output root = Alpine();
  for (int i = 0; i < kDeepChain; ++i) root = Mkdir(root, "/d" + std::to_string(i));
  std::weak_ptr<const Vertex> source;
  {
    Definition def = Marshal(root);
    ASSERT_EQ(def.vertices.size(), static_cast<size_t>(kDeepChain) + 1);
    source = def.vertices.front();
    EXPECT_TRUE(std::holds_alternative<SourceOp>(def.vertices.front()->op));
    EXPECT_EQ(def.vertices.back(), root.vertex);
    root = Output{};
    // `def` destroys its vertices front to back: every one but the last is
    // still used by the next, so dropping the last releases the whole chain.
  }
  EXPECT_TRUE(source.expired());
}

// ---- ToJson / ToDot -----------------------------------------------------------

// Compares `actual` with testdata/<name>; KILN_UPDATE_GOLDEN=1 rewrites the
// file instead (review the diff before committing it).
void ExpectGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(KILN_GRAPH_TESTDATA) + "/" + name;
  if (const char* update = std::getenv("KILN_UPDATE_GOLDEN");
      update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::stringstream golden;
  golden << in.rdbuf();
  EXPECT_EQ(actual, golden.str()) << "differs from " << path;
}

TEST(Debug, ToJsonGolden) { ExpectGolden("small_graph.json", ToJson(Marshal(SmallGraph()))); }

TEST(Debug, ToJsonOfScratch) {
  EXPECT_EQ(ToJson(Marshal(Output{})), "{\n  \"root\": null,\n  \"vertices\": []\n}\n");
}

TEST(Debug, ToDotGolden) { ExpectGolden("small_graph.dot", ToDot(Marshal(SmallGraph()))); }

TEST(Debug, ToDotEscapesAndLabelsOutputs) {
  ExecOp op;
  op.args = {"/bin/sh", "-c", "echo \"a\\b\"\nls\x1b"};
  op.mounts.push_back(RootMount(0));
  ExecMount out;
  out.input = -1;
  out.dest = "/out";
  out.output = 1;
  op.mounts.push_back(out);
  Constraints platform;
  platform.platform = Plat("linux", "amd64");
  VertexPtr exec = MakeVertex(op, {Output{}}, platform);
  Output merged{
      MakeVertex(MergeOp{}, {Output{exec, 1}, Output{exec, 0}}, Named(std::string(150, 'x'))), 0};
  std::string dot = ToDot(Marshal(merged));
  std::string e = exec->digest.str().substr(0, 19);
  std::string m = merged.vertex->digest.str().substr(0, 19);
  EXPECT_EQ(dot,
            "digraph kiln {\n"
            "  node [shape=box];\n"
            "  \"scratch\" [label=\"scratch\", shape=plaintext];\n"
            "  \"" +
                e +
                "\" [label=\"exec /bin/sh -c echo \\\"a\\\\b\\\"\\nls\\\\x1b\"];\n"
                "  \"" +
                m + "\" [label=\"" + std::string(100, 'x') +
                "...\", peripheries=2];\n"
                "  \"scratch\" -> \"" +
                e +
                "\";\n"
                "  \"" +
                e + "\" -> \"" + m +
                "\" [label=\"1\"];\n"
                "  \"" +
                e + "\" -> \"" + m +
                "\";\n"
                "}\n");
}

TEST(Debug, OpKindName) {
  EXPECT_EQ(OpKindName(SourceOp{}), "source");
  EXPECT_EQ(OpKindName(ExecOp{}), "exec");
  EXPECT_EQ(OpKindName(FileOp{}), "file");
  EXPECT_EQ(OpKindName(MergeOp{}), "merge");
}

}  // namespace
}  // namespace kiln::graph
