#!/usr/bin/env bash
# examples/kubernetes/: every manifest parses and they agree with each other and
# with turnout-cp's flags; make-certs.sh makes certificates a real turnout-cp
# serves the webhook with. No cluster: Kubernetes cannot run here.
# Usage: kubernetes_manifests_test.sh <turnout-binary> <source-dir>
cp_bin=${TURNOUT_CP:-$(dirname "$1")/../config/control_plane/turnout-cp}
exec /usr/bin/python3 "$2/tests/integration/kubernetes_manifests_test.py" "$1" "$cp_bin" "$2"
