#include "config/control_plane/api/injection_webhook.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "config/snapshot/snapshot_builder.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

// The AdmissionReview v1 fixtures are tests/configs/kubernetes/*.json: what
// the API server sends for pods made by a Deployment, a StatefulSet-style pod,
// already injected pods, a hostNetwork pod, a Deployment, an UPDATE, and
// malformed/ reviews of every kind. Each produced JSON Patch is applied here
// (RFC 6902 `add`, the only op the injector uses, with RFC 6901 pointers) and
// the resulting pod is checked; tests/integration/control_plane_webhook_test.py
// applies the same patches with python3-jsonpatch.

namespace turnout::control_plane {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

std::string readFixture(const std::string& name) {
  const std::string path = std::string(TURNOUT_SOURCE_DIR) + "/tests/configs/kubernetes/" + name;
  std::ifstream in(path, std::ios::binary);
  INFO(path);
  REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Value parse(const std::string& json) {
  Value v;
  auto s = google::protobuf::util::JsonStringToMessage(json, &v);
  INFO(json.substr(0, 400));
  REQUIRE(s.ok());
  return v;
}

const Value& at(const Value& object, const std::string& name) {
  INFO("member " << name);
  REQUIRE(object.kind_case() == Value::kStructValue);
  auto it = object.struct_value().fields().find(name);
  REQUIRE(it != object.struct_value().fields().end());
  return it->second;
}

bool has(const Value& object, const std::string& name) {
  return object.kind_case() == Value::kStructValue && object.struct_value().fields().count(name) != 0;
}

std::string str(const Value& v) {
  REQUIRE(v.kind_case() == Value::kStringValue);
  return v.string_value();
}

std::vector<std::string> strings(const Value& v) {
  REQUIRE(v.kind_case() == Value::kListValue);
  std::vector<std::string> out;
  for (const Value& item : v.list_value().values()) out.push_back(str(item));
  return out;
}

// RFC 6901: "/a/b~1c" -> {"a", "b/c"}.
std::vector<std::string> pointer(const std::string& p) {
  REQUIRE(!p.empty());
  REQUIRE(p[0] == '/');
  std::vector<std::string> out;
  for (absl::string_view token : absl::StrSplit(p.substr(1), '/')) {
    out.push_back(absl::StrReplaceAll(token, {{"~1", "/"}, {"~0", "~"}}));
  }
  return out;
}

// RFC 6902 `add`: the parent must exist; into an object it sets the member,
// into an array it inserts at the index or appends for "-".
void applyAdd(Value& doc, const std::string& path, const Value& value) {
  INFO("add " << path);
  const std::vector<std::string> tokens = pointer(path);
  Value* parent = &doc;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    if (parent->kind_case() == Value::kStructValue) {
      auto* fields = parent->mutable_struct_value()->mutable_fields();
      auto it = fields->find(tokens[i]);
      REQUIRE(it != fields->end());  // the parent must exist
      parent = &it->second;
    } else {
      REQUIRE(parent->kind_case() == Value::kListValue);
      size_t index = 0;
      REQUIRE(absl::SimpleAtoi(tokens[i], &index));
      REQUIRE(index < static_cast<size_t>(parent->list_value().values_size()));
      parent = parent->mutable_list_value()->mutable_values(static_cast<int>(index));
    }
  }
  const std::string& last = tokens.back();
  if (parent->kind_case() == Value::kStructValue) {
    (*parent->mutable_struct_value()->mutable_fields())[last] = value;
    return;
  }
  REQUIRE(parent->kind_case() == Value::kListValue);
  auto* values = parent->mutable_list_value()->mutable_values();
  if (last == "-") {
    *values->Add() = value;
    return;
  }
  size_t index = 0;
  REQUIRE(absl::SimpleAtoi(last, &index));
  REQUIRE(index <= static_cast<size_t>(values->size()));
  *values->Add() = value;
  for (int i = values->size() - 1; i > static_cast<int>(index); --i) values->SwapElements(i, i - 1);
}

struct Answer {
  Value response;           // the AdmissionReview's `response`
  std::optional<Value> patch;  // decoded, when there is one
  Value pod;                // request.object with the patch applied
};

Answer review(const std::string& review_json, const InjectionOptions& options = {}) {
  auto answer = reviewAdmission(review_json, options);
  INFO(answer.status().ToString());
  REQUIRE(answer.ok());
  const Value root = parse(*answer);
  CHECK(str(at(root, "apiVersion")) == "admission.k8s.io/v1");
  CHECK(str(at(root, "kind")) == "AdmissionReview");
  const Value request = at(parse(review_json), "request");
  Answer out;
  out.response = at(root, "response");
  CHECK(str(at(out.response, "uid")) == str(at(request, "uid")));
  out.pod = has(request, "object") ? at(request, "object") : Value();
  if (has(out.response, "patch")) {
    CHECK(str(at(out.response, "patchType")) == "JSONPatch");
    std::string patch;
    REQUIRE(absl::Base64Unescape(str(at(out.response, "patch")), &patch));
    out.patch = parse(patch);
    REQUIRE(out.patch->kind_case() == Value::kListValue);
    for (const Value& op : out.patch->list_value().values()) {
      REQUIRE(str(at(op, "op")) == "add");
      applyAdd(out.pod, str(at(op, "path")), at(op, "value"));
    }
  }
  return out;
}

bool allowed(const Answer& a) { return at(a.response, "allowed").bool_value(); }

std::vector<std::string> names(const Value& containers) {
  std::vector<std::string> out;
  for (const Value& c : containers.list_value().values()) out.push_back(str(at(c, "name")));
  return out;
}

const Value& container(const Value& pod, const char* list, const std::string& name) {
  for (const Value& c : at(at(pod, "spec"), list).list_value().values()) {
    if (str(at(c, "name")) == name) return c;
  }
  FAIL("no container " << name << " in " << list);
  throw 0;
}

// The value after `flag` in `args`.
std::string argAfter(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) return args[i + 1];
  }
  FAIL("no " << flag << " in the args");
  return "";
}

std::map<std::string, std::string> annotations(const Value& pod) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : at(at(pod, "metadata"), "annotations").struct_value().fields()) out[k] = str(v);
  return out;
}

// What the kubelet does with $(VAR) in args.
std::string expand(std::string s, const std::string& pod, const std::string& ns) {
  return absl::StrReplaceAll(s, {{"$(POD_NAME)", pod}, {"$(POD_NAMESPACE)", ns}});
}

TEST_CASE("a Deployment's annotated pod gets the init container, the sidecar and the status annotation",
          "[injection_webhook]") {
  const Answer a = review(readFixture("pod_plain.json"));
  REQUIRE(allowed(a));
  REQUIRE(a.patch);
  CHECK_FALSE(has(a.response, "warnings"));

  // The exact operations: no initContainers yet, so the array is added; an
  // annotations map exists, so one member is added with '/' escaped as ~1.
  std::vector<std::string> paths;
  for (const Value& op : a.patch->list_value().values()) paths.push_back(str(at(op, "path")));
  CHECK(paths == std::vector<std::string>{"/spec/initContainers", "/spec/containers/-",
                                          "/metadata/annotations/turnout.dev~1status"});

  CHECK(names(at(at(a.pod, "spec"), "initContainers")) == std::vector<std::string>{"turnout-init"});
  CHECK(names(at(at(a.pod, "spec"), "containers")) == std::vector<std::string>{"reviews", "turnout-proxy"});
  CHECK(annotations(a.pod) ==
        std::map<std::string, std::string>{{"turnout.dev/inject", "true"}, {"turnout.dev/status", "injected"}});

  const Value& init = container(a.pod, "initContainers", "turnout-init");
  CHECK(str(at(init, "image")) == "turnout:0.1.0");
  CHECK(str(at(init, "imagePullPolicy")) == "IfNotPresent");
  CHECK(strings(at(init, "command")) == std::vector<std::string>{"turnout"});
  CHECK(strings(at(init, "args")) ==
        std::vector<std::string>{"iptables", "--proxy-port", "15001", "--inbound-capture-port", "15006",
                                 "--proxy-uid", "1337", "--proxy-gid", "1337", "--exclude-inbound-ports",
                                 "15021"});
  const Value& init_security = at(init, "securityContext");
  CHECK(at(init_security, "runAsUser").number_value() == 0);
  CHECK(at(init_security, "runAsNonRoot").bool_value() == false);
  CHECK(strings(at(at(init_security, "capabilities"), "add")) == std::vector<std::string>{"NET_ADMIN", "NET_RAW"});
  CHECK(strings(at(at(init_security, "capabilities"), "drop")) == std::vector<std::string>{"ALL"});

  const Value& proxy = container(a.pod, "containers", "turnout-proxy");
  CHECK(strings(at(proxy, "command")) == std::vector<std::string>{"turnout"});
  const std::vector<std::string> args = strings(at(proxy, "args"));
  CHECK(argAfter(args, "--service-node") == "$(POD_NAME).$(POD_NAMESPACE)");
  CHECK(argAfter(args, "--service-cluster") == "reviews");
  CHECK(argAfter(args, "--concurrency") == "2");
  CHECK(argAfter(args, "--log-level") == "info");
  const Value& security = at(proxy, "securityContext");
  CHECK(at(security, "runAsUser").number_value() == 1337);
  CHECK(at(security, "runAsGroup").number_value() == 1337);
  CHECK(at(security, "runAsNonRoot").bool_value());
  CHECK(at(security, "readOnlyRootFilesystem").bool_value());
  CHECK(at(security, "allowPrivilegeEscalation").bool_value() == false);
  // The downward API gives the env vars the args' $(VAR)s expand to, so
  // they come before any use.
  const auto& env = at(proxy, "env").list_value().values();
  REQUIRE(env.size() == 2);
  CHECK(str(at(env[0], "name")) == "POD_NAME");
  CHECK(str(at(at(at(env[0], "valueFrom"), "fieldRef"), "fieldPath")) == "metadata.name");
  CHECK(str(at(env[1], "name")) == "POD_NAMESPACE");
  CHECK(str(at(at(at(env[1], "valueFrom"), "fieldRef"), "fieldPath")) == "metadata.namespace");
  const Value& probe = at(at(proxy, "readinessProbe"), "httpGet");
  CHECK(str(at(probe, "path")) == "/healthz/ready");
  CHECK(at(probe, "port").number_value() == 15021);
  CHECK(at(at(proxy, "readinessProbe"), "periodSeconds").number_value() == 2);
  CHECK(at(at(proxy, "readinessProbe"), "failureThreshold").number_value() == 3);
  CHECK(at(at(proxy, "ports").list_value().values(0), "containerPort").number_value() == 15021);
  const Value& resources = at(proxy, "resources");
  CHECK(str(at(at(resources, "requests"), "cpu")) == "100m");
  CHECK(str(at(at(resources, "requests"), "memory")) == "64Mi");
  CHECK(str(at(at(resources, "limits"), "memory")) == "256Mi");
  CHECK_FALSE(has(at(resources, "limits"), "cpu"));

  // The bootstrap, once the kubelet has expanded the args, is one turnout
  // loads: node from the downward API, metadata with service and namespace
  // (turnout-cp's sign for the capture listeners), ADS to turnout-cp, admin on
  // 127.0.0.1:15000, the readiness listener and no other static listener
  // (the capture listeners come over LDS).
  config::BootstrapLoadOptions load;
  load.config_yaml = expand(argAfter(args, "--config-yaml"), "reviews-v1-5d8b7c9f4-x2x7q", "shop");
  load.service_node = expand(argAfter(args, "--service-node"), "reviews-v1-5d8b7c9f4-x2x7q", "shop");
  load.service_cluster = argAfter(args, "--service-cluster");
  auto loaded = config::SnapshotBuilder::load(load);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  const auto& snapshot = *loaded->snapshot;
  CHECK(snapshot.node_id == "reviews-v1-5d8b7c9f4-x2x7q.shop");
  CHECK(snapshot.node_cluster == "reviews");
  const auto& node = snapshot.bootstrap.node();
  CHECK(node.id() == "reviews-v1-5d8b7c9f4-x2x7q.shop");
  const auto& metadata = node.metadata().fields().at("turnout").struct_value().fields();
  CHECK(metadata.at("mode").string_value() == "sidecar");
  CHECK(metadata.at("service").string_value() == "reviews");
  CHECK(metadata.at("namespace").string_value() == "shop");
  CHECK(snapshot.bootstrap.admin().address().socket_address().address() == "127.0.0.1");
  CHECK(snapshot.bootstrap.admin().address().socket_address().port_value() == 15000);
  const auto full =
      snapshot.fullBootstrap();  // a copy, with the static clusters and listeners put back
  REQUIRE(full.static_resources().clusters_size() == 1);
  const auto& xds = full.static_resources().clusters(0);
  CHECK(xds.name() == "xds_cluster");
  const auto& xds_address = xds.load_assignment().endpoints(0).lb_endpoints(0).endpoint().address().socket_address();
  CHECK(xds_address.address() == "turnout-cp.turnout-system.svc");
  CHECK(xds_address.port_value() == 18000);
  std::map<std::string, uint32_t> listeners;
  for (const auto& l : full.static_resources().listeners()) {
    listeners[l.name()] = l.address().socket_address().port_value();
  }
  CHECK(listeners == std::map<std::string, uint32_t>{{"readiness", 15021}});
}

TEST_CASE("existing init containers and annotations are appended to, the service annotation wins",
          "[injection_webhook]") {
  const Answer a = review(readFixture("pod_init_containers_and_annotations.json"));
  REQUIRE(allowed(a));
  REQUIRE(a.patch);
  std::vector<std::string> paths;
  for (const Value& op : a.patch->list_value().values()) paths.push_back(str(at(op, "path")));
  CHECK(paths == std::vector<std::string>{"/spec/initContainers/-", "/spec/containers/-",
                                          "/metadata/annotations/turnout.dev~1status"});
  // The pod's own init container runs first, then the capture.
  CHECK(names(at(at(a.pod, "spec"), "initContainers")) == std::vector<std::string>{"wait-for-db", "turnout-init"});
  CHECK(names(at(at(a.pod, "spec"), "containers")) == std::vector<std::string>{"ratings", "turnout-proxy"});
  const auto ann = annotations(a.pod);
  CHECK(ann.size() == 7);
  CHECK(ann.at("turnout.dev/status") == "injected");
  CHECK(ann.at("prometheus.io/scrape") == "true");
  CHECK(ann.at("kubectl.kubernetes.io/default-container") == "ratings");
  const auto args = strings(at(container(a.pod, "containers", "turnout-proxy"), "args"));
  CHECK(argAfter(args, "--service-cluster") == "ratings");  // not the label ratings-api
  const auto init_args = strings(at(container(a.pod, "initContainers", "turnout-init"), "args"));
  CHECK(argAfter(init_args, "--exclude-inbound-ports") == "9090,9091,15021");
  // A pod-level runAsNonRoot: the init container overrides it for itself.
  CHECK(at(at(container(a.pod, "initContainers", "turnout-init"), "securityContext"), "runAsNonRoot").bool_value() ==
        false);
}

TEST_CASE("a pod opted in by label with no annotations map gets the whole map", "[injection_webhook]") {
  const Answer a = review(readFixture("pod_label_no_annotations.json"));
  REQUIRE(allowed(a));
  REQUIRE(a.patch);
  const Value& last = a.patch->list_value().values(2);
  CHECK(str(at(last, "path")) == "/metadata/annotations");
  CHECK(annotations(a.pod) == std::map<std::string, std::string>{{"turnout.dev/status", "injected"}});
  const auto args = strings(at(container(a.pod, "containers", "turnout-proxy"), "args"));
  CHECK(argAfter(args, "--service-cluster") == "details");  // app.kubernetes.io/name
  // The namespace comes from the request (the pod's metadata has none yet).
  CHECK(argAfter(args, "--config-yaml").find("namespace: \"shop\"") != std::string::npos);
}

TEST_CASE("pods that are not to be injected pass unchanged", "[injection_webhook]") {
  const auto [fixture, warning] = GENERATE(table<std::string, std::string>({
      {"pod_already_injected_container.json", ""},
      {"pod_already_injected_status.json", ""},
      {"pod_not_annotated.json", ""},
      {"deployment.json", ""},
      {"pod_update.json", ""},
      {"pod_host_network.json", "hostNetwork"},
  }));
  INFO(fixture);
  const Answer a = review(readFixture(fixture));
  CHECK(allowed(a));
  CHECK_FALSE(has(a.response, "patch"));
  CHECK_FALSE(has(a.response, "patchType"));
  if (warning.empty()) {
    CHECK_FALSE(has(a.response, "warnings"));
  } else {
    const auto warnings = strings(at(a.response, "warnings"));
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find(warning) != std::string::npos);
    CHECK(warnings[0].find("not injected") != std::string::npos);
  }
}

// A review of `pod` (a JSON object) in namespace shop.
std::string reviewOf(const std::string& pod) {
  return R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",)"
         R"("kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE","object":)" +
         pod + "}}";
}

std::string podWith(const std::string& labels, const std::string& annotations, const std::string& extra_meta = "") {
  return R"({"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7d4b9c8f6d-","labels":)" + labels +
         R"(,"annotations":)" + annotations + extra_meta +
         R"(},"spec":{"containers":[{"name":"web","image":"web:1"}]}})";
}

TEST_CASE("the inject label and annotation: \"true\" in either injects, \"false\" in either wins",
          "[injection_webhook]") {
  const auto [labels, annotations_json, injected, warned] = GENERATE(table<std::string, std::string, bool, bool>({
      {R"({})", R"({"turnout.dev/inject":"true"})", true, false},
      {R"({"turnout.dev/inject":"true"})", R"({})", true, false},
      {R"({"turnout.dev/inject":"true"})", R"({"turnout.dev/inject":"true"})", true, false},
      {R"({"turnout.dev/inject":"true"})", R"({"turnout.dev/inject":"false"})", false, false},
      {R"({"turnout.dev/inject":"false"})", R"({"turnout.dev/inject":"true"})", false, false},
      {R"({})", R"({"turnout.dev/inject":"True"})", false, true},
      {R"({})", R"({"turnout.dev/inject":"yes"})", false, true},
      {R"({})", R"({"turnout.dev/inject":""})", false, true},
      {R"({})", R"({})", false, false},
  }));
  INFO(labels << " " << annotations_json);
  const Answer a = review(reviewOf(podWith(labels, annotations_json)));
  CHECK(allowed(a));
  CHECK(has(a.response, "patch") == injected);
  CHECK(has(a.response, "warnings") == warned);
}

TEST_CASE("the service: annotation, then app.kubernetes.io/name, then app, then the generateName stem",
          "[injection_webhook]") {
  const auto [pod, service] = GENERATE(table<std::string, std::string>({
      {podWith(R"({"app":"a","app.kubernetes.io/name":"b"})", R"({"turnout.dev/service":"c"})"), "c"},
      {podWith(R"({"app":"a","app.kubernetes.io/name":"b"})", R"({})"), "b"},
      {podWith(R"({"app":"a"})", R"({})"), "a"},
      // A ReplicaSet's pod: the template hash is dropped.
      {podWith(R"({"pod-template-hash":"7d4b9c8f6d"})", R"({})"), "web"},
      {podWith(R"({})", R"({})"), "web-7d4b9c8f6d"},
      {R"({"metadata":{"name":"db-0"},"spec":{"containers":[]}})", "db-0"},
  }));
  INFO(pod);
  auto got = podServiceName(pod);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(*got == service);
}

TEST_CASE("an injected pod whose service or excluded ports are invalid is denied with the reason",
          "[injection_webhook]") {
  const auto [pod, reason] = GENERATE(table<std::string, std::string>({
      {podWith(R"({})", R"({"turnout.dev/inject":"true","turnout.dev/service":"Reviews_V1"})"),
       "annotation turnout.dev/service: 'Reviews_V1' is not a turnout service name"},
      {podWith(R"({"app":"a--b"})", R"({"turnout.dev/inject":"true"})"), "label app: 'a--b'"},
      {podWith(R"({})", R"j({"turnout.dev/inject":"true","turnout.dev/service":"$(HOME)"})j"), "'$(HOME)'"},
      {podWith(R"({})", R"({"turnout.dev/inject":"true","turnout.dev/exclude-inbound-ports":"80,http"})"),
       "annotation turnout.dev/exclude-inbound-ports: 'http' is not a port"},
      {podWith(R"({})", R"({"turnout.dev/inject":"true","turnout.dev/exclude-inbound-ports":"70000"})"),
       "'70000' is not a port"},
      {podWith(R"({})", R"({"turnout.dev/inject":"true","turnout.dev/ip-families":"IPv6"})"),
       "annotation turnout.dev/ip-families: 'IPv6' must be ipv4, ipv6 or dual"},
      {podWith(R"({})", R"({"turnout.dev/inject":"true","turnout.dev/ip-families":""})"),
       "annotation turnout.dev/ip-families: '' must be ipv4, ipv6 or dual"},
  }));
  INFO(pod);
  const Answer a = review(reviewOf(pod));
  CHECK_FALSE(allowed(a));
  CHECK_FALSE(has(a.response, "patch"));
  const Value& status = at(a.response, "status");
  CHECK(at(status, "code").number_value() == 400);
  CHECK(str(at(status, "message")).find(reason) != std::string::npos);
}

TEST_CASE("the ip-families annotation reaches the capture and the node metadata and the readiness listener",
          "[injection_webhook]") {
  struct Case {
    std::string annotation;  // "" for none
    bool ipv6_capture;
    std::string metadata;     // node metadata ip_families; "" for absent
    std::string readiness;    // the readiness listener's address
    bool ipv4_compat;
  };
  const auto c = GENERATE(values<Case>({{"", false, "", "0.0.0.0", false},
                                        {"ipv4", false, "", "0.0.0.0", false},
                                        {"ipv6", true, "ipv6", "::", false},
                                        {"dual", true, "dual", "::", true}}));
  CAPTURE(c.annotation);
  const std::string annotations =
      c.annotation.empty() ? R"({"turnout.dev/inject":"true"})"
                           : R"({"turnout.dev/inject":"true","turnout.dev/ip-families":")" + c.annotation + R"("})";
  const Answer a = review(reviewOf(podWith(R"({"app":"web"})", annotations)));
  REQUIRE(allowed(a));
  REQUIRE(a.patch);
  const auto init_args = strings(at(container(a.pod, "initContainers", "turnout-init"), "args"));
  CHECK((std::find(init_args.begin(), init_args.end(), "--ipv6") != init_args.end()) == c.ipv6_capture);
  const auto args = strings(at(container(a.pod, "containers", "turnout-proxy"), "args"));
  config::BootstrapLoadOptions load;
  load.config_yaml = expand(argAfter(args, "--config-yaml"), "web-1", "shop");
  load.service_node = expand(argAfter(args, "--service-node"), "web-1", "shop");
  load.service_cluster = argAfter(args, "--service-cluster");
  auto loaded = config::SnapshotBuilder::load(load);
  INFO(loaded.status().ToString());
  REQUIRE(loaded.ok());
  const auto& metadata = loaded->snapshot->bootstrap.node().metadata().fields().at("turnout").struct_value().fields();
  if (c.metadata.empty()) {
    CHECK(metadata.count("ip_families") == 0);
  } else {
    CHECK(metadata.at("ip_families").string_value() == c.metadata);
  }
  const auto full = loaded->snapshot->fullBootstrap();
  const auto& listeners = full.static_resources().listeners();
  REQUIRE(listeners.size() == 1);
  CHECK(listeners[0].address().socket_address().address() == c.readiness);
  CHECK(listeners[0].address().socket_address().ipv4_compat() == c.ipv4_compat);
}

TEST_CASE("malformed reviews are errors that name what is wrong", "[injection_webhook]") {
  const auto [fixture, message] = GENERATE(table<std::string, std::string>({
      {"malformed/not_json.txt", "the body is not JSON"},
      {"malformed/not_an_object.json", "the body is not a JSON object"},
      {"malformed/wrong_api_version.json", "apiVersion: 'admission.k8s.io/v1beta1' is not admission.k8s.io/v1"},
      {"malformed/wrong_kind.json", "kind: 'AdmissionRequest' is not AdmissionReview"},
      {"malformed/missing_request.json", "request: missing"},
      {"malformed/missing_uid.json", "request.uid: missing"},
      {"malformed/uid_not_a_string.json", "request.uid: not a string"},
      {"malformed/object_not_a_pod.json", "request.object.kind: 'ConfigMap' is not Pod"},
      {"malformed/object_not_an_object.json", "request.object: not an object"},
      {"malformed/missing_object.json", "request.object: missing"},
      {"malformed/missing_containers.json", "request.object.spec.containers: missing"},
      {"malformed/annotation_not_a_string.json",
       "request.object.metadata.annotations[\"turnout.dev/inject\"]: not a string"},
  }));
  INFO(fixture);
  auto answer = reviewAdmission(readFixture(fixture), InjectionOptions{});
  REQUIRE_FALSE(answer.ok());
  CHECK(answer.status().code() == absl::StatusCode::kInvalidArgument);
  INFO(answer.status().message());
  CHECK(std::string(answer.status().message()).rfind(message, 0) == 0);
}

TEST_CASE("hostile JSON is an error, never a crash", "[injection_webhook]") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto body = GENERATE_COPY(as<std::string>{}, "", "null", "\"x\"", "42", "{", "{\"request\":", deep,
                                  std::string("{\"kind\":\"\xff\xfe\"}"),
                                  R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":[]})",
                                  R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",)"
                                  R"("request":{"uid":"u","kind":"Pod","operation":"CREATE"}})",
                                  R"({"apiVersion":7,"kind":"AdmissionReview"})");
  auto answer = reviewAdmission(body, InjectionOptions{});
  CHECK_FALSE(answer.ok());
  CHECK(answer.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(answer.status().message().empty());
  // The reason goes into a JSON answer: printable ASCII only, whatever the body held.
  const std::string message(answer.status().message());
  CHECK(message.size() < 1000);
  CHECK(std::all_of(message.begin(), message.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }));
}

TEST_CASE("injection options come from --inject-* flags", "[injection_webhook]") {
  InjectionOptions o;
  auto set = [&](const char* flag, const char* value) {
    auto r = setInjectionFlag(o, flag, value);
    INFO(flag << " " << value << ": " << r.status().ToString());
    REQUIRE(r.ok());
    CHECK(*r);
  };
  set("--inject-proxy-image", "registry.example.com/turnout:1.2");
  set("--inject-init-image", "registry.example.com/turnout-init@sha256:abc");
  set("--inject-image-pull-policy", "Always");
  set("--inject-xds-address", "cp.example.svc:19000");
  set("--inject-exclude-inbound-ports", "22, 5432");
  set("--inject-proxy-cpu-request", "250m");
  set("--inject-proxy-memory-request", "0.5Gi");
  set("--inject-proxy-cpu-limit", "2");
  set("--inject-proxy-memory-limit", "");
  set("--inject-proxy-concurrency", "4");
  set("--inject-proxy-log-level", "debug");
  auto not_ours = setInjectionFlag(o, "--data-dir", "x");
  REQUIRE(not_ours.ok());
  CHECK_FALSE(*not_ours);

  const Answer a = review(readFixture("pod_plain.json"), o);
  const Value& init = container(a.pod, "initContainers", "turnout-init");
  CHECK(str(at(init, "image")) == "registry.example.com/turnout-init@sha256:abc");
  CHECK(str(at(init, "imagePullPolicy")) == "Always");
  CHECK(argAfter(strings(at(init, "args")), "--exclude-inbound-ports") == "22,5432,15021");
  const Value& proxy = container(a.pod, "containers", "turnout-proxy");
  CHECK(str(at(proxy, "image")) == "registry.example.com/turnout:1.2");
  const auto args = strings(at(proxy, "args"));
  CHECK(argAfter(args, "--concurrency") == "4");
  CHECK(argAfter(args, "--log-level") == "debug");
  CHECK(argAfter(args, "--config-yaml").find("address: \"cp.example.svc\", port_value: 19000") != std::string::npos);
  const Value& resources = at(proxy, "resources");
  CHECK(str(at(at(resources, "requests"), "cpu")) == "250m");
  CHECK(str(at(at(resources, "requests"), "memory")) == "0.5Gi");
  CHECK(str(at(at(resources, "limits"), "cpu")) == "2");
  CHECK_FALSE(has(at(resources, "limits"), "memory"));
}

TEST_CASE("bad --inject-* values are refused with the flag's name", "[injection_webhook]") {
  const auto [flag, value] = GENERATE(table<std::string, std::string>({
      {"--inject-proxy-image", ""},
      {"--inject-proxy-image", "turnout latest"},
      {"--inject-image-pull-policy", "always"},
      {"--inject-xds-address", "turnout-cp"},
      {"--inject-xds-address", "turnout-cp:0"},
      {"--inject-xds-address", ":18000"},
      {"--inject-exclude-inbound-ports", "80,"},
      {"--inject-exclude-inbound-ports", "0"},
      {"--inject-proxy-cpu-request", "lots"},
      {"--inject-proxy-memory-limit", "64MB"},
      {"--inject-proxy-concurrency", "0"},
      {"--inject-proxy-log-level", "verbose"},
  }));
  InjectionOptions o;
  auto r = setInjectionFlag(o, flag, value);
  INFO(flag << " '" << value << "'");
  REQUIRE_FALSE(r.ok());
  CHECK(std::string(r.status().message()).rfind(flag + ": ", 0) == 0);
}

TEST_CASE("quantities as Kubernetes writes them", "[injection_webhook]") {
  for (const char* good : {"1", "100m", "0.5", "64Mi", "1Gi", "2G", "1.5Ki", "10k"}) CHECK(isQuantity(good));
  for (const char* bad : {"", "m", "Mi", "1.2.3", "64MB", "-1", "1 Gi", "1e3x"}) CHECK_FALSE(isQuantity(bad));
}

}  // namespace
}  // namespace turnout::control_plane
