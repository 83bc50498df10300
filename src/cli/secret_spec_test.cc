#include "cli/secret_spec.h"

#include <gtest/gtest.h>

namespace kiln::cli {
namespace {

TEST(SecretSpecTest, Forms) {
  auto s = ParseSecretSpec("id=token,src=/run/secrets/t");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->id, "token");
  EXPECT_EQ(s->src, "/run/secrets/t");
  EXPECT_EQ(s->env, "");

  s = ParseSecretSpec("src=./dir/key.pem");  // id from the file name
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->id, "key.pem");

  s = ParseSecretSpec("env=HOME");  // id from the variable
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->id, "HOME");
  EXPECT_EQ(s->env, "HOME");

  s = ParseSecretSpec("id=a,source=b");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->src, "b");
  s = ParseSecretSpec("id=a,source=b,src=c,id=d");  // src= wins; a later key overrides
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->src, "c");
  EXPECT_EQ(s->id, "d");
}

TEST(SecretSpecTest, Errors) {
  EXPECT_EQ(ParseSecretSpec("id=a,novalue").status().message(),
            "--secret id=a,novalue: \"novalue\" is not KEY=VALUE (expected id=ID,src=FILE or "
            "id=ID,env=VAR)");
  EXPECT_EQ(ParseSecretSpec("id=").status().message(), "--secret id=: no id given");
  EXPECT_EQ(ParseSecretSpec("").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::cli
