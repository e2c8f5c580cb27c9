//! What a client connection holds for as long as its socket is open (the
//! stream wrapper in `counting.rs` owns it): its
//! place under `max_connections` and, when `max_connections_per_ip` is set,
//! its place in its address's count. Both are taken at accept and given back
//! when the socket is dropped, so a WebSocket tunnel and the lingering close
//! keep counting: the limits bound open sockets, which is what runs out.
//!
//! The per-address counts are a map behind one mutex, touched twice per
//! connection (accept and close) and never per request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedSemaphorePermit;

/// Open connections per client address, up to a maximum.
#[derive(Debug)]
pub struct PerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    pub fn new(max: usize) -> Self {
        PerIp {
            max,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more connection from `ip`, or `None` when its
    /// address already has the maximum open.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = key(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            limit: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn open(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(&key(ip)).copied().unwrap_or(0)
    }
}

/// What an address is counted as: IPv4 addresses (IPv4-mapped IPv6 ones
/// included) one by one, IPv6 addresses by their /64, since one subscriber
/// or host usually holds a whole /64 and picks addresses from it at will.
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
    }
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    limit: Arc<PerIp>,
    key: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.limit.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The places a connection holds.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ip: Option<IpSlot>,
}

impl Slot {
    pub fn new(permit: OwnedSemaphorePermit, ip: Option<IpSlot>) -> Self {
        Slot {
            _permit: permit,
            _ip: ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn counts_each_address_up_to_the_maximum() {
        let limit = Arc::new(PerIp::new(2));
        let a = limit.acquire(ip("192.0.2.1")).unwrap();
        let b = limit.acquire(ip("192.0.2.1")).unwrap();
        assert!(limit.acquire(ip("192.0.2.1")).is_none());
        let other = limit.acquire(ip("192.0.2.2")).unwrap();
        drop(a);
        let c = limit.acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(limit.open(ip("192.0.2.1")), 2);
        drop((b, c, other));
        assert_eq!(limit.open(ip("192.0.2.1")), 0);
        assert!(limit.counts.lock().unwrap().is_empty(), "emptied entries stay");
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let limit = Arc::new(PerIp::new(1));
        let _one = limit.acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(limit.acquire(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(limit.acquire(ip("2001:db8:1:3::1")).is_some());
        let _v4 = limit.acquire(ip("192.0.2.7")).unwrap();
        assert!(limit.acquire(ip("::ffff:192.0.2.7")).is_none());
    }
}
