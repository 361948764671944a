//! The pure core of the DVR (archive, catch-up and timeshift): where an
//! archive's files live, the per-file segment index, recorded ranges and
//! retention planning. No I/O and no clock: the node reads and writes the
//! files and passes `now` in; everything deciding *what* to read, write or
//! delete is here, so it is tested and fuzzed without a disk.
//!
//! The archive stores the cluster wire format itself ([`crate::wire`]): per
//! stream and per UTC hour, a data file of version 2 segment messages back to
//! back (exactly the bytes [`crate::wire::encode_segment`] gives, the bytes
//! the cluster feed sends), and beside it an index of fixed-size entries, one
//! per message, that can always be rebuilt from the data file:
//!
//! ```text
//! ROOT/<stream dir>/YYYY-MM-DD/HH-<first_seq>.wire   data  (layout)
//! ROOT/<stream dir>/YYYY-MM-DD/HH-<first_seq>.idx    index (index)
//! ```
//!
//! - [`layout`]: names of directories and files, both ways.
//! - [`index`]: the index byte layout, parsing with torn-tail detection, and
//!   rebuilding an index from a data file.
//! - [`ranges`]: recorded spans on the UTC timeline, gaps between them.
//! - [`retention`]: which whole hours to delete by depth, size and disk usage.
//!
//! Invariants: every time is UTC in 90 kHz ticks since the Unix epoch; files
//! of one stream ordered by [`layout::FileKey`] hold strictly increasing
//! segment numbers; parsers never panic and allocate at most in proportion to
//! their input.

pub mod index;
pub mod layout;
pub mod ranges;
pub mod retention;
