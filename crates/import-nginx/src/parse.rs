//! The syntax tree of one nginx file: directives with their arguments, an
//! optional block of directives, and the file and line each was written on.

use std::rc::Rc;

use crate::lex::{self, Kind, Token};
use crate::Error;

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Debug, Clone)]
pub(crate) struct Directive {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    pub(crate) block: Option<Vec<Directive>>,
    pub(crate) file: Rc<str>,
    pub(crate) line: usize,
}

impl Directive {
    /// `file:line`, as the report and the TOML comments cite it.
    pub(crate) fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The directive as written (quoted where needed), without its block.
    pub(crate) fn text(&self) -> String {
        let mut text = self.name.clone();
        for arg in &self.args {
            text.push(' ');
            let plain = !arg.is_empty()
                && !arg
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '#'));
            if plain {
                text.push_str(arg);
            } else {
                text.push('"');
                text.push_str(
                    &arg.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n"),
                );
                text.push('"');
            }
        }
        if self.block.is_some() {
            text.push_str(" {");
        } else {
            text.push(';');
        }
        // A TOML comment is one line.
        let text = text.replace(['\n', '\r'], " ");
        if text.chars().count() > 100 {
            let cut: String = text.chars().take(97).collect();
            format!("{cut}...")
        } else {
            text
        }
    }

    /// The directive as the report names it: without its `;` or `{`.
    pub(crate) fn name_and_args(&self) -> String {
        let text = self.text();
        text.trim_end_matches(" {").trim_end_matches(';').to_string()
    }

    /// The argument at `index`, or "".
    pub(crate) fn arg(&self, index: usize) -> &str {
        self.args.get(index).map_or("", String::as_str)
    }

    /// The block's directives (none for a simple directive).
    pub(crate) fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Deeper than any configuration nginx reads (http, server, location,
/// nested locations, if), shallow enough that a file of braces cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 32;

/// Parses `text`, the content of `file`.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Directive>, Error> {
    let tokens = lex::tokens(text, file)?;
    let file: Rc<str> = Rc::from(file);
    let mut at = 0;
    let list = block(&tokens, &mut at, &file, None, 0)?;
    Ok(list)
}

/// Directives up to the `}` that closes the block opened at `opened` (a
/// line), or to the end of the file at the top.
fn block(
    tokens: &[Token],
    at: &mut usize,
    file: &Rc<str>,
    opened: Option<usize>,
    depth: usize,
) -> Result<Vec<Directive>, Error> {
    if let (Some(line), true) = (opened, depth > MAX_DEPTH) {
        return Err(Error::at(
            file,
            line,
            format!("blocks nested more than {MAX_DEPTH} deep"),
        ));
    }
    let mut list = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut first_line = 0;
    loop {
        let Some(token) = tokens.get(*at) else {
            if let Some(word) = words.first() {
                return Err(Error::at(
                    file,
                    first_line,
                    format!("unexpected end of file: \"{word}\" has no \";\""),
                ));
            }
            return match opened {
                Some(line) => Err(Error::at(
                    file,
                    line,
                    "unexpected end of file: this block has no \"}\"",
                )),
                None => Ok(list),
            };
        };
        *at += 1;
        match &token.kind {
            Kind::Word(w) => {
                if words.is_empty() {
                    first_line = token.line;
                }
                words.push(w.clone());
            }
            Kind::Semicolon | Kind::Open => {
                let is_block = token.kind == Kind::Open;
                if words.is_empty() {
                    let what = if is_block { "{" } else { ";" };
                    return Err(Error::at(file, token.line, format!("unexpected \"{what}\"")));
                }
                let name = words.remove(0);
                let args = std::mem::take(&mut words);
                let block = if is_block {
                    Some(self::block(tokens, at, file, Some(first_line), depth + 1)?)
                } else {
                    None
                };
                list.push(Directive {
                    name,
                    args,
                    block,
                    file: file.clone(),
                    line: first_line,
                });
            }
            Kind::Close => {
                if let Some(word) = words.first() {
                    return Err(Error::at(
                        file,
                        first_line,
                        format!("\"{word}\" has no \";\" before \"}}\""),
                    ));
                }
                return match opened {
                    Some(_) => Ok(list),
                    None => Err(Error::at(file, token.line, "unexpected \"}\"")),
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(list: &[Directive]) -> String {
        list.iter()
            .map(|d| match &d.block {
                Some(b) => format!("{}@{}[{}]{{{}}}", d.name, d.line, d.args.join(","), shape(b)),
                None => format!("{}@{}[{}]", d.name, d.line, d.args.join(",")),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn nested_locations_and_if() {
        let text = "http {\n server {\n  location /a/ {\n   location ~ \\.js$ { expires 1d; }\n  }\n  if ($host = x) { return 301 https://$host$request_uri; }\n }\n}\n";
        let list = parse(text, "n.conf").unwrap_or_default();
        assert_eq!(
            shape(&list),
            "http@1[]{server@2[]{location@3[/a/]{location@4[~,\\.js$]{expires@4[1d]}} \
             if@6[($host,=,x)]{return@6[301,https://$host$request_uri]}}}"
        );
    }

    #[test]
    fn quoted_semicolon_and_brace_in_arguments() {
        let list = parse(
            "add_header Content-Security-Policy \"default-src 'self'; img-src {x}\" always;",
            "n.conf",
        )
        .unwrap_or_default();
        assert_eq!(
            list[0].args,
            [
                "Content-Security-Policy",
                "default-src 'self'; img-src {x}",
                "always"
            ]
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (
                "http {\n server {\n listen 80;\n}\n",
                "n.conf:1: unexpected end of file: this block has no \"}\"",
            ),
            ("a;\n}\n", "n.conf:2: unexpected \"}\""),
            (
                "a;\nlisten 80\n",
                "n.conf:2: unexpected end of file: \"listen\" has no \";\"",
            ),
            (
                "server {\n listen 80\n}\n",
                "n.conf:2: \"listen\" has no \";\" before \"}\"",
            ),
            ("server {\n ;\n}\n", "n.conf:2: unexpected \";\""),
        ];
        for (text, want) in cases {
            let got = parse(text, "n.conf").err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(want), "{text:?}");
        }
    }

    #[test]
    fn a_file_of_braces_is_an_error_not_a_stack_overflow() {
        let got = parse(&"a {\n".repeat(100_000), "n.conf")
            .err()
            .map(|e| e.to_string());
        assert_eq!(got.as_deref(), Some("n.conf:33: blocks nested more than 32 deep"));
    }

    #[test]
    fn text_requotes_what_needs_it() {
        let list = parse("add_header X \"a b\";", "n.conf").unwrap_or_default();
        assert_eq!(list[0].text(), "add_header X \"a b\";");
    }
}
