//! What `store.url` names: one server, a Redis Cluster, or a primary found through
//! Redis Sentinel. Parsed when the config is validated (so a bad URL is a config
//! error with its line) and again when the store opens.
//!
//! - `redis://[user:password@]host:port[/db]`, `rediss://...`: one server;
//! - `redis+cluster://[user:password@]h1:p1,h2:p2,...`, `rediss+cluster://...`: seed
//!   nodes of a cluster (the rest of the cluster is discovered from them);
//! - `redis+sentinel://[user:password@]h1:p1,h2:p2,.../master-name[/db]`,
//!   `rediss+sentinel://...`: the sentinels watching the primary `master-name`. The
//!   credentials are for the primary; the sentinels are asked without them.
//!
//! A missing port is 6379 for servers and cluster nodes, 26379 for sentinels.

/// A parsed `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// The URL as given (the redis crate parses it).
    Single(String),
    /// One `redis[s]://[credentials@]host:port` URL per seed node.
    Cluster { nodes: Vec<String> },
    Sentinel {
        /// One `redis[s]://host:port` URL per sentinel.
        sentinels: Vec<String>,
        master: String,
        /// `redis[s]://[credentials@]host/db`: the credentials, database and TLS
        /// to use with whichever node the sentinels name (its address is a
        /// placeholder).
        primary: String,
        tls: bool,
    },
}

impl Topology {
    pub fn parse(url: &str) -> Result<Topology, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL; e.g. redis://127.0.0.1:6379/0"))?;
        let (tls, kind) = match scheme {
            "redis" => (false, ""),
            "rediss" => (true, ""),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            _ => {
                return Err(format!(
                    "{url:?}: the scheme must be redis, rediss, redis+cluster, rediss+cluster, redis+sentinel or rediss+sentinel"
                ))
            }
        };
        if kind.is_empty() {
            use redis::IntoConnectionInfo as _;
            url.into_connection_info()
                .map_err(|e| format!("{url:?}: {e}"))?;
            return Ok(Topology::Single(url.to_owned()));
        }
        if rest.contains(['?', '#']) {
            return Err(format!(
                "{url:?}: query parameters and fragments are not used with {scheme}://"
            ));
        }
        let (hosts_part, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hosts) = match hosts_part.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, hosts_part),
        };
        let node_scheme = if tls { "rediss" } else { "redis" };
        let default_port = if kind == "cluster" { 6379 } else { 26379 };
        let addresses = hosts
            .split(',')
            .map(|h| host_port(h, default_port).map_err(|e| format!("{url:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let userinfo = credentials.map_or(String::new(), |c| format!("{c}@"));
        if kind == "cluster" {
            if !matches!(path, "" | "0") {
                return Err(format!(
                    "{url:?}: a cluster has only database 0; leave the path out"
                ));
            }
            let nodes = urls(&format!("{node_scheme}://{userinfo}"), &addresses, url)?;
            return Ok(Topology::Cluster { nodes });
        }
        let (master, db) = path.split_once('/').unwrap_or((path, "0"));
        if master.is_empty() {
            return Err(format!(
                "{url:?}: name the primary the sentinels watch, e.g. redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster"
            ));
        }
        if db.parse::<u16>().is_err() {
            return Err(format!("{url:?}: {db:?} is not a database number"));
        }
        let primary = format!("{node_scheme}://{userinfo}primary/{db}");
        check_url(&primary, url)?;
        let sentinels = urls(&format!("{node_scheme}://"), &addresses, url)?;
        Ok(Topology::Sentinel {
            sentinels,
            master: master.to_owned(),
            primary,
            tls,
        })
    }
}

/// `host:port`, `[v6]:port` or `host` (then `default_port`), back as `host:port`.
fn host_port(h: &str, default_port: u16) -> Result<String, String> {
    let (host, port) = if let Some(v6) = h.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("{h:?}: an IPv6 address needs its closing ']'"))?;
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (h.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!(
            "{h:?}: a host is missing (hosts are separated by ',')"
        ));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{h:?}: {p:?} is not a port"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// `prefix` + each address, each a URL the redis crate accepts.
fn urls(prefix: &str, addresses: &[String], whole: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = addresses.iter().map(|a| format!("{prefix}{a}")).collect();
    for u in &urls {
        check_url(u, whole)?;
    }
    Ok(urls)
}

fn check_url(node: &str, whole: &str) -> Result<(), String> {
    use redis::IntoConnectionInfo as _;
    node.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("{whole:?}: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_servers_pass_through() {
        for url in ["redis://127.0.0.1:6379/0", "rediss://cache.internal:6380/2"] {
            assert_eq!(Topology::parse(url).unwrap(), Topology::Single(url.into()));
        }
    }

    #[test]
    fn cluster_seeds_become_node_urls() {
        let t =
            Topology::parse("rediss+cluster://u:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002").unwrap();
        assert_eq!(
            t,
            Topology::Cluster {
                nodes: vec![
                    "rediss://u:p%40ss@10.0.0.1:7000".into(),
                    "rediss://u:p%40ss@10.0.0.2:6379".into(),
                    "rediss://u:p%40ss@[::1]:7002".into(),
                ]
            }
        );
    }

    #[test]
    fn sentinels_and_their_primary() {
        let t = Topology::parse("redis+sentinel://:secret@127.0.0.1:26379,127.0.0.1/mymaster/3")
            .unwrap();
        assert_eq!(
            t,
            Topology::Sentinel {
                sentinels: vec![
                    "redis://127.0.0.1:26379".into(),
                    "redis://127.0.0.1:26379".into()
                ],
                master: "mymaster".into(),
                primary: "redis://:secret@primary/3".into(),
                tls: false,
            }
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (url, says) in [
            ("http://127.0.0.1:6379", "the scheme must be"),
            ("redis+cluster://127.0.0.1:7000/3", "only database 0"),
            (
                "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
                "a host is missing",
            ),
            ("redis+cluster://127.0.0.1:70000", "is not a port"),
            ("redis+sentinel://127.0.0.1:26379", "name the primary"),
            (
                "redis+sentinel://127.0.0.1:26379/m/x",
                "not a database number",
            ),
            (
                "redis+cluster://127.0.0.1:7000?timeout=1",
                "query parameters",
            ),
            ("redis+cluster://[::1:7000", "closing ']'"),
            ("127.0.0.1:6379", "is not a URL"),
        ] {
            let e = Topology::parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
