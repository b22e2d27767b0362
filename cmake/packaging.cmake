# Debian packages with CPack (`cpack -G DEB` in a build configured with PEERDIST_PACKAGES=ON
# and CMAKE_INSTALL_PREFIX=/usr): one package per install component. CPack rather than a
# debian/ folder: the component layout already lives in the install rules, and one tool
# builds the packages from any tree without debhelper's source-package ceremony.
#   libpeerdist0.4      runtime: the library and its plugins
#   libpeerdist-dev     headers, CMake package, peerdist.pc, the unversioned link
#   peerdist-agent      pd and pd-agent, the systemd unit (user peerdist), /etc/peerdist/agent.json
#   peerdist-coordinator pd-coordinator, its unit (user peerdist-coordinator), /etc/peerdist/coordinator.toml
#   python3-peerdist    the Python package
set(PD_SYSCONFDIR /etc)  # Debian's: not under the /usr prefix
set(PD_PACKAGING_DIR ${PROJECT_SOURCE_DIR}/packaging)
set(PD_PACKAGING_OUT ${PROJECT_BINARY_DIR}/packaging)

foreach(unit peerdist-agent peerdist-coordinator)
  configure_file(${PD_PACKAGING_DIR}/${unit}.service.in ${PD_PACKAGING_OUT}/${unit}.service @ONLY)
endforeach()
install(FILES ${PD_PACKAGING_OUT}/peerdist-agent.service DESTINATION lib/systemd/system COMPONENT agent)
install(FILES ${PD_PACKAGING_DIR}/agent.json DESTINATION ${PD_SYSCONFDIR}/peerdist COMPONENT agent)
install(FILES ${PD_PACKAGING_OUT}/peerdist-coordinator.service DESTINATION lib/systemd/system COMPONENT coordinator)
install(FILES ${PD_PACKAGING_DIR}/coordinator.toml DESTINATION ${PD_SYSCONFDIR}/peerdist COMPONENT coordinator)

# Man pages from the programs' own --help (help2man): they cannot drift from the code.
find_program(HELP2MAN help2man REQUIRED)
set(PD_MAN_PAGES)
foreach(program pd pd-agent pd-coordinator)
  set(page ${PD_PACKAGING_OUT}/man/${program}.1)
  add_custom_command(OUTPUT ${page}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${PD_PACKAGING_OUT}/man
    COMMAND ${HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION}
            --name=${program} --output=${page} $<TARGET_FILE:${program}>
    DEPENDS ${program} VERBATIM)
  list(APPEND PD_MAN_PAGES ${page})
endforeach()
add_custom_target(peerdist_man_pages ALL DEPENDS ${PD_MAN_PAGES})
install(FILES ${PD_PACKAGING_OUT}/man/pd.1 ${PD_PACKAGING_OUT}/man/pd-agent.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1
        COMPONENT agent)
install(FILES ${PD_PACKAGING_OUT}/man/pd-coordinator.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT coordinator)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME peerdist)
set(CPACK_PACKAGE_VENDOR "peerdist")
set(CPACK_PACKAGE_CONTACT "peerdist maintainers <maintainers@peerdist.invalid>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_OUTPUT_FILE_PREFIX ${PROJECT_BINARY_DIR}/debs)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev agent coordinator python)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The programs' own library is in another package of this set: dpkg-shlibdeps finds it in
# the build tree (the component dependency below states the package relation).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}/sdk/src)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION net)

set(_pd_so ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libpeerdist${_pd_so})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpeerdist-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_AGENT_PACKAGE_NAME peerdist-agent)
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_NAME peerdist-coordinator)
set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-peerdist)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION "peerdist runtime: the library and its backend plugins")
set(CPACK_COMPONENT_DEV_DESCRIPTION "peerdist development files: C headers, CMake package, pkg-config file")
set(CPACK_COMPONENT_AGENT_DESCRIPTION "peerdist agent: pd and the pd-agent service")
set(CPACK_COMPONENT_COORDINATOR_DESCRIPTION "peerdist coordinator: the pd-coordinator service")
set(CPACK_COMPONENT_PYTHON_DESCRIPTION "peerdist for Python 3")
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_COMPONENT_AGENT_DEPENDS runtime)
set(CPACK_COMPONENT_COORDINATOR_DEPENDS runtime)
set(CPACK_COMPONENT_PYTHON_DEPENDS runtime)
set(CPACK_DEBIAN_AGENT_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3 (>= 3.11), python3 (<< 3.12)")
# Maintainer scripts: the system users, the state folders, systemd; configuration files are
# conffiles (an administrator's edits survive upgrades).
set(PD_CONFFILE_agent agent.json)
set(PD_CONFFILE_coordinator coordinator.toml)
foreach(component agent coordinator)
  string(TOUPPER ${component} upper)
  set(extra)
  foreach(script postinst prerm postrm)
    configure_file(${PD_PACKAGING_DIR}/${component}.${script} ${PD_PACKAGING_OUT}/${component}/${script} @ONLY
                   FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
    list(APPEND extra ${PD_PACKAGING_OUT}/${component}/${script})
  endforeach()
  file(WRITE ${PD_PACKAGING_OUT}/${component}/conffiles "${PD_SYSCONFDIR}/peerdist/${PD_CONFFILE_${component}}\n")
  list(APPEND extra ${PD_PACKAGING_OUT}/${component}/conffiles)
  set(CPACK_DEBIAN_${upper}_PACKAGE_CONTROL_EXTRA ${extra})
endforeach()
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
