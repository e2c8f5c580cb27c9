//! The old process's side of an upgrade: start the new binary with the
//! listening sockets and a pipe, and wait for its word that it serves.
//!
//! The new binary is the file the process was started from, with the same
//! arguments: installing a new version (a package upgrade, `install`, `cp`
//! over it) and asking for an upgrade runs the new version. It checks its
//! configuration as any start does; if it exits, or says nothing within
//! [`READY_WITHIN`], the upgrade fails, the old process goes on serving,
//! and the error says why.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::sockets::{self, INHERIT_FDS, READY_FD};

/// How long a new process may take to load its certificates and bind.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// The binary and arguments this process was started with.
static ORIGIN: OnceLock<(PathBuf, Vec<OsString>)> = OnceLock::new();

/// Remembers how this process was started; called once at start, before
/// the binary could be replaced on disk.
pub fn remember_command() {
    let exe = std::env::current_exe()
        .unwrap_or_else(|_| PathBuf::from(std::env::args_os().next().unwrap_or_default()));
    let _ = ORIGIN.set((exe, std::env::args_os().skip(1).collect()));
}

/// Starts the new binary with every socket in service; its process ID once
/// it serves, or why it does not.
pub(crate) async fn new_process() -> Result<u32, String> {
    let Some((exe, args)) = ORIGIN.get().cloned() else {
        return Err(
            "this process cannot start another (it was not started by the portcullis command)".to_owned(),
        );
    };
    let inherited: Vec<(sockets::Key, OwnedFd)> = sockets::serving()
        .iter()
        .map(|(key, fd)| sockets::inheritable(fd).map(|dup| (key.clone(), dup)))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot pass the listening sockets: {e}"))?;
    let (read_end, ours) = pipe().map_err(|e| format!("cannot make the readiness pipe: {e}"))?;
    let write_end =
        sockets::inheritable(&ours).map_err(|e| format!("cannot make the readiness pipe: {e}"))?;
    // Only the new process may hold a write end: the read sees the end of
    // the pipe when that process exits.
    drop(ours);
    let list: Vec<String> = inherited
        .iter()
        .map(|((role, addr), fd)| format!("{role}/{addr}={}", fd.as_raw_fd()))
        .collect();
    let child = Command::new(&exe)
        .args(&args)
        .env(INHERIT_FDS, list.join(","))
        .env(READY_FD, write_end.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    // Only the new process holds these now.
    drop(inherited);
    drop(write_end);
    let pid = child.id();
    tracing::info!(pid, binary = %exe.display(), "upgrade: new process started; waiting for it to serve");
    let waited = tokio::task::spawn_blocking(move || wait_ready(read_end, child)).await;
    match waited {
        Ok(result) => result,
        Err(e) => Err(format!("the upgrade failed: {e}")),
    }
}

/// Reads the pipe until the new process says it serves or closes it.
fn wait_ready(read_end: OwnedFd, mut child: std::process::Child) -> Result<u32, String> {
    let pid = child.id();
    let mut pipe = std::fs::File::from(read_end);
    let deadline = std::time::Instant::now() + READY_WITHIN;
    // The read blocks until the new process writes or exits (its end of
    // the pipe then closes); a process that hangs is killed at the
    // deadline by the watcher below, which closes the pipe too.
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let watcher = std::thread::spawn(move || {
        if watched
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .is_err()
        {
            // SAFETY: kill(2) on the child's own ID touches no memory; the
            // child has not been waited for, so its ID is still its own.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    });
    let mut said = String::new();
    let _ = pipe.read_to_string(&mut said);
    let _ = done.send(());
    let _ = watcher.join();
    if said.starts_with("ready ") {
        // Not waited for: the old process exits first, and the new one is
        // then reparented to init (or systemd), which reaps it.
        drop(child);
        return Ok(pid);
    }
    let status = child.wait().map_or_else(|e| e.to_string(), |s| s.to_string());
    Err(format!(
        "the new process {pid} did not start serving ({status}); its errors are in its log. This process goes on serving"
    ))
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is valid for two ints, which pipe2 writes.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are new and owned by
    // nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
