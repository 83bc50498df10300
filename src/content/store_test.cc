#include "content/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "content/test_util.h"

namespace kiln::content {
namespace {

namespace fs = std::filesystem;
using util::Sha256Of;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(tmp_.path() / "root");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_.emplace(std::move(store).value());
  }
  const Store& store() { return *store_; }
  std::vector<std::string> Blobs() { return test::ListDir(tmp_.path() / "root/blobs/sha256"); }
  std::vector<std::string> Ingest() { return test::ListDir(tmp_.path() / "root/ingest"); }

  test::TempDir tmp_;
  std::optional<Store> store_;
};

TEST_F(StoreTest, OpenCreatesLayout) {
  EXPECT_TRUE(fs::is_directory(tmp_.path() / "root/blobs/sha256"));
  EXPECT_TRUE(fs::is_directory(tmp_.path() / "root/ingest"));
  EXPECT_EQ(store().root(), tmp_.path() / "root");
}

TEST_F(StoreTest, PutThenRead) {
  auto d = store().Put("hello");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, Sha256Of("hello"));
  EXPECT_TRUE(store().Has(*d));
  EXPECT_EQ(*store().Size(*d), 5u);
  EXPECT_EQ(*store().Read(*d), "hello");
  EXPECT_EQ(store().BlobPath(*d), tmp_.path() / "root/blobs/sha256" / std::string(d->hex()));
  struct stat st;
  ASSERT_EQ(::stat(store().BlobPath(*d).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, PutEmptyBlob) {
  auto d = store().Put("");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*store().Read(*d), "");
}

TEST_F(StoreTest, WriterStreamsChunksAndVerifies) {
  const std::string data = test::RandomBytes(3 << 20, 7);
  const Digest want = Sha256Of(data);
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  std::mt19937 rng(1);
  size_t off = 0;
  while (off < data.size()) {
    const size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 700000);
    ASSERT_TRUE(w->Write(std::string_view(data).substr(off, n)).ok());
    off += n;
  }
  EXPECT_EQ(w->size(), data.size());
  EXPECT_EQ(Ingest().size(), 1u);
  Status st = w->Commit(want, data.size());
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(*store().Read(want), data);
  EXPECT_TRUE(Ingest().empty());
  // The writer is finished.
  EXPECT_EQ(w->Write("x").code(), StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, CommitWithoutExpectationReturnsDigest) {
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("abc").ok());
  ASSERT_TRUE(w->Write("def").ok());
  auto d = w->Commit();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, Sha256Of("abcdef"));
  EXPECT_TRUE(store().Has(*d));
}

TEST_F(StoreTest, DigestMismatchLeavesNothing) {
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("actual bytes").ok());
  const Digest claimed = Sha256Of("claimed bytes");
  Status st = w->Commit(claimed, 12);
  EXPECT_EQ(st.code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(st.message(), "blob content does not match its descriptor: expected " + claimed.str() +
                              " (12 bytes), received " + Sha256Of("actual bytes").str() +
                              " (12 bytes); nothing was stored");
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());
  EXPECT_FALSE(store().Has(claimed));
}

// Guards issue 15 (a digest-mismatch message said "(1 bytes)" for the
// expected size): a caller that knows no expected size (Put, PutFd with an
// expected digest) gets a message stating the expected digest alone and the
// received digest and size, in words that fit the number.
TEST_F(StoreTest, MismatchMessageStatesOnlyWhatWasExpected) {
  const Digest claimed = Sha256Of("claimed");
  Result<Digest> put = store().Put("x", &claimed);
  EXPECT_EQ(put.status().code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(put.status().message(), "blob content does not match its descriptor: expected " +
                                        claimed.str() + ", received " + Sha256Of("x").str() +
                                        " (1 byte); nothing was stored");
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "xy", 2), 2);
  ::close(fds[1]);
  Result<Digest> from_fd = store().PutFd(fds[0], &claimed);
  ::close(fds[0]);
  EXPECT_EQ(from_fd.status().message(), "blob content does not match its descriptor: expected " +
                                            claimed.str() + ", received " + Sha256Of("xy").str() +
                                            " (2 bytes); nothing was stored");
  // With a stated size, both sizes.
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("xy").ok());
  Status st = w->Commit(claimed, 1);
  EXPECT_EQ(st.message(), "blob content does not match its descriptor: expected " + claimed.str() +
                              " (1 byte), received " + Sha256Of("xy").str() +
                              " (2 bytes); nothing was stored");
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, SizeMismatchLeavesNothing) {
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("twelve bytes").ok());
  Status st = w->Commit(Sha256Of("twelve bytes"), 13);
  EXPECT_EQ(st.code(), StatusCode::kDigestMismatch);
  EXPECT_NE(st.message().find("(13 bytes), received"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("(12 bytes)"), std::string::npos) << st.message();
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, TruncatedStreamLeavesNothing) {
  const std::string data = test::RandomBytes(1 << 20, 3);
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write(std::string_view(data).substr(0, data.size() / 2)).ok());
  Status st = w->Commit(Sha256Of(data), data.size());
  EXPECT_EQ(st.code(), StatusCode::kDigestMismatch);
  EXPECT_NE(st.message().find("(" + std::to_string(data.size()) + " bytes), received"),
            std::string::npos)
      << st.message();
  EXPECT_TRUE(Blobs().empty());
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, AbandonedWriterRemovesTempFile) {
  {
    auto w = store().NewWriter();
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Write(test::RandomBytes(500000, 1)).ok());
    EXPECT_EQ(Ingest().size(), 1u);
  }
  EXPECT_TRUE(Ingest().empty());
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("x").ok());
  w->Abort();
  w->Abort();
  EXPECT_TRUE(Ingest().empty());
  EXPECT_EQ(w->Commit().status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Blobs().empty());
}

TEST_F(StoreTest, MovedWriterKeepsIngest) {
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("part one, ").ok());
  Writer moved = std::move(w).value();
  ASSERT_TRUE(moved.Write("part two").ok());
  ASSERT_TRUE(moved.Commit(Sha256Of("part one, part two"), 18).ok());
  EXPECT_EQ(*store().Read(Sha256Of("part one, part two")), "part one, part two");
}

TEST_F(StoreTest, PutVerifiesExpectedDigest) {
  const Digest want = Sha256Of("good");
  auto ok = store().Put("good", &want);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, want);
  // Present already: still verified.
  EXPECT_EQ(store().Put("evil", &want).status().code(), StatusCode::kDigestMismatch);
  const Digest other = Sha256Of("other");
  EXPECT_EQ(store().Put("evil", &other).status().code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(Blobs().size(), 1u);
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, CommitOfPresentBlobSucceeds) {
  ASSERT_TRUE(store().Put("same").ok());
  ASSERT_TRUE(store().Put("same").ok());
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("same").ok());
  EXPECT_TRUE(w->Commit(Sha256Of("same"), 4).ok());
  EXPECT_EQ(Blobs().size(), 1u);
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, PutFileAndFd) {
  const fs::path file = tmp_.path() / "input";
  const std::string data = test::RandomBytes(2500000, 9);
  test::WriteFile(file, data);
  auto d = store().PutFile(file);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, Sha256Of(data));
  const Digest wrong = Sha256Of("x");
  Status st = store().PutFile(file, &wrong).status();
  EXPECT_EQ(st.code(), StatusCode::kDigestMismatch);
  EXPECT_NE(st.message().find("storing " + file.string()), std::string::npos) << st.message();
  EXPECT_EQ(store().PutFile(tmp_.path() / "nope").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, RejectsOtherAlgorithms) {
  const Digest sha512 = *Digest::Parse("sha512:" + std::string(128, 'a'));
  auto w = store().NewWriter();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->Write("x").ok());
  Status st = w->Commit(sha512, 1);
  EXPECT_EQ(st.code(), StatusCode::kUnimplemented);
  EXPECT_NE(st.message().find("sha256 blobs only"), std::string::npos);
  EXPECT_EQ(store().Read(sha512).status().code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(store().Has(sha512));
  EXPECT_TRUE(Ingest().empty());
}

TEST_F(StoreTest, MissingBlob) {
  const Digest d = Sha256Of("absent");
  EXPECT_FALSE(store().Has(d));
  Status st = store().Read(d).status();
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "blob " + d.str() + " is not in the content store at " +
                              (tmp_.path() / "root").string());
  EXPECT_EQ(store().Size(d).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store().Delete(d).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, ReadDetectsCorruption) {
  const std::string data = test::RandomBytes(300000, 5);
  auto d = store().Put(data);
  ASSERT_TRUE(d.ok());
  const fs::path path = store().BlobPath(*d);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  std::string bad = data;
  bad[1234] ^= 1;
  test::WriteFile(path, bad);
  Status st = store().Read(*d).status();
  EXPECT_EQ(st.code(), StatusCode::kDigestMismatch);
  EXPECT_EQ(st.message(),
            "blob " + d->str() + " in the content store is corrupted: " + path.string() +
                " hashes to " + Sha256Of(bad).str() + "; delete the file and fetch the blob again");
  // A streaming reader reports it at the end.
  auto r = store().OpenReader(*d);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->size(), data.size());
  std::string buf(100000, '\0');
  Status end;
  for (;;) {
    auto n = r->Read(buf.data(), buf.size());
    if (!n.ok()) {
      end = n.status();
      break;
    }
    ASSERT_NE(*n, 0u) << "reached the end without reporting corruption";
  }
  EXPECT_EQ(end.code(), StatusCode::kDigestMismatch);
}

TEST_F(StoreTest, ReaderStreamsVerifiedBlob) {
  const std::string data = test::RandomBytes(1 << 20, 11);
  auto d = store().Put(data);
  ASSERT_TRUE(d.ok());
  auto r = store().OpenReader(*d);
  ASSERT_TRUE(r.ok());
  std::string got, buf(4096, '\0');
  for (;;) {
    auto n = r->Read(buf.data(), buf.size());
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) break;
    got.append(buf.data(), *n);
  }
  EXPECT_EQ(got, data);
  EXPECT_EQ(*r->Read(buf.data(), buf.size()), 0u);
}

TEST_F(StoreTest, ListAndDelete) {
  std::vector<Digest> want;
  for (const char* s : {"a", "b", "c"}) want.push_back(*store().Put(s));
  std::sort(want.begin(), want.end());
  test::WriteFile(tmp_.path() / "root/blobs/sha256/not-a-digest", "junk");
  auto all = store().List();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, want);
  ASSERT_TRUE(store().Delete(want[1]).ok());
  EXPECT_FALSE(store().Has(want[1]));
  EXPECT_EQ(store().List()->size(), 2u);
}

// Two processes ingest the same 8 MiB blob at the same moment: both succeed
// and the store holds one intact copy with no temp files left.
TEST_F(StoreTest, ConcurrentIngestByTwoProcesses) {
  const std::string data = test::RandomBytes(8 << 20, 42);
  const Digest want = Sha256Of(data);
  for (int round = 0; round < 3; ++round) {
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    std::vector<pid_t> children;
    for (int c = 0; c < 2; ++c) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(go[1]);
        auto s = Store::Open(tmp_.path() / "root");
        if (!s.ok()) ::_exit(10);
        auto w = s->NewWriter();
        if (!w.ok()) ::_exit(11);
        char b;
        if (::read(go[0], &b, 1) != 1) ::_exit(12);  // wait for the start signal
        for (size_t off = 0; off < data.size(); off += 65536) {
          if (!w->Write(std::string_view(data).substr(off, 65536)).ok()) ::_exit(13);
        }
        ::_exit(w->Commit(want, data.size()).ok() ? 0 : 14);
      }
      children.push_back(pid);
    }
    ::close(go[0]);
    ASSERT_EQ(::write(go[1], "go", 2), 2);
    ::close(go[1]);
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round;
    }
    auto got = store().Read(want);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(*got == data);
    EXPECT_EQ(Blobs().size(), 1u);
    EXPECT_TRUE(Ingest().empty());
    ASSERT_TRUE(store().Delete(want).ok());
  }
}

TEST_F(StoreTest, ConcurrentIngestByThreads) {
  const std::string shared = test::RandomBytes(2 << 20, 8);
  std::vector<std::string> own;
  for (int i = 0; i < 8; ++i) own.push_back(test::RandomBytes(100000 + i, 100 + i));
  std::vector<Status> results(16);
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      const std::string& data = i % 2 == 0 ? shared : own[i / 2];
      const Digest d = Sha256Of(data);
      results[i] = store().Put(data, &d).status();
    });
  }
  for (auto& t : threads) t.join();
  for (const Status& st : results) EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(*store().Read(Sha256Of(shared)), shared);
  EXPECT_EQ(Blobs().size(), 9u);
  EXPECT_TRUE(Ingest().empty());
}

// A tiny image graph: index -> manifest -> {config, layer}; children are
// given by a map, as a caller parsing manifests would give them.
TEST_F(StoreTest, GcKeepsReachableBlobs) {
  const Digest config = *store().Put("config");
  const Digest layer = *store().Put("layer");
  const Digest manifest = *store().Put("manifest");
  const Digest index = *store().Put("index");
  const Digest orphan = *store().Put(test::RandomBytes(1000, 1));
  const Digest absent_root = Sha256Of("never stored");
  const Digest absent_child = Sha256Of("lazy layer");
  std::map<Digest, std::vector<Digest>> children = {{index, {manifest}},
                                                    {manifest, {config, layer, absent_child}}};
  std::vector<Digest> asked;
  ReferencesFn refs = [&](const Digest& d) -> Result<std::vector<Digest>> {
    asked.push_back(d);
    auto it = children.find(d);
    return it == children.end() ? std::vector<Digest>{} : it->second;
  };
  auto stats = store().Gc({index, absent_root}, refs);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->blobs_kept, 4u);
  EXPECT_EQ(stats->blobs_removed, 1u);
  EXPECT_EQ(stats->bytes_removed, 1000u);
  std::vector<Digest> missing = {absent_root, absent_child};
  std::sort(missing.begin(), missing.end());
  EXPECT_EQ(stats->missing, missing);
  EXPECT_FALSE(store().Has(orphan));
  for (const Digest& d : {config, layer, manifest, index}) EXPECT_TRUE(store().Has(d));
  EXPECT_EQ(asked.size(), 4u);  // each present blob asked once
}

TEST_F(StoreTest, GcErrorDeletesNothing) {
  const Digest root = *store().Put("root");
  const Digest orphan = *store().Put("orphan");
  ReferencesFn refs = [&](const Digest&) -> Result<std::vector<Digest>> {
    return Status::InvalidArgument("bad manifest");
  };
  Status st = store().Gc({root}, refs).status();
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("nothing was deleted"), std::string::npos) << st.message();
  EXPECT_TRUE(store().Has(orphan));
}

TEST_F(StoreTest, GcRemovesOnlyStaleIngestFiles) {
  // A dead writer's file: unlocked and old.
  const fs::path stale = tmp_.path() / "root/ingest/999999-dead01";
  test::WriteFile(stale, "partial");
  struct timeval old[2] = {{1000, 0}, {1000, 0}};
  ASSERT_EQ(::utimes(stale.c_str(), old), 0);
  // A live writer's file, just as old, but locked.
  auto live = store().NewWriter();
  ASSERT_TRUE(live.ok());
  ASSERT_TRUE(live->Write("in progress").ok());
  const std::vector<std::string> before = Ingest();
  ASSERT_EQ(before.size(), 2u);
  for (const std::string& name : before) {
    ASSERT_EQ(::utimes((tmp_.path() / "root/ingest" / name).c_str(), old), 0);
  }
  // A fresh unlocked file is within the grace period.
  test::WriteFile(tmp_.path() / "root/ingest/999999-fresh1", "new");
  auto stats = store().Gc({}, [](const Digest&) { return std::vector<Digest>{}; });
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->ingests_removed, 1u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(Ingest().size(), 2u);
  ASSERT_TRUE(live->Commit(Sha256Of("in progress"), 11).ok());
  EXPECT_EQ(*store().CleanIngest(std::chrono::seconds(0)), 1u);
  EXPECT_TRUE(Ingest().empty());
}

TEST(StoreOpenTest, ReportsUncreatableRoot) {
  test::TempDir tmp;
  test::WriteFile(tmp.path() / "file", "x");
  auto s = Store::Open(tmp.path() / "file" / "root");
  EXPECT_EQ(s.status().code(), StatusCode::kIOError);
  EXPECT_NE(s.status().message().find((tmp.path() / "file").string()), std::string::npos)
      << s.status().message();
}

// Direct (O_DIRECT) writers give the same blobs as buffered ones whatever
// the sizes of the writes and of the blob: whole 1 MiB buffers, partial
// blocks, a tail under one block, nothing at all. The temp dir may be on a
// filesystem without O_DIRECT (tmpfs): then the writer is buffered, which
// this checks too.
TEST_F(StoreTest, DirectWriterStoresTheSameBytes) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{(1u << 20) - 1},
                      size_t{1u << 20}, size_t{(1u << 20) + 1}, size_t{(5u << 20) + 4097}}) {
    SCOPED_TRACE(size);
    const std::string data = test::RandomBytes(size, static_cast<unsigned>(size));
    auto w = store().NewWriter(/*direct=*/true);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    std::mt19937 rng(static_cast<unsigned>(size));
    size_t off = 0;
    while (off < data.size()) {
      const size_t n = std::min<size_t>(data.size() - off, 1 + rng() % 300000);
      ASSERT_TRUE(w->Write(std::string_view(data).substr(off, n)).ok());
      off += n;
    }
    auto d = w->Commit();
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(*d, Sha256Of(data));
    EXPECT_EQ(fs::file_size(store().BlobPath(*d)), size);
    auto back = store().Read(*d);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == data);
  }
  EXPECT_TRUE(Ingest().empty());
}

// The store on a filesystem that has O_DIRECT (the build tree's, not a
// tmpfs): the same checks, and a direct writer moved before it commits.
TEST(StoreDirectTest, DirectWriterOnTheBuildFilesystem) {
  const fs::path root = fs::current_path() / ("store-direct-test-" + std::to_string(::getpid()));
  {
    auto store = Store::Open(root);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    const std::string data = test::RandomBytes((3u << 20) + 1000, 9);
    auto w = store->NewWriter(/*direct=*/true);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Write(std::string_view(data).substr(0, 1500000)).ok());
    Writer moved = std::move(*w);
    ASSERT_TRUE(moved.Write(std::string_view(data).substr(1500000)).ok());
    auto d = moved.Commit();
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    auto back = store->Read(*d);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_TRUE(*back == data);
    // An abandoned direct writer leaves no ingest file.
    auto a = store->NewWriter(/*direct=*/true);
    ASSERT_TRUE(a.ok());
    ASSERT_TRUE(a->Write(data).ok());
  }
  EXPECT_TRUE(test::ListDir(root / "ingest").empty());
  fs::remove_all(root);
}

}  // namespace
}  // namespace kiln::content
