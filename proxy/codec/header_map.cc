#include "proxy/codec/header_map.h"

namespace turnout::proxy {
namespace {

char toLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

}  // namespace

HeaderMap::HeaderMap(const HeaderMap& other)
    : arena_(other.arena_.data(), other.used_),
      entries_(other.entries_),
      byte_size_(other.byte_size_),
      used_(other.used_) {}

HeaderMap& HeaderMap::operator=(const HeaderMap& other) {
  if (this != &other) {
    arena_.assign(other.arena_.data(), other.used_);
    entries_ = other.entries_;
    byte_size_ = other.byte_size_;
    used_ = other.used_;
  }
  return *this;
}

HeaderMap::HeaderMap(HeaderMap&& other) noexcept
    : arena_(std::move(other.arena_)),
      entries_(std::move(other.entries_)),
      byte_size_(other.byte_size_),
      used_(other.used_) {
  other.clear();
}

HeaderMap& HeaderMap::operator=(HeaderMap&& other) noexcept {
  if (this != &other) {
    arena_ = std::move(other.arena_);
    entries_ = std::move(other.entries_);
    byte_size_ = other.byte_size_;
    used_ = other.used_;
    other.arena_.clear();
    other.entries_.clear();
    other.clear();
  }
  return *this;
}

char* HeaderMap::grow(std::size_t n) {
  const std::size_t at = used_;
  if (at + n > arena_.size()) arena_.resize(at + n);
  used_ = static_cast<std::uint32_t>(at + n);
  return arena_.data() + at;
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  const std::size_t name_offset = used_;
  char* out = grow(name.size() + value.size());
  for (char c : name) *out++ = toLower(c);
  if (!value.empty()) value.copy(out, value.size());
  entries_.push_back(Entry{static_cast<std::uint32_t>(name_offset),
                           static_cast<std::uint32_t>(name.size()),
                           static_cast<std::uint32_t>(name_offset + name.size()),
                           static_cast<std::uint32_t>(value.size())});
  byte_size_ += static_cast<std::uint32_t>(name.size() + value.size());
}

void HeaderMap::addLowercase(std::string_view lower_name, std::string_view value,
                             bool never_indexed) {
  const std::size_t name_offset = used_;
  char* out = grow(lower_name.size() + value.size());
  if (!lower_name.empty()) lower_name.copy(out, lower_name.size());
  if (!value.empty()) value.copy(out + lower_name.size(), value.size());
  entries_.push_back(
      Entry{static_cast<std::uint32_t>(name_offset), static_cast<std::uint32_t>(lower_name.size()),
            static_cast<std::uint32_t>(name_offset + lower_name.size()),
            static_cast<std::uint32_t>(value.size()) | (never_indexed ? kNeverIndexed : 0)});
  byte_size_ += static_cast<std::uint32_t>(lower_name.size() + value.size());
}

void HeaderMap::set(std::string_view lower_name, std::string_view value) {
  remove(lower_name);
  addLowercase(lower_name, value);
}

std::size_t HeaderMap::remove(std::string_view lower_name) {
  return removeIf([lower_name](std::string_view n, std::string_view) { return n == lower_name; });
}

std::string_view HeaderMap::get(std::string_view lower_name) const {
  for (const Entry& e : entries_) {
    if (e.name_size == lower_name.size() && name(e) == lower_name) {
      const std::string_view v = value(e);
      return v.data() != nullptr ? v : std::string_view("", 0);
    }
  }
  return {};
}

std::size_t HeaderMap::count(std::string_view lower_name) const {
  std::size_t n = 0;
  for (const Entry& e : entries_) {
    if (e.name_size == lower_name.size() && name(e) == lower_name) ++n;
  }
  return n;
}

void HeaderMap::clear() {
  used_ = 0;
  entries_.clear();
  byte_size_ = 0;
}

void HeaderMap::reserve(std::size_t fields, std::size_t bytes) {
  entries_.reserve(fields);
  arena_.reserve(bytes);
}

void HeaderMap::fillEntries(std::vector<routing::HeaderEntry>& out) const {
  out.clear();
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(routing::HeaderEntry{name(e), value(e)});
}

bool HeaderMap::operator==(const HeaderMap& other) const {
  if (size() != other.size()) return false;
  for (std::size_t i = 0; i < size(); ++i) {
    if (nameAt(i) != other.nameAt(i) || valueAt(i) != other.valueAt(i)) return false;
  }
  return true;
}

}  // namespace turnout::proxy
