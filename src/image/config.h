// ImageConfig: the image configuration blob (OCI
// application/vnd.oci.image.config.v1+json, Docker
// application/vnd.docker.container.image.v1+json): platform, run defaults
// (ContainerConfig), root filesystem diff IDs and history.
//
// Built by the Dockerfile frontend, completed by the exporters (rootfs,
// history, created), read by the image source (base images) and patched by
// buildinfo, which sets or removes the top-level members
// "moby.buildkit.buildinfo.v1" and "moby.buildkit.cache.v0" through the
// *ExtraRaw functions.
//
// JSON (Go-compatible, see util/json.h). Two output forms:
//   - ToJsonSortedTopLevel(): top-level members in bytewise key order, each
//     value compact. This is what BuildKit writes (R39): its exporter decodes
//     the config into a Go map[string]json.RawMessage, patches it and
//     re-marshals it. Exporters write configs with this form.
//   - ToJson(): canonical order, the Go struct order of image-spec v1.1's
//     Image: created, author, architecture, os, os.version, os.features,
//     variant, config, rootfs, history; architecture, os, config and rootfs
//     are always written, the others only when non-empty.
// Nested objects are the same in both forms. "config" (ContainerConfig) in
// BuildKit v0.10's order: User, ExposedPorts, Env, Entrypoint, Cmd, Volumes,
// WorkingDir, Labels, StopSignal, Healthcheck, ArgsEscaped, OnBuild,
// StopTimeout, Shell -- all omitted when empty except OnBuild, written as
// null (BuildKit's struct has no omitempty there). "rootfs": type, diff_ids
// (null when empty). History entries: created, created_by, author, comment,
// empty_layer, each omitted when empty. Healthcheck: Test, Interval, Timeout,
// StartPeriod, Retries.
//
// Every object keeps the members kiln does not model and, when parsed, its
// member order and empty literals (see member_layout.h): parse-then-ToJson is
// byte-identical for compact input written by Go, whether by BuildKit, by
// containerd or by the Docker daemon (Hostname, container_config, ... are
// kept). To get what BuildKit's frontend makes of a base image's config
// (decode into its struct, dropping unknown members), call ClearLayouts().
//
// Timestamps (created) are kept as the strings the document had; kiln does
// not reformat them.
//
// Thread-safety: value types; no internal synchronization.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "image/member_layout.h"
#include "util/digest.h"
#include "util/status.h"

namespace kiln::image {

// HEALTHCHECK settings. Durations are Go time.Duration values: nanoseconds.
struct HealthConfig {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]
  int64_t interval = 0;
  int64_t timeout = 0;
  int64_t start_period = 0;
  int64_t retries = 0;
  MemberLayout layout;
};

// The image config's "config" member: defaults for running a container.
struct ContainerConfig {
  std::string user;
  std::set<std::string> exposed_ports;  // "80/tcp"; JSON {"80/tcp":{}}
  std::vector<std::string> env;         // "KEY=value"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::set<std::string> volumes;  // JSON {"/data":{}}
  std::string working_dir;
  std::map<std::string, std::string> labels;
  std::string stop_signal;
  std::optional<HealthConfig> healthcheck;
  bool args_escaped = false;
  std::vector<std::string> on_build;
  std::optional<int64_t> stop_timeout;  // seconds
  std::vector<std::string> shell;
  MemberLayout layout;
};

struct RootFS {
  std::string type = "layers";
  std::vector<util::Digest> diff_ids;  // uncompressed layer digests, bottom first
  MemberLayout layout;
};

struct HistoryEntry {
  std::string created;  // RFC 3339, as written
  std::string created_by;
  std::string author;
  std::string comment;
  bool empty_layer = false;
  MemberLayout layout;
};

struct ImageConfig {
  std::string created;  // RFC 3339, as written; "" when absent
  std::string author;
  std::string architecture;
  std::string os;
  std::string os_version;
  std::vector<std::string> os_features;
  std::string variant;
  ContainerConfig config;
  RootFS rootfs;
  std::vector<HistoryEntry> history;
  MemberLayout layout;  // unknown top-level members and member order

  // Generic top-level members that ImageConfig does not model, such as
  // "moby.buildkit.buildinfo.v1": the raw compact JSON value, if present.
  // Always nullopt for a modelled key ("config", "os", ...).
  std::optional<std::string> GetExtraRaw(std::string_view key) const;
  // Sets a top-level member to `raw_json`, which is compacted as Go's
  // json.Marshal does to a json.RawMessage (util::GoCompact). A new member is
  // written after the others in ToJson() and in key order by
  // ToJsonSortedTopLevel(). kInvalidArgument if `raw_json` is not valid JSON
  // or `key` is a modelled member.
  Status SetExtraRaw(std::string key, std::string_view raw_json);
  // Removes a generic top-level member; returns whether it was there.
  bool RemoveExtra(std::string_view key);

  // Forgets, at every level, unknown members, parsed member order and empty
  // literals, so output is canonical (what Go writes after decoding into the
  // model's struct).
  void ClearLayouts();

  std::string ToJson() const;
  std::string ToJsonSortedTopLevel() const;
};

// Parses an image config. Type errors and bad digests are kInvalidArgument
// starting "invalid image config: " and naming the member, e.g.
// "rootfs.diff_ids[1]: invalid digest ..." or "config.Env[0]: expected a
// string, found number". No member is required (Go's decoder requires none).
Result<ImageConfig> ParseImageConfig(std::string_view json);

}  // namespace kiln::image
