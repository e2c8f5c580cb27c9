//! The proxy binary with its configuration in a file that a test rewrites
//! and reloads: through the admin listener's `POST /reload`, SIGHUP, or
//! `portcullis reload`.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::process::ProxyProcess;
use super::Site;

/// A running proxy whose file is `site`'s `proxy.toml`.
pub struct LiveProxy {
    pub process: ProxyProcess,
    /// The first TLS listener.
    pub tls: SocketAddr,
    pub admin: SocketAddr,
    pub file: PathBuf,
}

/// `[server]`, `[tls]` and `[admin]` for `site`, listening on 127.0.0.1:0,
/// with `server_keys` added to `[server]`, then `rest` (routes, pools).
pub fn config(server_keys: &str, rest: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nshutdown_grace = \"10s\"\n{server_keys}\n\n\
         [tls]\ncert = \"fullchain.pem\"\nkey = \"privkey.pem\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\n{rest}"
    )
}

impl LiveProxy {
    /// Starts the binary on `toml`, written to `site`'s `proxy.toml`.
    pub async fn start(site: &Site, toml: &str) -> LiveProxy {
        let (process, tls) = ProxyProcess::start(site.dir.path(), toml).await;
        let admin = process.logged_addr("admin on http://").await;
        LiveProxy {
            process,
            tls,
            admin,
            file: site.path("proxy.toml"),
        }
    }

    /// Writes `toml` as the configuration file (not yet reloaded).
    pub fn write(&self, toml: &str) {
        // Whole or not at all, as a careful operator's tool writes it.
        let tmp = self.file.with_extension("toml.tmp");
        std::fs::write(&tmp, toml).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    /// `POST /reload`: the status (200 applied, 422 refused) and text.
    pub async fn reload(&self) -> (u16, String) {
        super::admin::post(self.admin, "/reload").await
    }

    /// Writes `toml` and reloads it, which must be applied.
    pub async fn apply(&self, toml: &str) -> String {
        self.write(toml);
        let (status, text) = self.reload().await;
        assert_eq!(status, 200, "the reload was not applied: {text}");
        text
    }

    /// `GET /config` as JSON.
    pub async fn config(&self) -> serde_json::Value {
        let (status, text) = super::admin::get(self.admin, "/config").await;
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The bound address of every HTTP listener, TLS first.
    pub async fn bound(&self) -> Vec<SocketAddr> {
        self.config().await["bound"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().parse().unwrap())
            .collect()
    }

    /// The value of the sample `name_and_labels` on `/metrics`.
    pub async fn metric(&self, name_and_labels: &str) -> Option<f64> {
        super::admin::metric(self.admin, name_and_labels).await
    }
}
