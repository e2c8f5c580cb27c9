//! The configuration keys of the client address, request IDs, the
//! combined log, the client timeouts and the server-level answers: what is
//! accepted, and the exact place and hint of what is not.

use std::path::Path;

use portcullis::config::{from_str, ConfigError, RealIpHeader};

const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";

/// The one error `text` has.
fn error(text: &str) -> ConfigError {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
            errors.0[0].clone()
        }
    }
}

#[test]
fn trusted_proxies_and_real_ip_header_are_read() {
    let text = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.168.1.7\"]\nreal_ip_header = \"Forwarded\"\n{ROUTE}"
    );
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 3);
    assert!(config.server.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
    assert_eq!(config.server.real_ip_header, RealIpHeader::Forwarded);
    let default = from_str(ROUTE, Path::new("proxy.toml")).unwrap();
    assert!(default.server.trusted_proxies.is_empty());
    assert_eq!(default.server.real_ip_header, RealIpHeader::XForwardedFor);
}

#[test]
fn an_invalid_network_names_its_place_and_the_fix() {
    let e = error(&format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n{ROUTE}"
    ));
    assert_eq!(e.key, "server.trusted_proxies[1]");
    assert_eq!((e.origin.line, e.origin.column), (2, 34));
    assert!(e.message.contains("bits set past its /8 prefix"), "{}", e.message);
    assert!(e.hint.contains("\"10.0.0.0/8\""), "{}", e.hint);

    let e = error(&format!("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n{ROUTE}"));
    assert_eq!(e.key, "server.trusted_proxies[0]");
    assert!(e.hint.contains("from 0 to 32"), "{}", e.hint);

    let e = error(&format!("[server]\ntrusted_proxies = [\"lb.internal\"]\n{ROUTE}"));
    assert!(
        e.message.contains("not an IP address or network"),
        "{}",
        e.message
    );

    let e = error(&format!("[server]\ntrusted_proxies = \"10.0.0.0/8\"\n{ROUTE}"));
    assert_eq!(e.key, "server.trusted_proxies");
    assert!(e.hint.contains("[\"10.0.0.0/8\"]"), "{}", e.hint);
}

#[test]
fn nginx_names_point_at_trusted_proxies() {
    let e = error(&format!("[server]\nset_real_ip_from = [\"10.0.0.0/8\"]\n{ROUTE}"));
    assert_eq!(e.key, "server.set_real_ip_from");
    assert!(e.hint.contains("`trusted_proxies`"), "{}", e.hint);
}

#[test]
fn an_unknown_real_ip_header_lists_the_valid_ones() {
    let e = error(&format!("[server]\nreal_ip_header = \"x-client-ip\"\n{ROUTE}"));
    assert_eq!(e.key, "server.real_ip_header");
    assert_eq!((e.origin.line, e.origin.column), (2, 18));
    assert!(e.hint.contains("\"x-forwarded-for\""), "{}", e.hint);
    let e = error(&format!("[server]\nreal_ip_header = \"proxy_protocol\"\n{ROUTE}"));
    assert!(e.hint.contains("proxy_protocol = \"required\""), "{}", e.hint);
}

#[test]
fn proxy_protocol_needs_trusted_proxies_and_a_mode() {
    let e = error(&format!("[server]\nproxy_protocol = \"required\"\n{ROUTE}"));
    assert_eq!(e.key, "server.proxy_protocol");
    assert_eq!((e.origin.line, e.origin.column), (2, 18));
    assert!(e.hint.contains("trusted_proxies = ["), "{}", e.hint);

    let e = error(&format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = true\n{ROUTE}"
    ));
    assert!(e.hint.contains("proxy_protocol = \"required\""), "{}", e.hint);

    let e = error(&format!(
        "{ROUTE}[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[http]\nlisten = [\"127.0.0.1:8080\"]\nproxy_protocol = \"v2\"\n"
    ));
    assert_eq!(e.key, "http.proxy_protocol");
    assert!(e.message.contains("both v1 and v2 are read"), "{}", e.message);

    let text = format!(
        "[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\nproxy_protocol = \"optional\"\n[http]\nlisten = [\"127.0.0.1:8080\"]\nproxy_protocol = \"required\"\n{ROUTE}"
    );
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert_eq!(
        config.server.proxy_protocol,
        portcullis::config::ProxyProtocolIn::Optional
    );
    assert_eq!(
        config.http.unwrap().proxy_protocol,
        portcullis::config::ProxyProtocolIn::Required
    );
}

#[test]
fn request_id_keys_are_booleans() {
    let text = format!("[server]\necho_request_id = true\ntrace_context = true\n{ROUTE}");
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert!(config.server.echo_request_id && config.server.trace_context);
    let e = error(&format!("[server]\necho_request_id = \"yes\"\n{ROUTE}"));
    assert_eq!(e.key, "server.echo_request_id");
    assert_eq!((e.origin.line, e.origin.column), (2, 19));
    let e = error(&format!("[server]\ntraceparent = true\n{ROUTE}"));
    assert!(e.hint.contains("`trace_context`"), "{}", e.hint);
}

#[test]
fn log_format_and_template_errors() {
    let text =
        format!("[log]\nformat = \"combined\"\naccess_template = \"{{client_ip}} {{status}}\"\n{ROUTE}");
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert_eq!(config.log.format, portcullis::config::LogFormat::Combined);
    assert_eq!(config.log.access_template.unwrap().pieces.len(), 3);

    let e = error(&format!(
        "[log]\naccess_template = \"{{client_addr}} {{status}}\"\n{ROUTE}"
    ));
    assert_eq!(e.key, "log.access_template");
    assert_eq!((e.origin.line, e.origin.column), (2, 19));
    assert!(
        e.message.contains("`{client_addr}` is not a placeholder"),
        "{}",
        e.message
    );
    assert!(e.hint.contains("client_ip, client_port"), "{}", e.hint);

    let e = error(&format!(
        "[log]\naccess_template = \"$remote_addr {{status}}\"\n{ROUTE}"
    ));
    assert_eq!(e.hint, "write {client_ip}");

    let e = error(&format!("[log]\naccess_log_format = \"{{status}}\"\n{ROUTE}"));
    assert!(e.hint.contains("`access_template`"), "{}", e.hint);

    let e = error(&format!("[log]\nformat = \"Combined\"\n{ROUTE}"));
    assert_eq!(e.hint, "write format = \"combined\"");
}

#[test]
fn client_timeouts_are_off_unless_written_and_never_zero() {
    let config = from_str(ROUTE, Path::new("proxy.toml")).unwrap();
    assert_eq!(config.server.client_body_timeout, None);
    assert_eq!(config.server.send_timeout, None);
    assert!(config.server.keepalive);
    let text =
        format!("[server]\nclient_body_timeout = \"30s\"\nsend_timeout = \"1m\"\nkeepalive = false\n{ROUTE}");
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert_eq!(
        config.server.client_body_timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert_eq!(
        config.server.send_timeout,
        Some(std::time::Duration::from_secs(60))
    );
    assert!(!config.server.keepalive);

    let e = error(&format!("[server]\nsend_timeout = \"0s\"\n{ROUTE}"));
    assert_eq!(e.key, "server.send_timeout");
    assert_eq!((e.origin.line, e.origin.column), (2, 16));
    let e = error(&format!("[server]\nclient_body_timeout = 60\n{ROUTE}"));
    assert!(e.hint.contains("client_body_timeout = \"60s\""), "{}", e.hint);
    let e = error(&format!("[server]\nkeep_alive = false\n{ROUTE}"));
    assert!(e.hint.contains("`keepalive`"), "{}", e.hint);
}

#[test]
fn server_answer_keys() {
    let text = format!(
        "[tls]\nunknown_sni = \"reject\"\n[http]\nlisten = [\"127.0.0.1:8080\"]\nunknown_host = \"close\"\n{ROUTE}"
    );
    let config = from_str(&text, Path::new("proxy.toml")).unwrap();
    assert_eq!(config.tls.unknown_sni, portcullis::config::UnknownSni::Reject);
    assert_eq!(
        config.http.unwrap().unknown_host,
        portcullis::config::UnknownHost::Close
    );

    let e = error(&format!("[tls]\nunknown_sni = \"on\"\n{ROUTE}"));
    assert_eq!(e.key, "tls.unknown_sni");
    assert_eq!((e.origin.line, e.origin.column), (2, 15));
    assert!(e.hint.starts_with("write unknown_sni = \"reject\""), "{}", e.hint);
    let e = error(&format!("[tls]\nssl_reject_handshake = true\n{ROUTE}"));
    assert!(e.hint.contains("`unknown_sni`"), "{}", e.hint);
    let e = error(&format!(
        "[http]\nlisten = [\"127.0.0.1:8080\"]\nunknown_host = \"444\"\n{ROUTE}"
    ));
    assert_eq!(e.key, "http.unknown_host");
    assert!(e.hint.starts_with("write unknown_host = \"close\""), "{}", e.hint);
}

#[test]
fn route_proxy_protocol_and_forwarded() {
    let text = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\nsend_proxy_protocol = \"v2\"\nforwarded = true\n";
    let config = from_str(text, Path::new("proxy.toml")).unwrap();
    assert_eq!(
        config.routes[0].send_proxy_protocol,
        Some(portcullis::config::ProxyProtocol::V2)
    );
    assert!(config.routes[0].forwarded);
    let e = error(
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\nsend_proxy_protocol = \"on\"\n",
    );
    assert_eq!(e.key, "route[0].send_proxy_protocol");
    assert_eq!((e.origin.line, e.origin.column), (4, 23));
    assert!(
        e.hint.contains("write send_proxy_protocol = \"v1\""),
        "{}",
        e.hint
    );
    let e = error("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\nproxy_protocol = \"v1\"\n");
    assert!(e.hint.contains("`send_proxy_protocol`"), "{}", e.hint);
}
