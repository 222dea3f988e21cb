//! The live gateway state built from a [`Config`]: the route table, the upstream
//! groups and the filters, swapped atomically on reload.
//!
//! Requests load the current [`Runtime`] once and keep that `Arc` to the end, so a
//! request in flight finishes on the config it started with.

use crate::background::control_runtime;
use crate::cache::Cache;
use crate::config::{self, Builtin, Config, ConfigErrors, RouteConfig, RouteTarget};
use crate::filter::chain::FilterChain;
use crate::filter::mtls::ClientCertIndex;
use crate::filter::{FilterDeps, FilterFile};
use crate::logging::audit::{Action, AdminAction, Origin, Outcome};
use crate::metrics::{metrics, RequestCounters};
use crate::routing::{PathPattern, Rewrite, RouteTable};
use crate::store::{self, Store};
use crate::trace::Tracer;
use crate::upstream::{health, UpstreamGroup};
use arc_swap::ArcSwap;
use prometheus::Histogram;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where a route's requests go, resolved.
#[derive(Debug)]
pub enum Target {
    Upstream(Arc<UpstreamGroup>),
    Serve(Builtin),
}

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    pub target: Target,
    pub rewrite: Option<Rewrite>,
    /// Largest request body accepted (413 above).
    pub max_body: u64,
    /// Global filters first, then the route's own, in YAML order.
    pub filters: FilterChain,
    /// Resolved once here so the request path does no label lookup for it.
    pub duration: Histogram,
    /// `fingate_requests_total` children of this route, kept resolved.
    pub requests: RequestCounters,
    /// The match pattern as spans name it (`http.route`): `/api/payments/{id}`,
    /// or `/api/*` for a prefix.
    pub pattern: Arc<str>,
    /// Segments of the path the access log hashes (`logging.redact.path_params`).
    pub redacted_segments: Box<[usize]>,
}

impl Route {
    /// The route's upstream group (None for a built-in endpoint).
    pub fn upstream(&self) -> Option<&Arc<UpstreamGroup>> {
        match &self.target {
            Target::Upstream(group) => Some(group),
            Target::Serve(_) => None,
        }
    }
}

/// Everything one config generation serves with.
#[derive(Debug)]
pub struct Runtime {
    pub config: Config,
    /// The table validation built (shared with `config`); its values index `routes`.
    pub table: Arc<RouteTable<usize>>,
    /// The routes, in the order of `config.routes`.
    pub routes: Vec<Arc<Route>>,
    pub upstreams: BTreeMap<String, Arc<UpstreamGroup>>,
    pub store: Arc<dyn Store>,
    /// The response cache: kept across reloads while `cache.max_size` stays.
    pub cache: Arc<Cache>,
    /// Keys, consumers, the token endpoint.
    pub auth: Arc<crate::auth::AuthRuntime>,
    /// Trace context and sampling; None without a `tracing:` section.
    pub tracer: Option<Tracer>,
}

/// A config that validation did not make: a route names an upstream group the
/// config lacks. (Validation refuses that; filters and the route table come from
/// validation already checked or built, so nothing else can fail here.)
#[derive(Debug, thiserror::Error)]
#[error("internal error building the route table: {0}")]
pub struct BuildError(String);

impl Runtime {
    /// Builds a runtime; upstream targets that `previous` also had keep their health.
    pub fn build(config: Config, previous: Option<&Runtime>) -> Result<Self, BuildError> {
        let upstreams: BTreeMap<String, Arc<UpstreamGroup>> = config
            .upstreams
            .iter()
            .map(|(name, u)| {
                let prev = previous
                    .and_then(|p| p.upstreams.get(name))
                    .map(Arc::as_ref);
                (name.clone(), Arc::new(UpstreamGroup::new(u.clone(), prev)))
            })
            .collect();
        // The store (and the state in it) outlives reloads that keep its settings.
        let store = match previous {
            Some(p) if p.config.store == config.store => p.store.clone(),
            _ => store::open(&config.store),
        };
        let cache = match previous {
            Some(p) if p.config.cache == config.cache => p.cache.clone(),
            _ => Arc::new(Cache::new(config.cache.max_size)),
        };
        let mut fingerprints = std::collections::HashSet::new();
        let auth = Arc::new(crate::auth::AuthRuntime::build(
            &config.auth,
            &config.consumers,
            &store,
            previous.map(|p| p.auth.as_ref()),
        ));
        let client_certs = Arc::new(ClientCertIndex::new(&config.consumers));
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            let route_fingerprint = fingerprint(&config, r);
            fingerprints.insert(route_fingerprint);
            let target = match &r.target {
                RouteTarget::Upstream(name) => {
                    Target::Upstream(upstreams.get(name).cloned().ok_or_else(|| {
                        BuildError(format!("route {} names unknown upstream {name}", r.name))
                    })?)
                }
                RouteTarget::Serve(builtin) => Target::Serve(*builtin),
            };
            let name: Arc<str> = Arc::from(r.name.as_str());
            let upstream_wait = match &target {
                Target::Upstream(group) => {
                    let c = &group.config;
                    Some(c.connect_timeout * (c.retries + 1) + c.read_timeout)
                }
                Target::Serve(_) => None,
            };
            let deps = FilterDeps {
                store: store.clone(),
                route: Some(name.clone()),
                cache: cache.clone(),
                route_fingerprint,
                auth: auth.config.clone(),
                remote_keys: auth.remote.clone(),
                client_certs: client_certs.clone(),
                route_methods: r.spec.methods.as_deref().map(Arc::from),
                upstream_wait,
            };
            // `cors` runs first wherever it is listed: it answers preflights before
            // any authentication or limit, and its headers must reach their refusals.
            let (cors, others): (Vec<_>, Vec<_>) = config
                .filters
                .iter()
                .chain(&r.filters)
                .partition(|f| matches!(f.config, FilterFile::Cors(_)));
            let filters = cors
                .into_iter()
                .chain(others)
                .map(|f| f.checked.build(&deps))
                .collect();
            let filters = FilterChain::new(filters);
            let (pattern, redacted_segments) = match &r.spec.pattern {
                PathPattern::Exact(p) => (Arc::from(p.as_str()), config.logging.redact.segments(p)),
                PathPattern::Prefix(p) => (
                    Arc::from(format!("{}/*", p.trim_end_matches('/')).as_str()),
                    Box::default(),
                ),
            };
            let route = Route {
                name,
                target,
                rewrite: r.rewrite.clone(),
                max_body: r.max_body,
                filters,
                duration: metrics()
                    .request_duration_seconds
                    .with_label_values(&[&r.name]),
                requests: RequestCounters::new(&r.name),
                pattern,
                redacted_segments,
            };
            routes.push(Arc::new(route));
        }
        cache.retain(&fingerprints);
        let tracer = config.tracing.as_ref().map(Tracer::from_config);
        Ok(Self {
            tracer,
            table: config.table.clone(),
            config,
            routes,
            upstreams,
            store,
            cache,
            auth,
        })
    }

    /// Cache purges published by other gateways sharing the store reach this
    /// runtime's cache from now on (set when the runtime is put in service).
    fn listen_for_fleet_purges(&self) {
        let cache = Arc::downgrade(&self.cache);
        self.store.listen_for_purges(cache);
    }

    /// The route a table entry names.
    pub fn route(&self, index: usize) -> Option<&Arc<Route>> {
        self.routes.get(index)
    }

    /// The routes in resolution order (as `fingate routes` prints them).
    pub fn routes_resolved(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.table.iter_resolved().filter_map(|&i| self.route(i))
    }

    /// Starts health checks for every group of this generation.
    fn start_health_checks(&self) {
        let handle = control_runtime();
        for group in self.upstreams.values() {
            health::spawn(group, handle);
        }
    }
}

/// Revokes the tokens of the file's consumers a serving generation disables or
/// removes, through the store (so a fleet hears of it), off the caller's thread.
/// Only a gateway that serves does this, never a command that builds a runtime to
/// print it (`fingate routes`).
fn revoke_withdrawn(runtime: &Runtime, previous: Option<&Runtime>) {
    use crate::auth::consumers::{revoke_all_of, withdrawn};
    let store = &runtime.store;
    let before = previous.map(|p| p.config.consumers.as_slice());
    for name in withdrawn(&runtime.config.consumers, before) {
        let revocation = revoke_all_of(name);
        // In this gateway at once; the store call may wait for Redis.
        store.revocations().apply(revocation.clone());
        let store = store.clone();
        control_runtime().spawn(async move {
            if let Err(e) = store.revoke(&revocation).await {
                tracing::warn!(error = %e, revocation = %revocation.encode(), "could not record the revocation of a withdrawn consumer in the store; other gateways refuse its tokens once they reload the same file");
            }
        });
    }
}

/// Identifies a route's configuration as far as its answers depend on it (match,
/// rewrite, upstream name, its own and the global filters): cache entries are keyed
/// by it, so a changed route never serves what the old one stored.
fn fingerprint(config: &Config, r: &RouteConfig) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let text = format!(
        "{}{:?}{:?}{}{:?}{:?}",
        r.name, r.spec, r.rewrite, r.target, r.filters, config.filters
    );
    text.hash(&mut h);
    h.finish()
}

/// What a reload changed, for the log and the admin API.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    pub hash: String,
    pub routes_added: Vec<String>,
    pub routes_removed: Vec<String>,
    pub routes_changed: Vec<String>,
    /// Other sections that changed and took effect with this reload (`listen`
    /// for its TLS and h2c settings, `auth`, `consumers`, `store`, `cache`,
    /// `limits`, `trusted_proxies`, `shutdown`).
    pub settings_changed: Vec<&'static str>,
    /// Settings that only take effect after a restart (e.g. `listen`).
    pub restart_needed: Vec<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(#[from] ConfigErrors),
    #[error("{0}")]
    Build(#[from] BuildError),
}

/// The gateway's current runtime and how to replace it.
pub struct Gateway {
    current: ArcSwap<Runtime>,
    config_path: PathBuf,
    /// One reload at a time: two concurrent reloads would race on "previous".
    reload_lock: Mutex<()>,
}

impl Gateway {
    /// Builds the first runtime and starts its health checks.
    pub fn new(config: Config) -> Result<Arc<Self>, BuildError> {
        let config_path = config.source.file.clone();
        metrics().set_config_hash(&config.source.hash);
        publish_certificates(&config);
        configure_tracing(&config);
        let runtime = Runtime::build(config, None)?;
        runtime.start_health_checks();
        runtime.listen_for_fleet_purges();
        revoke_withdrawn(&runtime, None);
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(runtime),
            config_path,
            reload_lock: Mutex::new(()),
        }))
    }

    /// The runtime new requests use.
    pub fn current(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// Re-reads the config file and swaps it in; on any error the running config
    /// stays. Either way the audit log gets a line saying who asked.
    pub fn reload(&self, origin: Origin) -> Result<ReloadSummary, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        // A gateway started with `--demo` stays one; any other refuses demo secrets
        // on reload as at start.
        let secrets = self.current().config.secrets;
        let result = config::load(&self.config_path, secrets)
            .map_err(ReloadError::from)
            .and_then(|config| self.swap(config));
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics()
            .config_reloads_total
            .with_label_values(&[label])
            .inc();
        let file = self.config_path.display().to_string();
        let hash = result.as_ref().map(|s| s.hash.clone()).unwrap_or_default();
        let details = [("hash", serde_json::Value::from(hash))];
        AdminAction {
            action: Action::Reload,
            target: &file,
            outcome: match &result {
                Ok(_) => Outcome::Ok,
                Err(ReloadError::Invalid(_)) => Outcome::Error("invalid_config"),
                Err(ReloadError::Build(_)) => Outcome::Error("reload_failed"),
            },
            origin,
            details: if result.is_ok() { &details } else { &[] },
        }
        .record();
        match &result {
            Ok(s) => tracing::info!(
                hash = %s.hash, added = ?s.routes_added, removed = ?s.routes_removed,
                changed = ?s.routes_changed, settings_changed = ?s.settings_changed,
                restart_needed = ?s.restart_needed,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays")
            }
        }
        result
    }

    fn swap(&self, config: Config) -> Result<ReloadSummary, ReloadError> {
        let old = self.current();
        let summary = summarize(&old.config, &config);
        metrics().set_config_hash(&config.source.hash);
        publish_certificates(&config);
        configure_tracing(&config);
        let next = Runtime::build(config, Some(&old))?;
        next.start_health_checks();
        next.listen_for_fleet_purges();
        revoke_withdrawn(&next, Some(&old));
        let next = Arc::new(next);
        self.current.store(next.clone());
        for (name, group) in &old.upstreams {
            group.retire();
            group.unpublish_removed(next.upstreams.get(name).map(AsRef::as_ref));
        }
        Ok(summary)
    }
}

/// The expiry of every certificate the gateway presents (to clients, and to
/// upstreams as a client certificate), for alerting.
fn publish_certificates(config: &Config) {
    let served = config
        .listen
        .iter()
        .filter_map(|l| l.tls.as_deref())
        .flat_map(|t| t.certs.iter());
    let presented = config
        .upstreams
        .values()
        .filter_map(|u| u.tls.as_ref()?.client_cert.as_ref());
    metrics().set_certificates(served.chain(presented).map(|c| (c.label(), c.not_after)));
}

/// Where spans are exported (or that they are not), as the config says.
fn configure_tracing(config: &Config) {
    crate::trace::configure_export(config.tracing.as_ref().and_then(|t| t.export_settings()));
}

/// The upstream group settings a route sends to (None for a built-in endpoint).
fn group_of<'a>(config: &'a Config, route: &RouteConfig) -> Option<&'a config::UpstreamConfig> {
    match &route.target {
        RouteTarget::Upstream(name) => config.upstreams.get(name),
        RouteTarget::Serve(_) => None,
    }
}

fn summarize(old: &Config, new: &Config) -> ReloadSummary {
    // A route changed when anything that shapes its requests did: its own
    // settings, its upstream group, or the global filters in front of it.
    let same_route = |a: &RouteConfig, b: &RouteConfig| {
        a == b && group_of(old, a) == group_of(new, b) && old.filters == new.filters
    };
    let mut s = ReloadSummary {
        hash: new.source.hash.clone(),
        ..Default::default()
    };
    for route in &new.routes {
        match old.routes.iter().find(|r| r.name == route.name) {
            None => s.routes_added.push(route.name.clone()),
            Some(before) if !same_route(before, route) => s.routes_changed.push(route.name.clone()),
            Some(_) => {}
        }
    }
    s.routes_removed = old
        .routes
        .iter()
        .filter(|r| !new.routes.iter().any(|n| n.name == r.name))
        .map(|r| r.name.clone())
        .collect();
    for v in [
        &mut s.routes_added,
        &mut s.routes_changed,
        &mut s.routes_removed,
    ] {
        v.sort();
    }
    for (name, changed) in [
        ("auth", !old.auth.same_as(&new.auth)),
        ("consumers", old.consumers != new.consumers),
        ("store", old.store != new.store),
        ("cache", old.cache != new.cache),
        ("limits", old.limits != new.limits),
        (
            "trusted_proxies",
            old.trusted_proxies != new.trusted_proxies,
        ),
        ("shutdown", old.shutdown_grace != new.shutdown_grace),
        ("logging", old.logging != new.logging),
        ("tracing", old.tracing != new.tracing),
    ] {
        if changed {
            s.settings_changed.push(name);
        }
    }
    let addresses = |c: &Config| c.listen.iter().map(|l| l.address).collect::<Vec<_>>();
    if addresses(old) != addresses(new) {
        s.restart_needed.push("listen");
    } else if old.listen != new.listen {
        // TLS settings and certificates, h2c: new connections take them.
        s.settings_changed.push("listen");
    }
    if old.admin.address != new.admin.address {
        s.restart_needed.push("admin.address");
    }
    if old.threads != new.threads {
        s.restart_needed.push("threads");
    }
    // The connection caps are sized once with the listeners (each new connection
    // takes the other limits as they are when it is accepted).
    let (a, b) = (&old.limits, &new.limits);
    if (
        a.max_connections,
        a.admin_max_connections,
        a.max_requests_per_connection,
    ) != (
        b.max_connections,
        b.admin_max_connections,
        b.max_requests_per_connection,
    ) {
        s.restart_needed
            .push("limits (max_connections, admin_max_connections, max_requests_per_connection)");
    }
    s
}
