# Debian packages: cpack -G DEB in the build directory (docs/install.md).
# Included from the top-level CMakeLists.txt after every install() rule.
set(CPACK_PACKAGE_NAME breaker)
set(CPACK_PACKAGE_VERSION ${BK_VERSION})
set(CPACK_PACKAGE_CONTACT "breaker maintainers <breaker@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "kill switch and circuit breaker daemon for trading engines")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr) # what CMAKE_INSTALL_PREFIX is under CPACK_SET_DESTDIR
# DESTDIR staging: /etc/breaker stays /etc/breaker in the package, and the
# unit's paths are written for CMAKE_INSTALL_PREFIX=/usr.
set(CPACK_SET_DESTDIR ON)
set(CPACK_GENERATOR DEB)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL daemon dev python)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME breaker)
set(CPACK_DEBIAN_DAEMON_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "adduser")
set(CPACK_COMPONENT_DAEMON_DESCRIPTION
    "kill switch and circuit breaker daemon for trading engines\n breakerd holds the halt state in shared memory; the breaker CLI trips, kills\n and resumes; every change is in a durable, hash-chained audit log.")
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
    ${CMAKE_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DEV_PACKAGE_NAME breaker-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "breaker engine client for C and C++ (header-only)\n breaker_client.h and its pkg-config file breaker-client.")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-breaker)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3 (>= 3.11)")
set(CPACK_COMPONENT_PYTHON_DESCRIPTION
    "breaker engine client for Python 3 (standard library only)\n Reads the shared-memory halt state and writes telemetry.")

include(CPack)
