//! `loadgen open`: load at a fixed arrival rate (open loop), for the
//! tail-latency scenarios of benches/vs-peers.
//!
//! A closed loop (wrk, `loadgen ws`) sends the next request when the last
//! answer came back, so a slow answer delays the requests behind it and
//! they are never counted late: coordinated omission. Here a pacer thread
//! schedules request i at `t0 + i / rate` whatever happened before, and each
//! latency runs from that scheduled time to the end of the answer, so a
//! request that waited behind a slow one carries the wait.
//!
//! - `--kind h1`: HTTPS/1.1 keep-alive GETs over `--connections` connections
//!   opened before the clock starts; the schedule goes round robin over them
//!   (request i on connection i mod N, as wrk2 does), one request in flight
//!   on each, the others queued behind it.
//! - `--kind hs`: a new TCP and TLS connection per request (full handshake,
//!   resumption disabled), at most `--connections` in progress at once.
//! - `--kind ws`: WebSocket echo round trips over `--connections`
//!   WebSockets, scheduled round robin as h1.
//!
//! Reported: p50, p99, p99.9 and the largest latency of the answered
//! requests; `late`, those sent more than `--late-ms` after their time (the
//! connection was still busy, or the client fell behind); `unsent`, those
//! still waiting when the run ended (`--grace` seconds after the last one
//! was due); `errors`. The pacer wakes at most every 250 µs and releases
//! what is due, so a request leaves up to that late, the same for every
//! server.
//!
//! `--closed` (h1, ws) drops the schedule: each connection sends its next
//! request when the last answer is in, for `--duration`. Its rate is what
//! this client can drive a server to, which the fixed rates are shares of.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use rustls::HandshakeKind;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use crate::{
    client_config, connect, echo_alpn, json_str, one_request, read_response, BoxError, Common, EchoConn,
    Latencies,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Kind {
    H1,
    Hs,
    Ws,
}

#[derive(Args)]
pub(crate) struct OpenArgs {
    #[command(flatten)]
    common: Common,
    /// What one request is.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Requests per second, in all.
    #[arg(long)]
    rate: f64,
    /// Seconds of schedule.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Connections (h1, ws), or the most handshakes in progress at once (hs).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Request path (h1, hs).
    #[arg(long, default_value = "/bytes/1024")]
    path: String,
    /// WebSocket path (ws).
    #[arg(long, default_value = "/ws")]
    ws_path: String,
    /// WebSocket message size in bytes (ws).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// A request sent more than this many milliseconds after its time is late.
    #[arg(long, default_value_t = 1.0)]
    late_ms: f64,
    /// Seconds after the last scheduled time for the answers to come back;
    /// requests not sent by then are counted unsent.
    #[arg(long, default_value_t = 2.0)]
    grace: f64,
    /// No schedule (h1, ws): each connection sends its next request when
    /// the last answer is in, for `--duration`; `--rate` is ignored. What
    /// this client can drive a server to, which sizes the fixed rates.
    #[arg(long)]
    closed: bool,
}

impl OpenArgs {
    pub(crate) fn threads(&self) -> usize {
        self.common.threads
    }
}

/// What the workers found, merged at the end.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    late: u64,
    unsent: u64,
    not_full: u64,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, e: impl ToString) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

struct Shared {
    tally: Mutex<(Tally, Latencies)>,
    late: Duration,
    /// Past this, a request still waiting is not sent.
    stop: Instant,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Tally, &mut Latencies) -> R) -> R {
        let mut g = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let (t, l) = &mut *g;
        f(t, l)
    }

    /// Whether the request scheduled at `at` may still go; counts it late
    /// or unsent as it is.
    fn may_send(&self, at: Instant) -> bool {
        let now = Instant::now();
        if now > self.stop {
            self.with(|t, _| t.unsent += 1);
            return false;
        }
        if now.saturating_duration_since(at) > self.late {
            self.with(|t, _| t.late += 1);
        }
        true
    }

    fn answered(&self, at: Instant) {
        let d = at.elapsed();
        self.with(|t, l| {
            t.ok += 1;
            l.push(d);
        });
    }
}

/// The pacer's shortest sleep: requests are released up to this late.
const QUANTUM: Duration = Duration::from_micros(250);

/// Sends scheduled times to `lanes` round robin, from a thread of its own,
/// until `total` were sent; then drops the senders.
fn pace(lanes: Vec<mpsc::UnboundedSender<Instant>>, t0: Instant, rate: f64, total: u64) {
    std::thread::spawn(move || {
        let step = 1.0 / rate;
        let mut i = 0u64;
        while i < total {
            let now = Instant::now();
            let mut due = t0 + Duration::from_secs_f64(i as f64 * step);
            while due <= now && i < total {
                // A lane whose worker ended takes nothing more.
                let _ = lanes[(i % lanes.len() as u64) as usize].send(due);
                i += 1;
                due = t0 + Duration::from_secs_f64(i as f64 * step);
            }
            if i < total {
                // At most one wake-up per QUANTUM: each wakes the runtime's
                // thread too, and at tens of thousands a second those
                // switches would cost the client more than the requests.
                let wake = due.max(now + QUANTUM);
                std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            }
        }
    });
}

pub(crate) async fn open(args: OpenArgs) -> Result<String, BoxError> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(args.rate) || !positive(args.duration) {
        return Err("--rate and --duration must be positive".into());
    }
    let common = args.common.clone();
    let alpn: &[&[u8]] = match args.kind {
        Kind::Ws => echo_alpn(false),
        _ => &[b"http/1.1"],
    };
    let connector = TlsConnector::from(client_config(&common, alpn, false)?);
    let conns = args.connections.max(1);
    let total = (args.rate * args.duration).round().max(1.0) as u64;
    let lanes = if args.kind == Kind::Hs { 1 } else { conns };
    let host = common.host.clone();
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadgen\r\n{}\r\n",
            args.path,
            if args.kind == Kind::Hs {
                "Connection: close\r\n"
            } else {
                ""
            }
        )
        .into_bytes(),
    );
    // The keep-alive connections are open before the clock starts.
    let mut opened = Vec::new();
    if args.kind != Kind::Hs {
        for _ in 0..conns {
            let c = tokio::time::timeout(Duration::from_secs(30), async {
                match args.kind {
                    Kind::Ws => Ok::<_, BoxError>(Conn::Ws(
                        EchoConn::open(&connector, &common, &args.ws_path, false).await?,
                    )),
                    _ => Ok(Conn::H1(Box::new(connect(&connector, &common).await?))),
                }
            })
            .await
            .map_err(|_| "opening a connection took over 30 s")??;
            opened.push(c);
        }
    }
    let t0 = Instant::now() + Duration::from_millis(20);
    let schedule = Duration::from_secs_f64(args.duration);
    let shared = Arc::new(Shared {
        tally: Mutex::new((Tally::default(), Latencies::new())),
        late: Duration::from_secs_f64(args.late_ms / 1e3),
        stop: t0 + schedule + Duration::from_secs_f64(args.grace),
    });
    let mut senders = Vec::with_capacity(lanes);
    let mut receivers = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        receivers.push(rx);
    }
    if args.closed && args.kind == Kind::Hs {
        return Err("--closed is for h1 and ws (hs measures its maximum with `loadgen hs`)".into());
    }
    if !args.closed {
        pace(senders, t0, args.rate, total);
    }
    let mut tasks = Vec::new();
    if args.kind == Kind::Hs {
        let rx = receivers.pop().ok_or("no lane")?;
        tasks.push(tokio::spawn(handshakes(
            rx,
            connector.clone(),
            common.clone(),
            request.clone(),
            conns,
            shared.clone(),
        )));
    } else {
        let payload = bytes::Bytes::from(vec![0x5au8; args.size]);
        for (conn, rx) in opened.into_iter().zip(receivers) {
            let feed = if args.closed {
                Feed::Closed(t0 + schedule)
            } else {
                Feed::Paced(rx)
            };
            tasks.push(tokio::spawn(keep_alive(
                conn,
                feed,
                request.clone(),
                payload.clone(),
                shared.clone(),
            )));
        }
    }
    for t in tasks {
        t.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (tally, mut lat) = {
        let mut g = shared.tally.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, (Tally::default(), Latencies::new()))
    };
    let kind = match args.kind {
        Kind::H1 => "h1",
        Kind::Hs => "hs",
        Kind::Ws => "ws",
    };
    let scheduled = if args.closed { tally.ok } else { total };
    eprintln!(
        "loadgen open {kind}: {scheduled} {} at {:.0}/s over {:.2}s on {conns} connections: {} \
         answered, {} late (> {} ms), {} unsent, {} errors{}",
        if args.closed {
            "in a closed loop"
        } else {
            "scheduled"
        },
        args.rate,
        args.duration,
        tally.ok,
        tally.late,
        args.late_ms,
        tally.unsent,
        tally.errors,
        tally
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    if tally.not_full > 0 {
        return Err(format!("{} handshakes were not full", tally.not_full).into());
    }
    Ok(format!(
        "{{\"mode\":\"open\",\"kind\":\"{kind}\",\"target_rate\":{:.2},\"scheduled\":{scheduled},\"closed\":{},\
         \"ok\":{},\"errors\":{},\"late\":{},\"unsent\":{},\"seconds\":{secs:.4},\"rate\":{:.2},\
         \"schedule_seconds\":{:.4},\"p50_us\":{:.0},\"p99_us\":{:.0},\"p999_us\":{:.0},\
         \"max_us\":{:.0},\"first_error\":{}}}",
        args.rate,
        args.closed,
        tally.ok,
        tally.errors,
        tally.late,
        tally.unsent,
        tally.ok as f64 / args.duration,
        args.duration,
        lat.percentile(50.0),
        lat.percentile(99.0),
        lat.percentile(99.9),
        lat.percentile(100.0),
        json_str(tally.first_error.as_deref())
    ))
}

enum Conn {
    H1(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Ws(EchoConn),
}

/// Where a connection's next request time comes from: the pacer, or (a
/// closed loop) now, until the given end.
enum Feed {
    Paced(mpsc::UnboundedReceiver<Instant>),
    Closed(Instant),
}

impl Feed {
    async fn next(&mut self) -> Option<Instant> {
        match self {
            Feed::Paced(rx) => rx.recv().await,
            Feed::Closed(end) => {
                let now = Instant::now();
                (now < *end).then_some(now)
            }
        }
    }
}

/// One keep-alive connection's requests, one at a time, in schedule order.
async fn keep_alive(
    mut conn: Conn,
    mut feed: Feed,
    request: Arc<Vec<u8>>,
    payload: bytes::Bytes,
    shared: Arc<Shared>,
) {
    let mut buf = Vec::with_capacity(4096);
    let mut broken = false;
    while let Some(at) = feed.next().await {
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        if broken && matches!(feed, Feed::Closed(_)) {
            break;
        }
        if broken || !shared.may_send(at) {
            if broken {
                shared.with(|t, _| t.unsent += 1);
            }
            continue;
        }
        let budget = shared.stop.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
        let round = tokio::time::timeout(budget, async {
            match &mut conn {
                Conn::H1(tls) => {
                    tls.write_all(&request).await?;
                    tls.flush().await?;
                    buf.clear();
                    if read_response(tls, &mut buf).await? {
                        Ok(())
                    } else {
                        Err::<(), BoxError>("the connection closed before the answer ended".into())
                    }
                }
                Conn::Ws(ws) => ws.echo(&payload).await,
            }
        })
        .await;
        match round {
            Ok(Ok(())) => shared.answered(at),
            Ok(Err(e)) => {
                shared.with(|t, _| t.error(e));
                broken = true;
            }
            Err(_) => {
                shared.with(|t, _| t.error("no answer in time"));
                broken = true;
            }
        }
    }
    if let Conn::Ws(ws) = conn {
        ws.close().await;
    }
}

/// A new connection per scheduled time, at most `most` at once; a request
/// waiting for a free place is late like one waiting for its connection.
async fn handshakes(
    mut rx: mpsc::UnboundedReceiver<Instant>,
    connector: TlsConnector,
    common: Common,
    request: Arc<Vec<u8>>,
    most: usize,
    shared: Arc<Shared>,
) {
    let places = Arc::new(tokio::sync::Semaphore::new(most));
    while let Some(at) = rx.recv().await {
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        let Ok(place) = places.clone().acquire_owned().await else {
            break;
        };
        if !shared.may_send(at) {
            continue;
        }
        let (connector, common, request, shared) =
            (connector.clone(), common.clone(), request.clone(), shared.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(2048);
            let budget = shared.stop.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
            match tokio::time::timeout(budget, one_request(&connector, &common, &request, &mut buf)).await {
                Ok(Ok(kind)) => {
                    shared.answered(at);
                    if kind != Some(HandshakeKind::Full) {
                        shared.with(|t, _| t.not_full += 1);
                    }
                }
                Ok(Err(e)) => shared.with(|t, _| t.error(e)),
                Err(_) => shared.with(|t, _| t.error("no answer in time")),
            }
            drop(place);
        });
    }
    // Every place back: every connection done.
    let _ = places.acquire_many(most as u32).await;
}
