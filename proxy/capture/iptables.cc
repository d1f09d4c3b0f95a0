#include "proxy/capture/iptables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace turnout::proxy::capture {
namespace {

constexpr absl::string_view kUsage = R"(USAGE: turnout iptables [options]

Writes the nat-table rules that capture a pod's TCP traffic for its turnout
sidecar: outbound to --proxy-port, inbound to --inbound-capture-port. Run it
as root (or with CAP_NET_ADMIN) in the pod's network namespace, e.g. from an
init container. See docs/capture.md.

      --proxy-port <port>             outbound capture port (default 15001)
      --inbound-capture-port <port>   inbound capture port (default 15006)
      --admin-port <port>             the proxy's admin port, never captured
                                      inbound (default 15000)
      --proxy-uid <uid,...>           the proxy's UIDs: their traffic is not
                                      captured (default 1337)
      --proxy-gid <gid,...>           the proxy's GIDs, likewise (default 1337)
      --inbound-ports <ports|*>       inbound ports to capture; * = all, "" =
                                      none (default *)
      --exclude-inbound-ports <ports> inbound ports not captured (default
                                      15090,15021,15020); the proxy, inbound
                                      capture and admin ports are always exempt
      --outbound-ports <ports|*>      outbound destination ports to capture;
                                      * = all, "" = none (default *)
      --exclude-outbound-ports <ports>
                                      outbound destination ports not captured
                                      (default none)
      --include-outbound-cidrs <cidrs|*>
                                      outbound destinations to capture; * = all,
                                      "" = none (default *)
      --exclude-outbound-cidrs <cidrs>
                                      outbound destinations not captured
                                      (default none; 127.0.0.1/32 and ::1/128
                                      are always exempt)
      --ipv6                          also write ip6tables rules (IPv6 CIDRs
                                      need it), and add ::6/128 to lo (the
                                      IPv6 inbound passthrough source)
      --iptables-backend <auto|nft|legacy>
                                      auto: the backend that holds turnout's
                                      rules, else the one with any rules, else
                                      the system's `iptables` (default auto)
      --dry-run                       print the rules (iptables-restore input)
                                      and change nothing; with --cleanup, print
                                      what would be removed
      --cleanup                       remove turnout's chains and jumps (both
                                      families) and the ::6/128 it added to
                                      lo, nothing else
  -h, --help                          this text

Lists are comma-separated. Re-running replaces turnout's rules in one
iptables-restore --noflush transaction, so each rule exists once.
Exit status: 0 done; 1 iptables could not be read or changed; 2 bad usage
(an unknown option or a bad value; the message names the option).
)";

absl::Status usageError(absl::string_view option, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(option, ": ", message));
}

absl::StatusOr<uint16_t> parsePort(absl::string_view option, absl::string_view text) {
  uint32_t v = 0;
  bool digits = !text.empty() && text.size() <= 5 &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !absl::SimpleAtoi(text, &v) || v < 1 || v > 65535) {
    return usageError(option, absl::StrCat("'", text, "' is not a port (1-65535)"));
  }
  return static_cast<uint16_t>(v);
}

// Splits a comma-separated list; items are trimmed, and an empty item is an
// error unless the whole list is empty.
absl::StatusOr<std::vector<std::string>> splitList(absl::string_view option,
                                                   absl::string_view text) {
  std::vector<std::string> items;
  if (absl::StripAsciiWhitespace(text).empty()) return items;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    item = absl::StripAsciiWhitespace(item);
    if (item.empty()) return usageError(option, absl::StrCat("empty item in '", text, "'"));
    items.emplace_back(item);
  }
  return items;
}

// A list that is "*" (everything: `all`; only where allow_all) or items that
// `parse` turns into values, appended to `values` once each, first seen first.
template <typename T, typename Parse>
absl::Status parseSet(absl::string_view option, absl::string_view text, bool allow_all, bool& all,
                      std::vector<T>& values, Parse parse) {
  auto items = splitList(option, text);
  if (!items.ok()) return items.status();
  for (const auto& item : *items) {
    if (item == "*") {
      if (!allow_all) return usageError(option, "'*' is not allowed here");
      if (items->size() != 1) return usageError(option, "'*' must be the only item");
      all = true;
      return absl::OkStatus();
    }
    absl::StatusOr<T> value = parse(option, item);
    if (!value.ok()) return value.status();
    if (std::find(values.begin(), values.end(), *value) == values.end()) {
      values.push_back(*std::move(value));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PortSet> parsePortSet(absl::string_view option, absl::string_view text,
                                     bool allow_all) {
  PortSet set;
  if (auto s = parseSet(option, text, allow_all, set.all, set.ports, parsePort); !s.ok()) return s;
  return set;
}

absl::StatusOr<std::vector<uint32_t>> parseIds(absl::string_view option, absl::string_view text) {
  auto items = splitList(option, text);
  if (!items.ok()) return items.status();
  if (items->empty()) {
    return usageError(option, "needs at least one id (the proxy's traffic must be exempt)");
  }
  std::vector<uint32_t> ids;
  for (const auto& item : *items) {
    uint32_t v = 0;
    bool digits = item.size() <= 10 && std::all_of(item.begin(), item.end(), [](char c) {
                    return c >= '0' && c <= '9';
                  });
    if (!digits || !absl::SimpleAtoi(item, &v) || v == 4294967295u) {
      return usageError(option, absl::StrCat("'", item, "' is not a numeric id (0-4294967294)"));
    }
    if (std::find(ids.begin(), ids.end(), v) == ids.end()) ids.push_back(v);
  }
  return ids;
}

absl::StatusOr<Cidr> parseCidr(absl::string_view option, absl::string_view text) {
  absl::string_view addr = text;
  std::optional<int> len;
  if (size_t slash = text.find('/'); slash != absl::string_view::npos) {
    addr = text.substr(0, slash);
    absl::string_view len_text = text.substr(slash + 1);
    int v = 0;
    bool digits = !len_text.empty() && len_text.size() <= 3 &&
                  std::all_of(len_text.begin(), len_text.end(),
                              [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || !absl::SimpleAtoi(len_text, &v)) {
      return usageError(option, absl::StrCat("'", text, "' has a bad prefix length"));
    }
    len = v;
  }
  std::string addr_str(addr);
  unsigned char bytes[16] = {};
  Cidr cidr;
  size_t nbytes = 0;
  if (::inet_pton(AF_INET, addr_str.c_str(), bytes) == 1) {
    cidr.family = IpFamily::kV4;
    nbytes = 4;
  } else if (::inet_pton(AF_INET6, addr_str.c_str(), bytes) == 1) {
    cidr.family = IpFamily::kV6;
    nbytes = 16;
  } else {
    return usageError(option, absl::StrCat("'", text, "' is not an IPv4 or IPv6 CIDR"));
  }
  int max_len = static_cast<int>(nbytes * 8);
  cidr.prefix_len = len.value_or(max_len);
  if (cidr.prefix_len > max_len) {
    return usageError(option, absl::StrCat("'", text, "': the prefix length is over ", max_len));
  }
  // Clear the host bits, as iptables does, so the rule text is canonical.
  for (size_t i = 0; i < nbytes; ++i) {
    int keep = std::clamp(cidr.prefix_len - static_cast<int>(i * 8), 0, 8);
    bytes[i] &= static_cast<unsigned char>(0xff00u >> keep);
  }
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(cidr.family == IpFamily::kV4 ? AF_INET : AF_INET6, bytes, buf, sizeof(buf));
  cidr.address = buf;
  return cidr;
}

absl::StatusOr<CidrSet> parseCidrSet(absl::string_view option, absl::string_view text,
                                     bool allow_all) {
  CidrSet set;
  if (auto s = parseSet(option, text, allow_all, set.all, set.cidrs, parseCidr); !s.ok()) return s;
  return set;
}

bool contains(const std::vector<uint16_t>& ports, uint16_t port) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

absl::Status validate(const IptablesOptions& o) {
  if (o.proxy_port == o.inbound_capture_port) {
    return usageError("--proxy-port", absl::StrCat(o.proxy_port, " is also --inbound-capture-port"));
  }
  if (o.admin_port == o.proxy_port || o.admin_port == o.inbound_capture_port) {
    return usageError("--admin-port", absl::StrCat(o.admin_port, " is also ",
                                                   o.admin_port == o.proxy_port
                                                       ? "--proxy-port"
                                                       : "--inbound-capture-port"));
  }
  for (uint16_t p : o.inbound_ports.ports) {
    if (p == o.proxy_port || p == o.inbound_capture_port || p == o.admin_port) {
      return usageError("--inbound-ports",
                        absl::StrCat(p, " is the proxy's own port and is never captured"));
    }
    if (contains(o.exclude_inbound_ports.ports, p)) {
      return usageError("--inbound-ports",
                        absl::StrCat(p, " is also in --exclude-inbound-ports (default ",
                                     "15090,15021,15020; set it to change that)"));
    }
  }
  for (uint16_t p : o.outbound_ports.ports) {
    if (contains(o.exclude_outbound_ports.ports, p)) {
      return usageError("--outbound-ports",
                        absl::StrCat(p, " is also in --exclude-outbound-ports"));
    }
  }
  if (!o.ipv6) {
    for (const auto& [name, set] :
         {std::pair{"--include-outbound-cidrs", &o.include_outbound_cidrs},
          std::pair{"--exclude-outbound-cidrs", &o.exclude_outbound_cidrs}}) {
      for (const auto& c : set->cidrs) {
        if (c.family == IpFamily::kV6) {
          return usageError(name, absl::StrCat("'", c.str(), "' is IPv6 and --ipv6 is not set"));
        }
      }
    }
  }
  return absl::OkStatus();
}

// iptables-save prints no "-d" for a /0 prefix.
std::string destination(const Cidr& c) {
  return c.prefix_len == 0 ? "" : absl::StrCat(" -d ", c.str());
}

std::string tcpPort(uint16_t port) { return absl::StrCat(" -p tcp -m tcp --dport ", port); }

std::vector<Cidr> ofFamily(const CidrSet& set, IpFamily family) {
  std::vector<Cidr> out;
  for (const auto& c : set.cidrs) {
    if (c.family == family) out.push_back(c);
  }
  return out;
}

// Splits a rule's text into words, keeping double-quoted words (comments) whole.
std::vector<std::string> words(absl::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, any = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '\\' && i + 1 < line.size()) {
        cur.push_back(line[++i]);
      } else if (c == '"') {
        quoted = false;
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      quoted = any = true;
    } else if (c == ' ' || c == '\t') {
      if (any) out.push_back(std::move(cur));
      cur.clear();
      any = false;
    } else {
      cur.push_back(c);
      any = true;
    }
  }
  if (any) out.push_back(std::move(cur));
  return out;
}

bool isTurnoutChain(absl::string_view name) {
  return name == kInboundChain || name == kInRedirectChain || name == kOutputChain ||
         name == kRedirectChain;
}

const char* familyName(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

std::string chainDeclarations() {
  std::string out;
  for (auto chain : {kInboundChain, kInRedirectChain, kOutputChain, kRedirectChain}) {
    absl::StrAppend(&out, ":", chain, " - [0:0]\n");
  }
  return out;
}

// Whether iptables-save output holds any rule, in any table.
bool hasAnyRule(absl::string_view save) {
  for (absl::string_view line : absl::StrSplit(save, '\n')) {
    if (absl::StartsWith(line, "-A ")) return true;
  }
  return false;
}

// The runner's answer as one sentence for an error message.
std::string failure(const std::vector<std::string>& argv, const CommandResult& r,
                    absl::string_view package = "iptables") {
  std::string cmd = absl::StrJoin(argv, " ");
  if (!r.started) {
    return absl::StrCat(cmd, ": ", r.err.empty() ? "could not run" : r.err, " (is the ", package,
                        " package installed?)");
  }
  std::string detail(absl::StripAsciiWhitespace(r.err));
  return absl::StrCat(cmd, " exited with ", r.exit_code, detail.empty() ? "" : ": ", detail);
}

class Command {
 public:
  Command(const IptablesOptions& options, const CommandRunner& runner, std::ostream& out,
          std::ostream& err)
      : options_(options), runner_(runner), out_(out), err_(err) {}

  int run() {
    if (options_.dry_run && !options_.cleanup) {
      printRules();
      return 0;
    }
    return options_.cleanup ? cleanup() : apply();
  }

 private:
  void printRules() {
    out_ << "# turnout iptables: IPv4 nat rules (iptables-restore --noflush input)\n"
         << restoreInput(options_, IpFamily::kV4);
    if (options_.ipv6) {
      out_ << "# turnout iptables: IPv6 nat rules (ip6tables-restore --noflush input)\n"
           << restoreInput(options_, IpFamily::kV6)
           << "# turnout iptables: IPv6 inbound passthrough source (unless lo has it)\n"
           << absl::StrJoin(loAddressAddCommand(), " ") << "\n";
    }
  }

  // lo's kPassthroughAddressV6, or nullopt (and why, in `why`) when `ip` fails.
  std::optional<LoopbackAddress> loAddress(std::string& why) {
    const std::vector<std::string> argv = loAddressShowCommand();
    CommandResult r = runner_(argv, "");
    if (!r.started || r.exit_code != 0) {
      why = failure(argv, r, "iproute2");
      return std::nullopt;
    }
    return passthroughAddressOnLo(r.out);
  }

  // --ipv6: the passthrough source on lo, added unless it is there. False
  // (and a message) when `ip` fails: an IPv6 sidecar cannot reach its app.
  bool addLoAddress() {
    std::string why;
    std::optional<LoopbackAddress> now = loAddress(why);
    if (!now) {
      err_ << "turnout iptables: cannot read lo's addresses: " << why << "\n";
      return false;
    }
    if (*now != LoopbackAddress::kAbsent) {
      out_ << "turnout iptables: " << kPassthroughAddressV6 << " already on lo\n";
      return true;
    }
    const std::vector<std::string> argv = loAddressAddCommand();
    CommandResult r = runner_(argv, "");
    if (!r.started || r.exit_code != 0) {
      err_ << "turnout iptables: " << failure(argv, r, "iproute2") << "\n";
      return false;
    }
    out_ << "turnout iptables: " << kPassthroughAddressV6
         << " added to lo (the IPv6 inbound passthrough source)\n";
    return true;
  }

  // Removes the passthrough source from lo when turnout added it (its mark).
  // A host without `ip` has none of turnout's. Returns whether there was one;
  // false with `failed` set when the delete fails.
  bool removeLoAddress(bool& failed) {
    std::string why;
    std::optional<LoopbackAddress> now = loAddress(why);
    if (now != LoopbackAddress::kTurnouts) return false;
    const std::vector<std::string> argv = loAddressDelCommand();
    if (options_.dry_run) {
      out_ << "# turnout iptables: IPv6 inbound passthrough source turnout added to lo\n"
           << absl::StrJoin(argv, " ") << "\n";
      return true;
    }
    CommandResult r = runner_(argv, "");
    if (!r.started || r.exit_code != 0) {
      err_ << "turnout iptables: " << failure(argv, r, "iproute2") << "\n";
      failed = true;
      return false;
    }
    out_ << "turnout iptables: " << kPassthroughAddressV6 << " removed from lo\n";
    return true;
  }

  CommandResult save(Backend b, IpFamily f, bool nat_only) {
    std::vector<std::string> argv = {backendProgram(b, f, "-save")};
    if (nat_only) {
      argv.push_back("-t");
      argv.push_back("nat");
    }
    return runner_(argv, "");
  }

  BackendProbe probe(Backend b) {
    BackendProbe p;
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      CommandResult r = save(b, f, /*nat_only=*/false);
      if (!r.started || r.exit_code != 0) continue;
      p.available = true;
      p.has_rules = p.has_rules || hasAnyRule(r.out);
      p.has_turnout = p.has_turnout || !cleanupCommands(r.out).empty();
    }
    return p;
  }

  // Runs `input` through the backend's restore --noflush; false (and a message) on failure.
  bool restore(Backend b, IpFamily f, const std::string& input) {
    std::vector<std::string> argv = {backendProgram(b, f, "-restore"), "--noflush", "--wait",
                                     "5"};
    CommandResult r = runner_(argv, input);
    if (!r.started || r.exit_code != 0) {
      err_ << "turnout iptables: " << failure(argv, r) << "\n";
      return false;
    }
    return true;
  }

  std::optional<Backend> selectBackend() {
    if (options_.backend != Backend::kAuto) return options_.backend;
    BackendProbe nft = probe(Backend::kNft);
    BackendProbe legacy = probe(Backend::kLegacy);
    CommandResult version = runner_({"iptables", "--version"}, "");
    std::optional<Backend> system;
    if (version.started && version.exit_code == 0) system = backendFromVersion(version.out);
    auto chosen = chooseBackend(nft, legacy, system);
    if (!chosen) {
      err_ << "turnout iptables: neither iptables-nft-save nor iptables-legacy-save runs "
              "(is the iptables package installed, and is this root or CAP_NET_ADMIN?)\n";
    }
    return chosen;
  }

  int apply() {
    auto backend = selectBackend();
    if (!backend) return 1;
    std::vector<IpFamily> families = {IpFamily::kV4};
    if (options_.ipv6) families.push_back(IpFamily::kV6);
    for (IpFamily f : families) {
      std::vector<std::string> argv = {backendProgram(*backend, f, "-save"), "-t", "nat"};
      CommandResult current = runner_(argv, "");
      if (!current.started || current.exit_code != 0) {
        err_ << "turnout iptables: cannot read the nat table: " << failure(argv, current) << "\n";
        return 1;
      }
      if (!restore(*backend, f, applyInput(options_, f, current.out))) return 1;
      out_ << "turnout iptables: " << familyName(f) << " capture rules applied ("
           << backendProgram(*backend, f, "-restore") << ", "
           << captureRules(options_, f).size() << " rules)\n";
    }
    if (options_.ipv6 && !addLoAddress()) return 1;
    if (!options_.ipv6) {
      // Rules left by an earlier --ipv6 run go too, so the state matches the options.
      // A host without IPv6 nat has none: a failing ip6tables-save is no error here.
      CommandResult current = save(*backend, IpFamily::kV6, /*nat_only=*/true);
      if (current.started && current.exit_code == 0) {
        std::string input = cleanupInput(current.out);
        if (!input.empty()) {
          if (!restore(*backend, IpFamily::kV6, input)) return 1;
          out_ << "turnout iptables: IPv6 capture rules removed (no --ipv6)\n";
        }
      }
      // And the ::6 an --ipv6 run added to lo.
      bool failed = false;
      removeLoAddress(failed);
      if (failed) return 1;
    }
    return 0;
  }

  int cleanup() {
    std::vector<Backend> backends;
    if (options_.backend != Backend::kAuto) {
      backends.push_back(options_.backend);
    } else {
      for (Backend b : {Backend::kNft, Backend::kLegacy}) {
        if (probe(b).has_turnout) backends.push_back(b);
      }
    }
    bool removed = false;
    for (Backend b : backends) {
      for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
        std::vector<std::string> argv = {backendProgram(b, f, "-save"), "-t", "nat"};
        CommandResult current = runner_(argv, "");
        if (!current.started || current.exit_code != 0) {
          // IPv4 must be readable; a host without IPv6 nat has no IPv6 rules.
          if (f == IpFamily::kV6) continue;
          err_ << "turnout iptables: cannot read the nat table: " << failure(argv, current)
               << "\n";
          return 1;
        }
        std::string input = cleanupInput(current.out);
        if (input.empty()) continue;
        if (options_.dry_run) {
          out_ << "# turnout iptables: " << familyName(f) << " cleanup ("
               << backendProgram(b, f, "-restore") << " --noflush input)\n"
               << input;
        } else {
          if (!restore(b, f, input)) return 1;
          out_ << "turnout iptables: " << familyName(f) << " capture rules removed ("
               << backendProgram(b, f, "-restore") << ")\n";
        }
        removed = true;
      }
    }
    bool failed = false;
    if (removeLoAddress(failed)) removed = true;
    if (failed) return 1;
    if (!removed) out_ << "turnout iptables: no capture rules to remove\n";
    return 0;
  }

  const IptablesOptions& options_;
  const CommandRunner& runner_;
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace

bool Cidr::isLoopback() const {
  if (family == IpFamily::kV4) return absl::StartsWith(address, "127.") && prefix_len >= 8;
  return address == "::1" && prefix_len == 128;
}

absl::StatusOr<IptablesOptions> parseIptablesOptions(const std::vector<std::string>& args) {
  IptablesOptions o;
  std::set<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> inline_value;
    if (absl::StartsWith(name, "--")) {
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
    }
    if (name == "-h") name = "--help";
    auto value = [&]() -> absl::StatusOr<std::string> {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) return usageError(name, "needs a value");
      return args[++i];
    };
    auto flag = [&](bool& dst) -> absl::Status {
      if (inline_value) return usageError(name, "takes no value");
      dst = true;
      return absl::OkStatus();
    };
    auto port = [&](uint16_t& dst) -> absl::Status {
      auto v = value();
      if (!v.ok()) return v.status();
      auto p = parsePort(name, *v);
      if (!p.ok()) return p.status();
      dst = *p;
      return absl::OkStatus();
    };
    auto ports = [&](PortSet& dst, bool allow_all) -> absl::Status {
      auto v = value();
      if (!v.ok()) return v.status();
      auto p = parsePortSet(name, *v, allow_all);
      if (!p.ok()) return p.status();
      dst = *p;
      return absl::OkStatus();
    };
    auto cidrs = [&](CidrSet& dst, bool allow_all) -> absl::Status {
      auto v = value();
      if (!v.ok()) return v.status();
      auto c = parseCidrSet(name, *v, allow_all);
      if (!c.ok()) return c.status();
      dst = *c;
      return absl::OkStatus();
    };
    auto ids = [&](std::vector<uint32_t>& dst) -> absl::Status {
      auto v = value();
      if (!v.ok()) return v.status();
      auto p = parseIds(name, *v);
      if (!p.ok()) return p.status();
      dst = *p;
      return absl::OkStatus();
    };
    absl::Status s;
    if (name == "--proxy-port") {
      s = port(o.proxy_port);
    } else if (name == "--inbound-capture-port") {
      s = port(o.inbound_capture_port);
    } else if (name == "--admin-port") {
      s = port(o.admin_port);
    } else if (name == "--proxy-uid") {
      s = ids(o.proxy_uids);
    } else if (name == "--proxy-gid") {
      s = ids(o.proxy_gids);
    } else if (name == "--inbound-ports") {
      s = ports(o.inbound_ports, true);
    } else if (name == "--exclude-inbound-ports") {
      s = ports(o.exclude_inbound_ports, false);
    } else if (name == "--outbound-ports") {
      s = ports(o.outbound_ports, true);
    } else if (name == "--exclude-outbound-ports") {
      s = ports(o.exclude_outbound_ports, false);
    } else if (name == "--include-outbound-cidrs") {
      s = cidrs(o.include_outbound_cidrs, true);
    } else if (name == "--exclude-outbound-cidrs") {
      s = cidrs(o.exclude_outbound_cidrs, false);
    } else if (name == "--ipv6") {
      s = flag(o.ipv6);
    } else if (name == "--iptables-backend") {
      auto v = value();
      if (!v.ok()) return v.status();
      if (*v == "auto") {
        o.backend = Backend::kAuto;
      } else if (*v == "nft") {
        o.backend = Backend::kNft;
      } else if (*v == "legacy") {
        o.backend = Backend::kLegacy;
      } else {
        s = usageError(name, absl::StrCat("'", *v, "' is not auto, nft or legacy"));
      }
    } else if (name == "--dry-run") {
      s = flag(o.dry_run);
    } else if (name == "--cleanup") {
      s = flag(o.cleanup);
    } else if (name == "--help") {
      s = flag(o.help);
    } else if (absl::StartsWith(name, "-")) {
      s = usageError(name, "unknown option");
    } else {
      s = absl::InvalidArgumentError(absl::StrCat("unexpected argument '", name, "'"));
    }
    if (!s.ok()) return s;
    if (!seen.insert(name).second) return usageError(name, "given more than once");
  }
  if (o.help) return o;
  if (absl::Status s = validate(o); !s.ok()) return s;
  return o;
}

std::vector<uint16_t> inboundExemptPorts(const IptablesOptions& o) {
  std::vector<uint16_t> ports = {o.proxy_port, o.inbound_capture_port, o.admin_port};
  for (uint16_t p : o.exclude_inbound_ports.ports) {
    if (!contains(ports, p)) ports.push_back(p);
  }
  return ports;
}

std::vector<std::string> captureRules(const IptablesOptions& o, IpFamily family) {
  const bool v4 = family == IpFamily::kV4;
  const std::string loopback = v4 ? "127.0.0.1/32" : "::1/128";
  // The source the proxy binds for its inbound passthrough connections (Istio's).
  const std::string passthrough_source = v4 ? "127.0.0.6/32" : "::6/128";
  const bool inbound = o.inbound_ports.all || !o.inbound_ports.ports.empty();
  const std::string out_chain = absl::StrCat("-A ", kOutputChain);

  std::vector<std::string> rules;
  // Built-in chains first, as iptables-save lists them.
  if (inbound) rules.push_back(absl::StrCat("-A PREROUTING -p tcp -j ", kInboundChain));
  rules.push_back(absl::StrCat("-A OUTPUT -p tcp -j ", kOutputChain));

  // TURNOUT_INBOUND: which inbound connections go to the inbound capture port.
  if (o.inbound_ports.all) {
    for (uint16_t p : inboundExemptPorts(o)) {
      rules.push_back(absl::StrCat("-A ", kInboundChain, tcpPort(p), " -j RETURN"));
    }
    rules.push_back(absl::StrCat("-A ", kInboundChain, " -p tcp -j ", kInRedirectChain));
  } else {
    for (uint16_t p : o.inbound_ports.ports) {
      rules.push_back(absl::StrCat("-A ", kInboundChain, tcpPort(p), " -j ", kInRedirectChain));
    }
  }

  rules.push_back(absl::StrCat("-A ", kInRedirectChain, " -p tcp -j REDIRECT --to-ports ",
                               o.inbound_capture_port));

  // TURNOUT_OUTPUT: exemptions first (RETURN), then what goes to the proxy.
  for (uint16_t p : o.exclude_outbound_ports.ports) {
    rules.push_back(absl::StrCat(out_chain, tcpPort(p), " -j RETURN"));
  }
  rules.push_back(absl::StrCat(out_chain, " -s ", passthrough_source, " -o lo -j RETURN"));
  const std::vector<Cidr> include = ofFamily(o.include_outbound_cidrs, family);
  const bool include_loopback =
      std::any_of(include.begin(), include.end(), [](const Cidr& c) { return c.isLoopback(); });
  auto exemptOwner = [&](absl::string_view match, uint32_t id) {
    // As Istio: the proxy calling its own pod's address over lo (an app
    // calling its own service through its sidecar) goes through the inbound
    // capture. The inbound passthrough's own connections to the app come
    // from 127.0.0.6 (InboundPassthroughCluster's upstream_bind_config) and
    // returned above, so they do not loop back into it.
    if (inbound) {
      rules.push_back(absl::StrCat(out_chain, " ! -d ", loopback, " -o lo -m owner ", match, " ", id,
                                   " -j ", kInRedirectChain));
    }
    // The app calling its own pod's address over lo is not captured, unless a
    // loopback range was asked for.
    if (!include_loopback) {
      rules.push_back(absl::StrCat(out_chain, " -o lo -m owner ! ", match, " ", id, " -j RETURN"));
    }
    // Anything else the proxy sends is never captured: no loops.
    rules.push_back(absl::StrCat(out_chain, " -m owner ", match, " ", id, " -j RETURN"));
  };
  for (uint32_t uid : o.proxy_uids) exemptOwner("--uid-owner", uid);
  for (uint32_t gid : o.proxy_gids) exemptOwner("--gid-owner", gid);
  rules.push_back(absl::StrCat(out_chain, " -d ", loopback, " -j RETURN"));
  for (const Cidr& c : ofFamily(o.exclude_outbound_cidrs, family)) {
    rules.push_back(absl::StrCat(out_chain, destination(c), " -j RETURN"));
  }
  std::vector<std::string> to;
  if (o.include_outbound_cidrs.all) {
    to.emplace_back();
  } else {
    for (const Cidr& c : include) to.push_back(destination(c));
  }
  std::vector<std::string> port_matches;
  if (o.outbound_ports.all) {
    port_matches.emplace_back();
  } else {
    for (uint16_t p : o.outbound_ports.ports) port_matches.push_back(tcpPort(p));
  }
  for (const auto& d : to) {
    for (const auto& p : port_matches) {
      rules.push_back(absl::StrCat(out_chain, d, p, " -j ", kRedirectChain));
    }
  }

  rules.push_back(absl::StrCat("-A ", kRedirectChain, " -p tcp -j REDIRECT --to-ports ",
                               o.proxy_port));
  return rules;
}

std::string restoreInput(const IptablesOptions& options, IpFamily family) {
  std::string out = "*nat\n" + chainDeclarations();
  for (const auto& rule : captureRules(options, family)) absl::StrAppend(&out, rule, "\n");
  out += "COMMIT\n";
  return out;
}

std::vector<std::string> cleanupCommands(absl::string_view nat_save) {
  std::vector<std::string> deletes, chains;
  absl::string_view table;
  for (absl::string_view line : absl::StrSplit(nat_save, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "*")) {
      table = line;
      continue;
    }
    if (table != "nat") continue;
    if (absl::ConsumePrefix(&line, ":")) {
      absl::string_view chain = line.substr(0, line.find(' '));
      if (isTurnoutChain(chain)) chains.emplace_back(chain);
      continue;
    }
    if (!absl::ConsumePrefix(&line, "-A ")) continue;
    std::vector<std::string> w = words(line);
    if (w.empty() || isTurnoutChain(w[0])) continue;
    for (size_t i = 1; i + 1 < w.size(); ++i) {
      if ((w[i] == "-j" || w[i] == "-g" || w[i] == "--jump" || w[i] == "--goto") &&
          isTurnoutChain(w[i + 1])) {
        deletes.push_back(absl::StrCat("-D ", line));
        break;
      }
    }
  }
  for (const auto& c : chains) deletes.push_back(absl::StrCat("-F ", c));
  for (const auto& c : chains) deletes.push_back(absl::StrCat("-X ", c));
  return deletes;
}

std::string cleanupInput(absl::string_view nat_save) {
  std::vector<std::string> commands = cleanupCommands(nat_save);
  if (commands.empty()) return "";
  return absl::StrCat("*nat\n", absl::StrJoin(commands, "\n"), "\nCOMMIT\n");
}

std::string applyInput(const IptablesOptions& options, IpFamily family,
                       absl::string_view nat_save) {
  std::string out = "*nat\n";
  for (const auto& c : cleanupCommands(nat_save)) absl::StrAppend(&out, c, "\n");
  out += chainDeclarations();
  for (const auto& rule : captureRules(options, family)) absl::StrAppend(&out, rule, "\n");
  out += "COMMIT\n";
  return out;
}

LoopbackAddress passthroughAddressOnLo(absl::string_view ip_addr_show) {
  for (absl::string_view line : absl::StrSplit(ip_addr_show, '\n')) {
    // "1: lo    inet6 ::6/128 scope global nodad \       valid_lft forever ..."
    std::vector<std::string> w = words(line);
    auto inet6 = std::find(w.begin(), w.end(), "inet6");
    if (inet6 == w.end() || inet6 + 1 == w.end() || *(inet6 + 1) != kPassthroughAddressV6) continue;
    return std::find(inet6, w.end(), "nodad") != w.end() ? LoopbackAddress::kTurnouts
                                                          : LoopbackAddress::kSomeoneElses;
  }
  return LoopbackAddress::kAbsent;
}

std::vector<std::string> loAddressShowCommand() {
  return {"ip", "-6", "-o", "addr", "show", "dev", "lo"};
}

std::vector<std::string> loAddressAddCommand() {
  return {"ip", "-6", "addr", "add", std::string(kPassthroughAddressV6), "dev", "lo", "nodad"};
}

std::vector<std::string> loAddressDelCommand() {
  return {"ip", "-6", "addr", "del", std::string(kPassthroughAddressV6), "dev", "lo"};
}

std::optional<Backend> chooseBackend(const BackendProbe& nft, const BackendProbe& legacy,
                                     std::optional<Backend> system_default) {
  if (!nft.available && !legacy.available) return std::nullopt;
  if (!nft.available) return Backend::kLegacy;
  if (!legacy.available) return Backend::kNft;
  if (nft.has_turnout != legacy.has_turnout) {
    return nft.has_turnout ? Backend::kNft : Backend::kLegacy;
  }
  if (nft.has_rules != legacy.has_rules) return nft.has_rules ? Backend::kNft : Backend::kLegacy;
  return system_default.value_or(Backend::kNft);
}

std::optional<Backend> backendFromVersion(absl::string_view output) {
  output = absl::StripAsciiWhitespace(output);
  if (!absl::StartsWith(output, "iptables v")) return std::nullopt;
  if (absl::StrContains(output, "(nf_tables)")) return Backend::kNft;
  if (absl::StrContains(output, "(legacy)") || !absl::StrContains(output, "(")) {
    return Backend::kLegacy;
  }
  return std::nullopt;
}

std::string backendProgram(Backend backend, IpFamily family, absl::string_view suffix) {
  return absl::StrCat(family == IpFamily::kV4 ? "iptables-" : "ip6tables-",
                      backend == Backend::kLegacy ? "legacy" : "nft", suffix);
}

int runIptablesCommand(const std::vector<std::string>& args, const CommandRunner& runner,
                       std::ostream& out, std::ostream& err) {
  auto options = parseIptablesOptions(args);
  if (!options.ok()) {
    err << "turnout iptables: " << options.status().message()
        << "\nRun 'turnout iptables --help' for usage.\n";
    return 2;
  }
  if (options->help) {
    out << kUsage;
    return 0;
  }
  return Command(*options, runner, out, err).run();
}

int iptablesMain(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return runIptablesCommand(args, runCommand, std::cout, std::cerr);
}

}  // namespace turnout::proxy::capture
