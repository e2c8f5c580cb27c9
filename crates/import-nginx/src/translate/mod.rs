//! The walk over the configuration: the main context, `http` and its
//! `server` blocks, `stream`, each directive family translated by its own
//! module into keys of the tables below, or into a line of the report.

use std::path::{Path, PathBuf};

use crate::emit::{self, Table};
use crate::inherit::Scope;
use crate::parse::Directive;
use crate::report::Report;
use crate::{Error, Import, Options};

mod answers;
mod global;
mod location;
mod misc;
mod proxy;
mod servers;
mod statics;
mod stream;
mod upstream;

#[cfg(test)]
mod tests;

/// What the translation has made so far.
pub(crate) struct Out<'a> {
    pub(crate) report: Report,
    pub(crate) prefix: PathBuf,
    /// The `http` block's `upstream`s.
    pub(crate) upstreams: Vec<&'a Directive>,
    /// Pools routes name, in the order first named: name and table(s).
    pub(crate) pools: Vec<(String, Vec<Table>)>,
    pub(crate) server: Table,
    pub(crate) http: Table,
    pub(crate) tls: Table,
    pub(crate) client_auth: Table,
    pub(crate) certificates: Vec<Table>,
    pub(crate) log: Table,
    pub(crate) compression: Table,
    pub(crate) routes: Vec<Table>,
    pub(crate) streams: Vec<Table>,
    /// Whether `[compression]` is on for every route (gzip on in `http`).
    pub(crate) gzip_everywhere: bool,
    /// Whether the note on the X-Forwarded-* headers was written.
    pub(crate) forwarded_note: bool,
}

/// `file:line directive;`, the comment of a generated key.
pub(crate) fn from(d: &Directive) -> String {
    format!("{} {}", d.at(), d.text())
}

/// A path as nginx reads it: relative ones from the prefix.
pub(crate) fn absolute(prefix: &Path, path: &str) -> String {
    if path.starts_with('/') || path.contains('$') {
        path.to_string()
    } else {
        prefix.join(path).display().to_string()
    }
}

pub(crate) fn translate(
    list: &[Directive],
    options: &Options,
    prefix: &Path,
    report: Report,
    source: &str,
) -> Result<Import, Error> {
    let mut out = Out {
        report,
        prefix: prefix.to_path_buf(),
        upstreams: Vec::new(),
        pools: Vec::new(),
        server: Table::new("[server]"),
        http: Table::new("[http]"),
        tls: Table::new("[tls]"),
        client_auth: Table::new("[tls.client_auth]"),
        certificates: Vec::new(),
        log: Table::new("[log]"),
        compression: Table::new("[compression]"),
        routes: Vec::new(),
        streams: Vec::new(),
        gzip_everywhere: false,
        forwarded_note: false,
    };
    let mut saw_http = false;
    for d in list {
        match d.name.as_str() {
            "http" => {
                if saw_http {
                    out.report
                        .decision(d, "a second http block; only the first is translated");
                    continue;
                }
                saw_http = true;
                http(&mut out, d, options)?;
            }
            "stream" => stream::stream(&mut out, d),
            _ => misc::main_context(&mut out, d),
        }
    }
    let mut tables = vec![out.server, out.http, out.tls, out.client_auth];
    tables.extend(out.certificates);
    tables.push(out.log);
    tables.push(out.compression);
    for (_, pool) in out.pools {
        tables.extend(pool);
    }
    tables.extend(out.routes);
    tables.extend(out.streams);
    let head = format!(
        "proxy.toml written by `portcullis import-nginx` from {source}.\n\
         Each key cites the nginx line it came from; what could not be carried over\n\
         is in the report (stderr). Check it with `portcullis check --config FILE`."
    );
    Ok(Import {
        toml: emit::render(&head, &tables),
        report: out.report.lines,
    })
}

fn http<'a>(out: &mut Out<'a>, block: &'a Directive, options: &Options) -> Result<(), Error> {
    let scope = Scope::default().with(block.children());
    out.upstreams = block.children().iter().filter(|d| d.name == "upstream").collect();
    global::http_level(out, &scope);
    let servers: Vec<&Directive> = block.children().iter().filter(|d| d.name == "server").collect();
    servers::servers(out, &scope, &servers, options)
}
