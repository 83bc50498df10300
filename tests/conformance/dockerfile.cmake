# Dockerfile parser conformance: BuildKit v0.10.6's parser test files and its
# helper-level heredoc/line-parser cases, from the in-repo copy
# (${KILN_CONFORMANCE_DIR}/dockerfile), and the 850-file third-party corpus,
# read in place from ${KILN_CONFORMANCE_CORPUS} and skipped when missing.
add_executable(kiln-dockerfile-conformance dockerfile_conformance.cc)
target_link_libraries(kiln-dockerfile-conformance PRIVATE kiln_dockerfile_parser)

add_test(NAME conformance_dockerfile_parser
  COMMAND kiln-dockerfile-conformance parser ${KILN_CONFORMANCE_DIR}/dockerfile)
add_test(NAME conformance_dockerfile_heredoc
  COMMAND kiln-dockerfile-conformance heredoc ${KILN_CONFORMANCE_DIR}/dockerfile/heredoc-cases.json)
add_test(NAME conformance_dockerfile_corpus
  COMMAND kiln-dockerfile-conformance corpus ${KILN_CONFORMANCE_CORPUS})
set_tests_properties(conformance_dockerfile_parser conformance_dockerfile_heredoc
  conformance_dockerfile_corpus PROPERTIES LABELS conformance)
# The driver exits 77, after printing the path it looked for, without a corpus.
set_tests_properties(conformance_dockerfile_corpus PROPERTIES SKIP_RETURN_CODE 77)
