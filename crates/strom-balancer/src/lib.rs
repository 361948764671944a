//! strom-balancer: strom's viewer balancer.
//!
//! The decision core ([`Balancer`]) is pure; [`service`] is the thin I/O
//! shell around it (the poller, the HTTP front, metrics). [`poll`] asks one
//! server of any kind (strom, Flussonic, Wowza, Nimble, generic) how it is,
//! and [`readings`] and [`promtext`] read the answers without I/O.
//!
//! For a request (stream name, client IP, optional country) the [`Balancer`]
//! picks one streamer or says why none can serve it ([`Refusal`]). The
//! pipeline, in order, mirrors what MinistraPRO users expect:
//!
//! 1. candidates: the servers of the channel entry for the name, otherwise
//!    the servers whose last announced stream list contains it
//!    (none → `nothing_to_play`);
//! 2. zone: candidates whose network/country filter matches the client; if
//!    none matches, the candidates without any filter
//!    (none → `not_available_for_zone`); with `zone_fallback`, a client
//!    whose zone's servers are all Down or full goes through steps 3-5
//!    again with the candidates without any filter;
//! 3. health: only servers that are Up (none → `nothing_to_play`);
//! 4. capacity: only servers with current < max, and with N balancers
//!    sharing the farm, within this one's claim ([`share`]) (none → `limit`);
//! 5. order: monitored servers first, then the lowest current/max ratio;
//!    servers within `band` of the lowest ratio take turns (round robin).
//!
//! Invariants of the core: no I/O and no clock — every time-dependent call takes `now`,
//! so tests run on a virtual clock; no input can make a call panic (unknown
//! server indices are ignored, bad tuning is clamped, inconsistent config is
//! rejected with a [`ConfigError`] before any state changes).

pub mod admin;
mod balancer;
mod config;
pub mod front;
mod health;
pub mod http1;
pub mod overrides;
pub mod peers;
pub mod poll;
pub mod promtext;
pub mod readings;
mod refusal;
pub mod service;
pub mod share;

pub use balancer::{Balancer, Counted, Routed, ServerStatus, ZoneFallback};
pub use config::{ConfigError, ServerSpec, Tuning};
pub use refusal::Refusal;
