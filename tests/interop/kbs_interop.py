"""Shared harness for the KBS interoperability tests in tests/interop.

The interop tests (jose_interop_test.py, oidc_interop_test.py) check a running
`kbs` against an independent JOSE implementation, python3-jwcrypto (Debian
package). This module is what they share: base64url / JSON helpers, a bounded
HTTP client that never raises for a status, TEE key generation, and
`KbsServer`, which creates an admin key pair with `kbsctl admin keygen`,
starts `kbs` on loopback ports, waits for its ready file, mints jwcrypto
admin tokens (EdDSA JWT), performs the RCAR handshake with the `sample` TEE
and stops the server again.

It uses only the Python standard library and jwcrypto, and imports no project
code. A missing jwcrypto is not an import error here: `KbsServer()` raises
AssertionError instead, so that a test calling it from setUpClass FAILS
rather than being skipped (CI installs python3-jwcrypto).

Typical use:

    @classmethod
    def setUpClass(cls):
        cls.kbs = KbsServer("kbs-foo-interop-")
        cls.addClassCleanup(cls.kbs.stop)
        cls.kbs.start()
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
import urllib.error
import urllib.request

try:
    from jwcrypto import jwe as jc_jwe
    from jwcrypto import jwk as jc_jwk
    from jwcrypto import jws as jc_jws
    from jwcrypto import jwt as jc_jwt
    JWCRYPTO_IMPORT_ERROR = None
except ImportError as exc:  # must FAIL, not skip: CI installs it
    jc_jwe = jc_jwk = jc_jws = jc_jwt = None
    JWCRYPTO_IMPORT_ERROR = exc

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


def new_tee_key(kind="P-256"):
    """Returns (private jwcrypto JWK, tee-pubkey dict exactly as CoCo sends it).

    kind: "P-256" or "P-521" (EC, ECDH-ES+A256KW) or "RSA" (2048 bits,
    RSA-OAEP-256)."""
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


def free_loopback_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def require_jwcrypto():
    """AssertionError (a test failure, not a skip) if jwcrypto is missing."""
    if JWCRYPTO_IMPORT_ERROR is not None:
        raise AssertionError(
            "python3-jwcrypto is required but cannot be imported (%s). "
            "Install it (apt-get install python3-jwcrypto) and run this "
            "test with /usr/bin/python3." % (JWCRYPTO_IMPORT_ERROR,))


def binaries_from_env():
    """(kbs, kbsctl) paths from KBS_BIN / KBSCTL_BIN; AssertionError if unset
    or not executable files."""
    kbs_bin = os.environ.get("KBS_BIN")
    kbsctl_bin = os.environ.get("KBSCTL_BIN")
    missing = [n for n, v in (("KBS_BIN", kbs_bin),
                              ("KBSCTL_BIN", kbsctl_bin)) if not v]
    if missing:
        raise AssertionError(
            "environment variable(s) %s not set: point KBS_BIN at the "
            "built `kbs` binary and KBSCTL_BIN at `kbsctl`"
            % ", ".join(missing))
    for name, path in (("KBS_BIN", kbs_bin), ("KBSCTL_BIN", kbsctl_bin)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise AssertionError("%s=%s is not an executable file"
                                 % (name, path))
    return kbs_bin, kbsctl_bin


class KbsServer:
    """One `kbs` process with the sample TEE allowed, in a private tmp dir.

    The constructor checks jwcrypto and KBS_BIN / KBSCTL_BIN and creates the
    tmp dir (`tmp`); register `stop` as a (class) cleanup right after it, then
    call `start`. After `start`: `base` (http://127.0.0.1:PORT), `port`,
    `proc`, `admin_key` (jwcrypto Ed25519 JWK), `log_path`, and `plain`
    (an opener without a cookie jar)."""

    def __init__(self, tmp_prefix="kbs-interop-"):
        require_jwcrypto()
        self.kbs_bin, self.kbsctl_bin = binaries_from_env()
        self.proc = None
        self.log_file = None
        self.log_path = None
        self.admin_key = None
        self.admin_pub_path = None
        self.base = None
        self.port = None
        self.plain = urllib.request.build_opener()  # no cookie jar
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)

    # ------------------------------------------------------------ lifecycle
    def create_admin_key(self):
        """Admin key pair from `kbsctl admin keygen` (Ed25519)."""
        admin_dir = os.path.join(self.tmp, "admin")
        os.mkdir(admin_dir)
        kg = subprocess.run([self.kbsctl_bin, "admin", "keygen",
                             "--out-dir", admin_dir],
                            capture_output=True, timeout=30)
        if kg.returncode != 0:
            raise AssertionError("kbsctl admin keygen failed (rc=%d): %r %r"
                                 % (kg.returncode, kg.stdout, kg.stderr))
        with open(os.path.join(admin_dir, "admin.key"), "rb") as f:
            self.admin_key = jc_jwk.JWK.from_pem(f.read())
        if self.admin_key.get("kty") != "OKP" or \
                self.admin_key.get("crv") != "Ed25519":
            raise AssertionError("admin.key is not Ed25519: %r"
                                 % (self.admin_key.export_public(as_dict=True),))
        self.admin_pub_path = os.path.join(admin_dir, "admin.pub")

    def start(self, extra_args=(), http_port=None):
        """Starts kbs and waits until it is ready and accepts connections.

        extra_args: appended to the command line (e.g. ["--config", FILE]).
        http_port: a fixed HTTP port (e.g. from free_loopback_port()); the
        port in the ready file must then match it. Default: any free port."""
        if self.admin_key is None:
            self.create_admin_key()
        data_dir = os.path.join(self.tmp, "data")
        os.mkdir(data_dir)
        ready = os.path.join(self.tmp, "ready.json")
        self.log_path = os.path.join(self.tmp, "kbs.log")
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.kbs_bin, "--allow-sample-tee",
             "--data-dir", data_dir,
             "--http", "%s:%d" % (HOST, http_port or 0),
             "--grpc", HOST + ":0",
             "--admin-public-key", self.admin_pub_path,
             "--ready-file", ready] + list(extra_args),
            stdout=self.log_file, stderr=subprocess.STDOUT,
            # A pipe closed at once rather than DEVNULL: Python opens
            # /dev/null read-write for DEVNULL, and some sandboxes (Bazel's
            # linux-sandbox on CI) mount /dev/null read-only.
            stdin=subprocess.PIPE)
        self.proc.stdin.close()
        ports = None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
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
                                 % (STARTUP_TIMEOUT, self.proc.poll(),
                                    self.log_tail()))
        if http_port and ports["http"] != http_port:
            raise AssertionError("kbs reports HTTP port %r, asked for %d "
                                 "(ready file %r); log:\n%s"
                                 % (ports["http"], http_port, ports,
                                    self.log_tail()))
        self.port = ports["http"]
        self.base = "http://%s:%d" % (HOST, self.port)
        # The port must really accept connections.
        with socket.create_connection((HOST, self.port), timeout=HTTP_TIMEOUT):
            pass

    def log_tail(self):
        """The last 4000 bytes of the server's output, as text."""
        if self.log_path is None:
            return "<no log>"
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return "<no log>"

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; removes the tmp dir."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        if self.log_file is not None:
            self.log_file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---------------------------------------------------------------- admin
    def admin_token(self, key=None):
        """An EdDSA admin JWT (5 min) signed by `key` (default: admin_key)."""
        key = key or self.admin_key
        now = int(time.time())
        tok = jc_jwt.JWT(header={"alg": "EdDSA", "typ": "JWT"},
                         claims={"exp": now + 300, "iat": now},
                         algs=["EdDSA"])
        tok.make_signed_token(key)
        return tok.serialize()

    def admin_post(self, path, body, content_type="application/octet-stream",
                   key=None):
        return http_call(self.plain, "POST", self.base + path, body,
                         {"Authorization": "Bearer " + self.admin_token(key),
                          "Content-Type": content_type})

    def admin_get(self, path, key=None):
        return http_call(self.plain, "GET", self.base + path, None,
                         {"Authorization": "Bearer " + self.admin_token(key)})

    def store_resource(self, path, value):
        """Stores resource `path` (bytes `value`) through an admin token;
        AssertionError with the exchange and the log tail unless 200."""
        r = self.admin_post("/kbs/v0/resource/" + path, value)
        if r.status != 200:
            raise AssertionError("storing resource %s failed\n%s\nlog:\n%s"
                                 % (path, r.describe(), self.log_tail()))
        return r

    def set_resource_policy(self, policy=b'{"preset":"allow-all"}'):
        """Sets the resource policy (JSON bytes; default allow-all) through
        an admin token; AssertionError with the exchange and the log tail
        unless 200. Returns the HttpResult (its body holds the policy id)."""
        body = json.dumps({"policy": b64url_nopad(policy)}).encode()
        r = self.admin_post("/kbs/v0/resource-policy", body,
                            content_type="application/json")
        if r.status != 200:
            raise AssertionError("setting resource policy failed\n%s\nlog:\n%s"
                                 % (r.describe(), self.log_tail()))
        return r

    # ----------------------------------------------------------------- RCAR
    def rcar(self, test, kind="P-256", why=None):
        """RCAR handshake with the sample TEE and a fresh `kind` TEE key.

        Checks go through `test` (a unittest.TestCase); `why(HttpResult)`
        gives their failure messages (default: HttpResult.describe).
        Returns (cookie opener, token, private key, tee-pubkey dict)."""
        why = why or HttpResult.describe
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(jar))
        hdrs = {"Content-Type": "application/json"}

        req = json.dumps({"version": "0.4.0", "tee": "sample",
                          "extra-params": ""}).encode()
        r = http_call(opener, "POST", self.base + "/kbs/v0/auth", req, hdrs)
        test.assertEqual(r.status, 200, why(r))
        challenge = json.loads(r.body)
        nonce = challenge.get("nonce")
        test.assertIsInstance(nonce, str, why(r))
        test.assertEqual(len(base64.b64decode(nonce, validate=True)), 32,
                         why(r))
        names = [c.name for c in jar]
        test.assertIn("kbs-session-id", names,
                      "no kbs-session-id cookie stored\n" + why(r))

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
        test.assertEqual(r.status, 200, why(r))
        token = json.loads(r.body).get("token")
        test.assertIsInstance(token, str, why(r))
        test.assertEqual(token.count("."), 2, why(r))
        return opener, token, priv, tee_pubkey
