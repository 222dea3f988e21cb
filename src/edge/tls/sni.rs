//! Choosing a listener's certificate by the name the client asks for (SNI).

use super::certs::LoadedCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates of one listener: an exact name first, then a wildcard
/// (`*.example.com` covers `api.example.com`, not `example.com` nor
/// `a.b.example.com`), else the first certificate, as a client without SNI or
/// asking for an unknown name gets it. Among certificates for the same name
/// (an ECDSA and an RSA one), the first the client can verify is used.
#[derive(Debug)]
pub struct SniResolver {
    certs: Vec<Arc<CertifiedKey>>,
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
}

impl SniResolver {
    pub fn new(certs: &[LoadedCert]) -> Self {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, cert) in certs.iter().enumerate() {
            for name in &cert.info.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_default().push(i),
                    None => exact.entry(name.clone()).or_default().push(i),
                }
            }
        }
        Self {
            certs: certs.iter().map(|c| c.key.clone()).collect(),
            exact,
            wildcard,
        }
    }

    /// The indexes of the certificates for `name`, best match first.
    fn candidates(&self, name: &str) -> Option<&[usize]> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(c) = self.exact.get(&name) {
            return Some(c);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(Vec::as_slice)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let usable = |i: &usize| {
            self.certs
                .get(*i)
                .filter(|c| c.key.choose_scheme(schemes).is_some())
        };
        if let Some(found) = hello
            .server_name()
            .and_then(|n| self.candidates(n))
            .and_then(|c| c.iter().find_map(usable))
        {
            return Some(found.clone());
        }
        // No name, an unknown one, or none of its certificates usable: the default.
        self.certs.first().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::tls::certs::CertInfo;

    fn resolver(names: &[&[&str]]) -> SniResolver {
        let key = rcgen_free_key();
        let certs: Vec<LoadedCert> = names
            .iter()
            .map(|n| LoadedCert {
                key: key.clone(),
                info: CertInfo {
                    names: n.iter().map(|s| (*s).to_owned()).collect(),
                    subject: String::new(),
                    not_after: 0,
                    not_before: 0,
                    sha256: String::new(),
                },
            })
            .collect();
        SniResolver::new(&certs)
    }

    /// A key is not needed to test the name lookup: any CertifiedKey will do.
    fn rcgen_free_key() -> Arc<CertifiedKey> {
        #[derive(Debug)]
        struct NoKey;
        impl rustls::sign::SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        Arc::new(CertifiedKey::new(Vec::new(), Arc::new(NoKey)))
    }

    #[test]
    fn exact_names_win_over_wildcards_and_wildcards_cover_one_label() {
        let r = resolver(&[&["api.example.com"], &["*.example.com"], &["partners.test"]]);
        assert_eq!(r.candidates("api.example.com"), Some(&[0][..]));
        assert_eq!(r.candidates("API.Example.com."), Some(&[0][..]));
        assert_eq!(r.candidates("web.example.com"), Some(&[1][..]));
        assert_eq!(r.candidates("a.web.example.com"), None);
        assert_eq!(r.candidates("example.com"), None);
        assert_eq!(r.candidates("partners.test"), Some(&[2][..]));
        assert_eq!(r.candidates("unknown.test"), None);
    }
}
