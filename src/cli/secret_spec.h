// `--secret` values: "id=ID,src=FILE" or "id=ID,env=VAR" (buildx's form,
// comma-separated KEY=VALUE pairs; "source" is taken for "src"). Only the
// parsing lives here, apart from reading the file or the variable, so it can
// be tested and fuzzed on its own; build.cc reads what a spec names.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace kiln::cli {

// What one --secret value names. Exactly one of `src` and `env` is used:
// `src` when it is not empty, else `env`, else the environment variable
// named `id`.
struct SecretSpec {
  std::string id;   // never empty: from id=, else src='s file name, else env=
  std::string src;  // src= (or source=, when src= is absent)
  std::string env;  // env=
};

// Parses one --secret value. A later KEY= overrides an earlier one. Errors
// (kInvalidArgument) quote the whole value: `--secret SPEC: "PART" is not
// KEY=VALUE (...)`, `--secret SPEC: no id given`.
Result<SecretSpec> ParseSecretSpec(std::string_view spec);

}  // namespace kiln::cli
