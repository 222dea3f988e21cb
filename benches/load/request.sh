# Sourced by benches/load/setup.sh and benches/load/instructions: the request the load
# tools send (REQUEST), the chain scenarios' token, and request_headers.
# Gives: REQUEST, REQUEST_PATH, TOKEN, JWT_*, chain, request_headers (sets REQ_HEADERS).
# The request every scenario gets (REQUEST): `minimal`, a bare GET (plus the bearer
# token where a scenario checks one), or `realistic`, what a phone app sends: about
# ten headers, ~700 bytes, a bearer token, a query string.
REQUEST=${REQUEST:-minimal}
# The chain scenarios' token: HS256, signed with this secret, valid for two hours.
JWT_SECRET=load-test-secret-0123456789abcdef0123456789 JWT_ISSUER=fingate JWT_AUDIENCE=fintech-api
TOKEN=$(python3 benches/load/token.py "$JWT_SECRET" "$JWT_ISSUER" "$JWT_AUDIENCE")
HEADERS=()
case $REQUEST in
  minimal) REQUEST_PATH=/api/ping ;;
  realistic)
    REQUEST_PATH="/api/accounts/ACC-1001/transactions?limit=20&cursor=eyJvZmZzZXQiOjIwLCJzb3J0IjoiZGVzYyJ9"
    HEADERS=(-H "User-Agent: FinBank/5.12.0 (iPhone15,2; iOS 17.4.1; Scale/3.00) Alamofire/5.8.1"
             -H "Accept: application/json" -H "Accept-Language: en-GB,en;q=0.9"
             -H "Accept-Encoding: gzip, deflate, br" -H "Authorization: Bearer $TOKEN"
             -H "X-Request-Id: 6f1c2e4a-9b3d-4e8f-a1c7-2d5e8f0b3a69"
             -H "X-Device-Id: 3F2504E0-4F89-11D3-9A0C-0305E82C3301"
             -H "X-App-Version: 5.12.0 (5120)" -H "Cookie: session_hint=eu-west-1; consent=analytics:0") ;;
  *) echo "REQUEST: minimal or realistic, not $REQUEST" >&2; exit 2 ;;
esac
# chain SCENARIO: whether it checks a token (the token is then sent with every request).
chain() { [[ $1 == *+chain* ]]; }
# The request's headers for SCENARIO, as wrk/curl -H arguments (none: an empty array).
request_headers() {
  REQ_HEADERS=("${HEADERS[@]}")
  if chain "$1" && [ "$REQUEST" = minimal ]; then REQ_HEADERS+=(-H "Authorization: Bearer $TOKEN"); fi
}
