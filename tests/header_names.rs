//! Request header names with `_` never reach the upstream by default: CGI,
//! WSGI and PHP stacks fold `_` and `-` into one variable, so
//! `X_Client_Cert_Verify` would pass there for the identity header the
//! proxy sets, and `Transfer_Encoding` for the framing it checked. With
//! `underscores_in_headers = true` ordinary names are kept, and names that
//! fold onto a header the proxy sets or strips are still dropped.

mod support;

use support::admin::AdminProxy;
use support::raw::Raw;
use support::*;

/// A request that carries underscored names: three that fold onto headers
/// the proxy owns, one that is the application's own.
const REQUEST: &str = "GET /names HTTP/1.1\r\nHost: localhost\r\n\
     X_Client_Cert_Verify: SUCCESS\r\nX_Forwarded_For: 10.6.6.6\r\n\
     Transfer_Encoding: chunked\r\nMy_App_Token: t0k3n\r\nX-Plain: kept\r\n\r\n";

async fn send_through(server_keys: &str) -> (http::HeaderMap, AdminProxy) {
    let site = Site::new();
    let origin = Origin::hello().await;
    let toml = tls_config(server_keys, &route("/", &origin.url(), ""));
    let proxy = AdminProxy::start(&toml, site.dir.path()).await;
    let mut raw = Raw::connect(proxy.tls, &site.ca).await;
    raw.send(REQUEST.as_bytes()).await;
    let resp = raw.read_response().await.expect("no response");
    assert_eq!(resp.status, 200, "{}", resp.head_text());
    (origin.last_seen().headers, proxy)
}

#[tokio::test]
async fn underscored_names_are_dropped_by_default_and_counted() {
    let (seen, proxy) = send_through("").await;
    let underscored: Vec<_> = seen.keys().filter(|n| n.as_str().contains('_')).collect();
    assert!(underscored.is_empty(), "the upstream saw {underscored:?}");
    assert_eq!(seen["x-plain"], "kept");
    // The proxy's own identity header is the only one of its kind.
    assert_eq!(seen["x-client-cert-verify"], "NONE");
    assert_eq!(
        proxy
            .metric("portcullis_request_headers_dropped_total{reason=\"underscore\"}")
            .await,
        Some(4.0)
    );
    proxy.stop().await;
}

#[tokio::test]
async fn underscores_in_headers_keeps_names_but_never_the_spoofing_ones() {
    let (seen, proxy) = send_through("underscores_in_headers = true").await;
    assert_eq!(seen["my_app_token"], "t0k3n");
    for spoof in ["x_client_cert_verify", "x_forwarded_for", "transfer_encoding"] {
        assert!(!seen.contains_key(spoof), "the upstream saw {spoof}");
    }
    assert_eq!(seen["x-client-cert-verify"], "NONE");
    assert_eq!(
        proxy
            .metric("portcullis_request_headers_dropped_total{reason=\"underscore\"}")
            .await,
        Some(3.0)
    );
    proxy.stop().await;
}
