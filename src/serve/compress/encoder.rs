//! The three encoders behind one streaming interface: bytes in, compressed
//! bytes out as soon as the encoder gives them, a flush that makes what was
//! written so far decodable, and the end of the stream. Each writes into a
//! `Vec` that is taken after every call, so nothing accumulates beyond the
//! encoder's own window.

use std::io::{self, Write};

use bytes::Bytes;

use crate::config::{CompressionLevel, Encoding};

/// Brotli's window: 2^19 bytes (512 KiB) rather than the 4 MiB default,
/// so that a response in flight holds at most about that much per client.
#[cfg(feature = "brotli")]
const BROTLI_WINDOW_LOG: u32 = 19;
/// The same bound for zstd (its default at level 3 is 2^21).
#[cfg(feature = "zstd")]
const ZSTD_WINDOW_LOG: u32 = 19;
/// Brotli's input buffer, in bytes.
#[cfg(feature = "brotli")]
const BROTLI_BUFFER: usize = 4096;

/// One response's encoder.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    // Boxed: brotli's state is several KiB held inline.
    #[cfg(feature = "brotli")]
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// A new encoder for `encoding` at `level`.
    pub(crate) fn new(encoding: Encoding, level: CompressionLevel) -> io::Result<Encoder> {
        Ok(match encoding {
            Encoding::Gzip => {
                // nginx's gzip_comp_level default.
                let level = match level {
                    CompressionLevel::Default => 1,
                    CompressionLevel::Number(n) => n,
                };
                Encoder::Gzip(flate2::write::GzEncoder::new(
                    Vec::new(),
                    flate2::Compression::new(level),
                ))
            }
            #[cfg(feature = "brotli")]
            Encoding::Br => {
                // 4: most of brotli's gain over gzip, at gzip's speed; its
                // own default (11) is meant for files compressed once.
                let quality = match level {
                    CompressionLevel::Default => 4,
                    CompressionLevel::Number(n) => n,
                };
                Encoder::Br(Box::new(brotli::CompressorWriter::new(
                    Vec::new(),
                    BROTLI_BUFFER,
                    quality,
                    BROTLI_WINDOW_LOG,
                )))
            }
            #[cfg(feature = "zstd")]
            Encoding::Zstd => {
                // zstd's own default.
                let level = match level {
                    CompressionLevel::Default => 3,
                    CompressionLevel::Number(n) => n,
                };
                let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), level as i32)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                Encoder::Zstd(encoder)
            }
            // The configuration offers only the encoders built.
            #[allow(unreachable_patterns)]
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("this build has no {} encoder", other.token()),
                ))
            }
        })
    }

    /// Compresses `data`.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(data),
            #[cfg(feature = "brotli")]
            Encoder::Br(e) => e.write_all(data),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write_all(data),
        }
    }

    /// Ends a block so that everything written so far can be decoded.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            #[cfg(feature = "brotli")]
            Encoder::Br(e) => e.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.flush(),
        }
    }

    /// The compressed bytes produced so far and not yet taken.
    pub(crate) fn take(&mut self) -> Bytes {
        let out = match self {
            Encoder::Gzip(e) => e.get_mut(),
            #[cfg(feature = "brotli")]
            Encoder::Br(e) => e.get_mut(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.get_mut(),
        };
        Bytes::from(std::mem::take(out))
    }

    /// Ends the stream and returns the last compressed bytes.
    pub(crate) fn finish(self) -> io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            #[cfg(feature = "brotli")]
            Encoder::Br(e) => e.into_inner(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The encodings of this build.
    fn built() -> impl Iterator<Item = Encoding> {
        Encoding::ALL.into_iter().map(|(_, e)| e).filter(|e| e.built())
    }

    /// What `data` decodes to, as far as it goes.
    fn decode(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = match encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            #[cfg(feature = "brotli")]
            Encoding::Br => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
            #[cfg(feature = "zstd")]
            Encoding::Zstd => {
                zstd::stream::read::Decoder::new(data).and_then(|mut d| d.read_to_end(&mut out))
            }
            #[allow(unreachable_patterns)]
            _ => unreachable!("not built"),
        };
        out
    }

    #[test]
    fn each_encoding_round_trips_with_flushes_between_writes() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        for encoding in built() {
            for level in [CompressionLevel::Default, CompressionLevel::Number(9)] {
                let mut encoder = Encoder::new(encoding, level).unwrap();
                let mut out = Vec::new();
                for (i, chunk) in text.chunks(7000).enumerate() {
                    encoder.write(chunk).unwrap();
                    if i % 3 == 0 {
                        encoder.flush().unwrap();
                    }
                    out.extend_from_slice(&encoder.take());
                }
                out.extend_from_slice(&encoder.finish().unwrap());
                assert!(out.len() < text.len() / 4, "{encoding:?}: {} bytes", out.len());
                assert_eq!(decode(encoding, &out), text, "{encoding:?}");
            }
        }
    }

    #[test]
    fn a_flush_makes_what_was_written_decodable_at_once() {
        for encoding in built() {
            let mut encoder = Encoder::new(encoding, CompressionLevel::Default).unwrap();
            encoder.write(b"data: first\n\n").unwrap();
            encoder.flush().unwrap();
            let first = encoder.take();
            assert_eq!(decode(encoding, &first), b"data: first\n\n", "{encoding:?}");
        }
    }
}
