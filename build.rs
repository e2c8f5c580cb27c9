//! Facts for `portcullis --version`, so that a bug report says what ran:
//!
//! - `PORTCULLIS_GIT_COMMIT`: the commit the binary was built from. The
//!   environment variable of that name wins (for builds without `.git`,
//!   such as the container image's: `--build-arg PORTCULLIS_GIT_COMMIT=...`);
//!   otherwise `git rev-parse` in this package's own repository; otherwise
//!   (a source tarball) "unknown".
//! - `PORTCULLIS_RUSTLS_VERSION`, `PORTCULLIS_AWS_LC_RS_VERSION`,
//!   `PORTCULLIS_AWS_LC_SYS_VERSION`: the versions Cargo.lock pins (the
//!   build uses `--locked`); "unknown" without a Cargo.lock.
//!
//! And one link option: release binaries built on glibc 2.36 or later pack
//! their relative relocations (`-z pack-relative-relocs`, DT_RELR). A
//! position-independent binary relocates every pointer in its read-only
//! data at start, and the plain table of those relocations is 24 bytes a
//! pointer, over 400 KB here; packed, it is a few. The loader of glibc
//! 2.36+ reads the packed form, and the binary then says it needs one, so
//! an older system refuses it at start instead of misreading it.
//!
//! And, where the linker is Rust's own LLD (the default for
//! x86_64-unknown-linux-gnu since Rust 1.90, unless a linker is set),
//! identical code folding (`--icf=all`): generic code instantiated for
//! types of the same layout is often the same machine code, and folding
//! it takes about 100 KB off the binary, which the container image's size
//! budget needs. Rust makes no promise that two functions have different
//! addresses, so folding them changes nothing a program may rely on.
//!
//! Standard library only.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));

    println!("cargo:rerun-if-env-changed=PORTCULLIS_GIT_COMMIT");
    let commit = match std::env::var("PORTCULLIS_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => git_commit(&dir).unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=PORTCULLIS_GIT_COMMIT={commit}");

    let lock = dir.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let lock = std::fs::read_to_string(&lock).unwrap_or_default();
    for (krate, var) in [
        ("rustls", "PORTCULLIS_RUSTLS_VERSION"),
        ("aws-lc-rs", "PORTCULLIS_AWS_LC_RS_VERSION"),
        ("aws-lc-sys", "PORTCULLIS_AWS_LC_SYS_VERSION"),
    ] {
        let versions = locked_versions(&lock, krate);
        let v = if versions.is_empty() {
            "unknown".to_owned()
        } else {
            versions.join(", ")
        };
        println!("cargo:rustc-env={var}={v}");
    }

    if std::env::var("PROFILE").as_deref() == Ok("release") && libc_reads_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if std::env::var("PROFILE").as_deref() == Ok("release") && links_with_rust_lld() {
        println!("cargo:rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// Whether rustc links this build with its own LLD: a native
/// x86_64-unknown-linux-gnu build by Rust 1.90 or later, with no linker
/// chosen in the flags or the environment.
fn links_with_rust_lld() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("TARGET") != var("HOST")
        || !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        || var("CARGO_ENCODED_RUSTFLAGS").contains("link")
    {
        return false;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut numbers = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let (major, minor) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}

/// Whether this is a native Linux glibc build whose C library (2.36 or
/// later) understands packed relative relocations.
fn libc_reads_relr() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("TARGET") != var("HOST")
        || var("CARGO_CFG_TARGET_OS") != "linux"
        || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return false;
    }
    let arch = var("CARGO_CFG_TARGET_ARCH");
    let candidates = [
        format!("/lib/{arch}-linux-gnu/libc.so.6"),
        format!("/usr/lib/{arch}-linux-gnu/libc.so.6"),
        "/lib64/libc.so.6".to_owned(),
        "/usr/lib64/libc.so.6".to_owned(),
    ];
    candidates
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .is_some_and(|libc| {
            libc.windows(b"GLIBC_ABI_DT_RELR".len())
                .any(|w| w == b"GLIBC_ABI_DT_RELR")
        })
}

/// The abbreviated HEAD commit of the repository whose top level is `dir`
/// (not of a repository `dir` merely sits inside), with rerun triggers on
/// HEAD and the branch it points at.
fn git_commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    let mut watch = vec![git(dir, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(git(dir, &["rev-parse", "--git-path", &branch])?);
    }
    watch.push(git(dir, &["rev-parse", "--git-path", "packed-refs"])?);
    for path in watch {
        let path = dir.join(path);
        // A trigger on a missing file would rerun this script every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Every version of `krate` in a Cargo.lock (`[[package]]` tables of
/// `name = "..."` and `version = "..."` lines).
fn locked_versions(lock: &str, krate: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines().map(str::trim) {
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = quoted(line, "name") {
            name = Some(v);
        } else if let Some(v) = quoted(line, "version") {
            if name == Some(krate) {
                out.push(v.to_owned());
            }
        }
    }
    out
}

fn quoted<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(key)?.trim_start().strip_prefix('=')?.trim();
    rest.strip_prefix('"')?.strip_suffix('"')
}
