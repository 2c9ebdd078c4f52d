#!/usr/bin/python3
"""Independent JOSE interoperability test for the KBS.

This test checks the KBS against an independent JOSE implementation,
python3-jwcrypto (Debian package), and uses only the Python standard library
besides that. It imports no project code. It shows that:

  * the KBS accepts an admin token (EdDSA JWT) minted by jwcrypto, and rejects
    one signed by an untrusted key;
  * after an RCAR handshake with the `sample` TEE, the resource JWE the KBS
    returns (flattened JSON serialization) decrypts with jwcrypto for
    EC P-256 / EC P-521 (ECDH-ES+A256KW) and RSA 2048 (RSA-OAEP-256) TEE keys,
    on both the cookie (kbs-client / AA) path and the Bearer-token (CDH) path;
  * the JWE protected header is compact JSON with members ordered alg, enc
    (then epk), so that a serde_json re-serialization by the CoCo client
    reproduces the AAD bytes exactly;
  * the attestation token (EAR JWT, ES256) verifies with jwcrypto against the
    KBS's /.well-known/jwks.json, carries the expected claims, and a tampered
    token fails verification (in jwcrypto and in the KBS).

Run it with Debian's interpreter (jwcrypto lives in
/usr/lib/python3/dist-packages):

  KBS_BIN=/path/to/kbs KBSCTL_BIN=/path/to/kbsctl \\
      /usr/bin/python3 tests/interop/jose_interop_test.py -v
"""

import base64
import hashlib
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

try:
    from jwcrypto import jwe as jc_jwe
    from jwcrypto import jwk as jc_jwk
    from jwcrypto import jws as jc_jws
    from jwcrypto import jwt as jc_jwt
    _JWCRYPTO_IMPORT_ERROR = None
except ImportError as exc:  # must FAIL, not skip: CI installs it
    _JWCRYPTO_IMPORT_ERROR = exc

HTTP_TIMEOUT = 10.0      # seconds, every HTTP call
STARTUP_TIMEOUT = 10.0   # seconds, waiting for the ready file
STOP_TIMEOUT = 5.0       # seconds after SIGTERM before SIGKILL

EAT_PROFILE = "tag:github.com,2024:confidential-containers/Trustee"
HOST = "127.0.0.1"


def b64url_nopad(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode_strict(text):
    """Decode base64url without padding; reject '=' as the CoCo client does."""
    if not isinstance(text, str):
        raise AssertionError("expected a base64url string, got %r" % (text,))
    if "=" in text or "+" in text or "/" in text:
        raise AssertionError("not unpadded base64url: %r" % (text,))
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_json(obj):
    # Equivalent to RFC 8785 JCS for ASCII-only, number-free values.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class HttpResult:
    def __init__(self, method, url, req_body, status, headers, body):
        self.method = method
        self.url = url
        self.req_body = req_body
        self.status = status
        self.headers = headers
        self.body = body

    def describe(self):
        req = self.req_body
        if isinstance(req, bytes) and len(req) > 600:
            req = req[:600] + b"..."
        body = self.body
        if len(body) > 1200:
            body = body[:1200] + b"..."
        return ("request: %s %s body=%r\nresponse: %s headers=%r body=%r"
                % (self.method, self.url, req, self.status,
                   dict(self.headers.items()) if self.headers else None, body))


def http_call(opener, method, url, body=None, headers=None):
    """One HTTP request with a bounded timeout; never raises for a status."""
    req = urllib.request.Request(url, data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with opener.open(req, timeout=HTTP_TIMEOUT) as resp:
            return HttpResult(method, url, body, resp.status, resp.headers,
                              resp.read())
    except urllib.error.HTTPError as err:
        try:
            data = err.read()
        finally:
            err.close()
        return HttpResult(method, url, body, err.code, err.headers, data)


def new_tee_key(kind):
    """Returns (private jwcrypto JWK, tee-pubkey dict exactly as CoCo sends it)."""
    if kind in ("P-256", "P-521"):
        priv = jc_jwk.JWK.generate(kty="EC", crv=kind)
        pub = priv.export_public(as_dict=True)
        tee_pubkey = {"kty": "EC", "crv": kind, "alg": "ECDH-ES+A256KW",
                      "x": pub["x"], "y": pub["y"]}
    elif kind == "RSA":
        priv = jc_jwk.JWK.generate(kty="RSA", size=2048)
        pub = priv.export_public(as_dict=True)
        tee_pubkey = {"kty": "RSA", "alg": "RSA-OAEP-256",
                      "n": pub["n"], "e": pub["e"]}
    else:
        raise ValueError(kind)
    return priv, tee_pubkey


class JoseInteropTest(unittest.TestCase):
    """One KBS for the whole class; every test runs its own RCAR session."""

    # resource path -> value (set in setUpClass)
    RESOURCES = {}

    # ------------------------------------------------------------------ setup
    @classmethod
    def setUpClass(cls):
        if _JWCRYPTO_IMPORT_ERROR is not None:
            raise AssertionError(
                "python3-jwcrypto is required but cannot be imported (%s). "
                "Install it (apt-get install python3-jwcrypto) and run this "
                "test with /usr/bin/python3." % (_JWCRYPTO_IMPORT_ERROR,))
        cls.kbs_bin = os.environ.get("KBS_BIN")
        cls.kbsctl_bin = os.environ.get("KBSCTL_BIN")
        missing = [n for n, v in (("KBS_BIN", cls.kbs_bin),
                                  ("KBSCTL_BIN", cls.kbsctl_bin)) if not v]
        if missing:
            raise AssertionError(
                "environment variable(s) %s not set: point KBS_BIN at the "
                "built `kbs` binary and KBSCTL_BIN at `kbsctl`"
                % ", ".join(missing))
        for name, path in (("KBS_BIN", cls.kbs_bin),
                           ("KBSCTL_BIN", cls.kbsctl_bin)):
            if not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise AssertionError("%s=%s is not an executable file"
                                     % (name, path))

        cls.proc = None
        cls.log_file = None
        cls.tmp = tempfile.mkdtemp(prefix="kbs-jose-interop-")
        cls.addClassCleanup(cls._cleanup)

        # Admin key pair from kbsctl.
        admin_dir = os.path.join(cls.tmp, "admin")
        os.mkdir(admin_dir)
        kg = subprocess.run([cls.kbsctl_bin, "admin", "keygen",
                             "--out-dir", admin_dir],
                            capture_output=True, timeout=30)
        if kg.returncode != 0:
            raise AssertionError("kbsctl admin keygen failed (rc=%d): %r %r"
                                 % (kg.returncode, kg.stdout, kg.stderr))
        with open(os.path.join(admin_dir, "admin.key"), "rb") as f:
            cls.admin_key = jc_jwk.JWK.from_pem(f.read())
        if cls.admin_key.get("kty") != "OKP" or \
                cls.admin_key.get("crv") != "Ed25519":
            raise AssertionError("admin.key is not Ed25519: %r"
                                 % (cls.admin_key.export_public(as_dict=True),))

        # Start the server.
        data_dir = os.path.join(cls.tmp, "data")
        os.mkdir(data_dir)
        ready = os.path.join(cls.tmp, "ready.json")
        cls.log_path = os.path.join(cls.tmp, "kbs.log")
        cls.log_file = open(cls.log_path, "wb")
        cls.proc = subprocess.Popen(
            [cls.kbs_bin, "--allow-sample-tee",
             "--data-dir", data_dir,
             "--http", HOST + ":0", "--grpc", HOST + ":0",
             "--admin-public-key", os.path.join(admin_dir, "admin.pub"),
             "--ready-file", ready],
            stdout=cls.log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        ports = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if cls.proc.poll() is not None:
                break
            try:
                with open(ready, "r") as f:
                    ports = json.load(f)
                if isinstance(ports, dict) and isinstance(ports.get("http"), int):
                    break
                ports = None
            except (OSError, ValueError):
                ports = None
            time.sleep(0.05)
        if ports is None:
            raise AssertionError("kbs did not become ready within %.0fs "
                                 "(exit code %r); log:\n%s"
                                 % (STARTUP_TIMEOUT, cls.proc.poll(),
                                    cls._log_tail()))
        cls.base = "http://%s:%d" % (HOST, ports["http"])
        # The port must really accept connections.
        with socket.create_connection((HOST, ports["http"]), timeout=HTTP_TIMEOUT):
            pass

        cls.plain = urllib.request.build_opener()  # no cookie jar

        # Resources (one per test, plus binary / multi-block content) and an
        # allow-all resource policy, all through jwcrypto-minted admin tokens.
        cls.RESOURCES = {
            "interop/ec-p256/secret": b"p256-" + os.urandom(8).hex().encode(),
            "interop/ec-p521/secret": bytes(range(256)) + os.urandom(300),
            "interop/rsa-oaep-256/secret": b"rsa-" + os.urandom(2000),
            "interop/bearer/secret": b"bearer-\x00\xff\x80-" + os.urandom(40),
        }
        for path, value in cls.RESOURCES.items():
            r = cls._admin_post("/kbs/v0/resource/" + path, value)
            if r.status != 200:
                raise AssertionError("storing resource %s failed\n%s"
                                     % (path, r.describe()))
        policy = json.dumps({"policy": b64url_nopad(
            b'{"preset":"allow-all"}')}).encode()
        r = cls._admin_post("/kbs/v0/resource-policy", policy,
                            content_type="application/json")
        if r.status != 200:
            raise AssertionError("setting resource policy failed\n%s"
                                 % r.describe())

    @classmethod
    def _log_tail(cls):
        try:
            with open(cls.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    @classmethod
    def _cleanup(cls):
        proc = cls.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if cls.log_file is not None:
            cls.log_file.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _admin_token(cls, key=None):
        key = key or cls.admin_key
        now = int(time.time())
        tok = jc_jwt.JWT(header={"alg": "EdDSA", "typ": "JWT"},
                         claims={"exp": now + 300, "iat": now},
                         algs=["EdDSA"])
        tok.make_signed_token(key)
        return tok.serialize()

    @classmethod
    def _admin_post(cls, path, body, content_type="application/octet-stream",
                    key=None):
        return http_call(cls.plain, "POST", cls.base + path, body,
                         {"Authorization": "Bearer " + cls._admin_token(key),
                          "Content-Type": content_type})

    # ---------------------------------------------------------------- helpers
    def _rcar(self, kind):
        """RCAR handshake with the sample TEE.

        Returns (cookie opener, token, private key, tee-pubkey dict)."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar))
        hdrs = {"Content-Type": "application/json"}

        req = json.dumps({"version": "0.4.0", "tee": "sample",
                          "extra-params": ""}).encode()
        r = http_call(opener, "POST", self.base + "/kbs/v0/auth", req, hdrs)
        self.assertEqual(r.status, 200, r.describe())
        challenge = json.loads(r.body)
        nonce = challenge.get("nonce")
        self.assertIsInstance(nonce, str, r.describe())
        self.assertEqual(len(base64.b64decode(nonce, validate=True)), 32,
                         r.describe())
        names = [c.name for c in jar]
        self.assertIn("kbs-session-id", names,
                      "no kbs-session-id cookie stored\n" + r.describe())

        priv, tee_pubkey = new_tee_key(kind)
        runtime = {"additional-evidence": "", "nonce": nonce,
                   "tee-pubkey": tee_pubkey}
        digest = hashlib.sha384(canonical_json(runtime).encode()).digest()
        evidence = {"svn": "1",
                    "report_data": base64.b64encode(digest).decode()}
        att = json.dumps({
            "runtime-data": {"nonce": nonce, "tee-pubkey": tee_pubkey},
            "tee-evidence": {"primary_evidence": evidence,
                             "additional_evidence": ""},
        }).encode()
        r = http_call(opener, "POST", self.base + "/kbs/v0/attest", att, hdrs)
        self.assertEqual(r.status, 200, r.describe())
        token = json.loads(r.body).get("token")
        self.assertIsInstance(token, str, r.describe())
        self.assertEqual(token.count("."), 2, r.describe())
        return opener, token, priv, tee_pubkey

    def _check_and_decrypt(self, r, priv, tee_pubkey, expected):
        """Checks the JWE response structure and decrypts it with jwcrypto."""
        self.assertEqual(r.status, 200, r.describe())
        ctype = r.headers.get("Content-Type", "")
        self.assertTrue(ctype.startswith("application/json"), r.describe())
        body = json.loads(r.body)
        self.assertEqual(
            sorted(body), sorted(["protected", "encrypted_key", "iv",
                                  "ciphertext", "tag"]),
            "flattened JWE must have exactly these members (no aad, no "
            "header)\n" + r.describe())
        raw = {k: b64url_decode_strict(v) for k, v in body.items()}
        self.assertEqual(len(raw["iv"]), 12, r.describe())
        self.assertEqual(len(raw["tag"]), 16, r.describe())

        # Protected header bytes: alg, enc (, epk) in that order; compact
        # serde_json-style re-serialization must reproduce the bytes.
        hdr_bytes = raw["protected"]
        hdr_text = hdr_bytes.decode("utf-8")
        pairs = json.loads(hdr_text, object_pairs_hook=lambda p: p)
        order = [k for k, _ in pairs]
        hdr = json.loads(hdr_text)
        reser = json.dumps(hdr, separators=(",", ":")).encode()
        self.assertEqual(reser, hdr_bytes,
                         "protected header is not compact canonical JSON: %r"
                         % hdr_bytes)
        self.assertEqual(hdr["enc"], "A256GCM", hdr_text)
        if tee_pubkey["kty"] == "EC":
            self.assertEqual(order, ["alg", "enc", "epk"], hdr_text)
            self.assertEqual(hdr["alg"], "ECDH-ES+A256KW", hdr_text)
            epk = hdr["epk"]
            self.assertEqual(list(epk), ["crv", "kty", "x", "y"], hdr_text)
            self.assertEqual(epk["kty"], "EC", hdr_text)
            self.assertEqual(epk["crv"], tee_pubkey["crv"], hdr_text)
            coord = 32 if tee_pubkey["crv"] == "P-256" else 66
            self.assertEqual(len(b64url_decode_strict(epk["x"])), coord)
            self.assertEqual(len(b64url_decode_strict(epk["y"])), coord)
            self.assertEqual(len(raw["encrypted_key"]), 40, r.describe())
        else:
            self.assertEqual(order, ["alg", "enc"], hdr_text)
            self.assertEqual(hdr["alg"], "RSA-OAEP-256", hdr_text)
            self.assertEqual(len(raw["encrypted_key"]), 256, r.describe())

        # Independent decryption; allow only the algorithms we expect.
        token = jc_jwe.JWE()
        token.allowed_algs = [tee_pubkey["alg"], "A256GCM"]
        token.deserialize(r.body.decode("ascii"), key=priv)
        self.assertEqual(token.payload, expected)
        # The AAD jwcrypto used is ASCII(protected); a header altered in a
        # way that keeps it valid JSON must break the tag.
        tampered = dict(body)
        tampered["protected"] = b64url_nopad(
            hdr_bytes.replace(b'"enc":"A256GCM"', b'"enc":"A256GCM","x":1'))
        bad = jc_jwe.JWE()
        bad.allowed_algs = [tee_pubkey["alg"], "A256GCM"]
        with self.assertRaises(jc_jwe.InvalidJWEData):
            bad.deserialize(json.dumps(tampered), key=priv)

    def _resource_with_cookie(self, kind, path):
        opener, _token, priv, tee_pubkey = self._rcar(kind)
        r = http_call(opener, "GET", self.base + "/kbs/v0/resource/" + path)
        self._check_and_decrypt(r, priv, tee_pubkey, self.RESOURCES[path])

    # ------------------------------------------------------------------ tests
    def test_admin_token_from_jwcrypto(self):
        """The server accepts jwcrypto EdDSA admin tokens, rejects others."""
        r = self._admin_post("/kbs/v0/resource/interop/admin/check", b"v1")
        self.assertEqual(r.status, 200, r.describe())
        other = jc_jwk.JWK.generate(kty="OKP", crv="Ed25519")
        r = self._admin_post("/kbs/v0/resource/interop/admin/check", b"v2",
                             key=other)
        self.assertEqual(r.status, 401, r.describe())
        r = http_call(self.plain, "POST",
                      self.base + "/kbs/v0/resource/interop/admin/check",
                      b"v3", {"Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 401, r.describe())

    def test_resource_ec_p256(self):
        self._resource_with_cookie("P-256", "interop/ec-p256/secret")

    def test_resource_ec_p521(self):
        self._resource_with_cookie("P-521", "interop/ec-p521/secret")

    def test_resource_rsa_oaep_256(self):
        self._resource_with_cookie("RSA", "interop/rsa-oaep-256/secret")

    def test_resource_bearer_token(self):
        """CDH path: no cookie, Authorization: Bearer <token> only."""
        path = "interop/bearer/secret"
        for kind in ("P-256", "P-521", "RSA"):
            with self.subTest(key=kind):
                _opener, token, priv, tee_pubkey = self._rcar(kind)
                r = http_call(self.plain, "GET",
                              self.base + "/kbs/v0/resource/" + path,
                              None, {"Authorization": "Bearer " + token})
                self._check_and_decrypt(r, priv, tee_pubkey,
                                        self.RESOURCES[path])
        # No cookie and no token: refused.
        r = http_call(self.plain, "GET", self.base + "/kbs/v0/resource/" + path)
        self.assertEqual(r.status, 401, r.describe())

    def test_attestation_token_verifies(self):
        _opener, token, _priv, tee_pubkey = self._rcar("P-256")

        r = http_call(self.plain, "GET", self.base + "/.well-known/jwks.json")
        self.assertEqual(r.status, 200, r.describe())
        jwks_json = json.loads(r.body)
        self.assertEqual(len(jwks_json.get("keys", [])), 1, r.describe())
        jwks_key = jwks_json["keys"][0]
        self.assertEqual(jwks_key.get("alg"), "ES256", r.describe())
        self.assertEqual(jwks_key.get("kty"), "EC", r.describe())
        self.assertEqual(jwks_key.get("crv"), "P-256", r.describe())
        self.assertTrue(jwks_key.get("kid"), r.describe())
        keyset = jc_jwk.JWKSet.from_json(r.body.decode())

        header = json.loads(b64url_decode_strict(token.split(".")[0]))
        self.assertEqual(header.get("alg"), "ES256", header)
        self.assertEqual(header.get("kid"), jwks_key["kid"], header)

        verified = jc_jwt.JWT(
            jwt=token, key=keyset, algs=["ES256"],
            check_claims={"iss": "kbs", "eat_profile": EAT_PROFILE,
                          "exp": None, "iat": None})
        claims = json.loads(verified.claims)
        self.assertEqual(claims["eat_profile"], EAT_PROFILE)
        self.assertEqual(claims["iss"], "kbs")
        self.assertEqual(claims["exp"] - claims["iat"], 300, claims)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 120, claims)
        annotated = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
        self.assertEqual(annotated["runtime_data_claims"]["tee-pubkey"],
                         tee_pubkey, claims)

        # One payload character changed: jwcrypto must refuse it ...
        h, p, s = token.split(".")
        i = len(p) // 2
        p2 = p[:i] + ("B" if p[i] != "B" else "C") + p[i + 1:]
        tampered = ".".join((h, p2, s))
        self.assertNotEqual(tampered, token)
        with self.assertRaises(jc_jws.InvalidJWSSignature):
            jc_jwt.JWT(jwt=tampered, key=keyset, algs=["ES256"])
        # ... and so must the KBS on the Bearer path.
        r = http_call(self.plain, "GET",
                      self.base + "/kbs/v0/resource/interop/bearer/secret",
                      None, {"Authorization": "Bearer " + tampered})
        self.assertEqual(r.status, 401, r.describe())


if __name__ == "__main__":
    unittest.main()
