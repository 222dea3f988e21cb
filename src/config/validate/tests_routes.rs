//! Config validation cases for routes, their filters, and the `auth` and `consumers`
//! sections filters depend on (see `tests.rs` for the helpers).

use super::tests::{check, Case};

const ROUTES: &[Case] = &[
    ("route unknown upstream lists the known ones", "upstreams:\n  svc: { targets: [127.0.0.1:9101] }\n  loans: { targets: [127.0.0.1:9102] }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: acounts }\n", &[
        "gateway.yaml:5:39: routes[0].upstream: unknown upstream \"acounts\" (known: svc, loans)",
    ]),
    ("route naming a broken upstream is not told it is unknown", "upstreams:\n  svc: { targets: [] }\n", &[
        "gateway.yaml:2:10: upstreams.svc.targets: an upstream needs at least one target",
    ]),
    ("route duplicate names", "routes:\n  - { name: a, match: { prefix: /a }, upstream: svc }\n  - { name: a, match: { prefix: /b }, upstream: svc }\n", &[
        "gateway.yaml:3:7: routes[1].name: duplicate route name \"a\" (also routes[0])",
    ]),
    ("route bad names", "routes:\n  - { name: 'a b', match: { prefix: /a }, upstream: svc }\n  - { name: '', match: { prefix: /b }, upstream: svc }\n", &[
        "gateway.yaml:2:7: routes[0].name: invalid route name \"a b\": use 1-64 letters, digits, '-', '_' or '.'",
        "gateway.yaml:3:7: routes[1].name: invalid route name \"\": use 1-64 letters, digits, '-', '_' or '.'",
    ]),
    ("route reserved names", "routes:\n  - { name: unmatched, match: { prefix: /a }, upstream: svc }\n  - { name: jwks, match: { prefix: /b }, upstream: svc }\n", &[
        "gateway.yaml:2:7: routes[0].name: route name \"unmatched\" is reserved: `unmatched` labels requests no route serves; `token_endpoint`, `jwks` and `oauth_metadata` name the routes `auth.token_endpoint.path` adds (write your own with `serve:` under another name)",
        "gateway.yaml:3:7: routes[1].name: route name \"jwks\" is reserved: `unmatched` labels requests no route serves; `token_endpoint`, `jwks` and `oauth_metadata` name the routes `auth.token_endpoint.path` adds (write your own with `serve:` under another name)",
    ]),
    ("route same host method path", "routes:\n  - { name: a, match: { path: /a, methods: [GET] }, upstream: svc }\n  - { name: b, match: { path: /a, methods: [GET, POST] }, upstream: svc }\n", &[
        "gateway.yaml:3:25: routes[1].match.path: `/a` conflicts with route 0: same host and pattern, both accept GET",
    ]),
    ("route same path other host or method is fine", "routes:\n  - { name: a, match: { path: /a, methods: [GET] }, upstream: svc }\n  - { name: b, match: { path: /a, methods: [POST] }, upstream: svc }\n  - { name: c, match: { path: /a, host: api.example.com }, upstream: svc }\n", &[]),
    ("route same prefix twice", "routes:\n  - { name: a, match: { prefix: /a }, upstream: svc }\n  - { name: b, match: { prefix: /a/ }, upstream: svc }\n", &[
        "gateway.yaml:3:25: routes[1].match.prefix: `/a/` conflicts with route 0: same host and pattern, both accept all methods",
    ]),
    ("route path and prefix", "routes:\n  - { name: a, match: { path: /a, prefix: /a }, upstream: svc }\n  - { name: b, match: { methods: [GET] }, upstream: svc }\n", &[
        "gateway.yaml:2:16: routes[0].match: give exactly one of `path` (exact, with {param} segments) or `prefix`",
        "gateway.yaml:3:16: routes[1].match: give exactly one of `path` (exact, with {param} segments) or `prefix`",
    ]),
    ("route methods", "routes:\n  - { name: a, match: { prefix: /a, methods: [get, 'GE T'] }, upstream: svc }\n  - { name: b, match: { prefix: /b, methods: [] }, upstream: svc }\n", &[
        "gateway.yaml:2:47: routes[0].match.methods[0]: invalid method \"get\": write it in capitals, e.g. GET",
        "gateway.yaml:2:52: routes[0].match.methods[1]: invalid method \"GE T\": write it in capitals, e.g. GET",
        "gateway.yaml:3:37: routes[1].match.methods: must list at least one method; omit `methods` to allow all",
    ]),
    ("route host", "routes:\n  - { name: a, match: { prefix: /a, host: 'api.example.com:443' }, upstream: svc }\n  - { name: b, match: { prefix: /b, host: '*.example.com' }, upstream: svc }\n  - { name: c, match: { prefix: /c, host: '' }, upstream: svc }\n", &[
        "gateway.yaml:2:37: routes[0].match.host: `api.example.com:443` must not include a port (matching ignores the port) and is not an IP address",
        "gateway.yaml:3:37: routes[1].match.host: `*.example.com`: wildcard hosts are not supported; omit `host` to match any host",
        "gateway.yaml:4:37: routes[2].match.host: must not be empty; omit `host` to match any host",
    ]),
    ("route path patterns", "routes:\n  - { name: a, match: { path: a }, upstream: svc }\n  - { name: b, match: { path: '/a//b' }, upstream: svc }\n  - { name: c, match: { path: '/a/../b' }, upstream: svc }\n  - { name: d, match: { path: '/a?x=1' }, upstream: svc }\n", &[
        "gateway.yaml:2:25: routes[0].match.path: `a` must start with '/'",
        "gateway.yaml:3:25: routes[1].match.path: `/a//b` contains an empty segment (`//`)",
        "gateway.yaml:4:25: routes[2].match.path: segment \"..\" never matches: the request path's '..' segments climb above '/'",
        "gateway.yaml:5:25: routes[3].match.path: `/a?x=1` contains '?', which a request path never does",
    ]),
    ("route param names", "routes:\n  - { name: a, match: { path: '/a/{id}/{id}' }, upstream: svc }\n  - { name: b, match: { path: '/b/{}' }, upstream: svc }\n  - { name: c, match: { path: '/c/{a.b}' }, upstream: svc }\n  - { name: d, match: { path: '/d/x{id}' }, upstream: svc }\n  - { name: e, match: { prefix: '/e/{id}' }, upstream: svc }\n", &[
        "gateway.yaml:2:25: routes[0].match.path: `/a/{id}/{id}` uses parameter `{id}` twice",
        "gateway.yaml:3:25: routes[1].match.path: `/b/{}` has an empty parameter name `{}`",
        "gateway.yaml:4:25: routes[2].match.path: `/c/{a.b}`: parameter name `a.b` may only contain ASCII letters, digits, '_' and '-'",
        "gateway.yaml:5:25: routes[3].match.path: `/d/x{id}`: parameter `x{id}` must be a whole segment, like `/{name}/`",
        "gateway.yaml:6:25: routes[4].match.prefix: `/e/{id}`: a prefix cannot contain parameters ('{' or '}'); use `path:` for `{name}` segments",
    ]),
    ("route pattern not normalised", "routes:\n  - { name: a, match: { prefix: '/%41' }, upstream: svc }\n", &[
        "gateway.yaml:2:25: routes[0].match.prefix: segment \"%41\" never matches: requests are normalised first; write it as \"A\"",
    ]),
    ("route rewrite rules", "routes:\n  - { name: a, match: { prefix: /a }, upstream: svc, rewrite: { strip_prefix: a } }\n  - { name: b, match: { prefix: /b }, upstream: svc, rewrite: { strip_prefix: /b, path: /c } }\n  - { name: c, match: { prefix: /c }, upstream: svc, rewrite: {} }\n", &[
        "gateway.yaml:2:65: routes[0].rewrite.strip_prefix: \"a\" must start with '/'",
        "gateway.yaml:3:54: routes[1].rewrite: give exactly one of `strip_prefix` or `path`",
        "gateway.yaml:4:54: routes[2].rewrite: give exactly one of `strip_prefix` or `path`",
    ]),
    ("route rewrite templates", "routes:\n  - { name: a, match: { path: '/a/{id}' }, upstream: svc, rewrite: { path: '/v1/{ID}' } }\n  - { name: b, match: { path: '/b/{id}' }, upstream: svc, rewrite: { path: 'v1/{id}' } }\n  - { name: c, match: { path: '/c/{id}' }, upstream: svc, rewrite: { path: '/v1/{id' } }\n", &[
        "gateway.yaml:2:70: routes[0].rewrite.path: rewrite template `/v1/{ID}` uses `{ID}`, which the route's path does not capture (captures: id)",
        "gateway.yaml:3:70: routes[1].rewrite.path: rewrite template `v1/{id}` must start with '/'",
        "gateway.yaml:4:70: routes[2].rewrite.path: rewrite template `/v1/{id` has an unclosed '{'",
    ]),
    ("route max_body", "routes:\n  - { name: a, match: { prefix: /a }, upstream: svc, max_body: 1 }\n  - { name: b, match: { prefix: /b }, upstream: svc, max_body: 0B }\n", &[
        "gateway.yaml:2:54: routes[0].max_body: 1 has no unit: write it as a size with a unit, e.g. \"512B\", \"64KiB\", \"1MiB\"",
    ]),
    ("route unknown key and missing field", "routes:\n  - { name: a, match: { prefix: /a }, upstream: svc, colour: blue }\n  - { name: b, match: { prefix: /b } }\n  - { name: c, match: { prefix: /c, query: x }, upstream: svc }\n", &[
        "gateway.yaml:2:54: routes[0].colour: unknown field `colour`, expected one of `name`, `match`, `upstream`, `serve`, `rewrite`, `max_body`, `filters`",
        "gateway.yaml:3:5: routes[1]: give exactly one of `upstream` (a group from `upstreams`) or `serve` (token_endpoint | jwks | oauth_metadata)",
        "gateway.yaml:4:37: routes[2].match.query: unknown field `query`, expected one of `path`, `prefix`, `methods`, `host`",
    ]),
    ("built-in endpoints as routes", "auth:\n  keys: [{ id: own, algorithm: EdDSA, private_key_file: '${KEYS}/ed25519.pem', sign: true }]\n  token_endpoint: {}\nroutes:\n  - { name: login, match: { path: /login, methods: [POST] }, serve: token_endpoint, filters: [{ rate_limit: { key: ip, limit: 3, per: 1m } }] }\n  - { name: keys, match: { path: /keys }, serve: jwks }\n  - { name: meta, match: { path: /meta }, serve: oauth_metadata }\n", &[]),
    ("serve needs what it serves", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\nroutes:\n  - { name: login, match: { path: /login }, serve: token_endpoint }\n  - { name: keys, match: { path: /keys }, serve: jwks }\n  - { name: meta, match: { path: /meta }, serve: oauth_metadata }\n", &[
        "gateway.yaml:4:45: routes[0].serve: `token_endpoint` needs `auth.token_endpoint` (and a key with `sign: true`)",
        "gateway.yaml:5:43: routes[1].serve: `jwks` needs an asymmetric signing key (`private_key_file` with `sign: true`): an HMAC secret has no public half to publish",
        "gateway.yaml:6:43: routes[2].serve: `oauth_metadata` describes the token endpoint: it needs `auth.token_endpoint` (and a key with `sign: true`)",
    ]),
    ("upstream or serve, not both; no rewrite on serve", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: {}\nroutes:\n  - { name: a, match: { path: /a }, upstream: svc, serve: token_endpoint }\n  - { name: b, match: { path: /b }, serve: token_endpoint, rewrite: { path: /x } }\n", &[
        "gateway.yaml:5:5: routes[0]: give exactly one of `upstream` (a group from `upstreams`) or `serve` (token_endpoint | jwks | oauth_metadata)",
        "gateway.yaml:6:60: routes[1].rewrite: a route with `serve` answers itself: `rewrite` applies to `upstream` routes only",
    ]),
    ("the token_endpoint.path shorthand adds a route that may conflict", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: { path: /auth/token }\nroutes:\n  - { name: mine, match: { path: /auth/token }, upstream: svc }\n", &[
        "gateway.yaml:3:21: auth.token_endpoint.path: `/auth/token` conflicts with route 0: same host and pattern, both accept all methods",
    ]),
];

const SEVERAL: &[Case] = &[
    ("several errors all reported in order", "listen: [{ address: '0.0.0.0:80' }, { address: 'localhost:81' }]\nthreads: 0\nstore: { backend: redis }\nupstreams:\n  svc: { targets: [127.0.0.1:9101], retries: 20 }\n  empty: { targets: [] }\nroutes:\n  - { name: a, match: { prefix: /a }, upstream: acounts }\n  - { name: a, match: { prefix: /b }, upstream: empty }\n  - { name: c, match: { prefix: /c, methods: [get] }, upstream: svc, filters: [{ rate_limiter: {} }] }\nlimits: { max_headers: 1000 }\n", &[
        "gateway.yaml:1:39: listen[1].address: invalid address \"localhost:81\": expected IP:port, e.g. 127.0.0.1:9101 (host names are not resolved)",
        "gateway.yaml:2:1: threads: 0 is out of range: use 1 to 1024",
        "gateway.yaml:3:1: store: backend: redis needs `url`, e.g. redis://127.0.0.1:6379/0",
        "gateway.yaml:5:37: upstreams.svc.retries: 20 is out of range: use 0 to 10",
        "gateway.yaml:6:12: upstreams.empty.targets: an upstream needs at least one target",
        "gateway.yaml:8:39: routes[0].upstream: unknown upstream \"acounts\" (known: svc, empty)",
        "gateway.yaml:9:7: routes[1].name: duplicate route name \"a\" (also routes[0])",
        "gateway.yaml:10:47: routes[2].match.methods[0]: invalid method \"get\": write it in capitals, e.g. GET",
        "gateway.yaml:10:82: routes[2].filters[0].rate_limiter: unknown variant `rate_limiter`, expected one of `headers`, `jwt`, `request_id`, `rate_limit`, `cache`, `ip_filter`, `cors`, `validate`, `mtls`, `idempotency`",
        "gateway.yaml:11:11: limits.max_headers: use 1 to 256",
    ]),
];

const FILTERS: &[Case] = &[
    ("filter unknown name", "routes:\n  - name: r\n    match: { prefix: /r }\n    upstream: svc\n    filters:\n      - rate_limiter: { limit: 1 }\n", &[
        "gateway.yaml:6:9: routes[0].filters[0].rate_limiter: unknown variant `rate_limiter`, expected one of `headers`, `jwt`, `request_id`, `rate_limit`, `cache`, `ip_filter`, `cors`, `validate`, `mtls`, `idempotency`",
    ]),
    ("filter global not a list", "filters: { request_id: {} }\n", &[
        "gateway.yaml:1:1: filters: expected a list of filters, e.g. `- request_id: {}`",
    ]),
    ("filter global unknown", "filters:\n  - request_id: {}\n  - gzip: {}\n", &[
        "gateway.yaml:3:5: filters[1].gzip: unknown variant `gzip`, expected one of `headers`, `jwt`, `request_id`, `rate_limit`, `cache`, `ip_filter`, `cors`, `validate`, `mtls`, `idempotency`",
    ]),
    ("filter without options", "filters:\n  - request_id\n  - request_id:\n", &[
        "gateway.yaml:2:5: filters[0]: a filter is written with its options: `- request_id: {}`",
    ]),
    ("filter two names in one item", "filters:\n  - { request_id: {}, headers: {} }\n", &[
        "gateway.yaml:2:5: filters[0]: one filter per list item: write each as `- name: { options }`",
    ]),
    ("jwt without auth keys", "routes:\n  - name: r\n    match: { prefix: /r }\n    upstream: svc\n    filters:\n      - jwt: { scopes: [accounts:read] }\n", &[
        "gateway.yaml:6:9: routes[0].filters[0].jwt: `jwt` needs verification keys: configure auth.keys",
    ]),
    ("jwt options", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}' }]\nroutes:\n  - name: r\n    match: { prefix: /r }\n    upstream: svc\n    filters:\n      - jwt: { scopes: ['a b'], keys: [main, partner] }\n  - name: s\n    match: { prefix: /s }\n    upstream: svc\n    filters:\n      - jwt: { keys: [] }\nfilters:\n  - jwt: { scope: [x] }\n", &[
        "gateway.yaml:8:25: routes[0].filters[0].jwt.scopes[0]: invalid scope \"a b\": use visible ASCII characters without spaces or quotes",
        "gateway.yaml:8:46: routes[0].filters[0].jwt.keys[1]: unknown key \"partner\" (known: main)",
        "gateway.yaml:13:16: routes[1].filters[0].jwt.keys: list at least one key id, or leave `keys` out to accept every `accept: everywhere` key",
        "gateway.yaml:15:12: filters[0].jwt.scope: unknown field `scope`, expected `scopes` or `keys`",
    ]),
    ("jwt only when_listed keys", "auth:\n  keys: [{ id: partner, algorithm: HS256, secret: '${FG_SECRET}', accept: when_listed }]\nfilters:\n  - jwt: {}\n", &[
        "gateway.yaml:4:5: filters[0].jwt.keys: every key is `accept: when_listed`: name the keys this route accepts",
    ]),
    ("rate_limit key", "filters:\n  - rate_limit: { key: user, limit: 1, per: 1s }\n  - rate_limit: { key: [], limit: 1, per: 1s }\n  - rate_limit: { key: [ip, ip, 'header:', 'header:X Y'], limit: 1, per: 1s }\n", &[
        "gateway.yaml:2:19: filters[0].rate_limit.key: unknown key \"user\": expected consumer, ip, route or header:<Name>",
        "gateway.yaml:3:19: filters[1].rate_limit.key: an empty list: name at least one of consumer, ip, route, header:<Name>",
        "gateway.yaml:4:29: filters[2].rate_limit.key[1]: \"ip\" is listed twice",
        "gateway.yaml:4:33: filters[2].rate_limit.key[2]: unknown key \"header:\": expected consumer, ip, route or header:<Name>",
        "gateway.yaml:4:44: filters[2].rate_limit.key[3]: invalid header name \"X Y\"",
    ]),
    ("rate_limit limit per burst", "filters:\n  - rate_limit: { key: ip, limit: 0, per: 50ms, burst: 1000000001 }\n  - rate_limit: { key: ip, limit: 1000000001, per: 31d }\n", &[
        "gateway.yaml:2:28: filters[0].rate_limit.limit: must be between 1 and 1000000000, got 0",
        "gateway.yaml:2:38: filters[0].rate_limit.per: must be between 100ms and 30 days, got 50ms",
        "gateway.yaml:2:49: filters[0].rate_limit.burst: must be at most 1000000000, got 1000000001",
        "gateway.yaml:3:28: filters[1].rate_limit.limit: must be between 1 and 1000000000, got 1000000001",
        "gateway.yaml:3:47: filters[1].rate_limit.per: must be between 100ms and 30 days, got 31d",
    ]),
    ("rate_limit missing and wrong types", "filters:\n  - rate_limit: { key: ip, per: 1s }\n  - rate_limit: { key: ip, limit: many, per: 1s }\n  - rate_limit: { key: ip, limit: 1, per: 1 }\n", &[
        "gateway.yaml:2:5: filters[0].rate_limit: missing field `limit`",
        "gateway.yaml:3:28: filters[1].rate_limit.limit: invalid type: string \"many\", expected a whole number from 0 to 4294967295",
        "gateway.yaml:4:38: filters[2].rate_limit.per: 1 has no unit: write it as a duration with a unit, e.g. \"250ms\", \"30s\", \"5m\", \"1h\"",
    ]),
    ("rate_limit algorithm and on_store_error", "filters:\n  - rate_limit: { key: ip, limit: 1, per: 1s, algorithm: leaky_bucket }\n  - rate_limit: { key: ip, limit: 1, per: 1s, on_store_error: fail }\n", &[
        "gateway.yaml:2:47: filters[0].rate_limit.algorithm: unknown variant `leaky_bucket`, expected `gcra` or `sliding_window`",
        "gateway.yaml:3:47: filters[1].rate_limit.on_store_error: unknown variant `fail`, expected `allow` or `deny`",
    ]),
    ("ip_filter options", "filters:\n  - ip_filter: {}\n  - ip_filter: { allow: [10.0.0.0/8, ten], deny: ['10.0.0.1/8'] }\n  - ip_filter: { allow: ['::1'], block: [] }\n", &[
        "gateway.yaml:2:5: filters[0].ip_filter: list networks in `allow` and/or `deny`, e.g. { allow: [10.0.0.0/8] }",
        "gateway.yaml:3:38: filters[1].ip_filter.allow[1]: \"ten\" is not an IP address or network like 10.0.0.0/8",
        "gateway.yaml:3:51: filters[1].ip_filter.deny[0]: \"10.0.0.1/8\" has bits set after the prefix: write 10.0.0.0/8",
        "gateway.yaml:4:34: filters[2].ip_filter.block: unknown field `block`, expected `allow` or `deny`",
    ]),
    ("cors options", "filters:\n  - cors: { origins: ['*'], credentials: true }\n  - cors: { origins: [app.example.com] }\n  - cors: { origin: [] }\n", &[
        "gateway.yaml:2:23: filters[0].cors.origins[0]: \"*\" cannot be used with `credentials: true` (browsers refuse it): list the origins",
        "gateway.yaml:3:23: filters[1].cors.origins[0]: \"app.example.com\" is not an origin: write scheme://host[:port] without a path, e.g. https://app.example.com",
        "gateway.yaml:4:13: filters[2].cors.origin: unknown field `origin`, expected one of `origins`, `methods`, `headers`, `expose`, `credentials`, `max_age`",
    ]),
    ("idempotency options", "routes:\n  - name: a\n    match: { path: /a, methods: [POST] }\n    upstream: svc\n    filters:\n      - idempotency: { methods: [GET, post], ttl: 8d, max_response: 0B }\n  - name: b\n    match: { path: /b }\n    upstream: svc\n    filters:\n      - idempotency: { on_store_error: fail, required: yes please }\n  - name: c\n    match: { path: /c }\n    upstream: svc\n    filters:\n      - idempotency: { header: X-Key }\n  - name: d\n    match: { path: /d }\n    upstream: svc\n    filters:\n      - idempotency: { methods: [] }\n  - name: e\n    match: { path: /d }\n    upstream: svc\n    filters:\n      - idempotency: { required: true, methods: [POST, PUT, DELETE], ttl: 1s, max_response: 16MiB, on_store_error: allow }\n", &[
        "gateway.yaml:6:34: routes[0].filters[0].idempotency.methods[0]: GET requests change nothing to repeat: idempotency keys apply to POST, PUT, PATCH, DELETE and other unsafe methods",
        "gateway.yaml:6:39: routes[0].filters[0].idempotency.methods[1]: invalid method \"post\": write it in capitals, e.g. POST",
        "gateway.yaml:6:46: routes[0].filters[0].idempotency.ttl: must be between 1s and 7d, got 8d",
        "gateway.yaml:6:55: routes[0].filters[0].idempotency.max_response: use 1B to 16MiB: a stored answer is held whole in memory and in the store",
        "gateway.yaml:11:24: routes[1].filters[0].idempotency.on_store_error: unknown variant `fail`, expected `deny` or `allow`",
        "gateway.yaml:16:24: routes[2].filters[0].idempotency.header: unknown field `header`, expected one of `required`, `methods`, `ttl`, `max_response`, `on_store_error`",
        "gateway.yaml:21:24: routes[3].filters[0].idempotency.methods: list at least one method, e.g. [POST]",
    ]),
    ("idempotency where it can never apply", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: {}\nfilters:\n  - idempotency: {}\nroutes:\n  - { name: a, match: { path: /a, methods: [GET] }, upstream: svc, filters: [{ idempotency: {} }] }\n  - { name: b, match: { path: /b, methods: [PUT, GET] }, upstream: svc, filters: [{ idempotency: { methods: [POST, PATCH] } }] }\n  - { name: c, match: { path: /c, methods: [POST] }, serve: token_endpoint, filters: [{ idempotency: {} }] }\n  - { name: d, match: { path: /d, methods: [PUT] }, upstream: svc, filters: [{ idempotency: { methods: [PUT] } }] }\n  - { name: e, match: { path: /e }, upstream: svc, filters: [{ idempotency: {} }, { jwt: {} }] }\n", &[
        "gateway.yaml:5:5: filters[0].idempotency: list `idempotency` under the routes it guards: keys are scoped to a route, and only routes with an `upstream` forward requests",
        "gateway.yaml:7:80: routes[0].filters[0].idempotency: never applies: the route accepts GET and the filter guards POST, PATCH",
        "gateway.yaml:8:100: routes[1].filters[0].idempotency.methods: never applies: the route accepts PUT, GET and the filter guards POST, PATCH",
        "gateway.yaml:9:89: routes[2].filters[0].idempotency: `idempotency` guards requests forwarded to an upstream; a `serve:` route answers itself",
        "gateway.yaml:11:64: routes[4].filters[0].idempotency: runs before `jwt` here, so keys would be scoped to the client address instead of the consumer: list `jwt` first",
    ]),
    ("validate options", "filters:\n  - validate: { schema: { type: 12 } }\n  - validate: { json_schema: missing.json, max_body: 1MiB }\n  - validate: {}\n", &[
        "gateway.yaml:2:17: filters[0].validate.schema: the schema does not compile: 12 is not valid under any of the schemas listed in the 'anyOf' keyword",
        "gateway.yaml:3:17: filters[1].validate.json_schema: cannot read missing.json: No such file or directory (os error 2)",
        "gateway.yaml:3:44: filters[1].validate.max_body: use 1B to 64KiB: the body is held whole while it is checked",
        "gateway.yaml:4:5: filters[2].validate: give exactly one of `json_schema` (a file) or `schema` (inline)",
    ]),
    ("rate_limit valid", "filters:\n  - rate_limit: { key: [consumer, route, 'header:X-Api-Key'], limit: 1000000000, per: 30d, burst: 20, algorithm: sliding_window, on_store_error: deny }\n", &[]),
    ("cache options", "filters:\n  - cache: { ttl: 0s, max_body: 0B, statuses: [200, 206, 304, 199, 600], vary: ['Accept Language'], lock_timeout: 2m }\n  - cache: { ttl: 30s, statuses: [] }\n  - cache: { max_body: 1MiB }\n", &[
        "gateway.yaml:2:14: filters[0].cache.ttl: must be greater than 0, e.g. 30s",
        "gateway.yaml:2:23: filters[0].cache.max_body: must be greater than 0",
        "gateway.yaml:2:53: filters[0].cache.statuses[1]: 206 cannot be cached: use final statuses 200-599 other than 206 and 304",
        "gateway.yaml:2:58: filters[0].cache.statuses[2]: 304 cannot be cached: use final statuses 200-599 other than 206 and 304",
        "gateway.yaml:2:63: filters[0].cache.statuses[3]: 199 cannot be cached: use final statuses 200-599 other than 206 and 304",
        "gateway.yaml:2:68: filters[0].cache.statuses[4]: 600 cannot be cached: use final statuses 200-599 other than 206 and 304",
        "gateway.yaml:2:81: filters[0].cache.vary[0]: invalid header name \"Accept Language\"",
        "gateway.yaml:2:101: filters[0].cache.lock_timeout: at most 60s",
        "gateway.yaml:3:24: filters[1].cache.statuses: list at least one status, e.g. [200]",
        "gateway.yaml:4:5: filters[2].cache: missing field `ttl`",
    ]),
    ("cache before jwt", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}' }]\nroutes:\n  - name: r\n    match: { prefix: /r }\n    upstream: svc\n    filters:\n      - cache: { ttl: 30s }\n      - jwt: {}\n", &[
        "gateway.yaml:8:9: routes[0].filters[0].cache: `cache` runs before `jwt` here, so a cached answer would be served before the token is checked: list `jwt` first",
    ]),
    ("global cache before route jwt", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: '${FG_SECRET}' }]\nfilters:\n  - cache: { ttl: 30s }\nroutes:\n  - { name: r, match: { prefix: /r }, upstream: svc, filters: [{ jwt: {} }] }\n", &[
        "gateway.yaml:4:5: filters[0].cache: `cache` runs before `jwt` here, so a cached answer would be served before the token is checked: list `jwt` first",
    ]),
    ("headers options", "filters:\n  - headers:\n      request: { set: { X-Consumer-Id: admin, 'Bad Name': x }, add: { X-A: \"line\\nbreak\" }, rename: { X-From: 'X To' } }\n      response: { remove: [X-Consumer-Id, 'a:b'], set: { X-Consumer-Id: ok } }\n", &[
        "gateway.yaml:3:25: filters[0].headers.request.set.X-Consumer-Id: X-Consumer-Id is set by the gateway from the verified token; a transform cannot change it",
        "gateway.yaml:3:47: filters[0].headers.request.set.Bad Name: invalid header name \"Bad Name\"",
        "gateway.yaml:3:71: filters[0].headers.request.add.X-A: invalid header value \"line\\nbreak\": use visible ASCII characters",
        "gateway.yaml:3:103: filters[0].headers.request.rename.X-From: invalid header name \"X To\"",
        "gateway.yaml:4:43: filters[0].headers.response.remove[1]: invalid header name \"a:b\"",
    ]),
    ("headers unknown keys", "filters:\n  - headers: { request: { replace: {} } }\n  - headers: { upstream: {} }\n", &[
        "gateway.yaml:2:27: filters[0].headers.request.replace: unknown field `replace`, expected one of `set`, `add`, `remove`, `rename`",
        "gateway.yaml:3:16: filters[1].headers.upstream: unknown field `upstream`, expected `request` or `response`",
    ]),
    ("request_id options", "filters:\n  - request_id: { header: 'X Request Id' }\n  - request_id: { name: X-Trace }\n  - request_id: { header: X-Trace-Id }\n", &[
        "gateway.yaml:2:19: filters[0].request_id.header: invalid header name \"X Request Id\"",
        "gateway.yaml:3:19: filters[1].request_id.name: unknown field `name`, expected `header`",
    ]),
];

const AUTH: &[Case] = &[
    ("auth secret too short", "auth:\n  keys: [{ id: main, algorithm: HS256, secret: short, sign: true }]\n", &[
        "gateway.yaml:2:40: auth.keys[0].secret: the secret is 5 bytes; use at least 32 random bytes (e.g. `openssl rand -base64 48`)",
    ]),
    ("auth secret from env is fine", "auth:\n  keys: [{ id: main, algorithm: HS512, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: {}\n", &[]),
    ("auth algorithms", "auth:\n  keys:\n    - { id: a, algorithm: HS257, secret: '${FG_SECRET}' }\n    - { id: b, algorithm: none, secret: '${FG_SECRET}' }\n    - { id: c, algorithm: RS256, secret: '${FG_SECRET}' }\n    - { id: d, algorithm: HS256, public_key_file: '${KEYS}/ed25519.pub.pem' }\n", &[
        "gateway.yaml:3:16: auth.keys[0].algorithm: unknown algorithm \"HS257\": expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
        "gateway.yaml:4:16: auth.keys[1].algorithm: unknown algorithm \"none\": expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
        "gateway.yaml:5:34: auth.keys[2].secret: `secret` is for HS256/384/512 keys; a RS256 key needs `public_key_file` (or `private_key_file` to sign)",
        "gateway.yaml:6:34: auth.keys[3].public_key_file: a HS256 key needs `secret` (from the environment: secret: ${NAME})",
    ]),
    ("auth key material", "auth:\n  keys:\n    - { id: a, algorithm: HS256 }\n    - { id: b, algorithm: HS256, secret: '${FG_SECRET}', public_key_file: k.pem }\n", &[
        "gateway.yaml:3:7: auth.keys[0]: give exactly one of `secret` (HMAC), `public_key_file` (verify only) or `private_key_file` (sign)",
        "gateway.yaml:4:7: auth.keys[1]: give exactly one of `secret` (HMAC), `public_key_file` (verify only) or `private_key_file` (sign)",
    ]),
    ("auth key ids", "auth:\n  keys:\n    - { id: main, algorithm: HS256, secret: '${FG_SECRET}' }\n    - { id: main, algorithm: HS384, secret: '${FG_SECRET}' }\n    - { id: 'a b', algorithm: HS256, secret: '${FG_SECRET}' }\n", &[
        "gateway.yaml:4:9: auth.keys[1].id: duplicate key id \"main\"",
        "gateway.yaml:5:9: auth.keys[2].id: invalid key id \"a b\": use 1-64 letters, digits, '-', '_', '.'",
    ]),
    ("auth key files", "auth:\n  keys:\n    - { id: a, algorithm: EdDSA, public_key_file: missing.pub.pem }\n    - { id: b, algorithm: EdDSA, public_key_file: '${KEYS}/garbage.pem' }\n    - { id: c, algorithm: ES256, public_key_file: '${KEYS}/ed25519.pub.pem' }\n    - { id: d, algorithm: EdDSA, private_key_file: '${KEYS}/garbage.pem', sign: true }\n", &[
        "gateway.yaml:3:34: auth.keys[0].public_key_file: cannot read missing.pub.pem: No such file or directory (os error 2)",
        "gateway.yaml:4:34: auth.keys[1].public_key_file: $KEYS/garbage.pem: not a EdDSA public key in PEM form: InvalidKeyFormat",
        "gateway.yaml:5:34: auth.keys[2].public_key_file: $KEYS/ed25519.pub.pem: not a ES256 public key in PEM form: InvalidKeyFormat",
        "gateway.yaml:6:34: auth.keys[3].private_key_file: $KEYS/garbage.pem: not a PEM file: malformedframing",
    ]),
    ("auth sign rules", "auth:\n  keys:\n    - { id: a, algorithm: EdDSA, private_key_file: '${KEYS}/ed25519.pem' }\n    - { id: b, algorithm: EdDSA, public_key_file: '${KEYS}/ed25519.pub.pem', sign: true }\n", &[
        "gateway.yaml:3:34: auth.keys[0].private_key_file: only the signing key (`sign: true`) is loaded from a private key; verification keys use `public_key_file`",
        "gateway.yaml:4:34: auth.keys[1].public_key_file: a signing key needs `private_key_file` (or `secret` for HMAC), not `public_key_file`",
    ]),
    ("auth two signing keys", "auth:\n  keys:\n    - { id: a, algorithm: HS256, secret: '${FG_SECRET}', sign: true }\n    - { id: b, algorithm: EdDSA, private_key_file: '${KEYS}/ed25519.pem', sign: true }\n", &[
        "gateway.yaml:2:3: auth.keys: 2 keys have `sign: true`; mark exactly one",
    ]),
    ("auth asymmetric keys are fine", "auth:\n  issuer: https://gw.example\n  audience: fintech-api\n  leeway: 5m\n  keys:\n    - { id: own, algorithm: EdDSA, private_key_file: '${KEYS}/ed25519.pem', sign: true }\n    - { id: partner, algorithm: EdDSA, public_key_file: '${KEYS}/ed25519.pub.pem', accept: when_listed, issuer: https://idp.partner.example }\n  token_endpoint: { path: /login, default_ttl: 5m, max_ttl: 1h, max_concurrent_logins: 4, lockout: { username_failures: 3, ip_failures: 10, window: 10m } }\nfilters:\n  - jwt: { keys: [own, partner] }\n", &[]),
    ("auth remote key sets are fine", "auth:\n  keys:\n    - { id: main, algorithm: HS256, secret: '${FG_SECRET}', sign: true }\n    - { id: idp, jwks_url: 'https://idp.example/jwks', issuer: 'https://idp.example/', audience: api, refresh: 5m, max_stale: 2h, algorithm: RS256, accept: when_listed }\n    - { id: local-idp, jwks_url: 'http://127.0.0.1:8081/jwks', issuer: local-idp }\nfilters:\n  - jwt: { keys: [main, idp] }\n", &[]),
    ("auth remote key set rules", "auth:\n  keys:\n    - { id: a, jwks_url: 'http://idp.example/jwks', issuer: 'https://idp.example' }\n    - { id: b, jwks_url: 'https://idp.example/jwks' }\n    - { id: c, jwks_url: 'https://idp.example/jwks', issuer: fingate, secret: '${FG_SECRET}', sign: true }\n    - { id: d, jwks_url: 'https://idp.example/jwks', issuer: 'https://idp.example#x', algorithm: HS256, refresh: 10s, max_stale: 1m }\n    - { id: e, algorithm: RS256, public_key_file: '${KEYS}/ed25519.pub.pem', refresh: 5m }\n    - { id: b, jwks_url: 'ftp://idp.example/jwks', issuer: x }\n", &[
        "gateway.yaml:3:16: auth.keys[0].jwks_url: \"http://idp.example/jwks\": use https:// (plain http:// only to a loopback address such as 127.0.0.1)",
        "gateway.yaml:4:7: auth.keys[1]: a key set from `jwks_url` needs `issuer`: the `iss` of its tokens, e.g. https://idp.example.com/",
        "gateway.yaml:5:54: auth.keys[2].issuer: \"fingate\" is this gateway's own issuer (auth.issuer): a fetched key set must not mint tokens of local consumers",
        "gateway.yaml:5:71: auth.keys[2].secret: a key set from `jwks_url` brings its own keys: remove this, or make it a separate key",
        "gateway.yaml:5:95: auth.keys[2].sign: a fetched key set has only public keys and cannot sign",
        "gateway.yaml:6:54: auth.keys[3].issuer: \"https://idp.example#x\" contains '#': an issuer identifier has no fragment",
        "gateway.yaml:6:87: auth.keys[3].algorithm: HS256 keys are shared secrets, never published in a key set: use RS*, PS*, ES* or EdDSA",
        "gateway.yaml:6:105: auth.keys[3].refresh: use 1m to 24h",
        "gateway.yaml:7:34: auth.keys[4].public_key_file: $KEYS/ed25519.pub.pem: not a RS256 public key in PEM form: InvalidKeyFormat",
        "gateway.yaml:7:78: auth.keys[4].refresh: only a key set fetched from `jwks_url` is refreshed",
        "gateway.yaml:8:16: auth.keys[5].jwks_url: \"ftp://idp.example/jwks\": the scheme ftp:// is not fetched; use https://",
    ]),
    ("auth leeway", "auth:\n  leeway: 6m\n", &[
        "gateway.yaml:2:3: auth.leeway: use at most 5m: leeway extends every token's life",
    ]),
    ("auth unknown keys hide the rest of auth", "auth:\n  leeway: 6m\n  key: []\n", &[
        "gateway.yaml:3:3: auth.key: unknown field `key`, expected one of `issuer`, `audience`, `leeway`, `keys`, `token_endpoint`",
    ]),
    ("auth key accept", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}', accept: sometimes }]\n", &[
        "gateway.yaml:2:61: auth.keys[0].accept: unknown variant `sometimes`, expected `everywhere` or `when_listed`",
    ]),
    ("token endpoint without signing key", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}' }]\n  token_endpoint: { path: /auth/token }\n", &[
        "gateway.yaml:3:3: auth.token_endpoint: the token endpoint needs a signing key: mark one of auth.keys with `sign: true`",
    ]),
    ("token endpoint ttl rules", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: { default_ttl: 2h, max_ttl: 1h }\n", &[
        "gateway.yaml:3:21: auth.token_endpoint.default_ttl: must be greater than 0 and at most `max_ttl`",
    ]),
    ("token endpoint zero ttls", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: { default_ttl: 0s, max_ttl: 0s }\n", &[
        "gateway.yaml:3:21: auth.token_endpoint.default_ttl: must be greater than 0 and at most `max_ttl`",
        "gateway.yaml:3:38: auth.token_endpoint.max_ttl: use at least 1s",
    ]),
    ("token endpoint path and logins", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint: { path: 'auth/token', max_concurrent_logins: 0 }\n", &[
        "gateway.yaml:3:21: auth.token_endpoint.path: \"auth/token\" is not a plain request path like /auth/token",
        "gateway.yaml:3:41: auth.token_endpoint.max_concurrent_logins: use 1 to 256",
    ]),
    ("token endpoint lockout zero", "auth:\n  keys: [{ id: a, algorithm: HS256, secret: '${FG_SECRET}', sign: true }]\n  token_endpoint:\n    lockout: { username_failures: 0, ip_failures: 0, window: 0s }\n", &[
        "gateway.yaml:4:5: auth.token_endpoint.lockout: failure counts and window must be greater than 0",
    ]),
];

const CONSUMERS: &[Case] = &[
    ("consumer hash must be argon2id", "consumers:\n  - { username: a, password_hash: secret }\n  - { username: b, password_hash: '$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA' }\n", &[
        "gateway.yaml:2:20: consumers[0].password_hash: not a PHC hash string (password hash string missing field): make one with `fingate hash-password`",
        "gateway.yaml:3:20: consumers[1].password_hash: argon2i hashes are not accepted: use argon2id (`fingate hash-password`)",
    ]),
    ("consumer names unique and valid", "consumers:\n  - { username: app, password_hash: '${FG_HASH}' }\n  - { username: app, password_hash: '${FG_HASH}' }\n  - { username: 'mobile app', password_hash: '${FG_HASH}' }\n", &[
        "gateway.yaml:3:7: consumers[1].username: duplicate username \"app\"",
        "gateway.yaml:4:7: consumers[2].username: invalid username \"mobile app\": use 1-64 letters, digits, '-', '_', '.', '@'",
    ]),
    ("consumer scopes", "consumers:\n  - { username: app, password_hash: '${FG_HASH}', scopes: ['accounts read', '', 'a\"b'] }\n", &[
        "gateway.yaml:2:60: consumers[0].scopes[0]: invalid scope \"accounts read\": use visible ASCII characters without spaces or quotes",
        "gateway.yaml:2:77: consumers[0].scopes[1]: invalid scope \"\": use visible ASCII characters without spaces or quotes",
        "gateway.yaml:2:81: consumers[0].scopes[2]: invalid scope \"a\\\"b\": use visible ASCII characters without spaces or quotes",
    ]),
    ("consumer fields", "consumers:\n  - { username: app }\n  - { username: b, password_hash: x, role: admin }\n  - { username: c, password_hash: x, disabled: maybe }\n", &[
        "gateway.yaml:2:5: consumers[0]: a consumer needs a `password_hash` (to log in), a `client_cert` (for mutual TLS), or both",
        "gateway.yaml:3:38: consumers[1].role: unknown field `role`, expected one of `username`, `password_hash`, `client_cert`, `scopes`, `disabled`",
        "gateway.yaml:4:38: consumers[2].disabled: invalid type: string \"maybe\", expected a boolean",
    ]),
    ("consumers not a list", "consumers: { app: x }\n", &[
        "gateway.yaml:1:1: consumers: expected a list of { username, password_hash, client_cert, scopes }",
    ]),
];

#[test]
fn routes() {
    check(ROUTES);
}

#[test]
fn several_errors_at_once() {
    check(SEVERAL);
}

#[test]
fn filters() {
    check(FILTERS);
}

#[test]
fn auth() {
    check(AUTH);
}

#[test]
fn consumers() {
    check(CONSUMERS);
}
