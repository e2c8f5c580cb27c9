//! systemd's readiness protocol (`sd_notify`): one datagram to the socket
//! named by `NOTIFY_SOCKET`, when systemd runs the unit as `Type=notify`.
//! `READY=1` once the listeners accept; a process that took over from an
//! old one also says `MAINPID=`, so that systemd follows the upgrade
//! (which needs `NotifyAccess=all`). Without the variable, nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`KEY=value` lines) to systemd, if it listens.
pub(crate) fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket: the name without its leading `@`.
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd ({e})");
    }
}
