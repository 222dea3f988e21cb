//! fingate: an API gateway for fintech microservices, built on Pingora.
//!
//! One YAML file maps routes to upstream groups and attaches plug-in filters; see
//! the README and `docs/configuration.md`. Module map: [`config`] loads and
//! validates, [`routing`] matches, [`upstream`] balances and health-checks,
//! [`filter`] is the plug-in seam, [`proxy`] is the only Pingora `ProxyHttp`,
//! [`admin`] serves metrics and the admin API, [`server`] wires it all up.
//!
//! ## Layers
//!
//! Dependencies point down this list, never up, and modules on one line never
//! depend on each other in a cycle (`tests/it/layers.rs` reads every `crate::` path
//! under `src/` and fails on one that climbs):
//!
//! 8. `server`, `cli` — the composition root and the command line
//! 7. `proxy`, `admin` — the Pingora apps
//! 6. `runtime` — one generation of live state, swapped on reload
//! 5. `config` — the file, validated
//! 4. `filter` — the plug-in seam
//! 3. `auth`, `upstream`, `edge` — the domain
//! 2. `context`, `normalize`, `routing`, `cache`, `store`, `logging`, `trace` — pure cores and shared state
//! 1. `error`, `clock`, `units`, `yaml`, `metrics`, `background`, `outbound` — leaves

pub mod admin;
pub mod auth;
pub mod background;
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
pub mod outbound;
pub mod proxy;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod store;
pub mod trace;
pub mod units;
pub mod upstream;
pub mod yaml;
