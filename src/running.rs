//! How other processes find the running proxy: the pid file it writes
//! (`server.pid_file`), and `portcullis reload` and `portcullis upgrade`,
//! which check the file first and then ask the running proxy, through the
//! admin listener's `POST /reload` or `POST /upgrade` when `[admin]` is
//! configured (the outcome, errors included, is printed), or else with
//! SIGHUP or SIGUSR2 to the process the pid file names (the outcome is in
//! the proxy's log).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use portcullis::config::Config;

/// The pid file while the proxy runs: written at start, removed at exit.
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's ID to `path`, whole or not at all (a reader
    /// never sees a half-written number).
    pub(crate) fn write(path: &Path) -> std::io::Result<PidFile> {
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&tmp, path)?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a newer process may have written it since.
        let ours = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            == Some(std::process::id());
        if ours {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// `portcullis reload`, with the configuration already read and checked
/// for syntax; its files are checked here.
/// `pid` (`--pid`, such as systemd's `$MAINPID`) names the process when
/// there is no admin listener.
pub(crate) fn reload(config: &Config, pid: Option<i32>) -> ExitCode {
    ask(config, pid, "/reload", libc::SIGHUP, "SIGHUP")
}

/// `portcullis upgrade`: as `reload`, for an upgrade.
pub(crate) fn upgrade(config: &Config, pid: Option<i32>) -> ExitCode {
    ask(config, pid, "/upgrade", libc::SIGUSR2, "SIGUSR2")
}

fn ask(
    config: &Config,
    pid: Option<i32>,
    path: &str,
    signal_number: libc::c_int,
    signal_name: &str,
) -> ExitCode {
    if let Err(errors) = portcullis::reload::check_files(config) {
        eprintln!("{errors}");
        eprintln!("portcullis: the running proxy was not asked anything");
        return ExitCode::from(2);
    }
    if let Some(admin) = &config.admin {
        return through_admin(admin.listen, path);
    }
    if let Some(pid) = pid {
        return send(pid, signal_number, "--pid");
    }
    match &config.server.pid_file {
        Some(pid_file) => signal(pid_file, signal_number),
        None => {
            eprintln!(
                "portcullis: cannot find the running proxy: configure [admin] (through \
                 POST {path}), or give --pid or server.pid_file (through {signal_name})"
            );
            ExitCode::FAILURE
        }
    }
}

/// `POST path` on the admin listener; its answer printed.
fn through_admin(addr: std::net::SocketAddr, path: &str) -> ExitCode {
    let exchange = || -> std::io::Result<String> {
        let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        // A reload loads certificates and may resolve names: it can take a
        // while, but not for ever.
        tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: portcullis\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(head.as_bytes())?;
        let mut answer = String::new();
        tcp.read_to_string(&mut answer)?;
        Ok(answer)
    };
    match exchange() {
        Ok(answer) => {
            let status = answer
                .split_ascii_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok());
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            match status {
                Some(200) => {
                    print!("{body}");
                    ExitCode::SUCCESS
                }
                Some(422) => {
                    eprint!("{body}");
                    ExitCode::from(2)
                }
                _ => {
                    eprintln!("portcullis: unexpected answer from the admin listener at {addr}:\n{answer}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("portcullis: cannot reach the admin listener at {addr} ({e}): is the proxy running?");
            ExitCode::FAILURE
        }
    }
}

/// `signal_number` to the process of the pid file at `path`.
fn signal(path: &Path, signal_number: libc::c_int) -> ExitCode {
    let pid = match std::fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<i32>() {
            Ok(pid) if pid > 1 => pid,
            _ => {
                eprintln!("portcullis: {} does not hold a process ID", path.display());
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!(
                "portcullis: cannot read {} ({e}): is the proxy running?",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    send(pid, signal_number, &path.display().to_string())
}

/// `signal_number` to process `pid`, named by `from`.
fn send(pid: i32, signal_number: libc::c_int, from: &str) -> ExitCode {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours;
    // `pid` is above 1 (both callers check), so it names one process
    // (never a group, never init or every process).
    let sent = unsafe { libc::kill(pid, signal_number) };
    if sent != 0 {
        let e = std::io::Error::last_os_error();
        eprintln!("portcullis: cannot signal process {pid} from {from} ({e})");
        return ExitCode::FAILURE;
    }
    println!("portcullis: signalled process {pid}; its log says what it did, or why it refused");
    ExitCode::SUCCESS
}
