//! A stream's access line, read back from the binary's stderr: one line
//! when it closes, with the client, the upstream, the bytes each way and
//! how it ended, in text and in JSON.

mod support;

use std::net::SocketAddr;

use support::process::ProxyProcess;
use support::streams::{echo, tcp, HANG};
use support::{route, within, Site};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the binary with an HTTPS route and the stream `logged` to an
/// echo, `log` in `[log]`; one exchange of five bytes through the stream.
/// The site is returned to keep its files while the binary runs.
async fn exchange(log: &str) -> (ProxyProcess, String, Site) {
    let site = Site::new();
    let upstream = tcp(echo().await);
    let config = format!(
        "{}[[stream]]\nname = \"logged\"\nlisten = \"127.0.0.1:0\"\ntls = \"none\"\nupstream = \"{upstream}\"\n\n[log]\n{log}\n",
        site.config(&route("/", "http://127.0.0.1:9", ""))
    );
    let (proxy, _) = ProxyProcess::start(site.dir.path(), &config).await;
    let listening = proxy.line_with("stream logged listening on tcp://").await;
    let addr: SocketAddr = listening
        .split("tcp://")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c == '"' || c.is_whitespace()).next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no address in {listening}"));
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    within(HANG, "the echo", client.read_exact(&mut back))
        .await
        .unwrap();
    let client_addr = client.local_addr().unwrap().to_string();
    drop(client);
    (proxy, client_addr, site)
}

#[tokio::test]
async fn a_text_line_when_the_stream_closes() {
    let (proxy, client, _site) = exchange("").await;
    let line = proxy.line_with("\"STREAM logged\"").await;
    assert!(
        line.contains(&format!("{client} \"STREAM logged\" sni=- upstream=tcp://")),
        "{line}"
    );
    assert!(line.contains(" to_upstream=5 to_client=5 "), "{line}");
    assert!(line.ends_with("ms end=closed"), "{line}");
}

#[tokio::test]
async fn a_json_line_when_the_stream_closes() {
    let (proxy, client, _site) = exchange("format = \"json\"").await;
    let line = proxy.line_with("\"stream\":\"logged\"").await;
    let record: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
    assert_eq!(record["client"], client.as_str(), "{line}");
    assert_eq!(record["sni"], serde_json::Value::Null, "{line}");
    assert_eq!(record["to_upstream"], 5, "{line}");
    assert_eq!(record["to_client"], 5, "{line}");
    assert_eq!(record["end"], "closed", "{line}");
    assert!(
        record["upstream"]
            .as_str()
            .unwrap()
            .starts_with("tcp://127.0.0.1:"),
        "{line}"
    );
}
