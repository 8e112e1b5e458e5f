//! Charts from the series the server keeps (`GET /api/series`, the last
//! hour at 10 s): polled while the page that shows them lives, so a chart
//! is full the moment the page opens.

use std::time::Duration;

use api::series::SeriesAnswer;
use leptos::prelude::*;

use super::util::{enc, href, poll_json};

/// The server samples every 10 s.
const POLL: Duration = Duration::from_secs(10);
/// The span the server's fine series cover.
pub const HOUR: f64 = 3_600.0;
const W: f64 = 120.0;
const H: f64 = 24.0;

/// Every series of `metric` over the last hour, refreshed while the
/// calling component lives; `None` until the first answer.
pub fn poll(metric: &'static str) -> RwSignal<Option<Result<SeriesAnswer, String>>> {
    poll_json(
        move || href(&format!("/api/series?metric={}&range=1h", enc(metric))),
        POLL,
        "/api/series",
    )
}

/// The points of `name` in an answer; none before the first one.
pub fn of(answer: &Option<Result<SeriesAnswer, String>>, name: &str) -> Vec<(f64, f64)> {
    match answer {
        Some(Ok(a)) => a.series.get(name).cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// An SVG path of `points` over the hour before `now`, scaled to `max`.
fn path(points: &[(f64, f64)], now: f64, max: f64) -> String {
    let start = now - HOUR;
    let mut d = String::new();
    for (t, v) in points {
        let x = ((t - start) / HOUR * W).clamp(0.0, W);
        let y = H - 1.0 - (v / max).clamp(0.0, 1.0) * (H - 2.0);
        d.push_str(&format!(
            "{}{x:.1},{y:.1} ",
            if d.is_empty() { "M" } else { "L" }
        ));
    }
    d
}

/// Successes (accent) and failures (red) per second over the last hour,
/// on one scale.
#[component]
pub fn RateSpark(label: String, ok: Vec<(f64, f64)>, failed: Vec<(f64, f64)>) -> impl IntoView {
    let now = js_sys::Date::now() / 1000.0;
    let max = ok
        .iter()
        .chain(failed.iter())
        .map(|p| p.1)
        .fold(0.0_f64, f64::max)
        .max(f64::EPSILON);
    let title = format!("{label}: peak {max:.2}/s over the last hour");
    let aria = title.clone();
    view! {
        <svg width=W height=H viewBox=format!("0 0 {W} {H}") role="img" aria-label=aria data-testid="rate-spark"
            data-points=ok.len().to_string()>
            <title>{title}</title>
            <line x1="0" y1=H - 1.0 x2=W y2=H - 1.0 style="stroke:var(--line)"/>
            <path d=path(&ok, now, max) style="fill:none;stroke:var(--accent);stroke-width:1.5"/>
            <path d=path(&failed, now, max) style="fill:none;stroke:var(--bad);stroke-width:1.5"/>
        </svg>
    }
}
