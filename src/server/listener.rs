//! Binding listening sockets the way an edge proxy needs them: address
//! reuse for quick restarts, IPv6 sockets that take only IPv6 (so
//! `0.0.0.0:443` and `[::]:443` can both be listed), and a deep backlog.
//! A socket handed over by the process this one upgraded is taken in
//! place of a new one, and every socket is registered for the next
//! upgrade (see `handover`).

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

const BACKLOG: i32 = 4096;

/// A listening socket for the configured address `addr` of a listener of
/// `role` (`tls`, `plain`, `admin`, `stream`): the one an old process
/// handed over for it, or a new one. The role tells apart two listeners
/// configured on the same address with port 0.
pub fn bind(role: &'static str, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = match crate::handover::sockets::take(role, addr) {
        Some(inherited) => inherited,
        None => bind_new(addr)?,
    };
    crate::handover::sockets::register(role, addr, &listener);
    Ok(listener)
}

fn bind_new(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// TCP keepalive on an accepted connection, so a peer that vanished without
/// a FIN (a laptop that went to sleep) is noticed by the kernel, even on a
/// WebSocket that is allowed to stay quiet for a day.
pub fn tune_accepted(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(std::time::Duration::from_secs(60))
        .with_interval(std::time::Duration::from_secs(15))
        .with_retries(4);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}
