//! Fuzz target for what a node reads from a peer's DVR endpoints
//! (`strom_node::dvr::cluster`): the read query of
//! `GET /api/v1/cluster/dvr/read/NAME?…` and the file listing of
//! `GET /api/v1/cluster/dvr/files/NAME`.
//!
//! The input's first byte picks the parser; the rest is the text. Invariants:
//! - nothing panics;
//! - an accepted read query prints back (`read_query_string`) to a query
//!   that parses to the same value, and its length is within the cap of its
//!   file kind;
//! - an admitted listing keeps at most the entries it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_node::dvr::cluster::{admit_listing, parse_read_query, read_cap, read_query_string, FileList};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let text = String::from_utf8_lossy(rest);
        if let Ok(q) = parse_read_query(Some(&text)) {
            assert!(q.len >= 1 && q.len <= read_cap(q.kind));
            let again = parse_read_query(Some(&read_query_string(&q)));
            assert_eq!(again.ok(), Some(q));
        }
    } else if let Ok(list) = serde_json::from_slice::<FileList>(rest) {
        let given = list.files.len();
        let (kept, _refused) = admit_listing(list);
        assert!(kept.len() <= given);
    }
});
