//! `GET /diag/stream?size=N` (or `POST`, body ignored): a large answer of `N` bytes
//! made on the fly, for gateway tests of slow readers and of answers too large to
//! keep (an idempotent POST). The body is produced piece by piece as the
//! connection takes it (nothing is held in memory), so a client that stops reading
//! keeps this response in flight, which `/_mock/stats` shows as `in_flight`.
//! Not under `/_mock/`, so it counts as a request.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body::{Frame, SizeHint};
use serde::Deserialize;

/// Largest `size` honoured: far more than any socket buffers, and still bounded.
pub const MAX_SIZE: u64 = 1024 * 1024 * 1024;

/// Bytes per body frame. Small frames keep the server from buffering far ahead of
/// what the peer has taken.
const PIECE: usize = 16 * 1024;

static FILL: [u8; PIECE] = [b'x'; PIECE];

#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    size: Option<u64>,
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/diag/stream", get(stream).post(stream_post))
}

async fn stream(Query(q): Query<StreamQuery>) -> Response {
    let size = q.size.unwrap_or(0).min(MAX_SIZE);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::new(Filler { left: size }),
    )
        .into_response()
}

/// The POST form reads the request body first: a server that closes a connection
/// with unread bytes in it resets it, and the client loses the end of the answer.
async fn stream_post(q: Query<StreamQuery>, _body: axum::body::Bytes) -> Response {
    stream(q).await
}

/// `left` bytes of `x`, one frame of at most [`PIECE`] bytes per poll.
struct Filler {
    left: u64,
}

impl HttpBody for Filler {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = usize::try_from(self.left).map_or(PIECE, |left| left.min(PIECE));
        self.left -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n])))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_exact_and_capped() {
        let f = Filler { left: 40_000 };
        assert_eq!(f.size_hint().exact(), Some(40_000));
        assert!(!f.is_end_stream());
        assert!(Filler { left: 0 }.is_end_stream());
    }
}
