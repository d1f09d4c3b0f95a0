#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config/snapshot/snapshot.h"
#include "envoy/config/core/v3/address.pb.h"
#include "envoy/config/endpoint/v3/endpoint.pb.h"

namespace turnout::config {

// The one translation of endpoints, shared by a cluster's inline
// load_assignment (STATIC, STRICT_DNS, LOGICAL_DNS) and the
// ClusterLoadAssignments an EDS cluster reads from its file, so that both
// honour the same fields the same way: per locality the priority, the
// locality labels and its load_balancing_weight (kept, not used: Envoy
// ignores it without locality_weighted_lb_config); per lb_endpoint the
// address, hostname, health_status and load_balancing_weight. What the field
// policy does not accept is rejected before (config/bootstrap/field_policy.cc).
// Stateless; any thread.

// `path` names the ClusterLoadAssignment (`static_resources.clusters[0].
// load_assignment`, `resources[0]`); errors name the field under it.
// STATIC and EDS clusters take IP addresses only (Envoy parses them without
// a resolver). `endpoint_count` (optional) gets the number of lb_endpoints.
absl::StatusOr<std::vector<LocalityEndpointsConfig>> translateLoadAssignment(
    const envoy::config::endpoint::v3::ClusterLoadAssignment& assignment, const std::string& path,
    ClusterConfig::Type type, size_t* endpoint_count = nullptr);

// What an address is for: only a listener binds with ipv4_compat.
enum class AddressUse { Listener, Other };

// An Address as turnout keeps it; errors name `path`. ipv4_compat is taken on
// a listener's IPv6 address (its socket then takes IPv4 too) and rejected
// anywhere else, where turnout would not honour it.
absl::StatusOr<Address> toAddress(const envoy::config::core::v3::Address& address,
                                  const std::string& path, AddressUse use = AddressUse::Other);

// Whether `s` is an IPv4 or IPv6 literal (inet_pton; no name resolution).
bool isIpLiteral(const std::string& s);

}  // namespace turnout::config
