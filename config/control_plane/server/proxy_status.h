#pragma once

// What turnout-cp knows about one connected xDS client (GET /v1/proxies,
// `turnout-cp proxies`): filled by the ADS server (ads_server.h), read by the
// REST API. Main thread.

#include <cstdint>
#include <map>
#include <string>

#include "absl/time/time.h"

namespace turnout::control_plane {

struct ProxyTypeStatus {
  std::string sent_version;   // the version last pushed on this stream
  std::string acked_version;  // the version the client last ACKed ("" until one)
  std::string nack_error;     // the error_detail of the last NACK; "" after an ACK
  bool pending = false;       // a push waits for its ACK or NACK
};

struct ProxyStatus {
  std::string node_id;
  std::string node_cluster;
  std::string user_agent;  // node.user_agent_name/user_agent_version
  std::string dialect;     // "turnout" or "envoy"
  std::string peer;        // "ip:port" of the stream
  absl::Time connected_at;
  // By short type name: "clusters", "endpoints", "listeners", "routes".
  std::map<std::string, ProxyTypeStatus> types;
};

}  // namespace turnout::control_plane
