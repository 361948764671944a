//! Fuzz target for the node-to-node stream list (`GET /api/v1/cluster/streams`).
//!
//! The input is read as `cluster::manager`'s `fetch_list` and `peers.rs` read
//! a peer's answer: `serde_json::from_slice` into [`StreamList`], then every
//! entry's name goes through `strom_config::check_stream_name`. Invariants:
//! - nothing panics;
//! - a parsed list serialises and deserialises back to an equal list (from
//!   compact and from pretty JSON), and the compact text is a fixed point;
//! - a name the check accepts is 1..=128 bytes of `[A-Za-z0-9_.-/]`, with no
//!   empty, `.` or `..` segment; a refusal's message is one line without
//!   control characters, so it can be logged as it is;
//! - the peer's claimed load, once `bounded`, stays under the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_api::StreamList;

/// The longest name `check_stream_name` lets through.
const MAX_NAME: usize = 128;

fn same(a: &StreamList, b: &StreamList) -> bool {
    // `StreamList` has no `PartialEq`; its fields do.
    a.streams == b.streams && a.load == b.load
}

fn check_name(name: &str) {
    match strom_config::check_stream_name(name) {
        Ok(()) => {
            assert!(!name.is_empty() && name.len() <= MAX_NAME, "accepted length {}", name.len());
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b)),
                "accepted {name:?}"
            );
            assert!(
                name.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
                "accepted a bad segment in {name:?}"
            );
        }
        Err(e) => {
            assert!(!e.is_empty());
            assert!(!e.chars().any(char::is_control), "refusal is not one clean line: {e:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(list) = serde_json::from_slice::<StreamList>(data) else {
        return;
    };
    for s in &list.streams {
        check_name(&s.name);
    }

    let text = serde_json::to_vec(&list).expect("a parsed list serialises");
    let again: StreamList = serde_json::from_slice(&text).expect("serialised list parses");
    assert!(same(&list, &again), "round trip changed the list:\n{}", String::from_utf8_lossy(&text));
    assert_eq!(serde_json::to_vec(&again).expect("serialises"), text, "serialisation is not a fixed point");
    let pretty = serde_json::to_vec_pretty(&list).expect("a parsed list serialises pretty");
    let again: StreamList = serde_json::from_slice(&pretty).expect("pretty list parses");
    assert!(same(&list, &again), "pretty round trip changed the list");

    if let Some(load) = list.load {
        const BOUND: u64 = 1 << 40;
        let b = load.bounded(BOUND);
        assert!(b.clients <= BOUND && b.output_bitrate <= BOUND);
        assert!(b.max_clients.is_none_or(|v| v <= BOUND) && b.max_bitrate.is_none_or(|v| v <= BOUND));
        let _ = b.overloaded();
        assert!(b.ratio().is_finite() && b.ratio() >= 0.0);
    }
});
