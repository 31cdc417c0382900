//! closedloop's statistics: pure functions over counts, no I/O.
//!
//! - [`rates`]: a failure rate's Wilson interval, the comparison of two rates, the shift in
//!   a category mix and the smoothing of small-sample rates (`closedloop report`).
//! - [`ppi`]: a true failure rate from a uniform review sample and a signal on every
//!   response (prediction-powered inference), signal calibration against reviewer labels,
//!   the Rogan–Gladen correction and the labels a target interval needs.

pub mod cusum;
pub mod monitor;
pub mod ppi;
pub mod rates;
