//! One chart's points at two resolutions: the last hour at the sampling
//! step (10 s) and the last day at one minute, the minute points being the
//! mean of the fine samples that fell in the minute. Pure: time comes in
//! with each sample.

use std::collections::VecDeque;

/// The fine step, seconds.
pub const STEP: f64 = 10.0;
/// The coarse step, seconds.
pub const COARSE_STEP: f64 = 60.0;
/// An hour of fine points.
pub const FINE_POINTS: usize = 360;
/// A day of coarse points.
pub const COARSE_POINTS: usize = 1_440;

/// The span a reader asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
}

impl Range {
    pub fn parse(text: &str) -> Option<Range> {
        match text {
            "1h" => Some(Range::Hour),
            "24h" | "1d" => Some(Range::Day),
            _ => None,
        }
    }

    pub fn step(self) -> f64 {
        match self {
            Range::Hour => STEP,
            Range::Day => COARSE_STEP,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Ring {
    fine: VecDeque<(f64, f64)>,
    coarse: VecDeque<(f64, f64)>,
    /// The minute being averaged: its start, sum and sample count.
    minute: Option<(f64, f64, u32)>,
}

impl Ring {
    pub fn push(&mut self, t: f64, v: f64) {
        if !v.is_finite() {
            return;
        }
        push_bounded(&mut self.fine, (t, v), FINE_POINTS);
        let start = (t / COARSE_STEP).floor() * COARSE_STEP;
        match &mut self.minute {
            Some((s, sum, n)) if *s == start => {
                *sum += v;
                *n += 1;
            }
            other => {
                if let Some((s, sum, n)) = other.take() {
                    push_bounded(&mut self.coarse, (s, sum / f64::from(n)), COARSE_POINTS);
                }
                *other = Some((start, v, 1));
            }
        }
    }

    /// The points of `range` up to `now`, oldest first; the minute in
    /// progress is included with its mean so far.
    pub fn points(&self, range: Range, now: f64) -> Vec<(f64, f64)> {
        match range {
            Range::Hour => {
                let from = now - FINE_POINTS as f64 * STEP;
                self.fine.iter().copied().filter(|p| p.0 >= from).collect()
            }
            Range::Day => {
                let from = now - COARSE_POINTS as f64 * COARSE_STEP;
                let partial = self.minute.map(|(s, sum, n)| (s, sum / f64::from(n)));
                self.coarse
                    .iter()
                    .copied()
                    .chain(partial)
                    .filter(|p| p.0 >= from)
                    .collect()
            }
        }
    }

    /// When the last sample came.
    pub fn last_at(&self) -> Option<f64> {
        self.fine.back().map(|p| p.0)
    }
}

fn push_bounded(points: &mut VecDeque<(f64, f64)>, p: (f64, f64), cap: usize) {
    if points.len() == cap {
        points.pop_front();
    }
    points.push_back(p);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_fine_and_a_day_of_minute_means() {
        let mut r = Ring::default();
        // Two hours of samples every 10 s: value = minute index.
        let t0 = 1_000_020.0 - 1_000_020.0 % 60.0;
        for i in 0..720 {
            let t = t0 + i as f64 * STEP;
            r.push(t, (i / 6) as f64 + (i % 6) as f64);
        }
        let now = t0 + 719.0 * STEP;
        let hour = r.points(Range::Hour, now);
        assert_eq!(hour.len(), FINE_POINTS);
        assert_eq!(hour.last().unwrap().0, now);
        let day = r.points(Range::Day, now);
        assert_eq!(day.len(), 120, "one point per minute, the last in progress");
        // Minute k holds k+0 … k+5: mean k + 2.5.
        assert_eq!(day[3], (t0 + 180.0, 3.0 + 2.5));
        assert_eq!(day.last().unwrap(), &(t0 + 119.0 * 60.0, 119.0 + 2.5));
        r.push(now + STEP, f64::NAN);
        assert_eq!(r.points(Range::Hour, now + STEP).len(), FINE_POINTS);
    }

    #[test]
    fn old_points_fall_out_of_the_range() {
        let mut r = Ring::default();
        r.push(0.0, 1.0);
        r.push(5_000.0, 2.0);
        assert_eq!(r.points(Range::Hour, 5_000.0), vec![(5_000.0, 2.0)]);
        assert_eq!(r.points(Range::Day, 5_000.0).len(), 2);
        assert_eq!(Range::parse("24h"), Some(Range::Day));
        assert_eq!(Range::parse("2h"), None);
    }
}
