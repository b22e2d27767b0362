# Cross build for x64 Windows with Debian's MinGW-w64 (posix threads), docs/windows.md.
# The compiled dependencies come from scripts/windows_deps.sh: pass its prefix as
# -DPD_WINDOWS_DEPS=DIR (or the PD_WINDOWS_DEPS environment variable). Test programs run
# under Wine (cmake/wine-run.sh) wherever CMake or CTest runs them.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc-posix)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++-posix)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)

if(NOT PD_WINDOWS_DEPS AND DEFINED ENV{PD_WINDOWS_DEPS})
  set(PD_WINDOWS_DEPS "$ENV{PD_WINDOWS_DEPS}")
endif()
if(NOT PD_WINDOWS_DEPS)
  set(PD_WINDOWS_DEPS "$ENV{HOME}/.cache/peerdist/windows-deps")
endif()
set(PD_WINDOWS_DEPS "${PD_WINDOWS_DEPS}" CACHE PATH "Prefix of the Windows dependencies (scripts/windows_deps.sh)")
# try_compile projects see the same toolchain file: hand them the prefix too.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES PD_WINDOWS_DEPS)

# Only the MinGW sysroot and the dependency prefix: never the build machine's /usr.
set(CMAKE_FIND_ROOT_PATH /usr/x86_64-w64-mingw32 "${PD_WINDOWS_DEPS}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR "${CMAKE_CURRENT_LIST_DIR}/wine-run.sh")

# How the project's find_package calls see the prefix: Boost headers through its include
# folder (FindBoost, not the build machine's BoostConfig), static OpenSSL, pkg-config's
# libsodium.pc from the prefix only.
set(BOOST_ROOT "${PD_WINDOWS_DEPS}")
set(Boost_NO_BOOST_CMAKE ON)
set(OPENSSL_ROOT_DIR "${PD_WINDOWS_DEPS}")
set(OPENSSL_USE_STATIC_LIBS TRUE)
set(ENV{PKG_CONFIG_LIBDIR} "${PD_WINDOWS_DEPS}/lib/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
# Static runtime: the programs and DLLs carry libstdc++, libgcc and winpthread inside.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")
