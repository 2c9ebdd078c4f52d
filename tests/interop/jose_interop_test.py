#!/usr/bin/python3
"""Independent JOSE interoperability test for the KBS.

This test checks the KBS against an independent JOSE implementation,
python3-jwcrypto (Debian package), and uses only the Python standard library
besides that. It imports no project code, only the shared harness
tests/interop/kbs_interop.py. It shows that:

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

import json
import os
import time
import unittest

from kbs_interop import (EAT_PROFILE, KbsServer, b64url_decode_strict,
                         b64url_nopad, http_call, jc_jwe, jc_jwk, jc_jws,
                         jc_jwt)


class JoseInteropTest(unittest.TestCase):
    """One KBS for the whole class; every test runs its own RCAR session."""

    # resource path -> value (set in setUpClass)
    RESOURCES = {}

    # ------------------------------------------------------------------ setup
    @classmethod
    def setUpClass(cls):
        cls.kbs = KbsServer("kbs-jose-interop-")
        cls.addClassCleanup(cls.kbs.stop)
        cls.kbs.start()
        cls.base = cls.kbs.base
        cls.plain = cls.kbs.plain

        # Resources (one per test, plus binary / multi-block content) and an
        # allow-all resource policy, all through jwcrypto-minted admin tokens.
        cls.RESOURCES = {
            "interop/ec-p256/secret": b"p256-" + os.urandom(8).hex().encode(),
            "interop/ec-p521/secret": bytes(range(256)) + os.urandom(300),
            "interop/rsa-oaep-256/secret": b"rsa-" + os.urandom(2000),
            "interop/bearer/secret": b"bearer-\x00\xff\x80-" + os.urandom(40),
        }
        for path, value in cls.RESOURCES.items():
            cls.kbs.store_resource(path, value)
        cls.kbs.set_resource_policy(b'{"preset":"allow-all"}')

    # ---------------------------------------------------------------- helpers
    def _rcar(self, kind):
        """RCAR handshake with the sample TEE.

        Returns (cookie opener, token, private key, tee-pubkey dict)."""
        return self.kbs.rcar(self, kind)

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
        r = self.kbs.admin_post("/kbs/v0/resource/interop/admin/check", b"v1")
        self.assertEqual(r.status, 200, r.describe())
        other = jc_jwk.JWK.generate(kty="OKP", crv="Ed25519")
        r = self.kbs.admin_post("/kbs/v0/resource/interop/admin/check",
                                b"v2", key=other)
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
        # The signing key and the pre-published next one (docs/oidc.md).
        self.assertEqual(len(jwks_json.get("keys", [])), 2, r.describe())
        header = json.loads(b64url_decode_strict(token.split(".")[0]))
        matching = [k for k in jwks_json["keys"] if k.get("kid") == header.get("kid")]
        self.assertEqual(len(matching), 1, r.describe())
        jwks_key = matching[0]
        self.assertEqual(jwks_key.get("alg"), "ES256", r.describe())
        self.assertEqual(jwks_key.get("kty"), "EC", r.describe())
        self.assertEqual(jwks_key.get("crv"), "P-256", r.describe())
        self.assertTrue(jwks_key.get("kid"), r.describe())
        keyset = jc_jwk.JWKSet.from_json(r.body.decode())

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
