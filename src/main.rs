//! The `portcullis` command: parses the command line, picks the
//! configuration, and maps outcomes to exit codes (0 ok, 1 runtime failure,
//! 2 configuration error). All proxy logic lives in the library.

use std::process::ExitCode;

use portcullis::config::{self, Config};
use portcullis::Proxy;

mod cli;
mod import_cmd;
mod probe;
mod running;
use cli::{Cli, GenCertArgs};

// Many small, short-lived allocations per request (header maps, futures,
// buffers): mimalloc serves them from thread-local pages, which profiles
// show cheaper than glibc's malloc here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `portcullis --version`: the version, the commit it was built from and
/// the TLS stack, so that a bug report says what ran (build.rs finds them).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit     ",
    env!("PORTCULLIS_GIT_COMMIT"),
    "\nrustls     ",
    env!("PORTCULLIS_RUSTLS_VERSION"),
    "\naws-lc-rs  ",
    env!("PORTCULLIS_AWS_LC_RS_VERSION"),
    " (aws-lc-sys ",
    env!("PORTCULLIS_AWS_LC_SYS_VERSION"),
    ")",
);

fn main() -> ExitCode {
    let cli = cli::parse(
        std::env::args_os().skip(1),
        std::env::var_os("PORTCULLIS_CONFIG").filter(|v| !v.is_empty()),
        env!("CARGO_PKG_VERSION"),
        LONG_VERSION,
    );
    let mut pid = None;
    let (config, command) = match cli {
        Err(usage) => {
            eprintln!("{}", cli::usage_error(&usage));
            return ExitCode::from(2);
        }
        Ok(Cli::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        // gen-cert and probe read no configuration.
        Ok(Cli::GenCert(args)) => return gen_cert(&args),
        Ok(Cli::Probe { url }) => return probe::run(url),
        Ok(Cli::ImportNginx(args)) => return import_cmd::run(&args),
        Ok(Cli::Run { config }) => (config, "run"),
        Ok(Cli::Check { config }) => (config, "check"),
        Ok(Cli::Reload { config, pid: p }) => {
            pid = p;
            (config, "reload")
        }
        Ok(Cli::Upgrade { config, pid: p }) => {
            pid = p;
            (config, "upgrade")
        }
    };
    let config = match &config {
        Some(path) => config::load(path),
        None => Config::embedded_default_with_env(&|name| std::env::var(name).ok()),
    };
    let config = match config {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    match command {
        "check" => check(&config),
        "reload" => running::reload(&config, pid),
        "upgrade" => running::upgrade(&config, pid),
        _ => run(config),
    }
}

fn gen_cert(args: &GenCertArgs) -> ExitCode {
    let opts = portcullis::gencert::Options {
        dir: args.dir.clone(),
        names: args.names.clone(),
        days: args.days,
        force: args.force,
    };
    match portcullis::gencert::run(&opts) {
        Ok(written) => {
            print!("{}", written.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("portcullis gen-cert: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn check(config: &Config) -> ExitCode {
    let name = source_name(config);
    match portcullis::reload::check_files(config) {
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
        Ok(portcullis::reload::Checked { initial, .. }) => {
            println!("{name}: configuration is valid");
            for addr in &config.server.listen {
                println!("  listen  https://{addr}");
            }
            for route in &config.routes {
                let host = route.host.as_deref().unwrap_or("");
                let mtls = if route.require_client_cert {
                    " (client certificate required)"
                } else {
                    ""
                };
                let to = match &route.shaping.action {
                    portcullis::config::RouteAction::Proxy => route.upstream_text(),
                    portcullis::config::RouteAction::Redirect { status, .. } => {
                        format!("redirect {}", status.as_u16())
                    }
                    portcullis::config::RouteAction::Respond { status, .. } => {
                        format!("respond {}", status.as_u16())
                    }
                    portcullis::config::RouteAction::Files => route.upstream_text(),
                };
                println!("  route   {host}{} -> {to}{mtls}", route.path);
                if let Some(tls) = &route.upstream_tls {
                    println!("          {}", upstream_trust(tls));
                }
            }
            for pool in &config.pools {
                println!("  pool    {}", describe_pool(pool));
            }
            for stream in &config.streams {
                println!("  stream  {}", describe_stream(stream));
            }
            if let Some(auth) = &config.tls.client_auth {
                let mode = match auth.mode {
                    config::ClientAuthMode::Required => "required",
                    config::ClientAuthMode::Optional => "optional",
                };
                println!(
                    "  mtls    client certificates {mode}, verified against {}; {} pinned fingerprint(s)",
                    auth.ca.display(),
                    auth.pinned_sha256.len()
                );
            }
            if initial.self_signed {
                println!("  tls     no certificate configured: a temporary self-signed certificate would be served");
            }
            for &index in &initial.bootstrapped {
                let source = &config.tls.certificates[index];
                println!(
                    "  tls     {} does not exist yet: a temporary self-signed certificate would be served \
                     until it appears (bootstrap = \"self-signed\")",
                    source.cert.display()
                );
            }
            let real = initial
                .slots
                .iter()
                .zip(&initial.certs)
                .filter(|(slot, _)| slot.served.is_some());
            for (_, cert) in real {
                let f = &cert.facts;
                println!(
                    "  cert    {} (SANs {}; serial {}; expires {})",
                    f.subject,
                    f.sans.join(", "),
                    f.serial,
                    humantime::format_rfc3339_seconds(f.not_after)
                );
                // Valid, and served, but most clients other than browsers
                // will refuse it: said on stderr, as `run` logs it.
                if let Some(gap) = &cert.incomplete_chain {
                    eprintln!("WARNING: {gap}");
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// One `[[upstream]]` as `portcullis check` lists it: its name, servers
/// and balance.
fn describe_pool(pool: &config::PoolConfig) -> String {
    let servers: Vec<String> = pool
        .servers
        .iter()
        .map(|s| {
            let mut text = s.address.to_string();
            if s.weight != 1 {
                text.push_str(&format!(" weight {}", s.weight));
            }
            if s.backup {
                text.push_str(" backup");
            }
            text
        })
        .collect();
    let balance = match &pool.balance {
        config::Balance::RoundRobin => "round_robin".to_owned(),
        config::Balance::LeastConn => "least_conn".to_owned(),
        config::Balance::RandomTwo => "random_two".to_owned(),
        config::Balance::Hash(key) => format!("hash of {key}"),
    };
    let health = match &pool.health {
        Some(h) => format!(
            ", health checks GET {} every {}",
            h.path,
            humantime::format_duration(h.interval)
        ),
        None => String::new(),
    };
    format!("{}: {} ({balance}{health})", pool.name, servers.join(", "))
}

/// How `check` describes a stream: its addresses, its mode and where it
/// sends its bytes.
fn describe_stream(stream: &config::StreamConfig) -> String {
    let listen: Vec<String> = stream.listen.iter().map(|a| format!("tcp://{a}")).collect();
    let to = match &stream.mode {
        config::StreamMode::Plain { upstream } | config::StreamMode::Terminate { upstream, .. } => {
            upstream.to_string()
        }
        config::StreamMode::Passthrough { routes, default } => {
            let mut to: Vec<String> = routes
                .iter()
                .map(|r| format!("{} -> {}", r.sni, r.upstream))
                .collect();
            to.push(match default {
                Some(default) => format!("else -> {default}"),
                None => "else closed".to_string(),
            });
            format!("by SNI: {}", to.join(", "))
        }
    };
    let nats = match &stream.mode {
        config::StreamMode::Terminate {
            protocol: Some(config::StreamProtocol::Nats),
            ..
        } => " (NATS)",
        _ => "",
    };
    format!(
        "{} {} tls={}{nats} -> {to}",
        stream.name,
        listen.join(" "),
        stream.mode.as_str()
    )
}

/// How `check` describes the verification of an `https://` upstream.
fn upstream_trust(tls: &config::UpstreamTls) -> String {
    let name = tls
        .server_name
        .as_deref()
        .map_or_else(String::new, |name| format!(" for the name {name}"));
    match &tls.trust {
        config::UpstreamTrust::System => {
            format!("upstream certificate verified{name} against the system trust store")
        }
        config::UpstreamTrust::CaFile { path, .. } => {
            format!("upstream certificate verified{name} against {}", path.display())
        }
        config::UpstreamTrust::InsecureSkipVerify => "WARNING: upstream certificate NOT verified \
             (upstream_insecure_skip_verify = true): anyone on the network path can impersonate the upstream"
            .to_owned(),
    }
}

fn run(config: Config) -> ExitCode {
    // Before any thread exists: sockets an upgrading process handed over,
    // and how this process was started, for the next upgrade.
    portcullis::handover::sockets::adopt_from_env();
    portcullis::handover::start::remember_command();
    portcullis::telemetry::init_with(&config.log);
    let mut runtime = match config.server.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portcullis: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let source = source_name(&config);
    let pid_file = config.server.pid_file.clone();
    let result = runtime.block_on(async move {
        // Handlers first: a signal that arrives once the proxy says it
        // listens must drain it, not kill it by the default disposition.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("portcullis: cannot install signal handlers: {e}");
                return Ok(false);
            }
        };
        let proxy = Proxy::bind(config)?;
        if proxy.is_self_signed() {
            warn_self_signed();
        }
        if proxy.bootstrapped() > 0 {
            tracing::warn!(
                "{} configured certificate(s) do not exist yet: serving a temporary self-signed \
                 certificate in their place until the files appear (bootstrap = \"self-signed\")",
                proxy.bootstrapped()
            );
        }
        let reload = proxy.config_reloader();
        let Signals {
            mut term,
            mut int,
            mut hup,
            mut usr2,
        } = signals;
        let upgrade = reload.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                reload.request("SIGHUP");
            }
        });
        tokio::spawn(async move {
            while usr2.recv().await.is_some() {
                tracing::info!("SIGUSR2: upgrading the binary");
                upgrade.request_upgrade("SIGUSR2");
            }
        });
        let _pid_file = match &pid_file {
            Some(path) => match running::PidFile::write(path) {
                Ok(written) => Some(written),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot write the pid file: {e}");
                    None
                }
            },
            None => None,
        };
        for addr in proxy.local_addrs() {
            tracing::info!("listening on https://{addr} ({source})");
        }
        for addr in proxy.plain_addrs() {
            tracing::info!("listening on http://{addr} (ACME challenges and redirects)");
        }
        for (name, addr) in proxy.stream_addrs() {
            tracing::info!("stream {name} listening on tcp://{addr}");
        }
        if let Some(addr) = proxy.admin_addr() {
            tracing::info!("admin on http://{addr} (/healthz, /readyz, /metrics, /connections, /upstreams, /config, POST /reload, POST /upgrade)");
        }
        for (prefix, upstream) in proxy.routes() {
            tracing::info!("route {prefix} -> {upstream}");
        }
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        proxy.run(shutdown).await.map(|()| true)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("portcullis: {e}");
            if e.is_config() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn source_name(config: &Config) -> String {
    config.source.as_ref().map_or_else(
        || "embedded default configuration".to_owned(),
        |p| p.display().to_string(),
    )
}

fn warn_self_signed() {
    tracing::warn!(
        "\n\
         ************************************************************************\n\
         * NO CERTIFICATE CONFIGURED: serving a temporary self-signed           *\n\
         * certificate for localhost, 127.0.0.1 and ::1. Clients will not trust *\n\
         * it. To serve a real certificate, write proxy.toml with               *\n\
         *     [tls]                                                            *\n\
         *     cert = \"/etc/letsencrypt/live/example.com/fullchain.pem\"         *\n\
         *     key  = \"/etc/letsencrypt/live/example.com/privkey.pem\"           *\n\
         * and run `portcullis --config proxy.toml` (see proxy.toml.example).   *\n\
         ************************************************************************"
    );
}

/// The signals the proxy answers: SIGTERM and SIGINT drain and exit,
/// SIGHUP reloads the configuration (certificates included), SIGUSR2
/// starts the binary again and hands it the listening sockets.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }
}
