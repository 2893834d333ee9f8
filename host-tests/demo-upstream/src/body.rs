//! Response bodies: one boxed type for everything, plus a body that ends with trailers
//! (needed for gRPC-style `grpc-status`). `Full::with_trailers` is not enough because its
//! exact size hint makes HTTP/1 use `content-length`, which cannot carry trailers.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Bytes, Frame};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::http::HeaderMap;
use hyper::{Response, StatusCode};

/// The body type of every response.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// A response with a fixed body and content type.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: Body,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn text(status: StatusCode, msg: impl Into<String>) -> Response<Body> {
    let mut msg = msg.into();
    msg.push('\n');
    respond(status, "text/plain; charset=utf-8", full(msg))
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => respond(status, "application/json", full(bytes)),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("demo-upstream: cannot encode JSON: {e}"),
        ),
    }
}

/// Optional data, then trailers; size unknown so HTTP/1 uses chunked encoding.
#[derive(Debug)]
pub(crate) struct WithTrailers {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl WithTrailers {
    pub(crate) fn boxed(data: Bytes, trailers: HeaderMap) -> Body {
        WithTrailers {
            data: (!data.is_empty()).then_some(data),
            trailers: Some(trailers),
        }
        .boxed()
    }
}

impl HttpBody for WithTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}
