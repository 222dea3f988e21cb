//! The filters of one route (global filters first, then the route's own) and the
//! order of their phases: forward on the request, reverse on the response, and
//! only the filters a request has entered.
//!
//! A request enters a filter when that filter's request phase runs. When a filter
//! answers (a 401, a 429, a cache hit), the filters after it were never entered:
//! the answer passes back through the response phase of those before it and of
//! itself, and only they see the end of the exchange.

use super::{Filter, FilterError, Flow, HeaderEdit, LocalResponse};
use crate::context::RequestContext;
use crate::error::{ErrorCode, GatewayError};
use bytes::Bytes;
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct FilterChain {
    filters: Vec<Arc<dyn Filter>>,
    /// Positions of the filters with a settle phase.
    settling: Vec<usize>,
}

impl FilterChain {
    pub fn new(filters: Vec<Arc<dyn Filter>>) -> Self {
        let settling = (0..filters.len())
            .filter(|&i| filters[i].settles())
            .collect();
        Self { filters, settling }
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Runs the request phase in order until a filter answers; `entered` counts the
    /// filters whose request phase ran, the answering one included. A filter that
    /// cannot decide (and whose options did not turn that into an answer) gets
    /// a 500 `internal_error`.
    pub async fn request(
        &self,
        req: &mut dyn HeaderEdit,
        ctx: &mut RequestContext,
        entered: &mut usize,
    ) -> Option<LocalResponse> {
        for f in &self.filters {
            *entered += 1;
            if let Some(answer) = answer(f.request(req, ctx).await, ctx) {
                return Some(answer);
            }
        }
        None
    }

    /// A CORS preflight: the first filter's answer that answers preflights (None:
    /// no filter does, and the request is an ordinary `OPTIONS`).
    pub fn preflight(&self, req: &dyn HeaderEdit, ctx: &RequestContext) -> Option<LocalResponse> {
        self.filters.iter().find_map(|f| f.preflight(req, ctx))
    }

    /// The largest body some filter must see whole (the smallest of their limits);
    /// None when no filter reads the body.
    pub fn body_limit(&self) -> Option<u64> {
        self.filters.iter().filter_map(|f| f.body_limit()).min()
    }

    /// The whole body, to the filters that read it, in order: the first answer
    /// (every filter has been entered by now).
    pub async fn request_body(
        &self,
        body: &[u8],
        ctx: &mut RequestContext,
    ) -> Option<LocalResponse> {
        for f in self.filters.iter().filter(|f| f.body_limit().is_some()) {
            if let Some(answer) = answer(f.request_body(body, ctx).await, ctx) {
                return Some(answer);
            }
        }
        None
    }

    /// Whether some filter has a settle phase.
    pub fn settles(&self) -> bool {
        !self.settling.is_empty()
    }

    /// The settle phase of the entered filters that have one, in order.
    pub async fn settle(&self, ctx: &mut RequestContext, entered: usize) {
        for &i in self.settling.iter().filter(|&&i| i < entered) {
            self.filters[i].settle(ctx).await;
        }
    }

    /// The request is about to go upstream: every filter, in order (a proxied
    /// request has entered them all).
    pub fn upstream_request(&self, req: &mut dyn HeaderEdit, ctx: &RequestContext) {
        for f in &self.filters {
            f.upstream_request(req, ctx);
        }
    }

    fn entered(&self, entered: usize) -> &[Arc<dyn Filter>] {
        &self.filters[..entered.min(self.filters.len())]
    }

    /// A response head on its way out: the entered filters, last first.
    pub fn response(&self, resp: &mut dyn HeaderEdit, ctx: &mut RequestContext, entered: usize) {
        for f in self.entered(entered).iter().rev() {
            f.response(resp, ctx);
        }
    }

    /// A piece of the upstream's body: the entered filters, last first.
    pub fn response_body(
        &self,
        body: &Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
        entered: usize,
    ) {
        for f in self.entered(entered).iter().rev() {
            f.response_body(body, end_of_stream, ctx);
        }
    }

    /// The exchange is over: the entered filters, in order.
    pub fn logging(&self, ctx: &RequestContext, status: u16, entered: usize) {
        for f in self.entered(entered) {
            f.logging(ctx, status);
        }
    }
}

/// What a request or body phase decided, as an answer (None: go on). A filter that
/// could not decide gets a 500 `internal_error`.
fn answer(decided: Result<Flow, FilterError>, ctx: &RequestContext) -> Option<LocalResponse> {
    match decided {
        Ok(flow) => flow.into_answer(&ctx.request_id),
        Err(e) => {
            tracing::error!(route = ctx.route_label(), error = %e, "filter failed");
            let e = GatewayError::new(ErrorCode::InternalError, "a gateway filter failed");
            Some(e.into_response(Some(&ctx.request_id)))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Records each phase it sees in a shared journal; answers when `answer` is set.
    #[derive(Debug)]
    struct Probe {
        name: &'static str,
        answer: bool,
        journal: Arc<Mutex<Vec<String>>>,
    }

    impl Probe {
        fn note(&self, phase: &str) {
            self.journal
                .lock()
                .unwrap()
                .push(format!("{phase}:{}", self.name));
        }
    }

    #[async_trait]
    impl Filter for Probe {
        async fn request(
            &self,
            _req: &mut dyn HeaderEdit,
            _ctx: &mut RequestContext,
        ) -> Result<Flow, FilterError> {
            self.note("request");
            Ok(if self.answer {
                Flow::Reject(GatewayError::new(ErrorCode::RateLimited, "no"))
            } else {
                Flow::Continue
            })
        }
        fn response(&self, _resp: &mut dyn HeaderEdit, _ctx: &mut RequestContext) {
            self.note("response");
        }
        fn logging(&self, _ctx: &RequestContext, _status: u16) {
            self.note("logging");
        }
    }

    fn chain(answering: Option<usize>) -> (FilterChain, Arc<Mutex<Vec<String>>>) {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let filters = ["a", "b", "c"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                Arc::new(Probe {
                    name,
                    answer: answering == Some(i),
                    journal: journal.clone(),
                }) as Arc<dyn Filter>
            })
            .collect();
        (FilterChain::new(filters), journal)
    }

    async fn run(chain: &FilterChain) -> (Option<LocalResponse>, usize) {
        let mut ctx = RequestContext::new(http::Method::GET, "/".into());
        let mut headers = http::HeaderMap::new();
        let mut entered = 0;
        let answer = chain.request(&mut headers, &mut ctx, &mut entered).await;
        chain.response(&mut headers, &mut ctx, entered);
        chain.logging(&ctx, 200, entered);
        (answer, entered)
    }

    #[tokio::test]
    async fn forward_on_the_request_and_reverse_on_the_response() {
        let (chain, journal) = chain(None);
        let (answer, entered) = run(&chain).await;
        assert!(answer.is_none());
        assert_eq!(entered, 3);
        let want = [
            "request:a",
            "request:b",
            "request:c",
            "response:c",
            "response:b",
            "response:a",
            "logging:a",
            "logging:b",
            "logging:c",
        ];
        assert_eq!(*journal.lock().unwrap(), want);
    }

    #[tokio::test]
    async fn an_answer_passes_back_only_through_the_filters_entered() {
        let (chain, journal) = chain(Some(1));
        let (answer, entered) = run(&chain).await;
        assert_eq!(answer.unwrap().status, http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(entered, 2);
        let want = [
            "request:a",
            "request:b",
            "response:b",
            "response:a",
            "logging:a",
            "logging:b",
        ];
        assert_eq!(*journal.lock().unwrap(), want);
    }
}
