//! The few DER encodings OCSP needs: reading one element at a time out of
//! a response (RFC 6960 is a handful of SEQUENCEs), and writing the
//! request. Only definite lengths and one-byte tags exist in DER as OCSP
//! uses it; anything else is refused as malformed.

/// A DER element could not be read where one was expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;
pub(crate) const ENUMERATED: u8 = 0x0a;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;

/// `[n]` EXPLICIT (constructed, context-specific).
pub(crate) const fn explicit(n: u8) -> u8 {
    0xa0 | n
}

/// `[n]` IMPLICIT on a primitive type (context-specific).
pub(crate) const fn implicit(n: u8) -> u8 {
    0x80 | n
}

/// The elements of one level of DER, read front to back.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

/// One element: its tag, its contents, and the whole encoding (for
/// signatures, which cover the encoding and not only the contents).
#[derive(Clone, Copy)]
pub(crate) struct Element<'a> {
    pub(crate) tag: u8,
    pub(crate) contents: &'a [u8],
    pub(crate) whole: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    pub(crate) fn next(&mut self) -> Result<Element<'a>, Malformed> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(Malformed)?;
        // High tag numbers (low bits all set) never occur in OCSP.
        if tag & 0x1f == 0x1f {
            return Err(Malformed);
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or(Malformed)?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // 0x80 is BER's indefinite length; more than four length
            // bytes would describe more than any response can hold.
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(Malformed);
            }
            let (digits, rest) = after_len.split_at_checked(count).ok_or(Malformed)?;
            after_len = rest;
            digits.iter().fold(0usize, |n, &d| (n << 8) | usize::from(d))
        };
        let contents = after_len.get(..len).ok_or(Malformed)?;
        let header = self.rest.len() - after_len.len();
        let whole = self.rest.get(..header + len).ok_or(Malformed)?;
        self.rest = &after_len[len..];
        Ok(Element { tag, contents, whole })
    }

    /// The next element, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<Element<'a>, Malformed> {
        let element = self.next()?;
        if element.tag == tag {
            Ok(element)
        } else {
            Err(Malformed)
        }
    }

    /// The next element if it has `tag` (an OPTIONAL field), else nothing.
    pub(crate) fn optional(&mut self, tag: u8) -> Result<Option<Element<'a>>, Malformed> {
        if self.peek_tag() == Some(tag) {
            self.next().map(Some)
        } else {
            Ok(None)
        }
    }
}

impl<'a> Element<'a> {
    /// A reader over the contents of a constructed element.
    pub(crate) fn inner(&self) -> Reader<'a> {
        Reader::new(self.contents)
    }

    /// A BIT STRING's bits, which must be whole bytes (keys and signatures
    /// always are).
    pub(crate) fn bits(&self) -> Result<&'a [u8], Malformed> {
        match self.contents.split_first() {
            Some((0, bits)) => Ok(bits),
            _ => Err(Malformed),
        }
    }
}

/// Appends one element with `tag` around `contents`.
pub(crate) fn write(out: &mut Vec<u8>, tag: u8, contents: &[u8]) {
    out.push(tag);
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
}

/// One element with `tag` around `contents`, as a new buffer.
pub(crate) fn wrap(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    write(&mut out, tag, contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let contents = vec![7u8; len];
            let encoded = wrap(OCTET_STRING, &contents);
            let mut reader = Reader::new(&encoded);
            let element = reader.expect(OCTET_STRING).unwrap();
            assert_eq!(element.contents.len(), len);
            assert_eq!(element.whole, &encoded[..]);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn truncated_indefinite_and_oversized_are_malformed() {
        let cases: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x05, 1, 2],
            &[0x30, 0x80, 0, 0],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x1f, 0x01, 0x00],
        ];
        for bytes in cases {
            assert_eq!(Reader::new(bytes).next().err(), Some(Malformed), "{bytes:02x?}");
        }
    }

    #[test]
    fn optional_and_expect_look_at_the_tag() {
        let mut bytes = wrap(explicit(0), &wrap(INTEGER, &[1]));
        bytes.extend(wrap(SEQUENCE, &[]));
        let mut reader = Reader::new(&bytes);
        assert!(reader.optional(explicit(1)).unwrap().is_none());
        let version = reader.optional(explicit(0)).unwrap().unwrap();
        assert_eq!(version.inner().expect(INTEGER).unwrap().contents, &[1]);
        assert!(reader.expect(INTEGER).is_err());
    }

    #[test]
    fn bit_strings_with_unused_bits_are_refused() {
        let whole = wrap(BIT_STRING, &[0, 0xab]);
        let element = Reader::new(&whole).next().unwrap();
        assert_eq!(element.bits().unwrap(), &[0xab]);
        let partial = wrap(BIT_STRING, &[3, 0xa8]);
        assert!(Reader::new(&partial).next().unwrap().bits().is_err());
    }
}
