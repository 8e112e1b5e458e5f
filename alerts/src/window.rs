//! Windowed rates and quantiles from monotonic counters: the engine keeps a
//! short history of counter snapshots (one per evaluation) and subtracts the
//! snapshot taken about `window` ago from the current one.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::inputs::{EventCounters, Hist, Inputs};

/// Counters of one (task, queue) pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub succeeded: u64,
    pub failed: u64,
    pub lost: u64,
    pub runtime: Hist,
    pub queue_wait: Hist,
}

impl Counters {
    /// `self - base`, saturating (a counter that went back, e.g. after a
    /// series was folded away, counts from zero).
    pub fn since(&self, base: Option<&Counters>) -> Counters {
        let Some(b) = base else { return self.clone() };
        Counters {
            succeeded: self.succeeded.saturating_sub(b.succeeded),
            failed: self.failed.saturating_sub(b.failed),
            lost: self.lost.saturating_sub(b.lost),
            runtime: hist_since(&self.runtime, &b.runtime),
            queue_wait: hist_since(&self.queue_wait, &b.queue_wait),
        }
    }

    pub fn add(&mut self, o: &Counters) {
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.lost += o.lost;
        hist_add(&mut self.runtime, &o.runtime);
        hist_add(&mut self.queue_wait, &o.queue_wait);
    }
}

fn hist_since(a: &Hist, b: &Hist) -> Hist {
    if b.cumulative.len() != a.cumulative.len() {
        return a.clone();
    }
    Hist {
        cumulative: a
            .cumulative
            .iter()
            .zip(&b.cumulative)
            .map(|(x, y)| x.saturating_sub(*y))
            .collect(),
        count: a.count.saturating_sub(b.count),
    }
}

fn hist_add(a: &mut Hist, b: &Hist) {
    if a.cumulative.is_empty() {
        a.cumulative = b.cumulative.clone();
    } else {
        for (x, y) in a.cumulative.iter_mut().zip(&b.cumulative) {
            *x += y;
        }
    }
    a.count += b.count;
}

/// The `q` quantile of a cumulative histogram, interpolated linearly inside
/// the bucket as Prometheus' `histogram_quantile` does; observations above
/// the last bound report that bound. `None` without observations.
pub fn quantile(q: f64, bounds: &[f64], h: &Hist) -> Option<f64> {
    if h.count == 0 {
        return None;
    }
    let rank = q * h.count as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for (&le, &c) in bounds.iter().zip(&h.cumulative) {
        if c as f64 >= rank {
            let in_bucket = (c - prev_count) as f64;
            if in_bucket == 0.0 {
                return Some(le);
            }
            return Some(prev_bound + (le - prev_bound) * (rank - prev_count as f64) / in_bucket);
        }
        prev_bound = le;
        prev_count = c;
    }
    bounds.last().copied()
}

/// One (task, queue) pair's counters in a [`Sample`].
#[derive(Debug, Default)]
pub struct SeriesCounters {
    pub task: String,
    pub queue: String,
    pub counters: Counters,
}

/// One evaluation's counters.
#[derive(Debug, Default)]
pub struct Sample {
    pub at: f64,
    pub series: Vec<SeriesCounters>,
    /// `task \0 queue` → index in `series`, to find a pair in an older sample.
    index: HashMap<String, usize>,
    pub events: EventCounters,
}

fn key(task: &str, queue: &str) -> String {
    let mut k = String::with_capacity(task.len() + queue.len() + 1);
    k.push_str(task);
    k.push('\0');
    k.push_str(queue);
    k
}

impl Sample {
    pub fn from_inputs(i: &Inputs) -> Sample {
        let mut series: Vec<SeriesCounters> = Vec::with_capacity(i.series.len());
        let mut index: HashMap<String, usize> = HashMap::with_capacity(i.series.len());
        for s in &i.series {
            let c = Counters {
                succeeded: s.succeeded,
                failed: s.failed,
                lost: s.lost,
                runtime: s.runtime.clone(),
                queue_wait: s.queue_wait.clone(),
            };
            // Inputs may list a pair once per worker: merge them.
            match index.entry(key(&s.task, &s.queue)) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    series[*e.get()].counters.add(&c);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(series.len());
                    series.push(SeriesCounters {
                        task: s.task.clone(),
                        queue: s.queue.clone(),
                        counters: c,
                    });
                }
            }
        }
        Sample {
            at: i.now,
            series,
            index,
            events: i.events,
        }
    }

    pub fn get(&self, task: &str, queue: &str) -> Option<&Counters> {
        self.index
            .get(&key(task, queue))
            .map(|&i| &self.series[i].counters)
    }

    /// Every series' increase since `base` (same order as `series`).
    pub fn deltas(&self, base: Option<&Sample>) -> Vec<Counters> {
        self.series
            .iter()
            .map(|s| {
                s.counters
                    .since(base.and_then(|b| b.get(&s.task, &s.queue)))
            })
            .collect()
    }
}

/// Snapshots oldest first, trimmed to the longest window in use.
#[derive(Debug, Default)]
pub struct History {
    samples: VecDeque<Arc<Sample>>,
}

impl History {
    /// Starts from all-zero counters at `at` (celeriac's start), so events
    /// before the first evaluation still count.
    pub fn starting_at(at: f64) -> History {
        let mut h = History::default();
        h.samples.push_back(Arc::new(Sample {
            at,
            ..Sample::default()
        }));
        h
    }

    pub fn push(&mut self, s: Sample, keep_secs: f64) {
        let now = s.at;
        self.samples.push_back(Arc::new(s));
        // Keep the newest sample that is at least `keep_secs` old: it is the
        // base of the longest window.
        while self.samples.len() > 2 && self.samples[1].at <= now - keep_secs {
            self.samples.pop_front();
        }
    }

    pub fn latest(&self) -> Option<&Arc<Sample>> {
        self.samples.back()
    }

    /// The base of a window ending now: the newest sample at or before
    /// `now - window`, else the oldest (a partial window, right after
    /// start-up).
    pub fn base(&self, now: f64, window: f64) -> Option<&Arc<Sample>> {
        let cut = now - window;
        self.samples
            .iter()
            .rev()
            .find(|s| s.at <= cut)
            .or_else(|| self.samples.front())
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let bounds = [1.0, 2.0, 4.0];
        // 10 observations: 5 ≤ 1, 4 in (1, 2], 1 in (2, 4].
        let h = Hist {
            cumulative: vec![5, 9, 10],
            count: 10,
        };
        assert_eq!(quantile(0.5, &bounds, &h), Some(1.0));
        // rank 9.5 falls in the last bucket, half way.
        assert_eq!(quantile(0.95, &bounds, &h), Some(3.0));
        let over = Hist {
            cumulative: vec![0, 0, 0],
            count: 3,
        };
        assert_eq!(quantile(0.95, &bounds, &over), Some(4.0));
        assert_eq!(quantile(0.95, &bounds, &Hist::default()), None);
    }

    #[test]
    fn base_is_the_sample_a_window_ago_or_the_oldest() {
        let mut h = History::starting_at(0.0);
        for t in 1..=10 {
            h.push(
                Sample {
                    at: t as f64 * 10.0,
                    ..Sample::default()
                },
                30.0,
            );
        }
        // Trimmed: the newest sample ≥ 30 s old (t=70) and everything after.
        assert_eq!(h.len(), 4);
        assert_eq!(h.base(100.0, 30.0).unwrap().at, 70.0);
        assert_eq!(h.base(100.0, 15.0).unwrap().at, 80.0);
        assert_eq!(h.base(100.0, 300.0).unwrap().at, 70.0);
    }
}
