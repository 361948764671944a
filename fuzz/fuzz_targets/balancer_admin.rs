//! Fuzz target for the balancer's admin API changes
//! (`strom_balancer::overrides`): a JSON body read as a new server or a
//! patch, applied over a fixed config, then merged and validated.
//!
//! The first byte picks the change (add, modify s1, modify s2, remove),
//! the rest is the body. Invariants: nothing panics; a change that
//! is accepted yields a config that `strom check`'s parser reads back
//! equal (validation is idempotent), whose state file round-trips through
//! JSON and merges to the same config again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_balancer::overrides::{self, Change, NewServer, Patch, StateDoc};

const BASE: &str = "server s1 { url http://10.0.0.1:8080; max_clients 100; }\n\
                    server s2 { url http://10.0.0.2:8080; max_clients 50; networks 10.1.0.0/16; }\n\
                    channel news { servers s2; }\n";

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let Ok(base) = strom_config::parse_balancer("b.conf", BASE) else {
        return;
    };
    let start = overrides::merge(&base, &StateDoc::default());
    let change = match pick % 4 {
        0 => match serde_json::from_slice::<NewServer>(body) {
            Ok(n) => Change::Add(n),
            Err(_) => return,
        },
        1 | 2 => match serde_json::from_slice::<Patch>(body) {
            Ok(p) => Change::Modify(if pick % 4 == 1 { "s1" } else { "s2" }.to_string(), p),
            Err(_) => return,
        },
        _ => Change::Remove(String::from_utf8_lossy(body).into_owned()),
    };
    let Ok(doc) = overrides::change(&base, &start.applied, &start.config, &change) else {
        return;
    };
    let merged = overrides::merge(&base, &doc);
    if overrides::accepted(&merged, &change).is_err() {
        return;
    }
    let again = strom_config::parse_balancer("x", &merged.config.to_text()).expect("an accepted config reads back");
    assert_eq!(again, merged.config);
    let text = serde_json::to_string(&merged.applied).expect("serialisable");
    let read: StateDoc = serde_json::from_str(&text).expect("the state file reads back");
    assert_eq!(overrides::merge(&base, &read).config, merged.config);
});
