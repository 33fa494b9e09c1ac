//! The HTTP/1.1 demo router, shared by `examples/http.rs` and the kernel-peer
//! HTTP test: `GET /` greets, `GET /bytes/N` streams N pattern bytes,
//! `POST /echo` returns the request body.

use super::pattern;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Body type of every response.
pub type RespBody = BoxBody<Bytes, hyper::Error>;

/// The greeting `GET /` returns.
pub const GREETING: &str = "hello from utcp, a user-space TCP/IP stack\n";

/// Largest N accepted by `GET /bytes/N`.
pub const MAX_BYTES: u64 = 1 << 32;

/// A streaming body of `len` bytes of [`pattern`] data.
pub struct PatternBody {
    offset: u64,
    len: u64,
}

impl PatternBody {
    pub fn new(len: u64) -> Self {
        PatternBody { offset: 0, len }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let left = self.len - self.offset;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(64 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        pattern::fill(self.offset, &mut chunk);
        self.offset += n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.offset)
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<RespBody> {
    let body = Full::new(body.into()).map_err(|never: Infallible| match never {});
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.boxed())
        .expect("static response parts are valid")
}

/// Routes one request. Never fails: errors become 4xx responses.
pub async fn route(req: Request<Incoming>) -> Result<Response<RespBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match (req.method(), path.as_str()) {
        (&Method::GET, "/") => full(StatusCode::OK, GREETING),
        (&Method::GET, p) if p.starts_with("/bytes/") => {
            match p["/bytes/".len()..].parse::<u64>() {
                Ok(n) if n <= MAX_BYTES => Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/octet-stream")
                    .body(PatternBody::new(n).boxed())
                    .expect("static response parts are valid"),
                _ => full(StatusCode::BAD_REQUEST, "bad byte count\n"),
            }
        }
        (&Method::POST, "/echo") => match req.into_body().collect().await {
            Ok(body) => full(StatusCode::OK, body.to_bytes()),
            Err(e) => full(StatusCode::BAD_REQUEST, format!("reading body: {e}\n")),
        },
        (_, "/" | "/echo") => full(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => full(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

/// Serves HTTP/1.1 on one accepted connection until the peer closes it.
pub async fn serve_connection<S>(stream: S) -> Result<(), hyper::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    hyper::server::conn::http1::Builder::new()
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper::service::service_fn(route),
        )
        .await
}
