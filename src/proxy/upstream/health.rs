//! Active health checks: one task per pool with `[upstream.health]`, which
//! every `interval` sends `GET path` with the server's Host to each server
//! at once, over the server's own client, and passes the result to the
//! server (`rise` and `fall` decide there). The task ends at shutdown.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request};
use http_body_util::BodyExt as _;
use tokio_util::sync::CancellationToken;

use super::group::Group;
use super::server::{CheckResult, Server};
use crate::config::ActiveHealth;
use crate::proxy::request_body::RequestBody;

/// Checks the servers of `group` until `stop` fires.
pub(crate) async fn run(group: Arc<Group>, stop: CancellationToken) {
    let Some(health) = group.health.clone() else {
        return;
    };
    let mut ticker = tokio::time::interval(health.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let servers = group.servers.load_full();
        let checks = servers.iter().map(|server| async {
            let result = check(server, &health).await;
            server.checked(&group.name, result, health.rise, health.fall);
        });
        tokio::select! {
            () = stop.cancelled() => return,
            _ = futures_util::future::join_all(checks) => {}
        }
    }
}

/// One check of `server`, within `timeout` for the whole exchange.
async fn check(server: &Server, health: &ActiveHealth) -> CheckResult {
    let exchange = async {
        let mut req = Request::new(RequestBody::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = health
            .path
            .parse()
            .map_err(|_| "the path is not a valid target".to_owned())?;
        let host =
            HeaderValue::from_str(&server.host).unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        req.headers_mut().insert(header::HOST, host);
        req.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static("portcullis-health-check"),
        );
        let (conn, _) = server
            .client
            .connection(&req)
            .await
            .map_err(|e| super::describe(&e).into_owned())?;
        let response = server
            .client
            .send(conn, req)
            .await
            .map_err(|e| super::describe(&e).into_owned())?;
        let status = response.status().as_u16();
        // Read to the end, so that the connection goes back to the pool.
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("the response body failed: {e}"))?;
        Ok::<u16, String>(status)
    };
    match tokio::time::timeout(health.timeout, exchange).await {
        Ok(Ok(status)) => {
            let ok = (health.expect_status.0..=health.expect_status.1).contains(&status);
            CheckResult {
                ok,
                status: Some(status),
                error: (!ok).then(|| {
                    format!(
                        "status {status} is outside expect_status {}-{}",
                        health.expect_status.0, health.expect_status.1
                    )
                }),
            }
        }
        Ok(Err(error)) => CheckResult {
            ok: false,
            status: None,
            error: Some(error),
        },
        Err(_) => CheckResult {
            ok: false,
            status: None,
            error: Some(format!(
                "no answer within {}",
                humantime::format_duration(health.timeout)
            )),
        },
    }
}
