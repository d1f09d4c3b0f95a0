#pragma once

// `turnout iptables`: the nat rules that send a pod's TCP traffic through its
// turnout sidecar, like Istio's istio-iptables (tools/istio-iptables/pkg/
// capture/run.go). Outbound TCP goes to --proxy-port (15001), inbound TCP to
// --inbound-capture-port (15006); the proxy's own traffic (UID/GID 1337),
// loopback destinations and excluded ports and CIDRs are exempt.
// docs/capture.md describes every rule and option.
//
// Rule generation is pure (options -> iptables-restore input); executing it
// goes through a CommandRunner (proxy/capture/command_runner.h), so every step
// down to the exact restore input is unit-tested with a fake runner. Runs on the
// main thread of a short-lived process; nothing here is on the data path.

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proxy/capture/command_runner.h"

namespace turnout::proxy::capture {

// turnout's chains in the nat table, in iptables-save's order.
inline constexpr absl::string_view kInboundChain = "TURNOUT_INBOUND";
inline constexpr absl::string_view kInRedirectChain = "TURNOUT_IN_REDIRECT";
inline constexpr absl::string_view kOutputChain = "TURNOUT_OUTPUT";
inline constexpr absl::string_view kRedirectChain = "TURNOUT_REDIRECT";

enum class IpFamily { kV4, kV6 };
enum class Backend { kAuto, kNft, kLegacy };

// A destination prefix with its host bits cleared, e.g. 10.0.0.0/8, fd00::/8.
struct Cidr {
  IpFamily family = IpFamily::kV4;
  std::string address;  // canonical text (inet_ntop)
  int prefix_len = 32;
  bool isLoopback() const;  // inside 127.0.0.0/8 or ::1/128
  std::string str() const { return address + "/" + std::to_string(prefix_len); }
  bool operator==(const Cidr&) const = default;
};

// A port list option: `*` (every port) or explicit ports; empty means none.
struct PortSet {
  bool all = false;
  std::vector<uint16_t> ports;  // in the order given, without duplicates
};

// A CIDR list option: `*` (everywhere) or explicit prefixes; empty means none.
struct CidrSet {
  bool all = false;
  std::vector<Cidr> cidrs;  // in the order given, without duplicates
};

struct IptablesOptions {
  uint16_t proxy_port = 15001;
  uint16_t inbound_capture_port = 15006;
  uint16_t admin_port = 15000;
  std::vector<uint32_t> proxy_uids = {1337};
  std::vector<uint32_t> proxy_gids = {1337};
  PortSet inbound_ports{.all = true, .ports = {}};
  // Istio's metrics (15090), health (15021) and agent status (15020) ports. The
  // proxy's own ports (proxy, inbound capture, admin) are exempt whatever this says.
  PortSet exclude_inbound_ports{.all = false, .ports = {15090, 15021, 15020}};
  PortSet outbound_ports{.all = true, .ports = {}};
  PortSet exclude_outbound_ports;
  CidrSet include_outbound_cidrs{.all = true, .cidrs = {}};
  CidrSet exclude_outbound_cidrs;
  bool ipv6 = false;
  Backend backend = Backend::kAuto;
  bool dry_run = false;
  bool cleanup = false;
  bool help = false;
};

// Parses the arguments after `turnout iptables`. Errors are sentences that name
// the option, e.g. "--proxy-port: '70000' is not a port (1-65535)".
absl::StatusOr<IptablesOptions> parseIptablesOptions(const std::vector<std::string>& args);

// The ports inbound capture never takes: the proxy's own, then
// --exclude-inbound-ports, without duplicates.
std::vector<uint16_t> inboundExemptPorts(const IptablesOptions& options);

// The rules turnout installs for one family, exactly as iptables-save prints
// them ("-A CHAIN ..."), in iptables-save's order: the jumps from PREROUTING
// and OUTPUT, then turnout's chains in name order.
std::vector<std::string> captureRules(const IptablesOptions& options, IpFamily family);

// iptables-restore input that creates turnout's chains (or flushes them when
// they exist) and appends captureRules(): what --dry-run prints.
std::string restoreInput(const IptablesOptions& options, IpFamily family);

// Reads `iptables-save -t nat` output and returns the restore commands that
// remove exactly turnout's jumps and chains: "-D" for each rule of another
// chain that jumps to (or goes to) a turnout chain, then "-F" and "-X" for each
// turnout chain present. Empty when nothing of turnout's is there.
std::vector<std::string> cleanupCommands(absl::string_view nat_save);

// The one iptables-restore --noflush transaction that replaces whatever turnout
// installed before (per `nat_save`) with captureRules(): applying it twice
// leaves one copy of each rule.
std::string applyInput(const IptablesOptions& options, IpFamily family,
                       absl::string_view nat_save);

// The restore transaction for cleanupCommands(), or "" when there is nothing.
std::string cleanupInput(absl::string_view nat_save);

// The IPv6 inbound passthrough source: turnout-cp's IPv6 and dual-stack
// sidecars bind it for their connections to the app (InboundPassthroughCluster,
// as Istio's ::6), so it must be an address of the pod. `--ipv6` adds it to
// lo as Istio's init does (`ip -6 addr add ::6/128 dev lo`), flagged `nodad`
// as turnout's mark (a no-op on lo, which never runs duplicate address
// detection): --cleanup, and a run without --ipv6, remove it only when the
// mark says turnout added it, and a run leaves one that was there before.
inline constexpr absl::string_view kPassthroughAddressV6 = "::6/128";
enum class LoopbackAddress { kAbsent, kTurnouts, kSomeoneElses };
// Reads `ip -6 -o addr show dev lo` output: is kPassthroughAddressV6 there,
// and with turnout's mark?
LoopbackAddress passthroughAddressOnLo(absl::string_view ip_addr_show);
// The three `ip` commands: show lo's IPv6 addresses, add the address with
// turnout's mark, delete it.
std::vector<std::string> loAddressShowCommand();
std::vector<std::string> loAddressAddCommand();
std::vector<std::string> loAddressDelCommand();

// What auto detection saw of one backend.
struct BackendProbe {
  bool available = false;    // its iptables-save ran
  bool has_turnout = false;  // turnout's chains are there (IPv4 or IPv6)
  bool has_rules = false;    // any rule in any table
};

// --iptables-backend auto: the backend that already holds turnout's chains;
// else the one that has any rules (the system's firewall lives there); else
// `system_default`, the backend of the `iptables` alternative (parsed from
// `iptables --version`: "(nf_tables)" or "(legacy)"); else nft, else legacy.
// nullopt when neither is available.
std::optional<Backend> chooseBackend(const BackendProbe& nft, const BackendProbe& legacy,
                                     std::optional<Backend> system_default);

// "iptables v1.8.9 (nf_tables)" -> kNft, "iptables v1.8.9 (legacy)" or an old
// "iptables v1.6.1" -> kLegacy; nullopt for anything else.
std::optional<Backend> backendFromVersion(absl::string_view iptables_version_output);

// The program names of a backend: ("iptables-nft", kV6) -> "ip6tables-nft".
std::string backendProgram(Backend backend, IpFamily family, absl::string_view suffix);

// The whole subcommand: parses `args` (after "iptables"), then prints, applies
// or cleans up through `runner`. Output for people goes to `out`, errors to `err`.
// Exit codes: 0 done, 1 iptables could not be read or changed, 2 bad usage (an
// unknown option or a bad value; the message names the option).
int runIptablesCommand(const std::vector<std::string>& args, const CommandRunner& runner,
                       std::ostream& out, std::ostream& err);

// main()'s entry for `turnout iptables ARGS...`: the real runner, stdout, stderr.
int iptablesMain(int argc, char** argv);

}  // namespace turnout::proxy::capture
