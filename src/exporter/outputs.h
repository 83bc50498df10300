// Outputs: where a build's result goes (`-o type=...`, buildctl-style comma
// options, plus the buildx shortcuts the CLI maps onto them).
//
//   type=image,name=REF[,REF...][,push=true]   the image, named; pushed when
//                                              push=true (`--push`); Docker
//                                              schema2 media types unless
//                                              oci-mediatypes=true
//   type=registry,...                          buildx's alias of type=image,push=true
//   type=oci,dest=FILE|DIR[,tar=false]         an OCI archive or layout; OCI media
//                                              types; name= becomes annotations
//   type=docker,dest=FILE|-[,name=REF]         a `docker load` archive (manifest.json,
//                                              repositories, plus the OCI layout)
//   type=local,dest=DIR                        the final filesystem, no image
//   type=tar,dest=FILE|-                       the final filesystem as one tar
//
// A multi-platform build (several --platform) writes an index: type=oci an
// archive whose index.json names it, type=image pushes it (a Docker
// manifest list, or an OCI index with oci-mediatypes=true); type=docker is
// an error; type=local and type=tar hold one folder per platform
// (PlatformFolder).
//
// The image types also take compression=gzip|zstd|uncompressed,
// compression-level=N, force-compression=true, buildinfo=true|false,
// buildinfo-attrs=true|false; an option a type does not know is rejected
// (K11) naming it and the options the type takes. The filesystem types
// produce no image and no config, but the build still returns its record
// in the response (R40).
//
// Thread-safety: the functions are reentrant; an OutputEnv's members must be
// usable from several threads (they are).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "content/layout.h"
#include "content/store.h"
#include "exporter/image_writer.h"
#include "exporter/layers.h"
#include "registry/client.h"
#include "snapshot/snapshotter.h"
#include "util/cancel.h"
#include "util/progress.h"
#include "util/status.h"

namespace kiln::exporter {

// One `-o` output.
struct Output {
  std::string type;  // image, oci, docker, local, tar ("registry" is parsed to image)
  std::map<std::string, std::string> attrs;  // everything but type=
};

// Parses "type=oci,dest=out.tar[,tar=false][,name=...]" (a quoted value,
// "name=\"a,b\"", may hold commas, as buildctl's CSV reader allows). A bare
// path ("-o out") is type=local,dest=out and "-o -" is type=tar,dest=-.
// Checks the type and its option names (K11); kInvalidArgument naming the
// bad part.
Result<Output> ParseOutput(std::string_view spec);

// Whether the output is made from an image (image, oci, docker) rather than
// from the filesystem (local, tar).
bool IsImageOutput(const Output& output);

// What an image output asks of the image, from its attrs.
struct ImageOutputOptions {
  LayerOptions layers;             // compression, compression-level, force-compression
  bool oci_mediatypes = true;      // default: true for oci, false for image and docker
  std::vector<std::string> names;  // name=..., then the build's -t names
  bool push = false;               // type=image,push=true
};
// kInvalidArgument for a bad value (naming the option and what it takes).
// `tags` are the build's -t names (added after the output's own).
Result<ImageOutputOptions> ParseImageOutputOptions(const Output& output,
                                                   const std::vector<std::string>& tags);

struct OutputEnv {
  const content::Store* store = nullptr;
  snapshot::Snapshotter* snapshots = nullptr;  // filesystem outputs
  registry::Client* client = nullptr;          // push
  // ROOT/outputs: stamps of archives already written (see WriteImageOutput).
  std::filesystem::path state_dir;
  util::TaskReporter report;  // may be null
  util::Canceller* cancel = nullptr;
  std::optional<int64_t> source_date_epoch;  // clamps mtimes of filesystem outputs
  // The repositories the build's base images came from: a push mounts the
  // blobs it shares with them instead of uploading (same registry only).
  std::vector<image::Reference> mount_from;
};

struct OutputResult {
  bool skipped = false;             // an unchanged archive was left as it was
  std::vector<std::string> pushed;  // references pushed, normalized
};

// An OCI or Docker archive output begun while its layers are made: a
// LayerSink for ExportLayers that writes each layer into the archive as
// soon as the layers before it are in, the layer being made at the head
// streamed straight from the compressor (content::ArchiveWriter), so the
// archive is nearly complete when the last layer is. Nothing is written
// when no layer is made (every blob reused: the ordinary path, and its
// unchanged-archive skip, apply). The archive's bytes are the same either
// way. Pass it to WriteImageOutput to finish it.
class ArchiveStream : public LayerSink {
 public:
  ArchiveStream(const content::Store& store, std::filesystem::path dest);
  ~ArchiveStream() override;
  void Layers(const std::vector<Layer>& layers) override;
  util::ByteSink Begin(size_t index) override;
  void End(size_t index, const Layer& layer, const Status& status) override;

  const std::filesystem::path& dest() const { return dest_; }
  // The writer when layers went in (null otherwise), with the first error
  // met while writing them.
  content::ArchiveWriter* writer() const { return writer_.get(); }
  Status status() const;

 private:
  void AdvanceLocked();

  const content::Store& store_;
  const std::filesystem::path dest_;
  mutable std::mutex mu_;
  std::unique_ptr<content::ArchiveWriter> writer_;
  std::vector<Layer> layers_;  // an empty blob digest: not made yet
  size_t head_ = 0;            // the next layer to go into the archive
  bool streaming_ = false;     // the head layer is being streamed
  Status status_;
};

// An ArchiveStream for `output` when it is type=oci or type=docker written
// as a tar to a file (not tar=false, not dest=-); null otherwise.
Result<std::unique_ptr<ArchiveStream>> StartArchiveOutput(const OutputEnv& env,
                                                          const Output& output);

// Writes an image output. An OCI or Docker archive whose content would be
// exactly what an earlier build wrote at the same path is not written again
// when the file's stamp (size, mtime, inode) is unchanged too
// (result->skipped). type=image without push names the image only (the
// caller records the names).
// `started`: the output's ArchiveStream, if its layers were made with one.
Status WriteImageOutput(const OutputEnv& env, const Output& output,
                        const ImageOutputOptions& options, const WrittenImage& image,
                        OutputResult* result, ArchiveStream* started = nullptr);

// Writes the image output of a multi-platform build, `index` (an OCI index,
// or a Docker manifest list without OCI media types): type=oci's index.json
// names the index (annotated with the first name, as for one image) and the
// archive holds every platform's blobs once; type=image,push=true pushes the
// index with every manifest it names. type=docker is kInvalidArgument (a
// Docker archive holds one platform), naming the platforms.
Status WriteImageOutput(const OutputEnv& env, const Output& output,
                        const ImageOutputOptions& options, const WrittenIndex& index,
                        OutputResult* result);

// The folder of one platform in a multi-platform filesystem output, as
// buildx names it: "linux_amd64", "linux_arm_v7" (image::Format with '_').
std::string PlatformFolder(const image::Platform& platform);

// One platform's final filesystem in a multi-platform build.
struct PlatformFilesystem {
  image::Platform platform;
  std::string top;  // snapshot id; "" = empty
};

// Writes the filesystem output (local, tar) of a multi-platform build: a
// folder per platform (PlatformFolder), in DIR for type=local, at the top of
// the tar for type=tar (the folders are put together in a scratch snapshot
// of env.snapshots, exported as one tar, then removed).
Status WriteFilesystemOutput(const OutputEnv& env, const Output& output,
                             const std::vector<PlatformFilesystem>& platforms,
                             OutputResult* result);

// Writes a filesystem output (local, tar) of snapshot `top` ("" = empty).
Status WriteFilesystemOutput(const OutputEnv& env, const Output& output, const std::string& top,
                             OutputResult* result);

}  // namespace kiln::exporter
