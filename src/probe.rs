//! `portcullis probe [URL]`: the container image's health check.
//!
//! The final image is distroless: no shell, no curl, no wget. Docker's
//! HEALTHCHECK (and a compose `healthcheck:`) runs a program inside the
//! container, so the binary does it itself: a plain-HTTP GET to the admin
//! listener on loopback (`http://127.0.0.1:9901/healthz` unless a URL is
//! given) that exits 0 on a 2xx status and 1 on anything else (refused,
//! timed out, another status, a malformed answer). It reads no
//! configuration. A command of the binary rather than a program of its
//! own, so that the image carries one binary.
//!
//! Kubernetes does not use it: the kubelet's own httpGet probes do the
//! checking there.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_URL: &str = "http://127.0.0.1:9901/healthz";
const TIMEOUT: Duration = Duration::from_secs(3);

/// `portcullis probe [URL]`.
pub(crate) fn run(url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| DEFAULT_URL.to_owned());
    match probe(&url) {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("portcullis probe: {url}: status {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("portcullis probe: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Splits `http://host:port/path` into the authority and the path.
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are probed (the admin listener is plain HTTP)".to_owned())?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

fn probe(url: &str) -> Result<u16, String> {
    let (authority, path) = split_url(url)?;
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: portcullis-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;

    // Only the status line matters: read until its end, at most 1 KiB.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 128];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status(&head)
}

/// The status code of `HTTP/1.x NNN reason`.
fn parse_status(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") && code.len() == 3 => code
            .parse()
            .map_err(|_| format!("malformed status line {:?}", line.trim_end())),
        _ => Err(format!("malformed status line {:?}", line.trim_end())),
    }
}
