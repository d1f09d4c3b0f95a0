#include "routing/baggage.h"

namespace turnout::routing {
namespace {

bool isOws(char c) { return c == ' ' || c == '\t'; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trimLeftOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  return s;
}

// RFC 7230 §3.2.6 tchar.
bool isTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

// %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
bool isBaggageOctet(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return c == 0x21 || (c >= 0x23 && c <= 0x2B) || (c >= 0x2D && c <= 0x3A) ||
         (c >= 0x3C && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits `s` (already OWS-trimmed, non-empty) as `token OWS "=" OWS value`.
// Returns false if it does not match; `value` is not validated.
bool splitKeyValue(std::string_view s, std::string_view& key, std::string_view& value) {
  std::size_t i = 0;
  while (i < s.size() && isTchar(s[i])) ++i;
  if (i == 0) return false;
  key = s.substr(0, i);
  std::string_view rest = trimLeftOws(s.substr(i));
  if (rest.empty() || rest.front() != '=') return false;
  value = trimLeftOws(rest.substr(1));
  return true;
}

bool allBaggageOctets(std::string_view v) {
  for (char c : v) {
    if (!isBaggageOctet(c)) return false;
  }
  return true;
}

// property = key OWS "=" OWS value / key OWS. `p` is OWS-trimmed.
bool validProperty(std::string_view p) {
  if (p.empty()) return false;
  std::size_t i = 0;
  while (i < p.size() && isTchar(p[i])) ++i;
  if (i == 0) return false;
  if (i == p.size()) return true;
  std::string_view k;
  std::string_view v;
  return splitKeyValue(p, k, v) && allBaggageOctets(v);
}

// Parses one comma-delimited item. Returns kNone with `empty` set for an
// empty or whitespace-only item.
BaggageError parseMember(std::string_view item, BaggageMember& out, bool& empty) {
  item = trimOws(item);
  empty = item.empty();
  if (empty) return BaggageError::kNone;
  const std::size_t semi = item.find(';');
  const std::string_view head = trimOws(item.substr(0, semi));
  if (!splitKeyValue(head, out.key, out.raw_value) || !allBaggageOctets(out.raw_value)) {
    return BaggageError::kMalformed;
  }
  out.properties = {};
  if (semi == std::string_view::npos) return BaggageError::kNone;
  out.properties = trimOws(item.substr(semi + 1));
  std::string_view props = item.substr(semi + 1);
  while (true) {
    const std::size_t next = props.find(';');
    if (!validProperty(trimOws(props.substr(0, next)))) return BaggageError::kMalformed;
    if (next == std::string_view::npos) break;
    props.remove_prefix(next + 1);
  }
  return BaggageError::kNone;
}

// Checks the limits and the ABNF of every line, calling fn(member) for each
// non-empty member in order. Stops at the first error.
template <typename Fn>
BaggageError forEachMember(std::span<const std::string_view> lines, Fn&& fn) {
  std::size_t bytes = 0;
  for (std::string_view line : lines) bytes += line.size();
  if (!lines.empty()) bytes += lines.size() - 1;
  if (bytes > kMaxBaggageBytes) return BaggageError::kTooLarge;

  std::size_t count = 0;
  BaggageMember member;
  for (std::string_view line : lines) {
    while (true) {
      const std::size_t comma = line.find(',');
      bool empty = false;
      if (BaggageError e = parseMember(line.substr(0, comma), member, empty);
          e != BaggageError::kNone) {
        return e;
      }
      if (!empty) {
        if (++count > kMaxBaggageMembers) return BaggageError::kTooManyMembers;
        fn(member);
      }
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
  }
  return BaggageError::kNone;
}

bool validEscapes(std::string_view raw) {
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') continue;
    if (raw.size() - i < 3 || hexValue(raw[i + 1]) < 0 || hexValue(raw[i + 2]) < 0) return false;
    i += 2;
  }
  return true;
}

// True if `raw` is a valid encoding whose decoded form equals `decoded`.
bool decodesTo(std::string_view raw, std::string_view decoded) {
  std::size_t j = 0;
  for (std::size_t i = 0; i < raw.size(); ++i, ++j) {
    char c = raw[i];
    if (c == '%') {
      if (raw.size() - i < 3) return false;
      const int hi = hexValue(raw[i + 1]);
      const int lo = hexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (j >= decoded.size() || decoded[j] != c) return false;
  }
  return j == decoded.size();
}

}  // namespace

std::string_view baggageErrorName(BaggageError error) {
  switch (error) {
    case BaggageError::kNone: return "none";
    case BaggageError::kMalformed: return "malformed";
    case BaggageError::kTooLarge: return "too_large";
    case BaggageError::kTooManyMembers: return "too_many_members";
    case BaggageError::kBadPercentEncoding: return "bad_percent_encoding";
    case BaggageError::kConflictingMembers: return "conflicting_members";
  }
  return "unknown";
}

BaggageError parseBaggage(std::span<const std::string_view> lines,
                          std::vector<BaggageMember>& members) {
  return forEachMember(lines, [&](const BaggageMember& m) { members.push_back(m); });
}

bool decodeBaggageValue(std::string_view raw, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '%') {
      out.push_back(raw[i]);
      continue;
    }
    if (raw.size() - i < 3) return false;
    const int hi = hexValue(raw[i + 1]);
    const int lo = hexValue(raw[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

BaggageLookup findBaggageMember(std::span<const std::string_view> lines, std::string_view key,
                                std::string& scratch) {
  BaggageLookup result;
  BaggageError member_error = BaggageError::kNone;
  const BaggageError error = forEachMember(lines, [&](const BaggageMember& m) {
    if (m.key != key || member_error != BaggageError::kNone) return;
    if (!result.found) {
      if (m.raw_value.find('%') == std::string_view::npos) {
        result.value = m.raw_value;
      } else if (decodeBaggageValue(m.raw_value, scratch)) {
        result.value = scratch;
      } else {
        member_error = BaggageError::kBadPercentEncoding;
        return;
      }
      result.found = true;
    } else if (!decodesTo(m.raw_value, result.value)) {
      // A different value, or a duplicate with a bad escape: either way the
      // key has no single well-defined value.
      member_error = validEscapes(m.raw_value) ? BaggageError::kConflictingMembers
                                               : BaggageError::kBadPercentEncoding;
    }
  });
  result.error = error != BaggageError::kNone ? error : member_error;
  if (result.error != BaggageError::kNone) {
    result.found = false;
    result.value = {};
  }
  return result;
}

BaggageAppend appendBaggageMember(std::span<const std::string_view> lines, std::string_view key,
                                  std::string_view value, std::string& out) {
  std::size_t members = 0;
  if (!lines.empty()) {
    // `out` doubles as the lookup's scratch: it is overwritten below.
    const BaggageLookup existing = findBaggageMember(lines, key, out);
    switch (existing.error) {
      case BaggageError::kNone: break;
      case BaggageError::kTooLarge: return BaggageAppend::kTooLarge;
      case BaggageError::kTooManyMembers: return BaggageAppend::kTooManyMembers;
      case BaggageError::kMalformed: return BaggageAppend::kMalformed;
      case BaggageError::kBadPercentEncoding:
      case BaggageError::kConflictingMembers: return BaggageAppend::kAlreadyPresent;
    }
    if (existing.found) return BaggageAppend::kAlreadyPresent;
    // Well-formed: a comma only ever separates members.
    for (std::string_view line : lines) {
      while (true) {
        const std::size_t comma = line.find(',');
        if (!trimOws(line.substr(0, comma)).empty()) ++members;
        if (comma == std::string_view::npos) break;
        line.remove_prefix(comma + 1);
      }
    }
  }
  if (members + 1 > kMaxBaggageMembers) return BaggageAppend::kTooManyMembers;
  out.clear();
  for (std::string_view line : lines) {
    line = trimOws(line);
    if (line.empty()) continue;
    if (!out.empty()) out += ',';
    out += line;
  }
  if (out.size() + (out.empty() ? 0 : 1) + key.size() + 1 + value.size() > kMaxBaggageBytes) {
    return BaggageAppend::kTooLarge;
  }
  if (!out.empty()) out += ',';
  out += key;
  out += '=';
  out += value;
  return BaggageAppend::kAppended;
}

}  // namespace turnout::routing
