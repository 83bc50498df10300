#include "image/config.h"

#include <gtest/gtest.h>

#include "image/test_util.h"

namespace kiln::image {
namespace {

using testing::Sha;

std::string ErrorOf(const std::string& json) {
  auto c = ParseImageConfig(json);
  if (c.ok()) return "OK";
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  return c.status().message();
}

// As BuildKit v0.10's exporter writes it: top level sorted (R39), the nested
// config in BuildKit's struct order with "OnBuild":null.
const std::string kBuildkitConfig =
    R"({"architecture":"amd64","config":{"Env":["PATH=/bin"],"WorkingDir":"/app","OnBuild":null},)"
    R"("created":"2022-01-01T00:00:00Z","history":[{"created":"2022-01-01T00:00:00Z",)"
    R"("created_by":"RUN /bin/sh -c echo hi \u003e /x # buildkit","comment":"buildkit.dockerfile.v0"},)"
    R"({"created":"2022-01-01T00:00:00Z","created_by":"WORKDIR /app","comment":"buildkit.dockerfile.v0",)"
    R"("empty_layer":true}],"moby.buildkit.buildinfo.v1":"e30=","moby.buildkit.cache.v0":)"
    R"("eyJsYXllcnMiOltdfQ==","os":"linux","rootfs":{"type":"layers","diff_ids":[")" +
    Sha('1') + R"("]}})";

// As the Docker daemon writes it: many members kiln does not model, empty
// strings and nulls that Go's omitempty-less struct fields produce.
const std::string kDockerConfig =
    R"({"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,)"
    R"("AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,)"
    R"("Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sh"],)"
    R"("Image":")" +
    Sha('2') +
    R"(","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,)"
    R"("Labels":null},"container":"0123abcd","container_config":{"Hostname":"0123abcd","Cmd":["/bin/sh",)"
    R"("-c","#(nop) ","CMD [\"/bin/sh\"]"]},"created":"2021-11-24T20:19:40.483367546Z",)"
    R"("docker_version":"20.10.7","history":[{"created":"2021-11-24T20:19:40.199700946Z",)"
    R"("created_by":"/bin/sh -c #(nop) ADD file:abc in / "},{"created":"2021-11-24T20:19:40.483367546Z",)"
    R"("created_by":"/bin/sh -c #(nop)  CMD [\"/bin/sh\"]","empty_layer":true}],"os":"linux",)"
    R"("rootfs":{"type":"layers","diff_ids":[")" +
    Sha('3') + R"("]}})";

TEST(ConfigTest, ParsesFields) {
  auto c = ParseImageConfig(kBuildkitConfig);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->architecture, "amd64");
  EXPECT_EQ(c->os, "linux");
  EXPECT_EQ(c->created, "2022-01-01T00:00:00Z");
  EXPECT_EQ(c->config.env, std::vector<std::string>{"PATH=/bin"});
  EXPECT_EQ(c->config.working_dir, "/app");
  ASSERT_EQ(c->history.size(), 2u);
  EXPECT_EQ(c->history[0].created_by, "RUN /bin/sh -c echo hi > /x # buildkit");
  EXPECT_TRUE(c->history[1].empty_layer);
  ASSERT_EQ(c->rootfs.diff_ids.size(), 1u);
  EXPECT_EQ(c->rootfs.diff_ids[0].str(), Sha('1'));
  EXPECT_EQ(c->GetExtraRaw("moby.buildkit.buildinfo.v1"), "\"e30=\"");
  EXPECT_EQ(c->GetExtraRaw("os"), std::nullopt);  // modelled, not extra
}

TEST(ConfigTest, BuildkitConfigRoundTripsBothForms) {
  auto c = ParseImageConfig(kBuildkitConfig);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ToJson(), kBuildkitConfig);
  EXPECT_EQ(c->ToJsonSortedTopLevel(), kBuildkitConfig);
}

TEST(ConfigTest, DockerDaemonConfigRoundTrips) {
  auto c = ParseImageConfig(kDockerConfig);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->config.cmd, std::vector<std::string>{"/bin/sh"});
  EXPECT_EQ(c->GetExtraRaw("docker_version"), "\"20.10.7\"");
  EXPECT_EQ(c->ToJson(), kDockerConfig);
  EXPECT_EQ(c->ToJsonSortedTopLevel(), kDockerConfig);  // already sorted at the top
}

TEST(ConfigTest, ClearLayoutsGivesWhatBuildkitsFrontendMakesOfABaseConfig) {
  auto c = ParseImageConfig(kDockerConfig);
  ASSERT_TRUE(c.ok());
  c->ClearLayouts();
  EXPECT_EQ(
      c->ToJson(),
      R"({"created":"2021-11-24T20:19:40.483367546Z","architecture":"amd64","os":"linux",)"
      R"("config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],)"
      R"("Cmd":["/bin/sh"],"OnBuild":null},"rootfs":{"type":"layers","diff_ids":[")" +
          Sha('3') +
          R"("]},"history":[{"created":"2021-11-24T20:19:40.199700946Z","created_by":)"
          R"("/bin/sh -c #(nop) ADD file:abc in / "},{"created":"2021-11-24T20:19:40.483367546Z",)"
          R"("created_by":"/bin/sh -c #(nop)  CMD [\"/bin/sh\"]","empty_layer":true}]})");
}

TEST(ConfigTest, BuiltConfigCanonicalAndSorted) {
  ImageConfig c;
  c.architecture = "arm64";
  c.os = "linux";
  c.variant = "v8";
  c.config.user = "app";
  c.config.exposed_ports = {"8080/tcp", "443/tcp"};
  c.config.env = {"A=1"};
  c.config.entrypoint = {"/init"};
  c.config.cmd = {"serve"};
  c.config.volumes = {"/data"};
  c.config.working_dir = "/srv";
  c.config.labels = {{"b", "2"}, {"a", "1"}};
  c.config.stop_signal = "SIGTERM";
  c.config.healthcheck = HealthConfig{{"CMD", "true"}, 30'000'000'000, 0, 0, 3, {}};
  c.config.args_escaped = true;
  c.config.stop_timeout = 10;
  c.config.shell = {"/bin/bash", "-c"};
  c.rootfs.diff_ids = {*util::Digest::Parse(Sha('4'))};
  c.history.push_back(
      {"2022-01-01T00:00:00Z", "COPY . /srv # buildkit", "", "buildkit.dockerfile.v0", false, {}});
  const std::string config =
      R"({"User":"app","ExposedPorts":{"443/tcp":{},"8080/tcp":{}},"Env":["A=1"],)"
      R"("Entrypoint":["/init"],"Cmd":["serve"],"Volumes":{"/data":{}},"WorkingDir":"/srv",)"
      R"("Labels":{"a":"1","b":"2"},"StopSignal":"SIGTERM","Healthcheck":{"Test":["CMD","true"],)"
      R"("Interval":30000000000,"Retries":3},"ArgsEscaped":true,"OnBuild":null,"StopTimeout":10,)"
      R"("Shell":["/bin/bash","-c"]})";
  const std::string rootfs = R"({"type":"layers","diff_ids":[")" + Sha('4') + R"("]})";
  const std::string history =
      R"([{"created":"2022-01-01T00:00:00Z","created_by":"COPY . /srv # buildkit",)"
      R"("comment":"buildkit.dockerfile.v0"}])";
  EXPECT_EQ(c.ToJson(), R"({"architecture":"arm64","os":"linux","variant":"v8","config":)" +
                            config + R"(,"rootfs":)" + rootfs + R"(,"history":)" + history + "}");
  ASSERT_TRUE(c.SetExtraRaw("moby.buildkit.buildinfo.v1", "\"e30=\"").ok());
  c.created = "2022-01-01T00:00:00Z";
  EXPECT_EQ(c.ToJsonSortedTopLevel(),
            R"({"architecture":"arm64","config":)" + config +
                R"(,"created":"2022-01-01T00:00:00Z","history":)" + history +
                R"(,"moby.buildkit.buildinfo.v1":"e30=","os":"linux","rootfs":)" + rootfs +
                R"(,"variant":"v8"})");
}

TEST(ConfigTest, EmptyConfigWritesWhatGoWrites) {
  ImageConfig c;
  EXPECT_EQ(c.ToJson(),
            R"({"architecture":"","os":"","config":{"OnBuild":null},"rootfs":{"type":"layers",)"
            R"("diff_ids":null}})");
}

TEST(ConfigTest, ExtraMembers) {
  auto c = ParseImageConfig(
      R"({"architecture":"amd64","os":"linux","moby.buildkit.buildinfo.v1":"e30="})");
  ASSERT_TRUE(c.ok());
  // Replace in place, add one (compacted and HTML-escaped like a Go RawMessage).
  ASSERT_TRUE(c->SetExtraRaw("moby.buildkit.buildinfo.v1", "\"eyJ9\"").ok());
  ASSERT_TRUE(
      c->SetExtraRaw("moby.buildkit.cache.v0", " { \"a\" : [1, 2.0], \"h\": \"<\" } ").ok());
  EXPECT_EQ(c->GetExtraRaw("moby.buildkit.cache.v0"), R"({"a":[1,2.0],"h":"\u003c"})");
  EXPECT_EQ(c->ToJson(),
            R"({"architecture":"amd64","os":"linux","config":{"OnBuild":null},)"
            R"("rootfs":{"type":"layers","diff_ids":null},"moby.buildkit.buildinfo.v1":"eyJ9",)"
            R"("moby.buildkit.cache.v0":{"a":[1,2.0],"h":"\u003c"}})");
  EXPECT_EQ(c->ToJsonSortedTopLevel(),
            R"({"architecture":"amd64","config":{"OnBuild":null},"moby.buildkit.buildinfo.v1":)"
            R"("eyJ9","moby.buildkit.cache.v0":{"a":[1,2.0],"h":"\u003c"},"os":"linux",)"
            R"("rootfs":{"type":"layers","diff_ids":null}})");
  EXPECT_TRUE(c->RemoveExtra("moby.buildkit.buildinfo.v1"));
  EXPECT_FALSE(c->RemoveExtra("moby.buildkit.buildinfo.v1"));
  EXPECT_FALSE(c->GetExtraRaw("moby.buildkit.buildinfo.v1").has_value());
  EXPECT_EQ(c->ToJsonSortedTopLevel().find("buildinfo"), std::string::npos);

  EXPECT_EQ(c->SetExtraRaw("config", "{}").message(),
            "image config member \"config\" is modelled by ImageConfig; set the field instead");
  EXPECT_EQ(c->SetExtraRaw("x", "{").message(),
            "image config member \"x\": value is not valid JSON");
  EXPECT_FALSE(c->RemoveExtra("os"));
}

TEST(ConfigTest, FieldAddedToParsedConfigGoesToItsCanonicalPlace) {
  auto c = ParseImageConfig(
      R"({"architecture":"arm64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":null},"x":1})");
  ASSERT_TRUE(c.ok());
  c->variant = "v8";
  c->created = "2022-01-01T00:00:00Z";
  c->config.user = "u";
  c->config.cmd = {"sh"};
  EXPECT_EQ(
      c->ToJson(),
      R"({"created":"2022-01-01T00:00:00Z","architecture":"arm64","os":"linux","variant":"v8",)"
      R"("config":{"User":"u","Env":["A=1"],"Cmd":["sh"],"OnBuild":null},)"
      R"("rootfs":{"type":"layers","diff_ids":null},"x":1})");
}

TEST(ConfigTest, ClearedFieldFromSourceIsOmitted) {
  auto c = ParseImageConfig(
      R"({"architecture":"amd64","os":"linux","config":{"User":"root","Env":[],"Healthcheck":{"Test":["NONE"]}}})");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->config.healthcheck.has_value());
  EXPECT_EQ(c->config.healthcheck->test, std::vector<std::string>{"NONE"});
  c->config.user.clear();
  c->config.healthcheck.reset();
  // "Env":[] was an empty literal in the source and is kept; the cleared
  // members are omitted as omitempty omits them.
  EXPECT_EQ(c->ToJson(),
            R"({"architecture":"amd64","os":"linux","config":{"Env":[],"OnBuild":null},)"
            R"("rootfs":{"type":"layers","diff_ids":null}})");
}

TEST(ConfigTest, Errors) {
  EXPECT_EQ(
      ErrorOf(R"({"rootfs":{"type":"layers","diff_ids":[")" + Sha('1') + R"(","sha256:zz"]}})"),
      "invalid image config: rootfs.diff_ids[1]: invalid digest \"sha256:zz\": sha256 needs "
      "64 hex digits, found 2");
  EXPECT_EQ(ErrorOf(R"({"config":{"Env":[1]}})"),
            "invalid image config: config.Env[0]: expected a string, found number");
  EXPECT_EQ(ErrorOf(R"({"config":{"Labels":{"a":1}}})"),
            "invalid image config: config.Labels.a: expected a string, found number");
  EXPECT_EQ(ErrorOf(R"({"config":{"ExposedPorts":["80/tcp"]}})"),
            "invalid image config: config.ExposedPorts: expected an object, found array");
  EXPECT_EQ(ErrorOf(R"({"config":{"Healthcheck":{"Interval":"30s"}}})"),
            "invalid image config: config.Healthcheck.Interval: expected an integer, found string");
  EXPECT_EQ(ErrorOf(R"({"history":[{},{"empty_layer":"yes"}]})"),
            "invalid image config: history[1].empty_layer: expected a boolean, found string");
  EXPECT_EQ(ErrorOf(R"({"os":["linux"]})"),
            "invalid image config: os: expected a string, found array");
  EXPECT_EQ(ErrorOf("\"config\""), "invalid image config: document: expected a JSON object");
}

}  // namespace
}  // namespace kiln::image
