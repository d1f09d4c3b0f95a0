#pragma once

#include <cstddef>
#include <string_view>

namespace turnout::proxy {

// Envoy's http_inspector listener filter, sans I/O: what the first bytes of
// a plaintext connection say about its protocol. HTTP/2 when they are the
// client connection preface; HTTP/1 when they start with a well-formed
// request line (method token, target, `HTTP/d.d`, CRLF or LF): `HTTP/1.1`
// is "http/1.1", any other version "http/1.0", as Envoy sets them. Pure;
// any thread.
enum class HttpInspection {
  NeedMore,  // a valid start; the decision needs more bytes
  NotHttp,   // http_inspector.http_not_found: no application protocol
  Http10,
  Http11,
  Http2,
};

HttpInspection inspectHttp(std::string_view first_bytes);

// The application protocol filter_chain_match.application_protocols sees:
// "http/1.0", "http/1.1", "h2c"; empty otherwise.
std::string_view applicationProtocolOf(HttpInspection inspection);

// Envoy's MAX_INSPECT_SIZE: a request line still undecided after this many
// bytes closes the connection (http_inspector.read_error).
inline constexpr size_t kHttpInspectorMaxBytes = 8192;

}  // namespace turnout::proxy
