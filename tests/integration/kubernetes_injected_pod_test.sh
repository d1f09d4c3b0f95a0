#!/usr/bin/env bash
# Pods injected by turnout-cp's webhook (the sample app of examples/kubernetes/), run as a
# kubelet would in network namespaces the test makes. Exits 77 (skip) where namespaces are
# forbidden. Usage: kubernetes_injected_pod_test.sh <turnout-binary> <source-dir>; turnout-cp
# from $TURNOUT_CP.
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/kubernetes_injected_pod_test.py" "$1" "$cp_bin" "$2"
