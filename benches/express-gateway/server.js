// The design fingate replaces, rebuilt for the load comparison (benches/load):
// an Express.js gateway as teams write it, with the usual npm packages:
// jsonwebtoken checks the bearer token (HS256, exp, iss, aud), express-rate-limit
// counts per token subject in Redis (rate-limit-redis), http-proxy-middleware
// forwards to the origin over kept-alive connections, and one JSON access line per
// request goes to stdout.
//
// Env: PORT, ORIGIN (http://host:port), REDIS_URL, JWT_SECRET, JWT_ISSUER,
// JWT_AUDIENCE, RATE_LIMIT (requests per minute per subject).
"use strict";
const http = require("node:http");
const crypto = require("node:crypto");
const express = require("express");
const jwt = require("jsonwebtoken");
const { rateLimit } = require("express-rate-limit");
const { RedisStore } = require("rate-limit-redis");
const { createClient } = require("redis");
const { createProxyMiddleware } = require("http-proxy-middleware");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function main() {
  const redis = createClient({ url: env("REDIS_URL") });
  redis.on("error", (e) => console.error("redis:", e.message));
  await redis.connect();

  const app = express();
  app.disable("x-powered-by");

  // Access log: one JSON line per request, written when the answer is sent.
  app.use((req, res, next) => {
    const started = process.hrtime.bigint();
    const id = crypto.randomUUID();
    res.on("finish", () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      process.stdout.write(
        JSON.stringify({
          request_id: id,
          method: req.method,
          path: req.path,
          status: res.statusCode,
          duration_ms: ms,
          consumer: req.consumer,
        }) + "\n",
      );
    });
    next();
  });

  // Authentication: a bearer token signed with the shared HS256 secret.
  const secret = env("JWT_SECRET");
  const verify = { algorithms: ["HS256"], issuer: env("JWT_ISSUER"), audience: env("JWT_AUDIENCE") };
  app.use((req, res, next) => {
    const auth = req.headers.authorization || "";
    if (!auth.startsWith("Bearer ")) {
      return res.status(401).json({ error: "missing_token" });
    }
    try {
      const claims = jwt.verify(auth.slice(7), secret, verify);
      req.consumer = claims.sub;
      next();
    } catch (e) {
      res.status(401).json({ error: "invalid_token", message: e.message });
    }
  });

  // Rate limit per token subject, counted in Redis (shared by every instance).
  app.use(
    rateLimit({
      windowMs: 60_000,
      limit: Number(env("RATE_LIMIT")),
      standardHeaders: "draft-7",
      legacyHeaders: false,
      keyGenerator: (req) => req.consumer,
      store: new RedisStore({ sendCommand: (...args) => redis.sendCommand(args) }),
    }),
  );

  app.use(
    createProxyMiddleware({
      target: env("ORIGIN"),
      agent: new http.Agent({ keepAlive: true, maxSockets: 256 }),
      xfwd: true,
    }),
  );

  const port = Number(env("PORT"));
  app.listen(port, "127.0.0.1", () => console.error(`express gateway on 127.0.0.1:${port}`));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
