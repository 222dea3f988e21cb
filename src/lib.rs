//! fingate: an API gateway for fintech microservices, built on Pingora.
//!
//! One YAML file maps routes to upstream groups and attaches plug-in filters; see
//! the README and `docs/configuration.md`. Module map: [`config`] loads and
//! validates, [`routing`] matches, [`upstream`] balances and health-checks,
//! [`filter`] is the plug-in seam, [`proxy`] is the only Pingora `ProxyHttp`,
//! [`admin`] serves metrics and the admin API, [`server`] wires it all up.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod edge;
pub mod error;
pub mod filter;
pub mod logging;
pub mod metrics;
pub mod normalize;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod store;
pub mod units;
pub mod upstream;
