//! `/metrics` of the `[[upstream]]` pools, read from the servers' own
//! counters at scrape time: per pool and server, the attempts sent, the
//! failures by kind, the retries away from it, whether it is up, its
//! requests in flight and the time since it last went up or down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::group::Group;
use super::server::{Counts, Server};

/// The pools in service, replaced by every reload.
pub(crate) type Pools = Arc<ArcSwap<Vec<Arc<Group>>>>;

/// The collector registered with the metrics registry.
#[derive(Debug)]
pub(crate) struct PoolCollector(pub(crate) Pools);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabels {
    pool: String,
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    pool: String,
    server: String,
    kind: &'static str,
}

type Count = fn(&Counts) -> &AtomicU64;
type Read = fn(&Server) -> i64;

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let groups = self.0.load();
        let all: Vec<(ServerLabels, Arc<Server>)> = groups
            .iter()
            .flat_map(|g| {
                let servers = g.servers.load_full();
                let pool = g.name.to_string();
                servers
                    .iter()
                    .map(|s| {
                        let labels = ServerLabels {
                            pool: pool.clone(),
                            server: s.label.to_string(),
                        };
                        (labels, s.clone())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let servers = || all.iter().map(|(labels, s)| (labels.clone(), &**s));
        let counters: [(&str, &str, Count); 2] = [
            (
                "upstream_server_requests",
                "Attempts sent to each server of a pool, retries included",
                |c| &c.requests,
            ),
            (
                "upstream_server_retries",
                "Requests tried on another server after this one failed",
                |c| &c.retries,
            ),
        ];
        for (name, help, count) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, server) in servers() {
                ConstCounter::new(count(&server.counts).load(Ordering::Relaxed))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "upstream_server_failures",
            "Failed attempts per server of a pool, by kind: connect (no connection) or exchange (no response head)",
            None,
            MetricType::Counter,
        )?;
        for (labels, server) in servers() {
            for (kind, value) in [
                ("connect", &server.counts.connect_failures),
                ("exchange", &server.counts.exchange_failures),
            ] {
                let labels = FailureLabels {
                    pool: labels.pool.clone(),
                    server: labels.server.clone(),
                    kind,
                };
                ConstCounter::new(value.load(Ordering::Relaxed)).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, Read); 3] = [
            (
                "upstream_server_up",
                "1 when the server of a pool takes requests, 0 while it is down",
                |s| i64::from(s.is_up(std::time::Instant::now())),
            ),
            (
                "upstream_server_in_flight",
                "Requests in flight on each server of a pool",
                |s| i64::try_from(s.in_flight()).unwrap_or(i64::MAX),
            ),
            (
                "upstream_server_state_seconds",
                "Seconds since the server last went up or down",
                |s| i64::try_from(s.since_change().as_secs()).unwrap_or(i64::MAX),
            ),
        ];
        for (name, help, read) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, server) in servers() {
                ConstGauge::new(read(server)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
