# How turnout's binaries are linked (docs/memory.md "Binary layout").
#
# An idle sidecar's memory is mostly pages of code: the shared libraries'
# relocation tables, symbol tables and text, and turnout's own text, of
# which only a small part ever runs. Two things cut it:
#
# - TURNOUT_STATIC_DEPS: Debian's static archives of protobuf, abseil,
#   OpenSSL, nghttp2, re2, yaml-cpp and Boost.System instead of their shared
#   objects. The linker takes only the objects turnout uses, and there are
#   no per-library relocations, symbol lookups and partly used pages.
#   Debian ships no archive of spdlog and fmt: proxy/spdlog_impl.cc
#   compiles them from their headers. turnout then links libstdc++ and
#   libgcc statically too; only libc, libm and the dynamic loader stay
#   shared.
# - TURNOUT_ORDER_FILE: every function in its own section
#   (-ffunction-sections) and lld's --symbol-ordering-file with
#   proxy/turnout.order, the functions a sidecar runs from start to serving
#   requests (scripts/order-file.sh regenerates it). They sit together at
#   the start of .text instead of spread over 11 MB, so the kernel's
#   fault-around maps them and little else. A function the file does not
#   name (new code, a renamed one) is only placed after them: a stale file
#   costs memory, never correctness.
#
# Both need lld (Debian's lld, scripts/setup.sh), which also resolves static
# archives in any order.

option(TURNOUT_STATIC_DEPS "Link Debian's static archives of the C++ dependencies" ON)
option(TURNOUT_ORDER_FILE "Lay out turnout's text by proxy/turnout.order" ON)
option(TURNOUT_STATIC_LIBC "Link turnout as a static PIE, glibc included (needs TURNOUT_STATIC_DEPS)" ON)
# The sanitizers' runtimes are shared objects: no static executable with them.
if(TURNOUT_STATIC_LIBC AND TURNOUT_STATIC_DEPS AND NOT TURNOUT_SANITIZE)
  set(TURNOUT_STATIC_PIE ON)
else()
  set(TURNOUT_STATIC_PIE OFF)
endif()

if(TURNOUT_STATIC_DEPS OR TURNOUT_ORDER_FILE)
  find_program(TURNOUT_LLD NAMES ld.lld ld.lld-14)
  if(NOT TURNOUT_LLD)
    message(FATAL_ERROR "lld not found (apt-get install lld; scripts/setup.sh does), "
                        "or configure with -DTURNOUT_STATIC_DEPS=OFF -DTURNOUT_ORDER_FILE=OFF")
  endif()
  add_link_options(-fuse-ld=lld)
endif()

if(TURNOUT_ORDER_FILE)
  add_compile_options(-ffunction-sections)
  # Unreferenced functions go (generated protobuf code is kept whole: its
  # archive is linked with --whole-archive and reached through vtables).
  add_link_options(-Wl,--gc-sections)
endif()

# A build tree configured with the other setting has the libraries' paths
# cached: find them again.
if(NOT "${_TURNOUT_STATIC_DEPS_SEEN}" STREQUAL "${TURNOUT_STATIC_DEPS}")
  foreach(_v Protobuf_LIBRARY Protobuf_LIBRARY_RELEASE Protobuf_LIBRARY_DEBUG
             Protobuf_LITE_LIBRARY Protobuf_LITE_LIBRARY_RELEASE Protobuf_LITE_LIBRARY_DEBUG
             Protobuf_PROTOC_LIBRARY Protobuf_PROTOC_LIBRARY_RELEASE Protobuf_PROTOC_LIBRARY_DEBUG
             OPENSSL_SSL_LIBRARY OPENSSL_CRYPTO_LIBRARY)
    unset(${_v} CACHE)
  endforeach()
  set(_TURNOUT_STATIC_DEPS_SEEN "${TURNOUT_STATIC_DEPS}" CACHE INTERNAL "")
endif()

if(TURNOUT_STATIC_DEPS)
  # Read by FindProtobuf, FindOpenSSL and BoostConfig.
  set(Protobuf_USE_STATIC_LIBS ON)
  set(OPENSSL_USE_STATIC_LIBS TRUE)
  set(Boost_USE_STATIC_LIBS ON)
endif()

# The archive beside a shared object: libfoo.so[.N...] -> libfoo.a. Fails the
# configuration when Debian's -dev package did not install it.
function(_turnout_archive_of so out)
  string(REGEX REPLACE "\\.so(\\.[0-9]+)*$" ".a" _a "${so}")
  if(_a STREQUAL so OR NOT EXISTS "${_a}")
    message(FATAL_ERROR "TURNOUT_STATIC_DEPS: no static archive for ${so} "
                        "(install its -dev package, or configure with -DTURNOUT_STATIC_DEPS=OFF)")
  endif()
  set(${out} "${_a}" PARENT_SCOPE)
endfunction()

# Points imported shared-library targets at their static archives.
function(turnout_use_archives)
  if(NOT TURNOUT_STATIC_DEPS)
    return()
  endif()
  foreach(_t IN LISTS ARGN)
    get_target_property(_type ${_t} TYPE)
    if(_type STREQUAL "INTERFACE_LIBRARY")
      # pkg_check_modules(IMPORTED_TARGET): full paths in the link interface.
      get_target_property(_libs ${_t} INTERFACE_LINK_LIBRARIES)
      set(_out "")
      foreach(_l IN LISTS _libs)
        if(_l MATCHES "\\.so(\\.[0-9]+)*$")
          _turnout_archive_of("${_l}" _l)
        endif()
        list(APPEND _out "${_l}")
      endforeach()
      set_target_properties(${_t} PROPERTIES INTERFACE_LINK_LIBRARIES "${_out}")
      continue()
    endif()
    foreach(_p IMPORTED_LOCATION IMPORTED_LOCATION_NONE IMPORTED_LOCATION_RELEASE
               IMPORTED_LOCATION_RELWITHDEBINFO IMPORTED_LOCATION_DEBUG)
      get_target_property(_loc ${_t} ${_p})
      if(_loc AND _loc MATCHES "\\.so(\\.[0-9]+)*$")
        _turnout_archive_of("${_loc}" _a)
        set_target_properties(${_t} PROPERTIES ${_p} "${_a}")
      endif()
    endforeach()
  endforeach()
endfunction()

# Every abseil target of this directory (find_package(absl) defines them here).
function(turnout_use_absl_archives)
  get_directory_property(_imported IMPORTED_TARGETS)
  set(_absl "")
  foreach(_t IN LISTS _imported)
    if(_t MATCHES "^absl::")
      list(APPEND _absl ${_t})
    endif()
  endforeach()
  turnout_use_archives(${_absl})
endfunction()

# turnout's own binary: the ordered layout.
function(turnout_order_text target order_file)
  if(NOT TURNOUT_ORDER_FILE)
    return()
  endif()
  target_link_options(${target} PRIVATE "-Wl,--symbol-ordering-file=${order_file}"
                      -Wl,--no-warn-symbol-ordering)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${order_file}")
endfunction()

# Links `library` (a static library target of this project) wherever the
# imported `targets` are linked, instead of their shared objects; their
# compile definitions and include directories stay as they are.
function(turnout_use_library_for library)
  get_target_property(_dir ${library} BINARY_DIR)
  set(_archive "${_dir}/${CMAKE_STATIC_LIBRARY_PREFIX}${library}${CMAKE_STATIC_LIBRARY_SUFFIX}")
  foreach(_t IN LISTS ARGN)
    foreach(_p IMPORTED_LOCATION IMPORTED_LOCATION_NONE IMPORTED_LOCATION_RELEASE
               IMPORTED_LOCATION_RELWITHDEBINFO IMPORTED_LOCATION_DEBUG)
      get_target_property(_loc ${_t} ${_p})
      if(_loc)
        set_target_properties(${_t} PROPERTIES ${_p} "${_archive}")
      endif()
    endforeach()
    # The target itself, for the build order (it adds no usage requirements).
    set_property(TARGET ${_t} APPEND PROPERTY INTERFACE_LINK_LIBRARIES ${library})
  endforeach()
endfunction()

# libstdc++ and libgcc linked statically into `target`: with
# TURNOUT_STATIC_DEPS it needs no shared C++ library (libc, libm and the
# dynamic loader stay shared), and with TURNOUT_STATIC_LIBC none at all: a
# static PIE. (-static-libstdc++ would switch the linker back to shared
# objects for the libraries after it, so it is not given then; glibc's
# static PIE start-up refuses a run path, so the build tree's is left out.)
function(turnout_static_runtime target)
  if(TURNOUT_STATIC_PIE)
    target_link_options(${target} PRIVATE -static-pie)
    set_target_properties(${target} PROPERTIES SKIP_BUILD_RPATH TRUE)
  elseif(TURNOUT_STATIC_DEPS)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
endfunction()
