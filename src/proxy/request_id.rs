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

/// The ID of one request, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub HeaderValue);

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
fn generate() -> HeaderValue {
    let mut bytes = [0u8; 16];
    // The system generator failing is no reason to fail a request; the
    // clock then keeps the IDs apart.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = now.to_be_bytes();
    }
    hex_value(&bytes)
}

fn hex_value(bytes: &[u8]) -> HeaderValue {
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// What is fixed at a request's start, before anything reads it: its
/// client (a trusted proxy's header believed) and its ID, both left in
/// the request's extensions. Returns the ID.
pub(crate) fn begin<B>(shared: &Shared, conn: &ConnInfo, req: &mut http::Request<B>) -> HeaderValue {
    let trusted = shared.real_ip.trusts(conn.client.ip);
    if trusted {
        if let Some(client) = shared.real_ip.resolve(conn.client.ip, req.headers()) {
            req.extensions_mut().insert::<ClientAddr>(client);
        }
    }
    let id = shared.request_ids.assign(trusted, req.headers_mut());
    req.extensions_mut().insert(RequestId(id.clone()));
    id
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
