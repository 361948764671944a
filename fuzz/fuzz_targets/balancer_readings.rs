//! Fuzz target for the balancer's readers of foreign servers' answers
//! (`strom_balancer::readings`): client counts in Prometheus text, JSON and
//! XML, strom's and Flussonic's stream lists, and Prometheus query answers.
//!
//! The first byte picks the reader, the rest is the answer (lossy UTF-8).
//! Invariants: no reader panics; an error message never quotes the answer
//! (an input carrying the marker `qqmarkqq` never yields a message with it);
//! stream lists hold only valid stream names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strom_balancer::readings;
use strom_config::{LoadFormat, LoadSource};

const MARKER: &str = "qqmarkqq";

fn clean<T>(r: Result<T, readings::ReadError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.message.contains(MARKER), "an error quotes the answer: {}", e.message);
            None
        }
    }
}

fn load(format: LoadFormat, field: &str) -> LoadSource {
    LoadSource {
        format,
        target: "/x".to_string(),
        field: field.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let body = String::from_utf8_lossy(rest);
    let names = |v: &str| v == "s1";
    match pick % 8 {
        0 => {
            clean(readings::read_load(&body, &load(LoadFormat::Prometheus, "clients"), None));
        }
        1 => {
            clean(readings::read_load(&body, &load(LoadFormat::Prometheus, "clients"), Some(("instance", &names))));
        }
        2 => {
            clean(readings::read_load(&body, &load(LoadFormat::Json, "stats.total_clients"), None));
        }
        3 => {
            clean(readings::read_load(&body, &load(LoadFormat::Xml, "ConnectionsCurrent"), None));
        }
        4 => {
            clean(readings::xml_path(&body, "VHost.Application.Name"));
        }
        5 | 6 => {
            let page = if pick % 8 == 5 {
                clean(readings::strom_streams(&body))
            } else {
                clean(readings::flussonic_streams(&body))
            };
            for name in page.into_iter().flat_map(|p| p.names) {
                assert!(strom_config::check_stream_name(&name).is_ok(), "an invalid name was kept");
            }
        }
        _ => {
            clean(readings::prometheus_vector(&body));
        }
    }
});
