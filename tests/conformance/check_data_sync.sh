#!/bin/sh
# check_data_sync.sh DATA SHARED: the in-repo conformance data (DATA) must be a
# byte-for-byte copy of the shared conformance folder (SHARED), apart from the
# corpus (never copied) and the files that describe the copy itself. Exits 0
# when they match, 1 with the differing paths when they drift, and 77
# (reported by ctest as skipped) when SHARED does not exist.
set -u
data=$1
shared=$2
if [ ! -d "$shared" ]; then
  echo "SKIPPED: no shared conformance folder at $shared to compare $data with"
  exit 77
fi
if diff -r -q -x corpus -x README.md -x LICENSE.buildkit -x .gitattributes "$shared" "$data"; then
  echo "in sync: $data is a byte-for-byte copy of $shared (corpus excepted)"
  exit 0
fi
echo "DRIFT: $data differs from $shared (above). Copy the changed files again"
echo "(see $data/README.md) and commit them, or fix the shared copy."
exit 1
