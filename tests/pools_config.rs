//! `[[upstream]]` as an operator writes it: what a valid pool becomes, and
//! the exact error (file:line, key, hint) for each key written wrong.

use std::path::Path;
use std::time::Duration;

use portcullis::config::{from_str, Balance, Config, ConfigError, HashKey, ServerAddress};

const ROUTE: &str = "[[route]]\npath = \"/\"\nupstream = \"app\"\n";

fn parse(text: &str) -> Config {
    from_str(text, Path::new("/etc/portcullis/proxy.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// The one error in the pool of a file with the route on `app` and this
/// pool (a pool without a valid name also leaves the route naming none).
fn error(pool: &str) -> ConfigError {
    let text = format!("{ROUTE}\n[[upstream]]\n{pool}\n");
    match from_str(&text, Path::new("proxy.toml")) {
        Ok(_) => panic!("expected an error for:\n{pool}"),
        Err(errors) => {
            let in_pool: Vec<_> = errors
                .0
                .iter()
                .filter(|e| e.key.starts_with("upstream"))
                .collect();
            assert_eq!(in_pool.len(), 1, "expected one error, got:\n{errors}");
            in_pool[0].clone()
        }
    }
}

const SERVERS: &str = "name = \"app\"\nservers = [\"http://127.0.0.1:8080\"]";

#[test]
fn a_full_pool_is_read_as_written() {
    let config = parse(&format!(
        "{ROUTE}\n[[upstream]]\nname = \"app\"\n\
         servers = [\"http://app-1:8080\", {{ url = \"https://app-2\", weight = 2, max_conns = 10 }}, \
         {{ url = \"unix:/run/app.sock\", backup = true }}, \"unix:app.sock\"]\n\
         balance = \"hash\"\nhash_key = \"header:X-User\"\nretries = 1\nretry_budget = \"50%\"\n\
         keepalive = 8\nkeepalive_timeout = \"5s\"\n\
         [upstream.health]\npath = \"/healthz\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nexpect_status = \"200-204\"\nrise = 1\nfall = 2\n\
         [upstream.passive]\nmax_fails = 3\nfail_timeout = \"30s\"\n"
    ));
    let route = &config.routes[0];
    assert_eq!(route.pool.as_deref(), Some("app"));
    let pool = &config.pools[0];
    assert_eq!(pool.name, "app");
    assert_eq!(pool.servers.len(), 4);
    assert_eq!(pool.servers[1].weight, 2);
    assert_eq!(pool.servers[1].max_conns, Some(10));
    assert!(pool.servers[2].backup);
    assert_eq!(
        pool.servers[2].address,
        ServerAddress::Unix("/run/app.sock".into())
    );
    assert_eq!(
        pool.servers[3].address,
        ServerAddress::Unix("/etc/portcullis/app.sock".into())
    );
    assert_eq!(pool.balance, Balance::Hash(HashKey::Header("x-user".into())));
    assert_eq!(pool.retries, 1);
    assert!((pool.retry_budget - 0.5).abs() < 1e-9);
    assert_eq!(pool.keepalive, 8);
    assert_eq!(pool.keepalive_timeout, Duration::from_secs(5));
    let health = pool.health.as_ref().unwrap();
    assert_eq!(
        (
            health.path.as_str(),
            health.expect_status,
            health.rise,
            health.fall
        ),
        ("/healthz", (200, 204), 1, 2)
    );
    assert_eq!(health.timeout, Duration::from_millis(500));
    assert_eq!(
        (pool.passive.max_fails, pool.passive.fail_timeout),
        (3, Duration::from_secs(30))
    );
    // An https:// server makes the route's upstream TLS keys apply.
    assert!(route.upstream_tls.is_some());
}

#[test]
fn defaults_are_nginx_like() {
    let config = parse(&format!("{ROUTE}\n[[upstream]]\n{SERVERS}\n"));
    let pool = &config.pools[0];
    assert_eq!(pool.balance, Balance::RoundRobin);
    assert!(pool.health.is_none());
    assert_eq!(
        (pool.passive.max_fails, pool.passive.fail_timeout),
        (1, Duration::from_secs(10))
    );
    assert_eq!(pool.retries, 2);
    assert!((pool.retry_budget - 0.2).abs() < 1e-9);
    assert_eq!(pool.keepalive, 64);
    assert_eq!(pool.resolve_interval, Some(Duration::from_secs(5)));
    let config = parse(&format!(
        "{ROUTE}\n[[upstream]]\n{SERVERS}\nresolve_interval = \"0s\"\n"
    ));
    assert_eq!(config.pools[0].resolve_interval, None);
    let config = parse(&format!("{ROUTE}\n[[upstream]]\n{SERVERS}\nbalance = \"hash\"\n"));
    assert_eq!(config.pools[0].balance, Balance::Hash(HashKey::ClientIp));
}

#[test]
fn an_unknown_pool_name_suggests_the_closest() {
    let text = format!("[[route]]\npath = \"/\"\nupstream = \"apq\"\n\n[[upstream]]\n{SERVERS}\n");
    let errors = from_str(&text, Path::new("proxy.toml")).unwrap_err();
    let e = &errors.0[0];
    assert_eq!(e.key, "route[0].upstream");
    assert_eq!((e.origin.line, e.origin.column), (3, 12));
    assert_eq!(e.message, "no [[upstream]] is named `apq`");
    assert_eq!(e.hint, "did you mean upstream = \"app\"?");

    let errors = from_str(
        "[[route]]\npath = \"/\"\nupstream = \"backend\"\n",
        Path::new("proxy.toml"),
    )
    .unwrap_err();
    assert!(
        errors.0[0].hint.contains("[[upstream]] name = \"backend\""),
        "{errors}"
    );
}

#[test]
fn a_pool_that_is_invalid_is_not_also_missing() {
    let e = error("name = \"app\"\nservers = []");
    assert_eq!(e.key, "upstream[0].servers");
    assert_eq!(e.message, "the pool has no server");
}

#[test]
fn each_key_written_wrong_says_what_to_write() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "servers = [\"http://a:1\"]",
            "upstream[0].name",
            "this [[upstream]] has no `name`",
            "name = \"app\"",
        ),
        (
            "name = \"http://a\"\nservers = [\"http://a:1\"]",
            "upstream[0].name",
            "is not a pool name",
            "goes in `servers`",
        ),
        (
            "name = \"app\"",
            "upstream[0].servers",
            "has no `servers`",
            "servers = [",
        ),
        (
            "name = \"app\"\nservers = \"http://a:1\"",
            "upstream[0].servers",
            "expected a list of servers",
            "servers = [\"http://a:1\"]",
        ),
        (
            "name = \"app\"\nservers = [\"ftp://a:1\"]",
            "upstream[0].servers[0]",
            "unsupported scheme",
            "http://",
        ),
        (
            "name = \"app\"\nservers = [\"unix:\"]",
            "upstream[0].servers[0]",
            "unix socket path is empty",
            "unix:/run/app.sock",
        ),
        (
            "name = \"app\"\nservers = [42]",
            "upstream[0].servers[0]",
            "expected an address or a server table",
            "unix:/path",
        ),
        (
            "name = \"app\"\nservers = [{ weight = 2 }]",
            "upstream[0].servers[0].url",
            "has no `url`",
            "url = ",
        ),
        (
            "name = \"app\"\nservers = [{ url = \"http://a:1\", weight = 0 }]",
            "upstream[0].servers[0].weight",
            "weight of 0",
            "backup = true",
        ),
        (
            "name = \"app\"\nservers = [{ url = \"http://a:1\", max_conns = 0 }]",
            "upstream[0].servers[0].max_conns",
            "at least 1",
            "max_conns=0",
        ),
        (
            "name = \"app\"\nservers = [{ url = \"http://a:1\", backup = true }]",
            "upstream[0].servers",
            "every server of the pool is a backup",
            "remove backup",
        ),
        (
            "name = \"app\"\nservers = [{ url = \"http://a:1\", wieght = 2 }]",
            "upstream[0].servers[0].wieght",
            "unknown key",
            "did you mean `weight`?",
        ),
        (
            &format!("{SERVERS}\nbalance = \"ip_hash\""),
            "upstream[0].balance",
            "unknown balance `ip_hash`",
            "hash_key = \"client_ip\"",
        ),
        (
            &format!("{SERVERS}\nbalance = \"least_con\""),
            "upstream[0].balance",
            "unknown balance",
            "did you mean balance = \"least_conn\"?",
        ),
        (
            &format!("{SERVERS}\nhash_key = \"client_ip\""),
            "upstream[0].hash_key",
            "only read with balance = \"hash\"",
            "balance = \"hash\"",
        ),
        (
            &format!("{SERVERS}\nbalance = \"hash\"\nhash_key = \"$cookie_session\""),
            "upstream[0].hash_key",
            "is not a hash key",
            "hash_key = \"cookie:session\"",
        ),
        (
            &format!("{SERVERS}\nbalance = \"hash\"\nhash_key = \"header:bad header\""),
            "upstream[0].hash_key",
            "is not a hash key",
            "header:X-User",
        ),
        (
            &format!("{SERVERS}\nretries = -1"),
            "upstream[0].retries",
            "out of range",
            "retries = 2",
        ),
        (
            &format!("{SERVERS}\nretry_budget = 20"),
            "upstream[0].retry_budget",
            "percentage",
            "retry_budget = \"20%\"",
        ),
        (
            &format!("{SERVERS}\nretry_budget = \"120%\""),
            "upstream[0].retry_budget",
            "percentage",
            "retry_budget = \"20%\"",
        ),
        (
            &format!("{SERVERS}\nkeepalive = -1"),
            "upstream[0].keepalive",
            "must be 0 or more",
            "keepalive = 64",
        ),
        (
            &format!("{SERVERS}\nkeepalive_timeout = \"0s\""),
            "upstream[0].keepalive_timeout",
            "zero keepalive_timeout",
            "keepalive = 0",
        ),
        (
            &format!("{SERVERS}\nmax_fails = 3"),
            "upstream[0].max_fails",
            "unknown key",
            "portcullis calls this setting `passive`",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\ninterval = \"1s\""),
            "upstream[0].health.path",
            "has no `path`",
            "path = \"/healthz\"",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"healthz\""),
            "upstream[0].health.path",
            "is not a request path",
            "path = \"/healthz\"",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\ninterval = \"0s\""),
            "upstream[0].health.interval",
            "",
            "",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\ntimeout = 2"),
            "upstream[0].health.timeout",
            "expected a duration string",
            "\"2s\"",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\nexpect_status = \"300-200\""),
            "upstream[0].health.expect_status",
            "is not a status or a range",
            "200-399",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\nrise = 0"),
            "upstream[0].health.rise",
            "0 checks in a row",
            "rise = 2",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\nfall = 0"),
            "upstream[0].health.fall",
            "0 checks in a row",
            "fall = 2",
        ),
        (
            &format!("{SERVERS}\n[upstream.health]\npath = \"/h\"\nfalls = 3"),
            "upstream[0].health.falls",
            "unknown key",
            "`fall`",
        ),
        (
            &format!("{SERVERS}\n[upstream.passive]\nmax_fails = \"3\""),
            "upstream[0].passive.max_fails",
            "expected an integer",
            "max_fails = 3",
        ),
        (
            &format!("{SERVERS}\n[upstream.passive]\nfail_timeout = \"10\""),
            "upstream[0].passive.fail_timeout",
            "",
            "",
        ),
    ];
    for (pool, key, message, hint) in cases {
        let e = error(pool);
        assert_eq!(&e.key, key, "{pool}: {e}");
        assert!(e.message.contains(message), "{pool}: message {:?}", e.message);
        assert!(e.hint.contains(hint), "{pool}: hint {:?}", e.hint);
        assert!(e.origin.line >= 5, "{pool}: the error points into the pool: {e}");
    }
}

#[test]
fn two_pools_may_not_share_a_name() {
    let text = format!("{ROUTE}\n[[upstream]]\n{SERVERS}\n\n[[upstream]]\n{SERVERS}\n");
    let errors = from_str(&text, Path::new("proxy.toml")).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors}");
    let e = &errors.0[0];
    assert_eq!(e.key, "upstream[1].name");
    assert!(e.message.contains("already defined at proxy.toml:5"), "{e}");
}

#[test]
fn a_misspelt_table_name_is_pointed_at_upstream() {
    let text = format!("{ROUTE}\n[[upstreams]]\n{SERVERS}\n");
    let errors = from_str(&text, Path::new("proxy.toml")).unwrap_err();
    assert!(errors.0.iter().any(|e| e.hint.contains("`upstream`")), "{errors}");
}

/// The example's `[[upstream]]` block is commented out; uncommented, it
/// must load, and a route can name it.
#[test]
fn example_pool_block_loads_when_uncommented() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml.example")).unwrap();
    let setting = |line: &&str| {
        line.starts_with('[')
            || line.starts_with(' ')
            || line
                .split_once(" = ")
                .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    let block: Vec<&str> = text
        .lines()
        .skip_while(|line| *line != "# [[upstream]]")
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# "))
        .filter(setting)
        .collect();
    assert!(block.len() > 10, "{block:?}");
    let config = parse(&format!("{ROUTE}\n{}\n", block.join("\n")));
    let pool = &config.pools[0];
    assert_eq!(pool.servers.len(), 3);
    assert_eq!(pool.balance, Balance::Hash(HashKey::ClientIp));
    assert!(pool.health.is_some());
}
