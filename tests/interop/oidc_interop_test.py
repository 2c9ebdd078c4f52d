#!/usr/bin/python3
"""Independent OIDC / JWKS interoperability test for the KBS.

This test checks the KBS's attestation tokens the way an OIDC relying party
(Vault's JWT auth, GCP workload identity federation, ...) sees them, using an
independent JOSE implementation, python3-jwcrypto (Debian package), and only
the Python standard library besides that. It imports no project code, only
the shared harness tests/interop/kbs_interop.py. The server runs with a
`[token]` table (lifetime 4 s, issuer = the URL the test reaches it at,
audience ["vault", "gcp-wif"], clock_skew 1 s, no automatic key rotation).
It shows that:

  * GET /.well-known/openid-configuration (no auth) names the configured
    issuer, a jwks_uri under it, ES256 only, and the token's claims; a fresh
    attestation token verifies with jwcrypto using nothing but that document
    and the JWKS it points at, for either audience, and fails for another;
  * the token carries iss, aud, sub ("<tee>:<measurement>"), iat, exp
    (exp - iat == lifetime), jti, tee, measurement, image_digests,
    policy_version (the id the KBS returned for the active resource policy)
    and receipt_index (strictly increasing across attestations), and its
    header kid is the key the admin listing calls "current";
  * the JWKS pre-publishes the "next" signing key, never exposes private key
    members, and has distinct kids;
  * POST /kbs/v0/admin/token-keys/rotate promotes the pre-published key:
    tokens signed before and after the rotation both verify (jwcrypto and the
    KBS's own Bearer path) while the retired key is still published, and once
    the old token's exp + clock_skew has passed the retired key is gone from
    the JWKS and the old token is refused (jwcrypto: expired / unknown kid;
    KBS: 401);
  * the token-key admin endpoints refuse requests without an admin token or
    with one from an untrusted key (401).

Run it with Debian's interpreter (jwcrypto lives in
/usr/lib/python3/dist-packages):

  KBS_BIN=/path/to/kbs KBSCTL_BIN=/path/to/kbsctl \\
      /usr/bin/python3 tests/interop/oidc_interop_test.py -v
"""

import calendar
import json
import os
import re
import time
import unittest

from kbs_interop import (EAT_PROFILE, HOST, KbsServer, b64url_decode_strict,
                         free_loopback_port, http_call, jc_jwe, jc_jwk, jc_jws,
                         jc_jwt)

# The [token] table the server runs with.
TOKEN_LIFETIME = 4        # seconds, exp - iat
CLOCK_SKEW = 1            # seconds
AUDIENCE = ["vault", "gcp-wif"]

EXPIRY_MARGIN = 1.5       # seconds past exp + clock_skew before "gone" checks
POLL_INTERVAL = 0.25      # seconds between JWKS polls
POLL_BUDGET = 10.0        # seconds, longest the JWKS is polled after rotation

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
TOKEN_KEYS_PATH = "/kbs/v0/admin/token-keys"
ROTATE_PATH = "/kbs/v0/admin/token-keys/rotate"
RESOURCE_PATH = "interop/oidc/secret"

REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "tee",
                   "measurement", "ear_status", "image_digests",
                   "policy_version", "receipt_index"]
KEY_STATES = ("current", "next", "retired")
# JWK members that carry private key material (RFC 7518 §6.2.2, §6.3.2, §6.4).
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"([Zz]|[+-]\d{2}:\d{2})\Z")


def parse_rfc3339(text):
    """RFC 3339 date-time -> POSIX seconds (float); AssertionError if not."""
    if not isinstance(text, str):
        raise AssertionError("expected an RFC 3339 string, got %r" % (text,))
    m = _RFC3339.match(text)
    if m is None:
        raise AssertionError("not an RFC 3339 date-time: %r" % (text,))
    year, month, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    secs = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
    if m.group(7):
        secs += float(m.group(7))
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        secs -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return float(secs)


def token_header(token):
    return json.loads(b64url_decode_strict(token.split(".")[0]))


def token_claims_unverified(token):
    return json.loads(b64url_decode_strict(token.split(".")[1]))


class OidcInteropTest(unittest.TestCase):
    """One KBS for the whole class; every test runs its own RCAR sessions."""

    # ------------------------------------------------------------------ setup
    @classmethod
    def setUpClass(cls):
        cls.kbs = KbsServer("kbs-oidc-interop-")
        cls.addClassCleanup(cls.kbs.stop)

        # The issuer must be the URL we reach the server at, so the HTTP port
        # is chosen here rather than by the server.
        port = free_loopback_port()
        cls.issuer = "http://%s:%d" % (HOST, port)
        config_path = os.path.join(cls.kbs.tmp, "kbs.toml")
        with open(config_path, "w") as f:
            f.write("[token]\n"
                    "lifetime = %d\n"
                    "issuer = %s\n"
                    "audience = [%s]\n"
                    "clock_skew = %d\n"
                    "key_rotation_days = 0\n"
                    % (TOKEN_LIFETIME, json.dumps(cls.issuer),
                       ", ".join(json.dumps(a) for a in AUDIENCE),
                       CLOCK_SKEW))

        # Start the server on that port (the harness checks that the ready
        # file reports it), so cls.base is the issuer.
        cls.kbs.start(extra_args=["--config", config_path], http_port=port)
        cls.base = cls.kbs.base
        cls.plain = cls.kbs.plain

        # A resource and an allow-all resource policy, through
        # jwcrypto-minted admin tokens; the policy id the KBS returns is the
        # policy_version the tokens must carry.
        cls.resource_value = b"oidc-" + os.urandom(16).hex().encode()
        cls.kbs.store_resource(RESOURCE_PATH, cls.resource_value)
        r = cls.kbs.set_resource_policy(b'{"preset":"allow-all"}')
        try:
            cls.policy_id = json.loads(r.body)["id"]
        except (ValueError, KeyError, TypeError):
            cls.policy_id = None
        if not isinstance(cls.policy_id, str) or not cls.policy_id:
            raise AssertionError("resource policy response has no string "
                                 "`id`\n%s" % r.describe())

        # Snapshots right after start, before any test rotates a key.
        cls.initial_jwks = http_call(cls.plain, "GET", cls.base + JWKS_PATH)
        cls.initial_listing = cls.kbs.admin_get(TOKEN_KEYS_PATH)

    # ---------------------------------------------------------------- helpers
    def _why(self, r=None, *extra):
        """Failure message: the exchange, extra context, the server log tail."""
        parts = []
        if r is not None:
            parts.append(r.describe())
        parts.extend(str(e) for e in extra)
        parts.append("--- kbs log tail ---\n" + self.kbs.log_tail())
        return "\n".join(parts)

    def _json(self, r, status=200):
        self.assertEqual(r.status, status, self._why(r))
        ctype = r.headers.get("Content-Type", "") if r.headers else ""
        self.assertTrue(ctype.startswith("application/json"),
                        "Content-Type %r is not application/json\n%s"
                        % (ctype, self._why(r)))
        try:
            return json.loads(r.body)
        except ValueError as e:
            self.fail("response is not JSON (%s)\n%s" % (e, self._why(r)))

    def _rcar(self):
        """RCAR handshake with the sample TEE (EC P-256 TEE key).

        Returns (cookie opener, token, private key, tee-pubkey dict)."""
        return self.kbs.rcar(self, "P-256", why=self._why)

    def _discover(self):
        """Discovery document, then its jwks_uri.

        Returns (document, JWKS dict, jwcrypto JWKSet, JWKS HttpResult)."""
        r = http_call(self.plain, "GET", self.base + DISCOVERY_PATH)
        doc = self._json(r)
        self.assertIsInstance(doc, dict, self._why(r))
        jwks_uri = doc.get("jwks_uri")
        self.assertIsInstance(jwks_uri, str, self._why(r))
        jr = http_call(self.plain, "GET", jwks_uri)
        jwks = self._json(jr)
        self._check_jwks_shape(jwks, jr)
        keyset = jc_jwk.JWKSet.from_json(jr.body.decode("utf-8"))
        return doc, jwks, keyset, jr

    def _check_jwks_shape(self, jwks, r):
        """Public EC P-256 ES256 signing keys only, distinct kids."""
        self.assertIsInstance(jwks, dict, self._why(r))
        keys = jwks.get("keys")
        self.assertIsInstance(keys, list, self._why(r))
        kids = []
        for key in keys:
            self.assertIsInstance(key, dict, self._why(r))
            leaked = [m for m in PRIVATE_MEMBERS if m in key]
            self.assertEqual(leaked, [], "JWKS key %r exposes private "
                             "members %r\n%s" % (key.get("kid"), leaked,
                                                 self._why(r)))
            self.assertEqual(key.get("kty"), "EC", self._why(r))
            self.assertEqual(key.get("crv"), "P-256", self._why(r))
            self.assertEqual(key.get("alg"), "ES256", self._why(r))
            self.assertEqual(key.get("use"), "sig", self._why(r))
            self.assertEqual(len(b64url_decode_strict(key.get("x"))), 32,
                             self._why(r))
            self.assertEqual(len(b64url_decode_strict(key.get("y"))), 32,
                             self._why(r))
            kid = key.get("kid")
            self.assertIsInstance(kid, str, self._why(r))
            self.assertTrue(kid, self._why(r))
            kids.append(kid)
        self.assertEqual(len(kids), len(set(kids)),
                         "duplicate kids in the JWKS: %r\n%s"
                         % (kids, self._why(r)))
        return kids

    def _listing(self, r=None):
        """GET token-keys (or check `r`); returns the checked key list."""
        if r is None:
            r = self.kbs.admin_get(TOKEN_KEYS_PATH)
        body = self._json(r)
        self.assertIsInstance(body, dict, self._why(r))
        return self._check_listing(body.get("keys"), r)

    def _check_listing(self, keys, r):
        self.assertIsInstance(keys, list, self._why(r))
        for key in keys:
            self.assertIsInstance(key, dict, self._why(r))
            self.assertIsInstance(key.get("kid"), str, self._why(r))
            self.assertIn(key.get("state"), KEY_STATES, self._why(r))
            self.assertNotIn("d", key, "listing exposes a private key\n"
                             + self._why(r))
            for member in ("created", "activated", "retired",
                           "published_until"):
                if member in key or member == "created":
                    try:
                        parse_rfc3339(key.get(member))
                    except AssertionError as e:
                        self.fail("key %r member %s: %s\n%s"
                                  % (key.get("kid"), member, e, self._why(r)))
            if key["state"] == "retired":
                for member in ("retired", "published_until"):
                    self.assertIn(member, key, "retired key %r lacks %s\n%s"
                                  % (key["kid"], member, self._why(r)))
        states = [k["state"] for k in keys]
        self.assertEqual(states.count("current"), 1,
                         "exactly one current key expected\n" + self._why(r))
        self.assertEqual(states.count("next"), 1,
                         "exactly one pre-published next key expected\n"
                         + self._why(r))
        kids = [k["kid"] for k in keys]
        self.assertEqual(len(kids), len(set(kids)),
                         "duplicate kids in the listing\n" + self._why(r))
        return keys

    @staticmethod
    def _kid_in_state(keys, state):
        return [k["kid"] for k in keys if k["state"] == state][0]

    def _assert_listing_matches_jwks(self, keys, jwks_kids, t_before, t_after,
                                     r):
        """current/next published; retired published until published_until.

        t_before/t_after bracket both fetches; 1 s either side of
        published_until is left undecided (RFC 3339 second rounding)."""
        listed = {k["kid"]: k for k in keys}
        for kid in jwks_kids:
            self.assertIn(kid, listed, "JWKS kid %r is not in the admin "
                          "listing %r\n%s" % (kid, keys, self._why(r)))
        for kid, key in listed.items():
            if key["state"] in ("current", "next"):
                self.assertIn(kid, jwks_kids, "%s key %r missing from the "
                              "JWKS %r\n%s" % (key["state"], kid, jwks_kids,
                                               self._why(r)))
                continue
            until = parse_rfc3339(key["published_until"])
            if until > t_after + 1.0:
                self.assertIn(kid, jwks_kids, "retired key %r (published "
                              "until %s) already gone from the JWKS\n%s"
                              % (kid, key["published_until"], self._why(r)))
            elif until < t_before - 1.0:
                self.assertNotIn(kid, jwks_kids, "retired key %r (published "
                                 "until %s) still in the JWKS\n%s"
                                 % (kid, key["published_until"],
                                    self._why(r)))

    def _verify(self, token, keyset, algs, aud, extra=None):
        check = {"iss": self.issuer, "aud": aud, "exp": None, "iat": None}
        check.update(extra or {})
        return jc_jwt.JWT(jwt=token, key=keyset, algs=algs, check_claims=check)

    def _bearer_get(self, token):
        return http_call(self.plain, "GET",
                         self.base + "/kbs/v0/resource/" + RESOURCE_PATH,
                         None, {"Authorization": "Bearer " + token})

    def _decrypt(self, r, priv):
        self.assertEqual(r.status, 200, self._why(r))
        jwe = jc_jwe.JWE()
        jwe.allowed_algs = ["ECDH-ES+A256KW", "A256GCM"]
        jwe.deserialize(r.body.decode("ascii"), key=priv)
        self.assertEqual(jwe.payload, self.resource_value, self._why(r))

    def _rotate(self):
        r = self.kbs.admin_post(ROTATE_PATH, b"")
        body = self._json(r)
        self.assertIsInstance(body, dict, self._why(r))
        self.assertIsInstance(body.get("current"), str, self._why(r))
        self.assertIsInstance(body.get("retired"), str, self._why(r))
        keys = self._check_listing(body.get("keys"), r)
        return body, keys, r

    # ------------------------------------------------------------------ tests
    def test_admin_token_keys_require_admin_token(self):
        """Listing and rotation: 401 without a token or with a foreign one."""
        before = self._listing()
        current = self._kid_in_state(before, "current")
        other = jc_jwk.JWK.generate(kty="OKP", crv="Ed25519")
        _opener, att_token, _priv, _pub = self._rcar()
        for method, path in (("GET", TOKEN_KEYS_PATH), ("POST", ROTATE_PATH)):
            body = b"" if method == "POST" else None
            for label, auth in (
                    ("no token", None),
                    ("untrusted Ed25519 key", self.kbs.admin_token(other)),
                    ("attestation token", att_token),
                    ("garbage", "not-a-jwt")):
                with self.subTest(endpoint=path, auth=label):
                    hdrs = {} if auth is None else \
                        {"Authorization": "Bearer " + auth}
                    r = http_call(self.plain, method, self.base + path, body,
                                  hdrs)
                    self.assertEqual(r.status, 401, self._why(r))
        # None of the refused rotations took effect.
        after = self._listing()
        self.assertEqual(self._kid_in_state(after, "current"), current,
                         "a refused rotation changed the current key: "
                         "%r -> %r" % (before, after))

    def test_discovery_document(self):
        r = http_call(self.plain, "GET", self.base + DISCOVERY_PATH)
        doc = self._json(r)
        self.assertIsInstance(doc, dict, self._why(r))
        self.assertEqual(doc.get("issuer"), self.issuer, self._why(r))
        self.assertEqual(doc.get("jwks_uri"), self.issuer + JWKS_PATH,
                         self._why(r))
        self.assertEqual(doc.get("id_token_signing_alg_values_supported"),
                         ["ES256"], self._why(r))
        for member, value in (("response_types_supported", "id_token"),
                              ("subject_types_supported", "public")):
            self.assertIsInstance(doc.get(member), list, self._why(r))
            self.assertIn(value, doc[member], self._why(r))
        claims = doc.get("claims_supported")
        self.assertIsInstance(claims, list, self._why(r))
        missing = [c for c in REQUIRED_CLAIMS if c not in claims]
        self.assertEqual(missing, [], "claims_supported lacks %r\n%s"
                         % (missing, self._why(r)))
        # The jwks_uri it names answers without auth.
        jr = http_call(self.plain, "GET", doc["jwks_uri"])
        self._check_jwks_shape(self._json(jr), jr)

    def test_token_verifies_from_discovery_only(self):
        """A relying party needs only the discovery document and the JWKS."""
        _opener, token, _priv, tee_pubkey = self._rcar()
        doc, jwks, keyset, jr = self._discover()
        issuer = doc.get("issuer")
        algs = doc.get("id_token_signing_alg_values_supported")
        self.assertEqual(issuer, self.issuer, doc)
        self.assertEqual(algs, ["ES256"], doc)

        for aud in AUDIENCE:
            with self.subTest(aud=aud):
                verified = jc_jwt.JWT(
                    jwt=token, key=keyset, algs=algs,
                    check_claims={"iss": issuer, "aud": aud,
                                  "exp": None, "iat": None})
                self.assertEqual(json.loads(verified.claims)["iss"], issuer)
        with self.assertRaises(jc_jwt.JWTInvalidClaimValue):
            jc_jwt.JWT(jwt=token, key=keyset, algs=algs,
                       check_claims={"iss": issuer, "aud": "someone-else",
                                     "exp": None, "iat": None})
        with self.assertRaises(jc_jwt.JWTInvalidClaimValue):
            jc_jwt.JWT(jwt=token, key=keyset, algs=algs,
                       check_claims={"iss": issuer + "/other", "aud": "vault",
                                     "exp": None, "iat": None})

        verified = jc_jwt.JWT(jwt=token, key=keyset, algs=algs,
                              check_claims={"iss": issuer, "aud": "vault",
                                            "exp": None, "iat": None})
        claims = json.loads(verified.claims)
        why = "claims: %r\n%s" % (claims, self._why(jr))
        self.assertEqual(claims.get("aud"), AUDIENCE, why)
        self.assertIsInstance(claims.get("iat"), int, why)
        self.assertIsInstance(claims.get("exp"), int, why)
        self.assertEqual(claims["exp"] - claims["iat"], TOKEN_LIFETIME, why)
        self.assertLessEqual(abs(claims["iat"] - time.time()), 60, why)
        self.assertIsInstance(claims.get("jti"), str, why)
        self.assertTrue(claims["jti"], why)
        self.assertEqual(claims.get("tee"), "sample", why)
        # The sample TEE proves nothing: never "affirming".
        self.assertEqual(claims.get("ear_status"), "contraindicated", why)
        self.assertEqual(
            claims["ear_status"],
            claims["submods"]["cpu0"]["ear.status"], why)
        measurement = claims.get("measurement")
        self.assertIsInstance(measurement, str, why)
        self.assertRegex(measurement, r"\A[0-9a-fA-F]*\Z", why)
        self.assertIsInstance(claims.get("sub"), str, why)
        self.assertTrue(claims["sub"].startswith("sample:"), why)
        self.assertEqual(claims["sub"], "sample:" + measurement, why)
        self.assertIsInstance(claims.get("image_digests"), list, why)
        for digest in claims["image_digests"]:
            self.assertIsInstance(digest, str, why)
        self.assertEqual(claims.get("policy_version"), self.policy_id, why)
        index = claims.get("receipt_index")
        self.assertIsInstance(index, int, why)
        self.assertNotIsInstance(index, bool, why)
        self.assertGreaterEqual(index, 0, why)
        # The EAR members are still there.
        self.assertEqual(claims.get("eat_profile"), EAT_PROFILE, why)
        annotated = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"]
        self.assertEqual(annotated["runtime_data_claims"]["tee-pubkey"],
                         tee_pubkey, why)

        # Signed by the key the listing calls current, which the JWKS has.
        header = token_header(token)
        self.assertEqual(header.get("alg"), "ES256", header)
        keys = self._listing()
        current = self._kid_in_state(keys, "current")
        self.assertEqual(header.get("kid"), current,
                         "token kid %r is not the current key; listing %r"
                         % (header.get("kid"), keys))
        self.assertIn(current, [k["kid"] for k in jwks["keys"]], why)

    def test_jwks_prepublishes_next_key(self):
        """Right after start: current and next, both in the JWKS."""
        r = self.initial_jwks
        jwks = self._json(r)
        kids = self._check_jwks_shape(jwks, r)
        self.assertGreaterEqual(len(kids), 2, "JWKS right after start must "
                                "hold the current and the next key\n"
                                + self._why(r))
        keys = self._listing(self.initial_listing)
        self.assertEqual(sorted(k["state"] for k in keys),
                         ["current", "next"],
                         "fresh data dir: expected exactly current + next\n"
                         + self._why(self.initial_listing))
        self.assertEqual(sorted(kids), sorted(k["kid"] for k in keys),
                         "JWKS and listing disagree\n%s\n%s"
                         % (self._why(r), self.initial_listing.describe()))

    def test_jwks_public_only_distinct_kids(self):
        """No private members, distinct kids: at start and with a retired key."""
        self._check_jwks_shape(self._json(self.initial_jwks),
                               self.initial_jwks)
        before = self._listing()
        old_current = self._kid_in_state(before, "current")
        t_before = time.time()
        body, keys, rr = self._rotate()
        self.assertEqual(body["retired"], old_current, self._why(rr))
        r = http_call(self.plain, "GET", self.base + JWKS_PATH)
        kids = self._check_jwks_shape(self._json(r), r)
        t_after = time.time()
        self.assertGreaterEqual(len(kids), 3, "current, next and the just "
                                "retired key expected\n" + self._why(r))
        self.assertIn(old_current, kids, "retired key dropped at once\n"
                      + self._why(r))
        self._assert_listing_matches_jwks(keys, kids, t_before, t_after, r)
        for key in keys:
            leaked = [m for m in PRIVATE_MEMBERS if m in key]
            self.assertEqual(leaked, [], self._why(rr))

    def test_receipt_index_increases(self):
        _o, token1, _p, _k = self._rcar()
        _o, token2, _p, _k = self._rcar()
        c1 = token_claims_unverified(token1)
        c2 = token_claims_unverified(token2)
        why = "first: %r\nsecond: %r\n%s" % (c1, c2, self._why())
        for c in (c1, c2):
            self.assertIsInstance(c.get("receipt_index"), int, why)
            self.assertNotIsInstance(c["receipt_index"], bool, why)
            self.assertGreaterEqual(c["receipt_index"], 0, why)
        self.assertGreater(c2["receipt_index"], c1["receipt_index"], why)
        self.assertNotEqual(c1.get("jti"), c2.get("jti"), why)
        # Same active policy for both.
        self.assertEqual(c1.get("policy_version"), self.policy_id, why)
        self.assertEqual(c2.get("policy_version"), self.policy_id, why)

    def test_rotation_overlap_and_expiry(self):
        # Token A under the current key.
        _oa, token_a, priv_a, _ka = self._rcar()
        claims_a = token_claims_unverified(token_a)
        kid_a = token_header(token_a).get("kid")
        exp_a = claims_a["exp"]
        self.assertIsInstance(exp_a, int, claims_a)
        listing = self._listing()
        self.assertEqual(self._kid_in_state(listing, "current"), kid_a,
                         "token A kid %r is not current: %r" % (kid_a, listing))
        next_kid = self._kid_in_state(listing, "next")
        _doc, jwks_before, _ks, jr = self._discover()
        kids_before = [k["kid"] for k in jwks_before["keys"]]
        self.assertIn(kid_a, kids_before, self._why(jr))
        self.assertIn(next_kid, kids_before, self._why(jr))

        # Rotate: the pre-published key becomes current, A's key retires.
        t_rot_start = time.time()
        body, keys, rr = self._rotate()
        t_rot_end = time.time()
        new_kid = body["current"]
        self.assertIn(new_kid, kids_before, "the new current key was not "
                      "pre-published in the JWKS %r\n%s"
                      % (kids_before, self._why(rr)))
        self.assertEqual(new_kid, next_kid, self._why(rr))
        self.assertEqual(body["retired"], kid_a, self._why(rr))
        by_kid = {k["kid"]: k for k in keys}
        self.assertEqual(by_kid.get(new_kid, {}).get("state"), "current",
                         self._why(rr))
        self.assertEqual(by_kid.get(kid_a, {}).get("state"), "retired",
                         self._why(rr))
        fresh_next = self._kid_in_state(keys, "next")
        self.assertNotIn(fresh_next, kids_before + [kid_a, new_kid],
                         "rotation did not generate a fresh next key\n"
                         + self._why(rr))
        # published_until = retired_at + lifetime + clock_skew (1 s slack
        # for second rounding).
        retired_at = parse_rfc3339(by_kid[kid_a]["retired"])
        until_a = parse_rfc3339(by_kid[kid_a]["published_until"])
        self.assertTrue(int(t_rot_start) - 1.0 <= retired_at
                        <= t_rot_end + 1.0,
                        "retired %s outside the rotate call [%f, %f]\n%s"
                        % (by_kid[kid_a]["retired"], t_rot_start, t_rot_end,
                           self._why(rr)))
        self.assertAlmostEqual(until_a - retired_at,
                               TOKEN_LIFETIME + CLOCK_SKEW, delta=1.0,
                               msg=self._why(rr))
        self.assertGreaterEqual(until_a, exp_a + CLOCK_SKEW - 1.0,
                                "A's key unpublished before token A can "
                                "expire\n" + self._why(rr))

        # Token B under the new key; both verify against the JWKS now.
        _ob, token_b, priv_b, _kb = self._rcar()
        kid_b = token_header(token_b).get("kid")
        self.assertEqual(kid_b, new_kid, "token B not signed with the new "
                         "current key")
        doc, jwks_mid, keyset_mid, jr = self._discover()
        algs = doc["id_token_signing_alg_values_supported"]
        kids_mid = [k["kid"] for k in jwks_mid["keys"]]
        self.assertIn(kid_a, kids_mid, "retired key A dropped from the JWKS "
                      "before token A expired\n" + self._why(jr))
        self.assertIn(kid_b, kids_mid, self._why(jr))
        self.assertIn(fresh_next, kids_mid, self._why(jr))
        for label, tok in (("A", token_a), ("B", token_b)):
            with self.subTest(token=label):
                verified = self._verify(tok, keyset_mid, algs, "vault")
                self.assertEqual(json.loads(verified.claims)["iss"],
                                 self.issuer)

        # The KBS itself still honours A (and B) on the Bearer path.
        for label, tok, priv in (("A", token_a, priv_a),
                                 ("B", token_b, priv_b)):
            with self.subTest(bearer=label):
                r = self._bearer_get(tok)
                self.assertEqual(
                    r.status, 200,
                    self._why(r, "token %s exp=%d now=%.3f" %
                              (label, token_claims_unverified(tok)["exp"],
                               time.time())))
                self._decrypt(r, priv)

        # Poll the JWKS until A's key goes; it must not go before token A
        # can have expired (exp + clock_skew), and must be gone after
        # max(exp + clock_skew, published_until) + margin.
        gone_by = max(exp_a + CLOCK_SKEW, until_a) + EXPIRY_MARGIN
        poll_end = min(gone_by, t_rot_end + POLL_BUDGET)
        seen_gone_at = None
        while True:
            r = http_call(self.plain, "GET", self.base + JWKS_PATH)
            t_after = time.time()
            kids = self._check_jwks_shape(self._json(r), r)
            if kid_a not in kids:
                seen_gone_at = t_after
                break
            if t_after >= poll_end:
                break
            time.sleep(POLL_INTERVAL)
        if seen_gone_at is not None:
            self.assertGreaterEqual(
                seen_gone_at, exp_a + CLOCK_SKEW - 1.0,
                "key A left the JWKS at %.3f, before token A's exp %d + "
                "clock_skew %d\n%s" % (seen_gone_at, exp_a, CLOCK_SKEW,
                                       self._why(r)))
        delay = gone_by - time.time()
        if delay > 0:
            time.sleep(delay)

        # Past exp + clock_skew and published_until: A's key is gone.
        t_before = time.time()
        doc, jwks_end, keyset_end, jr = self._discover()
        kids_end = [k["kid"] for k in jwks_end["keys"]]
        keys_end = self._listing()
        t_after = time.time()
        self.assertNotIn(kid_a, kids_end, "retired key A still in the JWKS "
                         "at %.3f (token A exp %d, published_until %s)\n%s"
                         % (t_before, exp_a,
                            by_kid[kid_a]["published_until"], self._why(jr)))
        self.assertIn(kid_b, kids_end, self._why(jr))
        for key in keys_end:
            if key["kid"] == kid_a:
                self.assertEqual(key["state"], "retired", keys_end)
                self.assertLess(parse_rfc3339(key["published_until"]),
                                t_before, keys_end)
        self._assert_listing_matches_jwks(keys_end, kids_end, t_before,
                                          t_after, jr)

        # jwcrypto: A's signature still checks against the key it was
        # published with, but the token is expired even allowing clock_skew;
        # against today's JWKS its kid is unknown. B's key still verifies.
        expired = jc_jwt.JWT(algs=algs, check_claims={"iss": self.issuer,
                                                      "exp": None})
        expired.leeway = CLOCK_SKEW
        with self.assertRaises(jc_jwt.JWTExpired):
            expired.deserialize(token_a, keyset_mid)
        with self.assertRaises(jc_jwt.JWTMissingKey):
            jc_jwt.JWT(jwt=token_a, key=keyset_end, algs=algs,
                       check_claims={"iss": self.issuer})
        jc_jwt.JWT(jwt=token_b, key=keyset_end, algs=algs,
                   check_claims={"iss": self.issuer, "aud": "gcp-wif"})
        # A tampered B fails too, so the line above is a real check.
        h, p, s = token_b.split(".")
        i = len(p) // 2
        tampered = ".".join((h, p[:i] + ("B" if p[i] != "B" else "C")
                             + p[i + 1:], s))
        with self.assertRaises(jc_jws.InvalidJWSSignature):
            jc_jwt.JWT(jwt=tampered, key=keyset_end, algs=algs)

        # The KBS refuses the expired token A.
        r = self._bearer_get(token_a)
        self.assertEqual(r.status, 401, self._why(
            r, "token A exp=%d now=%.3f" % (exp_a, time.time())))


if __name__ == "__main__":
    unittest.main()
