//! The decode budget: how much memory OTLP requests may take, each and all together.
//!
//! Every admitted request holds a [`Reservation`] against the shared [`DecodeBudget`]. The
//! body is charged as it arrives, gzip output as it inflates, and the scan's estimate of the
//! decoded request ([`super::scan::Estimate`]) before it is decoded; the reservation is
//! returned when the pipeline is done with the request. A request whose own estimate is over
//! the per-request limits can never fit and is refused as too large (HTTP 413, gRPC
//! `RESOURCE_EXHAUSTED`); one that would take the requests in flight over the total is shed as
//! busy (HTTP 503, gRPC `UNAVAILABLE`, with a retry delay).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::OtlpError;

/// The limits of a [`DecodeBudget`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DecodeLimits {
    /// The most heap one decoded request may take, in bytes.
    pub(crate) request_bytes: usize,
    /// The most messages one request may hold.
    pub(crate) request_elements: usize,
    /// The most bytes all requests in flight may take together: bodies, inflated bodies and
    /// decoded requests.
    pub(crate) in_flight_bytes: usize,
    /// The most messages all requests in flight may hold together.
    pub(crate) in_flight_elements: usize,
    /// The retry delay suggested when the budget is exhausted.
    pub(crate) retry_after: Duration,
}

/// The memory all OTLP requests in flight may take. Shared by both transports.
#[derive(Debug)]
pub(crate) struct DecodeBudget {
    pub(crate) limits: DecodeLimits,
    bytes: AtomicUsize,
    elements: AtomicUsize,
}

impl DecodeBudget {
    pub(crate) fn new(limits: DecodeLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            bytes: AtomicUsize::new(0),
            elements: AtomicUsize::new(0),
        })
    }

    /// An empty reservation, to be charged as the request is read and decoded.
    pub(crate) fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: Arc::clone(self),
            bytes: AtomicUsize::new(0),
            elements: AtomicUsize::new(0),
            decoded: AtomicUsize::new(0),
        }
    }

    /// The bytes reserved by requests in flight.
    #[cfg(test)]
    pub(crate) fn bytes_in_flight(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn busy(&self) -> OtlpError {
        OtlpError::Busy {
            retry_after: self.limits.retry_after,
        }
    }
}

/// Adds `amount` to `counter` unless that takes it over `limit`.
fn try_add(counter: &AtomicUsize, amount: usize, limit: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
            current.checked_add(amount).filter(|total| *total <= limit)
        })
        .is_ok()
}

/// One request's share of the [`DecodeBudget`]; returned when dropped.
///
/// Charged through `&self`, so the body reader and the decoder of a request can share it.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<DecodeBudget>,
    bytes: AtomicUsize,
    elements: AtomicUsize,
    /// The part of `bytes` charged for decoding, checked against the per-request limit.
    decoded: AtomicUsize,
}

impl Reservation {
    /// Charges `bytes` of body or inflated body; busy when the budget cannot hold them.
    pub(crate) fn charge_bytes(&self, bytes: usize) -> Result<(), OtlpError> {
        if !try_add(
            &self.budget.bytes,
            bytes,
            self.budget.limits.in_flight_bytes,
        ) {
            return Err(self.budget.busy());
        }
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }

    /// Returns `bytes` charged earlier whose buffer has been freed.
    pub(crate) fn release_bytes(&self, bytes: usize) {
        let bytes = self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                Some(held.saturating_sub(bytes))
            })
            .map_or(0, |held| held.min(bytes));
        self.budget.bytes.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Charges what decoding will take: too large when over the per-request limits, busy when
    /// the requests in flight leave no room for it.
    ///
    /// `bytes` adds to what earlier calls charged for the same request (the JSON fallback is
    /// charged on top of the first decode attempt), and the per-request limit applies to the
    /// sum.
    pub(crate) fn charge_decode(&self, elements: usize, bytes: usize) -> Result<(), OtlpError> {
        let limits = &self.budget.limits;
        let decoded = self.decoded.load(Ordering::Acquire).saturating_add(bytes);
        if decoded > limits.request_bytes {
            return Err(OtlpError::DecodedTooLarge {
                estimate_bytes: decoded,
                limit_bytes: limits.request_bytes,
            });
        }
        if elements > limits.request_elements {
            return Err(OtlpError::TooManyElements {
                elements,
                limit: limits.request_elements,
            });
        }
        if !try_add(&self.budget.elements, elements, limits.in_flight_elements) {
            return Err(self.budget.busy());
        }
        if let Err(error) = self.charge_bytes(bytes) {
            self.budget.elements.fetch_sub(elements, Ordering::AcqRel);
            return Err(error);
        }
        self.elements.fetch_add(elements, Ordering::AcqRel);
        self.decoded.fetch_add(bytes, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget
            .bytes
            .fetch_sub(*self.bytes.get_mut(), Ordering::AcqRel);
        self.budget
            .elements
            .fetch_sub(*self.elements.get_mut(), Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Arc<DecodeBudget> {
        DecodeBudget::new(DecodeLimits {
            request_bytes: 100,
            request_elements: 10,
            in_flight_bytes: 150,
            in_flight_elements: 15,
            retry_after: Duration::from_secs(3),
        })
    }

    #[test]
    fn over_the_request_limits_is_too_large() {
        let budget = budget();
        let reservation = budget.reservation();
        assert!(matches!(
            reservation.charge_decode(1, 101),
            Err(OtlpError::DecodedTooLarge { .. })
        ));
        assert!(matches!(
            reservation.charge_decode(11, 1),
            Err(OtlpError::TooManyElements { .. })
        ));
        assert_eq!(budget.bytes_in_flight(), 0);
    }

    #[test]
    fn over_the_total_is_busy_until_a_reservation_is_returned() {
        let budget = budget();
        let first = budget.reservation();
        first.charge_decode(5, 100).unwrap();
        let second = budget.reservation();
        let error = second.charge_decode(5, 100).unwrap_err();
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        assert!(matches!(error, OtlpError::Busy { .. }));
        // The refused charge took nothing: 50 bytes are still free.
        second.charge_bytes(50).unwrap();
        assert!(second.charge_bytes(1).is_err());
        second.release_bytes(20);
        assert_eq!(budget.bytes_in_flight(), 130);
        drop(first);
        assert_eq!(budget.bytes_in_flight(), 30);
        second.charge_decode(10, 100).unwrap();
        drop(second);
        assert_eq!(budget.bytes_in_flight(), 0);
        assert_eq!(budget.elements.load(Ordering::Relaxed), 0);
    }
}
