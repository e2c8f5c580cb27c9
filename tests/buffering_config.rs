//! `[buffering]` and a route's `request_buffering` and `response_buffering`
//! as an operator writes them: what they mean once loaded, and the exact
//! text of each mistake.

use std::path::Path;

use portcullis::config::{from_str, ConfigError};

const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:8080\"\n";
const MIB: u64 = 1024 * 1024;

fn error(text: &str) -> ConfigError {
    match from_str(text, Path::new("proxy.toml")) {
        Ok(_) => panic!("expected an error in:\n{text}"),
        Err(errors) => {
            assert_eq!(errors.len(), 1, "expected exactly one error, got:\n{errors}");
            errors.0[0].clone()
        }
    }
}

#[test]
fn defaults_route_overrides_and_off() {
    let config = from_str(
        &format!(
            "[buffering]\nrequest_buffering = \"8MiB\"\nresponse_buffering = \"512KiB\"\ntemp_dir = \"spill\"\n\n{ROUTE}\n\
             [[route]]\npath = \"/upload\"\nupstream = \"http://127.0.0.1:8080\"\nrequest_buffering = \"64MiB\"\nresponse_buffering = false\n\n\
             [[route]]\npath = \"/static/\"\nroot = \"/srv\"\n"
        ),
        Path::new("/etc/portcullis/proxy.toml"),
    )
    .unwrap();
    let all = &config.routes[0].buffering;
    assert_eq!((all.request, all.response), (Some(8 * MIB), Some(512 * 1024)));
    assert_eq!(
        all.temp_dir.as_deref().map(|p| p.as_path()),
        Some(Path::new("/etc/portcullis/spill"))
    );
    let upload = &config.routes[1].buffering;
    assert_eq!((upload.request, upload.response), (Some(64 * MIB), None));
    let files = &config.routes[2].buffering;
    assert_eq!(
        (files.request, files.response),
        (None, None),
        "a file route buffers nothing"
    );

    // Off unless asked; `true` is the default size.
    let config = from_str(ROUTE, Path::new("proxy.toml")).unwrap();
    assert_eq!(config.routes[0].buffering, Default::default());
    let config = from_str(
        &format!("{ROUTE}request_buffering = true\nresponse_buffering = true\n"),
        Path::new("proxy.toml"),
    )
    .unwrap();
    let on = &config.routes[0].buffering;
    assert_eq!((on.request, on.response), (Some(16 * MIB), Some(MIB)));
}

#[test]
fn bad_sizes_say_what_to_write() {
    let e = error(&format!("{ROUTE}request_buffering = \"0KiB\"\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:21: route[0].request_buffering: a buffer of 0 bytes would hold nothing\n  \
         help: write a size such as request_buffering = \"16MiB\", or request_buffering = false to stream \
         (nginx's proxy_request_buffering off is request_buffering = false)"
    );
    let e = error(&format!("[buffering]\nresponse_buffering = \"1MB\"\n\n{ROUTE}"));
    assert_eq!(e.key, "buffering.response_buffering");
    assert_eq!((e.origin.line, e.origin.column), (2, 22));
    assert!(e.hint.contains("proxy_buffer_size and proxy_buffers"), "{e}");
    let e = error(&format!("{ROUTE}response_buffering = \"on\"\n"));
    assert_eq!(e.key, "route[0].response_buffering");
    let e = error(&format!("{ROUTE}response_buffering = [1]\n"));
    assert_eq!(e.message, "expected a size or false, found a list");
}

#[test]
fn a_route_without_an_upstream_has_nothing_to_buffer() {
    let e = error(
        "[[route]]\npath = \"/old\"\nredirect = \"https://example.com/\"\nrequest_buffering = \"1MiB\"\n",
    );
    assert_eq!(e.key, "route[0].request_buffering");
    assert_eq!((e.origin.line, e.origin.column), (4, 21));
    assert!(e.message.starts_with("this route has no upstream"), "{e}");
    let e = error("[[route]]\npath = \"/s/\"\nroot = \"/srv\"\nresponse_buffering = \"1MiB\"\n");
    assert_eq!(e.key, "route[0].response_buffering");
}

#[test]
fn nginx_names_point_to_ours() {
    let e = error(&format!("{ROUTE}proxy_buffering = false\n"));
    assert_eq!(
        e.to_string(),
        "proxy.toml:4:1: route[0].proxy_buffering: unknown key `proxy_buffering` in [[route]]\n  \
         help: portcullis calls this setting `response_buffering`"
    );
    let e = error(&format!("{ROUTE}proxy_request_buffering = false\n"));
    assert_eq!(e.hint, "portcullis calls this setting `request_buffering`");
    let e = error(&format!(
        "[buffering]\nclient_body_temp_path = \"/tmp\"\n\n{ROUTE}"
    ));
    assert_eq!(e.hint, "portcullis calls this setting `temp_dir`");
    let e = error(&format!("[buffering]\nrequest_bufering = \"1MiB\"\n\n{ROUTE}"));
    assert_eq!(e.hint, "did you mean `request_buffering`?");
}
