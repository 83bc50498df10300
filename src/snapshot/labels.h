// Snapshot label names shared by the modules that set and read them.
//
// kiln.layer.*: the compressed blob in the content store that holds this
// snapshot's diff (set by source/image for pulled layers and by the exporter
// after it compressed a built layer), so a layer is never compressed twice.
// kiln.created: when a built snapshot was committed (RFC 3339, UTC); the
// exporter dates history entries with it, so a rebuild from the cache gives
// the same image config.
#pragma once

#include <string_view>

namespace kiln::snapshot {

inline constexpr std::string_view kLabelLayerDigest = "kiln.layer.digest";
inline constexpr std::string_view kLabelLayerDiffId = "kiln.layer.diffid";
inline constexpr std::string_view kLabelLayerMediaType = "kiln.layer.mediatype";
inline constexpr std::string_view kLabelLayerSize = "kiln.layer.size";
inline constexpr std::string_view kLabelCreated = "kiln.created";

}  // namespace kiln::snapshot
