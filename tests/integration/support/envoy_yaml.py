"""Envoy v3 bootstrap YAML builders and a one-shot HTTP client for the
integration tests: everything on 127.0.0.1 port 0."""

import http.client
import textwrap

TIMEOUT_S = 5.0
STAT_PREFIX = "ingress"

# --------------------------------------------------------------------------
# Bootstrap builders (Envoy v3 YAML, everything on 127.0.0.1 port 0).
# --------------------------------------------------------------------------

# The sandbox-routing fixture both suites use: service `reviews` with one
# sandbox fork for routing key feat-x (a virtual_hosts entry at column 0).
REVIEWS_WITH_SANDBOX_VHOST = """\
- name: reviews
  domains: ["reviews"]
  routes:
  - match:
      prefix: "/"
      headers:
      - name: x-turnout-routing-key
        string_match: { exact: feat-x }
    route: { cluster: reviews-feat-x }
  - match: { prefix: "/" }
    route: { cluster: reviews }
"""

ROUTER = """\
- name: envoy.filters.http.router
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""

ROUTING_KEY = """\
- name: turnout.filters.http.routing_key
  typed_config:
    "@type": type.googleapis.com/turnout.extensions.filters.http.routing_key.v3.RoutingKey
"""

HEALTH_CHECK = """\
- name: envoy.filters.http.health_check
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
    pass_through_mode: false
    headers:
    - name: ":path"
      string_match: { exact: "/healthz" }
"""


def cluster(name, ports, lb_policy="ROUND_ROBIN"):
    endpoints = "".join(
        "      - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }\n" % p
        for p in ports)
    return ("- name: %s\n"
            "  connect_timeout: 1s\n"
            "  type: STATIC\n"
            "  lb_policy: %s\n"
            "  load_assignment:\n"
            "    cluster_name: %s\n"
            "    endpoints:\n"
            "    - lb_endpoints:\n%s") % (name, lb_policy, name, endpoints)


def bootstrap(virtual_hosts, clusters, http_filters=ROUTER):
    """virtual_hosts, http_filters: YAML lists at column 0; clusters: list of cluster() strings."""
    return (
        "admin:\n"
        "  address:\n"
        "    socket_address: { address: 127.0.0.1, port_value: 0 }\n"
        "static_resources:\n"
        "  listeners:\n"
        "  - name: ingress\n"
        "    address:\n"
        "      socket_address: { address: 127.0.0.1, port_value: 0 }\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        "          \"@type\": type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager\n"
        "          stat_prefix: %s\n"
        "          route_config:\n"
        "            name: local\n"
        "            virtual_hosts:\n%s"
        "          http_filters:\n%s"
        "  clusters:\n%s"
    ) % (STAT_PREFIX,
         textwrap.indent(textwrap.dedent(virtual_hosts), " " * 12),
         textwrap.indent(http_filters, " " * 10),
         textwrap.indent("".join(clusters), " " * 2))


# --------------------------------------------------------------------------
# Client helpers.
# --------------------------------------------------------------------------


def request(port, method, path, headers=None, body=None, host="svc", conn=None, **kw):
    """One request; returns (status, headers dict lower-cased, body bytes)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        hdrs = {"Host": host}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs, **kw)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()
