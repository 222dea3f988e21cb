//! `mtls`: a route only for clients that presented a certificate the listener
//! verified (`tls.client_auth` on a TLS listener) and that certificate names a
//! consumer (`consumers[].client_cert`). The upstream then receives the consumer
//! as the `jwt` filter sends it: `X-Consumer-Id` and `X-Consumer-Scopes`.
//!
//! No certificate: 403 `client_certificate_required`. A verified certificate that
//! names no (enabled) consumer: 403 `unknown_client_certificate`.

use super::{Filter, FilterError, Flow, HeaderEdit, CONSUMER_ID, CONSUMER_SCOPES};
use crate::auth::consumers::{ClientCertMatch, Consumer};
use crate::context::RequestContext;
use crate::edge::tls::client_cert::{ClientCertificate, DistinguishedName};
use crate::error::{ErrorCode, GatewayError};
use async_trait::async_trait;
use http::HeaderValue;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// `- mtls: {}`: no options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MtlsOptions {}

/// The consumers known by a client certificate, by subject and by SAN.
#[derive(Debug, Default)]
pub struct ClientCertIndex {
    by_subject: HashMap<DistinguishedName, Arc<Caller>>,
    /// Lower case: DNS names compare without case.
    by_san: HashMap<String, Arc<Caller>>,
}

/// A consumer as the upstream is told about it.
#[derive(Debug)]
struct Caller {
    username: String,
    id: HeaderValue,
    scopes: HeaderValue,
}

impl ClientCertIndex {
    /// Indexes the enabled consumers that have a `client_cert`.
    pub fn new(consumers: &[Consumer]) -> Self {
        let mut index = Self::default();
        for c in consumers.iter().filter(|c| !c.disabled) {
            let Some(m) = &c.client_cert else { continue };
            // Usernames and scopes were validated as header-safe.
            let (Ok(id), Ok(scopes)) = (
                HeaderValue::from_str(&c.username),
                HeaderValue::from_str(&c.scopes.join(" ")),
            ) else {
                continue;
            };
            let caller = Arc::new(Caller {
                username: c.username.clone(),
                id,
                scopes,
            });
            match m {
                ClientCertMatch::Subject(dn) => {
                    index.by_subject.insert(dn.clone(), caller);
                }
                ClientCertMatch::San(name) => {
                    index.by_san.insert(name.to_ascii_lowercase(), caller);
                }
            }
        }
        index
    }

    fn find(&self, cert: &ClientCertificate) -> Option<&Arc<Caller>> {
        self.by_subject.get(&cert.subject).or_else(|| {
            cert.sans
                .iter()
                .find_map(|s| self.by_san.get(&s.to_ascii_lowercase()))
        })
    }
}

#[derive(Debug)]
pub struct MtlsFilter {
    index: Arc<ClientCertIndex>,
}

impl MtlsFilter {
    pub fn new(index: Arc<ClientCertIndex>) -> Self {
        Self { index }
    }
}

/// The caller this filter recognised, kept for the upstream-request phase.
#[derive(Debug, Clone)]
struct Recognised(Arc<Caller>);

#[async_trait]
impl Filter for MtlsFilter {
    async fn request(
        &self,
        _req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
    ) -> Result<Flow, FilterError> {
        let Some(cert) = ctx.extensions.get::<Arc<ClientCertificate>>() else {
            return Ok(Flow::Reject(GatewayError::new(
                ErrorCode::ClientCertificateRequired,
                "this route needs a client certificate (mutual TLS)",
            )));
        };
        let Some(caller) = self.index.find(cert).cloned() else {
            tracing::info!(
                request_id = %ctx.request_id,
                subject = %cert.subject,
                "client certificate names no consumer"
            );
            return Ok(Flow::Reject(GatewayError::new(
                ErrorCode::UnknownClientCertificate,
                "the client certificate is not registered to a consumer",
            )));
        };
        ctx.consumer = Some(caller.username.clone());
        ctx.extensions.insert(Recognised(caller));
        Ok(Flow::Continue)
    }

    fn upstream_request(&self, req: &mut dyn HeaderEdit, ctx: &RequestContext) {
        if let Some(Recognised(caller)) = ctx.extensions.get::<Recognised>() {
            req.set_static(CONSUMER_ID, caller.id.clone());
            req.set_static(CONSUMER_SCOPES, caller.scopes.clone());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn consumer(name: &str, cert: ClientCertMatch, disabled: bool) -> Consumer {
        Consumer {
            username: name.into(),
            password_hash: None,
            client_cert: Some(cert),
            scopes: vec!["payments:write".into()],
            disabled,
        }
    }

    fn cert(subject: &str, sans: &[&str]) -> ClientCertificate {
        ClientCertificate {
            subject: DistinguishedName::parse(subject).unwrap(),
            sans: sans.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    async fn run(f: &MtlsFilter, cert: Option<ClientCertificate>) -> (Flow, RequestContext) {
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        if let Some(c) = cert {
            ctx.extensions.insert(Arc::new(c));
        }
        let mut headers = http::HeaderMap::new();
        let flow = f.request(&mut headers, &mut ctx).await.unwrap();
        (flow, ctx)
    }

    fn code(flow: &Flow) -> Option<ErrorCode> {
        match flow {
            Flow::Reject(e) => Some(e.code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_certificate_is_mapped_to_its_consumer_by_subject_or_san() {
        let index = ClientCertIndex::new(&[
            consumer(
                "partner-bank",
                ClientCertMatch::Subject(DistinguishedName::parse("CN=partner-bank").unwrap()),
                false,
            ),
            consumer(
                "ledger-sync",
                ClientCertMatch::San("Sync.Partner.Example".into()),
                false,
            ),
            consumer("gone", ClientCertMatch::San("gone.example".into()), true),
        ]);
        let f = MtlsFilter::new(Arc::new(index));

        let (flow, ctx) = run(&f, Some(cert("CN=partner-bank", &[]))).await;
        assert!(matches!(flow, Flow::Continue));
        assert_eq!(ctx.consumer.as_deref(), Some("partner-bank"));
        let mut upstream = http::HeaderMap::new();
        f.upstream_request(&mut upstream, &ctx);
        assert_eq!(upstream["x-consumer-id"], "partner-bank");
        assert_eq!(upstream["x-consumer-scopes"], "payments:write");

        let (flow, ctx) = run(&f, Some(cert("CN=whatever", &["sync.partner.example"]))).await;
        assert!(matches!(flow, Flow::Continue));
        assert_eq!(ctx.consumer.as_deref(), Some("ledger-sync"));

        let (flow, _) = run(&f, Some(cert("CN=stranger", &["x.example"]))).await;
        assert_eq!(code(&flow), Some(ErrorCode::UnknownClientCertificate));
        let (flow, _) = run(&f, Some(cert("CN=gone", &["gone.example"]))).await;
        assert_eq!(
            code(&flow),
            Some(ErrorCode::UnknownClientCertificate),
            "a disabled consumer is not recognised"
        );
        let (flow, _) = run(&f, None).await;
        assert_eq!(code(&flow), Some(ErrorCode::ClientCertificateRequired));
    }
}
