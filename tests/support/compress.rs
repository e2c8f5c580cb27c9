//! For the compression tests: decoders of the three encodings (whole, and
//! fed frame by frame), a response body the test feeds from a channel, and
//! an origin with one response per case compression must or must not
//! touch.

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use super::{full, Body, Origin};

/// The encodings this build of the proxy produces, by their
/// Content-Encoding token, in its default order.
pub fn encodings() -> Vec<&'static str> {
    let mut all = Vec::new();
    if cfg!(feature = "zstd") {
        all.push("zstd");
    }
    if cfg!(feature = "brotli") {
        all.push("br");
    }
    all.push("gzip");
    all
}

/// `data` decoded from `encoding`.
pub fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        #[cfg(feature = "brotli")]
        "br" => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
        #[cfg(feature = "zstd")]
        "zstd" => zstd::stream::read::Decoder::new(data)
            .unwrap()
            .read_to_end(&mut out),
        other => panic!("no decoder for {other:?}"),
    }
    .unwrap_or_else(|e| panic!("{encoding} does not decode: {e}"));
    out
}

/// A decoder fed as frames arrive, for streams read before they end.
pub enum Incremental {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    #[cfg(feature = "brotli")]
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

impl Incremental {
    pub fn new(encoding: &str) -> Incremental {
        match encoding {
            "gzip" => Incremental::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            #[cfg(feature = "brotli")]
            "br" => Incremental::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            #[cfg(feature = "zstd")]
            "zstd" => Incremental::Zstd(zstd::stream::write::Decoder::new(Vec::new()).unwrap()),
            other => panic!("no decoder for {other:?}"),
        }
    }

    /// Feeds `data`; returns everything decoded so far.
    pub fn push(&mut self, data: &[u8]) -> &[u8] {
        match self {
            Incremental::Gzip(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
            #[cfg(feature = "brotli")]
            Incremental::Br(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
            #[cfg(feature = "zstd")]
            Incremental::Zstd(d) => {
                d.write_all(data).unwrap();
                d.flush().unwrap();
                d.get_ref()
            }
        }
    }

    /// Forgets what was decoded so far (its length is what `push` returned).
    pub fn forget(&mut self) {
        match self {
            Incremental::Gzip(d) => d.get_mut().clear(),
            #[cfg(feature = "brotli")]
            Incremental::Br(d) => d.get_mut().clear(),
            #[cfg(feature = "zstd")]
            Incremental::Zstd(d) => d.get_mut().clear(),
        }
    }
}

/// A response body whose chunks the test sends, when it decides.
pub struct ChannelBody(pub mpsc::UnboundedReceiver<Bytes>);

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// A JSON document of about `len` bytes, compressible as real ones are.
pub fn json(len: usize) -> Bytes {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < len {
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{}\",\"active\":{},\"score\":{}}},",
            i * 7919 % 10007,
            i % 3 == 0,
            i * 31 % 997
        ));
        i += 1;
    }
    out.push_str("{}]");
    Bytes::from(out)
}

/// The body `/json` and its kin answer.
pub fn page() -> Bytes {
    json(100 * 1024)
}

/// An origin answering by path:
/// - `/json`: [`page`] as `application/json`, with a length;
/// - `/stream`: the same without a length (chunked);
/// - `/small`: 100 bytes of JSON;
/// - `/png`: [`page`] as `image/png`;
/// - `/encoded`: [`page`] with `Content-Encoding: gzip` already (not really);
/// - `/no-transform`: [`page`] with `Cache-Control: no-transform`;
/// - `/etag`: [`page`] with `ETag: "v1"` and `Vary: Origin`;
/// - `/partial`: 206 with a `Content-Range`;
/// - `/empty`: 204; `/not-modified`: 304;
/// - `/status/N`: N with [`page`] as `text/html`.
pub async fn origin() -> Origin {
    Origin::start(|req: Request<Incoming>| async move {
        let path = req.uri().path().to_string();
        let ok = |ty: &str| Response::builder().header("content-type", ty);
        match path.as_str() {
            "/json" => ok("application/json").body(full(page())).unwrap(),
            "/stream" => {
                let (tx, rx) = mpsc::unbounded_channel();
                for chunk in page().chunks(10_000) {
                    let _ = tx.send(Bytes::copy_from_slice(chunk));
                }
                drop(tx);
                ok("application/json").body(boxed(ChannelBody(rx))).unwrap()
            }
            "/small" => ok("application/json").body(full(json(100))).unwrap(),
            "/png" => ok("image/png").body(full(page())).unwrap(),
            "/encoded" => ok("application/json")
                .header("content-encoding", "gzip")
                .body(full(page()))
                .unwrap(),
            "/no-transform" => ok("application/json")
                .header("cache-control", "public, No-Transform")
                .body(full(page()))
                .unwrap(),
            "/etag" => ok("application/json")
                .header("etag", "\"v1\"")
                .header("vary", "Origin")
                .header("accept-ranges", "bytes")
                .body(full(page()))
                .unwrap(),
            "/partial" => ok("application/json")
                .status(StatusCode::PARTIAL_CONTENT)
                .header("content-range", "bytes 0-2047/102400")
                .body(full(page().slice(..2048)))
                .unwrap(),
            "/empty" => ok("application/json")
                .status(StatusCode::NO_CONTENT)
                .body(full(Bytes::new()))
                .unwrap(),
            "/not-modified" => ok("application/json")
                .status(StatusCode::NOT_MODIFIED)
                .body(full(Bytes::new()))
                .unwrap(),
            other => {
                let status = other
                    .strip_prefix("/status/")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(404);
                ok("text/html").status(status).body(full(page())).unwrap()
            }
        }
    })
    .await
}

/// A body as the harness' origins take it.
pub fn boxed(
    body: impl HttpBody<Data = Bytes, Error = Box<dyn std::error::Error + Send + Sync>> + Send + Sync + 'static,
) -> Body {
    http_body_util::BodyExt::boxed(body)
}
