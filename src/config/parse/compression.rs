//! `[compression]` and a route's `compression` (a table over the global
//! one, `true` for the global one or the defaults, `false` for none):
//! `encodings` with did-you-mean, `types`, `min_length`, `level`.

use std::sync::Arc;

use toml::de::DeValue;

use super::checker::{edit_distance, Checker, Schema, Table};
use crate::config::{Compression, CompressionLevel, Encoding};

const COMPRESSION_SCHEMA: Schema = Schema {
    keys: &["encodings", "types", "min_length", "level"],
    aliases: &[
        ("gzip_types", "types"),
        ("brotli_types", "types"),
        ("mime_types", "types"),
        ("content_types", "types"),
        ("gzip_min_length", "min_length"),
        ("brotli_min_length", "min_length"),
        ("min_size", "min_length"),
        ("gzip_comp_level", "level"),
        ("brotli_comp_level", "level"),
        ("comp_level", "level"),
        ("quality", "level"),
        ("algorithms", "encodings"),
        ("encoding", "encodings"),
    ],
};

const ENCODINGS_EXAMPLE: &str = "encodings = [\"zstd\", \"br\", \"gzip\"]";
const LEVEL_HINT: &str = "write level = \"default\" (gzip 1 as nginx's gzip_comp_level, br 4, zstd 3) \
                          or a number from 1 (fastest) to 9 (smallest)";

impl Checker<'_> {
    /// `[compression]`, when written.
    pub(super) fn compression_defaults(&mut self, top: &Table<'_, '_>) -> Option<Arc<Compression>> {
        let table = self.table(top, "compression", "[compression]")?;
        Some(Arc::new(self.compression_table(&table, &Compression::default())))
    }

    /// A route's `compression`, with `global` (`[compression]`) for what
    /// it does not say.
    pub(super) fn route_compression(
        &mut self,
        route: &Table<'_, '_>,
        global: Option<&Arc<Compression>>,
    ) -> Option<Arc<Compression>> {
        let Some(value) = route.get("compression") else {
            return global.cloned();
        };
        match value.get_ref() {
            DeValue::Boolean(false) => None,
            DeValue::Boolean(true) => Some(global.cloned().unwrap_or_default()),
            DeValue::Table(entries) => {
                let table = Table {
                    entries,
                    path: route.key_path("compression"),
                    header: "a route's compression",
                    span: value.span(),
                };
                let base = global.map_or_else(Compression::default, |g| (**g).clone());
                Some(Arc::new(self.compression_table(&table, &base)))
            }
            _ => {
                self.type_error(
                    value,
                    route.key_path("compression"),
                    "true, false or a table",
                    "write compression = false to turn it off on this route, compression = true for \
                     [compression]'s settings, or compression = { types = [\"application/json\"] }"
                        .to_string(),
                );
                global.cloned()
            }
        }
    }

    /// The keys of a compression table, each over `base`.
    fn compression_table(&mut self, table: &Table<'_, '_>, base: &Compression) -> Compression {
        self.check_keys(table, &COMPRESSION_SCHEMA);
        let mut out = base.clone();
        if let Some(encodings) = self.encodings(table) {
            out.encodings = encodings;
        }
        if let Some(types) = self.media_types(table) {
            out.types = types;
        }
        if let Some((bytes, _)) = self.size(table, "min_length", "1KiB") {
            out.min_length = bytes;
        }
        if let Some(level) = self.level(table) {
            out.level = level;
        }
        out
    }

    fn encodings(&mut self, table: &Table<'_, '_>) -> Option<Vec<Encoding>> {
        let items = self.list(table, "encodings", "a list of encodings", ENCODINGS_EXAMPLE)?;
        let key = table.key_path("encodings");
        if items.is_empty() {
            let span = table.get("encodings").map(|v| v.span()).unwrap_or_default();
            self.error(
                &span,
                key,
                "an empty list would compress nothing",
                format!("write compression = false on a route to turn it off there, or {ENCODINGS_EXAMPLE}"),
            );
            return None;
        }
        self.each_string(
            items,
            &key,
            "an encoding name",
            ENCODINGS_EXAMPLE,
            |checker, text, span, out| {
                let lower = text.trim().to_ascii_lowercase();
                let found = Encoding::ALL
                    .iter()
                    .find(|(name, _)| *name == lower)
                    .map(|(_, e)| *e);
                let (message, hint) = match found {
                    Some(encoding) if out.contains(&encoding) => (
                        format!("`{text}` is listed twice"),
                        "name each encoding once".to_string(),
                    ),
                    Some(encoding) if !encoding.built() => {
                        let feature = match encoding {
                            Encoding::Br => "brotli",
                            _ => "zstd",
                        };
                        (
                            format!("this build of portcullis has no {text} encoder"),
                            format!(
                                "leave \"{text}\" out (gzip is always there), or build with \
                             `cargo build --release --locked --features {feature}`"
                            ),
                        )
                    }
                    Some(encoding) => return Some(encoding),
                    None => (
                        format!("`{text}` is not an encoding portcullis can produce"),
                        encoding_hint(&lower),
                    ),
                };
                checker.error(span, key.clone(), message, hint);
                None
            },
        )
    }

    /// Each item of `items` (the list at `key`), a string checked by
    /// `check`, which reports what is wrong and sees what came before;
    /// `None` when any item is wrong.
    fn each_string<T>(
        &mut self,
        items: &[toml::Spanned<DeValue<'_>>],
        key: &str,
        what: &str,
        example: &str,
        mut check: impl FnMut(&mut Self, &str, &std::ops::Range<usize>, &[T]) -> Option<T>,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        let mut ok = true;
        for item in items {
            let DeValue::String(text) = item.get_ref() else {
                self.type_error(item, key.to_string(), what, format!("for example: {example}"));
                ok = false;
                continue;
            };
            match check(self, text, &item.span(), &out) {
                Some(value) => out.push(value),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn media_types(&mut self, table: &Table<'_, '_>) -> Option<Vec<String>> {
        let example = "types = [\"text/*\", \"application/json\"]";
        let items = self.list(table, "types", "a list of media types", example)?;
        let key = table.key_path("types");
        self.each_string(items, &key, "a media type", example, |checker, text, span, _| {
            let lower = text.trim().to_ascii_lowercase();
            if lower == "*" || lower == "*/*" {
                return Some("*/*".to_string());
            }
            let valid = lower.split_once('/').is_some_and(|(top, sub)| {
                token(top) && top != "*" && (sub == "*" || (token(sub) && !sub.contains('*')))
            });
            if !valid {
                checker.error(
                    span,
                    key.clone(),
                    format!("`{text}` is not a media type"),
                    "write a type such as \"application/json\", a whole top-level type such as \"text/*\", \
                     or \"*/*\" for every type; parameters (\"; charset=...\") are not matched",
                );
                return None;
            }
            Some(lower)
        })
    }

    fn level(&mut self, table: &Table<'_, '_>) -> Option<CompressionLevel> {
        let value = table.get("level")?;
        let key = table.key_path("level");
        match value.get_ref() {
            DeValue::String(text) if text.trim().eq_ignore_ascii_case("default") => {
                Some(CompressionLevel::Default)
            }
            DeValue::Integer(_) => {
                let (n, span) = self.integer(table, "level", "1")?;
                match u32::try_from(n) {
                    Ok(n @ 1..=9) => Some(CompressionLevel::Number(n)),
                    _ => {
                        self.error(&span, key, format!("{n} is not a level from 1 to 9"), LEVEL_HINT);
                        None
                    }
                }
            }
            _ => {
                self.type_error(
                    value,
                    key,
                    "\"default\" or a number from 1 to 9",
                    LEVEL_HINT.to_string(),
                );
                None
            }
        }
    }
}

/// What to write instead of an encoding portcullis does not produce.
fn encoding_hint(lower: &str) -> String {
    let known = "valid encodings: \"zstd\", \"br\", \"gzip\"";
    match lower {
        "brotli" => format!("write \"br\", the Content-Encoding token of brotli; {known}"),
        "x-gzip" | "gz" | "gunzip" => format!("write \"gzip\"; {known}"),
        "zstandard" | "zst" => format!("write \"zstd\"; {known}"),
        "deflate" | "compress" | "identity" => {
            format!("`{lower}` is not offered (gzip is the same compression, better supported); {known}")
        }
        _ => match Encoding::ALL
            .iter()
            .map(|(name, _)| (edit_distance(lower, name), *name))
            .min_by_key(|(distance, _)| *distance)
        {
            Some((distance, name)) if distance * 3 <= lower.len().max(name.len()) => {
                format!("did you mean \"{name}\"? {known}")
            }
            _ => known.to_string(),
        },
    }
}

/// An RFC 9110 token, as media type names are.
fn token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
