//! Configuration errors that point at the place in the file where the
//! problem is and say what to write instead.
//!
//! Every problem found in a configuration file is collected into one
//! [`ConfigErrors`], so that an operator fixes all of them in one edit
//! instead of discovering them one restart at a time. Modules that check the
//! configuration further (the TLS loader reading certificates, for example)
//! build their own [`ConfigError`] at the [`Origin`] recorded in the typed
//! configuration, so that their messages look the same and point at the same
//! line.

use std::fmt;

/// A position in a configuration file: 1-based line and column.
///
/// The column counts characters, not bytes, so that it matches what an
/// editor shows for a line containing non-ASCII text.
///
/// A line of 0 means "the file as a whole" (it could not be read, for
/// example); such an origin displays as just the file name. A value from
/// an environment variable has such an origin too, named after the
/// variable (see [`Origin::environment`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Origin {
    /// A position in `file`; `line` and `column` are 1-based.
    pub fn new(file: impl Into<String>, line: usize, column: usize) -> Self {
        Origin {
            file: file.into(),
            line,
            column,
        }
    }

    /// The file as a whole, for problems that have no position inside it.
    pub fn whole_file(file: impl Into<String>) -> Self {
        Origin {
            file: file.into(),
            line: 0,
            column: 0,
        }
    }

    /// A value given by the environment variable `name` rather than by a
    /// file: it has no position, and displays as `environment variable NAME`.
    pub fn environment(name: &str) -> Self {
        Origin::whole_file(format!("environment variable {name}"))
    }

    /// The position of byte `offset` in `text`, which is the content of `file`.
    ///
    /// An offset past the end (a parser reporting "unexpected end of file")
    /// is clamped to the end of the text; an offset inside a multi-byte
    /// character counts as that character.
    pub fn at_offset(file: impl Into<String>, text: &str, offset: usize) -> Self {
        Self::at_offset_with(file, text, &line_starts(text), offset)
    }

    /// [`Origin::at_offset`] with the text's [`line_starts`] at hand, for
    /// callers that ask for many positions in one text.
    pub(crate) fn at_offset_with(
        file: impl Into<String>,
        text: &str,
        starts: &[usize],
        offset: usize,
    ) -> Self {
        let offset = offset.min(text.len());
        // The last line that starts at or before `offset` (line 1 starts at 0).
        let line = starts.partition_point(|&start| start <= offset).max(1);
        let line_start = starts.get(line - 1).copied().unwrap_or(0).min(offset);
        // Count UTF-8 leading bytes only, so that a multi-byte character is
        // one column whatever its encoded length.
        let column = 1 + text.as_bytes()[line_start..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        Origin {
            file: file.into(),
            line,
            column,
        }
    }

    /// Whether this origin names a position rather than the whole file.
    pub fn has_position(&self) -> bool {
        self.line > 0
    }
}

/// The byte offset at which each line of `text` starts, the first line's
/// (0) included.
pub(crate) fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
        .collect()
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.has_position() {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        } else {
            f.write_str(&self.file)
        }
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the offending value (or key, or table) was written.
    pub origin: Origin,
    /// The dotted path of the offending setting, such as `route[2].upstream`
    /// or `server.listen[0]`; empty when the problem is not about one
    /// setting (a TOML syntax error, an unreadable file).
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead; may span several lines, may be empty.
    pub hint: String,
}

impl ConfigError {
    /// An error at `origin`. Other modules use this to report problems they
    /// find in configured values, at the origin the configuration recorded
    /// for them (for example `CertificateSource::cert_origin`).
    pub fn new(
        origin: Origin,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        ConfigError {
            origin,
            key: key.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        let mut lines = self.hint.lines();
        if let Some(first) = lines.next() {
            write!(f, "\n  help: {first}")?;
            // Continuation lines line up under the first line of the hint so
            // that an example block stays readable.
            for line in lines {
                if line.is_empty() {
                    f.write_str("\n")?;
                } else {
                    write!(f, "\n        {line}")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in one configuration, in file order.
///
/// Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order they are displayed.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// Orders the errors by file, line and column, so that the report reads
    /// top to bottom whatever order the checks ran in.
    pub fn sort(&mut self) {
        // A stable sort keeps errors at the same position in the order they
        // were found, which is the order of the checks.
        self.0.sort_by(|a, b| a.origin.cmp(&b.origin));
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        ConfigErrors(errors)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let count = self.0.len();
        let noun = if count == 1 { "error" } else { "errors" };
        write!(f, "{count} {noun}")?;
        // Name the file when every error is in the same one, which is the
        // usual case; errors from several files are counted without a name.
        if let Some(first) = self.0.first() {
            if self.0.iter().all(|e| e.origin.file == first.origin.file) {
                write!(f, " in {}", first.origin.file)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What is wrong with one value and what to write instead, before it is
/// placed at an origin and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub message: String,
    pub hint: String,
}

impl Invalid {
    pub(crate) fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_index_agrees_with_counting_from_the_top() {
        let text = "\n[tls]\ncert = \"é.pem\"\n\n\n[[route]]\npath = \"/\"";
        for offset in 0..=text.len() + 2 {
            let before = &text.as_bytes()[..offset.min(text.len())];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = 1 + before[start..].iter().filter(|&&b| (b & 0xC0) != 0x80).count();
            assert_eq!(
                Origin::at_offset("f", text, offset),
                Origin::new("f", line, column),
                "{offset}"
            );
        }
    }

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(Origin::at_offset("f", text, 0), Origin::new("f", 1, 1));
        assert_eq!(Origin::at_offset("f", text, 4), Origin::new("f", 1, 5));
        assert_eq!(Origin::at_offset("f", text, 6), Origin::new("f", 2, 1));
        // "é" is two bytes but one column.
        assert_eq!(Origin::at_offset("f", text, 11), Origin::new("f", 2, 5));
        // Past the end clamps to the end.
        assert_eq!(Origin::at_offset("f", text, 999), Origin::new("f", 3, 1));
    }

    #[test]
    fn display_lists_every_error_then_a_count() {
        let errors = ConfigErrors(vec![
            ConfigError::new(
                Origin::new("proxy.toml", 3, 7),
                "server.listen[0]",
                "bad",
                "write this\n[[route]]\npath = \"/\"",
            ),
            ConfigError::new(Origin::new("proxy.toml", 12, 11), "", "syntax", ""),
        ]);
        assert_eq!(
            errors.to_string(),
            "proxy.toml:3:7: server.listen[0]: bad\n  help: write this\n        [[route]]\n        path = \"/\"\n\
             proxy.toml:12:11: syntax\n\
             2 errors in proxy.toml"
        );
    }

    #[test]
    fn environment_origin_names_the_variable() {
        let origin = Origin::environment("PORTCULLIS_LISTEN");
        assert!(!origin.has_position());
        let error = ConfigError::new(origin, "server.listen", "bad", "fix it");
        assert_eq!(
            error.to_string(),
            "environment variable PORTCULLIS_LISTEN: server.listen: bad\n  help: fix it"
        );
    }

    #[test]
    fn whole_file_origin_has_no_position() {
        let error = ConfigError::new(Origin::whole_file("/etc/p.toml"), "", "cannot read", "");
        assert_eq!(error.to_string(), "/etc/p.toml: cannot read");
        assert_eq!(
            ConfigErrors::from(error).to_string(),
            "/etc/p.toml: cannot read\n1 error in /etc/p.toml"
        );
    }
}
