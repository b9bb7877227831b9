# Installing and packaging (docs/usage.md#install).
#
#   cmake --install build --prefix PREFIX      PREFIX/bin/{sprint-studio, sprint-generate, sprint-train}
#                                               PREFIX/lib/libsprint_spm.so (loaded from ../lib at run time)
#                                               PREFIX/share/sprint-studio/{shaders, models}
#                                               PREFIX/include, PREFIX/lib/*.a and PREFIX/lib/cmake/SprintStudio:
#                                               find_package(SprintStudio) -> SprintStudio::core, ::controlnet
#   cpack --config build/CPackConfig.cmake      a .deb of the same (./bootstrap.sh package)
#
# The programs find their data relative to themselves (app/data_dir.h), so an installed tree needs nothing from the
# source or build folder. The build tree mirrors the layout: build/share/sprint-studio links to shaders/ and
# assets/models/.
#
# LibTorch is not copied: it is the pinned torch wheel's (about 1 GB with its CUDA half, and it comes with the
# wheel's own CUDA libraries). Installed programs keep the path of the LibTorch they were built with in their
# run path (CMAKE_INSTALL_RPATH_USE_LINK_PATH), next to $ORIGIN/../lib.
# lib/, not Debian's multiarch lib/x86_64-linux-gnu: the programs look for libsprint_spm.so in ../lib.
set(CMAKE_INSTALL_LIBDIR lib CACHE PATH "Object code libraries (lib: the programs look in ../lib)")
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The build tree's share/ mirror.
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/share/sprint-studio)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/shaders ${CMAKE_BINARY_DIR}/share/sprint-studio/shaders SYMBOLIC)
file(CREATE_LINK ${PROJECT_SOURCE_DIR}/assets/models ${CMAKE_BINARY_DIR}/share/sprint-studio/models SYMBOLIC)

set(CMAKE_INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
foreach(program sprint-studio sprint-generate sprint-train)
  if(TARGET ${program})
    set_target_properties(${program} PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}"
                                                INSTALL_RPATH_USE_LINK_PATH ON)
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT programs)
  endif()
endforeach()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/shaders/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sprint-studio/shaders
        COMPONENT programs)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/assets/models/ DESTINATION ${CMAKE_INSTALL_DATADIR}/sprint-studio/models
        COMPONENT programs)

# The libraries as a CMake package: SprintStudio::core, ::controlnet (and ::torch, ::settings, which they use).
set_target_properties(sprint_core PROPERTIES EXPORT_NAME core)
set_target_properties(sprint_controlnet PROPERTIES EXPORT_NAME controlnet)
set_target_properties(sprint_torch PROPERTIES EXPORT_NAME torch)
set_target_properties(sprint_settings PROPERTIES EXPORT_NAME settings)
install(TARGETS sprint_core sprint_controlnet sprint_torch sprint_settings EXPORT SprintStudioTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/core/include/ ${PROJECT_SOURCE_DIR}/controlnet/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT development)
install(EXPORT SprintStudioTargets NAMESPACE SprintStudio:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/SprintStudio
        COMPONENT development)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/SprintStudioConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/SprintStudioConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/SprintStudio)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/SprintStudioConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/SprintStudioConfig.cmake ${CMAKE_BINARY_DIR}/SprintStudioConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/SprintStudio COMPONENT development)

# A Debian package of everything above.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sprint-studio)
set(CPACK_PACKAGE_VENDOR "Sprint Studio")
set(CPACK_PACKAGE_CONTACT "Sprint Studio developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Live sketch-to-image with SANA-Sprint and ControlNet")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# The Debian libraries the programs link (LibTorch is not a Debian package: see above).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libpng16-16, libicu72, libopencv-core406, libopencv-imgproc406, libopencv-imgcodecs406, libsentencepiece0, libglfw3, libepoxy0, libgomp1")
include(CPack)
