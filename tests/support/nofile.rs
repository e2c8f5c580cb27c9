//! The open-file limit of the test process, for tests that hold thousands
//! of connections at once.

/// The soft limit on open files, from /proc/self/limits: (soft, hard).
fn nofile_limits() -> (u64, Option<u64>) {
    let text = std::fs::read_to_string("/proc/self/limits").expect("cannot read /proc/self/limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("no 'Max open files' in /proc/self/limits");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok());
    let soft = parse(fields.next()).unwrap_or(u64::MAX); // "unlimited"
    let hard = parse(fields.next());
    (soft, hard)
}

/// Makes sure this process may hold `needed` descriptors: raises the soft
/// limit with prlimit(1) on our own pid when the hard limit allows it,
/// otherwise fails with what to do. `holders` says in the failure what
/// holds the descriptors.
pub fn ensure_open_files(needed: u64, holders: &str) {
    let (soft, hard) = nofile_limits();
    if soft >= needed {
        return;
    }
    let target = hard.map_or(needed, |h| h.min(needed.max(65_536)));
    let raised = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!(
            "--nofile={target}:{}",
            hard.map_or("unlimited".to_owned(), |h| h.to_string())
        ))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let (soft_now, _) = nofile_limits();
    assert!(
        soft_now >= needed,
        "this test holds {needed} file descriptors in one process ({holders}), \
         but the open-file limit is {soft} (hard {hard:?}) and raising it with prlimit {}; \
         run it under `ulimit -n 65536`",
        if raised { "did not help" } else { "failed" }
    );
}
