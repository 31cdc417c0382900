//! closedloop's statistics: pure functions over counts, no I/O.
//!
//! - [`rates`]: a failure rate's Wilson interval, the comparison of two rates, the shift in
//!   a category mix and the smoothing of small-sample rates (`closedloop report`).

pub mod rates;
