#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace turnout::routing {

// One request header as the codec saw it. `name` is lowercase (HTTP/1 names
// are lowercased by the codec, HTTP/2 names arrive lowercase); `value` is the
// raw field value with surrounding whitespace already trimmed.
struct HeaderEntry {
  std::string_view name;
  std::string_view value;
};

// A read-only view of a request, the only input the routing layer takes.
// Built by the proxy's ActiveStream (or by tests) over storage it owns; all
// views stay valid for as long as the caller keeps that storage alive, which
// must cover the routing call. Not thread-safe to build, safe to read.
//
// Pseudo-headers are held apart from `headers` and are looked up under their
// HTTP/2 names (":authority", ":path", ":method", ":scheme"), as Envoy does.
class RequestView {
 public:
  RequestView() = default;
  RequestView(std::string_view method, std::string_view authority, std::string_view path,
              std::span<const HeaderEntry> headers, std::string_view scheme = "http")
      : method_(method), authority_(authority), path_(path), scheme_(scheme), headers_(headers) {}

  std::string_view method() const { return method_; }
  std::string_view authority() const { return authority_; }
  // The request target as sent, query and fragment included.
  std::string_view path() const { return path_; }
  std::string_view scheme() const { return scheme_; }
  std::span<const HeaderEntry> headers() const { return headers_; }

  // Calls fn(value) for every value of header `lower_name` in arrival order,
  // pseudo-headers included. `lower_name` must be lowercase.
  template <typename Fn>
  void forEachValue(std::string_view lower_name, Fn&& fn) const {
    if (!lower_name.empty() && lower_name.front() == ':') {
      if (auto v = pseudo(lower_name); v.data() != nullptr) fn(v);
      return;
    }
    for (const HeaderEntry& h : headers_) {
      if (h.name == lower_name) fn(h.value);
    }
  }

  // True if the header is present at least once.
  bool has(std::string_view lower_name) const {
    bool found = false;
    forEachValue(lower_name, [&](std::string_view) { found = true; });
    return found;
  }

  // The first value, or a null string_view (data() == nullptr) if absent.
  std::string_view first(std::string_view lower_name) const {
    std::string_view out;
    bool found = false;
    forEachValue(lower_name, [&](std::string_view v) {
      if (!found) {
        out = v.data() ? v : std::string_view("", 0);
        found = true;
      }
    });
    return out;
  }

  // All values joined with "," (Envoy's rule for header matchers on repeated
  // headers). Returns false if the header is absent. `scratch` is reused to
  // avoid allocating when there is a single value; `out` may point into it.
  bool joined(std::string_view lower_name, std::string& scratch, std::string_view& out) const {
    int count = 0;
    forEachValue(lower_name, [&](std::string_view v) {
      if (count == 0) {
        out = v;
      } else {
        if (count == 1) scratch.assign(out);
        scratch.push_back(',');
        scratch.append(v);
        out = scratch;
      }
      ++count;
    });
    if (count > 0 && out.data() == nullptr) out = std::string_view("", 0);
    return count > 0;
  }

 private:
  std::string_view pseudo(std::string_view n) const {
    // A pseudo-header whose view is null (default-constructed) is absent.
    if (n == ":authority") return authority_;
    if (n == ":path") return path_;
    if (n == ":method") return method_;
    if (n == ":scheme") return scheme_;
    return {};
  }

  std::string_view method_;
  std::string_view authority_;
  std::string_view path_;
  std::string_view scheme_;
  std::span<const HeaderEntry> headers_;
};

}  // namespace turnout::routing
