-- wrk script: POST /auth/token with a demo consumer's credentials (argon2-bound by design).
-- wrk -t2 -c8 -d10s -s benches/login/post.lua http://127.0.0.1:8080/auth/token
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"mobile-app","password":"mobile-demo-pass"}'
