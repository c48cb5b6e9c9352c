//! What a run measured and how it is reported: per-scenario results pooled over rounds, the
//! comparisons a subcommand asks for (ratios against the same run's baseline and raw ceilings,
//! per round and pooled), the table on stdout and the JSON report.
//!
//! Pooled figures are over all rounds of a scenario (its requests over its measured seconds,
//! quantiles of the merged histogram). Per-round ratios use that round's rates only: on a
//! shared machine the references drift within a run, and the spread of the per-round ratios
//! (and their median) shows whether a verdict is the server or the drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

use crate::histogram::Histogram;
use crate::procstat::Usage;

/// Error status recorded for transport failures (connect, I/O, timeout) and failed raw calls.
pub const TRANSPORT_ERROR: u16 = 0;

/// The baseline scenario's name (every server subcommand runs it first).
pub const BASELINE: &str = "baseline";

/// A raw PKCS#11 scenario's identity: its group (`raw-session`, `raw-token`) and threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTag {
    pub group: String,
    pub threads: usize,
}

/// One scenario's measurements, pooled over the rounds run so far.
#[derive(Debug, Clone)]
pub struct ScenarioResult {
    pub name: String,
    /// Set for the raw PKCS#11 scenarios.
    pub raw: Option<RawTag>,
    /// The target rate of an open-loop scenario.
    pub fixed_rate: Option<u32>,
    pub histogram: Histogram,
    /// Measured time (summed over rounds).
    pub window: Duration,
    /// Failures by HTTP status ([`TRANSPORT_ERROR`] for the rest).
    pub errors: BTreeMap<u16, u64>,
    pub first_error: Option<String>,
    /// The server's CPU and context switches over the measured window(s) (`--server-pid`).
    pub server: Option<Usage>,
    /// The load generator's own CPU and context switches over the measured window(s).
    pub client: Option<Usage>,
    /// Requests per second of each round.
    pub round_rates: Vec<f64>,
}

impl ScenarioResult {
    pub fn new(name: impl Into<String>, histogram: Histogram, window: Duration) -> Self {
        let window = window.max(Duration::from_millis(1));
        ScenarioResult {
            name: name.into(),
            raw: None,
            fixed_rate: None,
            round_rates: vec![histogram.total() as f64 / window.as_secs_f64()],
            histogram,
            window,
            errors: BTreeMap::new(),
            first_error: None,
            server: None,
            client: None,
        }
    }

    pub fn requests(&self) -> u64 {
        self.histogram.total()
    }

    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.requests() as f64 / self.window.as_secs_f64()
    }

    /// A server scenario of the closed loop (neither raw nor at a fixed rate): its rate is
    /// comparable with the baseline's.
    pub fn is_closed_loop(&self) -> bool {
        self.raw.is_none() && self.fixed_rate.is_none()
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn per_request(&self, usage: Option<Usage>) -> Option<(f64, f64)> {
        let usage = usage?;
        let n = self.requests();
        (n > 0).then(|| {
            (
                usage.cpu.as_secs_f64() * 1e6 / n as f64,
                usage.switches as f64 / n as f64,
            )
        })
    }

    /// The server's CPU µs and context switches per request.
    pub fn server_per_request(&self) -> Option<(f64, f64)> {
        self.per_request(self.server)
    }

    /// The load generator's CPU µs per request.
    pub fn client_us_per_request(&self) -> Option<f64> {
        self.per_request(self.client).map(|(us, _)| us)
    }

    /// Adds another round of the same scenario.
    pub fn absorb(mut self, other: ScenarioResult) -> ScenarioResult {
        self.histogram.merge(&other.histogram);
        self.window += other.window;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_insert(0) += n;
        }
        self.first_error = self.first_error.or(other.first_error);
        self.server = match (self.server, other.server) {
            (Some(a), Some(b)) => Some(a.add(b)),
            _ => None,
        };
        self.client = match (self.client, other.client) {
            (Some(a), Some(b)) => Some(a.add(b)),
            _ => None,
        };
        self.round_rates.extend(other.round_rates);
        self
    }
}

/// A comparison a subcommand asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `scenario`'s rate against min(baseline, the `raw` group's rate): the first listed raw
    /// thread count is the reference, the best one is shown beside it.
    Ceiling {
        scenario: String,
        raw: String,
        target: Option<f64>,
        note: &'static str,
    },
    /// `scenario`'s rate against `reference`'s (the authorization scenario against Encrypt on
    /// a default-policy key).
    Relative {
        scenario: String,
        reference: String,
        target: Option<f64>,
        note: &'static str,
    },
    /// An open-loop scenario kept its rate (within 2%) with no errors and p99 under a limit.
    Sustained { scenario: String, max_p99_ms: f64 },
}

impl Check {
    /// The ratio of this check over `results` (one round, or pooled), with the reference rate
    /// and, for a ceiling, the ratio against the best raw rate; `None` when a scenario it
    /// needs was not run (or measured nothing).
    fn ratio(&self, results: &[ScenarioResult]) -> Option<Ratio> {
        let rate = |name: &str| {
            results
                .iter()
                .find(|r| r.name == name && r.rps() > 0.0)
                .map(ScenarioResult::rps)
        };
        match self {
            Check::Ceiling { scenario, raw, .. } => {
                let value = rate(scenario)?;
                let baseline = rate(BASELINE)?;
                let mut raws = results
                    .iter()
                    .filter(|r| r.raw.as_ref().is_some_and(|t| &t.group == raw));
                let first = raws.next()?.rps();
                let best = raws.map(ScenarioResult::rps).fold(first, f64::max);
                let reference = baseline.min(first);
                let best_reference = baseline.min(best);
                Some(Ratio {
                    value: value / reference,
                    reference,
                    best: (best_reference != reference && best_reference > 0.0)
                        .then(|| value / best_reference),
                })
            }
            Check::Relative {
                scenario,
                reference,
                ..
            } => {
                let value = rate(scenario)?;
                let reference = rate(reference)?;
                Some(Ratio {
                    value: value / reference,
                    reference,
                    best: None,
                })
            }
            Check::Sustained { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Ratio {
    value: f64,
    reference: f64,
    best: Option<f64>,
}

/// The median of a list (the mean of the middle two for an even length; NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A whole run: pooled results, the checks, and each check's per-round ratios.
#[derive(Debug, Default)]
pub struct Report {
    /// `kms` or `xks`.
    pub subcommand: &'static str,
    /// Settings echoed into the JSON report.
    pub settings: serde_json::Map<String, Value>,
    pub results: Vec<ScenarioResult>,
    pub checks: Vec<Check>,
    /// Per check (by index), its ratio in each round.
    pub round_ratios: BTreeMap<usize, Vec<f64>>,
}

/// How a check came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub line: String,
    /// `None` for an informative comparison without a target.
    pub met: Option<bool>,
    pub json: Value,
}

impl Report {
    /// Adds one round's results: records the round's ratios and pools the results.
    pub fn add_round(&mut self, round: Vec<ScenarioResult>) {
        for (i, check) in self.checks.iter().enumerate() {
            if let Some(ratio) = check.ratio(&round) {
                self.round_ratios.entry(i).or_default().push(ratio.value);
            }
        }
        if self.results.is_empty() {
            self.results = round;
        } else {
            let pooled = std::mem::take(&mut self.results);
            self.results = pooled
                .into_iter()
                .zip(round)
                .map(|(all, one)| all.absorb(one))
                .collect();
        }
    }

    /// Results measured once (the open-loop scenarios after the rounds).
    pub fn add_once(&mut self, result: ScenarioResult) {
        self.results.push(result);
    }

    fn find(&self, name: &str) -> Option<&ScenarioResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// Every check's verdict, in order.
    pub fn verdicts(&self) -> Vec<Verdict> {
        let mut out = Vec::new();
        for (i, check) in self.checks.iter().enumerate() {
            let rounds = self.round_ratios.get(&i).filter(|r| r.len() > 1);
            let by_round = rounds.map(|r| {
                let each: Vec<String> = r.iter().map(|v| format!("{v:.3}")).collect();
                format!("; by round {} (median {:.3})", each.join(", "), median(r))
            });
            if let Some(v) = self.verdict(check, by_round.unwrap_or_default()) {
                let mut v = v;
                if let Some(obj) = v.json.as_object_mut() {
                    obj.insert("round_ratios".into(), json!(self.round_ratios.get(&i)));
                    obj.insert(
                        "round_median".into(),
                        json!(self.round_ratios.get(&i).map(|r| median(r))),
                    );
                }
                out.push(v);
            }
        }
        out
    }

    fn verdict(&self, check: &Check, by_round: String) -> Option<Verdict> {
        let target_text = |target: Option<f64>, value: f64| match target {
            Some(t) => (
                format!(
                    " (target >= {t}: {})",
                    if value >= t { "met" } else { "MISSED" }
                ),
                Some(value >= t),
            ),
            None => (String::new(), None),
        };
        match check {
            Check::Ceiling {
                scenario,
                raw,
                target,
                note,
            } => {
                let ratio = check.ratio(&self.results)?;
                let (text, met) = target_text(*target, ratio.value);
                let best = ratio
                    .best
                    .map(|b| format!(" ({b:.3} against the best {raw} rate)"))
                    .unwrap_or_default();
                let note = if note.is_empty() {
                    String::new()
                } else {
                    format!(" [{note}]")
                };
                Some(Verdict {
                    line: format!(
                        "{scenario} = {:.3} of min(baseline, {raw}) = {:.0} req/s{best}{text}{by_round}{note}",
                        ratio.value, ratio.reference
                    ),
                    met,
                    json: json!({
                        "check": "ceiling",
                        "scenario": scenario,
                        "raw_scenario": raw,
                        "ceiling_requests_per_second": ratio.reference,
                        "ratio": ratio.value,
                        "ratio_against_best_raw": ratio.best,
                        "target": target,
                        "met": met,
                    }),
                })
            }
            Check::Relative {
                scenario,
                reference,
                target,
                note,
            } => {
                let ratio = check.ratio(&self.results)?;
                let (text, met) = target_text(*target, ratio.value);
                let (a, b) = (self.find(scenario)?, self.find(reference)?);
                let note = if note.is_empty() {
                    String::new()
                } else {
                    format!(" [{note}]")
                };
                Some(Verdict {
                    line: format!(
                        "{scenario} = {:.3} of {reference} ({:.0} against {:.0} req/s; p50 {:.3} \
                         against {:.3} ms, p99 {:.3} against {:.3} ms){text}{by_round}{note}",
                        ratio.value,
                        a.rps(),
                        b.rps(),
                        a.histogram.quantile_ms(0.5),
                        b.histogram.quantile_ms(0.5),
                        a.histogram.quantile_ms(0.99),
                        b.histogram.quantile_ms(0.99),
                    ),
                    met,
                    json: json!({
                        "check": "relative",
                        "scenario": scenario,
                        "reference": reference,
                        "ratio": ratio.value,
                        "target": target,
                        "met": met,
                    }),
                })
            }
            Check::Sustained {
                scenario,
                max_p99_ms,
            } => {
                let r = self.find(scenario)?;
                let rate = f64::from(r.fixed_rate?);
                let p99 = r.histogram.quantile_ms(0.99);
                let met = r.error_count() == 0 && p99 < *max_p99_ms && r.rps() >= 0.98 * rate;
                Some(Verdict {
                    line: format!(
                        "{scenario}: {:.0} req/s sustained of {rate:.0}, p99 {p99:.3} ms, {} errors \
                         (target: the rate, p99 < {max_p99_ms} ms, no errors: {})",
                        r.rps(),
                        r.error_count(),
                        if met { "met" } else { "MISSED" }
                    ),
                    met: Some(met),
                    json: json!({
                        "check": "sustained",
                        "scenario": scenario,
                        "rate": rate,
                        "p99_ms": p99,
                        "max_p99_ms": max_p99_ms,
                        "met": met,
                    }),
                })
            }
        }
    }

    /// The table (Markdown, padded for a terminal) and the verdict lines.
    pub fn render(&self) -> String {
        let baseline = self.find(BASELINE).map(ScenarioResult::rps);
        let header = [
            "scenario",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "vs base",
            "srv µs/req",
            "srv cs/req",
            "cli µs/req",
        ];
        let mut rows: Vec<Vec<String>> = Vec::new();
        for r in &self.results {
            let dash = || "-".to_owned();
            let server = r.server_per_request();
            rows.push(vec![
                r.name.clone(),
                r.requests().to_string(),
                r.error_count().to_string(),
                format!("{:.0}", r.rps()),
                format!("{:.3}", r.histogram.quantile_ms(0.5)),
                format!("{:.3}", r.histogram.quantile_ms(0.99)),
                format!("{:.3}", r.histogram.quantile_ms(0.999)),
                match baseline {
                    Some(b) if b > 0.0 && r.is_closed_loop() => format!("{:.3}", r.rps() / b),
                    _ => dash(),
                },
                server.map_or_else(dash, |(us, _)| format!("{us:.1}")),
                server.map_or_else(dash, |(_, cs)| format!("{cs:.2}")),
                r.client_us_per_request()
                    .map_or_else(dash, |us| format!("{us:.1}")),
            ]);
        }
        let mut out = markdown_table(&header, 1, &rows);
        for v in self.verdicts() {
            let _ = writeln!(out, "{}", v.line);
        }
        out
    }

    /// The JSON report (one document; the histograms let `loadgen compare` pool runs).
    pub fn json(&self) -> Value {
        let baseline = self.find(BASELINE).map(ScenarioResult::rps);
        let scenarios: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let errors: serde_json::Map<String, Value> = r
                    .errors
                    .iter()
                    .map(|(code, n)| {
                        let key = if *code == TRANSPORT_ERROR {
                            "transport".to_owned()
                        } else {
                            code.to_string()
                        };
                        (key, Value::from(*n))
                    })
                    .collect();
                let server = r.server_per_request();
                json!({
                    "scenario": r.name,
                    "raw_group": r.raw.as_ref().map(|t| &t.group),
                    "raw_threads": r.raw.as_ref().map(|t| t.threads),
                    "fixed_rate": r.fixed_rate,
                    "requests": r.requests(),
                    "errors": r.error_count(),
                    "errors_by_status": errors,
                    "first_error": r.first_error,
                    "requests_per_second": r.rps(),
                    "round_requests_per_second": r.round_rates,
                    "p50_ms": r.histogram.quantile_ms(0.5),
                    "p99_ms": r.histogram.quantile_ms(0.99),
                    "p999_ms": r.histogram.quantile_ms(0.999),
                    "measured_secs": r.window.as_secs_f64(),
                    "ratio_to_baseline": baseline.filter(|_| r.is_closed_loop()).map(|b| r.rps() / b),
                    "server_cpu_us_per_request": server.map(|s| s.0),
                    "server_ctx_switches_per_request": server.map(|s| s.1),
                    "server_cpu_secs": r.server.map(|u| u.cpu.as_secs_f64()),
                    "server_ctx_switches": r.server.map(|u| u.switches),
                    "client_cpu_us_per_request": r.client_us_per_request(),
                    "histogram_us": r.histogram.buckets(),
                })
            })
            .collect();
        let checks: Vec<Value> = self.verdicts().into_iter().map(|v| v.json).collect();
        let mut doc = serde_json::Map::new();
        doc.insert("tool".into(), json!("loadgen"));
        doc.insert("subcommand".into(), json!(self.subcommand));
        doc.insert(
            "histogram_sub_bits".into(),
            json!(crate::histogram::Histogram::SUB_BITS),
        );
        for (k, v) in &self.settings {
            doc.insert(k.clone(), v.clone());
        }
        doc.insert("scenarios".into(), Value::Array(scenarios));
        doc.insert("checks".into(), Value::Array(checks));
        Value::Object(doc)
    }

    /// Whether any scenario had errors.
    pub fn had_errors(&self) -> bool {
        self.results.iter().any(|r| r.error_count() > 0)
    }

    /// Whether any check with a target missed it.
    pub fn missed_a_target(&self) -> bool {
        self.verdicts().iter().any(|v| v.met == Some(false))
    }
}

/// A Markdown table whose columns are padded to line up in a terminal (the first `left`
/// columns left aligned, the others right aligned).
pub fn markdown_table(header: &[&str], left: usize, rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from("|");
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i < left {
                let _ = write!(s, " {cell}{} |", " ".repeat(pad));
            } else {
                let _ = write!(s, " {}{cell} |", " ".repeat(pad));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&mut header.iter().copied());
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if i < left {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        } else {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        }
    }
    out.push('\n');
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn result(name: &str, requests: u64, secs: u64) -> ScenarioResult {
        let mut h = Histogram::new();
        for _ in 0..requests {
            h.record(Duration::from_micros(500));
        }
        ScenarioResult::new(name, h, Duration::from_secs(secs))
    }

    fn raw(group: &str, threads: usize, requests: u64) -> ScenarioResult {
        let mut r = result(&format!("{group}-{threads}t"), requests, 1);
        r.raw = Some(RawTag {
            group: group.into(),
            threads,
        });
        r
    }

    #[test]
    fn median_of_odd_and_even_lists() {
        assert_eq!(median(&[0.3, 0.1, 0.2]), 0.2);
        assert_eq!(median(&[0.4, 0.1, 0.3, 0.2]), 0.25);
        assert_eq!(median(&[0.5]), 0.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ceilings_use_the_first_raw_rate_and_show_the_best() {
        let check = Check::Ceiling {
            scenario: "encrypt".into(),
            raw: "raw-token".into(),
            target: Some(0.5),
            note: "",
        };
        let round = vec![
            result(BASELINE, 1000, 1),
            result("encrypt", 300, 1),
            raw("raw-token", 1, 400),
            raw("raw-token", 2, 600),
        ];
        let r = check.ratio(&round).unwrap();
        assert!((r.value - 0.75).abs() < 1e-9, "{r:?}");
        assert!((r.best.unwrap() - 0.5).abs() < 1e-9, "{r:?}");
        // Without the raw group there is nothing to compare with.
        assert!(check.ratio(&round[..2]).is_none());
    }

    #[test]
    fn rounds_pool_and_keep_their_own_ratios() {
        let mut report = Report {
            checks: vec![Check::Relative {
                scenario: "encrypt-authz".into(),
                reference: "encrypt".into(),
                target: Some(0.9),
                note: "",
            }],
            ..Report::default()
        };
        report.add_round(vec![
            result(BASELINE, 100, 1),
            result("encrypt", 100, 1),
            result("encrypt-authz", 95, 1),
        ]);
        report.add_round(vec![
            result(BASELINE, 100, 1),
            result("encrypt", 100, 1),
            result("encrypt-authz", 85, 1),
        ]);
        assert_eq!(report.round_ratios[&0], vec![0.95, 0.85]);
        let pooled = &report.results[2];
        assert_eq!(pooled.requests(), 180);
        assert_eq!(pooled.round_rates, vec![95.0, 85.0]);
        let verdicts = report.verdicts();
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].met, Some(true)); // 180/200 = 0.9
        assert!(
            verdicts[0].line.contains("median 0.900"),
            "{}",
            verdicts[0].line
        );
        assert!(!report.missed_a_target());
        let json = report.json();
        assert_eq!(json["scenarios"][2]["requests"], 180);
        assert_eq!(json["checks"][0]["met"], true);
        let table = report.render();
        assert!(table.contains("| encrypt-authz |"), "{table}");
    }

    #[test]
    fn sustained_needs_rate_latency_and_no_errors() {
        let mut ok = result("encrypt@100", 1000, 10);
        ok.fixed_rate = Some(100);
        let mut report = Report {
            checks: vec![Check::Sustained {
                scenario: "encrypt@100".into(),
                max_p99_ms: 10.0,
            }],
            ..Report::default()
        };
        report.add_once(ok.clone());
        assert_eq!(report.verdicts()[0].met, Some(true));
        report.results[0].errors.insert(503, 1);
        assert_eq!(report.verdicts()[0].met, Some(false));
        assert!(report.missed_a_target() && report.had_errors());
    }

    #[test]
    fn tables_line_up() {
        let t = markdown_table(&["a", "bb"], 1, &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "| a   | bb |\n|-----|---:|\n| xyz |  1 |\n");
    }
}
