//! Benchmark suites: `archzoo bench` measurements (and peer programs) named in one TOML file,
//! measured in interleaved rounds, summarised by the binary itself.
//!
//! A speed claim compares figures taken side by side: on a shared machine the speed drifts by
//! tens of percent between minutes, so each round measures every case once, in file order, and
//! a ratio is computed within each round before its median is taken. Every case runs in its own
//! process (this binary again, or the peer's command), so its peak RSS is its own.
//!
//! ```toml
//! description = "Griffin, Hawk and Mamba: training step"
//! rounds = 5
//!
//! [[case]]
//! name = "griffin"
//! bench = "train-step"      # an `archzoo bench` command; the other keys are its flags
//! arch = "griffin"
//! layers = 3
//!
//! [[case]]
//! name = "pytorch"
//! command = ["python3", "experiments/peers/patchtst_tslib_step.py", "--steps", "20"]
//! optional = true           # recorded as skipped, not failed, when it cannot run here
//!
//! [[ratio]]
//! of = "griffin"
//! to = "mamba"
//!
//! peak = ["matmul"]         # cases whose GFLOP/s is the machine's matmul peak (optional)
//! ```
//!
//! A case's report is the JSON its command prints; the summary reads its time (`step.median_ms`,
//! `time.median_ms` or `median_ms`), `params`, `peak_rss_bytes`, `gflops`, and for decoding
//! reports the latency at each position. With `peak`, every case's GFLOP/s is also given as a
//! share of the highest median GFLOP/s among the peak cases: the utilisation.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use toml::Value as TomlValue;

use crate::bench::median;
use crate::error::{Result, RunError, io_at};
use crate::files::write_text_atomic;

/// A suite file.
#[derive(Clone, Debug)]
pub struct SuiteFile {
    /// Free text, the summary's title.
    pub description: String,
    /// Rounds; each measures every case once.
    pub rounds: usize,
    /// The measurements, in the order each round takes them.
    pub cases: Vec<Case>,
    /// Ratios of case times, computed within each round.
    pub ratios: Vec<Ratio>,
    /// Cases measuring the machine's matmul throughput; the best of their medians is the peak
    /// the other cases' GFLOP/s are read against. Empty: no utilisation column.
    pub peak: Vec<String>,
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct Case {
    /// Its name in the summary.
    pub name: String,
    /// What runs.
    pub command: CaseCommand,
    /// A case that cannot run here (its program is missing or fails) is skipped, not an error.
    pub optional: bool,
}

/// What a case runs.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseCommand {
    /// `archzoo` with these arguments (`bench <kind> flags...`; `--json` is added).
    Archzoo(Vec<String>),
    /// A peer program and its arguments; it prints one JSON report.
    External(Vec<String>),
}

/// `of` / `to`: the ratio of two cases' times.
#[derive(Clone, Debug)]
pub struct Ratio {
    /// Numerator case.
    pub of: String,
    /// Denominator case.
    pub to: String,
}

impl SuiteFile {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_at(path))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse the text of a suite file read from `source`. Flags are not checked here: the binary
    /// checks each case's arguments against its own parser before anything runs.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let invalid = |message: String| RunError::Invalid(format!("{source}: {message}"));
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let description = match table.remove("description") {
            Some(TomlValue::String(text)) => text,
            Some(_) => return Err(invalid("`description` must be a string".into())),
            None => {
                return Err(invalid(
                    "a suite needs a `description` (the summary's title)".into(),
                ));
            }
        };
        let rounds = match table.remove("rounds") {
            None => 1,
            Some(TomlValue::Integer(n)) if n >= 1 => n as usize,
            Some(_) => return Err(invalid("`rounds` must be an integer ≥ 1".into())),
        };
        let cases = match table.remove("case") {
            Some(TomlValue::Array(cases)) if !cases.is_empty() => cases
                .into_iter()
                .enumerate()
                .map(|(i, case)| parse_case(case, i + 1).map_err(&invalid))
                .collect::<Result<Vec<_>>>()?,
            _ => return Err(invalid("a suite needs `[[case]]` tables".into())),
        };
        let mut names = std::collections::HashSet::new();
        if let Some(twice) = cases.iter().find(|c| !names.insert(c.name.as_str())) {
            return Err(invalid(format!("two cases are named `{}`", twice.name)));
        }
        let ratios = match table.remove("ratio") {
            None => Vec::new(),
            Some(TomlValue::Array(ratios)) => ratios
                .into_iter()
                .map(|ratio| {
                    let name = |key: &str| {
                        ratio
                            .get(key)
                            .and_then(TomlValue::as_str)
                            .filter(|n| names.contains(n))
                            .map(str::to_string)
                            .ok_or_else(|| {
                                invalid(format!("each `[[ratio]]` needs `{key}`, a case's name"))
                            })
                    };
                    Ok(Ratio {
                        of: name("of")?,
                        to: name("to")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(invalid("`ratio` must be `[[ratio]]` tables".into())),
        };
        let peak = match table.remove("peak") {
            None => Vec::new(),
            Some(TomlValue::Array(listed)) if !listed.is_empty() => listed
                .iter()
                .map(|name| {
                    name.as_str()
                        .filter(|n| names.contains(n))
                        .map(str::to_string)
                        .ok_or_else(|| invalid("`peak` lists cases by name".into()))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(invalid("`peak` must be a list of case names".into())),
        };
        if let Some(key) = table.keys().next() {
            return Err(invalid(format!(
                "unknown key `{key}` (a suite has description, rounds, [[case]], [[ratio]] and peak)"
            )));
        }
        Ok(Self {
            description,
            rounds,
            cases,
            ratios,
            peak,
        })
    }
}

/// One `[[case]]` table (the `n`-th, for messages).
fn parse_case(case: TomlValue, n: usize) -> std::result::Result<Case, String> {
    let TomlValue::Table(mut case) = case else {
        return Err(format!("case {n} must be a table"));
    };
    let name = match case.remove("name") {
        Some(TomlValue::String(name)) => name,
        _ => return Err(format!("case {n} needs a `name`")),
    };
    let optional = match case.remove("optional") {
        None => false,
        Some(TomlValue::Boolean(on)) => on,
        Some(_) => return Err(format!("case `{name}`: `optional` is true or false")),
    };
    let command = match (case.remove("bench"), case.remove("command")) {
        (Some(TomlValue::String(kind)), None) => {
            let mut args = vec!["bench".to_string(), kind];
            for (key, value) in case {
                let flag = format!("--{}", key.replace('_', "-"));
                match value {
                    TomlValue::Boolean(true) => args.push(flag),
                    TomlValue::Boolean(false) => {}
                    TomlValue::Array(values) => {
                        let values: Vec<String> = values
                            .iter()
                            .map(scalar)
                            .collect::<Option<_>>()
                            .ok_or_else(|| format!("case `{name}`: `{key}` takes values"))?;
                        args.extend([flag, values.join(",")]);
                    }
                    value => {
                        let value = scalar(&value)
                            .ok_or_else(|| format!("case `{name}`: `{key}` takes a value"))?;
                        args.extend([flag, value]);
                    }
                }
            }
            CaseCommand::Archzoo(args)
        }
        (None, Some(TomlValue::Array(argv))) if !argv.is_empty() => {
            if let Some(key) = case.keys().next() {
                return Err(format!(
                    "case `{name}`: `{key}` has no meaning beside `command`"
                ));
            }
            let argv: Vec<String> = argv
                .iter()
                .map(|a| a.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("case `{name}`: `command` is a list of strings"))?;
            CaseCommand::External(argv)
        }
        _ => {
            return Err(format!(
                "case `{name}` needs either `bench` (an archzoo bench command) or `command` (a list of strings)"
            ));
        }
    };
    Ok(Case {
        name,
        command,
        optional,
    })
}

/// A TOML scalar as a command-line argument.
fn scalar(value: &TomlValue) -> Option<String> {
    match value {
        TomlValue::String(text) => Some(text.clone()),
        TomlValue::Integer(n) => Some(n.to_string()),
        // Rust prints the shortest decimal that reads back as the same f64.
        TomlValue::Float(x) => Some(x.to_string()),
        _ => None,
    }
}

/// One line of `bench.jsonl`: a case's report in one round. An optional case that could not run
/// is recorded once, with the report `{"skipped": "<why>"}`.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Measurement {
    /// The case's name.
    pub case: String,
    /// 1-based round.
    pub round: usize,
    /// The JSON report its command printed.
    pub report: Value,
}

/// The time a report gives, milliseconds.
fn time_ms(report: &Value) -> Option<f64> {
    ["/step/median_ms", "/time/median_ms", "/median_ms"]
        .iter()
        .find_map(|pointer| report.pointer(pointer).and_then(Value::as_f64))
}

/// A time in milliseconds with three significant digits' worth of decimals.
fn milliseconds(ms: f64) -> String {
    match ms {
        ms if ms >= 100.0 => format!("{ms:.1}"),
        ms if ms >= 1.0 => format!("{ms:.2}"),
        ms => format!("{ms:.3}"),
    }
}

/// `summary.md`: per case the median over rounds of its time, its range and rounds, its
/// parameters, peak RSS and throughput; each ratio per round and its median; decoding latency at
/// each position (median over rounds).
pub fn summary(suite: &SuiteFile, command: &str, measurements: &[Measurement]) -> String {
    let mut text = format!("# {}\n\nCommand: `{command}`", suite.description);
    // The first archzoo report names the commit and machine (a peer's report may not).
    let field = |m: &Measurement, key: &str| {
        m.report
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if let Some((commit, machine)) = measurements
        .iter()
        .find_map(|m| Some((field(m, "git_commit")?, field(m, "machine")?)))
    {
        let _ = write!(text, " (commit {commit}, {machine})");
    }
    let _ = writeln!(
        text,
        ".\n\n{} round{}, each measuring every case once in this order{}.",
        suite.rounds,
        if suite.rounds == 1 { "" } else { "s" },
        if suite.rounds == 1 {
            ""
        } else {
            "; a time is the median of the round medians"
        },
    );
    let of_case = |name: &str| -> Vec<&Measurement> {
        measurements.iter().filter(|m| m.case == name).collect()
    };
    let timed: Vec<&Case> = suite
        .cases
        .iter()
        .filter(|c| {
            of_case(&c.name)
                .iter()
                .any(|m| time_ms(&m.report).is_some())
        })
        .collect();
    let median_gflops = |name: &str| -> Option<f64> {
        let gflops: Vec<f64> = of_case(name)
            .iter()
            .filter_map(|m| m.report.get("gflops").and_then(Value::as_f64))
            .collect();
        (!gflops.is_empty()).then(|| median(&gflops))
    };
    let peak = suite
        .peak
        .iter()
        .filter_map(|name| Some((name.as_str(), median_gflops(name)?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if !timed.is_empty() {
        if let Some((name, gflops)) = peak {
            let _ = writeln!(
                text,
                "\nPeak: **{gflops:.1} GFLOP/s**, the median of `{name}` (the best of {}); \
                 a case's utilisation is its GFLOP/s (analytic FLOPs over the median time) \
                 against it.",
                suite
                    .peak
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let utilisation = if peak.is_some() { " utilisation |" } else { "" };
        let _ = writeln!(
            text,
            "\n| case | params | median ms | range ms | rounds (ms) | GFLOP/s |{utilisation} peak RSS MB (max) |"
        );
        let _ = writeln!(
            text,
            "|---|---|---|---|---|---|{}---|",
            if peak.is_some() { "---|" } else { "" }
        );
        for case in timed {
            let runs = of_case(&case.name);
            let ms: Vec<f64> = runs.iter().filter_map(|m| time_ms(&m.report)).collect();
            let (lo, hi) = ms
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            let gflops = median_gflops(&case.name);
            let utilisation = match (peak, gflops) {
                (None, _) => String::new(),
                (Some((_, top)), Some(g)) => format!(" {:.1}% |", 100.0 * g / top),
                (Some(_), None) => " - |".into(),
            };
            let rss = runs
                .iter()
                .filter_map(|m| m.report.get("peak_rss_bytes").and_then(Value::as_u64))
                .max();
            let params = runs[0].report.get("params").and_then(Value::as_u64);
            let _ = writeln!(
                text,
                "| {} | {} | {} | {}–{} | {} | {} |{utilisation} {} |",
                case.name,
                params.map_or("-".into(), |p| p.to_string()),
                milliseconds(median(&ms)),
                milliseconds(lo),
                milliseconds(hi),
                ms.iter()
                    .map(|&x| milliseconds(x))
                    .collect::<Vec<_>>()
                    .join(", "),
                gflops.map_or("-".into(), |g| format!("{g:.1}")),
                rss.map_or("-".into(), |b| format!("{:.1}", b as f64 / 1e6)),
            );
        }
    }
    let round_time = |case: &str, round: usize| {
        measurements
            .iter()
            .find(|m| m.case == case && m.round == round)
            .and_then(|m| time_ms(&m.report))
    };
    let mut ratio_lines = Vec::new();
    for ratio in &suite.ratios {
        let per_round: Vec<f64> = (1..=suite.rounds)
            .filter_map(|r| Some(round_time(&ratio.of, r)? / round_time(&ratio.to, r)?))
            .collect();
        if per_round.is_empty() {
            continue;
        }
        ratio_lines.push(format!(
            "| {} / {} | {} | **{:.2}** |",
            ratio.of,
            ratio.to,
            per_round
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(&per_round)
        ));
    }
    if !ratio_lines.is_empty() {
        text.push_str(
            "\nTime ratios, within each round:\n\n| ratio | per round | median |\n|---|---|---|\n",
        );
        for line in ratio_lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    let decoding: Vec<&Case> = suite
        .cases
        .iter()
        .filter(|c| {
            of_case(&c.name)
                .iter()
                .any(|m| m.report.get("positions").is_some())
        })
        .collect();
    if !decoding.is_empty() {
        text.push_str(
            "\nStep decoding (median over rounds of each report's median of the steps ending at \
             the position):\n\n| case | params | position | ms per step | state floats |\n|---|---|---|---|---|\n",
        );
        for case in decoding {
            let runs = of_case(&case.name);
            let positions = |m: &Measurement| -> Vec<(u64, f64, u64)> {
                m.report["positions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| {
                        Some((
                            p.get("position")?.as_u64()?,
                            p.pointer("/step/median_ms")?.as_f64()?,
                            p.get("state_floats")?.as_u64()?,
                        ))
                    })
                    .collect()
            };
            let params = runs[0].report.get("params").and_then(Value::as_u64);
            for (position, _, state) in positions(runs[0]) {
                let ms: Vec<f64> = runs
                    .iter()
                    .flat_map(|m| positions(m))
                    .filter(|&(p, _, _)| p == position)
                    .map(|(_, ms, _)| ms)
                    .collect();
                let _ = writeln!(
                    text,
                    "| {} | {} | {position} | {:.3} | {state} |",
                    case.name,
                    params.map_or("-".into(), |p| p.to_string()),
                    median(&ms)
                );
            }
        }
    }
    for m in measurements {
        if let Some(reason) = m.report.get("skipped").and_then(Value::as_str) {
            let _ = write!(text, "\nSkipped `{}`: {reason}\n", m.case);
        }
    }
    text
}

/// The measurements of `out/bench.jsonl`, as [`run`] wrote them.
pub fn read(out: &Path) -> Result<Vec<Measurement>> {
    let path = out.join("bench.jsonl");
    let text = std::fs::read_to_string(&path).map_err(io_at(&path))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| RunError::Invalid(format!("{}, line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Write `bench.jsonl` (one measurement per line) and `summary.md` into `out`.
pub fn write(
    out: &Path,
    suite: &SuiteFile,
    command: &str,
    measurements: &[Measurement],
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let mut lines = String::new();
    for m in measurements {
        lines.push_str(&serde_json::to_string(m).map_err(|e| RunError::Invalid(e.to_string()))?);
        lines.push('\n');
    }
    write_text_atomic(&out.join("bench.jsonl"), &lines)?;
    write_text_atomic(
        &out.join("summary.md"),
        &summary(suite, command, measurements),
    )
}

/// Run `suite`: `rounds` rounds of every case in file order, each in its own process (`exe`, this
/// binary, for `bench` cases). `bench.jsonl` and `summary.md` in `out` are rewritten after each
/// measurement, so an interrupted suite keeps what it measured. `command` is how the suite was
/// invoked, for the summary; `note` hears each case as it starts.
pub fn run(
    suite: &SuiteFile,
    out: &Path,
    command: &str,
    exe: &Path,
    mut note: impl FnMut(&str),
) -> Result<Vec<Measurement>> {
    let mut measurements = Vec::new();
    let mut skipped: Vec<&str> = Vec::new();
    for round in 1..=suite.rounds {
        for case in &suite.cases {
            if skipped.contains(&case.name.as_str()) {
                continue;
            }
            note(&format!("round {round}/{}: {}", suite.rounds, case.name));
            match measure(case, exe) {
                Ok(report) => measurements.push(Measurement {
                    case: case.name.clone(),
                    round,
                    report,
                }),
                Err(reason) if case.optional => {
                    note(&format!("skipping {}: {reason}", case.name));
                    skipped.push(&case.name);
                    let report = serde_json::json!({ "skipped": reason });
                    measurements.push(Measurement {
                        case: case.name.clone(),
                        round,
                        report,
                    });
                }
                Err(reason) => {
                    write(out, suite, command, &measurements)?;
                    return Err(RunError::Invalid(format!("case `{}`: {reason}", case.name)));
                }
            }
            write(out, suite, command, &measurements)?;
        }
    }
    Ok(measurements)
}

/// Run one case and read the JSON report it prints.
fn measure(case: &Case, exe: &Path) -> std::result::Result<Value, String> {
    let (program, args) = match &case.command {
        CaseCommand::Archzoo(args) => (exe.display().to_string(), {
            let mut args = args.clone();
            args.push("--json".into());
            args
        }),
        CaseCommand::External(argv) => (argv[0].clone(), argv[1..].to_vec()),
    };
    let output = std::process::Command::new(&program)
        .args(&args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` exited with {}",
            args.join(" "),
            output.status
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("`{program}` did not print one JSON report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUITE: &str = r#"
        description = "two archs"
        rounds = 2
        [[case]]
        name = "a"
        bench = "train-step"
        arch = "mamba"
        layers = 3
        causal = true
        positions = [64, 1024]
        [[case]]
        name = "b"
        command = ["peer", "--steps", "3"]
        optional = true
        [[ratio]]
        of = "a"
        to = "b"
    "#;

    #[test]
    fn cases_become_flags_and_ratios_name_cases() {
        let suite = SuiteFile::parse(SUITE, "s.toml").unwrap();
        assert_eq!(suite.rounds, 2);
        let CaseCommand::Archzoo(args) = &suite.cases[0].command else {
            panic!()
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(args[..2], ["bench", "train-step"]);
        for pair in [
            ["--arch", "mamba"],
            ["--layers", "3"],
            ["--positions", "64,1024"],
        ] {
            assert!(args.windows(2).any(|w| w == pair), "{args:?}");
        }
        assert!(args.contains(&"--causal"));
        assert_eq!(
            suite.cases[1].command,
            CaseCommand::External(vec!["peer".into(), "--steps".into(), "3".into()])
        );
        let bad = SUITE.replace("to = \"b\"", "to = \"c\"");
        assert!(
            SuiteFile::parse(&bad, "s.toml")
                .unwrap_err()
                .to_string()
                .contains("`to`")
        );
        let bad = SUITE.replace("rounds = 2", "rounds = 0");
        assert!(SuiteFile::parse(&bad, "s.toml").is_err());
        let bad = SUITE.replace("name = \"b\"", "name = \"a\"");
        assert!(
            SuiteFile::parse(&bad, "s.toml")
                .unwrap_err()
                .to_string()
                .contains("two cases")
        );
    }

    #[test]
    fn summary_takes_medians_over_rounds_and_ratios_within_rounds() {
        let suite = SuiteFile::parse(SUITE, "s.toml").unwrap();
        let m = |case: &str, round, ms: f64| Measurement {
            case: case.into(),
            round,
            report: json!({"step": {"median_ms": ms}, "params": 10, "peak_rss_bytes": 2_000_000}),
        };
        let ms = [
            m("a", 1, 100.0),
            m("b", 1, 50.0),
            m("a", 2, 300.0),
            m("b", 2, 100.0),
        ];
        let text = summary(&suite, "archzoo bench suite s.toml", &ms);
        // a: rounds 100 and 300, median 200; ratios 2 and 3, median 2.5.
        assert!(
            text.contains("| a | 10 | 200.0 | 100.0–300.0 | 100.0, 300.0 | - | 2.0 |"),
            "{text}"
        );
        assert!(text.contains("| a / b | 2.00, 3.00 | **2.50** |"), "{text}");
    }

    #[test]
    fn utilisation_is_read_against_the_best_peak_case() {
        let suite = SuiteFile::parse(
            &SUITE.replace("rounds = 2", "rounds = 2\npeak = [\"b\"]"),
            "s.toml",
        )
        .unwrap();
        assert_eq!(suite.peak, ["b"]);
        let m = |case: &str, round, gflops: f64| Measurement {
            case: case.into(),
            round,
            report: json!({"step": {"median_ms": 1.0}, "gflops": gflops}),
        };
        let ms = [
            m("a", 1, 10.0),
            m("b", 1, 40.0),
            m("a", 2, 30.0),
            m("b", 2, 40.0),
        ];
        let text = summary(&suite, "archzoo bench suite s.toml", &ms);
        // a: median 20 GFLOP/s against b's 40.
        assert!(text.contains("Peak: **40.0 GFLOP/s**"), "{text}");
        assert!(text.contains("| 20.0 | 50.0% | - |"), "{text}");
        let bad = SUITE.replace("rounds = 2", "rounds = 2\npeak = [\"c\"]");
        assert!(
            SuiteFile::parse(&bad, "s.toml")
                .unwrap_err()
                .to_string()
                .contains("`peak`")
        );
    }
}
