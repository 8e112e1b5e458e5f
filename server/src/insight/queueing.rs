//! The M/M/c queue the capacity advice reasons with: Poisson arrivals at
//! rate λ, exponential service times of mean 1/μ, `c` identical processes
//! taking tasks first come, first served. Pure arithmetic.
//!
//! The offered load `a = λ/μ` is the number of processes the arrivals keep
//! busy on average; the queue is stable only with `c > a`. Erlang's C
//! formula gives the probability that a task waits at all, and the wait of
//! those that do is exponential with rate `cμ − λ`, so
//! `P(wait > t) = C(c, a) · e^{−(cμ − λ) t}`.

/// The largest number of processes the search considers: beyond it the
/// answer is "more than this", not a number anyone would deploy.
pub const MAX_PROCESSES: u64 = 10_000;

/// Erlang C: the probability that a task arriving at `c` processes under an
/// offered load of `a` (processes) has to wait. 1 when `c ≤ a` (the queue
/// grows without bound).
pub fn erlang_c(c: u64, a: f64) -> f64 {
    if a.is_nan() || a <= 0.0 {
        return 0.0;
    }
    if (c as f64) <= a {
        return 1.0;
    }
    // Through Erlang B's recursion, which never forms a^c or c! and so
    // stays finite for thousands of processes.
    let b = erlang_b(c, a);
    let c = c as f64;
    c * b / (c - a * (1.0 - b))
}

/// Erlang B (the blocking probability of `c` servers without a queue),
/// by B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)).
fn erlang_b(c: u64, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    b
}

/// `P(wait > t)` for a task at `c` processes, arrivals at `lambda` per
/// second and a mean service time of `mean_service` seconds.
pub fn wait_exceeds(c: u64, lambda: f64, mean_service: f64, t: f64) -> f64 {
    let a = lambda * mean_service;
    let cw = erlang_c(c, a);
    if cw >= 1.0 {
        return 1.0;
    }
    // cμ − λ = (c − a) / E[S].
    cw * (-(c as f64 - a) * t.max(0.0) / mean_service).exp()
}

/// The fewest processes for which `P(wait > t) ≤ p`, or `None` beyond
/// [`MAX_PROCESSES`]. At least 1, also without arrivals.
pub fn processes_needed(lambda: f64, mean_service: f64, t: f64, p: f64) -> Option<u64> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(lambda) || !positive(mean_service) {
        return Some(1);
    }
    let a = lambda * mean_service;
    // Erlang B grows with c along the way, so each step is one update.
    let mut b = 1.0;
    for c in 1..=MAX_PROCESSES {
        b = a * b / (c as f64 + a * b);
        let cf = c as f64;
        if cf <= a {
            continue;
        }
        let cw = cf * b / (cf - a * (1.0 - b));
        if cw * (-(cf - a) * t.max(0.0) / mean_service).exp() <= p {
            return Some(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64) {
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    #[test]
    fn erlang_c_matches_the_closed_form() {
        // M/M/1: a task waits with probability ρ.
        close(erlang_c(1, 0.3), 0.3);
        // (a^c/c!)·c/(c−a) over Σ_{k<c} a^k/k! + the same term:
        // c = 2, a = 1: 1 / (2 + 1); c = 3, a = 2: 4 / (5 + 4).
        close(erlang_c(2, 1.0), 1.0 / 3.0);
        close(erlang_c(3, 2.0), 4.0 / 9.0);
        // Unstable, and idle.
        assert_eq!(erlang_c(2, 2.0), 1.0);
        assert_eq!(erlang_c(4, 0.0), 0.0);
        // Thousands of processes stay finite.
        let big = erlang_c(5000, 4900.0);
        assert!(big.is_finite() && big > 0.0 && big < 1.0, "{big}");
    }

    #[test]
    fn the_wait_tail_decays_with_the_spare_capacity() {
        // c = 2, a = 1, E[S] = 1 s: C = 1/3, decay rate cμ − λ = 1/s.
        close(wait_exceeds(2, 1.0, 1.0, 0.0), 1.0 / 3.0);
        close(wait_exceeds(2, 1.0, 1.0, 2.0), (-2.0f64).exp() / 3.0);
        assert_eq!(wait_exceeds(1, 2.0, 1.0, 100.0), 1.0, "overloaded");
    }

    #[test]
    fn the_fewest_processes_that_meet_the_target() {
        // λ = 1/s, E[S] = 1 s. No wait allowed: C(3, 1) = 1/11 > 5 %,
        // C(4, 1) = 1/49 ≤ 5 %.
        assert_eq!(processes_needed(1.0, 1.0, 0.0, 0.05), Some(4));
        close(erlang_c(4, 1.0), 1.0 / 49.0);
        // One second allowed: 3 processes give e^{−2}/11 ≈ 1.2 %, 2 give
        // e^{−1}/3 ≈ 12 %.
        assert_eq!(processes_needed(1.0, 1.0, 1.0, 0.05), Some(3));
        // No arrivals: one process.
        assert_eq!(processes_needed(0.0, 1.0, 1.0, 0.05), Some(1));
        // Far beyond any deployment.
        assert_eq!(processes_needed(1e6, 1.0, 1.0, 0.05), None);
    }

    #[test]
    fn more_load_needs_more_and_a_longer_target_needs_fewer() {
        let mut last = 0;
        for i in 1..200 {
            let n = processes_needed(f64::from(i) * 0.5, 2.0, 5.0, 0.05).unwrap();
            assert!(n >= last, "λ {}: {n} < {last}", f64::from(i) * 0.5);
            // Always above the offered load, and meeting the target.
            assert!(n as f64 > f64::from(i));
            assert!(wait_exceeds(n, f64::from(i) * 0.5, 2.0, 5.0) <= 0.05);
            if n > 1 {
                assert!(wait_exceeds(n - 1, f64::from(i) * 0.5, 2.0, 5.0) > 0.05);
            }
            last = n;
        }
        let mut last = u64::MAX;
        for t in [0.0, 0.5, 1.0, 5.0, 30.0, 300.0] {
            let n = processes_needed(10.0, 1.0, t, 0.05).unwrap();
            assert!(n <= last, "target {t}: {n} > {last}");
            last = n;
        }
    }
}
