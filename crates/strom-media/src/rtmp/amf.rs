//! AMF0 (Adobe AMF 0 specification, §2), with AMF3 values behind the AVM+
//! marker (§3.1: one value in AMF 3, fresh reference tables each time).
//!
//! Decoding is forgiving where encoders are known to be sloppy, strict where
//! memory is at stake:
//! - strings are UTF-8 by the spec; invalid bytes become U+FFFD, never an error;
//! - an object or ECMA array may end at the end of the input without its
//!   object-end marker (0x00 0x00 0x09), and a bare 0x09 where a key's length
//!   should start also ends it; the ECMA array's count is advisory;
//! - stray object-end markers between top-level values are skipped; one in
//!   a value position reads as `Undefined`, as do references (0x07) and
//!   `unsupported` (0x0D); movieclip and recordset are errors;
//! - XML documents read as [`Value::LongString`].
//!
//! Bounds: nesting depth [`MAX_DEPTH`], at most [`MAX_VALUES`] values per
//! call, no allocation sized by a count field (every element costs at least
//! one input byte), and AMF3 string and trait references may copy at most
//! four times the input's size (plus 64 KiB).
//!
//! The encoder writes every [`Value`]; a `String` longer than 65535 bytes goes
//! out as a long string. Decoding what it wrote gives the same bytes again.

use super::amf3;

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 32;
/// Most values (nested ones included) decoded by one call.
pub const MAX_VALUES: usize = 65_536;

/// An AMF value. AMF3 values map onto it (see [`amf3`](super::amf3)).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    /// Anonymous object: properties in order.
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Associative array (`onMetaData`'s usual shape).
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch (UTC); `timezone` is reserved (0).
    Date {
        millis: f64,
        timezone: i16,
    },
    LongString(String),
    TypedObject {
        class: String,
        properties: Vec<(String, Value)>,
    },
}

impl Value {
    /// The text of a `String` or `LongString`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first property named `key`, if this has properties.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

/// Why AMF did not decode. No input bytes are quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmfError {
    #[error("amf: value runs past the end of the input")]
    Truncated,
    #[error("amf: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("amf: more than {MAX_VALUES} values")]
    TooMany,
    #[error("amf: unknown type marker")]
    Marker,
    #[error("amf: unsupported type {0}")]
    Unsupported(&'static str),
    #[error("amf3: reference to nothing, or references copying too much")]
    Reference,
}

// AMF0 markers (§2.1).
const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const MOVIECLIP: u8 = 0x04;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const REFERENCE: u8 = 0x07;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const UNSUPPORTED: u8 = 0x0D;
const RECORDSET: u8 = 0x0E;
const XML_DOCUMENT: u8 = 0x0F;
const TYPED_OBJECT: u8 = 0x10;
const AVMPLUS: u8 = 0x11;

/// A cursor over the input with the per-call budgets; shared with AMF3.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    values: usize,
    /// Bytes AMF3 string references may still copy.
    pub(super) copy_budget: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            values: 0,
            copy_budget: buf.len().saturating_mul(4).saturating_add(64 << 10),
        }
    }

    pub(super) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(super) fn bytes(&mut self, n: usize) -> Result<&'a [u8], AmfError> {
        let b = self
            .buf
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(AmfError::Truncated)?;
        self.pos += n;
        Ok(b)
    }

    pub(super) fn u8(&mut self) -> Result<u8, AmfError> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, AmfError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, AmfError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn f64(&mut self) -> Result<f64, AmfError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    pub(super) fn utf8(&mut self, n: usize) -> Result<String, AmfError> {
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }

    /// Counts one more value against [`MAX_VALUES`].
    pub(super) fn count(&mut self) -> Result<(), AmfError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(AmfError::TooMany);
        }
        Ok(())
    }
}

/// Decodes one AMF0 value from the front of `input`, advancing it.
pub fn decode(input: &mut &[u8]) -> Result<Value, AmfError> {
    let mut r = Reader::new(input);
    let v = value(&mut r, 0)?;
    *input = &input[r.pos..];
    Ok(v)
}

/// Decodes a sequence of AMF0 values filling `input` (a command or data
/// message body), skipping stray object-end markers between them.
pub fn decode_all(input: &[u8]) -> Result<Vec<Value>, AmfError> {
    match decode_prefix(input) {
        (values, None) => Ok(values),
        (_, Some(e)) => Err(e),
    }
}

/// Like [`decode_all`], but keeps the values decoded before an error: a
/// command whose name and transaction id decode can still be answered.
pub fn decode_prefix(input: &[u8]) -> (Vec<Value>, Option<AmfError>) {
    let mut r = Reader::new(input);
    let mut values = Vec::new();
    while let Some(marker) = r.peek() {
        if marker == OBJECT_END {
            r.pos += 1;
            continue;
        }
        // A stray "00 00 09" too short to be a number.
        if r.remaining() < 9 && input[r.pos..].starts_with(&[0, 0, OBJECT_END]) {
            r.pos += 3;
            continue;
        }
        match value(&mut r, 0) {
            Ok(v) => values.push(v),
            Err(e) => return (values, Some(e)),
        }
    }
    (values, None)
}

fn value(r: &mut Reader, depth: usize) -> Result<Value, AmfError> {
    r.count()?;
    Ok(match r.u8()? {
        NUMBER => Value::Number(r.f64()?),
        BOOLEAN => Value::Boolean(r.u8()? != 0),
        STRING => {
            let n = r.u16()? as usize;
            Value::String(r.utf8(n)?)
        }
        OBJECT => Value::Object(properties(r, depth + 1)?),
        NULL => Value::Null,
        UNDEFINED | UNSUPPORTED | OBJECT_END => Value::Undefined,
        REFERENCE => {
            r.u16()?;
            Value::Undefined
        }
        ECMA_ARRAY => {
            r.u32()?; // advisory count
            Value::EcmaArray(properties(r, depth + 1)?)
        }
        STRICT_ARRAY => {
            let n = r.u32()?;
            let depth = nest(depth)?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(value(r, depth)?);
            }
            Value::StrictArray(items)
        }
        DATE => Value::Date {
            millis: r.f64()?,
            timezone: r.u16()? as i16,
        },
        LONG_STRING | XML_DOCUMENT => {
            let n = r.u32()? as usize;
            Value::LongString(r.utf8(n)?)
        }
        TYPED_OBJECT => {
            let n = r.u16()? as usize;
            let class = r.utf8(n)?;
            Value::TypedObject {
                class,
                properties: properties(r, depth + 1)?,
            }
        }
        AVMPLUS => amf3::decode(r, depth)?,
        MOVIECLIP => return Err(AmfError::Unsupported("movieclip")),
        RECORDSET => return Err(AmfError::Unsupported("recordset")),
        _ => return Err(AmfError::Marker),
    })
}

/// Checks and returns the depth one level down.
pub(super) fn nest(depth: usize) -> Result<usize, AmfError> {
    if depth >= MAX_DEPTH {
        return Err(AmfError::TooDeep);
    }
    Ok(depth + 1)
}

/// Key/value pairs up to the object-end marker (or the end of the input).
fn properties(r: &mut Reader, depth: usize) -> Result<Vec<(String, Value)>, AmfError> {
    if depth > MAX_DEPTH {
        return Err(AmfError::TooDeep);
    }
    let mut props = Vec::new();
    loop {
        let Some(first) = r.peek() else {
            return Ok(props);
        };
        // A bare end marker where a key should be, unless it really is a
        // key of length 0x09xx.
        if first == OBJECT_END && r.remaining() < 2 + 0x0900 {
            r.pos += 1;
            return Ok(props);
        }
        let n = r.u16()? as usize;
        if n == 0 {
            match r.peek() {
                None => return Ok(props),
                Some(OBJECT_END) => {
                    r.pos += 1;
                    return Ok(props);
                }
                Some(_) => {}
            }
        }
        let key = r.utf8(n)?;
        let v = value(r, depth)?;
        props.push((key, v));
    }
}

/// Appends the AMF0 encoding of `v` to `out`.
pub fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, *b as u8]),
        Value::String(s) if s.len() <= 0xFFFF => {
            out.push(STRING);
            put_short(out, s);
        }
        Value::String(s) | Value::LongString(s) => {
            out.push(LONG_STRING);
            out.extend_from_slice(&(s.len().min(u32::MAX as usize) as u32).to_be_bytes());
            out.extend_from_slice(&s.as_bytes()[..s.len().min(u32::MAX as usize)]);
        }
        Value::Object(props) => {
            out.push(OBJECT);
            put_properties(out, props);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(props) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(props.len() as u32).to_be_bytes());
            put_properties(out, props);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(out, item);
            }
        }
        Value::Date { millis, timezone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&timezone.to_be_bytes());
        }
        Value::TypedObject { class, properties } => {
            out.push(TYPED_OBJECT);
            put_short(out, class);
            put_properties(out, properties);
        }
    }
}

/// Encodes a sequence of values (a command or data message body).
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encode(&mut out, v);
    }
    out
}

/// A UTF-8 string with a 16-bit length, cut at a char boundary if longer.
fn put_short(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len().min(0xFFFF);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..n]);
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (k, v) in props {
        put_short(out, k);
        encode(out, v);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn every_amf0_type_round_trips() {
        let values = vec![
            Value::Number(1.5),
            Value::Boolean(true),
            s("connect"),
            Value::Object(vec![("app".into(), s("live")), ("n".into(), Value::Null)]),
            Value::Null,
            Value::Undefined,
            Value::EcmaArray(vec![("duration".into(), Value::Number(0.0))]),
            Value::StrictArray(vec![s("hvc1"), Value::Number(2.0)]),
            Value::Date {
                millis: 1.7e12,
                timezone: 0,
            },
            Value::LongString("x".repeat(70_000)),
            Value::TypedObject {
                class: "flex.Msg".into(),
                properties: vec![("a".into(), Value::Boolean(false))],
            },
        ];
        let bytes = encode_all(&values);
        assert_eq!(decode_all(&bytes).expect("decodes"), values);
    }

    #[test]
    fn odd_object_ends_strict_and_ecma_arrays_are_accepted() {
        let mut b = Vec::new();
        encode(&mut b, &s("connect"));
        encode(&mut b, &Value::Number(1.0));
        // Object ended by a bare 0x09, with a strict array inside.
        b.extend_from_slice(&[OBJECT, 0, 3]);
        b.extend_from_slice(b"app");
        encode(&mut b, &s("live"));
        b.extend_from_slice(&[0, 4]);
        b.extend_from_slice(b"list");
        b.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 2]);
        encode(&mut b, &s("hvc1"));
        b.push(OBJECT_END); // an end marker as an element
        b.push(OBJECT_END);
        // A stray end marker between top-level values.
        b.push(OBJECT_END);
        // ECMA array with a wrong count, then its end and a stray one more.
        b.extend_from_slice(&[ECMA_ARRAY, 0, 0, 0, 0, 0, 1]);
        b.push(b'w');
        encode(&mut b, &Value::Number(640.0));
        b.extend_from_slice(&[0, 0, OBJECT_END, 0, 0, OBJECT_END]);
        let got = decode_all(&b).expect("decodes");
        assert_eq!(
            got,
            vec![
                s("connect"),
                Value::Number(1.0),
                Value::Object(vec![
                    ("app".into(), s("live")),
                    ("list".into(), Value::StrictArray(vec![s("hvc1"), Value::Undefined])),
                ]),
                Value::EcmaArray(vec![("w".into(), Value::Number(640.0))]),
            ]
        );
        // An object cut off before its end marker.
        let b = [OBJECT, 0, 1, b'x', BOOLEAN, 1];
        assert_eq!(
            decode_all(&b).expect("decodes"),
            vec![Value::Object(vec![("x".into(), Value::Boolean(true))])]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let b = [STRING, 0, 3, b'a', 0xFF, b'b'];
        assert_eq!(decode_all(&b).expect("decodes"), vec![s("a\u{FFFD}b")]);
    }

    #[test]
    fn references_and_unsupported_read_as_undefined() {
        let b = [REFERENCE, 0, 1, UNSUPPORTED];
        assert_eq!(
            decode_all(&b).expect("decodes"),
            vec![Value::Undefined, Value::Undefined]
        );
        assert_eq!(decode_all(&[MOVIECLIP]), Err(AmfError::Unsupported("movieclip")));
        assert_eq!(decode_all(&[0x20]), Err(AmfError::Marker));
    }

    #[test]
    fn depth_and_count_are_bounded() {
        let deep: Vec<u8> = std::iter::repeat_n([STRICT_ARRAY, 0, 0, 0, 1], 40).flatten().collect();
        assert_eq!(decode_all(&deep), Err(AmfError::TooDeep));
        let deep_objects: Vec<u8> = std::iter::repeat_n([OBJECT, 0, 1, b'k'], 40).flatten().collect();
        assert_eq!(decode_all(&deep_objects), Err(AmfError::TooDeep));
        let many = vec![NULL; MAX_VALUES + 1];
        assert_eq!(decode_all(&many), Err(AmfError::TooMany));
        // A huge count with nothing behind it allocates nothing and fails.
        assert_eq!(
            decode_all(&[STRICT_ARRAY, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(AmfError::Truncated)
        );
    }

    #[test]
    fn prefix_keeps_what_decoded() {
        let mut b = encode_all(&[s("publish"), Value::Number(5.0)]);
        b.push(MOVIECLIP);
        let (values, err) = decode_prefix(&b);
        assert_eq!(values, vec![s("publish"), Value::Number(5.0)]);
        assert_eq!(err, Some(AmfError::Unsupported("movieclip")));
    }

    #[test]
    fn long_keys_are_cut_at_a_char_boundary() {
        let key = "é".repeat(40_000); // 80,000 bytes
        let v = Value::Object(vec![(key, Value::Null)]);
        let b = encode_all(&[v]);
        let got = decode_all(&b).expect("decodes");
        let k = &got[0].properties().expect("object")[0].0;
        assert_eq!(k.len(), 0xFFFE);
        assert!(k.chars().all(|c| c == 'é'));
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_reencoding_is_stable(data in prop::collection::vec(any::<u8>(), 0..2000)) {
            let (values, _) = decode_prefix(&data);
            let once = encode_all(&values);
            let again = decode_all(&once).expect("what we encode decodes");
            prop_assert_eq!(encode_all(&again), once);
        }
    }
}
