//! The worker's pace: how long its tasks take and how long a round trip to
//! the server takes, as moving averages, and the two choices they drive.
//!
//! - **Read-ahead** (Little's law). While a round trip is on the way, the
//!   slots keep finishing tasks; a task claimed ahead starts in a freed slot
//!   without waiting for the trip. About `slots × trip / task` tasks finish
//!   during one trip, so that is how many are worth holding ahead: all the
//!   configured read-ahead for tasks of microseconds, one for tasks of
//!   seconds, so a worker of long tasks does not sit on work another worker
//!   could start.
//! - **Linger.** A busy worker that sends a round trip the moment its
//!   first outcome is ready pays the trip's fixed cost for a handful of
//!   tasks. So while tasks are running and the slots are not all free, the
//!   next trip may wait for more of them to end, but never longer than a
//!   quarter of a round trip (and at most [`MAX_LINGER`]). An idle worker
//!   never waits: its last task's outcome leaves at once.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The longest a round trip is held back to gather more outcomes.
pub(crate) const MAX_LINGER: Duration = Duration::from_millis(5);

/// Weight of the newest sample in each moving average.
const WEIGHT: f64 = 0.2;

#[derive(Debug, Default, Clone, Copy)]
struct Averages {
    /// Seconds an attempt takes, start to end.
    task: Option<f64>,
    /// Seconds a round trip that delivered something took.
    trip: Option<f64>,
}

fn blend(average: &mut Option<f64>, sample: Duration) {
    let sample = sample.as_secs_f64();
    *average = Some(match *average {
        Some(average) => average + WEIGHT * (sample - average),
        None => sample,
    });
}

/// Moving averages of the worker's task and round-trip times.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    averages: Mutex<Averages>,
}

impl Pace {
    fn averages(&self) -> Averages {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Averages> {
        self.averages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An attempt ran for `elapsed`.
    pub(crate) fn task_ended(&self, elapsed: Duration) {
        blend(&mut self.lock().task, elapsed);
    }

    /// A round trip that answered at once (it delivered something) took
    /// `elapsed`. Long polls are not samples: their time is the wait.
    pub(crate) fn trip_ended(&self, elapsed: Duration) {
        blend(&mut self.lock().trip, elapsed);
    }

    /// How many tasks to hold ahead of `slots`, at most `max`: the tasks
    /// the slots finish during one round trip, at least 1; `initial`
    /// until both times have been seen. A task still running after
    /// `oldest_running` counts as at least that long, so a worker that
    /// starts long tasks after short ones stops reading ahead before the
    /// long ones end.
    pub(crate) fn read_ahead(
        &self,
        slots: u32,
        max: u32,
        initial: u32,
        oldest_running: Option<Duration>,
    ) -> u32 {
        let wanted = match self.averages() {
            Averages {
                task: Some(task),
                trip: Some(trip),
            } => {
                let running = oldest_running.map_or(0.0, |age| age.as_secs_f64());
                let task = task.max(running);
                let per_trip = f64::from(slots) * trip / task.max(1e-6);
                per_trip.ceil().min(f64::from(u32::MAX)) as u32
            }
            _ => initial,
        };
        wanted.clamp(1.min(max), max)
    }

    /// How long a busy worker may hold its next round trip back to gather
    /// outcomes: a quarter of a round trip, at most [`MAX_LINGER`]; nothing
    /// before a round trip has been timed.
    pub(crate) fn linger(&self) -> Duration {
        self.averages().trip.map_or(Duration::ZERO, |trip| {
            Duration::from_secs_f64(trip / 4.0).min(MAX_LINGER)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pace(task: Duration, trip: Duration) -> Pace {
        let pace = Pace::default();
        pace.task_ended(task);
        pace.trip_ended(trip);
        pace
    }

    #[test]
    fn short_tasks_read_ahead_as_far_as_allowed() {
        let pace = pace(Duration::from_micros(50), Duration::from_millis(3));
        assert_eq!(pace.read_ahead(16, 16, 4, None), 16);
    }

    #[test]
    fn long_tasks_read_ahead_one() {
        let pace = pace(Duration::from_secs(10), Duration::from_millis(3));
        assert_eq!(pace.read_ahead(16, 16, 4, None), 1);
    }

    #[test]
    fn tasks_as_long_as_a_trip_read_ahead_the_slots_that_free_during_it() {
        let pace = pace(Duration::from_millis(12), Duration::from_millis(3));
        // 16 slots, each frees every 12 ms: 4 free during a 3 ms trip.
        assert_eq!(pace.read_ahead(16, 16, 1, None), 4);
        assert_eq!(pace.read_ahead(16, 2, 1, None), 2, "never past the maximum");
    }

    #[test]
    fn a_task_running_long_after_short_ones_stops_the_read_ahead() {
        let pace = pace(Duration::from_micros(50), Duration::from_millis(3));
        let long = Some(Duration::from_secs(2));
        assert_eq!(pace.read_ahead(16, 16, 4, long), 1);
        let young = Some(Duration::from_micros(20));
        assert_eq!(pace.read_ahead(16, 16, 4, young), 16);
    }

    #[test]
    fn before_any_sample_the_initial_read_ahead_holds() {
        let pace = Pace::default();
        assert_eq!(pace.read_ahead(16, 16, 4, None), 4);
        assert_eq!(pace.read_ahead(16, 0, 4, None), 0, "a maximum of 0 is 0");
        assert_eq!(pace.linger(), Duration::ZERO);
    }

    #[test]
    fn linger_is_a_quarter_trip_and_bounded() {
        let pace = pace(Duration::from_millis(1), Duration::from_millis(4));
        assert_eq!(pace.linger(), Duration::from_millis(1));
        let slow = self::pace(Duration::from_millis(1), Duration::from_millis(400));
        assert_eq!(slow.linger(), MAX_LINGER);
    }

    #[test]
    fn averages_move_toward_new_samples() {
        let pace = pace(Duration::from_millis(10), Duration::from_millis(4));
        for _ in 0..50 {
            pace.task_ended(Duration::from_micros(100));
        }
        // Now tasks are short: as far ahead as allowed.
        assert_eq!(pace.read_ahead(8, 8, 2, None), 8);
    }
}
