// Encode/decode of a build-sources record with 10,000 sources (and a few
// hundred attributes), the shapes the exporter and `kiln buildinfo inspect`
// handle. nlohmann-json parse+dump of the same bytes is printed as a baseline.
#include <cstdio>
#include <string>

#include "bench/perftest.h"
#include "buildinfo/buildinfo.h"
#include "buildinfo/exporter.h"
#include "util/digest.h"
#include "util/json.h"

using kiln::buildinfo::BuildInfo;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::stoi(argv[1]) : 10000;
  BuildInfo bi;
  bi.frontend = "dockerfile.v0";
  for (int i = 0; i < 300; ++i) {
    bi.attrs["build-arg:ARG_" + std::to_string(i)] = "value <" + std::to_string(i) + "> & more";
  }
  for (int i = 0; i < n; ++i) {
    const std::string pin = kiln::util::Sha256Of(std::to_string(i)).str();
    switch (i % 3) {
      case 0:
        bi.sources.push_back(
            {"docker-image", "docker.io/library/img" + std::to_string(i) + ":1.0", "", pin});
        break;
      case 1:
        bi.sources.push_back({"git",
                              "https://example.com/org/repo" + std::to_string(i) + ".git#main", "",
                              pin.substr(7, 40)});
        break;
      default:
        bi.sources.push_back(
            {"http", "https://example.com/files/" + std::to_string(i) + ".tar.gz", "", pin});
    }
  }
  kiln::buildinfo::SortSources(&bi.sources);
  const int runs = 15;

  std::string json;
  auto t = kiln::bench::Measure(runs, [&] { json = kiln::buildinfo::Encode(bi); });
  kiln::bench::Report("encode " + std::to_string(n) + " sources", t, json.size());

  size_t decoded_sources = 0;
  t = kiln::bench::Measure(runs, [&] {
    auto d = kiln::buildinfo::Decode(json);
    KILN_CHECK(d.ok(), d.status().ToString());
    decoded_sources = d->sources.size();
  });
  KILN_CHECK(decoded_sources == static_cast<size_t>(n), "decode lost sources");
  kiln::bench::Report("decode " + std::to_string(n) + " sources", t, json.size());

  std::string b64;
  t = kiln::bench::Measure(runs, [&] {
    b64 = kiln::buildinfo::EncodeBase64(bi);
    auto back = kiln::buildinfo::DecodeBase64(b64);
    KILN_CHECK(back.ok(), back.status().ToString());
  });
  kiln::bench::Report("base64 encode+decode round trip", t, json.size());

  const std::string config =
      R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":[]}})";
  // K12: the full record is over 1 MiB, so embedding it is refused; time the
  // refusal, then embed half of it.
  t = kiln::bench::Measure(runs, [&] {
    auto patched = kiln::buildinfo::PatchImageConfig(config, &bi, {true, true});
    KILN_CHECK(!patched.ok(), "a record over 1 MiB was embedded");
  });
  kiln::bench::Report("embed: over-1-MiB record refused (K12)", t);
  BuildInfo half = bi;
  half.sources.resize(bi.sources.size() / 2);
  const size_t half_size = kiln::buildinfo::Encode(half).size();
  t = kiln::bench::Measure(runs, [&] {
    auto patched = kiln::buildinfo::PatchImageConfig(config, &half, {true, true});
    KILN_CHECK(patched.ok(), patched.status().ToString());
  });
  kiln::bench::Report("embed " + std::to_string(half.sources.size()) + " sources into config", t,
                      half_size);

  t = kiln::bench::Measure(runs, [&] {
    auto v = nlohmann::json::parse(json);
    std::string s = v.dump();
  });
  kiln::bench::Report("baseline: nlohmann parse+dump same bytes", t, json.size());
  std::printf("record: %zu bytes JSON, %zu bytes base64\n", json.size(), b64.size());
  return 0;
}
