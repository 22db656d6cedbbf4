//! AMF0 values (Adobe "Action Message Format – AMF 0", 2007): the encoding of RTMP command
//! messages (RTMP spec 1.0 §7.1.1, message type 20) and data messages (type 18, FLV script
//! tags, FLV spec §E.4.4).
//!
//! Owns: [`Amf0Value`] and its decoder and encoder for the markers of AMF0 §2.2 .. §2.18:
//! number, boolean, string, object (with the object-end marker), null, undefined, ECMA
//! array, strict array, date, long string, XML document, typed object and "unsupported".
//! Property order is kept (objects are `Vec`s), so encodings round-trip byte for byte.
//!
//! Never does: panic or recurse without bound on input (nesting is limited to
//! [`MAX_DEPTH`]), references (§2.9: no RTMP client sends them to a server; refused), AMF3
//! (§2.19 AVM+ switch is refused; AMF3 command messages, type 17, carry an AMF0 body the
//! session reads after the leading format byte). Strings that are not UTF-8 are decoded
//! lossily rather than refused: they are names and descriptions, never keys we trust.

use std::fmt;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 32;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// One AMF0 value.
#[derive(Clone, Debug, PartialEq)]
pub enum Amf0Value {
    Number(f64),
    Boolean(bool),
    /// A string; encoded as a long string (§2.14) when longer than 65535 bytes.
    String(String),
    /// Anonymous object (§2.5), properties in wire order.
    Object(Vec<(String, Amf0Value)>),
    Null,
    Undefined,
    /// Associative array (§2.10); the count on the wire is a hint and is recomputed.
    EcmaArray(Vec<(String, Amf0Value)>),
    StrictArray(Vec<Amf0Value>),
    /// Milliseconds since the epoch (UTC) and the reserved time zone field (§2.13).
    Date {
        millis: f64,
        timezone: i16,
    },
    /// A string that arrived with the long-string marker (§2.14).
    LongString(String),
    XmlDocument(String),
    TypedObject {
        class: String,
        properties: Vec<(String, Amf0Value)>,
    },
    Unsupported,
}

impl Amf0Value {
    /// The text of a string-like value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match self {
            Amf0Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Amf0Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Amf0Value)]> {
        match self {
            Amf0Value::Object(p)
            | Amf0Value::EcmaArray(p)
            | Amf0Value::TypedObject { properties: p, .. } => Some(p),
            _ => None,
        }
    }

    /// The first property named `key` of an object-like value.
    pub fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Shorthand for building objects: `Amf0Value::object([("code", "x".into())])`.
    pub fn object<const N: usize>(props: [(&str, Amf0Value); N]) -> Self {
        Amf0Value::Object(props.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Amf0Value::Number(n) => {
                out.push(NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf0Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
            Amf0Value::String(s) => match u16::try_from(s.len()) {
                Ok(len) => {
                    out.push(STRING);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
                Err(_) => write_long(LONG_STRING, s, out),
            },
            Amf0Value::Object(props) => {
                out.push(OBJECT);
                write_properties(props, out);
            }
            Amf0Value::Null => out.push(NULL),
            Amf0Value::Undefined => out.push(UNDEFINED),
            Amf0Value::EcmaArray(props) => {
                out.push(ECMA_ARRAY);
                out.extend_from_slice(&(props.len() as u32).to_be_bytes());
                write_properties(props, out);
            }
            Amf0Value::StrictArray(items) => {
                out.push(STRICT_ARRAY);
                out.extend_from_slice(&(items.len() as u32).to_be_bytes());
                for item in items {
                    item.encode(out);
                }
            }
            Amf0Value::Date { millis, timezone } => {
                out.push(DATE);
                out.extend_from_slice(&millis.to_be_bytes());
                out.extend_from_slice(&timezone.to_be_bytes());
            }
            Amf0Value::LongString(s) => write_long(LONG_STRING, s, out),
            Amf0Value::XmlDocument(s) => write_long(XML_DOCUMENT, s, out),
            Amf0Value::TypedObject { class, properties } => {
                out.push(TYPED_OBJECT);
                write_key(class, out);
                write_properties(properties, out);
            }
            Amf0Value::Unsupported => out.push(UNSUPPORTED),
        }
    }
}

impl From<&str> for Amf0Value {
    fn from(s: &str) -> Self {
        Amf0Value::String(s.to_string())
    }
}

impl From<String> for Amf0Value {
    fn from(s: String) -> Self {
        Amf0Value::String(s)
    }
}

impl From<f64> for Amf0Value {
    fn from(n: f64) -> Self {
        Amf0Value::Number(n)
    }
}

impl From<bool> for Amf0Value {
    fn from(b: bool) -> Self {
        Amf0Value::Boolean(b)
    }
}

fn write_long(marker: u8, s: &str, out: &mut Vec<u8>) {
    out.push(marker);
    // Strings come from our own code and from decoded messages (≤ 16 MiB); saturate anyway.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

/// A UTF-8-8 key (§1.3.1): 16-bit length, no marker. Longer keys are truncated at 65535
/// bytes (never produced by our own code).
fn write_key(k: &str, out: &mut Vec<u8>) {
    let len = k.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&k.as_bytes()[..len]);
}

fn write_properties(props: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (k, v) in props {
        write_key(k, out);
        v.encode(out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Encodes a sequence of values (a command or data message body).
pub fn encode_all(values: &[Amf0Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Why a value could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amf0ErrorKind {
    /// The input ended inside a value.
    Truncated,
    /// A marker that is not AMF0, or an object-end marker outside an object.
    UnknownMarker(u8),
    /// A marker we refuse: reference (0x07), movieclip/recordset (reserved), AVM+ (0x11).
    UnsupportedMarker(u8),
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
}

/// A decode error with the byte offset (within the decoded buffer) where it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amf0Error {
    pub kind: Amf0ErrorKind,
    pub offset: usize,
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Amf0ErrorKind::Truncated => write!(f, "amf0: truncated value at byte {}", self.offset),
            Amf0ErrorKind::UnknownMarker(m) => {
                write!(f, "amf0: unknown marker 0x{m:02x} at byte {}", self.offset)
            }
            Amf0ErrorKind::UnsupportedMarker(m) => {
                write!(
                    f,
                    "amf0: unsupported marker 0x{m:02x} at byte {}",
                    self.offset
                )
            }
            Amf0ErrorKind::TooDeep => write!(
                f,
                "amf0: nesting deeper than {MAX_DEPTH} at byte {}",
                self.offset
            ),
        }
    }
}

impl std::error::Error for Amf0Error {}

/// Decodes one value from the start of `buf`; returns it and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<(Amf0Value, usize), Amf0Error> {
    let mut r = Reader { buf, pos: 0 };
    let v = r.value(0)?;
    Ok((v, r.pos))
}

/// Decodes values until `buf` is used up.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Amf0Value>, Amf0Error> {
    let mut r = Reader { buf, pos: 0 };
    let mut out = Vec::new();
    while r.pos < buf.len() {
        out.push(r.value(0)?);
    }
    Ok(out)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, kind: Amf0ErrorKind) -> Amf0Error {
        Amf0Error {
            kind,
            offset: self.pos,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.err(Amf0ErrorKind::Truncated))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    fn short_string(&mut self) -> Result<String, Amf0Error> {
        let len = usize::from(self.u16()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn long_string(&mut self) -> Result<String, Amf0Error> {
        let len = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    /// Properties up to and including the object-end marker (§2.5, §2.11).
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Amf0Value)>, Amf0Error> {
        let mut props = Vec::new();
        loop {
            let key = self.short_string()?;
            if key.is_empty() && self.buf.get(self.pos) == Some(&OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let value = self.value(depth + 1)?;
            props.push((key, value));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Amf0Value, Amf0Error> {
        if depth >= MAX_DEPTH {
            return Err(self.err(Amf0ErrorKind::TooDeep));
        }
        let marker_at = self.pos;
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Amf0Value::Number(self.f64()?),
            BOOLEAN => Amf0Value::Boolean(self.u8()? != 0),
            STRING => Amf0Value::String(self.short_string()?),
            OBJECT => Amf0Value::Object(self.properties(depth)?),
            NULL => Amf0Value::Null,
            UNDEFINED => Amf0Value::Undefined,
            ECMA_ARRAY => {
                let _count_hint = self.u32()?;
                Amf0Value::EcmaArray(self.properties(depth)?)
            }
            STRICT_ARRAY => {
                let count = self.u32()? as usize;
                // Every item takes at least one byte: never reserve more than is left.
                let mut items = Vec::with_capacity(count.min(self.buf.len() - self.pos));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Amf0Value::StrictArray(items)
            }
            DATE => {
                let millis = self.f64()?;
                let tz = self.u16()?;
                Amf0Value::Date {
                    millis,
                    timezone: tz as i16,
                }
            }
            LONG_STRING => Amf0Value::LongString(self.long_string()?),
            UNSUPPORTED => Amf0Value::Unsupported,
            XML_DOCUMENT => Amf0Value::XmlDocument(self.long_string()?),
            TYPED_OBJECT => {
                let class = self.short_string()?;
                let properties = self.properties(depth)?;
                Amf0Value::TypedObject { class, properties }
            }
            0x04 | REFERENCE | 0x0E | AVMPLUS => {
                self.pos = marker_at;
                return Err(self.err(Amf0ErrorKind::UnsupportedMarker(marker)));
            }
            _ => {
                self.pos = marker_at;
                return Err(self.err(Amf0ErrorKind::UnknownMarker(marker)));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: Vec<(Amf0Value, Vec<u8>)> = vec![
            (
                Amf0Value::Number(1.0),
                vec![0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0],
            ),
            (Amf0Value::Boolean(true), vec![0x01, 0x01]),
            (
                "connect".into(),
                vec![0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't'],
            ),
            (Amf0Value::Null, vec![0x05]),
            (Amf0Value::Undefined, vec![0x06]),
            (
                Amf0Value::object([("a", 0.0.into())]),
                vec![0x03, 0, 1, b'a', 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x09],
            ),
            (
                Amf0Value::EcmaArray(vec![("b".into(), false.into())]),
                vec![0x08, 0, 0, 0, 1, 0, 1, b'b', 0x01, 0x00, 0, 0, 0x09],
            ),
            (
                Amf0Value::StrictArray(vec![Amf0Value::Null, true.into()]),
                vec![0x0A, 0, 0, 0, 2, 0x05, 0x01, 0x01],
            ),
            (
                Amf0Value::Date {
                    millis: 0.0,
                    timezone: 0,
                },
                vec![0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            (
                Amf0Value::LongString("hi".into()),
                vec![0x0C, 0, 0, 0, 2, b'h', b'i'],
            ),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            value.encode(&mut out);
            assert_eq!(out, bytes, "encode {value:?}");
            assert_eq!(decode(&bytes), Ok((value, bytes.len())));
        }
    }

    #[test]
    fn ffmpeg_connect_round_trips() {
        let values = vec![
            "connect".into(),
            1.0.into(),
            Amf0Value::object([
                ("app", "static".into()),
                ("flashVer", "LNX 9,0,124,2".into()),
                ("tcUrl", "rtmp://127.0.0.1:1935/static".into()),
                ("fpad", false.into()),
                ("capabilities", 15.0.into()),
                ("audioCodecs", 4071.0.into()),
                ("videoCodecs", 252.0.into()),
                ("videoFunction", 1.0.into()),
            ]),
        ];
        let bytes = encode_all(&values);
        let back = decode_all(&bytes).unwrap();
        assert_eq!(back, values);
        assert_eq!(
            back[2].get("app").and_then(Amf0Value::as_str),
            Some("static")
        );
        assert_eq!(
            back[2].get("capabilities").and_then(Amf0Value::as_number),
            Some(15.0)
        );
        assert_eq!(encode_all(&back), bytes);
    }

    #[test]
    fn long_strings_promote() {
        let s = "x".repeat(70_000);
        let mut out = Vec::new();
        Amf0Value::String(s.clone()).encode(&mut out);
        assert_eq!(&out[..5], &[0x0C, 0, 1, 0x11, 0x70]);
        assert_eq!(decode(&out).unwrap().0, Amf0Value::LongString(s));
    }

    #[test]
    fn nested_and_typed() {
        let v = Amf0Value::TypedObject {
            class: "C".into(),
            properties: vec![(
                "o".into(),
                Amf0Value::object([("n", Amf0Value::StrictArray(vec![1.0.into()]))]),
            )],
        };
        let bytes = encode_all(std::slice::from_ref(&v));
        assert_eq!(decode_all(&bytes).unwrap(), vec![v]);
        assert_eq!(
            decode(&[0x0F, 0, 0, 0, 1, b'<']).unwrap().0,
            Amf0Value::XmlDocument("<".into())
        );
    }

    #[test]
    fn errors_not_panics() {
        assert_eq!(
            decode(&[0x00, 1, 2]),
            Err(Amf0Error {
                kind: Amf0ErrorKind::Truncated,
                offset: 1
            })
        );
        assert_eq!(
            decode(&[0x07, 0, 1]).unwrap_err().kind,
            Amf0ErrorKind::UnsupportedMarker(0x07)
        );
        assert_eq!(
            decode(&[0x03, 0, 1, b'k', 0x42]).unwrap_err(),
            Amf0Error {
                kind: Amf0ErrorKind::UnknownMarker(0x42),
                offset: 4
            }
        );
        assert_eq!(
            decode(&[0x09]).unwrap_err().kind,
            Amf0ErrorKind::UnknownMarker(0x09)
        );
        // A strict array claiming 4 billion items fails on the data, not on allocation.
        assert_eq!(
            decode(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05])
                .unwrap_err()
                .kind,
            Amf0ErrorKind::Truncated
        );
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x03, 0, 1, b'k']);
        }
        assert_eq!(decode(&deep).unwrap_err().kind, Amf0ErrorKind::TooDeep);
        let deep_arrays = [0x0A, 0, 0, 0, 1].repeat(1000);
        assert_eq!(
            decode(&deep_arrays).unwrap_err().kind,
            Amf0ErrorKind::TooDeep
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seed = encode_all(&[
            "onStatus".into(),
            0.0.into(),
            Amf0Value::Null,
            Amf0Value::object([
                ("level", "status".into()),
                ("list", Amf0Value::StrictArray(vec![1.0.into(), "s".into()])),
                (
                    "arr",
                    Amf0Value::EcmaArray(vec![("d".into(), Amf0Value::Undefined)]),
                ),
            ]),
        ]);
        for i in 0..5000 {
            let mut buf = if i % 2 == 0 {
                seed.clone()
            } else {
                (0..next() % 64).map(|_| next() as u8 % 0x14).collect()
            };
            for _ in 0..(next() % 6) {
                if buf.is_empty() {
                    break;
                }
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
            buf.truncate((next() as usize) % (buf.len() + 1));
            if let Ok(values) = decode_all(&buf) {
                // Whatever decodes re-encodes and decodes to the same values.
                let again = encode_all(&values);
                let back = decode_all(&again).unwrap();
                assert_eq!(back.len(), values.len());
            }
        }
    }
}
