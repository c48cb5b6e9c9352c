//! `loadgen compare`: A/B tables from JSON reports (`--report FILE` of `loadgen kms` / `xks`).
//!
//! Each side (A, the old build; B, the new one) gives its reports as `GROUP=FILE`, one per run,
//! in the order they ran; the reports of a group on one side are its rounds. With the runs
//! alternating (A B A B ...), the load generator and the machine's drift hit both sides alike,
//! and round i of A is paired with round i of B for the per-round ratios.
//!
//! Per group and scenario it pools each side's rounds (requests over measured seconds, the
//! merged latency histograms, the server's CPU) and prints A and B side by side with B/A, and
//! then the verdict of every `--check`:
//! - `ratio-kept:GROUP/SCENARIO=X`: B's rate relative to its own baseline is at least X times
//!   A's (the baseline of a server is its bare HTTP route, measured in the same run);
//! - `rate-gain:GROUP/SCENARIO=X`: B's rate is at least X times A's;
//! - `max-p99-ms:GROUP/SCENARIO=X`: B's p99 latency is under X ms.
//!
//! A check also fails when B's scenario had errors. Exit status: 3 when a check failed, 2 for
//! unusable input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::histogram::Histogram;
use crate::report::{markdown_table, median, BASELINE};
use crate::BoxError;

/// Options of `loadgen compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// A side's report as GROUP=FILE (repeat: one per run, in order).
    #[arg(long = "a", value_name = "GROUP=FILE", required = true)]
    pub a: Vec<String>,
    /// B side's report as GROUP=FILE (repeat: one per run, in order).
    #[arg(long = "b", value_name = "GROUP=FILE", required = true)]
    pub b: Vec<String>,
    /// What A is (e.g. the old revision).
    #[arg(long, default_value = "A")]
    pub name_a: String,
    /// What B is (e.g. the new revision).
    #[arg(long, default_value = "B")]
    pub name_b: String,
    /// A verdict to print: `ratio-kept:GROUP/SCENARIO=X`, `rate-gain:GROUP/SCENARIO=X` or
    /// `max-p99-ms:GROUP/SCENARIO=X`.
    #[arg(long = "check", value_name = "CHECK")]
    pub checks: Vec<String>,
    /// Also print the comparison as one line of JSON, last on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One run's scenario, as read from a report.
#[derive(Debug, Clone)]
struct Run {
    requests: u64,
    secs: f64,
    errors: u64,
    histogram: Histogram,
    server_cpu_secs: Option<f64>,
    /// A closed-loop server scenario (its rate compares with the baseline's).
    closed_loop: bool,
}

impl Run {
    fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.requests as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// One side's rounds of one scenario, pooled.
#[derive(Debug, Clone)]
struct Pooled {
    rounds: Vec<Run>,
    total: Run,
}

impl Pooled {
    fn new(rounds: Vec<Run>) -> Pooled {
        let mut total = Run {
            requests: 0,
            secs: 0.0,
            errors: 0,
            histogram: Histogram::new(),
            server_cpu_secs: Some(0.0),
            closed_loop: rounds.iter().all(|r| r.closed_loop),
        };
        for r in &rounds {
            total.requests += r.requests;
            total.secs += r.secs;
            total.errors += r.errors;
            total.histogram.merge(&r.histogram);
            total.server_cpu_secs = total
                .server_cpu_secs
                .zip(r.server_cpu_secs)
                .map(|(a, b)| a + b);
        }
        Pooled { rounds, total }
    }

    fn server_us_per_request(&self) -> Option<f64> {
        let cpu = self.total.server_cpu_secs?;
        (self.total.requests > 0).then(|| cpu * 1e6 / self.total.requests as f64)
    }
}

/// (group, scenario) -> each side's pooled runs; the scenario order as first seen.
type Side = BTreeMap<String, Vec<(String, Pooled)>>;

fn parse_spec(spec: &str) -> Result<(String, PathBuf), BoxError> {
    let (group, file) = spec
        .split_once('=')
        .ok_or_else(|| format!("'{spec}': expected GROUP=FILE"))?;
    if group.is_empty() || group.contains('/') {
        return Err(format!("'{spec}': the group must be a non-empty name without '/'").into());
    }
    Ok((group.to_owned(), PathBuf::from(file)))
}

/// The scenarios of one report.
fn read_report(path: &PathBuf) -> Result<Vec<(String, Run)>, BoxError> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if doc["histogram_sub_bits"].as_u64() != Some(u64::from(Histogram::SUB_BITS)) {
        return Err(format!("{}: not a loadgen report of this version", path.display()).into());
    }
    let scenarios = doc["scenarios"]
        .as_array()
        .ok_or_else(|| format!("{}: no scenarios", path.display()))?;
    let mut out = Vec::new();
    for s in scenarios {
        let name = s["scenario"]
            .as_str()
            .ok_or_else(|| format!("{}: a scenario without a name", path.display()))?;
        let buckets: Vec<(usize, u64)> = serde_json::from_value(s["histogram_us"].clone())
            .map_err(|e| format!("{}: {name}: histogram: {e}", path.display()))?;
        let histogram = Histogram::from_buckets(&buckets)
            .ok_or_else(|| format!("{}: {name}: histogram out of range", path.display()))?;
        out.push((
            name.to_owned(),
            Run {
                requests: histogram.total(),
                secs: s["measured_secs"].as_f64().unwrap_or(0.0),
                errors: s["errors"].as_u64().unwrap_or(0),
                histogram,
                server_cpu_secs: s["server_cpu_secs"].as_f64(),
                closed_loop: !s["ratio_to_baseline"].is_null(),
            },
        ));
    }
    Ok(out)
}

fn read_side(specs: &[String]) -> Result<(Side, BTreeMap<String, usize>), BoxError> {
    // group -> scenario -> rounds, keeping the scenario order of the first report.
    let mut runs: BTreeMap<String, Vec<(String, Vec<Run>)>> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for spec in specs {
        let (group, file) = parse_spec(spec)?;
        *counts.entry(group.clone()).or_insert(0) += 1;
        let scenarios = runs.entry(group).or_default();
        for (name, run) in read_report(&file)? {
            match scenarios.iter_mut().find(|(n, _)| *n == name) {
                Some((_, rounds)) => rounds.push(run),
                None => scenarios.push((name, vec![run])),
            }
        }
    }
    let side = runs
        .into_iter()
        .map(|(group, scenarios)| {
            let pooled = scenarios
                .into_iter()
                .map(|(name, rounds)| (name, Pooled::new(rounds)))
                .collect();
            (group, pooled)
        })
        .collect();
    Ok((side, counts))
}

fn find<'a>(side: &'a Side, group: &str, scenario: &str) -> Option<&'a Pooled> {
    side.get(group)?
        .iter()
        .find(|(n, _)| n == scenario)
        .map(|(_, p)| p)
}

/// A parsed `--check`.
#[derive(Debug, Clone, PartialEq)]
struct CheckSpec {
    kind: CheckKind,
    group: String,
    scenario: String,
    value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckKind {
    RatioKept,
    RateGain,
    MaxP99Ms,
}

fn parse_check(text: &str) -> Result<CheckSpec, BoxError> {
    let bad = || format!("--check '{text}': expected KIND:GROUP/SCENARIO=VALUE");
    let (kind, rest) = text.split_once(':').ok_or_else(bad)?;
    let (target, value) = rest.split_once('=').ok_or_else(bad)?;
    let (group, scenario) = target.split_once('/').ok_or_else(bad)?;
    let kind = match kind {
        "ratio-kept" => CheckKind::RatioKept,
        "rate-gain" => CheckKind::RateGain,
        "max-p99-ms" => CheckKind::MaxP99Ms,
        other => {
            return Err(format!(
                "--check '{text}': unknown kind '{other}' (ratio-kept, rate-gain, max-p99-ms)"
            )
            .into())
        }
    };
    let value: f64 = value.parse().map_err(|_| bad())?;
    Ok(CheckSpec {
        kind,
        group: group.to_owned(),
        scenario: scenario.to_owned(),
        value,
    })
}

/// One check's outcome.
struct Outcome {
    line: String,
    met: bool,
    json: Value,
}

fn evaluate(check: &CheckSpec, a: &Side, b: &Side) -> Outcome {
    let (name_a, name_b) = ("A", "B");
    let label = format!("{}/{}", check.group, check.scenario);
    let missing = |what: &str| Outcome {
        line: format!("{label}: {what} not measured: MISSED"),
        met: false,
        json: json!({"check": format!("{:?}", check.kind), "scenario": label, "met": false}),
    };
    let (Some(pa), Some(pb)) = (
        find(a, &check.group, &check.scenario),
        find(b, &check.group, &check.scenario),
    ) else {
        return missing("the scenario was");
    };
    let errors = if pb.total.errors > 0 {
        format!(" ({} had {} errors)", name_b, pb.total.errors)
    } else {
        String::new()
    };
    let rounds = |values: &[f64]| {
        if values.len() > 1 {
            let each: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
            format!(
                "; by round {} (median {:.3})",
                each.join(", "),
                median(values)
            )
        } else {
            String::new()
        }
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    match check.kind {
        CheckKind::RatioKept => {
            let (Some(ba), Some(bb)) = (
                find(a, &check.group, BASELINE),
                find(b, &check.group, BASELINE),
            ) else {
                return missing("the baseline was");
            };
            let ratio_a = pa.total.rate() / ba.total.rate();
            let ratio_b = pb.total.rate() / bb.total.rate();
            let kept = ratio_b / ratio_a;
            let per_round: Vec<f64> = (0..pa.rounds.len().min(pb.rounds.len()))
                .filter_map(|i| {
                    let ra = pa.rounds[i].rate() / ba.rounds.get(i)?.rate();
                    let rb = pb.rounds[i].rate() / bb.rounds.get(i)?.rate();
                    Some(rb / ra)
                })
                .collect();
            let met = kept >= check.value && pb.total.errors == 0;
            Outcome {
                line: format!(
                    "{label} to the baseline: {name_a} {ratio_a:.3}, {name_b} {ratio_b:.3} = {kept:.3} \
                     of {name_a}'s (target >= {}){errors}: {}{}",
                    check.value,
                    verdict(met),
                    rounds(&per_round)
                ),
                met,
                json: json!({
                    "check": "ratio-kept", "scenario": label, "ratio_a": ratio_a,
                    "ratio_b": ratio_b, "kept": kept, "target": check.value,
                    "round_values": per_round, "met": met,
                }),
            }
        }
        CheckKind::RateGain => {
            let gain = pb.total.rate() / pa.total.rate();
            let per_round: Vec<f64> = pa
                .rounds
                .iter()
                .zip(&pb.rounds)
                .map(|(ra, rb)| rb.rate() / ra.rate())
                .collect();
            let met = gain >= check.value && pb.total.errors == 0;
            Outcome {
                line: format!(
                    "{label} throughput: {name_a} {:.0} req/s, {name_b} {:.0} req/s = {gain:.3}x \
                     (target >= {}x){errors}: {}{}",
                    pa.total.rate(),
                    pb.total.rate(),
                    check.value,
                    verdict(met),
                    rounds(&per_round)
                ),
                met,
                json: json!({
                    "check": "rate-gain", "scenario": label, "rate_a": pa.total.rate(),
                    "rate_b": pb.total.rate(), "gain": gain, "target": check.value,
                    "round_values": per_round, "met": met,
                }),
            }
        }
        CheckKind::MaxP99Ms => {
            let p99_a = pa.total.histogram.quantile_ms(0.99);
            let p99_b = pb.total.histogram.quantile_ms(0.99);
            let per_round: Vec<f64> = pb
                .rounds
                .iter()
                .map(|r| r.histogram.quantile_ms(0.99))
                .collect();
            let met = p99_b < check.value && pb.total.errors == 0;
            Outcome {
                line: format!(
                    "{label} p99: {name_a} {p99_a:.3} ms, {name_b} {p99_b:.3} ms (target for \
                     {name_b} < {} ms){errors}: {}{}",
                    check.value,
                    verdict(met),
                    rounds(&per_round)
                ),
                met,
                json: json!({
                    "check": "max-p99-ms", "scenario": label, "p99_ms_a": p99_a,
                    "p99_ms_b": p99_b, "target": check.value, "round_values": per_round,
                    "met": met,
                }),
            }
        }
    }
}

/// Runs the comparison; the exit status (0, or 3 when a check failed).
pub fn run(args: &CompareArgs) -> Result<u8, BoxError> {
    let checks: Vec<CheckSpec> = args
        .checks
        .iter()
        .map(|c| parse_check(c))
        .collect::<Result<_, _>>()?;
    let (a, runs_a) = read_side(&args.a)?;
    let (b, runs_b) = read_side(&args.b)?;
    let (na, nb) = (args.name_a.as_str(), args.name_b.as_str());
    let mut out = String::new();
    let runs: Vec<String> = runs_a
        .iter()
        .map(|(g, n)| format!("{g}: {n} + {}", runs_b.get(g).copied().unwrap_or(0)))
        .collect();
    let names = if (na, nb) == ("A", "B") {
        String::new()
    } else {
        format!("A = {na}, B = {nb}; ")
    };
    let _ = writeln!(out, "{names}runs per side (A + B): {}", runs.join(", "));
    let header = [
        "benchmark",
        "scenario",
        "A req/s",
        "B req/s",
        "B/A",
        "A p50 ms",
        "B p50 ms",
        "A p99 ms",
        "B p99 ms",
        "A srv µs/req",
        "B srv µs/req",
        "A vs base",
        "B vs base",
        "errors A/B",
    ];
    let mut rows = Vec::new();
    let mut scenarios_json = Vec::new();
    for (group, scenarios) in &a {
        for (name, pa) in scenarios {
            let Some(pb) = find(&b, group, name) else {
                continue;
            };
            let vs_base = |side: &Side, p: &Pooled| {
                find(side, group, BASELINE)
                    .filter(|base| base.total.rate() > 0.0 && p.total.closed_loop)
                    .map(|base| p.total.rate() / base.total.rate())
            };
            let f3 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
            let f1 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let gain = (pa.total.rate() > 0.0).then(|| pb.total.rate() / pa.total.rate());
            rows.push(vec![
                group.clone(),
                name.clone(),
                format!("{:.0}", pa.total.rate()),
                format!("{:.0}", pb.total.rate()),
                f3(gain),
                format!("{:.3}", pa.total.histogram.quantile_ms(0.5)),
                format!("{:.3}", pb.total.histogram.quantile_ms(0.5)),
                format!("{:.3}", pa.total.histogram.quantile_ms(0.99)),
                format!("{:.3}", pb.total.histogram.quantile_ms(0.99)),
                f1(pa.server_us_per_request()),
                f1(pb.server_us_per_request()),
                f3(vs_base(&a, pa)),
                f3(vs_base(&b, pb)),
                format!("{}/{}", pa.total.errors, pb.total.errors),
            ]);
            scenarios_json.push(json!({
                "benchmark": group, "scenario": name,
                "a": {"requests_per_second": pa.total.rate(),
                      "round_requests_per_second": pa.rounds.iter().map(Run::rate).collect::<Vec<_>>(),
                      "p50_ms": pa.total.histogram.quantile_ms(0.5),
                      "p99_ms": pa.total.histogram.quantile_ms(0.99),
                      "server_cpu_us_per_request": pa.server_us_per_request(),
                      "ratio_to_baseline": vs_base(&a, pa), "errors": pa.total.errors},
                "b": {"requests_per_second": pb.total.rate(),
                      "round_requests_per_second": pb.rounds.iter().map(Run::rate).collect::<Vec<_>>(),
                      "p50_ms": pb.total.histogram.quantile_ms(0.5),
                      "p99_ms": pb.total.histogram.quantile_ms(0.99),
                      "server_cpu_us_per_request": pb.server_us_per_request(),
                      "ratio_to_baseline": vs_base(&b, pb), "errors": pb.total.errors},
            }));
        }
    }
    out.push_str(&markdown_table(&header, 2, &rows));
    let outcomes: Vec<Outcome> = checks.iter().map(|c| evaluate(c, &a, &b)).collect();
    if !outcomes.is_empty() {
        out.push_str("\nverdicts:\n");
        for o in &outcomes {
            let _ = writeln!(out, "- {}", o.line);
        }
    }
    print!("{out}");
    if args.json {
        println!(
            "{}",
            json!({
                "a": na, "b": nb, "scenarios": scenarios_json,
                "checks": outcomes.iter().map(|o| o.json.clone()).collect::<Vec<_>>(),
            })
        );
    }
    Ok(if outcomes.iter().all(|o| o.met) { 0 } else { 3 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_of(requests: u64, secs: f64, micros: u64) -> Run {
        let mut histogram = Histogram::new();
        for _ in 0..requests {
            histogram.record(Duration::from_micros(micros));
        }
        Run {
            requests,
            secs,
            errors: 0,
            histogram,
            server_cpu_secs: Some(requests as f64 * 20e-6),
            closed_loop: true,
        }
    }

    fn side(group: &str, baseline: Vec<Run>, encrypt: Vec<Run>) -> Side {
        let mut s = Side::new();
        s.insert(
            group.into(),
            vec![
                (BASELINE.into(), Pooled::new(baseline)),
                ("encrypt".into(), Pooled::new(encrypt)),
            ],
        );
        s
    }

    #[test]
    fn checks_parse() {
        assert_eq!(
            parse_check("rate-gain:xks/encrypt=1.2").unwrap(),
            CheckSpec {
                kind: CheckKind::RateGain,
                group: "xks".into(),
                scenario: "encrypt".into(),
                value: 1.2
            }
        );
        assert!(parse_check("rate-gain:encrypt=1.2").is_err());
        assert!(parse_check("faster:xks/encrypt=1.2").is_err());
        assert!(parse_check("max-p99-ms:xks/encrypt=x").is_err());
        assert!(parse_spec("sw=/tmp/a.json").is_ok());
        assert!(parse_spec("/tmp/a.json").is_err());
    }

    #[test]
    fn verdicts_pool_rounds_and_pair_them() {
        let a = side(
            "sw",
            vec![run_of(1000, 1.0, 300), run_of(1000, 1.0, 300)],
            vec![run_of(600, 1.0, 600), run_of(600, 1.0, 600)],
        );
        let b = side(
            "sw",
            vec![run_of(1000, 1.0, 300), run_of(900, 1.0, 300)],
            vec![run_of(580, 1.0, 700), run_of(540, 1.0, 700)],
        );
        let kept = evaluate(&parse_check("ratio-kept:sw/encrypt=0.95").unwrap(), &a, &b);
        // A: 0.6; B: 1120/1900 = 0.589 -> 0.982 of A's.
        assert!(kept.met, "{}", kept.line);
        assert!(kept.line.contains("by round 0.967, 1.000"), "{}", kept.line);
        let gain = evaluate(&parse_check("rate-gain:sw/encrypt=1.2").unwrap(), &a, &b);
        assert!(!gain.met, "{}", gain.line);
        let p99 = evaluate(&parse_check("max-p99-ms:sw/encrypt=20").unwrap(), &a, &b);
        assert!(p99.met, "{}", p99.line);
        let missing = evaluate(&parse_check("rate-gain:xks/encrypt=1.2").unwrap(), &a, &b);
        assert!(!missing.met);
    }

    #[test]
    fn errors_fail_a_check() {
        let a = side("x", vec![run_of(10, 1.0, 1)], vec![run_of(10, 1.0, 1)]);
        let mut failing = run_of(20, 1.0, 1);
        failing.errors = 1;
        let b = side("x", vec![run_of(10, 1.0, 1)], vec![failing]);
        let o = evaluate(&parse_check("rate-gain:x/encrypt=1.2").unwrap(), &a, &b);
        assert!(!o.met && o.line.contains("errors"), "{}", o.line);
    }
}
