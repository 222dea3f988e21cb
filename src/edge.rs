//! The edge: what the gateway refuses before any route or filter sees a request.
//!
//! Pingora forwards what it is given (see `docs/hardening.md`): it has no total
//! deadline for request headers, no connection cap, and it accepts requests without
//! `Host`, with huge headers or with both `Content-Length` and `Transfer-Encoding`.
//! [`shield`] guards connections (header deadline, body rate, connection cap),
//! [`checks`] guards each request head (size, framing, host, method), [`forwarded`]
//! rewrites the forwarding headers and strips hop-by-hop ones.

pub mod checks;
pub mod forwarded;
pub mod limits;
pub mod shield;
pub mod tls;
