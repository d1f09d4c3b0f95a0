"""Certificates for the admission webhook tests, made with the openssl CLI at
test time (no committed keys): a CA and server certificates it signs."""

import os
import subprocess

SERVICE_DNS = "turnout-cp.turnout-system.svc"


def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def make_ca(directory, name="ca"):
    """(cert path, key path) of a new self-signed CA in `directory`."""
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=turnout webhook test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_server_cert(directory, ca, name="tls", common_name=SERVICE_DNS,
                     sans="DNS:%s,DNS:%s.cluster.local,IP:127.0.0.1" % (SERVICE_DNS, SERVICE_DNS)):
    """(cert path, key path) of a server certificate signed by `ca`."""
    ca_cert, ca_key = ca
    cert, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    csr = os.path.join(directory, name + ".csr")
    ext = os.path.join(directory, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % sans)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + common_name)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
             "-out", cert, "-days", "2", "-extfile", ext)
    return cert, key


def common_name(cert_der):
    """The subject CN of a DER certificate (what ssl's getpeercert(True) gives)."""
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-nameopt", "multiline"],
                       input=cert_der, capture_output=True, timeout=10)
    for line in r.stdout.decode().splitlines():
        line = line.strip()
        if line.startswith("commonName"):
            return line.split("=", 1)[1].strip()
    return None
