//! `response_buffering` keeps memory bounded: 200 clients that read only
//! the head of a 4 MiB response hold at most the buffer size each, not the
//! response. A test binary of its own, so that no other test's memory is
//! counted in the process's RSS (the proxy runs in this process).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::Response;
use support::raw::Raw;
use support::*;

const HANG: Duration = Duration::from_secs(30);
const CLIENTS: usize = 200;
const RESPONSE: usize = 4 * 1024 * 1024;
const BUFFER: usize = 256 * 1024;

/// This process's resident set, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_with_200_slow_clients() {
    let site = Site::new();
    // One body shared by every answer: the origin holds no copy per request.
    let big = Bytes::from(vec![7u8; RESPONSE]);
    let origin = Origin::start(move |_req| {
        let big = big.clone();
        async move { Response::new(full(big)) }
    })
    .await;
    let config = site.config(&route(
        "/",
        &origin.url(),
        &format!("response_buffering = \"{}KiB\"\nkeepalive = 0", BUFFER / 1024),
    ));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;

    // One whole exchange first, so that what every connection shares
    // (TLS state, the runtime's buffers) is in the baseline.
    let mut first = Raw::connect(proxy.addr, &site.ca).await;
    first.get("/").await;
    let whole = within(HANG, "a whole answer", first.read_response())
        .await
        .unwrap();
    assert_eq!(whole.body.len(), RESPONSE);
    drop(first);
    let before = rss();

    let mut slow = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let mut client = Raw::connect_with_receive_buffer(proxy.addr, &site.ca, 16 * 1024).await;
        client.get("/").await;
        let (head, _) = within(HANG, "a head", client.read_head()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        slow.push(client);
    }
    let grown = rss().saturating_sub(before);
    // Each slow response holds its buffer, what the upstream read that
    // filled it (up to 256 KiB more), and a few TLS and socket buffers;
    // a whole response each would be 800 MiB.
    let bound = CLIENTS * (BUFFER + 768 * 1024);
    assert!(
        grown < bound,
        "RSS grew by {} MiB with {CLIENTS} slow clients; the bound is {} MiB",
        grown >> 20,
        bound >> 20
    );
    drop(slow);
}
