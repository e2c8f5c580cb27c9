//! The TOML writer: tables of keys in the order they were made, each key
//! with a comment citing the nginx line it came from.

use std::fmt::Write as _;

/// A TOML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    /// An inline table, keys in order.
    Table(Vec<(String, Value)>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int(n)
    }
}

/// One key: its name (dotted allowed), value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) from: String,
}

/// A `[table]` or `[[array]]` with its keys.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    /// `[server]`, `[[route]]`...
    pub(crate) header: String,
    /// A comment above the header.
    pub(crate) note: Option<String>,
    pub(crate) entries: Vec<Entry>,
}

impl Table {
    pub(crate) fn new(header: &str) -> Table {
        Table {
            header: header.to_string(),
            ..Table::default()
        }
    }

    /// Sets `key` (replacing an earlier value of it).
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>, from: impl Into<String>) {
        let entry = Entry {
            key: key.to_string(),
            value: value.into(),
            from: from.into(),
        };
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(old) => *old = entry,
            None => self.entries.push(entry),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.retain(|e| e.key != key);
    }

    /// Adds `name = value` to the inline table `key`.
    pub(crate) fn insert(&mut self, key: &str, name: &str, value: impl Into<Value>, from: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(Entry {
                value: Value::Table(items),
                from: old,
                ..
            }) => {
                items.retain(|(n, _)| n != name);
                items.push((name.to_string(), value));
                cite(old, from.into());
            }
            _ => self.set(key, Value::Table(vec![(name.to_string(), value)]), from),
        }
    }

    /// Appends `value` to the list `key`, once.
    pub(crate) fn push(&mut self, key: &str, value: impl Into<Value>, from: impl Into<String>) {
        let value = value.into();
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(Entry {
                value: Value::List(items),
                from: old,
                ..
            }) => {
                if !items.contains(&value) {
                    items.push(value);
                }
                cite(old, from.into());
            }
            _ => self.set(key, Value::List(vec![value]), from),
        }
    }
}

/// Adds the line `from` to a key's comment, once.
fn cite(comment: &mut String, from: String) {
    if !comment.contains(&from) {
        // A directive as written ends with `;` or `{` already.
        comment.push_str(if comment.ends_with(';') || comment.ends_with('{') {
            " "
        } else {
            "; "
        });
        comment.push_str(&from);
    }
}

/// The whole file.
pub(crate) fn render(head: &str, tables: &[Table]) -> String {
    let mut out = String::new();
    for line in head.lines() {
        let _ = writeln!(out, "# {line}");
    }
    for table in tables {
        if table.entries.is_empty() && !table.header.starts_with("[[") {
            continue;
        }
        out.push('\n');
        if let Some(note) = &table.note {
            for line in note.lines() {
                let _ = writeln!(out, "# {line}");
            }
        }
        let _ = writeln!(out, "{}", table.header);
        for e in &table.entries {
            let _ = write!(out, "{} = {}", e.key, value(&e.value));
            if !e.from.is_empty() {
                let _ = write!(out, "  # {}", e.from.replace(['\n', '\r'], " "));
            }
            out.push('\n');
        }
    }
    out
}

fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => quote(s),
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => format!("[{}]", items.iter().map(value).collect::<Vec<_>>().join(", ")),
        Value::Table(items) if items.is_empty() => "{}".to_string(),
        Value::Table(items) => format!(
            "{{ {} }}",
            items
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A key of an inline table: bare when TOML allows it.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let mut t = Table::new("[[route]]");
        t.set(
            "path_regex",
            "^/a\\.(js|css)$\t\"x\"\u{1}",
            "n.conf:3 location ~ ...;",
        );
        t.insert("response.set", "X-Frame-Options", "DENY", "n.conf:4");
        t.insert("response.set", "a b", "c", "n.conf:5");
        t.push(
            "servers",
            Value::Table(vec![
                ("url".into(), "http://a:1".into()),
                ("weight".into(), 2i64.into()),
            ]),
            "",
        );
        let text = render("generated", &[t]);
        let parsed: Result<toml::Table, _> = text.parse();
        let Ok(parsed) = parsed else { panic!("{text}") };
        let route = &parsed["route"][0];
        assert_eq!(route["path_regex"].as_str(), Some("^/a\\.(js|css)$\t\"x\"\u{1}"));
        assert_eq!(route["response"]["set"]["a b"].as_str(), Some("c"));
        assert_eq!(route["servers"][0]["weight"].as_integer(), Some(2));
        assert!(text.contains("# n.conf:4; n.conf:5"));
    }
}
