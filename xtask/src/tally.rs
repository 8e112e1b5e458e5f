//! The line `cargo xtask test` ends with, `N passed, M failed` (and `, K
//! skipped` when tests were skipped or ignored), added up from the
//! summaries the test runners print.

use std::fmt;
use std::ops::AddAssign;

use anyhow::Result;

use crate::cmd::Cmd;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
    /// nextest's `skipped`, libtest's `ignored`: not run, so neither.
    pub skipped: u64,
}

impl Tally {
    /// A step that failed before any test ran (fmt, clippy, setup).
    pub const FAILED_STEP: Tally = Tally {
        passed: 0,
        failed: 1,
        skipped: 0,
    };
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}

/// Runs a test command, streaming its output, and returns its totals. A run
/// that fails without a failing test (a build error, a crashed runner) counts
/// as one failure, so a broken build never reads as `0 failed`.
pub fn run(command: Cmd) -> Result<Tally> {
    let (success, output) = command.tee()?;
    let mut totals = from_output(&output);
    if !success && totals.failed == 0 {
        totals.failed = 1;
    }
    Ok(totals)
}

/// The totals in a runner's output: nextest's `Summary` line, or libtest's
/// `test result:` lines (one per test binary), summed. Where nextest ran,
/// its summary is the whole count: the libtest lines in its output are the
/// captured output of failing tests, each already in the summary.
pub fn from_output(output: &str) -> Tally {
    let lines: Vec<String> = output.lines().map(without_colours).collect();
    let nextest: Vec<Tally> = lines.iter().filter_map(|l| nextest_summary(l)).collect();
    let mut totals = Tally::default();
    if nextest.is_empty() {
        lines
            .iter()
            .filter_map(|l| libtest_result(l))
            .for_each(|t| totals += t);
    } else {
        nextest.into_iter().for_each(|t| totals += t);
    }
    totals
}

/// `Summary [  12.3s] 400 tests run: 398 passed (1 flaky), 2 failed, 3 skipped`.
/// Timed-out and exec-failed tests count as failed.
fn nextest_summary(line: &str) -> Option<Tally> {
    let rest = line.trim_start().strip_prefix("Summary [")?;
    let (_, counts) = rest.split_once(" run: ")?;
    let mut totals = Tally::default();
    for part in counts.split(", ") {
        let (n, what) = part.trim().split_once(' ')?;
        let n: u64 = n.parse().ok()?;
        if what.starts_with("passed") {
            totals.passed += n;
        } else if what.starts_with("skipped") {
            totals.skipped += n;
        } else {
            totals.failed += n;
        }
    }
    Some(totals)
}

/// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; …`
fn libtest_result(line: &str) -> Option<Tally> {
    let rest = line.trim_start().strip_prefix("test result: ")?;
    let (_, counts) = rest.split_once(". ")?;
    let count = |what: &str| {
        counts
            .split("; ")
            .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
    };
    Some(Tally {
        passed: count(" passed")?,
        failed: count(" failed")?,
        skipped: count(" ignored").unwrap_or(0),
    })
}

/// `line` without ANSI colour sequences (`ESC [ … m`), for runs that force colour.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(passed: u64, failed: u64) -> Tally {
        Tally {
            passed,
            failed,
            skipped: 0,
        }
    }

    fn with_skipped(t: Tally, skipped: u64) -> Tally {
        Tally { skipped, ..t }
    }

    #[test]
    fn the_line_names_skipped_tests_only_when_there_are_some() {
        assert_eq!(tally(5, 0).to_string(), "5 passed, 0 failed");
        assert_eq!(
            with_skipped(tally(5, 1), 2).to_string(),
            "5 passed, 1 failed, 2 skipped"
        );
    }

    #[test]
    fn reads_nextest_summaries() {
        let line = "     Summary [ 123.4s] 400 tests run: 398 passed, 2 failed, 3 skipped";
        assert_eq!(nextest_summary(line), Some(with_skipped(tally(398, 2), 3)));
        let all_passed = "     Summary [   0.004s] 1 test run: 1 passed, 0 skipped";
        assert_eq!(nextest_summary(all_passed), Some(tally(1, 0)));
        let mixed = "Summary [ 60.0s] 7/9 tests run: 4 passed (1 flaky), 1 failed, 1 timed out, 1 exec failed, 2 skipped";
        assert_eq!(nextest_summary(mixed), Some(with_skipped(tally(4, 3), 2)));
        assert_eq!(
            nextest_summary("        PASS [   0.1s] celeriac tidy"),
            None
        );
    }

    #[test]
    fn reads_libtest_results() {
        let ok = "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s";
        assert_eq!(libtest_result(ok), Some(with_skipped(tally(3, 0), 1)));
        let failed = "test result: FAILED. 10 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.05s";
        assert_eq!(libtest_result(failed), Some(tally(10, 2)));
        assert_eq!(libtest_result("test tidy::x ... ok"), None);
    }

    #[test]
    fn sums_every_summary_in_an_output() {
        let output = "\
running 3 tests
test a ... ok
test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

   Doc-tests api
test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.20s
";
        assert_eq!(from_output(output), tally(4, 1));
        assert_eq!(from_output("error[E0308]: mismatched types"), tally(0, 0));
    }

    #[test]
    fn a_failing_tests_output_inside_nextest_is_not_counted_again() {
        let output = "\
        FAIL [   0.094s] ( 67/570) api health::tests::x
  stdout ───
    test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 9 filtered out; finished in 0.08s
\x1b[32;1m     Summary\x1b[0m [  12.0s] 20 tests run: 19 passed, 1 failed, 0 skipped
        FAIL [   0.094s] ( 67/570) api health::tests::x
";
        assert_eq!(from_output(output), tally(19, 1));
    }

    #[test]
    fn a_run_that_fails_without_a_failing_test_counts_as_one_failure() {
        let script =
            "echo 'test result: ok. 2 passed; 0 failed; 0 ignored'; echo boom >&2; exit 101";
        let totals = run(Cmd::new("sh").args(["-c", script])).expect("sh runs");
        assert_eq!(totals, tally(2, 1));
    }

    #[test]
    fn prints_the_totals_line() {
        assert_eq!(tally(412, 0).to_string(), "412 passed, 0 failed");
        assert_eq!(Tally::FAILED_STEP.to_string(), "0 passed, 1 failed");
    }
}
