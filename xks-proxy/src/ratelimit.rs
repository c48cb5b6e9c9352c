//! A token bucket per keystore (optional per-prefix request quota).

use parking_lot::Mutex;
use std::time::Instant;

/// `rate` requests per second on average, bursts of up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimiter {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// The configured (rate, burst).
    pub fn params(&self) -> (f64, f64) {
        (self.rate, self.burst)
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&self) -> bool {
        let now = Instant::now();
        let mut s = self.state.lock();
        let elapsed = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + elapsed * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_limits() {
        let r = RateLimiter::new(1.0, 3.0);
        assert!(r.try_acquire());
        assert!(r.try_acquire());
        assert!(r.try_acquire());
        assert!(!r.try_acquire());
    }
}
