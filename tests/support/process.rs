//! The proxy binary as a child process, for tests that need a process of
//! its own: signals, exit codes, memory measured from /proc.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::wait_until;

/// Runs the binary to its end with `args` and `--config config`, with
/// none of a developer's `PORTCULLIS_*` variables: the file says all.
pub fn run_to_end(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("PORTCULLIS_LISTEN")
        .env_remove("PORTCULLIS_TLS_CERT")
        .env_remove("PORTCULLIS_TLS_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// `binary --config config run`, with none of a developer's
/// `PORTCULLIS_*` variables: the file says everything.
pub fn run_command(binary: &Path, config: &Path) -> Command {
    let mut command = Command::new(binary);
    command.arg("--config").arg(config).arg("run");
    for var in [
        "PORTCULLIS_CONFIG",
        "PORTCULLIS_LISTEN",
        "PORTCULLIS_TLS_CERT",
        "PORTCULLIS_TLS_KEY",
    ] {
        command.env_remove(var);
    }
    command
}

/// The proxy binary as a child process, killed on drop if still running.
pub struct ProxyProcess {
    child: Child,
    pub stderr: Arc<Mutex<String>>,
    /// Set when the child's stderr reached its end.
    stderr_done: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ProxyProcess {
    /// Starts the binary with `config` written to `dir/proxy.toml`, and
    /// returns it with the TLS address it logged.
    pub async fn start(dir: &Path, config: &str) -> (ProxyProcess, SocketAddr) {
        ProxyProcess::start_holding_stderr(dir, config, None).await
    }

    /// As `start`; with `hold`, stderr is not read past the "listening on"
    /// line until `hold` receives (or is dropped), so the child blocks on
    /// its next large write to stderr.
    pub async fn start_holding_stderr(
        dir: &Path,
        config: &str,
        hold: Option<std::sync::mpsc::Receiver<()>>,
    ) -> (ProxyProcess, SocketAddr) {
        let path = dir.join("proxy.toml");
        std::fs::write(&path, config).unwrap();
        let command = run_command(Path::new(env!("CARGO_BIN_EXE_portcullis")), &path);
        ProxyProcess::spawn(command, hold).await
    }

    /// Starts `command`, which must exec the binary (through a wrapper such
    /// as `unshare` if need be), with the environment and pipes of `start`,
    /// and returns it with the TLS address it logged.
    pub async fn start_command(command: Command) -> (ProxyProcess, SocketAddr) {
        ProxyProcess::spawn(command, None).await
    }

    async fn spawn(
        mut command: Command,
        hold: Option<std::sync::mpsc::Receiver<()>>,
    ) -> (ProxyProcess, SocketAddr) {
        let mut child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the portcullis binary ({command:?}): {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, mut rx) = mpsc::unbounded_channel::<SocketAddr>();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        let stderr_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stderr_done.clone();
        // Keep draining stderr for the child's whole life, so that it never
        // blocks on a full pipe (unless the test holds it on purpose).
        std::thread::spawn(move || {
            let mut hold = hold;
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(rest) = line.split("listening on https://").nth(1) {
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    if let Ok(addr) = addr.parse() {
                        let _ = tx.send(addr);
                    }
                    if let Some(hold) = hold.take() {
                        let _ = hold.recv();
                    }
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let mut running = ProxyProcess {
            child,
            stderr,
            stderr_done,
        };
        let addr = match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
            Ok(Some(addr)) => addr,
            _ => panic!(
                "the binary logged no 'listening on https://' line (exit: {:?}); stderr:\n{}",
                running.try_wait(),
                running.stderr_text()
            ),
        };
        (running, addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the child logged right after `prefix` (such as
    /// "admin on http://"), once it has.
    pub async fn logged_addr(&self, prefix: &str) -> SocketAddr {
        let stderr = self.stderr.clone();
        let find = move || {
            let log = stderr.lock().unwrap();
            let rest = log.split(prefix).nth(1)?;
            let end = rest.find(|c: char| c.is_whitespace() || c == '/')?;
            rest[..end].parse().ok()
        };
        let mut found = None;
        wait_until(
            Duration::from_secs(10),
            &format!("a logged '{prefix}' address"),
            || {
                found = find();
                found.is_some()
            },
        )
        .await;
        found.unwrap()
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The first line of stderr that contains `needle`, once there is one
    /// (within 10 s).
    pub async fn line_with(&self, needle: &str) -> String {
        let find = || {
            self.stderr_text()
                .lines()
                .find(|line| line.contains(needle))
                .map(str::to_string)
        };
        wait_until(Duration::from_secs(10), needle, || find().is_some()).await;
        find().unwrap()
    }

    /// The child's exit status if it has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// A field of /proc/<pid>/status, in bytes (`VmHWM`, `VmRSS`).
    pub fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()));
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("cannot read {line:?}"));
        kb * 1024
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    pub async fn wait_exit(&mut self, what: &str) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader take in the last lines before they are checked.
                let done = self.stderr_done.clone();
                wait_until(
                    Duration::from_secs(10),
                    "the end of the binary's stderr",
                    move || done.load(std::sync::atomic::Ordering::SeqCst),
                )
                .await;
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the binary did not exit after {what}; stderr:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
