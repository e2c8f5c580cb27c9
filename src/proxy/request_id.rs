//! Request IDs and W3C trace context.
//!
//! Every request gets an `X-Request-Id`: the one a `trusted_proxies` peer
//! sent (a load balancer that already named the request), else 16 random
//! bytes in hex, replacing whatever an untrusted client wrote. It goes
//! upstream, into the access log and `{request_id}`, and back to the
//! client with `[server] echo_request_id`. With `[server] trace_context`,
//! a request without a valid `traceparent` gets one that starts a trace
//! (its trace-id is the request ID when that is one); a valid one is
//! always passed through untouched.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::client_addr::ClientAddr;
use super::{ConnInfo, Shared};
use crate::config::ServerConfig;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `[server] echo_request_id` and `trace_context`.
#[derive(Debug, Default)]
pub struct RequestIds {
    pub echo: bool,
    trace_context: bool,
}

impl RequestIds {
    pub fn new(server: &ServerConfig) -> Self {
        RequestIds {
            echo: server.echo_request_id,
            trace_context: server.trace_context,
        }
    }

    /// The request's ID, set in `headers` for the upstream: kept from a
    /// `trusted` peer that sent a usable one, else generated. Starts a
    /// trace when asked to and none came.
    pub fn assign(&self, trusted: bool, headers: &mut HeaderMap) -> HeaderValue {
        let sent = if trusted {
            let mut values = headers.get_all(&X_REQUEST_ID).iter();
            match (values.next(), values.next()) {
                (Some(v), None) if usable(v) => Some(v.clone()),
                _ => None,
            }
        } else {
            None
        };
        let id = match sent {
            Some(id) => id,
            None => {
                let id = generate();
                headers.insert(X_REQUEST_ID.clone(), id.clone());
                id
            }
        };
        if self.trace_context {
            let mut values = headers.get_all(&TRACEPARENT).iter();
            let valid =
                matches!((values.next(), values.next()), (Some(v), None) if valid_traceparent(v.as_bytes()));
            if !valid {
                headers.insert(TRACEPARENT.clone(), start_trace(&id));
            }
        }
        id
    }
}

/// A sent ID worth keeping: 1 to 200 visible ASCII characters, so a log
/// line stays one line and a bounded length.
fn usable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 200 && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// 16 random bytes as 32 lowercase hex digits.
///
/// An ID must be unique, not secret: it is sent upstream, logged and may
/// be echoed to the client. So the bytes come from a per-thread
/// xoshiro256** generator seeded from the system's generator once, not
/// from a cryptographic generator at every request.
fn generate() -> HeaderValue {
    let (a, b) = IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        (ids.next(), ids.next())
    });
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    hex_value(&bytes)
}

thread_local! {
    static IDS: std::cell::RefCell<Xoshiro> = std::cell::RefCell::new(Xoshiro::seeded());
}

/// xoshiro256** (Blackman and Vigna): fast, with a period of 2^256 - 1.
struct Xoshiro([u64; 4]);

impl Xoshiro {
    fn seeded() -> Self {
        let mut seed = [0u8; 32];
        // The system generator failing is no reason to fail a request;
        // the clock and the thread then keep the IDs apart.
        if aws_lc_rs::rand::fill(&mut seed).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed[..16].copy_from_slice(&now.to_be_bytes());
            let thread = format!("{:?}", std::thread::current().id());
            for (i, b) in thread.bytes().enumerate() {
                seed[16 + i % 16] ^= b;
            }
        }
        let mut state = [0u64; 4];
        for (word, chunk) in state.iter_mut().zip(seed.chunks_exact(8)) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            *word = u64::from_le_bytes(bytes);
        }
        // An all-zero state would stay zero.
        if state == [0; 4] {
            state[0] = 0x9e37_79b9_7f4a_7c15;
        }
        Xoshiro(state)
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

fn hex_value(bytes: &[u8]) -> HeaderValue {
    let mut text = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(HEX[usize::from(b >> 4)]);
        text.push(HEX[usize::from(b & 0xf)]);
    }
    // Taken as it is: no copy into a second buffer.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What is fixed at a request's start, before anything reads it: its
/// client (a trusted proxy's header believed), left in the request's
/// extensions when a header named it, and its ID, in its headers.
/// Returns the ID.
pub(crate) fn begin<B>(shared: &Shared, conn: &ConnInfo, req: &mut http::Request<B>) -> HeaderValue {
    let trusted = shared.real_ip.trusts(conn.client.ip);
    if trusted {
        if let Some(client) = shared.real_ip.resolve(conn.client.ip, req.headers()) {
            req.extensions_mut().insert::<ClientAddr>(client);
        }
    }
    shared.request_ids.assign(trusted, req.headers_mut())
}

/// `00-<trace-id>-<parent-id>-01`: the trace-id is the request ID when
/// that is 32 lowercase hex digits (so logs and traces join on it), else
/// random; the parent-id is random. Sampled, since no one before the
/// proxy decided otherwise.
fn start_trace(id: &HeaderValue) -> HeaderValue {
    let trace_id = if is_lower_hex(id.as_bytes(), 32) && !all_zero(id.as_bytes()) {
        id.clone()
    } else {
        generate()
    };
    let mut parent = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut parent).is_err() || parent == [0; 8] {
        parent = [0, 0, 0, 0, 0, 0, 0, 1];
    }
    let parent = hex_value(&parent);
    let mut text = Vec::with_capacity(55);
    text.extend_from_slice(b"00-");
    text.extend_from_slice(trace_id.as_bytes());
    text.push(b'-');
    text.extend_from_slice(parent.as_bytes());
    text.extend_from_slice(b"-01");
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

fn is_lower_hex(bytes: &[u8], len: usize) -> bool {
    bytes.len() == len && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b'0')
}

/// A version-00 `traceparent` (W3C Trace Context, section 3.2): version,
/// a non-zero trace-id, a non-zero parent-id and flags, in lowercase hex.
/// A later version may append fields after a dash.
fn valid_traceparent(v: &[u8]) -> bool {
    if v.len() < 55 || (v.len() > 55 && v[55] != b'-') {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    v[2] == b'-'
        && v[35] == b'-'
        && v[52] == b'-'
        && is_lower_hex(version, 2)
        && version != b"ff"
        && (version != b"00" || v.len() == 55)
        && is_lower_hex(trace_id, 32)
        && !all_zero(trace_id)
        && is_lower_hex(parent_id, 16)
        && !all_zero(parent_id)
        && is_lower_hex(flags, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (generate(), generate());
        assert!(is_lower_hex(a.as_bytes(), 32), "{a:?}");
        assert_ne!(a, b);
    }

    #[test]
    fn ids_from_several_threads_never_repeat() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..2000).map(|_| generate()).collect::<Vec<_>>()))
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            for id in t.join().unwrap() {
                assert!(is_lower_hex(id.as_bytes(), 32), "{id:?}");
                assert!(all.insert(id), "an ID repeated");
            }
        }
        assert_eq!(all.len(), 8000);
    }

    #[test]
    fn traceparents() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(valid_traceparent(good));
        assert!(!valid_traceparent(
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
        ));
        assert!(valid_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"
        ));
        let id = generate();
        let started = start_trace(&id);
        assert!(valid_traceparent(started.as_bytes()), "{started:?}");
        assert_eq!(&started.as_bytes()[3..35], id.as_bytes());
        let other = start_trace(&HeaderValue::from_static("lb-1234"));
        assert!(valid_traceparent(other.as_bytes()), "{other:?}");
    }

    #[test]
    fn only_a_trusted_peers_usable_id_is_kept() {
        let ids = RequestIds {
            echo: false,
            trace_context: true,
        };
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("lb-1234"));
        assert_eq!(ids.assign(true, &mut h), "lb-1234");
        assert!(h.contains_key(&TRACEPARENT));
        let forged = ids.assign(false, &mut h);
        assert_ne!(forged, "lb-1234");
        assert_eq!(h[&X_REQUEST_ID], forged);
        h.insert(X_REQUEST_ID.clone(), HeaderValue::from_static("two words"));
        assert_ne!(ids.assign(true, &mut h), "two words");
    }
}
