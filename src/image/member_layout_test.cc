#include "image/member_layout.h"

#include <gtest/gtest.h>

namespace kiln::image {
namespace {

TEST(MemberLayoutTest, UnknownMembers) {
  MemberLayout l;
  EXPECT_FALSE(l.GetUnknown("a").has_value());
  l.SetUnknown("a", "1");
  l.SetUnknown("b", "[2]");
  EXPECT_EQ(l.GetUnknown("a"), "1");
  ASSERT_EQ(l.order().size(), 2u);
  EXPECT_EQ(l.order()[1].key, "b");
  l.SetUnknown("a", "3");  // replaced in place
  EXPECT_EQ(l.GetUnknown("a"), "3");
  EXPECT_EQ(l.order()[0].key, "a");
  EXPECT_TRUE(l.RemoveUnknown("a"));
  EXPECT_FALSE(l.RemoveUnknown("a"));
  EXPECT_EQ(l.Find("a"), nullptr);
  ASSERT_NE(l.Find("b"), nullptr);
  l.Clear();
  EXPECT_TRUE(l.order().empty());
  EXPECT_TRUE(l.unknown().empty());
}

}  // namespace
}  // namespace kiln::image
