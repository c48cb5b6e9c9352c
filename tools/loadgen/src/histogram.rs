//! The latency histogram: log-linear buckets in microseconds, 64 sub-buckets per power of two,
//! so every quantile is within about 1.6% of the recorded value. Fixed size (~2,300 buckets),
//! cheap to record into from the hot loop, cheap to merge across connections and rounds, and
//! small enough to travel in a JSON report as its non-empty buckets (the A/B comparison pools
//! the rounds of separate runs from them).

use std::time::Duration;

/// A latency histogram (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// Bits of the sub-bucket index: 2^6 = 64 sub-buckets per power of two.
    pub const SUB_BITS: u32 = 6;
    const SUB: u64 = 1 << Self::SUB_BITS;
    /// Values above 2^(MAX_SHIFT + 7) µs (about 38 hours) land in the last bucket.
    const MAX_SHIFT: u32 = 34;
    const BUCKETS: usize = (Self::SUB * (Self::MAX_SHIFT as u64 + 2)) as usize;

    pub fn new() -> Self {
        Histogram {
            counts: vec![0; Self::BUCKETS],
            total: 0,
        }
    }

    fn index(micros: u64) -> usize {
        let max = (Self::SUB << (Self::MAX_SHIFT + 1)) - 1;
        let v = micros.min(max);
        if v < Self::SUB {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - Self::SUB_BITS;
        let sub = (v >> shift) - Self::SUB;
        (Self::SUB * (u64::from(shift) + 1) + sub) as usize
    }

    /// Midpoint of a bucket, in microseconds.
    fn value(index: usize) -> f64 {
        let index = index as u64;
        if index < Self::SUB {
            return index as f64;
        }
        let shift = index / Self::SUB - 1;
        let sub = index % Self::SUB;
        let low = (Self::SUB + sub) << shift;
        let width = 1u64 << shift;
        low as f64 + (width as f64 - 1.0) / 2.0
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(count) = self.counts.get_mut(Self::index(micros)) {
            *count += 1;
            self.total += 1;
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// How many latencies were recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Quantile `q` (0..=1) in milliseconds; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index) / 1000.0;
            }
        }
        0.0
    }

    /// The non-empty buckets as (index, count) pairs, for a report.
    pub fn buckets(&self) -> Vec<(usize, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
            .collect()
    }

    /// The histogram whose non-empty buckets are `buckets` (from [`Histogram::buckets`]);
    /// `None` if an index is out of range.
    pub fn from_buckets(buckets: &[(usize, u64)]) -> Option<Histogram> {
        let mut h = Histogram::new();
        for &(index, count) in buckets {
            *h.counts.get_mut(index)? += count;
            h.total += count;
        }
        Some(h)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::new();
        for micros in 1..=100_000u64 {
            h.record(Duration::from_micros(micros));
        }
        for (q, expected_ms) in [(0.5, 50.0), (0.99, 99.0), (0.999, 99.9)] {
            let got = h.quantile_ms(q);
            assert!((got - expected_ms).abs() / expected_ms < 0.02, "{q}: {got}");
        }
        let mut small = Histogram::new();
        small.record(Duration::from_micros(7));
        assert!((small.quantile_ms(0.5) - 0.007).abs() < 1e-9);
        let mut huge = Histogram::new();
        huge.record(Duration::from_secs(1 << 40));
        assert_eq!(huge.total(), 1);
        assert_eq!(Histogram::new().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn buckets_round_trip_and_merge() {
        let mut a = Histogram::new();
        for micros in [3u64, 90, 1_000, 1_000, 250_000] {
            a.record(Duration::from_micros(micros));
        }
        let back = Histogram::from_buckets(&a.buckets()).unwrap();
        assert_eq!(back, a);
        let mut merged = a.clone();
        merged.merge(&back);
        assert_eq!(merged.total(), 10);
        assert_eq!(merged.quantile_ms(0.5), a.quantile_ms(0.5));
        assert!(Histogram::from_buckets(&[(usize::MAX, 1)]).is_none());
    }
}
