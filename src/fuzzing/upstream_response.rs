//! The upstream-response target: the bytes an upstream answers a request
//! with, read by the proxy's own HTTP/1.1 client (`proxy::upstream::h1`): the
//! exchange that reads the response head, then the response body to its
//! end. The input comes in as the upstream wrote it, over an in-memory
//! connection that hands it out in reads of a fixed size.
//!
//! What must hold: no panic, no interim response taken for the final one,
//! no more body than was sent, and the same outcome whatever the size of
//! the reads (all at once, one byte at a time, a few bytes at a time): the
//! same head or the same refusal, the same body bytes and trailers, the
//! same error or clean end. A parser that depended on where reads happen to
//! split the bytes could be made to see two different responses in one
//! stream.

use http::{Method, Request};
use http_body_util::BodyExt as _;
use prometheus_client::metrics::gauge::Gauge;

use super::client::ScriptedClient;
use crate::proxy::request_body::RequestBody;
use crate::proxy::upstream::h1::{self, Conn};
use crate::proxy::upstream::pool::{Limits, Pool};

/// Reads `bytes` (the first byte chooses GET or HEAD) in reads of 1, 3, 7
/// and all bytes, and checks that they all end the same way.
pub fn upstream_response(bytes: &[u8]) {
    let Some((&first, answer)) = bytes.split_first() else {
        return;
    };
    let method = if first & 1 == 1 { Method::HEAD } else { Method::GET };
    let whole = outcome(answer, usize::MAX, &method);
    for piece in [1, 3, 7] {
        let cut = outcome(answer, piece, &method);
        assert_eq!(
            cut, whole,
            "reads of {piece} bytes end differently from one read of all"
        );
    }
}

/// How one exchange ended, in terms a client or the pool would notice.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// No response head: the reason's kind.
    Refused(String),
    Answered {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        data: Vec<u8>,
        trailers: Vec<(String, Vec<u8>)>,
        /// The body ended with an error (its kind) rather than cleanly.
        failed: Option<String>,
    },
}

fn outcome(answer: &[u8], piece: usize, method: &Method) -> Outcome {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("no runtime: {e}"),
    };
    runtime.block_on(exchange(answer, piece, method))
}

async fn exchange(answer: &[u8], piece: usize, method: &Method) -> Outcome {
    // The upstream's side: the answer in reads of `piece` bytes, then the
    // end (so a connection put back finds it closed, and none is pooled).
    let (io, upstream) = ScriptedClient::in_reads_of(answer, piece);
    upstream.close();
    let mut req = Request::new(RequestBody::empty());
    *req.method_mut() = method.clone();
    *req.uri_mut() = http::Uri::from_static("/x");
    req.headers_mut()
        .insert(http::header::HOST, http::HeaderValue::from_static("upstream"));
    let exchanged = match h1::exchange(Conn::new(io), req).await {
        Ok(exchanged) => exchanged,
        Err(e) => return Outcome::Refused(kind(&e)),
    };
    let limits = Limits {
        keepalive: 64,
        idle_timeout: std::time::Duration::from_secs(60),
    };
    let pool = Pool::new(limits, Gauge::default());
    let (parts, mut body) = exchanged.into_response(pool.home()).into_parts();
    let status = parts.status.as_u16();
    assert!(
        !parts.status.is_informational() || status == 101,
        "interim response {status} handed on as the final one"
    );
    let headers = fields(&parts.headers);
    let (mut data, mut trailers, mut failed) = (Vec::new(), Vec::new(), None);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => match frame.into_data() {
                Ok(d) => data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        trailers = fields(&t);
                    }
                }
            },
            Err(e) => {
                failed = Some(kind(&e));
                break;
            }
        }
    }
    assert!(data.len() <= answer.len(), "more body than input");
    Outcome::Answered {
        status,
        headers,
        data,
        trailers,
        failed,
    }
}

fn fields(map: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

/// An error's kind: its variant, without the details that name positions.
fn kind(e: &dyn std::fmt::Debug) -> String {
    let text = format!("{e:?}");
    text.split(['(', ' ', '{']).next().unwrap_or_default().to_owned()
}
