// The full-disk message (util/no_space.h), the same from every module.
#include "util/no_space.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace kiln {
namespace {

TEST(NoSpaceTest, MessageNamesThePathWhatKilnWasDoingAndTheRemedy) {
  Status s = NoSpace("/r/cache.db", "saving a cache record");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            "no space left on device: /r/cache.db (saving a cache record); free space or run "
            "kiln prune");
}

TEST(NoSpaceTest, ErrnoHelperPhrasesBecomeWhatKilnWasDoing) {
  auto doing = [](const char* what) {
    std::string m = NoSpaceFor(what, "/p").message();
    return m.substr(m.find('(') + 1, m.find(')') - m.find('(') - 1);
  };
  EXPECT_EQ(doing("cannot write"), "writing");
  EXPECT_EQ(doing("cannot create an ingest file in"), "creating an ingest file");
  EXPECT_EQ(doing("cannot copy data to"), "copying data");
  EXPECT_EQ(doing("cannot move the new layout into place at"), "moving the new layout into place");
  EXPECT_EQ(doing("cannot set xattr user.x on"), "setting xattr user.x");
  EXPECT_EQ(doing("cannot fsync"), "fsyncing");
}

TEST(NoSpaceTest, EnospcAndEdquot) {
  EXPECT_TRUE(IsNoSpace(ENOSPC));
  EXPECT_TRUE(IsNoSpace(EDQUOT));
  EXPECT_FALSE(IsNoSpace(EIO));
}

}  // namespace
}  // namespace kiln
