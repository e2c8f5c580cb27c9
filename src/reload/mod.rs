//! Live configuration: a reload reads the file again, checks it exactly as
//! `portcullis check` does (certificates and keys included), and only then
//! replaces the routing state in service, whole and at once.
//!
//! The parts, in order:
//! - [`Handle`]: how a reload is asked for (SIGHUP, the admin listener's
//!   `POST /reload`, `watch_config`), one at a time, with its outcome;
//! - `engine`: checks the new file, binds new addresses, then commits:
//!   certificates, the routing state (one `ArcSwap`), pools kept or
//!   retired, listeners added or removed;
//! - `changes`: what a reload changed, for its log line;
//! - `view`: the running configuration as the admin listener's `/config`
//!   shows it;
//! - `watch`: `watch_config`, a reload when the file changes.
//!
//! What a reload never touches: requests in flight finish on the state
//! they started with, tunnels (WebSockets) stay open whatever changed, and
//! a kept address is never bound again.

pub(crate) mod changes;
pub(crate) mod engine;
pub(crate) mod view;
pub(crate) mod watch;

use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot};

/// What the files a configuration names give, once checked.
pub struct Checked {
    /// The certificates, with their pairs for the reloader.
    pub initial: crate::tls::Initial,
    pub client_auth: Option<std::sync::Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// Each route's upstream TLS.
    pub upstream_tls: Vec<Option<crate::proxy::upstream::tls::RouteTls>>,
}

/// Loads and checks every file `config` names (certificates and keys,
/// client CA bundles, upstream CA bundles), as `portcullis check` and a
/// reload both do; every problem at once.
pub fn check_files(config: &crate::config::Config) -> Result<Checked, crate::config::ConfigErrors> {
    let mut upstream_tls = crate::proxy::upstream::tls::load(&config.routes);
    if let Err(streams) = crate::stream::client_auth(config) {
        match &mut upstream_tls {
            Ok(_) => upstream_tls = Err(streams),
            Err(errors) => errors.0.extend(streams.0),
        }
    }
    match (crate::tls::client_auth::load_all(&config.tls), upstream_tls) {
        (Err(mut errors), upstream_tls) => {
            errors.0.extend(upstream_tls.err().into_iter().flat_map(|e| e.0));
            Err(errors)
        }
        (Ok(_), Err(errors)) => Err(errors),
        (Ok((initial, client_auth)), Ok(upstream_tls)) => Ok(Checked {
            initial,
            client_auth,
            upstream_tls,
        }),
    }
}

/// What a reload did.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The new configuration is in service, as generation `generation`.
    Applied { generation: u64, changes: String },
    /// The file was refused, and nothing changed; `errors` says why, at
    /// file:line:key where it can.
    Refused { errors: String },
    /// A new process (`pid`) serves now; this one finishes what it has.
    Upgraded { pid: u32 },
}

/// What is asked of the running proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// Read the configuration file again.
    Reload,
    /// Start the binary again and hand it the listening sockets.
    Upgrade,
}

/// One reload or upgrade asked for.
pub(crate) struct Ask {
    pub(crate) what: What,
    pub(crate) why: &'static str,
    pub(crate) reply: Option<oneshot::Sender<Outcome>>,
}

/// Asks the running proxy to reload its configuration.
#[derive(Debug, Clone)]
pub struct Handle {
    asks: mpsc::UnboundedSender<Ask>,
}

impl Handle {
    pub(crate) fn new() -> (Handle, mpsc::UnboundedReceiver<Ask>) {
        let (asks, received) = mpsc::unbounded_channel();
        (Handle { asks }, received)
    }

    /// Reloads, and returns what happened. Reloads run one at a time, in
    /// the order asked.
    pub async fn reload(&self, why: &'static str) -> Outcome {
        self.ask(What::Reload, why).await
    }

    /// Starts the binary again with the listening sockets, as an upgrade
    /// does (see `handover`); returns once the new process serves, or
    /// with why it does not (this one then goes on serving).
    pub async fn upgrade(&self, why: &'static str) -> Outcome {
        self.ask(What::Upgrade, why).await
    }

    async fn ask(&self, what: What, why: &'static str) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let asked = self.asks.send(Ask {
            what,
            why,
            reply: Some(reply),
        });
        if asked.is_err() {
            return Outcome::Refused {
                errors: "the proxy is shutting down".to_owned(),
            };
        }
        outcome.await.unwrap_or_else(|_| Outcome::Refused {
            errors: "the proxy is shutting down".to_owned(),
        })
    }

    /// Asks for a reload without waiting for it (a signal, a file change):
    /// its outcome is logged.
    pub fn request(&self, why: &'static str) {
        let _ = self.asks.send(Ask {
            what: What::Reload,
            why,
            reply: None,
        });
    }

    /// Asks for an upgrade without waiting for it (SIGUSR2): its outcome
    /// is logged.
    pub fn request_upgrade(&self, why: &'static str) {
        let _ = self.asks.send(Ask {
            what: What::Upgrade,
            why,
            reply: None,
        });
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `portcullis_config_*` in `/metrics`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReloadMetrics {
    reloads: Family<ResultLabels, Counter>,
    generation: Gauge,
    last_success: Gauge,
}

impl ReloadMetrics {
    pub(crate) fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = ReloadMetrics::default();
        registry.register(
            "config_reloads",
            "Configuration reloads, by result (applied or refused)",
            m.reloads.clone(),
        );
        registry.register(
            "config_generation",
            "The generation of the configuration in service: 1 at start, one more per applied reload",
            m.generation.clone(),
        );
        registry.register(
            "config_last_reload_success_timestamp_seconds",
            "When the configuration in service was loaded (at start, or by the latest applied reload), in Unix seconds",
            m.last_success.clone(),
        );
        m.generation.set(1);
        m.last_success.set(unix_now());
        m
    }

    fn applied(&self, generation: u64) {
        self.reloads
            .get_or_create(&ResultLabels { result: "applied" })
            .inc();
        self.generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.last_success.set(unix_now());
    }

    fn refused(&self) {
        self.reloads
            .get_or_create(&ResultLabels { result: "refused" })
            .inc();
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
