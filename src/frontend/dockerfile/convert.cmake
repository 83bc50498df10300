# The converter: Dockerfile + attributes -> graph, config template, record.
add_library(kiln_dockerfile convert.cc)
target_include_directories(kiln_dockerfile PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(kiln_dockerfile
  PUBLIC kiln_dockerfile_instructions kiln_dockerfile_parser kiln_dockerfile_shell kiln_graph
         kiln_image kiln_buildinfo kiln_util)

kiln_add_test(dockerfile_convert_test unit
  SOURCES convert_test.cc
  LIBS kiln_dockerfile
  PREFIX "convert.")
