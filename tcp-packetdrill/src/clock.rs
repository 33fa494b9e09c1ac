//! The script clock: the real clock, as packetdrill expects.
//!
//! packetdrill reads time only through the shim's `gettimeofday` and waits
//! only through its `usleep`, and compares those readings with the
//! timestamps `netdev_receive` puts on outbound packets. All three come
//! from here: a monotonic clock, offset to the wall-clock time at start so
//! that `gettimeofday` looks like the real thing but never steps. The
//! stack's [`Instant`] is the time since start.

use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};
use tcp_stack::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: StdInstant,
    /// Wall-clock microseconds since the Unix epoch at `start`.
    wall_start_us: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// Starts the clock now.
    pub fn new() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Clock {
            start: StdInstant::now(),
            wall_start_us: u64::try_from(wall.as_micros()).unwrap_or(0),
        }
    }

    /// Now, as the stack counts time.
    pub fn now(&self) -> Instant {
        self.at(StdInstant::now())
    }

    /// A std instant as the stack counts time.
    pub fn at(&self, t: StdInstant) -> Instant {
        let us = t.saturating_duration_since(self.start).as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// The std instant of a stack instant (to sleep until a deadline).
    pub fn std_instant(&self, t: Instant) -> StdInstant {
        self.start + Duration::from_micros(t.total_micros())
    }

    /// Microseconds since the Unix epoch of a stack instant: what
    /// `gettimeofday` returns and what outbound packets are stamped with.
    pub fn wall_micros(&self, t: Instant) -> u64 {
        self.wall_start_us.saturating_add(t.total_micros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_time_and_wall_time_advance_together() {
        let c = Clock::new();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(5));
        let b = c.now();
        assert!(b - a >= Duration::from_millis(5));
        assert_eq!(
            c.wall_micros(b) - c.wall_micros(a),
            (b - a).as_micros() as u64
        );
        assert_eq!(c.at(c.std_instant(b)), b);
    }
}
