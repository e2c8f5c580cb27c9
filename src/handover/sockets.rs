//! The listening sockets of the process, by configured address, for a new
//! binary to inherit; and the sockets this process inherited.
//!
//! The protocol between the two processes is two environment variables,
//! set by the old process for the new one alone:
//! `PORTCULLIS_INHERIT_FDS=role/addr=fd,...` (each socket's listener
//! role, `tls`, `plain`, `admin` or `stream`, its configured address, port
//! 0 included, and the descriptor number it has in the new process) and `PORTCULLIS_READY_FD=fd` (a pipe the new process writes
//! `ready <pid>` to once it serves). The new process checks each
//! descriptor before taking it (open, a socket, listening), removes the
//! variables so that nothing it starts inherits them, and closes what no
//! listener of its configuration took.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The environment variable naming the inherited sockets.
pub(crate) const INHERIT_FDS: &str = "PORTCULLIS_INHERIT_FDS";
/// The environment variable naming the readiness pipe.
pub(crate) const READY_FD: &str = "PORTCULLIS_READY_FD";

/// A listener's role and configured address.
pub(crate) type Key = (String, SocketAddr);

/// Sockets in service, each a duplicate of a listener's descriptor.
static SERVING: Mutex<Vec<(Key, OwnedFd)>> = Mutex::new(Vec::new());
/// Sockets inherited and not yet taken.
static INHERITED: Mutex<Option<HashMap<Key, std::net::TcpListener>>> = Mutex::new(None);
/// The readiness pipe, until written.
static READY: Mutex<Option<OwnedFd>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records `listener`, bound for `configured` by a listener of `role`, as
/// in service.
pub(crate) fn register(role: &str, configured: SocketAddr, listener: &std::net::TcpListener) {
    if let Ok(dup) = listener.try_clone() {
        let key = (role.to_owned(), configured);
        let mut serving = lock(&SERVING);
        serving.retain(|(k, _)| *k != key);
        serving.push((key, OwnedFd::from(dup)));
    }
}

/// `configured` is no longer served by a listener of `role` (a reload
/// removed it).
pub(crate) fn forget(role: &str, configured: SocketAddr) {
    lock(&SERVING).retain(|((r, addr), _)| !(r == role && *addr == configured));
}

/// Nothing is served any more (shutdown, or the sockets handed over): the
/// duplicates close, so that once the listeners' own close, a connection
/// attempt is refused at once.
pub(crate) fn forget_all() {
    lock(&SERVING).clear();
}

/// Duplicates of the sockets in service, for a new process.
pub(crate) fn serving() -> Vec<(Key, OwnedFd)> {
    lock(&SERVING)
        .iter()
        .filter_map(|(key, fd)| fd.try_clone().ok().map(|fd| (key.clone(), fd)))
        .collect()
}

/// The inherited socket of a listener of `role` for `configured`, if
/// there is one.
pub(crate) fn take(role: &str, configured: SocketAddr) -> Option<std::net::TcpListener> {
    lock(&INHERITED).as_mut()?.remove(&(role.to_owned(), configured))
}

/// Takes the sockets and the pipe an old process handed over, from the
/// environment; called once at start, before any thread is spawned. A
/// descriptor that is not an open listening socket is ignored, with a
/// warning on stderr.
pub fn adopt_from_env() {
    let fds = std::env::var(INHERIT_FDS).ok();
    let ready = std::env::var(READY_FD).ok();
    // Called from main before any other thread exists, so nothing reads
    // the environment while it changes.
    std::env::remove_var(INHERIT_FDS);
    std::env::remove_var(READY_FD);
    let mut taken: Vec<RawFd> = Vec::new();
    let mut inherited = HashMap::new();
    for entry in fds.iter().flat_map(|v| v.split(',')).filter(|e| !e.is_empty()) {
        let parsed = entry.rsplit_once('=').and_then(|(key, fd)| {
            let (role, addr) = key.split_once('/')?;
            Some((role, addr.parse::<SocketAddr>().ok()?, fd.parse::<RawFd>().ok()?))
        });
        let Some((role, addr, fd)) = parsed else {
            eprintln!("portcullis: ignoring {INHERIT_FDS} entry {entry:?}: not role/addr=fd");
            continue;
        };
        if fd <= 2 || taken.contains(&fd) || !is_listening_socket(fd) {
            eprintln!("portcullis: ignoring inherited descriptor {fd} for {addr}: not a listening socket");
            continue;
        }
        taken.push(fd);
        // SAFETY: `fd` was handed to this process for this purpose by the
        // old one, is open and a listening socket (checked above), and is
        // taken once (`taken`): nothing else in the process owns it.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let _ = listener.set_nonblocking(true);
        set_cloexec(fd);
        inherited.insert((role.to_owned(), addr), listener);
    }
    *lock(&INHERITED) = Some(inherited);
    if let Some(fd) = ready.and_then(|v| v.parse::<RawFd>().ok()) {
        if fd > 2 && !taken.contains(&fd) && is_open(fd) {
            // SAFETY: the old process created this pipe's write end for
            // this process alone; it is open (checked) and owned by
            // nothing else here.
            let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
            set_cloexec(fd);
            *lock(&READY) = Some(pipe);
        }
    }
}

/// Closes the inherited sockets no listener took: their addresses left
/// the configuration.
pub(crate) fn close_unclaimed() {
    if let Some(left) = lock(&INHERITED).as_mut() {
        for (role, addr) in left.keys() {
            tracing::info!(address = %addr, %role, "an inherited socket is not in the configuration; closed");
        }
        left.clear();
    }
}

/// Tells the old process, if there is one, that this one serves.
pub(crate) fn ready() -> bool {
    let Some(pipe) = lock(&READY).take() else {
        return false;
    };
    let mut file = std::fs::File::from(pipe);
    let _ = std::io::Write::write_all(&mut file, format!("ready {}\n", std::process::id()).as_bytes());
    true
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn is_listening_socket(fd: RawFd) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given;
    // the kernel writes at most `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0 && value == 1
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: F_SETFD sets the descriptor's flags and touches no memory.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// A duplicate of `fd` that a new program inherits (no close-on-exec),
/// numbered 3 or above.
pub(crate) fn inheritable(fd: &impl AsRawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD creates a new descriptor and touches no memory; the
    // result, when not -1, is a fresh descriptor owned by nothing else.
    let dup = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD, 3) };
    if dup == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `dup` was just created above and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}
