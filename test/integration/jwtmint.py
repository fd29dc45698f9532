"""jwtmint.py - mint JWTs for the tests without spout's own code: HS* with
Python's hmac, RS256 and ES256 with the openssl command (the ECDSA DER
signature turned into JWS's raw r||s). Keys are made per test run in a
temporary directory."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import tempfile


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _signing_input(header, claims):
    return (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
            b64url(json.dumps(claims, separators=(",", ":")).encode()))


def hs(secret, claims, alg="HS256", header_extra=None):
    h = {"alg": alg, "typ": "JWT"}
    h.update(header_extra or {})
    si = _signing_input(h, claims)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    key = secret.encode() if isinstance(secret, str) else secret
    return si + "." + b64url(hmac.new(key, si.encode(), digest).digest())


def none_alg(claims):
    return _signing_input({"alg": "none"}, claims) + "."


def _der_to_raw(der, size):
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> r || s, each <size> bytes."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7f)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(size, b"\x00")
        i += 2 + n
    return out


class Keys:
    """An RSA 2048 and an EC P-256 key pair, as PEM files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="spout-jwt-")
        self.rsa = os.path.join(self.dir, "rsa.pem")
        self.rsa_pub = os.path.join(self.dir, "rsa.pub.pem")
        self.ec = os.path.join(self.dir, "ec.pem")
        self.ec_pub = os.path.join(self.dir, "ec.pub.pem")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)
        run("openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", self.rsa)
        run("openssl", "pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)
        run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", self.ec)
        run("openssl", "pkey", "-in", self.ec, "-pubout", "-out", self.ec_pub)

    def _sign(self, key, data):
        p = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data,
                           capture_output=True, check=True, timeout=30)
        return p.stdout

    def rs256(self, claims):
        si = _signing_input({"alg": "RS256", "typ": "JWT"}, claims)
        return si + "." + b64url(self._sign(self.rsa, si.encode()))

    def es256(self, claims, key=None):
        si = _signing_input({"alg": "ES256", "typ": "JWT"}, claims)
        return si + "." + b64url(_der_to_raw(self._sign(key or self.ec, si.encode()), 32))

    def public_pem(self, which):
        with open(self.ec_pub if which == "ec" else self.rsa_pub) as f:
            return f.read()

    def close(self):
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)
