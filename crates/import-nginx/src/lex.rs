//! nginx's configuration tokens: words (quoted or not), `;`, `{` and `}`,
//! each with its line, by the rules of nginx's own reader
//! (`ngx_conf_read_token`): `#` starts a comment only where a word could
//! start, quotes and backslashes protect `;`, `{`, `}` and spaces, and
//! `${name}` is one word.

use crate::Error;

/// One token and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A word, its escapes resolved as nginx resolves them.
    Word(String),
    Semicolon,
    Open,
    Close,
}

/// Splits `text` (the content of `file`) into tokens.
pub(crate) fn tokens(text: &str, file: &str) -> Result<Vec<Token>, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ';' => {
                out.push(Token {
                    kind: Kind::Semicolon,
                    line,
                });
                i += 1;
            }
            '{' => {
                out.push(Token {
                    kind: Kind::Open,
                    line,
                });
                i += 1;
                // The block of `*_by_lua_block` is Lua, not nginx: skipped
                // whole, its braces and quotes Lua's.
                let lua = matches!(out.iter().rev().nth(1), Some(Token { kind: Kind::Word(w), .. }) if w.ends_with("_by_lua_block"));
                if lua {
                    let start = line;
                    let (next, lines) = lua_block(&chars, i)
                        .ok_or_else(|| Error::at(file, start, "unexpected end of file in a Lua block"))?;
                    line += lines;
                    i = next;
                }
            }
            '}' => {
                out.push(Token {
                    kind: Kind::Close,
                    line,
                });
                i += 1;
            }
            '"' | '\'' => {
                let start = line;
                let (word, next, lines) = quoted(&chars, i + 1, c)
                    .ok_or_else(|| Error::at(file, start, format!("unterminated {c}quoted string{c}")))?;
                line += lines;
                i = next;
                // nginx wants a separator after a closing quote.
                if let Some(&after) = chars.get(i) {
                    if !(after.is_whitespace() || matches!(after, ';' | '{' | '}')) {
                        return Err(Error::at(
                            file,
                            line,
                            format!("unexpected \"{after}\" after a quoted string"),
                        ));
                    }
                }
                out.push(Token {
                    kind: Kind::Word(word),
                    line: start,
                });
            }
            _ => {
                let (word, next) = bare(&chars, i);
                i = next;
                out.push(Token {
                    kind: Kind::Word(word),
                    line,
                });
            }
        }
    }
    Ok(out)
}

/// The index of the `}` closing a Lua block that starts at `start`, and
/// the newlines before it.
fn lua_block(chars: &[char], start: usize) -> Option<(usize, usize)> {
    let mut depth = 1;
    let mut lines = 0;
    let mut i = start;
    let mut quote: Option<char> = None;
    while let Some(&c) = chars.get(i) {
        if c == '\n' {
            lines += 1;
        }
        match (quote, c) {
            (Some(_), '\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '{') => depth += 1,
            (None, '}') => {
                depth -= 1;
                if depth == 0 {
                    return Some((i, lines));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// A quoted word from `start` (after the opening quote) to its closing
/// `quote`: the word, the index after the quote, and the newlines inside.
fn quoted(chars: &[char], start: usize, quote: char) -> Option<(String, usize, usize)> {
    let mut word = String::new();
    let mut lines = 0;
    let mut i = start;
    loop {
        let c = *chars.get(i)?;
        if c == '\n' {
            lines += 1;
        }
        if c == quote {
            return Some((word, i + 1, lines));
        }
        if c == '\\' {
            let next = *chars.get(i + 1)?;
            if next == '\n' {
                lines += 1;
            }
            escape(&mut word, next);
            i += 2;
            continue;
        }
        word.push(c);
        i += 1;
    }
}

/// An unquoted word from `start`: it ends at whitespace, `;`, `{` or `}`
/// (a `{` right after `$` opens `${name}`, which runs to its `}`).
fn bare(chars: &[char], start: usize) -> (String, usize) {
    let mut word = String::new();
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        match c {
            '\\' if i + 1 < chars.len() => {
                escape(&mut word, chars[i + 1]);
                i += 2;
            }
            '{' if word.ends_with('$') => {
                while let Some(&c) = chars.get(i) {
                    word.push(c);
                    i += 1;
                    if c == '}' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() || matches!(c, ';' | '{' | '}') => break,
            c => {
                word.push(c);
                i += 1;
            }
        }
    }
    (word, i)
}

/// nginx resolves `\"`, `\'`, `\\`, `\t`, `\r`, `\n`, and keeps the
/// backslash before anything else (so that regexes keep theirs).
fn escape(word: &mut String, next: char) {
    match next {
        '"' | '\'' | '\\' => word.push(next),
        't' => word.push('\t'),
        'r' => word.push('\r'),
        'n' => word.push('\n'),
        other => {
            word.push('\\');
            word.push(other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokens(text, "t.conf")
            .unwrap_or_default()
            .into_iter()
            .map(|t| match t.kind {
                Kind::Word(w) => w,
                Kind::Semicolon => ";".into(),
                Kind::Open => "{".into(),
                Kind::Close => "}".into(),
            })
            .collect()
    }

    #[test]
    fn quotes_protect_semicolons_braces_and_spaces() {
        assert_eq!(
            words(r#"add_header X "a; {b} c" always; return 200 'x"y';"#),
            [
                "add_header",
                "X",
                "a; {b} c",
                "always",
                ";",
                "return",
                "200",
                "x\"y",
                ";"
            ]
        );
    }

    #[test]
    fn escapes_comments_and_variables() {
        // nginx keeps the backslash of `\;`: only quotes, `\\`, `\t`, `\r`
        // and `\n` lose theirs.
        assert_eq!(
            words("a \"q\\\"t\\n\" b\\;c # not ; here\nlocation ~ \\.php$ { x${host}y; }"),
            [
                "a",
                "q\"t\n",
                "b\\;c",
                "location",
                "~",
                "\\.php$",
                "{",
                "x${host}y",
                ";",
                "}"
            ]
        );
        // `#` inside a word is part of it.
        assert_eq!(words("return 200 a#b;"), ["return", "200", "a#b", ";"]);
    }

    #[test]
    fn a_lua_block_is_skipped_whole() {
        assert_eq!(
            words("content_by_lua_block { ngx.say(\"a; {b}\") }\nx;"),
            ["content_by_lua_block", "{", "}", "x", ";"]
        );
    }

    #[test]
    fn lines_are_counted_through_quotes() {
        let toks = tokens("a \"x\ny\";\nb;", "t.conf").unwrap_or_default();
        assert_eq!(toks.last().map(|t| t.line), Some(3));
    }

    #[test]
    fn bad_quotes_name_the_line() {
        let e = tokens("a;\nb \"open;\n", "t.conf").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("t.conf:2: unterminated \"quoted string\""));
        let e = tokens("a \"x\"y;", "t.conf").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("t.conf:1: unexpected \"y\" after a quoted string")
        );
    }
}
