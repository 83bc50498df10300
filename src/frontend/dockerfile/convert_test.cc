#include "frontend/dockerfile/convert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace kiln::dockerfile {
namespace {

constexpr char kBusybox[] =
    "sha256:b69959407d21e8a062e0416bf13405bb2b71ed7a84dde4158ebafacfa06f5578";
constexpr char kAlpine[] =
    "sha256:e7d88de73db3d3fd9b2d63aa7f447a10fd0220b7cbf39803c803f2af9ba256b3";

// A registry as a table: normalized ref -> digest and config.
class TableResolver : public ImageResolver {
 public:
  std::map<std::string, ResolvedImage> images;
  std::vector<std::string> asked;

  Result<ResolvedImage> ResolveImage(const std::string& ref,
                                     const image::Platform& platform) override {
    asked.push_back(ref + " " + image::Format(platform));
    auto it = images.find(ref);
    if (it == images.end()) return Status::NotFound(ref + ": not found");
    ResolvedImage r = it->second;
    r.config.architecture = platform.architecture;
    r.config.os = platform.os;
    return r;
  }
};

image::Platform Amd64() { return image::Platform{"linux", "amd64", "", "", {}}; }
image::Platform Arm64() { return image::Platform{"linux", "arm64", "", "", {}}; }

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResolvedImage busybox;
    busybox.digest = kBusybox;
    busybox.config.config.env = {"PATH=/bin:/usr/bin"};
    resolver_.images["docker.io/library/busybox:latest"] = busybox;
    ResolvedImage alpine;
    alpine.digest = kAlpine;
    alpine.config.config.env = {"PATH=/usr/bin", "ALPINE=1"};
    alpine.config.config.working_dir = "/root";
    resolver_.images["docker.io/library/alpine:latest"] = alpine;
    ResolvedImage alpine315;
    alpine315.digest = "sha256:" + std::string(64, '3');
    resolver_.images["docker.io/library/alpine:3.15"] = alpine315;
    options_.resolver = &resolver_;
    options_.target_platform = Amd64();
    options_.build_platform = Amd64();
  }

  ConvertResult Convert(const std::string& dockerfile) {
    Result<ConvertResult> r = ConvertToGraph(dockerfile, options_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return {};
    return std::move(r).value();
  }

  std::string Error(const std::string& dockerfile) {
    Result<ConvertResult> r = ConvertToGraph(dockerfile, options_);
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.status().message();
  }

  // The execs of the graph, in Definition order.
  static std::vector<graph::ExecOp> Execs(const ConvertResult& r) {
    std::vector<graph::ExecOp> out;
    for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
      if (const auto* e = std::get_if<graph::ExecOp>(&v->op)) out.push_back(*e);
    }
    return out;
  }
  static std::vector<std::string> SourceIds(const ConvertResult& r) {
    std::vector<std::string> out;
    for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
      if (const auto* s = std::get_if<graph::SourceOp>(&v->op)) out.push_back(s->identifier);
    }
    return out;
  }
  static std::string Env(const graph::ExecOp& e, const std::string& key) {
    for (const std::string& kv : e.env) {
      if (kv.rfind(key + "=", 0) == 0) return kv.substr(key.size() + 1);
    }
    return "<unset>";
  }

  TableResolver resolver_;
  ConvertOptions options_;
};

TEST_F(ConvertTest, RecordsBaseImagesWithAliasAndPin) {
  ConvertResult r = Convert("FROM busybox\nRUN echo\n");
  ASSERT_EQ(r.sources.sources.size(), 1u);
  const buildinfo::Source& s = r.sources.sources[0];
  EXPECT_EQ(s.type, "docker-image");
  EXPECT_EQ(s.ref, "busybox");
  EXPECT_EQ(s.alias, std::string("docker.io/library/busybox@") + kBusybox);
  EXPECT_EQ(s.pin, kBusybox);
  EXPECT_EQ(SourceIds(r), std::vector<std::string>{"docker-image://" + s.alias});
}

TEST_F(ConvertTest, ArgScopingGlobalStageAndOverride) {
  options_.build_args = {{"B", "from-cli"}};
  ConvertResult r = Convert(
      "ARG A=global\nARG B=default\nARG C\nFROM busybox\nARG A\nARG B\nARG D=$A-d\n"
      "ENV E=$D\nRUN true\n");
  const std::vector<graph::ExecOp> execs = Execs(r);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(Env(execs[0], "A"), "global");    // re-declared without value: global value
  EXPECT_EQ(Env(execs[0], "B"), "from-cli");  // build-arg wins over the default
  EXPECT_EQ(Env(execs[0], "C"), "<unset>");   // global, not re-declared: not in scope
  EXPECT_EQ(Env(execs[0], "D"), "global-d");
  EXPECT_EQ(Env(execs[0], "E"), "global-d");
  // ARGs are not part of the image's Env; ENV is.
  const std::vector<std::string>& env = r.config.config.env;
  EXPECT_EQ(std::count(env.begin(), env.end(), "E=global-d"), 1);
  for (const std::string& e : env) EXPECT_NE(e.rfind("A=", 0), 0u) << e;
  // History shows the build args of RUN the way BuildKit does.
  ASSERT_FALSE(r.config.history.empty());
  EXPECT_EQ(r.config.history.back().created_by,
            "RUN |3 A=global B=from-cli D=global-d /bin/sh -c true # buildkit");
}

TEST_F(ConvertTest, EnvOverridesArgOfTheSameName) {
  ConvertResult r = Convert("FROM busybox\nARG X=arg\nENV X=env\nRUN true\n");
  EXPECT_EQ(Env(Execs(r)[0], "X"), "env");
}

TEST_F(ConvertTest, GlobalArgInFromAndOverride) {
  ConvertResult r = Convert("ARG BASE=alpine:3.15\nFROM ${BASE}\n");
  ASSERT_EQ(r.sources.sources.size(), 1u);
  EXPECT_EQ(r.sources.sources[0].ref, "alpine:3.15");
  options_.build_args = {{"BASE", "busybox"}};
  r = Convert("ARG BASE=alpine:3.15\nFROM ${BASE}\n");
  EXPECT_EQ(r.sources.sources[0].ref, "busybox");
}

TEST_F(ConvertTest, PlatformArgs) {
  options_.target_platform = Arm64();
  ConvertResult r = Convert(
      "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETARCH\nARG BUILDARCH\n"
      "RUN echo $TARGETARCH\n");
  const std::vector<graph::ExecOp> execs = Execs(r);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(Env(execs[0], "TARGETARCH"), "arm64");
  EXPECT_EQ(Env(execs[0], "BUILDARCH"), "amd64");
  // The base was resolved for the build platform.
  ASSERT_EQ(resolver_.asked.size(), 1u);
  EXPECT_EQ(resolver_.asked[0], "docker.io/library/busybox:latest linux/amd64");
  // Undeclared platform ARGs are not in a stage's scope.
  r = Convert("FROM busybox\nRUN true\n");
  EXPECT_EQ(Env(Execs(r)[0], "TARGETARCH"), "<unset>");
  const auto args = PlatformArgs(Arm64(), Amd64());
  EXPECT_EQ(args[4], (std::pair<std::string, std::string>{"TARGETPLATFORM", "linux/arm64"}));
}

TEST_F(ConvertTest, OnbuildTriggersOfTheBaseRunFirst) {
  ResolvedImage onb;
  onb.digest = "sha256:" + std::string(64, 'a');
  onb.config.config.on_build = {"RUN echo trigger", "ENV FROM_TRIGGER=1"};
  resolver_.images["docker.io/library/onb:latest"] = onb;
  ConvertResult r = Convert("FROM onb\nRUN echo mine\n");
  const std::vector<graph::ExecOp> execs = Execs(r);
  ASSERT_EQ(execs.size(), 2u);
  EXPECT_EQ(execs[0].args.back(), "echo trigger");
  EXPECT_EQ(execs[1].args.back(), "echo mine");
  EXPECT_EQ(Env(execs[1], "FROM_TRIGGER"), "1");
  EXPECT_TRUE(r.config.config.on_build.empty());  // triggers do not propagate
}

TEST_F(ConvertTest, OnbuildIsRecordedInTheConfig) {
  ConvertResult r = Convert("FROM busybox\nONBUILD RUN make\n");
  EXPECT_EQ(r.config.config.on_build, std::vector<std::string>{"RUN make"});
}

TEST_F(ConvertTest, TargetPrunesUnreachableStages) {
  options_.target = "build";
  ConvertResult r = Convert(
      "FROM alpine AS build\nRUN echo > /x\nFROM busybox AS release\nCOPY --from=build /x /x\n");
  ASSERT_EQ(r.sources.sources.size(), 1u);
  EXPECT_EQ(r.sources.sources[0].ref, "alpine");
  EXPECT_EQ(resolver_.asked.size(), 1u);  // busybox never resolved
  EXPECT_EQ(r.target_stage, "build");

  options_.target = "";
  resolver_.asked.clear();
  r = Convert("FROM alpine AS unused\nRUN echo x\nFROM busybox\nRUN echo y\n");
  ASSERT_EQ(r.sources.sources.size(), 1u);
  EXPECT_EQ(r.sources.sources[0].ref, "busybox");
  EXPECT_EQ(resolver_.asked.size(), 1u);
}

TEST_F(ConvertTest, UnknownTargetIsAnError) {
  options_.target = "nope";
  EXPECT_EQ(Error("FROM busybox\n"),
            "failed to reach build target nope in Dockerfile: no stage is named \"nope\"");
}

TEST_F(ConvertTest, CopyFromForms) {
  // A stage by name, by index, and an image reference.
  ConvertResult r = Convert(
      "FROM alpine AS a\nRUN echo a > /a\nFROM scratch\nCOPY --from=a /a /a\n"
      "COPY --from=0 /a /b\nCOPY --from=alpine:3.15 /etc/os-release /c\n");
  std::vector<std::string> refs;
  for (const auto& s : r.sources.sources) refs.push_back(s.ref);
  EXPECT_EQ(refs, (std::vector<std::string>{"alpine", "alpine:3.15"}));
  const graph::Definition def = graph::Marshal(r.root);
  size_t copies = 0;
  for (const graph::VertexPtr& v : def.vertices) {
    if (const auto* f = std::get_if<graph::FileOp>(&v->op)) copies += f->actions.size();
  }
  EXPECT_EQ(copies, 3u);
}

TEST_F(ConvertTest, CopyFromNamedContexts) {
  options_.named_contexts = {{"busybox", "docker-image://alpine"}};
  ConvertResult r = Convert("FROM busybox AS base\nRUN true\nFROM scratch\nCOPY --from=base / /\n");
  ASSERT_EQ(r.sources.sources.size(), 1u);
  EXPECT_EQ(r.sources.sources[0].ref, "alpine");  // K5: the context is pinned and recorded
  EXPECT_EQ(r.sources.sources[0].alias, std::string("docker.io/library/alpine@") + kAlpine);

  options_.named_contexts = {{"base", "local:basedir"}};
  r = Convert("FROM busybox AS base\nRUN true\nFROM scratch\nCOPY --from=base /o* /\n");
  EXPECT_TRUE(r.sources.sources.empty());
  EXPECT_EQ(SourceIds(r), std::vector<std::string>{"local://basedir"});
}

TEST_F(ConvertTest, InputContextRecordsItsDeps) {
  InputContext in;
  in.buildinfo = buildinfo::BuildInfo{};
  in.buildinfo->frontend = "dockerfile.v0";
  in.config = image::ImageConfig{};
  in.config->config.env = {"FOO=bar"};
  options_.inputs["base"] = in;
  options_.named_contexts = {{"base", "input:base"}};
  ConvertResult r = Convert("FROM base AS build\nRUN echo $FOO\n");
  ASSERT_EQ(r.sources.deps.count("base"), 1u);
  EXPECT_EQ(Env(Execs(r)[0], "FOO"), "bar");
  // An input the build does not reach is not a dep (K10).
  r = Convert("FROM base AS build\nFROM busybox\n");
  EXPECT_TRUE(r.sources.deps.empty());
}

TEST_F(ConvertTest, HeredocRun) {
  ConvertResult r = Convert("FROM busybox\nRUN <<EOF\necho hi\necho there\nEOF\n");
  std::vector<graph::ExecOp> execs = Execs(r);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(execs[0].args, (std::vector<std::string>{"/bin/sh", "-c", "echo hi\necho there\n"}));
  r = Convert("FROM busybox\nRUN cat <<EOF > /x\nhello\nEOF\n");
  execs = Execs(r);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(execs[0].args.back(), "cat <<EOF > /x\nhello\nEOF");
}

TEST_F(ConvertTest, HeredocCopy) {
  options_.build_args = {};
  ConvertResult r = Convert("FROM busybox\nENV WHO=world\nCOPY <<EOF /greeting\nhello $WHO\nEOF\n");
  bool found = false;
  for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
    if (const auto* f = std::get_if<graph::FileOp>(&v->op)) {
      for (const auto& a : f->actions) {
        if (const auto* mk = std::get_if<graph::FileMkfile>(&a)) {
          EXPECT_EQ(mk->data, "hello world\n");
          found = true;
        }
      }
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(ConvertTest, ConfigTemplate) {
  ConvertResult r = Convert(
      "FROM alpine\nWORKDIR app\nUSER 1000\nEXPOSE 80 53/udp\nVOLUME /data\nLABEL a=b\n"
      "STOPSIGNAL SIGTERM\nENTRYPOINT [\"/bin/app\"]\nCMD run\nSHELL [\"/bin/bash\", \"-c\"]\n");
  const image::ContainerConfig& c = r.config.config;
  EXPECT_EQ(c.working_dir, "/root/app");
  EXPECT_EQ(c.user, "1000");
  EXPECT_EQ(c.exposed_ports, (std::set<std::string>{"53/udp", "80/tcp"}));
  EXPECT_EQ(c.volumes, (std::set<std::string>{"/data"}));
  EXPECT_EQ(c.labels.at("a"), "b");
  EXPECT_EQ(c.stop_signal, "SIGTERM");
  EXPECT_EQ(c.entrypoint, std::vector<std::string>{"/bin/app"});
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/sh", "-c", "run"}));
  EXPECT_EQ(c.shell, (std::vector<std::string>{"/bin/bash", "-c"}));
  EXPECT_EQ(r.config.architecture, "amd64");
  EXPECT_EQ(r.config.os, "linux");
  std::vector<std::string> created;
  for (const auto& h : r.config.history) created.push_back(h.created_by);
  EXPECT_EQ(created,
            (std::vector<std::string>{
                "WORKDIR /root/app # buildkit", "USER 1000", "EXPOSE 53/udp 80/tcp",
                "VOLUME [/data]", "LABEL a=b", "STOPSIGNAL SIGTERM", "ENTRYPOINT [\"/bin/app\"]",
                "CMD [\"/bin/sh\" \"-c\" \"run\"]", "SHELL [\"/bin/bash\" \"-c\"]"}));
}

TEST_F(ConvertTest, EntrypointClearsInheritedCmd) {
  ResolvedImage img;
  img.digest = "sha256:" + std::string(64, 'c');
  img.config.config.cmd = {"sh"};
  resolver_.images["docker.io/library/withcmd:latest"] = img;
  EXPECT_TRUE(Convert("FROM withcmd\nENTRYPOINT [\"x\"]\n").config.config.cmd.empty());
  EXPECT_EQ(Convert("FROM withcmd\nCMD [\"y\"]\nENTRYPOINT [\"x\"]\n").config.config.cmd,
            std::vector<std::string>{"y"});
}

TEST_F(ConvertTest, LabelsFromAttributesGoOnTheTarget) {
  options_.labels = {{"version", "1.0"}};
  EXPECT_EQ(Convert("FROM busybox\n").config.config.labels.at("version"), "1.0");
}

TEST_F(ConvertTest, DefaultPathIsAdded) {
  ConvertResult r = Convert("FROM scratch\nCOPY a /\n");
  EXPECT_EQ(r.config.config.env,
            std::vector<std::string>{
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
}

TEST_F(ConvertTest, AddUrlIsAnHttpSource) {
  ConvertResult r = Convert("FROM busybox\nADD https://example.com/dir/file.txt?x=1 /tmp/\n");
  const std::vector<std::string> ids = SourceIds(r);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "https://example.com/dir/file.txt?x=1"), ids.end());
}

TEST_F(ConvertTest, IdenticalInputsGiveIdenticalDigests) {
  const std::string df = "FROM busybox\nARG X\nRUN echo $X\nCOPY . /src\n";
  options_.build_args = {{"X", "1"}};
  const util::Digest a = graph::Marshal(Convert(df).root).vertices.back()->digest;
  const util::Digest b = graph::Marshal(Convert(df).root).vertices.back()->digest;
  EXPECT_EQ(a, b);
  options_.build_args = {{"X", "2"}};
  const util::Digest c = graph::Marshal(Convert(df).root).vertices.back()->digest;
  EXPECT_NE(a, c);
}

TEST_F(ConvertTest, ErrorsNameTheLineAndShowIt) {
  EXPECT_EQ(Error("FROM busybox\nCOPY a b c\n"),
            "Dockerfile:2: When using COPY with more than one source file, the destination must "
            "be a directory and end with a /\n"
            " 2 | COPY a b c\n"
            "   | ^");
}

TEST_F(ConvertTest, UnknownImageIsAnErrorWithTheLine) {
  const std::string err = Error("FROM busybox\nFROM nosuchimage\n");
  EXPECT_EQ(err.rfind("Dockerfile:2: resolving docker.io/library/nosuchimage:latest: ", 0), 0u)
      << err;
}

TEST_F(ConvertTest, CircularStagesAreAnError) {
  const std::string err =
      Error("FROM busybox AS a\nCOPY --from=b / /\nFROM busybox AS b\nCOPY --from=a / /\n");
  EXPECT_NE(err.find("circular dependency detected on stage"), std::string::npos) << err;
}

// ADD <git url> (Dockerfile 1.5): a git source op, its tree copied to dest.
TEST_F(ConvertTest, AddGitUrlIsAGitSourceCopiedToDest) {
  ConvertResult r = Convert(
      "FROM busybox\n"
      "ADD --keep-git-dir=true https://h.example/org/repo.git#v1.0:docs /src\n"
      "ADD git@h.example:org/repo.git /plain/\n");
  const graph::Definition def = graph::Marshal(r.root);
  std::map<std::string, std::map<std::string, std::string>> git;
  for (const graph::VertexPtr& v : def.vertices) {
    if (const auto* s = std::get_if<graph::SourceOp>(&v->op)) {
      if (s->identifier.rfind("git://", 0) == 0) git[s->identifier] = s->attrs;
    }
  }
  ASSERT_EQ(git.size(), 2u);
  const auto& tagged = git["git://h.example/org/repo.git#v1.0:docs"];
  EXPECT_EQ(tagged.at("git.fullurl"), "https://h.example/org/repo.git");
  EXPECT_EQ(tagged.at("git.keepgitdir"), "true");
  const auto& plain = git["git://git@h.example:org/repo.git"];
  EXPECT_EQ(plain.count("git.keepgitdir"), 0u);
  // The copy takes the checkout's contents to the destination.
  const auto* copy = std::get_if<graph::FileOp>(&r.root.vertex->op);
  ASSERT_NE(copy, nullptr);
  const auto* cp = std::get_if<graph::FileCopy>(&copy->actions[0]);
  ASSERT_NE(cp, nullptr);
  EXPECT_EQ(cp->src, "/");
  EXPECT_EQ(cp->dest, "/plain/");
  EXPECT_TRUE(cp->dir_copy_contents);
  EXPECT_FALSE(cp->attempt_unpack);
}

// A git build context: the git source op, keeping .git with BuildKit's
// BUILDKIT_CONTEXT_KEEP_GIT_DIR build arg.
TEST_F(ConvertTest, GitBuildContextKeepsGitDirOnRequest) {
  options_.context = "https://h.example/r.git#main:app";
  options_.build_args["BUILDKIT_CONTEXT_KEEP_GIT_DIR"] = "1";
  ConvertResult r = Convert("FROM busybox\nCOPY . /src/\n");
  bool found = false;
  for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
    const auto* s = std::get_if<graph::SourceOp>(&v->op);
    if (s == nullptr || s->identifier != "git://h.example/r.git#main:app") continue;
    found = true;
    EXPECT_EQ(s->attrs.at("git.fullurl"), "https://h.example/r.git");
    EXPECT_EQ(s->attrs.at("git.keepgitdir"), "true");
  }
  EXPECT_TRUE(found);
}

TEST_F(ConvertTest, ChecksumOfAGitSourceIsRefused) {
  EXPECT_NE(Error("FROM busybox\nADD --checksum=sha256:" + std::string(64, 'a') +
                  " https://h.example/r.git#main /src/\n")
                .find("checksum can't be specified for multiple sources or non-HTTP sources"),
            std::string::npos);
}

// K8: a credential in an ADD URL reaches neither the step name nor the
// image history.
TEST_F(ConvertTest, CredentialsInAddUrlsAreRedactedInHistoryAndStepNames) {
  ConvertResult r = Convert("FROM busybox\nADD https://u:pw@h.example/r.git#main /src/\n");
  ASSERT_FALSE(r.config.history.empty());
  EXPECT_EQ(r.config.history.back().created_by,
            "ADD https://xxxxx:xxxxx@h.example/r.git#main /src/ # buildkit");
  for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
    for (const auto& [k, text] : v->constraints.description) {
      EXPECT_EQ(text.find(":pw@"), std::string::npos) << k << "=" << text;
    }
  }
}

// K10: an image named context whose config carries a record is a dep under
// the context's name, redacted; an unreached one is not.
TEST_F(ConvertTest, ImageContextWithARecordIsADep) {
  buildinfo::BuildInfo inner;
  inner.frontend = "dockerfile.v0";
  inner.sources.push_back(
      {"http", "https://u:pw@h.example/f", "", "sha256:" + std::string(64, 'f')});
  ResolvedImage withrecord;
  withrecord.digest = "sha256:" + std::string(64, '7');
  ASSERT_TRUE(withrecord.config
                  .SetExtraRaw(std::string(buildinfo::kImageConfigField),
                               "\"" + buildinfo::EncodeBase64(inner) + "\"")
                  .ok());
  resolver_.images["docker.io/library/withrecord:latest"] = withrecord;
  options_.named_contexts = {{"base", "docker-image://withrecord"},
                             {"unused", "docker-image://withrecord"}};
  ConvertResult r = Convert("FROM base\nRUN true\n");
  ASSERT_EQ(r.sources.deps.size(), 1u);
  ASSERT_EQ(r.sources.deps.count("base"), 1u);
  ASSERT_EQ(r.sources.deps["base"].sources.size(), 1u);
  EXPECT_EQ(r.sources.deps["base"].sources[0].ref, "https://xxxxx:xxxxx@h.example/f");
}

// An HTTP build context that is a tar archive is unpacked; one that was the
// Dockerfile alone gives an empty context.
TEST_F(ConvertTest, HttpContextArchiveOrDockerfile) {
  options_.context = "https://h.example/ctx.tar.gz";
  ConvertResult r = Convert("FROM busybox\nCOPY a /a\n");
  const std::vector<std::string> ids = SourceIds(r);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "https://h.example/ctx.tar.gz"), ids.end());
  options_.context_is_archive = false;
  EXPECT_NE(Error("FROM busybox\nCOPY a /a\n").find("the source of the build context is empty"),
            std::string::npos);
}

// Issue 15, failures 1 and 2 (use after reallocation): implicit stages
// (COPY --from=<image ref>, --from=<named context>) are appended to the
// converter's stage table while a reference to the stage naming them is
// held. With a vector, the append that reallocated left that reference
// dangling: a crash, or the next image of the stage resolved for a platform
// read from freed memory ("no manifest for linux in the index").
TEST_F(ConvertTest, ImplicitStagesKeepThePlatformOfTheStageNamingThem) {
  options_.target_platform = Arm64();
  ConvertResult r = Convert(
      "FROM busybox\n"
      "COPY --from=alpine /a /a\n"
      "COPY --from=alpine:3.15 /b /b\n"
      "COPY --from=busybox /c /c\n"
      "RUN true\n");
  // The base, then each implicit stage in the order the walk added them.
  EXPECT_EQ(resolver_.asked, (std::vector<std::string>{
                                 "docker.io/library/busybox:latest linux/arm64",
                                 "docker.io/library/alpine:latest linux/arm64",
                                 "docker.io/library/alpine:3.15 linux/arm64",
                                 "docker.io/library/busybox:latest linux/arm64",
                             }));
  size_t images = 0;
  for (const graph::VertexPtr& v : graph::Marshal(r.root).vertices) {
    const auto* s = std::get_if<graph::SourceOp>(&v->op);
    if (s == nullptr || s->identifier.rfind("docker-image://", 0) != 0) continue;
    ++images;
    ASSERT_TRUE(v->constraints.platform.has_value()) << s->identifier;
    EXPECT_EQ(image::Format(*v->constraints.platform), "linux/arm64") << s->identifier;
  }
  EXPECT_EQ(images, 3u);
}

// Issue 15, failure 1: the shape that crashed every time.
TEST_F(ConvertTest, CopyFromGitContextAndImageAfterAddsDoesNotCrash) {
  options_.named_contexts = {{"gitctx", "https://h.example/org/repo.git#main"}};
  ConvertResult r = Convert(
      "FROM busybox\n"
      "ADD https://h.example/one.txt /one.txt\n"
      "ADD https://h.example/two.txt /two.txt\n"
      "COPY --from=gitctx /README.md /r1\n"
      "COPY --from=gitctx /LICENSE /r2\n"
      "COPY --from=alpine:3.15 /etc/os-release /os-release\n"
      "COPY local.txt /local.txt\n"
      "RUN cat /one.txt /two.txt /r1 /r2 /os-release /local.txt\n");
  const std::vector<std::string> ids = SourceIds(r);
  const std::vector<std::string> wanted = {
      "https://h.example/one.txt", "https://h.example/two.txt", "git://h.example/org/repo.git#main",
      "docker-image://docker.io/library/alpine:3.15@sha256:" + std::string(64, '3'),
      "local://context"};
  for (const std::string& want : wanted) {
    EXPECT_NE(std::find(ids.begin(), ids.end(), want), ids.end()) << want;
  }
  EXPECT_EQ(Execs(r).size(), 1u);
}

// Issue 15, failure 1: 3, 5, 6, 7 or 9 named contexts crashed (each one an
// implicit stage, appended at a reallocation of the vector).
TEST_F(ConvertTest, AnyNumberOfNamedContextsConverts) {
  for (int n = 1; n <= 12; ++n) {
    options_.named_contexts.clear();
    std::string df = "FROM busybox\n";
    std::vector<std::string> want;
    for (int i = 0; i < n; ++i) {
      const std::string name = "ctx" + std::to_string(i);
      if (i % 3 == 0) {
        ResolvedImage img;
        img.digest = "sha256:" + std::string(63, 'a') + static_cast<char>('0' + i % 10);
        resolver_.images["docker.io/library/img" + std::to_string(i) + ":latest"] = img;
        options_.named_contexts[name] = "docker-image://img" + std::to_string(i);
        want.push_back("docker-image://docker.io/library/img" + std::to_string(i) + "@" +
                       img.digest);
      } else if (i % 3 == 1) {
        options_.named_contexts[name] = "https://h.example/r" + std::to_string(i) + ".git";
        want.push_back("git://h.example/r" + std::to_string(i) + ".git");
      } else {
        options_.named_contexts[name] = "local:" + name;
        want.push_back("local://" + name);
      }
      df += "COPY --from=" + name + " /f /f" + std::to_string(i) + "\n";
    }
    df += "RUN true\n";
    Result<ConvertResult> r = ConvertToGraph(df, options_);
    ASSERT_TRUE(r.ok()) << n << " contexts: " << r.status().ToString();
    const std::vector<std::string> ids = SourceIds(*r);
    EXPECT_EQ(ids.size(), want.size() + 1) << n << " contexts";  // and busybox
    for (const std::string& id : want) {
      EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end()) << n << " contexts: " << id;
    }
  }
}

// Issue 15, failure 10: a RUN whose command or environment is not UTF-8
// reached the executor, where nlohmann::json's type_error text came out. It
// is a Dockerfile error at the line now (an OCI runtime spec cannot carry
// the bytes; see DispatchRun).
TEST_F(ConvertTest, RunThatIsNotUtf8IsAnErrorAtItsLine) {
  EXPECT_EQ(Error("FROM busybox\nRUN echo caf\xe9\n"),
            "Dockerfile:2: the command is not valid UTF-8 (byte 0xe9 at offset 8): a container's "
            "command, environment and paths must be UTF-8 text; save the Dockerfile (and any "
            "--build-arg value) as UTF-8\n"
            " 2 | RUN echo caf\xe9\n"
            "   | ^");
  // A build-arg value reaches RUN's environment as given.
  options_.build_args = {{"NAME", "M\xfcller"}};
  EXPECT_EQ(Error("FROM busybox\nARG NAME\nRUN echo hello\n")
                .rfind("Dockerfile:3: the environment variable NAME is not valid UTF-8 (byte 0xfc "
                       "at offset 6)",
                       0),
            0u);
  options_.build_args.clear();
  // What BuildKit's parsers read as Go strings (the JSON of the exec form,
  // words expanded by the shell lexer: ENV, WORKDIR) has each invalid byte
  // replaced by U+FFFD already, as in BuildKit, and runs.
  const std::string fffd = "\xef\xbf\xbd";
  ConvertResult r = Convert(
      "FROM busybox\nENV GREETING=gr\xfc\nWORKDIR /caf\xe9\nRUN [\"/bin/echo\", \"\xff\"]\n");
  const std::vector<graph::ExecOp> execs = Execs(r);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_EQ(execs[0].args, (std::vector<std::string>{"/bin/echo", fffd}));
  EXPECT_EQ(Env(execs[0], "GREETING"), "gr" + fffd);
  EXPECT_EQ(execs[0].cwd, "/caf" + fffd);
  // Valid UTF-8 of every length is fine.
  Convert("FROM busybox\nRUN echo caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb3\n");
}

TEST_F(ConvertTest, GitContext) {
  EXPECT_TRUE(IsGitContext("https://github.com/org/repo.git#main"));
  EXPECT_TRUE(IsGitContext("git@github.com:org/repo.git"));
  EXPECT_TRUE(IsGitContext("github.com/org/repo"));
  EXPECT_FALSE(IsGitContext("https://example.com/context.tar"));
}

}  // namespace
}  // namespace kiln::dockerfile
