//! Asking an OCSP responder: one HTTP/1.1 POST (RFC 6960 A.1) with
//! `Connection: close`, bounded in time and size. Responders answer a few
//! hundred bytes, so the whole exchange is read into memory.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A whole exchange, connect included, takes at most this long.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Real responses are under 4 KiB; more is not an OCSP response.
const MAX_RESPONSE: usize = 64 * 1024;

/// Posts `request` to `url` (`http://host[:port][/path]`) and returns the
/// body of a 200 answer.
pub(crate) async fn post(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    tokio::time::timeout(TIMEOUT, exchange(url, request))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

async fn exchange(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let (authority, path) = split(url)?;
    let (host, port) = host_port(authority)?;
    let mut stream = connect(host, port).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/ocsp-request\r\n\
         Accept: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        request.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(request);
    stream
        .write_all(&message)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            break;
        }
        if answer.len() + n > MAX_RESPONSE {
            return Err(format!("the answer is longer than {MAX_RESPONSE} bytes"));
        }
        answer.extend_from_slice(&chunk[..n]);
        if let Some(body) = complete(&answer)? {
            return Ok(body);
        }
    }
    complete_at_eof(&answer)
}

fn split(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let clean = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !clean(authority) || !clean(path) || authority.contains('@') {
        return Err(format!("{url:?} is not a usable responder URL"));
    }
    Ok((authority, path))
}

fn host_port(authority: &str) -> Result<(&str, u16), String> {
    let bad = || format!("{authority:?} is not host[:port]");
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']').ok_or_else(bad)?;
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad())?,
            None if rest.is_empty() => 80,
            None => return Err(bad()),
        };
        return Ok((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((host, port.parse().map_err(|_| bad())?)),
        None => Ok((authority, 80)),
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?;
    let mut last = format!("{host} resolved to no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    Err(last)
}

/// The body once the head and `Content-Length` bytes have arrived.
fn complete(answer: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("the answer is not HTTP: {e}")),
    };
    let status = response.code.unwrap_or(0);
    if status != 200 {
        return Err(format!("the responder answered HTTP {status}"));
    }
    let mut length = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err("the responder answered with a chunked body".into());
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).unwrap_or("");
            length = Some(text.trim().parse::<usize>().map_err(|_| "a bad Content-Length")?);
        }
    }
    let body = &answer[head_len..];
    match length {
        Some(n) if body.len() >= n => Ok(Some(body[..n].to_vec())),
        _ => Ok(None),
    }
}

/// The body of an answer without `Content-Length`, which ends at close.
fn complete_at_eof(answer: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => {
            let has_length = response
                .headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("content-length"));
            if has_length {
                Err("the responder closed before the whole body came".into())
            } else {
                Ok(answer[n..].to_vec())
            }
        }
        Ok(httparse::Status::Partial) => Err("the responder closed before the whole answer came".into()),
        Err(e) => Err(format!("the answer is not HTTP: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(split("http://ocsp.ca.test").unwrap(), ("ocsp.ca.test", "/"));
        assert_eq!(
            split("HTTP://ocsp.ca.test:8080/a/b").unwrap(),
            ("ocsp.ca.test:8080", "/a/b")
        );
        assert_eq!(host_port("ocsp.ca.test:8080").unwrap(), ("ocsp.ca.test", 8080));
        assert_eq!(host_port("[::1]:81").unwrap(), ("::1", 81));
        assert_eq!(host_port("[::1]").unwrap(), ("::1", 80));
        for bad in [
            "https://x/",
            "http://",
            "http://a b/",
            "http://u@host/",
            "http://x:y/",
        ] {
            assert!(split(bad).and_then(|(a, _)| host_port(a)).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(complete(ok).unwrap().unwrap(), b"abc");
        assert_eq!(
            complete(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab").unwrap(),
            None
        );
        assert!(complete(b"HTTP/1.1 500 Oops\r\n\r\n").is_err());
        assert!(complete(b"\x16\x03\x01garbage\r\n\r\n").is_err());
        assert_eq!(complete_at_eof(b"HTTP/1.0 200 OK\r\n\r\nxyz").unwrap(), b"xyz");
        assert!(complete_at_eof(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nxyz").is_err());
        assert!(complete_at_eof(b"HTTP/1.1 200").is_err());
    }

    /// A responder that answers too much, or garbage, or nothing whole.
    #[tokio::test]
    async fn lying_responders_get_errors() {
        let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        big.resize(big.len() + 100_000, b'x');
        let answers: [(&[u8], &str); 3] = [
            (&big, "longer than"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                "before the whole body",
            ),
        ];
        for (answer, expected) in answers {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/", listener.local_addr().unwrap());
            let serve = async {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(answer).await;
            };
            let (outcome, ()) = tokio::join!(post(&url, b"request"), serve);
            let error = outcome.expect_err("a lying responder's answer is refused");
            assert!(error.contains(expected), "{error}");
        }
    }
}
