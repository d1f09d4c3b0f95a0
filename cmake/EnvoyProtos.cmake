# Envoy v3 API protos: fetched once from the pinned npm tarball
# @grpc/grpc-js-xds@1.14.1 (it vendors envoyproxy/data-plane-api @f8b75d1e,
# the Envoy v1.31 API, plus xds, googleapis and protoc-gen-validate protos),
# verified against its integrity hash, cached in the build tree, patched
# (StringRules.ignore_empty = 26, which protoc 3.21 needs) and compiled for
# the closure of the roots below only.

set(TURNOUT_XDS_NPM_SPEC "@grpc/grpc-js-xds@1.14.1")
set(TURNOUT_XDS_TARBALL_NAME "grpc-grpc-js-xds-1.14.1.tgz")
# npm integrity sha512-F2mVXwEeMWw1znPUrp+8ykjsIOVnf7Rv+EyIvXOfz73w5tNolCnzokpLkE/d2Ehx30PJmZXqCQdMpx8DcBJohA==
set(TURNOUT_XDS_TARBALL_SHA512
    "1769955f011e316c35ce73d4ae9fbcca48ec20e5677fb46ff84c88bd739fcfbdf0e6d3689429f3a24a4b904fddd84871df43c99995ea09074ca71f0370126884")

set(_deps "${CMAKE_BINARY_DIR}/_deps")
set(_tarball "${_deps}/${TURNOUT_XDS_TARBALL_NAME}")
set(_src "${_deps}/envoy_protos_src")
set(_gen "${CMAKE_BINARY_DIR}/envoy_protos")

function(_turnout_verify_tarball path out_ok)
  file(SHA512 "${path}" _got)
  if(_got STREQUAL TURNOUT_XDS_TARBALL_SHA512)
    set(${out_ok} TRUE PARENT_SCOPE)
  else()
    set(${out_ok} FALSE PARENT_SCOPE)
  endif()
endfunction()

set(_ok FALSE)
if(EXISTS "${_tarball}")
  _turnout_verify_tarball("${_tarball}" _ok)
  if(NOT _ok)
    message(WARNING "Cached ${_tarball} fails its integrity check; fetching it again")
    file(REMOVE "${_tarball}")
  endif()
endif()
if(NOT _ok)
  find_program(NPM_PROGRAM npm)
  if(NOT NPM_PROGRAM)
    message(FATAL_ERROR "npm is needed once to fetch the Envoy API protos "
                        "(${TURNOUT_XDS_NPM_SPEC}); install it (scripts/setup.sh does).")
  endif()
  file(MAKE_DIRECTORY "${_deps}")
  message(STATUS "Fetching ${TURNOUT_XDS_NPM_SPEC} with npm pack")
  execute_process(
    COMMAND "${NPM_PROGRAM}" pack "${TURNOUT_XDS_NPM_SPEC}" --pack-destination "${_deps}"
            --silent --no-fund --no-audit
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _err TIMEOUT 300)
  if(NOT _rc EQUAL 0 OR NOT EXISTS "${_tarball}")
    message(FATAL_ERROR
      "Could not fetch the Envoy API protos: 'npm pack ${TURNOUT_XDS_NPM_SPEC}' failed "
      "(exit ${_rc}). The npm registry must be reachable for the first configure; "
      "afterwards the tarball is cached at ${_tarball}.\n${_err}")
  endif()
  _turnout_verify_tarball("${_tarball}" _ok)
  if(NOT _ok)
    file(REMOVE "${_tarball}")
    message(FATAL_ERROR "${TURNOUT_XDS_TARBALL_NAME} does not match its pinned sha512; refusing to use it")
  endif()
endif()

# Extract and patch once per tarball.
set(_stamp "${_src}/.stamp-${TURNOUT_XDS_TARBALL_SHA512}")
if(NOT EXISTS "${_stamp}")
  file(REMOVE_RECURSE "${_src}")
  file(MAKE_DIRECTORY "${_src}/x")
  file(ARCHIVE_EXTRACT INPUT "${_tarball}" DESTINATION "${_src}/x")
  foreach(_d envoy-api xds googleapis protoc-gen-validate)
    file(COPY "${_src}/x/package/deps/${_d}/" DESTINATION "${_src}/root")
  endforeach()
  file(REMOVE_RECURSE "${_src}/x")
  set(_vp "${_src}/root/validate/validate.proto")
  file(READ "${_vp}" _v)
  string(FIND "${_v}" "ignore_empty = 26" _has)
  if(_has EQUAL -1)
    string(REPLACE "message StringRules {" "message StringRules {\n    optional bool ignore_empty = 26;" _v "${_v}")
    file(WRITE "${_vp}" "${_v}")
  endif()
  file(TOUCH "${_stamp}")
endif()

# The closure of the roots, by following imports (WKTs come from libprotobuf-dev).
set(TURNOUT_PROTO_ROOTS
  envoy/config/bootstrap/v3/bootstrap.proto
  envoy/service/discovery/v3/ads.proto
  envoy/service/listener/v3/lds.proto
  envoy/service/route/v3/rds.proto
  envoy/service/cluster/v3/cds.proto
  envoy/service/endpoint/v3/eds.proto
  envoy/admin/v3/config_dump.proto
  envoy/admin/v3/server_info.proto
  envoy/admin/v3/clusters.proto
  envoy/admin/v3/listeners.proto
  envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto
  envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto
  envoy/extensions/filters/http/router/v3/router.proto
  envoy/extensions/filters/http/health_check/v3/health_check.proto
  envoy/extensions/filters/http/grpc_stats/v3/config.proto
  envoy/extensions/filters/http/grpc_web/v3/grpc_web.proto
  envoy/extensions/filters/http/cors/v3/cors.proto
  envoy/extensions/transport_sockets/tls/v3/tls.proto
  envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto
  envoy/extensions/upstreams/http/v3/http_protocol_options.proto
  envoy/extensions/filters/listener/original_dst/v3/original_dst.proto
  envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto
  envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto
  envoy/extensions/access_loggers/file/v3/file.proto
  envoy/extensions/access_loggers/stream/v3/stream.proto
  envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto
)
set(_own_root "${CMAKE_SOURCE_DIR}/proto")
set(TURNOUT_OWN_PROTOS
  turnout/extensions/filters/http/routing_key/v3/routing_key.proto
)

set(_closure "")
set(_queue ${TURNOUT_PROTO_ROOTS} ${TURNOUT_OWN_PROTOS})
while(_queue)
  list(POP_FRONT _queue _p)
  if(_p IN_LIST _closure OR _p MATCHES "^google/protobuf/")
    continue()
  endif()
  if(EXISTS "${_src}/root/${_p}")
    set(_file "${_src}/root/${_p}")
  elseif(EXISTS "${_own_root}/${_p}")
    set(_file "${_own_root}/${_p}")
  else()
    message(FATAL_ERROR "proto import not found: ${_p}")
  endif()
  list(APPEND _closure "${_p}")
  file(STRINGS "${_file}" _imports REGEX "^import ")
  foreach(_i IN LISTS _imports)
    if(_i MATCHES "\"([^\"]+)\"")
      list(APPEND _queue "${CMAKE_MATCH_1}")
    endif()
  endforeach()
endwhile()
list(SORT _closure)
list(LENGTH _closure _n)
message(STATUS "Envoy API proto closure: ${_n} files")

set(_srcs "")
set(_hdrs "")
set(_inputs "")
foreach(_p IN LISTS _closure)
  string(REGEX REPLACE "\\.proto$" "" _b "${_p}")
  list(APPEND _srcs "${_gen}/${_b}.pb.cc")
  list(APPEND _hdrs "${_gen}/${_b}.pb.h")
  if(EXISTS "${_src}/root/${_p}")
    list(APPEND _inputs "${_src}/root/${_p}")
  else()
    list(APPEND _inputs "${_own_root}/${_p}")
  endif()
endforeach()

file(MAKE_DIRECTORY "${_gen}")
add_custom_command(
  OUTPUT ${_srcs} ${_hdrs}
  COMMAND protobuf::protoc --cpp_out=${_gen} -I${_src}/root -I${_own_root}
          -I${Protobuf_INCLUDE_DIR} ${_closure}
  DEPENDS ${_inputs}
  COMMENT "protoc: ${_n} Envoy API protos"
  VERBATIM)

add_library(turnout_envoy_protos_pb STATIC ${_srcs})
target_include_directories(turnout_envoy_protos_pb SYSTEM PUBLIC "${_gen}")
target_link_libraries(turnout_envoy_protos_pb PUBLIC protobuf::libprotobuf)
# Generated code: no warnings-as-errors, light optimisation keeps the build fast.
target_compile_options(turnout_envoy_protos_pb PRIVATE -w -O1 -g0)
# Linked whole: extensions are resolved by type URL through the generated descriptor
# pool, so every message must be registered even if no code names it (a plain static
# link would drop e.g. tls_inspector.pb.o and `@type` lookups would then fail).
add_library(turnout_envoy_protos INTERFACE)
target_link_libraries(turnout_envoy_protos INTERFACE
  "$<LINK_LIBRARY:WHOLE_ARCHIVE,turnout_envoy_protos_pb>")
set(TURNOUT_ENVOY_PROTO_SOURCE_DIR "${_src}/root" CACHE INTERNAL "")

# The same closure as Python modules, for the integration tests' own xDS
# management server (tests/integration/support/ads_server.py, python3-grpcio).
set(_gen_py "${CMAKE_BINARY_DIR}/envoy_protos_py")
set(_py_stamp "${_gen_py}/.stamp")
add_custom_command(
  OUTPUT ${_py_stamp}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${_gen_py}
  COMMAND protobuf::protoc --python_out=${_gen_py} -I${_src}/root -I${_own_root}
          -I${Protobuf_INCLUDE_DIR} ${_closure}
  COMMAND ${CMAKE_COMMAND} -E touch ${_py_stamp}
  DEPENDS ${_inputs}
  COMMENT "protoc: ${_n} Envoy API protos for Python (tests)"
  VERBATIM)
add_custom_target(turnout_envoy_protos_py ALL DEPENDS ${_py_stamp})
set(TURNOUT_ENVOY_PROTOS_PY_DIR "${_gen_py}" CACHE INTERNAL "")
