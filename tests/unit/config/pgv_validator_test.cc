#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "config/bootstrap/bootstrap_loader.h"
#include "config/bootstrap/message_loader.h"
#include "config/bootstrap/pgv_validator.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/text_format.h"
#include "validate/validate.pb.h"

namespace turnout::config {
namespace {

using google::protobuf::FieldDescriptorProto;

// ---------------------------------------------------------------------------
// Rules as compiled into the Envoy descriptors, through whole bootstraps.

// The PGV rules alone, on a parsed bootstrap: some of these cases use fields the
// field policy rejects (rds), which would otherwise answer first.
std::string errorOf(const std::string& yaml) {
  envoy::config::bootstrap::v3::Bootstrap b;
  std::vector<std::string> warnings;
  if (auto s = loadMessageFromYaml(yaml, b, MessageLoadOptions{}, &warnings); !s.ok()) {
    return std::string(s.message());
  }
  auto s = validateProtoRules(b);
  return s.ok() ? "OK" : std::string(s.message());
}

constexpr const char* kHcm =
    "static_resources.listeners[0].filter_chains[0].filters[0].typed_config";

std::string withRoutes(const std::string& vhost_and_routes) {
  return absl::StrCat(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 1}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
          route_config:
            virtual_hosts:
)",
                      vhost_and_routes);
}

std::string withRoutingKey(const std::string& fields) {
  return absl::StrCat(R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 1}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          rds: {route_config_name: r, config_source: {ads: {}}}
          http_filters:
          - name: rk
            typed_config:
              "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
)",
                      fields, R"(
          - name: router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
)");
}

struct EnvoyRuleCase {
  std::string yaml;
  std::string error;
};

TEST_CASE("PGV rules in the Envoy descriptors are enforced with Envoy's wording and the path",
          "[config][pgv]") {
  auto c = GENERATE(values<EnvoyRuleCase>({
      // string min_len (HttpConnectionManager.stat_prefix), inside an Any payload
      {withRoutingKey(""), "OK"},
      {R"(
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 1}}
    filter_chains:
    - filters:
      - name: hcm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          rds: {route_config_name: r, config_source: {ads: {}}}
          http_filters: [{name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
)",
       absl::StrCat(kHcm, ".stat_prefix: value length must be at least 1 characters")},
      // numeric range (SocketAddress.port_value lte 65535)
      {"admin: {address: {socket_address: {address: 127.0.0.1, port_value: 65536}}}",
       "admin.address.socket_address.port_value: value must be less than or equal to 65535"},
      // enum defined_only (Cluster.type)
      {"static_resources: {clusters: [{name: a, type: 99}]}",
       "static_resources.clusters[0].type: value must be one of the defined enum values"},
      // duration gt (Cluster.connect_timeout)
      {"static_resources: {clusters: [{name: a, connect_timeout: 0s}]}",
       "static_resources.clusters[0].connect_timeout: value must be greater than 0s"},
      // required message (Route.match)
      {withRoutes("            - {name: v, domains: ['*'], routes: [{route: {cluster: a}}]}"),
       absl::StrCat(kHcm, ".route_config.virtual_hosts[0].routes[0].match: value is required")},
      // oneof required (RouteMatch.path_specifier)
      {withRoutes("            - {name: v, domains: ['*'], routes: [{match: {}, direct_response: {status: 200}}]}"),
       absl::StrCat(kHcm, ".route_config.virtual_hosts[0].routes[0].match.path_specifier: value is required")},
      // repeated min_items (VirtualHost.domains)
      {withRoutes("            - {name: v, domains: []}"),
       absl::StrCat(kHcm, ".route_config.virtual_hosts[0].domains: value must contain at least 1 item(s)")},
      // repeated items with a well-known regex (HeaderValue.key, HTTP_HEADER_NAME, strict false)
      {withRoutes("            - {name: v, domains: ['*'], request_headers_to_add: [{header: {key: \"a\\nb\", value: x}}]}"),
       absl::StrCat(kHcm, ".route_config.virtual_hosts[0].request_headers_to_add[0].header.key: "
                          "value does not match regex pattern \"^[^\\u0000\\u000A\\u000D]*$\"")},
      // numeric range on a status code (DirectResponseAction.status: [200, 600))
      {withRoutes("            - {name: v, domains: ['*'], routes: [{match: {prefix: /}, direct_response: {status: 99}}]}"),
       absl::StrCat(kHcm, ".route_config.virtual_hosts[0].routes[0].direct_response.status: "
                          "value must be inside range [200, 600)")},
      // our own filter: wrapper with a range, oneof required, string min_len in a oneof
      {withRoutingKey("              max_key_length: 0"),
       absl::StrCat(kHcm, ".http_filters[0].typed_config.max_key_length: value must be inside range [1, 4096]")},
      {withRoutingKey("              sources: [{}]"),
       absl::StrCat(kHcm, ".http_filters[0].typed_config.sources[0].source: value is required")},
      {withRoutingKey("              sources: [{baggage_member: \"\"}]"),
       absl::StrCat(kHcm, ".http_filters[0].typed_config.sources[0].baggage_member: "
                          "value length must be at least 1 characters")},
      // double range (Cluster.RingHashLbConfig? no: LeastRequestLbConfig.active_request_bias is a
      // RuntimeDouble; use Percent via healthy_panic_threshold lte 100)
      {"static_resources: {clusters: [{name: a, common_lb_config: {healthy_panic_threshold: {value: 120}}}]}",
       "static_resources.clusters[0].common_lb_config.healthy_panic_threshold.value: "
       "value must be inside range [0, 100]"},
  }));
  CAPTURE(c.yaml);
  CHECK(errorOf(c.yaml) == c.error);
}

// ---------------------------------------------------------------------------
// Every rule kind, on a message built at run time with the rules as options. The
// validator reads them from the descriptor exactly as for the compiled Envoy protos.

struct RuleCase {
  const char* label;
  FieldDescriptorProto::Type type;
  const char* type_name;  // message/enum types
  bool repeated;
  const char* rules;   // validate.FieldRules in text format
  const char* value;   // the test message in text format
  const char* error;   // "" = valid; else the full expected message
};

class RuntimeSchema {
 public:
  explicit RuntimeSchema(const RuleCase& c) : pool_(google::protobuf::DescriptorPool::generated_pool()), factory_(&pool_) {
    google::protobuf::FileDescriptorProto file;
    file.set_name("turnout_pgv_test.proto");
    file.set_package("pgvtest");
    file.set_syntax("proto3");
    for (const char* dep : {"google/protobuf/any.proto", "google/protobuf/duration.proto",
                            "google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto",
                            "validate/validate.proto"}) {
      file.add_dependency(dep);
    }
    auto* e = file.add_enum_type();
    e->set_name("E");
    for (auto [n, v] : {std::pair{"ZERO", 0}, {"ONE", 1}, {"TWO", 2}}) {
      auto* val = e->add_value();
      val->set_name(n);
      val->set_number(v);
    }
    auto* inner = file.add_message_type();
    inner->set_name("Inner");
    auto* inner_f = inner->add_field();
    inner_f->set_name("s");
    inner_f->set_number(1);
    inner_f->set_type(FieldDescriptorProto::TYPE_STRING);
    inner_f->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
    REQUIRE(google::protobuf::TextFormat::ParseFromString(
        "string: {min_len: 2}", inner_f->mutable_options()->MutableExtension(validate::rules)));
    auto* disabled = file.add_message_type();
    disabled->CopyFrom(*inner);
    disabled->set_name("Disabled");
    disabled->mutable_options()->SetExtension(validate::disabled, true);

    auto* m = file.add_message_type();
    m->set_name("T");
    if (std::string(c.type_name) == "map") {
      auto* entry = m->add_nested_type();
      entry->set_name("FEntry");
      entry->mutable_options()->set_map_entry(true);
      auto* k = entry->add_field();
      k->set_name("key");
      k->set_number(1);
      k->set_type(FieldDescriptorProto::TYPE_STRING);
      k->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
      auto* v = entry->add_field();
      v->set_name("value");
      v->set_number(2);
      v->set_type(FieldDescriptorProto::TYPE_MESSAGE);
      v->set_type_name(".pgvtest.Inner");
      v->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
    }
    auto* f = m->add_field();
    f->set_name("f");
    f->set_number(1);
    f->set_type(c.type);
    if (std::string(c.type_name) == "map") {
      f->set_type_name(".pgvtest.T.FEntry");
      f->set_label(FieldDescriptorProto::LABEL_REPEATED);
    } else {
      if (*c.type_name != '\0') f->set_type_name(c.type_name);
      f->set_label(c.repeated ? FieldDescriptorProto::LABEL_REPEATED : FieldDescriptorProto::LABEL_OPTIONAL);
    }
    validate::FieldRules rules;
    REQUIRE(google::protobuf::TextFormat::ParseFromString(c.rules, &rules));
    *f->mutable_options()->MutableExtension(validate::rules) = rules;
    // A required oneof next to it, set by every case.
    auto* o1 = m->add_field();
    o1->set_name("o");
    o1->set_number(2);
    o1->set_type(FieldDescriptorProto::TYPE_STRING);
    o1->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
    o1->set_oneof_index(0);
    auto* oneof = m->add_oneof_decl();
    oneof->set_name("choice");
    oneof->mutable_options()->SetExtension(validate::required, true);

    const auto* fd = pool_.BuildFile(file);
    REQUIRE(fd != nullptr);
    message_.reset(factory_.GetPrototype(fd->FindMessageTypeByName("T"))->New());
  }

  google::protobuf::Message& message() { return *message_; }

 private:
  google::protobuf::DescriptorPool pool_;
  google::protobuf::DynamicMessageFactory factory_;
  std::unique_ptr<google::protobuf::Message> message_;
};

using T = FieldDescriptorProto;

TEST_CASE("every PGV rule kind is read from the descriptor options", "[config][pgv]") {
  auto c = GENERATE(values<RuleCase>({
      // strings
      {"len", T::TYPE_STRING, "", false, "string: {len: 3}", "f: \"héé\"", ""},
      {"len counts code points", T::TYPE_STRING, "", false, "string: {len: 3}", "f: \"abcd\"", "f: value length must be 3 characters"},
      {"max_len", T::TYPE_STRING, "", false, "string: {max_len: 2}", "f: \"héé\"", "f: value length must be at most 2 characters"},
      {"min_bytes", T::TYPE_STRING, "", false, "string: {min_bytes: 4}", "f: \"héé\"", ""},
      {"max_bytes", T::TYPE_STRING, "", false, "string: {max_bytes: 4}", "f: \"héé\"", "f: value length must be at most 4 bytes"},
      {"const", T::TYPE_STRING, "", false, "string: {const: \"x\"}", "f: \"y\"", "f: value must equal x"},
      {"pattern", T::TYPE_STRING, "", false, "string: {pattern: \"^[a-z]+$\"}", "f: \"Abc\"", "f: value does not match regex pattern \"^[a-z]+$\""},
      {"prefix", T::TYPE_STRING, "", false, "string: {prefix: \"/api\"}", "f: \"/web\"", "f: value does not have prefix \"/api\""},
      {"suffix", T::TYPE_STRING, "", false, "string: {suffix: \".com\"}", "f: \"a.org\"", "f: value does not have suffix \".com\""},
      {"contains", T::TYPE_STRING, "", false, "string: {contains: \"mid\"}", "f: \"amidst\"", ""},
      {"not_contains", T::TYPE_STRING, "", false, "string: {not_contains: \"..\"}", "f: \"a/../b\"", "f: value contains substring \"..\""},
      {"in", T::TYPE_STRING, "", false, "string: {in: [\"a\", \"b\"]}", "f: \"c\"", "f: value must be in list [\"a\", \"b\"]"},
      {"not_in", T::TYPE_STRING, "", false, "string: {not_in: [\"a\"]}", "f: \"a\"", "f: value must not be in list [\"a\"]"},
      {"hostname", T::TYPE_STRING, "", false, "string: {hostname: true}", "f: \"-bad.example\"", "f: value must be a valid hostname"},
      {"hostname ok", T::TYPE_STRING, "", false, "string: {hostname: true}", "f: \"a-1.example.com.\"", ""},
      {"ip", T::TYPE_STRING, "", false, "string: {ip: true}", "f: \"::1\"", ""},
      {"ipv4", T::TYPE_STRING, "", false, "string: {ipv4: true}", "f: \"::1\"", "f: value must be a valid IPv4 address"},
      {"ipv6", T::TYPE_STRING, "", false, "string: {ipv6: true}", "f: \"10.0.0.1\"", "f: value must be a valid IPv6 address"},
      {"address", T::TYPE_STRING, "", false, "string: {address: true}", "f: \"bad host\"", "f: value must be a valid hostname, or ip address"},
      {"uri", T::TYPE_STRING, "", false, "string: {uri: true}", "f: \"not a uri\"", "f: value must be a valid URI"},
      {"uri ok", T::TYPE_STRING, "", false, "string: {uri: true}", "f: \"https://example.com/x\"", ""},
      {"email", T::TYPE_STRING, "", false, "string: {email: true}", "f: \"nobody\"", "f: value must be a valid email address"},
      {"uuid", T::TYPE_STRING, "", false, "string: {uuid: true}", "f: \"1234\"", "f: value must be a valid UUID"},
      {"header name strict", T::TYPE_STRING, "", false, "string: {well_known_regex: HTTP_HEADER_NAME}", "f: \"bad name\"",
       "f: value does not match regex pattern \"^:?[0-9a-zA-Z!#$%&'*+-.^_|~\\x60]+$\""},
      {"header name pseudo", T::TYPE_STRING, "", false, "string: {well_known_regex: HTTP_HEADER_NAME}", "f: \":path\"", ""},
      {"header value strict", T::TYPE_STRING, "", false, "string: {well_known_regex: HTTP_HEADER_VALUE}", "f: \"a\\x01b\"",
       "f: value does not match regex pattern \"^[^\\u0000-\\u0008\\u000A-\\u001F\\u007F]*$\""},
      {"header value loose", T::TYPE_STRING, "", false, "string: {well_known_regex: HTTP_HEADER_VALUE strict: false}", "f: \"a\\x01b\"", ""},
      {"ignore_empty", T::TYPE_STRING, "", false, "string: {min_len: 3 ignore_empty: true}", "", ""},
      {"proto3 default is checked", T::TYPE_STRING, "", false, "string: {min_len: 1}", "", "f: value length must be at least 1 characters"},
      // bytes
      {"bytes len", T::TYPE_BYTES, "", false, "bytes: {len: 4}", "f: \"abc\"", "f: value length must be 4 bytes"},
      {"bytes ipv4", T::TYPE_BYTES, "", false, "bytes: {ipv4: true}", "f: \"\\x0a\\x00\\x00\\x01\"", ""},
      // numbers
      {"int32 gt", T::TYPE_INT32, "", false, "int32: {gt: 0}", "f: 0", "f: value must be greater than 0"},
      {"int64 gte", T::TYPE_INT64, "", false, "int64: {gte: -5}", "f: -6", "f: value must be greater than or equal to -5"},
      {"uint32 lt", T::TYPE_UINT32, "", false, "uint32: {lt: 10}", "f: 10", "f: value must be less than 10"},
      {"uint64 const", T::TYPE_UINT64, "", false, "uint64: {const: 7}", "f: 8", "f: value must equal 7"},
      {"sint32 in", T::TYPE_SINT32, "", false, "sint32: {in: [1, 3]}", "f: 2", "f: value must be in list [1, 3]"},
      {"fixed32 not_in", T::TYPE_FIXED32, "", false, "fixed32: {not_in: [2]}", "f: 2", "f: value must not be in list [2]"},
      {"range inclusive", T::TYPE_INT32, "", false, "int32: {gte: 1 lte: 3}", "f: 4", "f: value must be inside range [1, 3]"},
      {"range exclusive", T::TYPE_INT32, "", false, "int32: {gt: 10 lt: 5}", "f: 7", "f: value must be outside range [5, 10]"},
      {"range exclusive ok", T::TYPE_INT32, "", false, "int32: {gt: 10 lt: 5}", "f: 11", ""},
      {"double gt lt", T::TYPE_DOUBLE, "", false, "double: {gt: 0 lt: 1}", "f: 1", "f: value must be inside range (0, 1)"},
      {"float lte", T::TYPE_FLOAT, "", false, "float: {lte: 0.5}", "f: 0.75", "f: value must be less than or equal to 0.5"},
      {"bool const", T::TYPE_BOOL, "", false, "bool: {const: true}", "", "f: value must equal true"},
      // enums
      {"enum defined_only", T::TYPE_ENUM, ".pgvtest.E", false, "enum: {defined_only: true}", "f: 5", "f: value must be one of the defined enum values"},
      {"enum in", T::TYPE_ENUM, ".pgvtest.E", false, "enum: {in: [0, 1]}", "f: TWO", "f: value must be in list [0, 1]"},
      {"enum const", T::TYPE_ENUM, ".pgvtest.E", false, "enum: {const: 1}", "f: ONE", ""},
      // messages
      {"message required", T::TYPE_MESSAGE, ".pgvtest.Inner", false, "message: {required: true}", "", "f: value is required"},
      {"message recursed", T::TYPE_MESSAGE, ".pgvtest.Inner", false, "", "f: {s: \"x\"}", "f.s: value length must be at least 2 characters"},
      {"message skip", T::TYPE_MESSAGE, ".pgvtest.Inner", false, "message: {skip: true}", "f: {s: \"x\"}", ""},
      {"message disabled", T::TYPE_MESSAGE, ".pgvtest.Disabled", false, "", "f: {s: \"x\"}", ""},
      // repeated
      {"min_items", T::TYPE_STRING, "", true, "repeated: {min_items: 2}", "f: \"a\"", "f: value must contain at least 2 item(s)"},
      {"max_items", T::TYPE_STRING, "", true, "repeated: {max_items: 1}", "f: [\"a\", \"b\"]", "f: value must contain no more than 1 item(s)"},
      {"unique", T::TYPE_STRING, "", true, "repeated: {unique: true}", "f: [\"a\", \"b\", \"a\"]", "f: repeated value must contain unique items"},
      {"items", T::TYPE_INT32, "", true, "repeated: {items: {int32: {gt: 0}}}", "f: [1, 2, 0]", "f[2]: value must be greater than 0"},
      {"message items recursed", T::TYPE_MESSAGE, ".pgvtest.Inner", true, "", "f: [{s: \"ok\"}, {s: \"x\"}]", "f[1].s: value length must be at least 2 characters"},
      // maps
      {"min_pairs", T::TYPE_MESSAGE, "map", false, "map: {min_pairs: 1}", "", "f: value must contain at least 1 pair(s)"},
      {"max_pairs", T::TYPE_MESSAGE, "map", false, "map: {max_pairs: 1}", "f: {key: \"a\" value: {s: \"ok\"}} f: {key: \"b\" value: {s: \"ok\"}}", "f: value must contain no more than 1 pair(s)"},
      {"map keys", T::TYPE_MESSAGE, "map", false, "map: {keys: {string: {prefix: \"x-\"}}}", "f: {key: \"a\" value: {s: \"ok\"}}", "f[\"a\"]: value does not have prefix \"x-\""},
      {"map values recursed", T::TYPE_MESSAGE, "map", false, "", "f: {key: \"a\" value: {s: \"x\"}}", "f[\"a\"].s: value length must be at least 2 characters"},
      // Any
      {"any required", T::TYPE_MESSAGE, ".google.protobuf.Any", false, "any: {required: true}", "", "f: value is required"},
      {"any in", T::TYPE_MESSAGE, ".google.protobuf.Any", false, "any: {in: [\"type.googleapis.com/google.protobuf.Duration\"]}",
       "f: {type_url: \"type.googleapis.com/google.protobuf.Timestamp\"}",
       "f: type URL must be in list [\"type.googleapis.com/google.protobuf.Duration\"]"},
      {"any not_in", T::TYPE_MESSAGE, ".google.protobuf.Any", false, "any: {not_in: [\"type.googleapis.com/google.protobuf.Duration\"]}",
       "f: {type_url: \"type.googleapis.com/google.protobuf.Duration\"}",
       "f: type URL must not be in list [\"type.googleapis.com/google.protobuf.Duration\"]"},
      // Duration / Timestamp
      {"duration required", T::TYPE_MESSAGE, ".google.protobuf.Duration", false, "duration: {required: true}", "", "f: value is required"},
      {"duration gt", T::TYPE_MESSAGE, ".google.protobuf.Duration", false, "duration: {gt: {}}", "f: {}", "f: value must be greater than 0s"},
      {"duration lte", T::TYPE_MESSAGE, ".google.protobuf.Duration", false, "duration: {lte: {seconds: 1}}", "f: {seconds: 1 nanos: 1}", "f: value must be less than or equal to 1s"},
      {"duration const", T::TYPE_MESSAGE, ".google.protobuf.Duration", false, "duration: {const: {nanos: 250000000}}", "f: {nanos: 250000000}", ""},
      {"timestamp lt", T::TYPE_MESSAGE, ".google.protobuf.Timestamp", false, "timestamp: {lt: {seconds: 100}}", "f: {seconds: 100}", "f: value must be less than 1970-01-01T00:01:40+00:00"},
      {"timestamp gt_now", T::TYPE_MESSAGE, ".google.protobuf.Timestamp", false, "timestamp: {gt_now: true}", "f: {seconds: 100}", "f: value must be greater than now"},
      // wrappers carry the scalar rules of their value
      {"wrapper range", T::TYPE_MESSAGE, ".google.protobuf.UInt32Value", false, "uint32: {gte: 1 lte: 10}", "f: {value: 0}", "f: value must be inside range [1, 10]"},
      {"wrapper unset", T::TYPE_MESSAGE, ".google.protobuf.UInt32Value", false, "uint32: {gte: 1 lte: 10}", "", ""},
  }));
  CAPTURE(c.label);
  RuntimeSchema schema(c);
  auto& m = schema.message();
  REQUIRE(google::protobuf::TextFormat::ParseFromString(absl::StrCat(c.value, " o: \"set\""), &m));
  auto s = validateProtoRules(m);
  CHECK(std::string(s.ok() ? "" : s.message()) == c.error);
}

TEST_CASE("a required oneof that is not set is reported at the oneof's name", "[config][pgv]") {
  RuleCase c{"oneof", T::TYPE_STRING, "", false, "", "", ""};
  RuntimeSchema schema(c);
  auto s = validateProtoRules(schema.message(), "root");
  CHECK(std::string(s.message()) == "root.choice: value is required");
}

}  // namespace
}  // namespace turnout::config
