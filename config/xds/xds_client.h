#pragma once

// The State-of-the-World xDS protocol of one aggregated (ADS) stream, as a
// client, without I/O (docs/xds.md). The transport (proxy/xds/ads_client)
// opens a gRPC stream, tells this object, feeds it every DiscoveryResponse,
// and sends whatever DiscoveryRequests takeRequests() hands back.
//
// Envoy's client rules (xds_protocol.rst):
// - the node is sent on the first request of each stream only;
// - each type keeps the version it last accepted across reconnects, and the
//   nonce of the last response on the current stream only;
// - every response is ACKed (its version_info and nonce) or NACKed (the
//   previous good version, its nonce, and error_detail with the reason);
// - a response holding a resource of another type is NACKed without
//   reaching the handler; the handler NACKs what it cannot accept (a name
//   twice, a resource that does not parse or validate). Resources wrapped
//   in envoy.service.discovery.v3.Resource are unwrapped first;
// - LDS and CDS are wildcard subscriptions; RDS and EDS name their
//   resources, and a change of names is sent as a new request at once (after
//   the ACK of the response being handled, when it is that response that
//   changed them: a CDS update that adds an EDS cluster ACKs CDS first, then
//   asks for the new ClusterLoadAssignment, as Envoy does);
// - a type that no longer names any resource sends one request with empty
//   resource_names (unsubscribe) if it had named some on this stream;
// - requests are sent in Envoy's order on a new stream: CDS, EDS, LDS, RDS.
//
// Single-threaded (the main thread).

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "envoy/config/core/v3/base.pb.h"
#include "envoy/service/discovery/v3/discovery.pb.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/repeated_ptr_field.h"

namespace turnout::config::xds {

using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;
using envoy::service::discovery::v3::DiscoveryRequest;
using envoy::service::discovery::v3::DiscoveryResponse;

// Applies the resources of one accepted response of its type: Ok is ACKed,
// an error is NACKed with its message (and the handler must have kept its
// previous config). SotW: for wildcard types `resources` is the whole set;
// for named types it holds the resources the server sent this time.
using ResourceHandler = std::function<absl::Status(
    const std::string& version_info,
    const google::protobuf::RepeatedPtrField<google::protobuf::Any>& resources)>;

// The Delta (incremental) variant (ads_config api_type DELTA_GRPC), Envoy's
// rules: the client keeps every resource it holds with its version; a
// request subscribes and unsubscribes names (a wildcard type subscribes
// nothing by name on its first request); a new stream sends
// initial_resource_versions; a response carries only changed resources and
// removed names, and is ACKed with its nonce (NACKed with error_detail,
// the held set unchanged). A ResourceHandler sees the same thing as in
// SotW: for a wildcard type the whole held set, for a named type the
// resources that changed; a DeltaHandler (subscribeDelta) sees what changed
// and the names removed, and is the O(changed) form.
enum class XdsProtocol { kStateOfTheWorld, kDelta };

// Delta, the incremental form: what one accepted response changes. The
// pointers are into the response (or the cache being restored) and valid
// during the handler call only. `changed` are the added or replaced
// resources in response order (each of the type, with a body, no name
// twice: checked before the handler); `removed` the names of held resources
// the response removes (names not held are left out). O(changed) per
// response, whatever the size of the held set.
struct DeltaUpdate {
  std::string version_info;  // system_version_info
  std::vector<const envoy::service::discovery::v3::Resource*> changed;
  std::vector<std::string> removed;
};
// Ok commits the update to the held set and ACKs; an error NACKs it with its
// message, the held set unchanged (the handler must have kept its config).
using DeltaHandler = std::function<absl::Status(const DeltaUpdate& update)>;

// How a Delta subscription names its resources.
struct SubscribeOptions {
  bool wildcard = false;
  // Envoy's use_namespace_matching (VHDS): each name is a namespace, and
  // the server sends every resource named `<namespace>/<x>` (the namespace
  // is the part before the last '/'). The held set is not pruned to the
  // subscribed names; unsubscribing a namespace drops its resources.
  bool namespaces = false;
};

// The namespace of a resource name: before its last '/' (Envoy's
// namespaceFromName), empty without one.
std::string namespaceOf(const std::string& resource_name);

class XdsClient {
 public:
  explicit XdsClient(envoy::config::core::v3::Node node,
                     XdsProtocol protocol = XdsProtocol::kStateOfTheWorld);
  XdsProtocol protocol() const { return protocol_; }

  // Interest in a type: `wildcard` (LDS, CDS) or the names of the resources
  // wanted (RDS, EDS). Replaces the type's previous names and handler. When
  // the stream is open and the names changed, a request is queued.
  void subscribe(const std::string& type_url, bool wildcard, std::set<std::string> names,
                 ResourceHandler handler);
  // Delta only: interest in a type with the incremental handler. Replaces
  // the type's previous names and handler. On a SotW client every response
  // of the type is NACKed (it needs Delta).
  void subscribeDelta(const std::string& type_url, SubscribeOptions options,
                      std::set<std::string> names, DeltaHandler handler);
  // Changes only the names of a subscribed type (queues a request if they changed).
  void setNames(const std::string& type_url, std::set<std::string> names);
  // The same, by difference: O(changed log names) instead of a whole set
  // (EDS at 20,000 clusters, one cluster added). `remove` applies first.
  void updateNames(const std::string& type_url, const std::vector<std::string>& add,
                   const std::vector<std::string>& remove);

  // A new stream is up: queues the first request of every subscribed type
  // (the first one carries the node).
  void onStreamOpen();
  // The stream ended: nonces and the names sent on it are forgotten; the
  // versions stay.
  void onStreamClosed();
  bool streamOpen() const { return open_; }

  // One response: checked, handed to its type's handler, then ACKed or
  // NACKed (queued). A type nobody subscribed to is ignored (Envoy warns and
  // does not answer); the return says so.
  enum class Outcome { kAccepted, kRejected, kIgnored };
  Outcome onResponse(const DiscoveryResponse& response);
  // Delta: one response, applied to the held set and answered.
  Outcome onDeltaResponse(const DeltaDiscoveryResponse& response);

  // A response from a cache (no stream): handed to its type's handler; when
  // accepted, its version becomes the type's, so the next stream asks from
  // it. Nothing is queued. NotFound when nobody subscribed to the type. A
  // type with a DeltaHandler needs each resource wrapped in
  // envoy.service.discovery.v3.Resource (name and version): they become the
  // held set, announced in the next stream's initial_resource_versions.
  absl::Status restore(const DiscoveryResponse& response);

  // The requests to send, in order; empties the queue.
  std::vector<DiscoveryRequest> takeRequests();
  std::vector<DeltaDiscoveryRequest> takeDeltaRequests();

  // Per type: what /config_dump and the admin show.
  struct TypeState {
    bool wildcard = false;
    bool namespaces = false;  // SubscribeOptions::namespaces
    std::set<std::string> names;
    ResourceHandler handler;
    DeltaHandler delta_handler;  // set instead of `handler` by subscribeDelta
    std::string version_info;  // last accepted (survives reconnects)
    std::string nonce;         // last response on this stream
    std::string last_error;    // of the last NACK; cleared by an ACK
    bool sent_on_stream = false;
    std::set<std::string> names_sent;  // the names of the last request on this stream
    // Delta: every resource held, by name: its version and the resource
    // (an empty Any for a type with a DeltaHandler, which keeps its own).
    std::map<std::string, std::pair<std::string, google::protobuf::Any>> held;
  };
  const TypeState* state(const std::string& type_url) const;

 private:
  void queueRequest(const std::string& type_url, TypeState& t, const absl::Status* error);
  // Requests are held while a response is handled, so that its ACK goes
  // first; flushed after.
  void maybeQueueNames(const std::string& type_url, TypeState& t);
  // After a response's ACK/NACK: the name changes its handler made, in Envoy's order.
  void flushDeferred();

  void queueDelta(const std::string& type_url, TypeState& t, const absl::Status* error, bool ack);
  // Delta: a response's changed resources and removals checked, then the
  // handler, then committed to the held set in place: O(changed) (the whole
  // -set ResourceHandler of a wildcard type still sees every held resource,
  // by pointer, not copied).
  absl::Status applyDelta(const std::string& type_url, TypeState& t,
                          const DeltaDiscoveryResponse& response);
  // Runs the handler on the wrapped-checked resources; the outcome's status.
  absl::Status handle(const std::string& type_url, TypeState& t, const std::string& version,
                      const google::protobuf::RepeatedPtrField<google::protobuf::Any>& resources);

  envoy::config::core::v3::Node node_;
  XdsProtocol protocol_;
  std::map<std::string, TypeState> types_;
  std::vector<DiscoveryRequest> queue_;
  std::vector<DeltaDiscoveryRequest> delta_queue_;
  std::vector<std::string> deferred_;  // types whose names changed while handling a response
  bool open_ = false;
  bool node_sent_ = false;
  bool handling_ = false;
};

// Envoy's order for a new stream and for pushes: CDS, EDS, LDS, RDS, then
// any other type by name.
int typeOrder(const std::string& type_url);

}  // namespace turnout::config::xds
