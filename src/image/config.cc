#include "image/config.h"

#include <array>

#include "image/json_object.h"
#include "util/json.h"

namespace kiln::image {
namespace {

using internal::FieldIn;
using internal::FieldOut;
using internal::ReadBool;
using internal::ReadInt64;
using internal::ReadKeySet;
using internal::ReadObject;
using internal::ReadString;
using internal::ReadStringList;
using internal::ReadStringMap;
using internal::WhenEmpty;
using internal::WriteKeySet;
using internal::WriteObject;
using internal::WriteStringList;
using internal::WriteStringMap;
using util::JsonWriter;

// The members ImageConfig models at the top level.
constexpr std::array<std::string_view, 10> kTopLevelKeys = {
    "created",     "author",  "architecture", "os",     "os.version",
    "os.features", "variant", "config",       "rootfs", "history"};

bool IsTopLevelKey(std::string_view key) {
  for (std::string_view k : kTopLevelKeys) {
    if (k == key) return true;
  }
  return false;
}

// Binds a reader for one member to its destination.
template <typename T, typename Fn>
FieldIn Bind(std::string_view key, T* dst, Fn read) {
  return {key, [dst, read](std::string_view v, const std::string& at) { return read(v, at, dst); }};
}

Status ReadHealth(std::string_view raw, const std::string& path, HealthConfig* h) {
  return ReadObject(raw, path,
                    {
                        Bind("Test", &h->test, ReadStringList),
                        Bind("Interval", &h->interval, ReadInt64),
                        Bind("Timeout", &h->timeout, ReadInt64),
                        Bind("StartPeriod", &h->start_period, ReadInt64),
                        Bind("Retries", &h->retries, ReadInt64),
                    },
                    &h->layout);
}

void WriteHealth(JsonWriter& w, const HealthConfig& h) {
  const FieldOut fields[] = {
      {"Test", h.test.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteStringList(o, h.test); }},
      {"Interval", h.interval == 0, WhenEmpty::kOmit, [&](JsonWriter& o) { o.Int(h.interval); }},
      {"Timeout", h.timeout == 0, WhenEmpty::kOmit, [&](JsonWriter& o) { o.Int(h.timeout); }},
      {"StartPeriod", h.start_period == 0, WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.Int(h.start_period); }},
      {"Retries", h.retries == 0, WhenEmpty::kOmit, [&](JsonWriter& o) { o.Int(h.retries); }},
  };
  WriteObject(w, h.layout, fields);
}

Status ReadContainerConfig(std::string_view raw, const std::string& path, ContainerConfig* c) {
  return ReadObject(raw, path,
                    {
                        Bind("User", &c->user, ReadString),
                        Bind("ExposedPorts", &c->exposed_ports, ReadKeySet),
                        Bind("Env", &c->env, ReadStringList),
                        Bind("Entrypoint", &c->entrypoint, ReadStringList),
                        Bind("Cmd", &c->cmd, ReadStringList),
                        Bind("Volumes", &c->volumes, ReadKeySet),
                        Bind("WorkingDir", &c->working_dir, ReadString),
                        Bind("Labels", &c->labels, ReadStringMap),
                        Bind("StopSignal", &c->stop_signal, ReadString),
                        {"Healthcheck",
                         [c](std::string_view v, const std::string& at) -> Status {
                           if (v == "null") {
                             c->healthcheck.reset();
                             return Status::Ok();
                           }
                           HealthConfig h;
                           KILN_RETURN_IF_ERROR(ReadHealth(v, at, &h));
                           c->healthcheck = std::move(h);
                           return Status::Ok();
                         }},
                        Bind("ArgsEscaped", &c->args_escaped, ReadBool),
                        Bind("OnBuild", &c->on_build, ReadStringList),
                        {"StopTimeout",
                         [c](std::string_view v, const std::string& at) -> Status {
                           if (v == "null") {
                             c->stop_timeout.reset();
                             return Status::Ok();
                           }
                           int64_t t = 0;
                           KILN_RETURN_IF_ERROR(ReadInt64(v, at, &t));
                           c->stop_timeout = t;
                           return Status::Ok();
                         }},
                        Bind("Shell", &c->shell, ReadStringList),
                    },
                    &c->layout);
}

void WriteContainerConfig(JsonWriter& w, const ContainerConfig& c) {
  const FieldOut fields[] = {
      {"User", c.user.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(c.user); }},
      {"ExposedPorts", c.exposed_ports.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteKeySet(o, c.exposed_ports); }},
      {"Env", c.env.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { WriteStringList(o, c.env); }},
      {"Entrypoint", c.entrypoint.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteStringList(o, c.entrypoint); }},
      {"Cmd", c.cmd.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { WriteStringList(o, c.cmd); }},
      {"Volumes", c.volumes.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteKeySet(o, c.volumes); }},
      {"WorkingDir", c.working_dir.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.String(c.working_dir); }},
      {"Labels", c.labels.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteStringMap(o, c.labels); }},
      {"StopSignal", c.stop_signal.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.String(c.stop_signal); }},
      {"Healthcheck", !c.healthcheck.has_value(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteHealth(o, *c.healthcheck); }},
      {"ArgsEscaped", !c.args_escaped, WhenEmpty::kOmit, [&](JsonWriter& o) { o.Bool(true); }},
      {"OnBuild", c.on_build.empty(), WhenEmpty::kNull,
       [&](JsonWriter& o) { WriteStringList(o, c.on_build); }},
      {"StopTimeout", !c.stop_timeout.has_value(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.Int(*c.stop_timeout); }},
      {"Shell", c.shell.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteStringList(o, c.shell); }},
  };
  WriteObject(w, c.layout, fields);
}

Status ReadDiffIds(std::string_view raw, const std::string& path, std::vector<util::Digest>* out) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> elements, internal::SplitArray(raw, path));
  std::vector<util::Digest> ids(elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    KILN_RETURN_IF_ERROR(internal::ReadDigest(elements[i], internal::Element(path, i), &ids[i]));
  }
  *out = std::move(ids);
  return Status::Ok();
}

Status ReadRootFS(std::string_view raw, const std::string& path, RootFS* r) {
  r->type.clear();
  return ReadObject(raw, path,
                    {
                        Bind("type", &r->type, ReadString),
                        Bind("diff_ids", &r->diff_ids, ReadDiffIds),
                    },
                    &r->layout);
}

void WriteRootFS(JsonWriter& w, const RootFS& r) {
  const FieldOut fields[] = {
      {"type", false, WhenEmpty::kWrite, [&](JsonWriter& o) { o.String(r.type); }},
      {"diff_ids", r.diff_ids.empty(), WhenEmpty::kNull,
       [&](JsonWriter& o) {
         o.BeginArray();
         for (const auto& d : r.diff_ids) o.String(d.str());
         o.EndArray();
       }},
  };
  WriteObject(w, r.layout, fields);
}

Status ReadHistoryEntry(std::string_view raw, const std::string& path, HistoryEntry* h) {
  return ReadObject(raw, path,
                    {
                        Bind("created", &h->created, ReadString),
                        Bind("created_by", &h->created_by, ReadString),
                        Bind("author", &h->author, ReadString),
                        Bind("comment", &h->comment, ReadString),
                        Bind("empty_layer", &h->empty_layer, ReadBool),
                    },
                    &h->layout);
}

void WriteHistoryEntry(JsonWriter& w, const HistoryEntry& h) {
  const FieldOut fields[] = {
      {"created", h.created.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(h.created); }},
      {"created_by", h.created_by.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.String(h.created_by); }},
      {"author", h.author.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(h.author); }},
      {"comment", h.comment.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(h.comment); }},
      {"empty_layer", !h.empty_layer, WhenEmpty::kOmit, [&](JsonWriter& o) { o.Bool(true); }},
  };
  WriteObject(w, h.layout, fields);
}

Status ReadHistory(std::string_view raw, const std::string& path, std::vector<HistoryEntry>* out) {
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> elements, internal::SplitArray(raw, path));
  std::vector<HistoryEntry> list(elements.size());
  for (size_t i = 0; i < elements.size(); ++i) {
    KILN_RETURN_IF_ERROR(ReadHistoryEntry(elements[i], internal::Element(path, i), &list[i]));
  }
  *out = std::move(list);
  return Status::Ok();
}

Status ReadImageConfig(std::string_view json, ImageConfig* c) {
  return ReadObject(json, "",
                    {
                        Bind("created", &c->created, ReadString),
                        Bind("author", &c->author, ReadString),
                        Bind("architecture", &c->architecture, ReadString),
                        Bind("os", &c->os, ReadString),
                        Bind("os.version", &c->os_version, ReadString),
                        Bind("os.features", &c->os_features, ReadStringList),
                        Bind("variant", &c->variant, ReadString),
                        Bind("config", &c->config, ReadContainerConfig),
                        Bind("rootfs", &c->rootfs, ReadRootFS),
                        Bind("history", &c->history, ReadHistory),
                    },
                    &c->layout);
}

std::string WriteImageConfig(const ImageConfig& c, bool sorted) {
  const FieldOut fields[] = {
      {"created", c.created.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(c.created); }},
      {"author", c.author.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(c.author); }},
      {"architecture", false, WhenEmpty::kWrite, [&](JsonWriter& o) { o.String(c.architecture); }},
      {"os", false, WhenEmpty::kWrite, [&](JsonWriter& o) { o.String(c.os); }},
      {"os.version", c.os_version.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { o.String(c.os_version); }},
      {"os.features", c.os_features.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) { WriteStringList(o, c.os_features); }},
      {"variant", c.variant.empty(), WhenEmpty::kOmit, [&](JsonWriter& o) { o.String(c.variant); }},
      {"config", false, WhenEmpty::kWrite,
       [&](JsonWriter& o) { WriteContainerConfig(o, c.config); }},
      {"rootfs", false, WhenEmpty::kWrite, [&](JsonWriter& o) { WriteRootFS(o, c.rootfs); }},
      {"history", c.history.empty(), WhenEmpty::kOmit,
       [&](JsonWriter& o) {
         o.BeginArray();
         for (const auto& h : c.history) WriteHistoryEntry(o, h);
         o.EndArray();
       }},
  };
  JsonWriter w;
  WriteObject(w, c.layout, fields, sorted);
  return w.Take();
}

}  // namespace

std::optional<std::string> ImageConfig::GetExtraRaw(std::string_view key) const {
  return layout.GetUnknown(key);
}

Status ImageConfig::SetExtraRaw(std::string key, std::string_view raw_json) {
  if (IsTopLevelKey(key)) {
    return Status::InvalidArgument("image config member " + util::GoString(key) +
                                   " is modelled by ImageConfig; set the field instead");
  }
  auto compact = util::GoCompact(raw_json);
  if (!compact.ok()) {
    return Status::InvalidArgument("image config member " + util::GoString(key) +
                                   ": value is not valid JSON");
  }
  layout.SetUnknown(std::move(key), *std::move(compact));
  return Status::Ok();
}

bool ImageConfig::RemoveExtra(std::string_view key) { return layout.RemoveUnknown(key); }

void ImageConfig::ClearLayouts() {
  layout.Clear();
  config.layout.Clear();
  if (config.healthcheck) config.healthcheck->layout.Clear();
  rootfs.layout.Clear();
  for (auto& h : history) h.layout.Clear();
}

std::string ImageConfig::ToJson() const { return WriteImageConfig(*this, false); }

std::string ImageConfig::ToJsonSortedTopLevel() const { return WriteImageConfig(*this, true); }

Result<ImageConfig> ParseImageConfig(std::string_view json) {
  ImageConfig c;
  Status s = ReadImageConfig(json, &c);
  if (!s.ok()) return s.Annotate("invalid image config");
  return c;
}

}  // namespace kiln::image
