//! Buffering keeps memory bounded: 200 clients that read only the head of
//! a 4 MiB response hold at most `response_buffering` each, not the
//! response, and 50 uploads of 8 MiB waiting on an upstream that does not
//! read them hold at most `request_buffering` each, the rest being in
//! temporary files. A test
//! binary of its own, so that no other test's memory is counted in the
//! process's RSS (the proxy runs in this process); its two tests take turns.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Response;
use support::raw::Raw;
use support::*;
use tokio::io::AsyncReadExt;

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

/// The two tests measure one process: one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_with_200_slow_clients() {
    let _alone = ALONE.lock().await;
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

/// An origin that takes each request's head and never answers, holding
/// the connection with a small receive buffer (so the proxy cannot hand
/// the body to the kernel); counts the heads.
async fn silent_origin() -> (String, Arc<AtomicUsize>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1024).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(AtomicUsize::new(0));
    let count = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                // Holds the connection, reading nothing more.
                std::future::pending::<()>().await;
                drop(tcp);
            });
        }
    });
    (url, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_with_50_uploads_waiting_on_their_upstream() {
    // More than the kernel's socket buffers take, so that what is not in
    // a file would be in the proxy's memory.
    const UPLOAD: usize = 8 * 1024 * 1024;
    const UPLOADS: usize = 50;
    const MEMORY: usize = 64 * 1024;
    let _alone = ALONE.lock().await;
    let site = Site::new();
    let temp = site.path("spill");
    std::fs::create_dir(&temp).unwrap();
    let (url, heads) = silent_origin().await;
    let config = site.config(&format!(
        "[buffering]\ntemp_dir = \"{}\"\n{}",
        temp.display(),
        route(
            "/",
            &url,
            &format!("request_buffering = \"{}KiB\"\nkeepalive = 0", MEMORY / 1024)
        )
    ));
    let proxy = ProxyHandle::start(&config, site.dir.path()).await;
    let body = vec![3u8; UPLOAD];
    let head = format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {UPLOAD}\r\n\r\n");

    let mut first = Raw::connect(proxy.addr, &site.ca).await;
    first.send(head.as_bytes()).await;
    first.send(&body).await;
    wait_until(HANG, "the first upload to reach the origin", || {
        heads.load(Ordering::SeqCst) == 1
    })
    .await;
    let before = rss();

    let mut uploads = Vec::with_capacity(UPLOADS);
    for _ in 0..UPLOADS {
        let mut client = Raw::connect(proxy.addr, &site.ca).await;
        client.send(head.as_bytes()).await;
        client.send(&body).await;
        uploads.push(client);
    }
    // Every body is whole in the proxy, and waits on the upstream.
    wait_until(HANG, "every upload to reach the origin", || {
        heads.load(Ordering::SeqCst) == UPLOADS + 1
    })
    .await;
    let grown = rss().saturating_sub(before);
    // Each holds its memory part and what is being sent from its file;
    // the bodies in memory would be 400 MiB, less what the kernel takes.
    let bound = UPLOADS * (MEMORY + 1024 * 1024);
    assert!(
        grown < bound,
        "RSS grew by {} MiB with {UPLOADS} uploads waiting; the bound is {} MiB",
        grown >> 20,
        bound >> 20
    );
    drop((first, uploads));
}
