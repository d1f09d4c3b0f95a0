#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "routing/request_view.h"

namespace turnout::proxy {

// An ordered list of (name, value) header fields, as a codec decodes them or
// as an encoder writes them. Names are stored lowercased (Envoy lowercases
// HTTP/1 keys); values are stored as given. All bytes live in one arena
// string and entries hold offsets into it, so appending never invalidates
// earlier entries and clear() keeps both capacities: one map reused for every
// request on a connection allocates only while it grows.
//
// byteSize() (sum of name and value lengths) and size() are maintained in
// O(1) per operation so codecs can enforce header-block limits cheaply
// (CVE-2019-15226 was O(n^2) accounting). Lookups are linear scans over at
// most a few hundred entries with a length pre-check, which beats hashing at
// this size; codecs cache what they need while parsing.
//
// A field an HTTP/2 peer sent as a never-indexed literal (RFC 7541 §6.2.3:
// a value it wants kept out of every compression context, a credential
// say) keeps that mark here, and turnout's HTTP/2 encoders send it on the
// same way, as the RFC requires of an intermediary. A field set() replaces
// is turnout's own and loses it.
//
// Not thread-safe. string_views returned by accessors are valid until the
// next mutation of the map.
class HeaderMap {
 public:
  struct Entry {
    std::uint32_t name_offset;
    std::uint32_t name_size;
    std::uint32_t value_offset;
    std::uint32_t value_size;  // with kNeverIndexed set for such a field
  };
  // Values are far under 2 GiB (a header block is at most 8 MiB).
  static constexpr std::uint32_t kNeverIndexed = std::uint32_t{1} << 31;

  HeaderMap() = default;
  // A copy takes the live bytes of the arena only; a moved-from map is empty.
  HeaderMap(const HeaderMap& other);
  HeaderMap& operator=(const HeaderMap& other);
  HeaderMap(HeaderMap&& other) noexcept;
  HeaderMap& operator=(HeaderMap&& other) noexcept;

  // Appends a field. `name` is lowercased on the way in.
  void add(std::string_view name, std::string_view value);
  // Appends a field whose name the caller guarantees is already lowercase;
  // `never_indexed`: the peer sent it as a never-indexed literal.
  void addLowercase(std::string_view lower_name, std::string_view value,
                    bool never_indexed = false);
  // Removes every `lower_name` field, then appends one.
  void set(std::string_view lower_name, std::string_view value);
  // Removes every field named `lower_name`; returns how many were removed.
  // The arena bytes are reclaimed by the next clear().
  std::size_t remove(std::string_view lower_name);
  // Removes every field for which pred(name, value) is true.
  template <typename Pred>
  std::size_t removeIf(Pred&& pred);

  // First value of `lower_name`, or a null string_view (data() == nullptr).
  std::string_view get(std::string_view lower_name) const;
  bool has(std::string_view lower_name) const { return get(lower_name).data() != nullptr; }
  std::size_t count(std::string_view lower_name) const;

  // Calls fn(name, value) for every field in order.
  template <typename Fn>
  void forEach(Fn&& fn) const {
    for (const Entry& e : entries_) fn(name(e), value(e));
  }
  // Calls fn(name, value, never_indexed) for every field in order.
  template <typename Fn>
  void forEachMarked(Fn&& fn) const {
    for (const Entry& e : entries_) fn(name(e), value(e), (e.value_size & kNeverIndexed) != 0);
  }

  std::size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // Sum of name and value sizes of the live fields.
  std::size_t byteSize() const { return byte_size_; }
  std::string_view nameAt(std::size_t i) const { return name(entries_[i]); }
  std::string_view valueAt(std::size_t i) const { return value(entries_[i]); }
  bool neverIndexedAt(std::size_t i) const { return (entries_[i].value_size & kNeverIndexed) != 0; }

  // Forgets every field; keeps the arena and entry capacity.
  void clear();
  void reserve(std::size_t fields, std::size_t bytes);

  // Fills `out` (cleared first, capacity reused) with views of every field,
  // for routing::RequestView. Valid until the next mutation of the map.
  void fillEntries(std::vector<routing::HeaderEntry>& out) const;

  bool operator==(const HeaderMap& other) const;

 private:
  std::string_view name(const Entry& e) const {
    return std::string_view(arena_.data() + e.name_offset, e.name_size);
  }
  std::string_view value(const Entry& e) const {
    return std::string_view(arena_.data() + e.value_offset, e.value_size & ~kNeverIndexed);
  }

  // Reserves `n` more bytes at the arena's end; returns where they start.
  char* grow(std::size_t n);

  // The fields' bytes are arena_[0, used_): clear() resets used_ and does
  // not write to the arena (std::string::clear() writes its terminator, a
  // cache line of a map that, in a pooled stream or connection, was last
  // touched hundreds of requests ago).
  std::string arena_;
  std::vector<Entry> entries_;
  std::uint32_t byte_size_ = 0;
  std::uint32_t used_ = 0;
};

template <typename Pred>
std::size_t HeaderMap::removeIf(Pred&& pred) {
  const std::size_t before = entries_.size();
  // Nothing is rewritten before the first field to remove (usually none:
  // set() of a field the message does not have).
  std::size_t kept = 0;
  while (kept < before && !pred(name(entries_[kept]), value(entries_[kept]))) ++kept;
  if (kept == before) return 0;
  byte_size_ -= static_cast<std::uint32_t>(name(entries_[kept]).size() +
                                           value(entries_[kept]).size());  // the first match
  for (std::size_t i = kept + 1; i < before; ++i) {
    const Entry e = entries_[i];
    if (pred(name(e), value(e))) {
      byte_size_ -= static_cast<std::uint32_t>(e.name_size + value(e).size());
    } else {
      entries_[kept++] = e;
    }
  }
  entries_.resize(kept);
  return before - kept;
}

}  // namespace turnout::proxy
