//! Fuzz target for AMF0 (with AMF3 behind the AVM+ marker) decoding and
//! encoding (`strom_media::rtmp::amf`), and command bodies.
//!
//! Invariants: nothing panics; what decodes (fully or as a prefix) encodes
//! to bytes that decode again, and encoding that result gives the same
//! bytes (decode ∘ encode is stable; bytes are compared, so NaNs and long
//! strings count as equal to themselves); a single-value decode agrees with
//! the first value of a whole decode when the input starts with a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_media::rtmp::amf::{decode, decode_all, decode_prefix, encode_all};
use strom_media::rtmp::message::{decode_values, Command, TYPE_COMMAND_AMF3};

fuzz_target!(|data: &[u8]| {
    let (values, err) = decode_prefix(data);
    if err.is_none() {
        assert_eq!(decode_all(data).map(|v| encode_all(&v)), Ok(encode_all(&values)));
    }
    let once = encode_all(&values);
    let again = decode_all(&once).expect("what strom encodes decodes");
    assert_eq!(encode_all(&again), once, "re-encoding is stable");

    let mut input = data;
    if let Ok(v) = decode(&mut input) {
        assert!(input.len() < data.len(), "a value consumes input");
        if data.first().is_some_and(|&m| m != 0x09) {
            if let Some(first) = values.first() {
                assert_eq!(encode_all(&[v]), encode_all(std::slice::from_ref(first)));
            }
        }
    }

    // As an AMF3 command message body.
    let (values, _) = decode_values(TYPE_COMMAND_AMF3, data);
    let _ = Command::from_values(values);
});
