//! AMF3 values (Adobe AMF 3 specification §3), reached from AMF0 through
//! the AVM+ marker, mapped onto [`Value`]:
//! - undefined, null, booleans as themselves; integer (29-bit signed) and
//!   double as `Number`; string as `String`; XML and XMLDocument as
//!   `LongString`; date as `Date` (timezone 0);
//! - array: only dense elements → `StrictArray`; with associative ones →
//!   `EcmaArray` (associative pairs, then dense ones keyed "0", "1", …);
//! - object: anonymous → `Object`, with a class name → `TypedObject`
//!   (sealed members, then dynamic ones);
//! - object references → `Undefined` (copying them could blow up memory);
//!   string and trait references are resolved within the one AMF3 value.
//!
//! Byte arrays, vectors, dictionaries and externalizable objects are refused
//! with [`AmfError::Unsupported`]; nothing RTMP encoders send needs them.
//! Copies made by string and trait references are charged to the reader's
//! copy budget, so a few bytes cannot expand into much memory.

use std::rc::Rc;

use super::amf::{nest, AmfError, Reader, Value};

struct Traits {
    class: String,
    dynamic: bool,
    sealed: Vec<String>,
}

#[derive(Default)]
struct Context {
    strings: Vec<String>,
    traits: Vec<Rc<Traits>>,
}

/// Decodes one AMF3 value (after the AVM+ marker) with fresh reference tables.
pub(super) fn decode(r: &mut Reader, depth: usize) -> Result<Value, AmfError> {
    Context::default().value(r, depth)
}

/// U29 (§1.3.1): 1–4 bytes, 7 bits each for the first three, 8 for the fourth.
fn u29(r: &mut Reader) -> Result<u32, AmfError> {
    let mut v = 0u32;
    for _ in 0..3 {
        let b = r.u8()?;
        if b & 0x80 == 0 {
            return Ok(v << 7 | b as u32);
        }
        v = v << 7 | (b & 0x7F) as u32;
    }
    Ok(v << 8 | r.u8()? as u32)
}

fn charge(r: &mut Reader, n: usize) -> Result<(), AmfError> {
    r.copy_budget = r.copy_budget.checked_sub(n).ok_or(AmfError::Reference)?;
    Ok(())
}

impl Context {
    /// UTF-8-vr (§3.8): inline (added to the table unless empty) or a reference.
    fn string(&mut self, r: &mut Reader) -> Result<String, AmfError> {
        let h = u29(r)?;
        if h & 1 == 0 {
            let s = self.strings.get((h >> 1) as usize).ok_or(AmfError::Reference)?;
            charge(r, s.len())?;
            return Ok(s.clone());
        }
        let s = r.utf8((h >> 1) as usize)?;
        if !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    /// The header of a value kept in the object table: `None` for a reference.
    fn inline(r: &mut Reader) -> Result<Option<u32>, AmfError> {
        let h = u29(r)?;
        Ok((h & 1 == 1).then_some(h >> 1))
    }

    fn value(&mut self, r: &mut Reader, depth: usize) -> Result<Value, AmfError> {
        r.count()?;
        Ok(match r.u8()? {
            0x00 => Value::Undefined,
            0x01 => Value::Null,
            0x02 => Value::Boolean(false),
            0x03 => Value::Boolean(true),
            0x04 => {
                let v = u29(r)? as i32;
                // Sign-extend 29 bits.
                Value::Number(((v << 3) >> 3) as f64)
            }
            0x05 => Value::Number(r.f64()?),
            0x06 => Value::String(self.string(r)?),
            0x07 | 0x0B => match Self::inline(r)? {
                Some(n) => Value::LongString(r.utf8(n as usize)?),
                None => Value::Undefined,
            },
            0x08 => match Self::inline(r)? {
                Some(_) => Value::Date {
                    millis: r.f64()?,
                    timezone: 0,
                },
                None => Value::Undefined,
            },
            0x09 => match Self::inline(r)? {
                Some(dense) => self.array(r, nest(depth)?, dense)?,
                None => Value::Undefined,
            },
            0x0A => match Self::inline(r)? {
                Some(h) => self.object(r, nest(depth)?, h)?,
                None => Value::Undefined,
            },
            0x0C => return Err(AmfError::Unsupported("amf3 byte array")),
            0x0D..=0x10 => return Err(AmfError::Unsupported("amf3 vector")),
            0x11 => return Err(AmfError::Unsupported("amf3 dictionary")),
            _ => return Err(AmfError::Marker),
        })
    }

    fn array(&mut self, r: &mut Reader, depth: usize, dense: u32) -> Result<Value, AmfError> {
        let mut assoc = Vec::new();
        loop {
            let key = self.string(r)?;
            if key.is_empty() {
                break;
            }
            let v = self.value(r, depth)?;
            assoc.push((key, v));
        }
        let mut items = Vec::new();
        for _ in 0..dense {
            items.push(self.value(r, depth)?);
        }
        if assoc.is_empty() {
            return Ok(Value::StrictArray(items));
        }
        assoc.extend(items.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)));
        Ok(Value::EcmaArray(assoc))
    }

    /// An object after its U29O header (shifted past the inline bit).
    fn object(&mut self, r: &mut Reader, depth: usize, h: u32) -> Result<Value, AmfError> {
        let traits = if h & 1 == 0 {
            let t = self.traits.get((h >> 1) as usize).ok_or(AmfError::Reference)?;
            Rc::clone(t)
        } else if h & 2 != 0 {
            return Err(AmfError::Unsupported("amf3 externalizable object"));
        } else {
            let class = self.string(r)?;
            let mut sealed = Vec::new();
            for _ in 0..h >> 3 {
                sealed.push(self.string(r)?);
            }
            let t = Rc::new(Traits {
                class,
                dynamic: h & 4 != 0,
                sealed,
            });
            self.traits.push(Rc::clone(&t));
            t
        };
        let mut props = Vec::new();
        for name in &traits.sealed {
            charge(r, name.len())?;
            let v = self.value(r, depth)?;
            props.push((name.clone(), v));
        }
        if traits.dynamic {
            loop {
                let key = self.string(r)?;
                if key.is_empty() {
                    break;
                }
                let v = self.value(r, depth)?;
                props.push((key, v));
            }
        }
        charge(r, traits.class.len())?;
        Ok(if traits.class.is_empty() {
            Value::Object(props)
        } else {
            Value::TypedObject {
                class: traits.class.clone(),
                properties: props,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::rtmp::amf::{decode_all, AmfError, Value};

    const AVMPLUS: u8 = 0x11;

    #[test]
    fn primitives() {
        let b = [
            AVMPLUS, 0x00, AVMPLUS, 0x01, AVMPLUS, 0x03, AVMPLUS, 0x04, 0x7F, // 127
            AVMPLUS, 0x04, 0xFF, 0xFF, 0xFF, 0xFF, // -1
            AVMPLUS, 0x04, 0x81, 0x00, // 128
        ];
        assert_eq!(
            decode_all(&b).expect("decodes"),
            vec![
                Value::Undefined,
                Value::Null,
                Value::Boolean(true),
                Value::Number(127.0),
                Value::Number(-1.0),
                Value::Number(128.0),
            ]
        );
    }

    #[test]
    fn anonymous_dynamic_object_with_string_references() {
        // {app: "live", tcUrl: "live"} where the second "live" is a reference.
        let mut b = vec![AVMPLUS, 0x0A, 0x0B, 0x01]; // inline, dynamic, 0 sealed, class ""
        b.push(0x07);
        b.extend_from_slice(b"app");
        b.extend_from_slice(&[0x06, 0x09]);
        b.extend_from_slice(b"live");
        b.push(0x0B);
        b.extend_from_slice(b"tcUrl");
        b.extend_from_slice(&[0x06, 0x02]); // reference to string 1 ("live")
        b.push(0x01); // end of dynamic members
        assert_eq!(
            decode_all(&b).expect("decodes"),
            vec![Value::Object(vec![
                ("app".into(), Value::from("live")),
                ("tcUrl".into(), Value::from("live")),
            ])]
        );
    }

    #[test]
    fn sealed_traits_are_reused_by_reference() {
        // Array of two typed objects "P" {x}; the second reuses the traits.
        let mut b = vec![AVMPLUS, 0x09, 0x05, 0x01]; // dense 2, no assoc
        b.extend_from_slice(&[0x0A, 0x13, 0x03, b'P', 0x03, b'x', 0x04, 0x01]);
        b.extend_from_slice(&[0x0A, 0x01, 0x04, 0x02]); // traits ref 0
        let p = |x: f64| Value::TypedObject {
            class: "P".into(),
            properties: vec![("x".into(), Value::Number(x))],
        };
        assert_eq!(
            decode_all(&b).expect("decodes"),
            vec![Value::StrictArray(vec![p(1.0), p(2.0)])]
        );
    }

    #[test]
    fn mixed_array_object_reference_and_refusals() {
        let b = [
            AVMPLUS, 0x09, 0x03, 0x03, b'k', 0x02, 0x01, 0x05, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut want = vec![Value::EcmaArray(vec![
            ("k".into(), Value::Boolean(false)),
            ("0".into(), Value::Number(0.0)),
        ])];
        assert_eq!(decode_all(&b).expect("decodes"), want);
        let mut b = b.to_vec();
        b.extend_from_slice(&[AVMPLUS, 0x0A, 0x00]); // object reference 0
        want.push(Value::Undefined);
        assert_eq!(decode_all(&b).expect("decodes"), want);
        assert_eq!(
            decode_all(&[AVMPLUS, 0x06, 0x02]),
            Err(AmfError::Reference),
            "string reference to an empty table"
        );
        assert_eq!(
            decode_all(&[AVMPLUS, 0x0C, 0x01]),
            Err(AmfError::Unsupported("amf3 byte array"))
        );
        assert_eq!(
            decode_all(&[AVMPLUS, 0x0A, 0x07, 0x01]),
            Err(AmfError::Unsupported("amf3 externalizable object"))
        );
    }

    #[test]
    fn reference_copies_are_bounded() {
        // One 1000-byte string, then a dense array of many references to it.
        let n = 20_000u32;
        let mut b = vec![AVMPLUS, 0x09];
        let h = n << 1 | 1;
        b.extend_from_slice(&[0x80 | (h >> 14) as u8, 0x80 | (h >> 7 & 0x7F) as u8, (h & 0x7F) as u8]);
        b.push(0x01); // no assoc
        let len = 1000u32 << 1 | 1;
        b.extend_from_slice(&[0x06, 0x80 | (len >> 7) as u8, (len & 0x7F) as u8]);
        b.extend(std::iter::repeat_n(b'a', 1000));
        for _ in 1..n {
            b.extend_from_slice(&[0x06, 0x00]);
        }
        assert_eq!(decode_all(&b), Err(AmfError::Reference));
    }
}
