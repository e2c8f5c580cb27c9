//! `include`: each one replaced by the directives of the files it names,
//! in nginx's order (a glob's matches sorted), relative paths taken from
//! the prefix (nginx's configuration directory), an include cycle refused
//! with the chain that makes it.

use std::path::{Path, PathBuf};

use crate::parse::{self, Directive};
use crate::report::Report;
use crate::Error;

/// Reads `path` and every file it includes.
pub(crate) fn load(path: &Path, prefix: &Path, report: &mut Report) -> Result<Vec<Directive>, Error> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::at(&name, 0, format!("cannot read the file: {e}")))?;
    let list = parse::parse(&text, &name)?;
    let mut chain = vec![(canonical(path), name)];
    expand(list, prefix, &mut chain, report)
}

/// The directives of `list` with their includes expanded, at any depth;
/// `chain` holds the files being read, outermost first.
fn expand(
    list: Vec<Directive>,
    prefix: &Path,
    chain: &mut Vec<(PathBuf, String)>,
    report: &mut Report,
) -> Result<Vec<Directive>, Error> {
    let mut out = Vec::with_capacity(list.len());
    for mut d in list {
        if d.name != "include" {
            if let Some(block) = d.block.take() {
                d.block = Some(expand(block, prefix, chain, report)?);
            }
            out.push(d);
            continue;
        }
        if d.args.len() != 1 || d.block.is_some() {
            return Err(Error::at(&d.file, d.line, "include takes one file name or glob"));
        }
        let pattern = prefix.join(d.arg(0));
        let files = if has_glob(d.arg(0)) {
            glob(&pattern)
        } else if pattern.exists() {
            vec![pattern.clone()]
        } else if is_types_file(d.arg(0)) {
            report.not_needed(&d, "portcullis has its own table of media types");
            continue;
        } else {
            return Err(Error::at(
                &d.file,
                d.line,
                format!(
                    "include {}: no such file (relative includes are read from {}; --prefix DIR sets it)",
                    pattern.display(),
                    prefix.display()
                ),
            ));
        };
        for file in files {
            let key = canonical(&file);
            // Named from the prefix, as the include wrote it.
            let name = file.strip_prefix(prefix).unwrap_or(&file).display().to_string();
            if chain.iter().any(|(seen, _)| *seen == key) {
                let mut cycle: Vec<String> = chain.iter().map(|(_, n)| n.clone()).collect();
                cycle.push(name);
                return Err(Error::at(
                    &d.file,
                    d.line,
                    format!("include cycle: {}", cycle.join(" -> ")),
                ));
            }
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Error::at(
                    &d.file,
                    d.line,
                    format!("include {name}: cannot read the file: {e}"),
                )
            })?;
            let list = parse::parse(&text, &name)?;
            chain.push((key, name));
            let list = expand(list, prefix, chain, report)?;
            chain.pop();
            out.extend(list);
        }
    }
    Ok(out)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_types_file(name: &str) -> bool {
    Path::new(name).file_name().is_some_and(|n| n == "mime.types")
}

fn has_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The files matching `pattern`, sorted as glob(3) sorts them; `*` and `?`
/// do not match a leading dot, as in the shell.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for part in pattern.components() {
        let text = part.as_os_str().to_string_lossy();
        if !has_glob(&text) {
            for path in &mut found {
                path.push(part.as_os_str());
            }
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    (!n.starts_with('.') || text.starts_with('.')) && matches(text.as_bytes(), n.as_bytes())
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// Shell wildcard matching of one path component: `*`, `?` and `[...]`
/// (with `!` or `^` to negate, and ranges). Linear backtracking to the
/// last `*`, so that a pattern of many stars costs no more than one.
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p + 1, n));
            p += 1;
            continue;
        }
        if let Some(width) = (p < pattern.len()).then(|| one(&pattern[p..], name[n])).flatten() {
            p += width;
            n += 1;
            continue;
        }
        match star {
            Some((after, from)) => {
                p = after;
                n = from + 1;
                star = Some((after, from + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Whether the pattern's first element takes `c`: its width if so.
fn one(pattern: &[u8], c: u8) -> Option<usize> {
    match pattern.first()? {
        b'?' => Some(1),
        b'[' => {
            let close = pattern.iter().skip(2).position(|&x| x == b']').map(|p| p + 2);
            let Some(close) = close else {
                return (c == b'[').then_some(1);
            };
            let mut set = &pattern[1..close];
            let negate = matches!(set.first(), Some(b'!' | b'^'));
            if negate {
                set = &set[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= set[i] <= c && c <= set[i + 2];
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            (hit != negate).then_some(close + 1)
        }
        &x => (x == c).then_some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(path, text);
    }

    fn names(list: &[Directive]) -> Vec<String> {
        list.iter()
            .flat_map(|d| std::iter::once(d.name.clone()).chain(names(d.children())))
            .collect()
    }

    #[test]
    fn globs_are_sorted_and_relative_to_the_prefix() {
        let Ok(dir) = tempfile::tempdir() else { return };
        write(
            dir.path(),
            "nginx.conf",
            "http { include conf.d/*.conf; include missing.d/*.conf; }",
        );
        write(dir.path(), "conf.d/b.conf", "b;");
        write(dir.path(), "conf.d/a.conf", "a; include snippets/x;");
        write(dir.path(), "conf.d/.hidden.conf", "hidden;");
        write(dir.path(), "conf.d/c.conf.bak", "bak;");
        write(dir.path(), "snippets/x", "x;");
        let mut report = Report::default();
        let list = load(&dir.path().join("nginx.conf"), dir.path(), &mut report);
        assert_eq!(
            list.map(|l| names(&l)).ok(),
            Some(
                vec!["http", "a", "x", "b"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
    }

    #[test]
    fn a_cycle_is_refused_with_its_chain() {
        let Ok(dir) = tempfile::tempdir() else { return };
        write(dir.path(), "nginx.conf", "http {\n include a.conf;\n}");
        write(dir.path(), "a.conf", "server {\n include b.conf;\n}");
        write(dir.path(), "b.conf", "\n\ninclude a.conf;");
        let mut report = Report::default();
        let error = load(&dir.path().join("nginx.conf"), dir.path(), &mut report)
            .err()
            .map(|e| e.to_string());
        let d = dir.path().display();
        assert_eq!(
            error,
            Some(format!(
                "b.conf:3: include cycle: {d}/nginx.conf -> a.conf -> b.conf -> a.conf"
            ))
        );
    }

    #[test]
    fn a_missing_file_is_an_error_but_mime_types_is_not() {
        let Ok(dir) = tempfile::tempdir() else { return };
        write(
            dir.path(),
            "nginx.conf",
            "include mime.types;\nhttp {\n include nope.conf;\n}",
        );
        let mut report = Report::default();
        let error = load(&dir.path().join("nginx.conf"), dir.path(), &mut report)
            .err()
            .map(|e| e.to_string());
        assert!(error
            .is_some_and(|e| e.contains("nginx.conf:3: include ") && e.contains("nope.conf: no such file")));
        assert_eq!(report.lines.len(), 1);
    }

    #[test]
    fn wildcards() {
        assert!(matches(b"*.conf", b"a.conf"));
        assert!(!matches(b"*.conf", b"a.conf.bak"));
        assert!(matches(b"site-?.[a-c]", b"site-1.b"));
        assert!(!matches(b"[!a]*", b"abc"));
        assert!(matches(b"a*b*c", b"axxbyyc") && !matches(b"a*b*c", b"axxbyy"));
        // Many stars against a long name that does not match: at once.
        let stars = [b"*".repeat(60), b"b".to_vec()].concat();
        assert!(!matches(&stars, &[b'a'; 250]));
    }
}
