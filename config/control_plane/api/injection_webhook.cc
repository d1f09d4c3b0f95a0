#include "config/control_plane/api/injection_webhook.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "config/control_plane/model.h"
#include "config/control_plane/sidecar_bootstrap.h"
#include "config/json_limits.h"
#include "config/json_string.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace turnout::control_plane {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kReviewApiVersion[] = "admission.k8s.io/v1";
constexpr char kReviewKind[] = "AdmissionReview";

// Debian's abseil has its own string_view: StrCat takes this one.
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string q(std::string_view s) {
  std::string out;
  config::appendJsonString(out, s);
  return out;
}

absl::Status malformed(std::string_view field, std::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(av(field), ": ", av(problem)));
}

// `text` shortened for an error message.
std::string shown(std::string_view text) {
  constexpr size_t kMax = 64;
  if (text.size() <= kMax) return absl::StrCat("'", av(text), "'");
  return absl::StrCat("'", av(text.substr(0, kMax)), "...'");
}

const Value* member(const Value& object, const char* name) {
  if (object.kind_case() != Value::kStructValue) return nullptr;
  const auto& fields = object.struct_value().fields();
  auto it = fields.find(name);
  if (it == fields.end() || it->second.kind_case() == Value::kNullValue) return nullptr;
  return &it->second;
}

// A member that must be an object when present.
absl::StatusOr<const Value*> objectMember(const Value& object, const char* name, std::string_view path) {
  const Value* v = member(object, name);
  if (v != nullptr && v->kind_case() != Value::kStructValue) {
    return malformed(absl::StrCat(av(path), ".", name), "not an object");
  }
  return v;
}

// A member that must be a string when present; "" when absent.
absl::StatusOr<std::string> stringMember(const Value& object, const char* name, std::string_view path) {
  const Value* v = member(object, name);
  if (v == nullptr) return std::string();
  if (v->kind_case() != Value::kStringValue) return malformed(absl::StrCat(av(path), ".", name), "not a string");
  return v->string_value();
}

// metadata.labels or metadata.annotations: a map of strings (absent: empty).
absl::StatusOr<std::map<std::string, std::string>> stringMap(const Value* metadata, const char* name,
                                                             std::string_view path) {
  std::map<std::string, std::string> out;
  if (metadata == nullptr) return out;
  auto m = objectMember(*metadata, name, path);
  if (!m.ok()) return m.status();
  if (*m == nullptr) return out;
  for (const auto& [key, value] : (*m)->struct_value().fields()) {
    if (value.kind_case() != Value::kStringValue) {
      return malformed(absl::StrCat(av(path), ".", name, "[", q(key), "]"), "not a string");
    }
    out.emplace(key, value.string_value());
  }
  return out;
}

absl::StatusOr<Value> parseJson(std::string_view what, std::string_view json) {
  if (!config::jsonNestingWithin(json)) {
    return absl::InvalidArgumentError(absl::StrCat(av(what), " nests arrays and objects deeper than ",
                                                   config::kMaxJsonNesting));
  }
  Value root;
  google::protobuf::util::JsonParseOptions options;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        av(what), " is not JSON: ",
        config::jsonParseReason(std::string_view(status.message().data(), status.message().size()))));
  }
  return root;
}

// ---- the pod as far as injection reads it ---------------------------------------

struct PodView {
  const Value* metadata = nullptr;  // may be null
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  bool has_annotations = false;     // metadata.annotations is an object
  bool has_init_containers = false;  // spec.initContainers is an array
  std::vector<std::string> container_names;  // spec.containers and spec.initContainers
  bool host_network = false;
  std::string name;
  std::string generate_name;
};

absl::StatusOr<PodView> readPod(const Value& pod, std::string_view path) {
  PodView view;
  if (pod.kind_case() != Value::kStructValue) return malformed(path, "not an object (a Pod)");
  auto kind = stringMember(pod, "kind", path);
  if (!kind.ok()) return kind.status();
  if (!kind->empty() && *kind != "Pod") {
    return malformed(absl::StrCat(av(path), ".kind"), absl::StrCat(shown(*kind), " is not Pod"));
  }
  auto api_version = stringMember(pod, "apiVersion", path);
  if (!api_version.ok()) return api_version.status();
  if (!api_version->empty() && *api_version != "v1") {
    return malformed(absl::StrCat(av(path), ".apiVersion"), absl::StrCat(shown(*api_version), " is not v1"));
  }
  const std::string metadata_path = absl::StrCat(av(path), ".metadata");
  auto metadata = objectMember(pod, "metadata", path);
  if (!metadata.ok()) return metadata.status();
  view.metadata = *metadata;
  auto labels = stringMap(view.metadata, "labels", metadata_path);
  if (!labels.ok()) return labels.status();
  view.labels = std::move(*labels);
  auto annotations = stringMap(view.metadata, "annotations", metadata_path);
  if (!annotations.ok()) return annotations.status();
  view.annotations = std::move(*annotations);
  view.has_annotations = view.metadata != nullptr && member(*view.metadata, "annotations") != nullptr;
  if (view.metadata != nullptr) {
    auto name = stringMember(*view.metadata, "name", metadata_path);
    if (!name.ok()) return name.status();
    view.name = *name;
    auto generate_name = stringMember(*view.metadata, "generateName", metadata_path);
    if (!generate_name.ok()) return generate_name.status();
    view.generate_name = *generate_name;
  }

  const std::string spec_path = absl::StrCat(av(path), ".spec");
  auto spec = objectMember(pod, "spec", path);
  if (!spec.ok()) return spec.status();
  if (*spec == nullptr) return malformed(spec_path, "missing (a Pod has a spec)");
  for (const char* list : {"containers", "initContainers"}) {
    const std::string list_path = absl::StrCat(spec_path, ".", list);
    const Value* v = member(**spec, list);
    if (v == nullptr) {
      if (std::string_view(list) == "containers") return malformed(list_path, "missing (a Pod has containers)");
      continue;
    }
    if (v->kind_case() != Value::kListValue) return malformed(list_path, "not an array");
    if (std::string_view(list) == "initContainers") view.has_init_containers = true;
    int i = 0;
    for (const Value& c : v->list_value().values()) {
      const std::string c_path = absl::StrCat(list_path, "[", i++, "]");
      if (c.kind_case() != Value::kStructValue) return malformed(c_path, "not an object (a container)");
      auto name = stringMember(c, "name", c_path);
      if (!name.ok()) return name.status();
      view.container_names.push_back(*name);
    }
  }
  if (const Value* host_network = member(**spec, "hostNetwork")) {
    if (host_network->kind_case() != Value::kBoolValue) return malformed(spec_path + ".hostNetwork", "not a boolean");
    view.host_network = host_network->bool_value();
  }
  return view;
}

absl::StatusOr<std::string> serviceOf(const PodView& pod) {
  auto check = [](std::string_view from, const std::string& name) -> absl::StatusOr<std::string> {
    if (auto s = validateServiceName("", name); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the sidecar's service comes from ", av(from), ": ", shown(name),
          " is not a turnout service name (an RFC 1123 DNS label: 1..63 of [a-z0-9-], alphanumeric at both ends, "
          "no \"--\"); set the annotation ",
          kServiceAnnotation, " to the pod's service"));
    }
    return name;
  };
  if (auto it = pod.annotations.find(kServiceAnnotation); it != pod.annotations.end()) {
    return check(absl::StrCat("annotation ", kServiceAnnotation), it->second);
  }
  for (const char* label : {"app.kubernetes.io/name", "app"}) {
    if (auto it = pod.labels.find(label); it != pod.labels.end() && !it->second.empty()) {
      return check(absl::StrCat("label ", label), it->second);
    }
  }
  if (!pod.generate_name.empty()) {
    std::string stem = pod.generate_name;
    while (!stem.empty() && stem.back() == '-') stem.pop_back();
    // A Deployment's pods: generateName "<deployment>-<pod-template-hash>-".
    if (auto it = pod.labels.find("pod-template-hash"); it != pod.labels.end() && !it->second.empty()) {
      const std::string suffix = "-" + it->second;
      if (stem.size() > suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0) {
        stem.resize(stem.size() - suffix.size());
      }
    }
    return check("metadata.generateName", stem);
  }
  if (!pod.name.empty()) return check("metadata.name", pod.name);
  return absl::InvalidArgumentError(absl::StrCat("the pod has no name, generateName, ", kServiceAnnotation,
                                                 " annotation or app label to name its service"));
}

// The JSON Pointer (RFC 6901) token for `key`.
std::string pointerToken(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string stringArray(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  quoted.reserve(items.size());
  for (const std::string& s : items) quoted.push_back(q(s));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::string resourcesJson(const std::vector<std::pair<const char*, std::string>>& requests,
                          const std::vector<std::pair<const char*, std::string>>& limits) {
  auto section = [](const std::vector<std::pair<const char*, std::string>>& entries) {
    std::vector<std::string> parts;
    for (const auto& [name, value] : entries) {
      if (!value.empty()) parts.push_back(absl::StrCat(q(name), ":", q(value)));
    }
    return parts;
  };
  std::vector<std::string> out;
  if (auto r = section(requests); !r.empty()) out.push_back(absl::StrCat("\"requests\":{", absl::StrJoin(r, ","), "}"));
  if (auto l = section(limits); !l.empty()) out.push_back(absl::StrCat("\"limits\":{", absl::StrJoin(l, ","), "}"));
  return absl::StrCat("{", absl::StrJoin(out, ","), "}");
}

std::string initContainerJson(const InjectionOptions& o, const std::vector<uint32_t>& exclude_inbound,
                              IpFamilies families) {
  std::vector<std::string> args = {"iptables",
                                   "--proxy-port", absl::StrCat(kSidecarOutboundPort),
                                   "--inbound-capture-port", absl::StrCat(kSidecarInboundPort),
                                   "--proxy-uid", absl::StrCat(kSidecarUid),
                                   "--proxy-gid", absl::StrCat(kSidecarGid),
                                   "--exclude-inbound-ports", absl::StrJoin(exclude_inbound, ",")};
  // IPv6 capture rules, and ::6 on lo for the inbound passthrough.
  if (families != IpFamilies::kIpv4) args.push_back("--ipv6");
  return absl::StrCat(
      "{\"name\":", q(kInitContainerName), ",\"image\":", q(o.init_image.empty() ? o.proxy_image : o.init_image),
      ",\"imagePullPolicy\":", q(o.image_pull_policy), ",\"command\":[\"turnout\"],\"args\":", stringArray(args),
      ",\"resources\":", resourcesJson({{"cpu", "10m"}, {"memory", "16Mi"}}, {{"cpu", "100m"}, {"memory", "64Mi"}}),
      ",\"securityContext\":{\"runAsUser\":0,\"runAsGroup\":0,\"runAsNonRoot\":false,\"privileged\":false,"
      "\"allowPrivilegeEscalation\":false,\"readOnlyRootFilesystem\":false,"
      "\"capabilities\":{\"add\":[\"NET_ADMIN\",\"NET_RAW\"],\"drop\":[\"ALL\"]}}}");
}

std::string proxyContainerJson(const InjectionOptions& o, const std::string& service, const std::string& ns,
                               IpFamilies families) {
  // $(VAR) in args is expanded by the kubelet from the container's env.
  const std::string node_id = "$(POD_NAME).$(POD_NAMESPACE)";
  const std::vector<std::string> args = {
      "--config-yaml", sidecarBootstrapYaml(o, node_id, service, ns, families),
      "--service-node", node_id,
      "--service-cluster", service,
      "--concurrency", absl::StrCat(o.proxy_concurrency),
      "--log-level", o.proxy_log_level};
  auto field_env = [](const char* name, const char* path) {
    return absl::StrCat("{\"name\":", q(name), ",\"valueFrom\":{\"fieldRef\":{\"apiVersion\":\"v1\",\"fieldPath\":",
                        q(path), "}}}");
  };
  return absl::StrCat(
      "{\"name\":", q(kProxyContainerName), ",\"image\":", q(o.proxy_image),
      ",\"imagePullPolicy\":", q(o.image_pull_policy), ",\"command\":[\"turnout\"],\"args\":", stringArray(args),
      ",\"env\":[", field_env("POD_NAME", "metadata.name"), ",", field_env("POD_NAMESPACE", "metadata.namespace"),
      "],\"ports\":[{\"name\":\"turnout-ready\",\"containerPort\":", kSidecarReadinessPort,
      ",\"protocol\":\"TCP\"}]",
      ",\"readinessProbe\":{\"httpGet\":{\"path\":", q(kSidecarReadinessPath), ",\"port\":", kSidecarReadinessPort,
      "},\"initialDelaySeconds\":1,\"periodSeconds\":2,\"timeoutSeconds\":1,\"failureThreshold\":3}",
      ",\"resources\":",
      resourcesJson({{"cpu", o.proxy_cpu_request}, {"memory", o.proxy_memory_request}},
                    {{"cpu", o.proxy_cpu_limit}, {"memory", o.proxy_memory_limit}}),
      ",\"securityContext\":{\"runAsUser\":", kSidecarUid, ",\"runAsGroup\":", kSidecarGid,
      ",\"runAsNonRoot\":true,\"privileged\":false,\"allowPrivilegeEscalation\":false,"
      "\"readOnlyRootFilesystem\":true,\"capabilities\":{\"drop\":[\"ALL\"]}}}");
}

// What to answer: a patch (inject), nothing (skip), or a denial.
struct Decision {
  std::string patch;  // the JSON Patch; empty: none
  std::vector<std::string> warnings;
  std::optional<std::string> denied;  // allowed: false with this message
};

// The pod's vote in `m` (its labels or annotations): none, true or false; a
// value other than "true" and "false" is a false one, with a warning.
std::optional<bool> injectValue(const std::map<std::string, std::string>& m, const char* where,
                                std::vector<std::string>& warnings) {
  auto it = m.find(kInjectKey);
  if (it == m.end()) return std::nullopt;
  if (it->second == "true") return true;
  if (it->second == "false") return false;
  warnings.push_back(absl::StrCat(where, " ", kInjectKey, " is ", shown(it->second),
                                  "; only \"true\" injects the turnout sidecar (not injected)"));
  return false;
}

Decision decide(const PodView& pod, const std::string& ns, const InjectionOptions& o) {
  Decision d;
  const std::optional<bool> annotation = injectValue(pod.annotations, "annotation", d.warnings);
  const std::optional<bool> label = injectValue(pod.labels, "label", d.warnings);
  const bool wanted = (annotation == true || label == true) && annotation != false && label != false;
  if (!wanted) return d;
  const bool has_proxy = std::find(pod.container_names.begin(), pod.container_names.end(), kProxyContainerName) !=
                         pod.container_names.end();
  if (has_proxy || pod.annotations.count(kStatusAnnotation) != 0) return d;  // already injected
  if (pod.host_network) {
    d.warnings.push_back(absl::StrCat(
        kInjectKey, ": the pod uses hostNetwork, so the sidecar's iptables capture would take over the node's "
        "traffic; the turnout sidecar was not injected"));
    return d;
  }
  auto service = serviceOf(pod);
  if (!service.ok()) {
    d.denied = absl::StrCat("turnout sidecar injection: ", service.status().message());
    return d;
  }
  std::set<uint32_t> exclude(o.exclude_inbound_ports.begin(), o.exclude_inbound_ports.end());
  exclude.insert(kSidecarReadinessPort);
  if (auto it = pod.annotations.find(kExcludeInboundPortsAnnotation); it != pod.annotations.end()) {
    auto ports = parsePortList(absl::StrCat("annotation ", kExcludeInboundPortsAnnotation), it->second);
    if (!ports.ok()) {
      d.denied = absl::StrCat("turnout sidecar injection: ", ports.status().message());
      return d;
    }
    exclude.insert(ports->begin(), ports->end());
  }
  IpFamilies families = IpFamilies::kIpv4;
  if (auto it = pod.annotations.find(kIpFamiliesAnnotation); it != pod.annotations.end()) {
    std::optional<IpFamilies> parsed = parseIpFamilies(it->second);
    if (!parsed) {
      d.denied = absl::StrCat("turnout sidecar injection: annotation ", kIpFamiliesAnnotation, ": ",
                              shown(it->second), " must be ", kIpFamiliesChoices);
      return d;
    }
    families = *parsed;
  }

  const std::string init =
      initContainerJson(o, std::vector<uint32_t>(exclude.begin(), exclude.end()), families);
  std::vector<std::string> ops;
  // Appended: the pod's own init containers run first, before the capture.
  if (pod.has_init_containers) {
    ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":\"/spec/initContainers/-\",\"value\":", init, "}"));
  } else {
    ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":\"/spec/initContainers\",\"value\":[", init, "]}"));
  }
  ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":\"/spec/containers/-\",\"value\":",
                             proxyContainerJson(o, *service, ns, families), "}"));
  if (pod.metadata == nullptr) {
    ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":\"/metadata\",\"value\":{\"annotations\":{",
                               q(kStatusAnnotation), ":\"injected\"}}}"));
  } else if (!pod.has_annotations) {
    ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{",
                               q(kStatusAnnotation), ":\"injected\"}}"));
  } else {
    ops.push_back(absl::StrCat("{\"op\":\"add\",\"path\":", q(absl::StrCat("/metadata/annotations/",
                                                                            pointerToken(kStatusAnnotation))),
                               ",\"value\":\"injected\"}"));
  }
  d.patch = absl::StrCat("[", absl::StrJoin(ops, ","), "]");
  return d;
}

std::string responseJson(const std::string& uid, const Decision& d) {
  std::string out = absl::StrCat("{\"apiVersion\":", q(kReviewApiVersion), ",\"kind\":", q(kReviewKind),
                                 ",\"response\":{\"uid\":", q(uid));
  if (d.denied) {
    absl::StrAppend(&out, ",\"allowed\":false,\"status\":{\"code\":400,\"reason\":\"BadRequest\",\"message\":",
                    q(*d.denied), "}");
  } else {
    absl::StrAppend(&out, ",\"allowed\":true");
    if (!d.patch.empty()) {
      absl::StrAppend(&out, ",\"patchType\":\"JSONPatch\",\"patch\":", q(absl::Base64Escape(d.patch)));
    }
  }
  if (!d.warnings.empty()) absl::StrAppend(&out, ",\"warnings\":", stringArray(d.warnings));
  out += "}}";
  return out;
}

bool isImageName(std::string_view image) {
  if (image.empty() || image.size() > 512) return false;
  return std::all_of(image.begin(), image.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '/' ||
           c == ':' || c == '@';
  });
}

absl::Status badFlag(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(av(flag), ": ", shown(value), " ", av(why)));
}

}  // namespace

std::string sidecarBootstrapYaml(const InjectionOptions& o, std::string_view node_id, std::string_view service,
                                 std::string_view ns, IpFamilies families) {
  SidecarBootstrap b;
  b.comment = absl::StrCat(
      "# turnout sidecar injected by turnout-cp's admission webhook: `turnout iptables`\n"
      "# (the turnout-init container) captures the pod's TCP, outbound to ", kSidecarOutboundPort,
      " and inbound\n"
      "# to ", kSidecarInboundPort, "; turnout-cp sends the capture listeners, routes and clusters over ADS.\n");
  b.node_id = std::string(node_id);
  b.node_cluster = std::string(service);
  b.capture = true;
  b.service = std::string(service);
  b.service_ns = std::string(ns);
  b.ip_families = families;
  b.admin_port = kSidecarAdminPort;
  b.xds_host = o.xds_host;
  b.xds_port = o.xds_port;
  b.listeners = absl::StrCat(
      hcmListenerHead("readiness", families == IpFamilies::kIpv4 ? "0.0.0.0" : "\"::\"",
                      kSidecarReadinessPort, /*ipv4_compat=*/families == IpFamilies::kDual),
      "          route_config:\n"
      "            name: readiness\n"
      "            virtual_hosts:\n"
      "            - name: readiness\n"
      "              domains: [\"*\"]\n"
      "              routes:\n"
      "              - match: {prefix: \"/\"}\n"
      "                direct_response: {status: 404}\n"
      "          http_filters:\n"
      "          - name: envoy.filters.http.health_check\n"
      "            typed_config:\n"
      "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck\n"
      "              pass_through_mode: false\n"
      "              headers:\n"
      "              - name: \":path\"\n"
      "                string_match: {exact: ", q(kSidecarReadinessPath), "}\n",
      "          - name: envoy.filters.http.router\n"
      "            typed_config:\n"
      "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n");
  return toYaml(b);
}

absl::StatusOr<std::vector<uint32_t>> parsePortList(std::string_view what, std::string_view text) {
  std::vector<uint32_t> out;
  if (absl::StripAsciiWhitespace(av(text)).empty()) return out;
  for (absl::string_view item : absl::StrSplit(av(text), ',')) {
    item = absl::StripAsciiWhitespace(item);
    uint32_t port = 0;
    if (!absl::SimpleAtoi(item, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(av(what), ": ", shown(std::string_view(item.data(), item.size())),
                                                     " is not a port (1..65535) in ", shown(text)));
    }
    out.push_back(port);
  }
  return out;
}

bool isQuantity(std::string_view text) {
  // <number><suffix>: digits with an optional fraction; suffix a binary
  // (Ki..Ei) or decimal (m, k, M..E) SI unit, or none.
  size_t i = 0;
  size_t digits = 0;
  while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i, ++digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  const std::string_view suffix = text.substr(i);
  static const std::set<std::string_view> kSuffixes = {"",   "m",  "k",  "M",  "G",  "T",  "P",  "E",
                                                       "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  return kSuffixes.count(suffix) != 0;
}

absl::StatusOr<bool> setInjectionFlag(InjectionOptions& o, std::string_view flag, std::string_view value) {
  auto quantity = [&](std::string& out) -> absl::StatusOr<bool> {
    if (!value.empty() && !isQuantity(value)) {
      return badFlag(flag, value, "is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1G); empty: not set");
    }
    out = std::string(value);
    return true;
  };
  if (flag == "--inject-proxy-image" || flag == "--inject-init-image") {
    if (!isImageName(value)) return badFlag(flag, value, "is not an image reference (e.g. registry/turnout:0.1.0)");
    (flag == "--inject-proxy-image" ? o.proxy_image : o.init_image) = std::string(value);
    return true;
  }
  if (flag == "--inject-image-pull-policy") {
    if (value != "Always" && value != "IfNotPresent" && value != "Never") {
      return badFlag(flag, value, "is not Always, IfNotPresent or Never");
    }
    o.image_pull_policy = std::string(value);
    return true;
  }
  if (flag == "--inject-xds-address") {
    const size_t colon = value.rfind(':');
    uint32_t port = 0;
    std::string host = colon == std::string_view::npos ? "" : std::string(value.substr(0, colon));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':';
    });
    if (!host_ok || !absl::SimpleAtoi(av(value.substr(colon + 1)), &port) || port == 0 || port > 65535) {
      return badFlag(flag, value, "is not HOST:PORT (e.g. turnout-cp.turnout-system.svc:18000)");
    }
    o.xds_host = host;
    o.xds_port = port;
    return true;
  }
  if (flag == "--inject-exclude-inbound-ports") {
    auto ports = parsePortList(flag, value);
    if (!ports.ok()) return ports.status();
    o.exclude_inbound_ports = std::move(*ports);
    return true;
  }
  if (flag == "--inject-proxy-cpu-request") return quantity(o.proxy_cpu_request);
  if (flag == "--inject-proxy-memory-request") return quantity(o.proxy_memory_request);
  if (flag == "--inject-proxy-cpu-limit") return quantity(o.proxy_cpu_limit);
  if (flag == "--inject-proxy-memory-limit") return quantity(o.proxy_memory_limit);
  if (flag == "--inject-proxy-concurrency") {
    uint32_t n = 0;
    if (!absl::SimpleAtoi(av(value), &n) || n == 0 || n > 64) return badFlag(flag, value, "is not 1..64");
    o.proxy_concurrency = n;
    return true;
  }
  if (flag == "--inject-proxy-log-level") {
    static const std::set<std::string_view> kLevels = {"trace", "debug", "info",     "warning",
                                                       "warn",  "error", "critical", "off"};
    if (kLevels.count(value) == 0) return badFlag(flag, value, "is not trace, debug, info, warn, error, critical or off");
    o.proxy_log_level = std::string(value);
    return true;
  }
  return false;
}

std::string injectionFlagsUsage() {
  const InjectionOptions d;
  return absl::StrCat(
      "        [--webhook-address HOST:PORT --webhook-tls-cert-file FILE --webhook-tls-key-file FILE]\n"
      "        [--webhook-address-path FILE] [--webhook-plaintext (local testing only)]\n"
      "        [--inject-proxy-image IMAGE (", d.proxy_image, ")] [--inject-init-image IMAGE (the proxy image)]\n"
      "        [--inject-image-pull-policy Always|IfNotPresent|Never (", d.image_pull_policy, ")]\n"
      "        [--inject-xds-address HOST:PORT (", d.xds_host, ":", d.xds_port, ")]\n"
      "        [--inject-exclude-inbound-ports P,P...] [--inject-proxy-cpu-request Q (", d.proxy_cpu_request, ")]\n"
      "        [--inject-proxy-memory-request Q (", d.proxy_memory_request, ")] [--inject-proxy-cpu-limit Q]\n"
      "        [--inject-proxy-memory-limit Q (", d.proxy_memory_limit, ")] [--inject-proxy-concurrency N (",
      d.proxy_concurrency, ")]\n"
      "        [--inject-proxy-log-level LEVEL (", d.proxy_log_level, ")]\n");
}

absl::StatusOr<std::string> podServiceName(std::string_view pod_json) {
  auto pod = parseJson("the pod", pod_json);
  if (!pod.ok()) return pod.status();
  auto view = readPod(*pod, "pod");
  if (!view.ok()) return view.status();
  return serviceOf(*view);
}

absl::StatusOr<std::string> reviewAdmission(std::string_view review_json, const InjectionOptions& options) {
  auto root = parseJson("the body", review_json);
  if (!root.ok()) return root.status();
  if (root->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("the body is not a JSON object (an AdmissionReview)");
  }
  auto api_version = stringMember(*root, "apiVersion", "");
  if (!api_version.ok()) return malformed("apiVersion", "not a string");
  if (*api_version != kReviewApiVersion) {
    return malformed("apiVersion", api_version->empty() ? absl::StrCat("missing (want ", kReviewApiVersion, ")")
                                                        : absl::StrCat(shown(*api_version), " is not ",
                                                                       kReviewApiVersion,
                                                                       " (the webhook takes admissionReviewVersions "
                                                                       "[v1])"));
  }
  auto kind = stringMember(*root, "kind", "");
  if (!kind.ok()) return malformed("kind", "not a string");
  if (*kind != kReviewKind) {
    return malformed("kind", kind->empty() ? absl::StrCat("missing (want ", kReviewKind, ")")
                                           : absl::StrCat(shown(*kind), " is not ", kReviewKind));
  }
  auto request = objectMember(*root, "request", "");
  if (!request.ok()) return malformed("request", "not an object");
  if (*request == nullptr) return malformed("request", "missing");
  const Value& req = **request;
  auto uid = stringMember(req, "uid", "request");
  if (!uid.ok()) return uid.status();
  if (uid->empty()) return malformed("request.uid", "missing");

  auto request_kind = objectMember(req, "kind", "request");
  if (!request_kind.ok()) return request_kind.status();
  if (*request_kind == nullptr) return malformed("request.kind", "missing");
  auto kind_group = stringMember(**request_kind, "group", "request.kind");
  if (!kind_group.ok()) return kind_group.status();
  auto kind_kind = stringMember(**request_kind, "kind", "request.kind");
  if (!kind_kind.ok()) return kind_kind.status();
  if (kind_kind->empty()) return malformed("request.kind.kind", "missing");
  auto operation = stringMember(req, "operation", "request");
  if (!operation.ok()) return operation.status();
  if (operation->empty()) return malformed("request.operation", "missing");

  // Only the creation of a core Pod is injected; anything else passes as it is.
  if (*kind_kind != "Pod" || !kind_group->empty() || *operation != "CREATE") return responseJson(*uid, Decision{});

  const Value* object = member(req, "object");
  if (object == nullptr) return malformed("request.object", "missing (a Pod CREATE review carries the Pod)");
  auto pod = readPod(*object, "request.object");
  if (!pod.ok()) return pod.status();
  auto ns = stringMember(req, "namespace", "request");
  if (!ns.ok()) return ns.status();
  std::string pod_namespace = *ns;
  if (pod_namespace.empty() && pod->metadata != nullptr) {
    auto from_pod = stringMember(*pod->metadata, "namespace", "request.object.metadata");
    if (!from_pod.ok()) return from_pod.status();
    pod_namespace = *from_pod;
  }
  if (pod_namespace.empty()) return malformed("request.namespace", "missing (a Pod is namespaced)");
  return responseJson(*uid, decide(*pod, pod_namespace, options));
}

}  // namespace turnout::control_plane
