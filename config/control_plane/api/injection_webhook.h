#pragma once

// The sidecar injector's pure half (docs/kubernetes.md): one Kubernetes
// AdmissionReview (admission.k8s.io/v1) for a Pod in, the AdmissionReview
// answer out, with an RFC 6902 JSON Patch that adds the capture init
// container `turnout-init`, the sidecar `turnout-proxy` and the annotation
// `turnout.dev/status: injected` to pods that ask for it. No I/O, no clock:
// the HTTPS server around it is injection_webhook_server.h.
//
// Which pods: `turnout.dev/inject: "true"` as an annotation or a label
// ("false" in either wins). Skipped, allowed unchanged: every other pod; a
// pod already injected (a container `turnout-proxy` or the annotation
// `turnout.dev/status`); a hostNetwork pod (with a warning: its capture
// rules would take the node's traffic); any kind but Pod; any operation but
// CREATE. Denied (allowed: false, with the reason): an injected pod whose
// service name or `turnout.dev/exclude-inbound-ports` is invalid. A review
// that is not a v1 AdmissionReview of a Pod is malformed: an error naming the
// field, which the server answers with 400.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "config/control_plane/sidecar.h"

namespace turnout::control_plane {

// The injected sidecar's fixed numbers (DESIGN.md §9; the capture ports are
// the ones turnout-cp's capture listeners use).
inline constexpr uint32_t kSidecarUid = 1337;
inline constexpr uint32_t kSidecarGid = 1337;
inline constexpr uint32_t kSidecarOutboundPort = kOutboundCapturePort;
inline constexpr uint32_t kSidecarInboundPort = kInboundCapturePort;
// kSidecarAdminPort, kSidecarReadinessPort: config/control_plane/sidecar.h.
inline constexpr char kSidecarReadinessPath[] = "/healthz/ready";

inline constexpr char kProxyContainerName[] = "turnout-proxy";
inline constexpr char kInitContainerName[] = "turnout-init";
inline constexpr char kInjectKey[] = "turnout.dev/inject";
inline constexpr char kStatusAnnotation[] = "turnout.dev/status";
inline constexpr char kServiceAnnotation[] = "turnout.dev/service";
inline constexpr char kExcludeInboundPortsAnnotation[] = "turnout.dev/exclude-inbound-ports";
// ipv4 (the default), ipv6 or dual: the pod's IP families (docs/sidecar.md
// "IP families"); anything else is denied.
inline constexpr char kIpFamiliesAnnotation[] = "turnout.dev/ip-families";

// What turnout-cp injects; `turnout-cp serve --inject-*` flags
// (docs/kubernetes.md lists them with these defaults).
struct InjectionOptions {
  std::string proxy_image = "turnout:0.1.0";
  std::string init_image;  // empty: proxy_image (the same binary, `turnout iptables`)
  std::string image_pull_policy = "IfNotPresent";
  // turnout-cp's ADS server as the pods reach it.
  std::string xds_host = "turnout-cp.turnout-system.svc";
  uint32_t xds_port = 18000;
  // Inbound ports never captured (kSidecarReadinessPort always is not).
  std::vector<uint32_t> exclude_inbound_ports;
  // The sidecar's resources (Kubernetes quantities); empty: not set.
  std::string proxy_cpu_request = "100m";
  std::string proxy_memory_request = "64Mi";
  std::string proxy_cpu_limit;
  std::string proxy_memory_limit = "256Mi";
  uint32_t proxy_concurrency = 2;
  std::string proxy_log_level = "info";
};

// Applies `--inject-...` flag `flag` (with its dashes) to `options`: false
// when `flag` is no injection flag, InvalidArgument naming the flag when
// `value` is bad.
absl::StatusOr<bool> setInjectionFlag(InjectionOptions& options, std::string_view flag,
                                      std::string_view value);
// The injection flags' lines for `turnout-cp --help`.
std::string injectionFlagsUsage();

// The answer to one AdmissionReview (`review_json`, the request body): the
// AdmissionReview response JSON, or InvalidArgument whose message starts with
// the field that is wrong (`request.uid: missing`) when the review is
// malformed.
absl::StatusOr<std::string> reviewAdmission(std::string_view review_json, const InjectionOptions& options);

// The sidecar's service for a pod: annotation `turnout.dev/service`, else
// label `app.kubernetes.io/name`, else label `app`, else the generateName
// stem (without the trailing '-' and a ReplicaSet's `-<pod-template-hash>`),
// else the pod's name. Exposed for tests; `pod_json` is a Pod.
absl::StatusOr<std::string> podServiceName(std::string_view pod_json);

// "a,b,c" of ports 1..65535 (spaces allowed around each); `what` names the
// flag or annotation in errors.
absl::StatusOr<std::vector<uint32_t>> parsePortList(std::string_view what, std::string_view text);

// The injected sidecar's bootstrap (YAML, for `turnout --config-yaml`): node
// `node_id` in cluster `service` with metadata `turnout: {mode: sidecar,
// service, namespace}` (what makes turnout-cp send it the capture listeners:
// virtualOutbound on 15001, virtualInbound on 15006, per-port outbound
// listeners, as `turnout-cp bootstrap --mode capture`), ADS over h2c to
// options.xds_host:xds_port, the admin on 127.0.0.1:kSidecarAdminPort and
// the static listener `readiness` on 0.0.0.0:kSidecarReadinessPort: GET
// /healthz/ready is 200 (503 once /healthcheck/fail is in effect), anything
// else 404. The kubelet probes it at the pod's IP; the admin stays on
// loopback. `families` other than IPv4 puts `ip_families` in the node
// metadata and the readiness listener on `::` (dual: with ipv4_compat).
std::string sidecarBootstrapYaml(const InjectionOptions& options, std::string_view node_id,
                                 std::string_view service, std::string_view ns,
                                 IpFamilies families = IpFamilies::kIpv4);

// A Kubernetes resource quantity ("100m", "64Mi", "1.5", "2G").
bool isQuantity(std::string_view text);

}  // namespace turnout::control_plane
