//! `[compression]` and a route's `compression`: which encodings the proxy
//! may apply to a response, to which content types, from which length, at
//! which level. Checked by `parse/compression.rs`, applied by
//! `serve::compress`.

/// One response compression setting, a route's own or `[compression]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// `encodings`: the server's order of preference among those the
    /// client accepts equally. Default zstd, br, gzip: those of them this
    /// build has.
    pub encodings: Vec<Encoding>,
    /// `types`: media types compressed, lower case, each exact
    /// (`application/json`) or a whole top-level type (`text/*`).
    pub types: Vec<String>,
    /// `min_length`: a body of known length shorter than this is sent as
    /// it is. Default 1 KiB.
    pub min_length: u64,
    /// `level`: `"default"` or 1 to 9 for every encoding.
    pub level: CompressionLevel,
}

/// A content coding the proxy can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zstd,
    Br,
    Gzip,
}

impl Encoding {
    /// Every encoding, by its Content-Encoding token.
    pub const ALL: [(&'static str, Encoding); 3] = [
        ("zstd", Encoding::Zstd),
        ("br", Encoding::Br),
        ("gzip", Encoding::Gzip),
    ];

    /// Whether this build has the encoder (brotli and zstd are cargo
    /// features).
    pub fn built(self) -> bool {
        match self {
            Encoding::Zstd => cfg!(feature = "zstd"),
            Encoding::Br => cfg!(feature = "brotli"),
            Encoding::Gzip => true,
        }
    }

    /// The Content-Encoding token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// `level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionLevel {
    /// Each encoding's own: gzip 1 (nginx's `gzip_comp_level`), br 4, zstd 3.
    Default,
    /// 1 (fastest) to 9 (smallest), the same number for every encoding.
    Number(u32),
}

/// The default `types`.
pub const DEFAULT_TYPES: [&str; 4] = [
    "text/*",
    "application/json",
    "application/javascript",
    "image/svg+xml",
];

impl Default for Compression {
    fn default() -> Self {
        Compression {
            encodings: Encoding::ALL
                .iter()
                .map(|(_, e)| *e)
                .filter(|e| e.built())
                .collect(),
            types: DEFAULT_TYPES.iter().map(|t| t.to_string()).collect(),
            min_length: 1024,
            level: CompressionLevel::Default,
        }
    }
}
