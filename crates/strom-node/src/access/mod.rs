//! Access control for viewers and publishers: play authorization
//! (Flussonic's `on_play` backend contract and signed links), the decision
//! cache, and viewer sessions.

pub mod signed;
