// The filesystem outputs (outputs.h): type=tar writes the final filesystem
// of a build, snapshot::Snapshotter::Export()'s normalized tar, to a file
// (temp file, fsync, rename) or to stdout; type=local extracts the same tar
// into a directory. Several platforms: a folder per platform, extracted side
// by side (for type=tar into a scratch snapshot exported once).
//
// Extraction is snapshot::ExtractTar (the snapshot module's layer reader in
// copy mode): every path is resolved
// inside the destination (openat2 RESOLVE_IN_ROOT), so neither a symlink
// already in the directory nor one the image holds can make it write
// outside; existing entries are replaced; modes, owners, times, symlinks
// and hard links are kept, devices and xattrs follow docs/snapshots.md.
// The tar is produced on one thread and extracted on another, a few chunks
// apart, so the filesystem is never held whole in memory or on disk.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "exporter/outputs.h"
#include "image/platform.h"
#include "snapshot/snapshotter.h"
#include "util/digest.h"

namespace kiln::exporter {
namespace {

// A bounded queue of byte chunks between the thread that writes the tar
// and the one that reads it.
class ChunkPipe {
 public:
  // The writer's sink. Fails (kCancelled) once the reader has stopped.
  Status Write(std::string_view chunk) {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return chunks_.size() < kMaxChunks || reader_closed_; });
    if (reader_closed_) return Status::Cancelled("the extraction stopped");
    chunks_.emplace_back(chunk);
    ready_.notify_one();
    return Status::Ok();
  }
  // The reader's source: 0 at the end; the writer's error if it failed.
  Result<size_t> Read(char* buf, size_t cap) {
    std::unique_lock<std::mutex> lock(mu_);
    ready_.wait(lock, [&] { return !chunks_.empty() || writer_closed_; });
    if (chunks_.empty()) {
      if (!writer_status_.ok()) return writer_status_;
      return size_t{0};
    }
    std::string& front = chunks_.front();
    const size_t n = std::min(cap, front.size() - offset_);
    std::memcpy(buf, front.data() + offset_, n);
    offset_ += n;
    if (offset_ == front.size()) {
      chunks_.pop_front();
      offset_ = 0;
      room_.notify_one();
    }
    return n;
  }
  void CloseWriter(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    writer_closed_ = true;
    writer_status_ = std::move(status);
    ready_.notify_all();
  }
  void CloseReader() {
    std::lock_guard<std::mutex> lock(mu_);
    reader_closed_ = true;
    room_.notify_all();
  }

 private:
  static constexpr size_t kMaxChunks = 16;
  std::mutex mu_;
  std::condition_variable ready_, room_;
  std::deque<std::string> chunks_;  // guarded by mu_
  size_t offset_ = 0;               // read position in chunks_.front()
  bool writer_closed_ = false;
  bool reader_closed_ = false;
  Status writer_status_;
};

// Counts bytes into a task of `env.report`; once the build is cancelled
// (env.cancel) the next chunk fails with kCancelled, which stops the export.
util::ByteSink Counting(const util::ByteSink& sink, const OutputEnv& env, util::TaskUpdate* task) {
  return [sink, report = env.report, cancel = env.cancel, task](std::string_view chunk) -> Status {
    if (cancel != nullptr) KILN_RETURN_IF_ERROR(cancel->Check());
    KILN_RETURN_IF_ERROR(sink(chunk));
    task->current += chunk.size();
    util::Report(report, *task);
    return Status::Ok();
  };
}

Status WriteTar(const OutputEnv& env, const std::string& top, const std::string& dest,
                const snapshot::DiffOptions& options, util::TaskUpdate* task) {
  if (dest == "-") {
    return env.snapshots->Export(top, Counting(util::FdSink(STDOUT_FILENO), env, task), options);
  }
  const std::filesystem::path path = dest;
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  std::string temp = (dir / ("." + path.filename().string() + ".kiln-XXXXXX")).string();
  util::UniqueFd fd(::mkstemp(temp.data()));
  if (!fd.valid()) {
    return Status::IOError("output type=tar: cannot create a file in " + dir.string() + ": " +
                           std::strerror(errno));
  }
  auto fail = [&](Status st) {
    ::unlink(temp.c_str());
    return st;
  };
  if (::fchmod(fd.get(), 0644) != 0) {
    return fail(Status::IOError("output type=tar: chmod " + temp + ": " + std::strerror(errno)));
  }
  // The bytes are hashed on their way to the file, and the file read back
  // and hashed before it is moved into place: what lands at `dest` is
  // exactly the tar that was made, or nothing.
  util::Sha256 made;
  const util::ByteSink file_sink = util::FdSink(fd.get());
  const util::ByteSink hashing = [&](std::string_view chunk) -> Status {
    made.Update(chunk);
    return file_sink(chunk);
  };
  Status st = env.snapshots->Export(top, Counting(hashing, env, task), options);
  if (!st.ok()) return fail(st.Annotate("output type=tar: " + dest));
  if (::fsync(fd.get()) != 0) {
    return fail(Status::IOError("output type=tar: fsync " + temp + ": " + std::strerror(errno)));
  }
  fd.reset();
  const uint64_t made_bytes = made.size();
  const util::Digest made_digest = made.Finish();
  Result<util::Digest> on_disk = util::Sha256OfFile(temp);
  if (!on_disk.ok()) return fail(on_disk.status().Annotate("output type=tar: reading back"));
  if (*on_disk != made_digest) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(temp, ec);
    return fail(Status::IOError(
        "output type=tar: the tar written for " + dest + " does not read back as it was written: " +
        std::to_string(made_bytes) + " bytes hashing to " + made_digest.str() + " were written, " +
        (ec ? std::string("a file") : std::to_string(size) + " bytes") + " hashing to " +
        on_disk->str() + " were read; it was not kept"));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail(Status::IOError("output type=tar: cannot rename " + temp + " to " + dest + ": " +
                                std::strerror(errno)));
  }
  return Status::Ok();
}

Status WriteLocal(const OutputEnv& env, const std::string& top, const std::string& dest,
                  const snapshot::DiffOptions& options, util::TaskUpdate* task) {
  std::error_code ec;
  std::filesystem::create_directories(dest, ec);
  if (ec || !std::filesystem::is_directory(dest)) {
    return Status::IOError("output type=local: cannot create directory " + dest + ": " +
                           (ec ? ec.message() : "a file of that name is in the way"));
  }
  ChunkPipe pipe;
  Status produced;
  std::thread producer([&] {
    produced = env.snapshots->Export(
        top, Counting([&pipe](std::string_view chunk) { return pipe.Write(chunk); }, env, task),
        options);
    pipe.CloseWriter(produced);
  });
  Status st =
      snapshot::ExtractTar(dest, [&pipe](char* buf, size_t cap) { return pipe.Read(buf, cap); });
  pipe.CloseReader();
  producer.join();
  // A tar cut short because its producer failed (cancelled, a read error):
  // that is the cause, not the "corrupt tar" the reader then saw.
  if (!st.ok() && !produced.ok()) return produced.Annotate("output type=local: " + dest);
  if (!st.ok()) return st.Annotate("output type=local: " + dest);
  return Status::Ok();
}

}  // namespace

Status WriteFilesystemOutput(const OutputEnv& env, const Output& output, const std::string& top,
                             OutputResult* result) {
  if (result) *result = OutputResult{};
  if (output.type != "local" && output.type != "tar") {
    return Status::InvalidArgument("output type \"" + output.type +
                                   "\" is not a filesystem output");
  }
  if (env.snapshots == nullptr) return Status::Internal("output: no snapshotter");
  if (env.cancel != nullptr) KILN_RETURN_IF_ERROR(env.cancel->Check());
  auto dest_it = output.attrs.find("dest");
  if (dest_it == output.attrs.end() || dest_it->second.empty()) {
    return Status::InvalidArgument("output type=" + output.type + " needs dest=" +
                                   (output.type == "local" ? "DIR" : "FILE (or - for stdout)"));
  }
  const std::string& dest = dest_it->second;
  snapshot::DiffOptions options;
  options.clamp_mtime = env.source_date_epoch;
  util::TaskUpdate task;
  task.id = "output:" + output.type + ":" + dest;
  task.name = "exporting to " + std::string(output.type == "local" ? "directory " : "tar ") +
              (dest == "-" ? "stdout" : dest);
  util::Report(env.report, task);
  Status st = output.type == "tar" ? WriteTar(env, top, dest, options, &task)
                                   : WriteLocal(env, top, dest, options, &task);
  task.state = st.ok() ? util::TaskUpdate::State::kDone : util::TaskUpdate::State::kError;
  if (!st.ok()) task.error = st.message();
  util::Report(env.report, task);
  return st;
}

Status WriteFilesystemOutput(const OutputEnv& env, const Output& output,
                             const std::vector<PlatformFilesystem>& platforms,
                             OutputResult* result) {
  if (result) *result = OutputResult{};
  auto dest_it = output.attrs.find("dest");
  if ((output.type != "local" && output.type != "tar") || dest_it == output.attrs.end() ||
      dest_it->second.empty()) {
    return WriteFilesystemOutput(env, output, std::string(), result);  // reports what is wrong
  }
  if (output.type == "local") {
    // DIR/linux_amd64, DIR/linux_arm64, ...
    for (const PlatformFilesystem& p : platforms) {
      Output one = output;
      one.attrs["dest"] =
          (std::filesystem::path(dest_it->second) / PlatformFolder(p.platform)).string();
      KILN_RETURN_IF_ERROR(WriteFilesystemOutput(env, one, p.top, result));
    }
    return Status::Ok();
  }
  if (env.snapshots == nullptr) return Status::Internal("output: no snapshotter");
  // The folders side by side in a scratch snapshot, then one tar of it.
  snapshot::DiffOptions options;
  options.clamp_mtime = env.source_date_epoch;
  std::string combined;
  {
    KILN_ASSIGN_OR_RETURN(snapshot::Active scratch, env.snapshots->Prepare(""));
    for (const PlatformFilesystem& p : platforms) {
      util::TaskUpdate task;
      task.id = "output:tar:" + PlatformFolder(p.platform);
      task.name = "collecting " + image::Format(p.platform);
      util::Report(env.report, task);
      Status st = WriteLocal(env, p.top, (scratch.path() / PlatformFolder(p.platform)).string(),
                             options, &task);
      task.state = st.ok() ? util::TaskUpdate::State::kDone : util::TaskUpdate::State::kError;
      if (!st.ok()) task.error = st.message();
      util::Report(env.report, task);
      if (!st.ok()) return st;
    }
    KILN_ASSIGN_OR_RETURN(combined, scratch.Commit());
  }
  Status st = WriteFilesystemOutput(env, output, combined, result);
  Status removed = env.snapshots->Remove(combined);
  if (!st.ok()) return st;
  return removed;
}

}  // namespace kiln::exporter
