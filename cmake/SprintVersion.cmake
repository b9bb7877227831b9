# -> target sprint_version_header: generated/sprint_version.h (SPRINT_VERSION, SPRINT_GIT_COMMIT), refreshed at
# every build so --version never reports a stale commit (cmake/write_version.cmake). Used by core/src/version.cpp.
set(SPRINT_VERSION_HEADER ${CMAKE_BINARY_DIR}/generated/sprint_version.h)
add_custom_target(sprint_version_header
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR} -DOUT=${SPRINT_VERSION_HEADER} -DVERSION=${PROJECT_VERSION}
          -P ${PROJECT_SOURCE_DIR}/cmake/write_version.cmake
  BYPRODUCTS ${SPRINT_VERSION_HEADER}
  COMMENT "Version header (git commit)")
