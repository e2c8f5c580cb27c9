//! The command line: `portcullis [--config FILE] [run | check | reload |
//! upgrade | probe | gen-cert ... | import-nginx ...]`, `--help` and `--version`. Hand-written: eight
//! commands and a dozen options do not pay for an argument-parsing
//! library's share of the image.

use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asked for.
pub(crate) enum Cli {
    Run {
        config: Option<PathBuf>,
    },
    Check {
        config: Option<PathBuf>,
    },
    /// Check the file, then have the running proxy reload it.
    Reload {
        config: Option<PathBuf>,
        /// `--pid`: the process to signal when there is no admin listener.
        pid: Option<i32>,
    },
    /// Have the running proxy start the binary again with its sockets.
    Upgrade {
        config: Option<PathBuf>,
        pid: Option<i32>,
    },
    GenCert(GenCertArgs),
    /// `probe [URL]`: the health check of the container image.
    Probe {
        url: Option<String>,
    },
    /// `import-nginx FILE`: translate an nginx configuration.
    ImportNginx(ImportArgs),
    /// Print this to standard output and exit 0 (`--help`, `--version`).
    Print(String),
}

/// `portcullis import-nginx`.
pub(crate) struct ImportArgs {
    pub(crate) file: PathBuf,
    pub(crate) server: Option<String>,
    pub(crate) out: Option<PathBuf>,
    pub(crate) prefix: Option<PathBuf>,
}

/// `portcullis gen-cert`.
pub(crate) struct GenCertArgs {
    pub(crate) dir: PathBuf,
    pub(crate) names: Vec<String>,
    pub(crate) days: u32,
    pub(crate) force: bool,
}

/// A usage error: the message, printed with the usage; exit 2.
pub(crate) struct Usage(pub(crate) String);

const HELP: &str = "A TLS-terminating reverse proxy

Usage: portcullis [OPTIONS] [COMMAND]

Commands:
  run       Serve (the default)
  check     Validate the configuration and the certificates it names, then exit:
            0 when valid, 2 with every error otherwise
  reload    Check the configuration, then have the running proxy reload it (through
            [admin] POST /reload, or SIGHUP to --pid <PID> or to the process in
            server.pid_file): 0 when reloaded, 2 with every error when refused
  upgrade   Check the configuration, then have the running proxy start the binary
            again and hand it the listening sockets (through [admin] POST /upgrade,
            or SIGUSR2 to --pid <PID> or to the process in server.pid_file)
  probe     GET a URL (default http://127.0.0.1:9901/healthz, the admin listener):
            0 on a 2xx status, 1 otherwise; the container image's health check
  gen-cert  Write a development CA, a server certificate and a client certificate
            (for mTLS) it signed, and print how to trust the CA
  import-nginx FILE [--server NAME] [-o OUT] [--prefix DIR]
            Translate an nginx configuration into a proxy.toml (stdout, or OUT), the
            report of what was not carried over on stderr, then check it: 0 complete,
            3 written but the report lists differences, 2 unreadable or invalid

Options:
  -c, --config <FILE>  The configuration file [env: PORTCULLIS_CONFIG]. Without it,
                       an embedded default serves https://127.0.0.1:8443 with
                       / -> 127.0.0.1:8080 and /ws -> 127.0.0.1:9222
  -h, --help           Print help
  -V, --version        Print version (--version: with the commit and TLS stack)
";

const GEN_CERT_HELP: &str = "Write a development CA, a server certificate and a client certificate (for
mTLS) it signed, and print how to trust the CA

Usage: portcullis gen-cert --dir <DIR> [OPTIONS]

Options:
      --dir <DIR>      Directory to write ca/, server/ and client/ into (created as needed)
      --names <NAMES>  Extra names for the server certificate, comma-separated DNS names
                       or IP addresses; localhost, 127.0.0.1 and ::1 are always included
      --days <N>       Validity in days, from 1 to 3650 [default: 365]
      --force          Overwrite existing files
  -h, --help           Print help
";

const IMPORT_HELP: &str = "Translate an nginx configuration into a proxy.toml, report on stderr each
directive not carried over as it is (file:line: directive: dropped, approximated
or needs a decision), then check the result as `portcullis check` does

Usage: portcullis import-nginx <FILE> [OPTIONS]

Options:
      --server <NAME>  Translate only the server blocks with this server_name
  -o, --output <OUT>   Write the proxy.toml there instead of standard output
      --prefix <DIR>   Where relative includes and paths are read from (nginx's
                       configuration directory) [default: the file's directory]
  -h, --help           Print help

Exit status: 0 complete; 3 written, but the report lists something that changes
behaviour (or files it names are not readable here); 2 the file could not be read
or parsed, or the result fails the checks
";

/// Reads `args` (without the program name); `env_config` is
/// `PORTCULLIS_CONFIG`, used when no `--config` is given.
pub(crate) fn parse(
    args: impl IntoIterator<Item = OsString>,
    env_config: Option<OsString>,
    short_version: &str,
    long_version: &str,
) -> Result<Cli, Usage> {
    let mut config: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    let mut dir = None;
    let mut names = Vec::new();
    let mut days = portcullis::gencert::DEFAULT_DAYS;
    let mut force = false;
    let mut pid = None;
    let mut probe_url = None;
    let mut import = ImportArgs {
        file: PathBuf::new(),
        server: None,
        out: None,
        prefix: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| Usage(format!("argument {arg:?} is not valid UTF-8")))?
            .to_string();
        // `--name=value` and `-cvalue` as well as `--name value`.
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(OsString::from(v))),
            _ if text.starts_with("-c") && text.len() > 2 && !text.starts_with("--") => {
                ("-c".to_string(), Some(OsString::from(&text[2..])))
            }
            _ => (text.clone(), None),
        };
        let mut value = |what: &str| -> Result<OsString, Usage> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or_else(|| Usage(format!("{what} needs a value"))),
            }
        };
        let gen_cert = command.as_deref() == Some("gen-cert");
        let importing = command.as_deref() == Some("import-nginx");
        match name.as_str() {
            "-h" | "--help" => {
                let help = match command.as_deref() {
                    Some("gen-cert") => GEN_CERT_HELP,
                    Some("import-nginx") => IMPORT_HELP,
                    _ => HELP,
                };
                return Ok(Cli::Print(help.to_string()));
            }
            "-V" => return Ok(Cli::Print(format!("portcullis {short_version}\n"))),
            "--version" => return Ok(Cli::Print(format!("portcullis {long_version}\n"))),
            "-c" | "--config" => config = Some(PathBuf::from(value("--config <FILE>")?)),
            "--dir" if gen_cert => dir = Some(PathBuf::from(value("--dir <DIR>")?)),
            "--names" if gen_cert => {
                let v = value("--names <NAMES>")?;
                names.push(v.to_str().unwrap_or_default().to_string());
            }
            "--days" if gen_cert => {
                let v = value("--days <N>")?;
                let v = v.to_str().unwrap_or_default();
                days = v
                    .parse()
                    .map_err(|_| Usage(format!("invalid value '{v}' for '--days <N>': not a number")))?;
            }
            "--force" if gen_cert => force = true,
            "--server" if importing => {
                import.server = Some(value("--server <NAME>")?.to_string_lossy().into_owned())
            }
            "-o" | "--output" if importing => import.out = Some(PathBuf::from(value("--output <OUT>")?)),
            "--prefix" if importing => import.prefix = Some(PathBuf::from(value("--prefix <DIR>")?)),
            file if importing && import.file.as_os_str().is_empty() && !file.starts_with('-') => {
                import.file = PathBuf::from(file);
            }
            "--pid" if matches!(command.as_deref(), Some("reload" | "upgrade")) => {
                let v = value("--pid <PID>")?;
                let v = v.to_str().unwrap_or_default();
                pid = Some(v.parse::<i32>().ok().filter(|p| *p > 1).ok_or_else(|| {
                    Usage(format!("invalid value '{v}' for '--pid <PID>': not a process ID"))
                })?);
            }
            "run" | "check" | "reload" | "upgrade" | "probe" | "gen-cert" | "import-nginx"
                if command.is_none() =>
            {
                command = Some(name)
            }
            url if command.as_deref() == Some("probe") && probe_url.is_none() && !url.starts_with('-') => {
                probe_url = Some(url.to_owned());
            }
            "help" if command.is_none() => return Ok(Cli::Print(HELP.to_string())),
            other if other.starts_with('-') => {
                return Err(Usage(format!("unexpected argument '{other}'")));
            }
            other => return Err(Usage(format!("unrecognized subcommand '{other}'"))),
        }
    }
    let config = config.or(env_config.map(PathBuf::from));
    match command.as_deref() {
        None | Some("run") => Ok(Cli::Run { config }),
        Some("check") => Ok(Cli::Check { config }),
        Some("reload") => Ok(Cli::Reload { config, pid }),
        Some("upgrade") => Ok(Cli::Upgrade { config, pid }),
        Some("probe") => Ok(Cli::Probe { url: probe_url }),
        Some("import-nginx") if import.file.as_os_str().is_empty() => Err(Usage(
            "import-nginx needs the nginx configuration file".to_string(),
        )),
        Some("import-nginx") => Ok(Cli::ImportNginx(import)),
        _ => {
            let dir = dir.ok_or_else(|| Usage("gen-cert needs --dir <DIR>".to_string()))?;
            Ok(Cli::GenCert(GenCertArgs {
                dir,
                names,
                days,
                force,
            }))
        }
    }
}

/// The text for a usage error.
pub(crate) fn usage_error(Usage(message): &Usage) -> String {
    format!(
        "error: {message}\n\nUsage: portcullis [OPTIONS] [COMMAND]\n\nFor more information, try '--help'."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str], env: Option<&str>) -> Result<Cli, Usage> {
        parse(
            args.iter().map(OsString::from),
            env.map(OsString::from),
            "1",
            "1\nlong",
        )
    }

    #[test]
    fn config_anywhere_and_from_the_environment() {
        for args in [
            &["--config", "a.toml", "check"][..],
            &["check", "--config", "a.toml"],
            &["check", "--config=a.toml"],
            &["-c", "a.toml", "check"],
            &["check", "-ca.toml"],
        ] {
            match parse_args(args, Some("env.toml")) {
                Ok(Cli::Check { config }) => assert_eq!(config, Some(PathBuf::from("a.toml")), "{args:?}"),
                _ => panic!("{args:?}"),
            }
        }
        match parse_args(&[], Some("env.toml")) {
            Ok(Cli::Run { config }) => assert_eq!(config, Some(PathBuf::from("env.toml"))),
            _ => panic!("no arguments is run"),
        }
    }

    #[test]
    fn gen_cert_options() {
        let args = [
            "gen-cert",
            "--dir",
            "d",
            "--names",
            "a,b",
            "--names=c",
            "--days",
            "30",
            "--force",
        ];
        match parse_args(&args, None) {
            Ok(Cli::GenCert(g)) => {
                assert_eq!(g.dir, PathBuf::from("d"));
                assert_eq!(g.names, ["a,b", "c"]);
                assert_eq!((g.days, g.force), (30, true));
            }
            _ => panic!("gen-cert"),
        }
    }

    #[test]
    fn mistakes_are_usage_errors() {
        for args in [
            &["serve"][..],
            &["--bogus"],
            &["--config"],
            &["gen-cert"],
            &["gen-cert", "--dir", "d", "--days", "many"],
            &["check", "--dir", "d"],
            &["check", "run"],
        ] {
            assert!(parse_args(args, None).is_err(), "{args:?}");
        }
    }

    #[test]
    fn import_nginx_options() {
        let args = [
            "import-nginx",
            "/etc/nginx/nginx.conf",
            "--server",
            "a.example",
            "-o",
            "p.toml",
            "--prefix=/etc/nginx",
        ];
        match parse_args(&args, None) {
            Ok(Cli::ImportNginx(i)) => {
                assert_eq!(i.file, PathBuf::from("/etc/nginx/nginx.conf"));
                assert_eq!(i.server.as_deref(), Some("a.example"));
                assert_eq!(i.out, Some(PathBuf::from("p.toml")));
                assert_eq!(i.prefix, Some(PathBuf::from("/etc/nginx")));
            }
            _ => panic!("import-nginx"),
        }
        assert!(parse_args(&["import-nginx"], None).is_err());
        assert!(parse_args(&["import-nginx", "a.conf", "b.conf"], None).is_err());
        assert!(parse_args(&["check", "--server", "x"], None).is_err());
        assert!(
            matches!(parse_args(&["import-nginx", "--help"], None), Ok(Cli::Print(h)) if h.contains("--prefix <DIR>"))
        );
    }

    #[test]
    fn help_and_versions() {
        assert!(
            matches!(parse_args(&["--help"], None), Ok(Cli::Print(h)) if h.contains("Usage: portcullis"))
        );
        assert!(
            matches!(parse_args(&["gen-cert", "-h"], None), Ok(Cli::Print(h)) if h.contains("--dir <DIR>"))
        );
        assert!(matches!(parse_args(&["-V"], None), Ok(Cli::Print(v)) if v == "portcullis 1\n"));
        assert!(matches!(parse_args(&["--version"], None), Ok(Cli::Print(v)) if v == "portcullis 1\nlong\n"));
    }
}
