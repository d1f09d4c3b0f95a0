#include "proxy/listener/http_inspector.h"

#include <algorithm>

namespace turnout::proxy {
namespace {

constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// RFC 9110 §5.6.2 tchar.
bool isTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

HttpInspection inspectHttp(std::string_view d) {
  if (d.empty()) return HttpInspection::NeedMore;
  const size_t head = std::min(d.size(), kHttp2Preface.size());
  if (d.substr(0, head) == kHttp2Preface.substr(0, head)) {
    return d.size() < kHttp2Preface.size() ? HttpInspection::NeedMore : HttpInspection::Http2;
  }
  // method SP request-target SP HTTP/d.d (CR) LF
  size_t i = 0;
  while (i < d.size() && isTchar(d[i])) ++i;
  if (i == d.size()) return HttpInspection::NeedMore;
  if (i == 0 || d[i] != ' ') return HttpInspection::NotHttp;
  const size_t target = ++i;
  while (i < d.size() && static_cast<unsigned char>(d[i]) > 0x20 && d[i] != 0x7f) ++i;
  if (i == d.size()) return HttpInspection::NeedMore;
  if (i == target || d[i] != ' ') return HttpInspection::NotHttp;
  ++i;
  constexpr std::string_view kVersion = "HTTP/d.d";
  for (size_t k = 0; k < kVersion.size(); ++k, ++i) {
    if (i == d.size()) return HttpInspection::NeedMore;
    const bool ok = kVersion[k] == 'd' ? isDigit(d[i]) : d[i] == kVersion[k];
    if (!ok) return HttpInspection::NotHttp;
  }
  if (i == d.size()) return HttpInspection::NeedMore;
  if (d[i] == '\r') {
    if (++i == d.size()) return HttpInspection::NeedMore;
  }
  if (d[i] != '\n') return HttpInspection::NotHttp;
  const std::string_view version = d.substr(i - (d[i - 1] == '\r' ? 4 : 3), 3);
  return version == "1.1" ? HttpInspection::Http11 : HttpInspection::Http10;
}

std::string_view applicationProtocolOf(HttpInspection inspection) {
  switch (inspection) {
    case HttpInspection::Http10: return "http/1.0";
    case HttpInspection::Http11: return "http/1.1";
    case HttpInspection::Http2: return "h2c";
    default: return {};
  }
}

}  // namespace turnout::proxy
