"""A bearer token for the load scripts: HS256 (kid `main`), valid for two hours.

Usage: token.py SECRET ISSUER AUDIENCE
"""
import base64, hashlib, hmac, json, sys, time, uuid

secret, iss, aud = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = {"alg": "HS256", "typ": "JWT", "kid": "main"}
claims = {"iss": iss, "aud": aud, "sub": "mobile-app", "iat": now, "exp": now + 7200,
          "jti": str(uuid.uuid4()), "scope": "accounts:read payments:read payments:write"}
signing = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
print(signing + "." + b64(sig))
