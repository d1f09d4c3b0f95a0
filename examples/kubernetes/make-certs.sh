#!/usr/bin/env bash
# Makes the admission webhook's certificates with openssl and writes, into
# OUT_DIR (default: generated/ next to this script):
#   ca.crt, ca.key           a CA for the webhook (keep ca.key private, or delete it)
#   tls.crt, tls.key         turnout-cp's serving certificate, for the Service's DNS names
#   webhook-tls-secret.yaml  the Secret turnout-cp mounts (turnout-cp-webhook-tls)
#   webhook.yaml             webhook.yaml with caBundle set to ca.crt
# Usage: make-certs.sh [OUT_DIR]; NAMESPACE (turnout-system), SERVICE (turnout-cp)
# and DAYS (365) override the defaults. Run it again to rotate: apply the new
# Secret (turnout-cp picks it up without a restart) and the new webhook.yaml.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/generated}
NAMESPACE=${NAMESPACE:-turnout-system}
SERVICE=${SERVICE:-turnout-cp}
DAYS=${DAYS:-365}
SECRET=turnout-cp-webhook-tls
mkdir -p "$OUT"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A CA, reused when OUT already has one (so that a rotation keeps caBundle).
if [ ! -s "$OUT/ca.crt" ] || [ ! -s "$OUT/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$OUT/ca.key" -out "$OUT/ca.crt" -days $((DAYS * 10)) \
    -subj "/CN=turnout sidecar injector CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

# The serving certificate: the API server calls https://SERVICE.NAMESPACE.svc:443/inject.
cat >"$work/ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$SERVICE.$NAMESPACE.svc,DNS:$SERVICE.$NAMESPACE.svc.cluster.local,DNS:$SERVICE.$NAMESPACE
EXT
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/tls.key" -out "$work/tls.csr" -subj "/CN=$SERVICE.$NAMESPACE.svc" 2>/dev/null
openssl x509 -req -in "$work/tls.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
  -CAserial "$work/ca.srl" -out "$work/tls.crt" -days "$DAYS" -extfile "$work/ext" 2>/dev/null
openssl verify -CAfile "$OUT/ca.crt" "$work/tls.crt" >/dev/null
mv "$work/tls.key" "$OUT/tls.key"
mv "$work/tls.crt" "$OUT/tls.crt"

b64() { base64 <"$1" | tr -d '\n'; }
cat >"$OUT/webhook-tls-secret.yaml" <<YAML
# Made by make-certs.sh: turnout-cp's webhook serving certificate.
apiVersion: v1
kind: Secret
metadata:
  name: $SECRET
  namespace: $NAMESPACE
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$OUT/tls.crt")
  tls.key: $(b64 "$OUT/tls.key")
YAML
sed -e "s|caBundle: REPLACED-BY-make-certs.sh|caBundle: $(b64 "$OUT/ca.crt")|" \
    -e "s|^\( *\)name: turnout-cp\$|\1name: $SERVICE|" \
    -e "s|^\( *\)namespace: turnout-system\$|\1namespace: $NAMESPACE|" \
    "$HERE/webhook.yaml" >"$OUT/webhook.yaml"
grep -q "caBundle: REPLACED" "$OUT/webhook.yaml" && { echo "make-certs.sh: caBundle not set" >&2; exit 1; }
chmod 644 "$OUT/ca.crt" "$OUT/tls.crt" "$OUT/webhook.yaml"
echo "wrote $OUT/{ca.crt,ca.key,tls.crt,tls.key,webhook-tls-secret.yaml,webhook.yaml}"
echo "certificate for $SERVICE.$NAMESPACE.svc, valid $DAYS days"
