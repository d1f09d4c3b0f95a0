#include <catch2/catch.hpp>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proxy/capture/iptables.h"

namespace turnout::proxy::capture {
namespace {

IptablesOptions parse(const std::vector<std::string>& args) {
  auto o = parseIptablesOptions(args);
  INFO(o.status().message());
  REQUIRE(o.ok());
  return *o;
}

std::string errorOf(const std::vector<std::string>& args) {
  auto o = parseIptablesOptions(args);
  REQUIRE_FALSE(o.ok());
  return std::string(o.status().message());
}

std::string rules(const std::vector<std::string>& args, IpFamily f = IpFamily::kV4) {
  return absl::StrJoin(captureRules(parse(args), f), "\n") + "\n";
}

// The defaults' rules, line by line, as iptables-save prints them; `inbound`
// is the proxy's inbound source (127.0.0.6/32, ::6/128), `loopback` the
// family's loopback (127.0.0.1/32, ::1/128).
std::string defaultRules(const std::string& inbound, const std::string& loopback) {
  return "-A PREROUTING -p tcp -j TURNOUT_INBOUND\n"
         "-A OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15001 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15006 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15000 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15090 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15021 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15020 -j RETURN\n"
         "-A TURNOUT_INBOUND -p tcp -j TURNOUT_IN_REDIRECT\n"
         "-A TURNOUT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
         "-A TURNOUT_OUTPUT -s " + inbound + " -o lo -j RETURN\n"
         "-A TURNOUT_OUTPUT ! -d " + loopback + " -o lo -m owner --uid-owner 1337 -j TURNOUT_IN_REDIRECT\n"
         "-A TURNOUT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
         "-A TURNOUT_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
         "-A TURNOUT_OUTPUT ! -d " + loopback + " -o lo -m owner --gid-owner 1337 -j TURNOUT_IN_REDIRECT\n"
         "-A TURNOUT_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
         "-A TURNOUT_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
         "-A TURNOUT_OUTPUT -d " + loopback + " -j RETURN\n"
         "-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT\n"
         "-A TURNOUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n";
}

const std::string kDefaultV4 = defaultRules("127.0.0.6/32", "127.0.0.1/32");

constexpr const char* kChains =
    ":TURNOUT_INBOUND - [0:0]\n"
    ":TURNOUT_IN_REDIRECT - [0:0]\n"
    ":TURNOUT_OUTPUT - [0:0]\n"
    ":TURNOUT_REDIRECT - [0:0]\n";

TEST_CASE("the defaults capture all inbound and outbound TCP except the proxy's own",
          "[capture]") {
  CHECK(rules({}) == kDefaultV4);
  CHECK(restoreInput(parse({}), IpFamily::kV4) ==
        "*nat\n" + std::string(kChains) + kDefaultV4 + "COMMIT\n");
}

TEST_CASE("IPv6 rules use ::1 and ::6 where IPv4 uses 127.0.0.1 and 127.0.0.6", "[capture]") {
  CHECK(rules({"--ipv6"}, IpFamily::kV6) == defaultRules("::6/128", "::1/128"));
}

TEST_CASE("the proxy, inbound capture and admin ports move together", "[capture]") {
  std::string r = rules({"--proxy-port", "16001", "--inbound-capture-port=16006",
                         "--admin-port", "9901", "--exclude-inbound-ports", ""});
  CHECK(r ==
        "-A PREROUTING -p tcp -j TURNOUT_INBOUND\n"
        "-A OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
        "-A TURNOUT_INBOUND -p tcp -m tcp --dport 16001 -j RETURN\n"
        "-A TURNOUT_INBOUND -p tcp -m tcp --dport 16006 -j RETURN\n"
        "-A TURNOUT_INBOUND -p tcp -m tcp --dport 9901 -j RETURN\n"
        "-A TURNOUT_INBOUND -p tcp -j TURNOUT_IN_REDIRECT\n"
        "-A TURNOUT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n"
        "-A TURNOUT_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN\n"
        "-A TURNOUT_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j TURNOUT_IN_REDIRECT\n"
        "-A TURNOUT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
        "-A TURNOUT_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
        "-A TURNOUT_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j TURNOUT_IN_REDIRECT\n"
        "-A TURNOUT_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN\n"
        "-A TURNOUT_OUTPUT -m owner --gid-owner 1337 -j RETURN\n"
        "-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
        "-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT\n"
        "-A TURNOUT_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n");
}

TEST_CASE("every proxy UID and GID is exempt, each with its lo rules", "[capture]") {
  std::string r = rules({"--proxy-uid", "1337, 101", "--proxy-gid", "2000"});
  CHECK(r.find("-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n") != std::string::npos);
  std::string expected =
      "-A TURNOUT_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j TURNOUT_IN_REDIRECT\n"
      "-A TURNOUT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n"
      "-A TURNOUT_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
      "-A TURNOUT_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 101 -j TURNOUT_IN_REDIRECT\n"
      "-A TURNOUT_OUTPUT -o lo -m owner ! --uid-owner 101 -j RETURN\n"
      "-A TURNOUT_OUTPUT -m owner --uid-owner 101 -j RETURN\n"
      "-A TURNOUT_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 2000 -j TURNOUT_IN_REDIRECT\n"
      "-A TURNOUT_OUTPUT -o lo -m owner ! --gid-owner 2000 -j RETURN\n"
      "-A TURNOUT_OUTPUT -m owner --gid-owner 2000 -j RETURN\n"
      "-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n";
  CHECK(r.find(expected) != std::string::npos);
  // Without inbound capture, nothing is sent to TURNOUT_IN_REDIRECT.
  CHECK(rules({"--inbound-ports="}).find("-j TURNOUT_IN_REDIRECT") == std::string::npos);
}

TEST_CASE("an inbound port list captures only those ports", "[capture]") {
  std::string r = rules({"--inbound-ports", "9080,8080,9080"});
  CHECK(r.find("-A TURNOUT_INBOUND -p tcp -m tcp --dport 9080 -j TURNOUT_IN_REDIRECT\n"
                "-A TURNOUT_INBOUND -p tcp -m tcp --dport 8080 -j TURNOUT_IN_REDIRECT\n"
                "-A TURNOUT_IN_REDIRECT") != std::string::npos);
  CHECK(r.find("-j RETURN\n-A TURNOUT_INBOUND") == std::string::npos);
  CHECK(r.find("--dport 15001 -j RETURN") == std::string::npos);
}

TEST_CASE("no inbound ports: no PREROUTING jump and no hand-off to inbound capture",
          "[capture]") {
  std::string r = rules({"--inbound-ports="});
  CHECK(r.find("PREROUTING") == std::string::npos);
  CHECK(r.find("TURNOUT_INBOUND") == std::string::npos);
  CHECK(r.find("-j TURNOUT_IN_REDIRECT") == std::string::npos);
  CHECK(r.find("-A TURNOUT_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN\n") !=
        std::string::npos);
  // The chain still exists (restoreInput declares all four), with its one rule.
  CHECK(r.find("-A TURNOUT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n") !=
        std::string::npos);
}

TEST_CASE("excluded inbound ports replace the default extra exemptions", "[capture]") {
  std::string r = rules({"--exclude-inbound-ports", "22,15020"});
  CHECK(r.find("-A TURNOUT_INBOUND -p tcp -m tcp --dport 15001 -j RETURN\n"
                "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15006 -j RETURN\n"
                "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15000 -j RETURN\n"
                "-A TURNOUT_INBOUND -p tcp -m tcp --dport 22 -j RETURN\n"
                "-A TURNOUT_INBOUND -p tcp -m tcp --dport 15020 -j RETURN\n"
                "-A TURNOUT_INBOUND -p tcp -j TURNOUT_IN_REDIRECT\n") != std::string::npos);
  CHECK(r.find("15090") == std::string::npos);
  // The proxy's own ports stay exempt when listed again.
  CHECK(inboundExemptPorts(parse({"--exclude-inbound-ports", "15001,443"})) ==
        std::vector<uint16_t>{15001, 15006, 15000, 443});
}

TEST_CASE("excluded outbound ports return before anything else", "[capture]") {
  std::string r = rules({"--exclude-outbound-ports", "3306,5432"});
  CHECK(r.find("-A TURNOUT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
                "-A TURNOUT_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN\n"
                "-A TURNOUT_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN\n"
                "-A TURNOUT_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN\n") != std::string::npos);
}

TEST_CASE("outbound ports and CIDRs must both match to be captured", "[capture]") {
  CHECK(rules({"--outbound-ports", "80,443"}).find(
            "-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
            "-A TURNOUT_OUTPUT -p tcp -m tcp --dport 80 -j TURNOUT_REDIRECT\n"
            "-A TURNOUT_OUTPUT -p tcp -m tcp --dport 443 -j TURNOUT_REDIRECT\n"
            "-A TURNOUT_REDIRECT") != std::string::npos);
  CHECK(rules({"--include-outbound-cidrs", "10.0.0.0/8,172.16.0.0/12"})
            .find("-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
                  "-A TURNOUT_OUTPUT -d 10.0.0.0/8 -j TURNOUT_REDIRECT\n"
                  "-A TURNOUT_OUTPUT -d 172.16.0.0/12 -j TURNOUT_REDIRECT\n"
                  "-A TURNOUT_REDIRECT") != std::string::npos);
  CHECK(rules({"--include-outbound-cidrs", "10.0.0.0/8,172.16.0.0/12", "--outbound-ports",
               "80,443"})
            .find("-A TURNOUT_OUTPUT -d 10.0.0.0/8 -p tcp -m tcp --dport 80 -j TURNOUT_REDIRECT\n"
                  "-A TURNOUT_OUTPUT -d 10.0.0.0/8 -p tcp -m tcp --dport 443 -j "
                  "TURNOUT_REDIRECT\n"
                  "-A TURNOUT_OUTPUT -d 172.16.0.0/12 -p tcp -m tcp --dport 80 -j "
                  "TURNOUT_REDIRECT\n"
                  "-A TURNOUT_OUTPUT -d 172.16.0.0/12 -p tcp -m tcp --dport 443 -j "
                  "TURNOUT_REDIRECT\n"
                  "-A TURNOUT_REDIRECT") != std::string::npos);
}

TEST_CASE("no outbound CIDRs or ports: nothing is redirected outbound", "[capture]") {
  for (const auto& args : {std::vector<std::string>{"--include-outbound-cidrs", ""},
                           std::vector<std::string>{"--outbound-ports", ""}}) {
    std::string r = rules(args);
    CHECK(r.find("-j TURNOUT_REDIRECT") == std::string::npos);
    CHECK(r.find("-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n-A TURNOUT_REDIRECT") !=
          std::string::npos);
  }
}

TEST_CASE("excluded CIDRs return after the loopback and split by family", "[capture]") {
  auto o = parse({"--ipv6", "--exclude-outbound-cidrs", "10.1.2.3/16, fd00::1/8,192.0.2.7"});
  std::string v4 = absl::StrJoin(captureRules(o, IpFamily::kV4), "\n");
  std::string v6 = absl::StrJoin(captureRules(o, IpFamily::kV6), "\n");
  CHECK(v4.find("-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
                "-A TURNOUT_OUTPUT -d 10.1.0.0/16 -j RETURN\n"
                "-A TURNOUT_OUTPUT -d 192.0.2.7/32 -j RETURN\n"
                "-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT") != std::string::npos);
  CHECK(v4.find("fd00") == std::string::npos);
  CHECK(v6.find("-A TURNOUT_OUTPUT -d ::1/128 -j RETURN\n"
                "-A TURNOUT_OUTPUT -d fd00::/8 -j RETURN\n"
                "-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT") != std::string::npos);
}

TEST_CASE("an IPv4-only include list captures no IPv6", "[capture]") {
  auto o = parse({"--ipv6", "--include-outbound-cidrs", "10.0.0.0/8"});
  std::string v6 = absl::StrJoin(captureRules(o, IpFamily::kV6), "\n");
  CHECK(v6.find("-j TURNOUT_REDIRECT") == std::string::npos);
}

TEST_CASE("a /0 prefix has no -d, as iptables-save prints it", "[capture]") {
  CHECK(rules({"--include-outbound-cidrs", "0.0.0.0/0"}).find(
            "-A TURNOUT_OUTPUT -d 127.0.0.1/32 -j RETURN\n-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT\n") !=
        std::string::npos);
}

TEST_CASE("a loopback include range keeps app-to-self traffic over lo captured", "[capture]") {
  std::string r = rules({"--include-outbound-cidrs", "127.0.0.0/8,10.0.0.0/8"});
  CHECK(r.find("-o lo -m owner !") == std::string::npos);
  CHECK(r.find("-A TURNOUT_OUTPUT -d 127.0.0.0/8 -j TURNOUT_REDIRECT\n") != std::string::npos);
  CHECK(r.find("-A TURNOUT_OUTPUT -m owner --uid-owner 1337 -j RETURN\n") != std::string::npos);
}

TEST_CASE("flags parse in both --flag value and --flag=value forms", "[capture]") {
  auto o = parse({"--iptables-backend=legacy", "--dry-run", "--cleanup", "--ipv6",
                  "--proxy-uid=0"});
  CHECK(o.backend == Backend::kLegacy);
  CHECK(o.dry_run);
  CHECK(o.cleanup);
  CHECK(o.ipv6);
  CHECK(o.proxy_uids == std::vector<uint32_t>{0});
  CHECK(parse({"--iptables-backend", "nft"}).backend == Backend::kNft);
  CHECK(parse({"--iptables-backend", "auto"}).backend == Backend::kAuto);
  CHECK(parse({"-h"}).help);
  CHECK(parse({"--help"}).help);
  // Help wins over values that would not validate.
  CHECK(parse({"--proxy-port", "15006", "--help"}).help);
}

TEST_CASE("every bad option value is an error that names the option", "[capture]") {
  using Case = std::pair<std::vector<std::string>, std::string>;
  auto c = GENERATE(
      Case{{"--proxy-port", "70000"}, "--proxy-port: '70000' is not a port (1-65535)"},
      Case{{"--proxy-port", "0"}, "--proxy-port: '0' is not a port (1-65535)"},
      Case{{"--admin-port", "-1"}, "--admin-port: '-1' is not a port (1-65535)"},
      Case{{"--inbound-capture-port=abc"}, "--inbound-capture-port: 'abc' is not a port"},
      Case{{"--proxy-port"}, "--proxy-port: needs a value"},
      Case{{"--inbound-ports", "80,,90"}, "--inbound-ports: empty item in '80,,90'"},
      Case{{"--inbound-ports", "80,*"}, "--inbound-ports: '*' must be the only item"},
      Case{{"--inbound-ports", "8o"}, "--inbound-ports: '8o' is not a port"},
      Case{{"--exclude-inbound-ports", "*"}, "--exclude-inbound-ports: '*' is not allowed"},
      Case{{"--exclude-outbound-ports", "99999"}, "--exclude-outbound-ports: '99999' is not a port"},
      Case{{"--outbound-ports", "1-2"}, "--outbound-ports: '1-2' is not a port"},
      Case{{"--include-outbound-cidrs", "10.0.0.0/33"},
           "--include-outbound-cidrs: '10.0.0.0/33': the prefix length is over 32"},
      Case{{"--include-outbound-cidrs", "10.0.0/8"},
           "--include-outbound-cidrs: '10.0.0/8' is not an IPv4 or IPv6 CIDR"},
      Case{{"--exclude-outbound-cidrs", "10.0.0.0/x"},
           "--exclude-outbound-cidrs: '10.0.0.0/x' has a bad prefix length"},
      Case{{"--exclude-outbound-cidrs", "*"}, "--exclude-outbound-cidrs: '*' is not allowed"},
      Case{{"--exclude-outbound-cidrs", "fd00::/8"},
           "--exclude-outbound-cidrs: 'fd00::/8' is IPv6 and --ipv6 is not set"},
      Case{{"--ipv6", "--include-outbound-cidrs", "fd00::/129"},
           "--include-outbound-cidrs: 'fd00::/129': the prefix length is over 128"},
      Case{{"--proxy-uid", ""}, "--proxy-uid: needs at least one id"},
      Case{{"--proxy-gid", "root"}, "--proxy-gid: 'root' is not a numeric id"},
      Case{{"--proxy-uid", "4294967295"}, "--proxy-uid: '4294967295' is not a numeric id"},
      Case{{"--iptables-backend", "iptables"},
           "--iptables-backend: 'iptables' is not auto, nft or legacy"},
      Case{{"--ipv6=yes"}, "--ipv6: takes no value"},
      Case{{"--bogus"}, "--bogus: unknown option"},
      Case{{"-x"}, "-x: unknown option"},
      Case{{"stray"}, "unexpected argument 'stray'"},
      Case{{"--ipv6", "--ipv6"}, "--ipv6: given more than once"},
      Case{{"--proxy-port", "15006"}, "--proxy-port: 15006 is also --inbound-capture-port"},
      Case{{"--admin-port", "15001"}, "--admin-port: 15001 is also --proxy-port"},
      Case{{"--inbound-ports", "15000"},
           "--inbound-ports: 15000 is the proxy's own port and is never captured"},
      Case{{"--inbound-ports", "15020"}, "--inbound-ports: 15020 is also in --exclude-inbound-ports"},
      Case{{"--outbound-ports", "80", "--exclude-outbound-ports", "80"},
           "--outbound-ports: 80 is also in --exclude-outbound-ports"});
  INFO(absl::StrJoin(c.first, " "));
  CHECK_THAT(errorOf(c.first), Catch::StartsWith(c.second));
}

// A saved nat table with turnout's rules among someone else's.
constexpr const char* kSavedWithTurnout =
    "# Generated by iptables-save v1.8.9 on Fri Dec  4 15:19:59 2026\n"
    "*nat\n"
    ":PREROUTING ACCEPT [0:0]\n"
    ":INPUT ACCEPT [0:0]\n"
    ":OUTPUT ACCEPT [3:180]\n"
    ":POSTROUTING ACCEPT [0:0]\n"
    ":DOCKER - [0:0]\n"
    ":TURNOUT_INBOUND - [0:0]\n"
    ":TURNOUT_IN_REDIRECT - [0:0]\n"
    ":TURNOUT_OUTPUT - [0:0]\n"
    ":TURNOUT_REDIRECT - [0:0]\n"
    "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
    "-A PREROUTING -p tcp -j TURNOUT_INBOUND\n"
    "-A OUTPUT -d 192.0.2.1/32 -m comment --comment \"not -j TURNOUT_OUTPUT\" -j RETURN\n"
    "-A OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
    "-A OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
    "-A DOCKER -i docker0 -j RETURN\n"
    "-A DOCKER -p udp -g TURNOUT_REDIRECT\n"
    "-A TURNOUT_INBOUND -p tcp -j TURNOUT_IN_REDIRECT\n"
    "-A TURNOUT_OUTPUT -j TURNOUT_REDIRECT\n"
    "-A TURNOUT_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
    "COMMIT\n"
    "# Completed on Fri Dec  4 15:19:59 2026\n";

TEST_CASE("cleanup removes exactly turnout's jumps and chains", "[capture]") {
  CHECK(cleanupCommands(kSavedWithTurnout) ==
        std::vector<std::string>{
            "-D PREROUTING -p tcp -j TURNOUT_INBOUND",
            "-D OUTPUT -p tcp -j TURNOUT_OUTPUT",
            "-D OUTPUT -p tcp -j TURNOUT_OUTPUT",
            "-D DOCKER -p udp -g TURNOUT_REDIRECT",
            "-F TURNOUT_INBOUND",
            "-F TURNOUT_IN_REDIRECT",
            "-F TURNOUT_OUTPUT",
            "-F TURNOUT_REDIRECT",
            "-X TURNOUT_INBOUND",
            "-X TURNOUT_IN_REDIRECT",
            "-X TURNOUT_OUTPUT",
            "-X TURNOUT_REDIRECT",
        });
  CHECK(cleanupInput(kSavedWithTurnout).rfind("*nat\n-D PREROUTING", 0) == 0);
}

TEST_CASE("cleanup of a table without turnout's rules is empty", "[capture]") {
  const char* saved =
      "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
      ":TURNOUT_OTHER - [0:0]\n-A OUTPUT -j TURNOUT_OTHER\nCOMMIT\n";
  CHECK(cleanupCommands(saved).empty());
  CHECK(cleanupInput(saved).empty());
  CHECK(cleanupCommands("").empty());
  // Chains of that name in another table are not the nat table's.
  CHECK(cleanupCommands("*filter\n:TURNOUT_OUTPUT - [0:0]\n-A OUTPUT -j TURNOUT_OUTPUT\n"
                        "COMMIT\n")
            .empty());
}

TEST_CASE("apply replaces what is there in one transaction", "[capture]") {
  auto o = parse({});
  CHECK(applyInput(o, IpFamily::kV4, "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n") ==
        restoreInput(o, IpFamily::kV4));
  std::string input = applyInput(o, IpFamily::kV4, kSavedWithTurnout);
  CHECK(input ==
        "*nat\n"
        "-D PREROUTING -p tcp -j TURNOUT_INBOUND\n"
        "-D OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
        "-D OUTPUT -p tcp -j TURNOUT_OUTPUT\n"
        "-D DOCKER -p udp -g TURNOUT_REDIRECT\n"
        "-F TURNOUT_INBOUND\n-F TURNOUT_IN_REDIRECT\n-F TURNOUT_OUTPUT\n-F TURNOUT_REDIRECT\n"
        "-X TURNOUT_INBOUND\n-X TURNOUT_IN_REDIRECT\n-X TURNOUT_OUTPUT\n-X TURNOUT_REDIRECT\n" +
            std::string(kChains) + kDefaultV4 + "COMMIT\n");
}

TEST_CASE("auto picks the backend that has turnout's rules, then any rules, then the system's",
          "[capture]") {
  BackendProbe none{.available = true, .has_turnout = false, .has_rules = false};
  BackendProbe rules{.available = true, .has_turnout = false, .has_rules = true};
  BackendProbe turnout{.available = true, .has_turnout = true, .has_rules = true};
  BackendProbe missing{};
  CHECK(chooseBackend(none, turnout, Backend::kNft) == Backend::kLegacy);
  CHECK(chooseBackend(turnout, rules, Backend::kLegacy) == Backend::kNft);
  CHECK(chooseBackend(none, rules, Backend::kNft) == Backend::kLegacy);
  CHECK(chooseBackend(rules, none, Backend::kLegacy) == Backend::kNft);
  CHECK(chooseBackend(none, none, Backend::kLegacy) == Backend::kLegacy);
  CHECK(chooseBackend(rules, rules, Backend::kNft) == Backend::kNft);
  CHECK(chooseBackend(none, none, std::nullopt) == Backend::kNft);
  CHECK(chooseBackend(missing, none, Backend::kNft) == Backend::kLegacy);
  CHECK(chooseBackend(turnout, missing, Backend::kLegacy) == Backend::kNft);
  CHECK(chooseBackend(missing, missing, Backend::kNft) == std::nullopt);
}

TEST_CASE("the system backend comes from iptables --version", "[capture]") {
  CHECK(backendFromVersion("iptables v1.8.9 (nf_tables)\n") == Backend::kNft);
  CHECK(backendFromVersion("iptables v1.8.9 (legacy)\n") == Backend::kLegacy);
  CHECK(backendFromVersion("iptables v1.6.1\n") == Backend::kLegacy);
  CHECK(backendFromVersion("something else") == std::nullopt);
  CHECK(backendProgram(Backend::kNft, IpFamily::kV6, "-restore") == "ip6tables-nft-restore");
  CHECK(backendProgram(Backend::kLegacy, IpFamily::kV4, "-save") == "iptables-legacy-save");
}

constexpr const char* kEmptyNat =
    "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

// A fake iptables: answers save commands from `tables` and records restores.
struct FakeIptables {
  std::map<std::string, CommandResult> answers;  // by the joined argv
  std::vector<std::pair<std::string, std::string>> calls;  // argv, stdin

  CommandRunner runner() {
    return [this](const std::vector<std::string>& argv, std::string_view input) {
      std::string cmd = absl::StrJoin(argv, " ");
      calls.emplace_back(cmd, std::string(input));
      auto it = answers.find(cmd);
      if (it != answers.end()) return it->second;
      return CommandResult{.started = false, .exit_code = -1, .out = "", .err = "not found"};
    };
  }
  void answer(const std::string& cmd, std::string out, int code = 0, std::string err = "") {
    answers[cmd] = CommandResult{.started = true, .exit_code = code, .out = std::move(out),
                                 .err = std::move(err)};
  }
  // nft for both families, with no nat rules yet, taking what is restored.
  void answerEmptyNft() {
    for (const char* family : {"iptables", "ip6tables"}) {
      answer(absl::StrCat(family, "-nft-save -t nat"), kEmptyNat);
      answer(absl::StrCat(family, "-nft-restore --noflush --wait 5"), "");
    }
  }
  std::vector<std::string> commands() const {
    std::vector<std::string> out;
    for (const auto& c : calls) out.push_back(c.first);
    return out;
  }
};

// `ip -6 -o addr show dev lo`: without ::6, with turnout's (nodad), with someone else's.
constexpr const char* kLoPlain =
    "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever\n";
constexpr const char* kLoWithOurs =
    "1: lo    inet6 ::6/128 scope global nodad \\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever\n";
constexpr const char* kLoWithTheirs =
    "1: lo    inet6 ::6/128 scope global \\       valid_lft forever preferred_lft forever\n"
    "1: lo    inet6 ::1/128 scope host \\       valid_lft forever preferred_lft forever\n";

struct Run {
  int code;
  std::string out, err;
};

Run run(FakeIptables& fake, const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = runIptablesCommand(args, fake.runner(), out, err);
  return {code, out.str(), err.str()};
}

TEST_CASE("dry run (--dry-run) prints the restore input and runs nothing", "[capture]") {
  FakeIptables fake;
  Run r = run(fake, {"--dry-run", "--ipv6"});
  CHECK(r.code == 0);
  CHECK(fake.calls.empty());
  CHECK(r.out == "# turnout iptables: IPv4 nat rules (iptables-restore --noflush input)\n" +
                     restoreInput(parse({}), IpFamily::kV4) +
                     "# turnout iptables: IPv6 nat rules (ip6tables-restore --noflush input)\n" +
                     restoreInput(parse({"--ipv6"}), IpFamily::kV6) +
                     "# turnout iptables: IPv6 inbound passthrough source (unless lo has it)\n"
                     "ip -6 addr add ::6/128 dev lo nodad\n");
}

TEST_CASE("a usage error exits 2 with the option named on stderr", "[capture]") {
  FakeIptables fake;
  Run r = run(fake, {"--proxy-port", "99999"});
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK(r.err ==
        "turnout iptables: --proxy-port: '99999' is not a port (1-65535)\n"
        "Run 'turnout iptables --help' for usage.\n");
  CHECK(fake.calls.empty());
  Run help = run(fake, {"--help"});
  CHECK(help.code == 0);
  CHECK(help.out.find("USAGE: turnout iptables [options]") == 0);
  CHECK(help.out.find("--exclude-outbound-cidrs") != std::string::npos);
}

TEST_CASE("apply with an explicit backend reads the nat table and restores once", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-legacy-save -t nat", kSavedWithTurnout);
  fake.answer("iptables-legacy-restore --noflush --wait 5", "");
  fake.answer("ip6tables-legacy-save -t nat", kEmptyNat);
  Run r = run(fake, {"--iptables-backend", "legacy"});
  INFO(r.err);
  CHECK(r.code == 0);
  REQUIRE(fake.commands() == std::vector<std::string>{"iptables-legacy-save -t nat",
                                                      "iptables-legacy-restore --noflush --wait 5",
                                                      "ip6tables-legacy-save -t nat",
                                                      "ip -6 -o addr show dev lo"});
  CHECK(fake.calls[1].second == applyInput(parse({}), IpFamily::kV4, kSavedWithTurnout));
  CHECK(r.out.find("IPv4 capture rules applied (iptables-legacy-restore, 20 rules)") !=
        std::string::npos);
}

TEST_CASE("apply without --ipv6 removes turnout's IPv6 rules of an earlier run", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save -t nat", kEmptyNat);
  fake.answer("iptables-nft-restore --noflush --wait 5", "");
  fake.answer("ip6tables-nft-save -t nat", kSavedWithTurnout);
  fake.answer("ip6tables-nft-restore --noflush --wait 5", "");
  fake.answer("ip -6 -o addr show dev lo", kLoWithOurs);
  fake.answer("ip -6 addr del ::6/128 dev lo", "");
  Run r = run(fake, {"--iptables-backend", "nft"});
  CHECK(r.code == 0);
  REQUIRE(fake.calls.size() == 6);
  CHECK(fake.calls[3].first == "ip6tables-nft-restore --noflush --wait 5");
  CHECK(fake.calls[3].second == cleanupInput(kSavedWithTurnout));
  CHECK(fake.calls[5].first == "ip -6 addr del ::6/128 dev lo");
}

TEST_CASE("apply with --ipv6 writes both families", "[capture]") {
  FakeIptables fake;
  fake.answerEmptyNft();
  fake.answer("ip -6 -o addr show dev lo", kLoPlain);
  fake.answer("ip -6 addr add ::6/128 dev lo nodad", "");
  Run r = run(fake, {"--iptables-backend=nft", "--ipv6"});
  CHECK(r.code == 0);
  REQUIRE(fake.calls.size() == 6);
  CHECK(fake.calls[3].second == restoreInput(parse({"--ipv6"}), IpFamily::kV6));
}

TEST_CASE("an --ipv6 run adds ::6/128 to lo with turnout's mark and a re-run adds nothing", "[capture]") {
  FakeIptables fake;
  fake.answerEmptyNft();
  fake.answer("ip -6 -o addr show dev lo", kLoPlain);
  fake.answer("ip -6 addr add ::6/128 dev lo nodad", "");
  Run r = run(fake, {"--iptables-backend=nft", "--ipv6"});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(fake.commands().back() == "ip -6 addr add ::6/128 dev lo nodad");
  CHECK(r.out.find("::6/128 added to lo") != std::string::npos);

  // There already (turnout's from an earlier run, or someone else's): left as it is.
  for (const char* lo : {kLoWithOurs, kLoWithTheirs}) {
    fake.calls.clear();
    fake.answer("ip -6 -o addr show dev lo", lo);
    Run again = run(fake, {"--iptables-backend=nft", "--ipv6"});
    CHECK(again.code == 0);
    CHECK(fake.commands().back() == "ip -6 -o addr show dev lo");
    CHECK(again.out.find("::6/128 already on lo") != std::string::npos);
  }
}

TEST_CASE("an --ipv6 run exits 1 with ip's message when ip fails", "[capture]") {
  FakeIptables fake;
  fake.answerEmptyNft();
  Run missing = run(fake, {"--iptables-backend=nft", "--ipv6"});
  CHECK(missing.code == 1);
  CHECK(missing.err ==
        "turnout iptables: cannot read lo's addresses: ip -6 -o addr show dev lo: not found "
        "(is the iproute2 package installed?)\n");
  fake.answer("ip -6 -o addr show dev lo", kLoPlain);
  fake.answer("ip -6 addr add ::6/128 dev lo nodad", "", 2, "RTNETLINK answers: Operation not permitted\n");
  Run denied = run(fake, {"--iptables-backend=nft", "--ipv6"});
  CHECK(denied.code == 1);
  CHECK(denied.err ==
        "turnout iptables: ip -6 addr add ::6/128 dev lo nodad exited with 2: RTNETLINK answers: "
        "Operation not permitted\n");
}

TEST_CASE("the passthrough address on lo is turnout's only with its nodad mark", "[capture]") {
  CHECK(passthroughAddressOnLo(kLoPlain) == LoopbackAddress::kAbsent);
  CHECK(passthroughAddressOnLo("") == LoopbackAddress::kAbsent);
  CHECK(passthroughAddressOnLo(kLoWithOurs) == LoopbackAddress::kTurnouts);
  CHECK(passthroughAddressOnLo(kLoWithTheirs) == LoopbackAddress::kSomeoneElses);
  // Another address that merely starts like it.
  CHECK(passthroughAddressOnLo("1: lo    inet6 ::66/128 scope global nodad \\       valid_lft "
                               "forever preferred_lft forever\n") == LoopbackAddress::kAbsent);
}

TEST_CASE("auto applies to the backend that already has rules", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save", "*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
  fake.answer("ip6tables-nft-save", "");
  fake.answer("iptables-legacy-save",
              "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\nCOMMIT\n");
  fake.answer("ip6tables-legacy-save", "");
  fake.answer("iptables --version", "iptables v1.8.9 (nf_tables)\n");
  fake.answer("iptables-legacy-save -t nat", kEmptyNat);
  fake.answer("iptables-legacy-restore --noflush --wait 5", "");
  fake.answer("ip6tables-legacy-save -t nat", kEmptyNat);
  Run r = run(fake, {});
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(fake.commands() ==
        std::vector<std::string>{"iptables-nft-save", "ip6tables-nft-save",
                                 "iptables-legacy-save", "ip6tables-legacy-save",
                                 "iptables --version", "iptables-legacy-save -t nat",
                                 "iptables-legacy-restore --noflush --wait 5",
                                 "ip6tables-legacy-save -t nat", "ip -6 -o addr show dev lo"});
}

TEST_CASE("a failing restore exits 1 with iptables' message", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save -t nat", kEmptyNat);
  fake.answer("iptables-nft-restore --noflush --wait 5", "", 4,
              "iptables-restore: line 3 failed\n");
  Run r = run(fake, {"--iptables-backend", "nft"});
  CHECK(r.code == 1);
  CHECK(r.err ==
        "turnout iptables: iptables-nft-restore --noflush --wait 5 exited with 4: "
        "iptables-restore: line 3 failed\n");
}

TEST_CASE("a missing iptables exits 1 and says so", "[capture]") {
  FakeIptables fake;
  Run r = run(fake, {"--iptables-backend", "legacy"});
  CHECK(r.code == 1);
  CHECK(r.err ==
        "turnout iptables: cannot read the nat table: iptables-legacy-save -t nat: not found "
        "(is the iptables package installed?)\n");
  Run a = run(fake, {});
  CHECK(a.code == 1);
  CHECK(a.err.find("neither iptables-nft-save nor iptables-legacy-save runs") !=
        std::string::npos);
}

TEST_CASE("cleanup removes turnout's rules from every backend that has them", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save", kEmptyNat);
  fake.answer("ip6tables-nft-save", kEmptyNat);
  fake.answer("iptables-legacy-save", kSavedWithTurnout);
  fake.answer("ip6tables-legacy-save", "", 1, "can't initialize ip6tables table `nat'");
  fake.answer("iptables-legacy-save -t nat", kSavedWithTurnout);
  fake.answer("ip6tables-legacy-save -t nat", "", 1, "can't initialize ip6tables table `nat'");
  fake.answer("iptables-legacy-restore --noflush --wait 5", "");
  Run r = run(fake, {"--cleanup"});
  INFO(r.err);
  CHECK(r.code == 0);
  REQUIRE(fake.commands() ==
          std::vector<std::string>{"iptables-nft-save", "ip6tables-nft-save",
                                   "iptables-legacy-save", "ip6tables-legacy-save",
                                   "iptables-legacy-save -t nat",
                                   "iptables-legacy-restore --noflush --wait 5",
                                   "ip6tables-legacy-save -t nat", "ip -6 -o addr show dev lo"});
  CHECK(fake.calls[5].second == cleanupInput(kSavedWithTurnout));
  CHECK(r.out == "turnout iptables: IPv4 capture rules removed (iptables-legacy-restore)\n");
}

TEST_CASE("cleanup removes ::6/128 from lo only when turnout added it", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save -t nat", kEmptyNat);
  fake.answer("ip6tables-nft-save -t nat", kEmptyNat);
  fake.answer("ip -6 -o addr show dev lo", kLoWithOurs);
  fake.answer("ip -6 addr del ::6/128 dev lo", "");
  Run dry = run(fake, {"--cleanup", "--dry-run", "--iptables-backend", "nft"});
  CHECK(dry.code == 0);
  CHECK(dry.out ==
        "# turnout iptables: IPv6 inbound passthrough source turnout added to lo\n"
        "ip -6 addr del ::6/128 dev lo\n");
  CHECK(fake.commands().back() == "ip -6 -o addr show dev lo");
  Run r = run(fake, {"--cleanup", "--iptables-backend", "nft"});
  CHECK(r.code == 0);
  CHECK(r.out == "turnout iptables: ::6/128 removed from lo\n");
  CHECK(fake.commands().back() == "ip -6 addr del ::6/128 dev lo");

  fake.calls.clear();
  fake.answer("ip -6 -o addr show dev lo", kLoWithTheirs);
  Run theirs = run(fake, {"--cleanup", "--iptables-backend", "nft"});
  CHECK(theirs.code == 0);
  CHECK(theirs.out == "turnout iptables: no capture rules to remove\n");
  for (const auto& c : fake.commands()) CHECK(c.find("addr del") == std::string::npos);
}

TEST_CASE("cleanup with nothing there succeeds and changes nothing", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save -t nat", kEmptyNat);
  fake.answer("ip6tables-nft-save -t nat", kEmptyNat);
  Run r = run(fake, {"--cleanup", "--iptables-backend", "nft"});
  CHECK(r.code == 0);
  CHECK(r.out == "turnout iptables: no capture rules to remove\n");
  for (const auto& c : fake.commands()) CHECK(c.find("restore") == std::string::npos);
}

TEST_CASE("cleanup --dry-run prints what it would remove and removes nothing", "[capture]") {
  FakeIptables fake;
  fake.answer("iptables-nft-save -t nat", kSavedWithTurnout);
  fake.answer("ip6tables-nft-save -t nat", kEmptyNat);
  Run r = run(fake, {"--cleanup", "--dry-run", "--iptables-backend", "nft"});
  CHECK(r.code == 0);
  CHECK(r.out == "# turnout iptables: IPv4 cleanup (iptables-nft-restore --noflush input)\n" +
                     cleanupInput(kSavedWithTurnout));
  for (const auto& c : fake.commands()) CHECK(c.find("restore") == std::string::npos);
}

}  // namespace
}  // namespace turnout::proxy::capture
