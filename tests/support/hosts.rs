//! The proxy binary in a mount namespace of its own, where /etc/hosts is a
//! file the test rewrites, so that it resolves names through the C library
//! exactly as in production. `unshare --user --map-root-user --mount` gives
//! an ordinary user that namespace: no root needed.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The proxy binary: `PORTCULLIS_TEST_BIN` when set (CI runs the built
/// tests as another user, from a copy), else the one cargo built.
pub fn portcullis_bin() -> String {
    std::env::var("PORTCULLIS_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_portcullis").to_owned())
}

/// Rewrites the hosts file in place (same inode), so the bind mount over
/// /etc/hosts in the proxy's namespace sees the new content: `name` at
/// each of `ips`.
pub fn write_hosts(path: &Path, name: &str, ips: &[&str]) {
    let mut text = String::from("127.0.0.1 localhost\n");
    for ip in ips {
        text.push_str(&format!("{ip} {name}\n"));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

/// The command that runs the proxy with `config`, `hosts` over /etc/hosts.
pub fn proxy_command(hosts: &Path, config: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$HOSTS" /etc/hosts && exec "$BIN" --config "$CFG""#,
        ])
        .env("HOSTS", hosts)
        .env("BIN", portcullis_bin())
        .env("CFG", config);
    command
}

/// The test cannot be honest without `unshare` that can make a user and
/// mount namespace, and a `files` source for host names: say so and fail.
pub fn require_environment() {
    let probe = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .output();
    assert!(
        matches!(&probe, Ok(o) if o.status.success()),
        "these tests need `unshare --user --map-root-user --mount` (util-linux, and unprivileged user \
         namespaces: sysctl kernel.unprivileged_userns_clone=1 where that exists): {probe:?}"
    );
    let nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let hosts_line = nsswitch.lines().map(str::trim).find(|l| l.starts_with("hosts:"));
    assert!(
        hosts_line.is_some_and(|l| l.split_whitespace().any(|s| s == "files")),
        "/etc/nsswitch.conf does not look names up in files ({hosts_line:?}): /etc/hosts would be ignored"
    );
}
