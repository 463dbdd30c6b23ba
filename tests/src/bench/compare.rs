//! `crossline-bench compare`: the sync, sms and web benchmarks of two builds
//! (BASE and HEAD, each its own tree's `crossline-bench`) run alternately in
//! one invocation, `--runs` times each, and every figure given as min /
//! median / max per build with the HEAD / BASE ratio (section "compare").
//!
//! Each build's own binary runs each benchmark (its harness may differ from
//! this one), writing into a scratch file (`--out`), and the figures are read
//! from the markdown table it prints. Runs alternate BASE, HEAD, HEAD, BASE,
//! ... so a machine getting busier or quieter during the invocation does not
//! favour one side. `scripts/bench compare [BASE_REV]` builds both and calls
//! this.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;

pub struct Options {
    /// BASE's and HEAD's `crossline-bench`, with the label of each (a commit).
    pub base: (PathBuf, String),
    pub head: (PathBuf, String),
    pub runs: usize,
    /// Which benchmarks (of sync, sms, web).
    pub only: Vec<String>,
    /// `web --conversations` (the web benchmark's default is 100,000).
    pub web_conversations: usize,
}

/// Which way a figure is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

/// One figure read from a benchmark's printed table: the row whose first
/// cell starts with `row` (or, for `row` starting with "prose:", the line
/// starting with the rest), and its `col`-th value cell (1 = first after the
/// label; in prose, the number after `col_word`).
struct Figure {
    bench: &'static str,
    name: &'static str,
    row: &'static str,
    col: usize,
    prose_word: Option<&'static str>,
    unit: &'static str,
    better: Better,
}

const fn cell(
    bench: &'static str,
    name: &'static str,
    row: &'static str,
    col: usize,
    unit: &'static str,
    better: Better,
) -> Figure {
    Figure {
        bench,
        name,
        row,
        col,
        prose_word: None,
        unit,
        better,
    }
}

#[rustfmt::skip]
const FIGURES: &[Figure] = &[
    cell("sync", "sync: durable events/s ingested by mgmt", "durable events/s ingested by mgmt", 1, "", Better::Higher),
    cell("sync", "sync: latency append → mgmt commit, p50", "latency append → mgmt commit, p50", 1, " ms", Better::Lower),
    cell("sync", "sync: latency append → mgmt commit, p99", "latency append → mgmt commit, p99", 1, " ms", Better::Lower),
    cell("sync", "sync: mgmt's store alone with the projection, events/s", "mgmt's store alone: the same events ingested directly", 1, "", Better::Higher),
    cell("sms", "sms: `+CMTI` → SSE event, p50", "Crossline: `+CMTI` → SSE event", 1, " ms", Better::Lower),
    cell("sms", "sms: `+CMTI` → SSE event, p99", "Crossline: `+CMTI` → SSE event", 2, " ms", Better::Lower),
    cell("sms", "sms: `+CMTI` → visible in the API, p50", "Crossline: `+CMTI` → visible in the API", 1, " ms", Better::Lower),
    cell("sms", "sms: `+CMTI` → visible in the API, p99", "Crossline: `+CMTI` → visible in the API", 2, " ms", Better::Lower),
    cell("web", "web: agent inbox \"my teams\", p50", "agent inbox, \"my teams\"", 1, " ms", Better::Lower),
    cell("web", "web: agent inbox \"my teams\", p99", "agent inbox, \"my teams\"", 2, " ms", Better::Lower),
    cell("web", "web: agent inbox page, p50", "agent inbox page", 1, " ms", Better::Lower),
    cell("web", "web: agent inbox page, p99", "agent inbox page", 2, " ms", Better::Lower),
    cell("web", "web: supervisor inbox \"all\", p50", "supervisor inbox, \"all\"", 1, " ms", Better::Lower),
    cell("web", "web: supervisor inbox \"all\", p99", "supervisor inbox, \"all\"", 2, " ms", Better::Lower),
    cell("web", "web: conversation view, p50", "conversation view", 1, " ms", Better::Lower),
    cell("web", "web: conversation view, p99", "conversation view", 2, " ms", Better::Lower),
    Figure {
        bench: "web",
        name: "web: live update to 1000 desk streams, p50",
        row: "Live updates:",
        col: 0,
        prose_word: Some("p50"),
        unit: " ms",
        better: Better::Lower,
    },
    Figure {
        bench: "web",
        name: "web: live update to 1000 desk streams, p99",
        row: "Live updates:",
        col: 0,
        prose_word: Some("p99"),
        unit: " ms",
        better: Better::Lower,
    },
];

/// The first number in `s` (digits, one dot; thousands separators are not
/// used by the benchmarks).
fn first_number(s: &str) -> Option<f64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let rest = s.get(start..)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest.get(..end)?.trim_end_matches('.').parse().ok()
}

/// `f`'s value in a benchmark's printed output, if it is there.
fn read(f: &Figure, output: &str) -> Option<f64> {
    if let Some(word) = f.prose_word {
        let line = output.lines().find(|l| l.starts_with(f.row))?;
        let at = line.find(&format!(" {word} "))?;
        return first_number(line.get(at + word.len() + 2..)?);
    }
    output.lines().find_map(|l| {
        let cells: Vec<&str> = l.trim().strip_prefix('|')?.split('|').collect();
        let label = cells.first()?.trim().trim_matches('*');
        if !label.starts_with(f.row) {
            return None;
        }
        first_number(cells.get(f.col)?)
    })
}

/// Command-line arguments of one run of `bench` by one build.
fn bench_args(bench: &str, opts: &Options, out: &Path) -> Vec<String> {
    let mut a: Vec<String> = vec![bench.into()];
    match bench {
        // One run per invocation here (an older harness ignores --runs).
        "sync" => a.extend(["--runs".into(), "1".into()]),
        // gammu-smsd is not compared; the harness wants at least one.
        "sms" => a.extend(["--gammu-messages".into(), "1".into()]),
        "web" => a.extend(["--conversations".into(), opts.web_conversations.to_string()]),
        _ => {}
    }
    a.extend(["--out".into(), out.display().to_string()]);
    a
}

/// Runs one build's `bench` once; its printed output.
async fn run_one(bin: &Path, bench: &str, opts: &Options, scratch: &Path) -> Result<String> {
    let out = scratch.join(format!("{bench}.md"));
    let mut cmd = tokio::process::Command::new(bin);
    cmd.args(bench_args(bench, opts, &out))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // `web` keeps a thousand streams open: scripts/bench raises the limit
    // on open files for this process, and the children inherit it.
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} {bench}", bin.display()))?;
    let done = child.wait_with_output().await?;
    if !done.status.success() {
        bail!(
            "{} {bench} failed ({}); its log is above",
            bin.display(),
            done.status
        );
    }
    Ok(String::from_utf8_lossy(&done.stdout).into_owned())
}

/// Values of every figure of `bench`, per run, for one side.
type Series = Vec<Vec<Option<f64>>>;

pub async fn run(opts: &Options) -> Result<String> {
    let scratch = tempfile::tempdir()?;
    let benches: Vec<&str> = ["sync", "sms", "web"]
        .into_iter()
        .filter(|b| opts.only.iter().any(|o| o == b))
        .collect();
    if benches.is_empty() {
        bail!("--only names none of sync, sms, web");
    }
    let load_before = super::load_average();
    // [side][figure][run]
    let mut values: [Series; 2] = [
        vec![Vec::new(); FIGURES.len()],
        vec![Vec::new(); FIGURES.len()],
    ];
    for run in 0..opts.runs {
        for bench in &benches {
            // BASE first on even runs, HEAD first on odd ones.
            let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
            for side in order {
                let (bin, label) = if side == 0 { &opts.base } else { &opts.head };
                eprintln!(
                    "compare: run {}/{} of {bench} on {} ({label})",
                    run + 1,
                    opts.runs,
                    if side == 0 { "BASE" } else { "HEAD" }
                );
                let dir = scratch.path().join(format!("{side}-{run}"));
                std::fs::create_dir_all(&dir)?;
                let output = run_one(bin, bench, opts, &dir).await?;
                for (i, f) in FIGURES.iter().enumerate() {
                    if f.bench == *bench
                        && let Some(v) = values.get_mut(side).and_then(|s| s.get_mut(i))
                    {
                        v.push(read(f, &output));
                    }
                }
            }
        }
    }
    Ok(section(opts, &benches, &values, &load_before))
}

fn section(opts: &Options, benches: &[&str], values: &[Series; 2], load_before: &str) -> String {
    let fmt = |v: f64, unit: &str| {
        if unit.is_empty() {
            format!("{v:.0}")
        } else {
            format!("{v:.1}{unit}")
        }
    };
    let mut s = format!(
        "## compare\n\n`scripts/bench compare {base}` — BASE {base} and HEAD {head}, each built \
         in release and running its own `crossline-bench` ({}), alternately in one invocation \
         (BASE then HEAD, then HEAD then BASE, ...): {runs} runs of each. Each figure is min / \
         median / max over the runs; the ratio is HEAD / BASE computed within each pair of runs \
         (both sides measured back to back), then summarised; a ratio above 1 is better for a \
         figure marked ↑, below 1 for one marked ↓.{web}\n\n\
         | figure | BASE | HEAD | HEAD / BASE |\n|---|---|---|---|\n",
        benches.join(", "),
        base = opts.base.1,
        head = opts.head.1,
        runs = opts.runs,
        web = if benches.contains(&"web") {
            format!(
                " web: {} conversations of 10 messages.",
                opts.web_conversations
            )
        } else {
            String::new()
        },
    );
    for (i, f) in FIGURES.iter().enumerate() {
        if !benches.contains(&f.bench) {
            continue;
        }
        let side = |k: usize| -> Vec<Option<f64>> {
            values
                .get(k)
                .and_then(|s| s.get(i))
                .cloned()
                .unwrap_or_default()
        };
        let (b, h) = (side(0), side(1));
        let present = |v: &[Option<f64>]| v.iter().flatten().copied().collect::<Vec<f64>>();
        let show = |v: &[f64]| {
            if v.is_empty() {
                return "not reported".to_string();
            }
            let (lo, mid, hi) = super::spread(v);
            format!(
                "{} / **{}** / {}",
                fmt(lo, f.unit),
                fmt(mid, f.unit),
                fmt(hi, f.unit)
            )
        };
        let ratios: Vec<f64> = b
            .iter()
            .zip(&h)
            .filter_map(|(b, h)| Some((*h)? / (*b)?))
            .filter(|r| r.is_finite())
            .collect();
        let ratio = if ratios.is_empty() {
            "—".to_string()
        } else {
            let (lo, mid, hi) = super::spread(&ratios);
            format!("{lo:.2} / **{mid:.2}** / {hi:.2}")
        };
        let arrow = match f.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
        };
        s += &format!(
            "| {} {arrow} | {} | {} | {ratio} |\n",
            f.name,
            show(&present(&b)),
            show(&present(&h))
        );
    }
    s += &format!(
        "\nThe machine's 1-minute load average was {load_before} before the runs and {} after \
         (other work on it shares the 2 cores).\n",
        super::load_average()
    );
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_table_cells_and_prose() {
        let out = "| figure | min | median | max |\n\
                   | durable events/s ingested by mgmt (appended) | 37585 | 41439 | 45009 |\n\
                   | Crossline: `+CMTI` → SSE event | 1.6 ms | 2.3 ms | 100 |\n\
                   Live updates: 1000 agents; 30000 deliveries): p50 23.3 ms, p99 118.6 ms, max 1 ms.\n";
        let get = |name: &str| read(FIGURES.iter().find(|f| f.name == name).unwrap(), out);
        assert_eq!(
            get("sync: durable events/s ingested by mgmt"),
            Some(37585.0)
        );
        assert_eq!(get("sms: `+CMTI` → SSE event, p99"), Some(2.3));
        assert_eq!(
            get("web: live update to 1000 desk streams, p99"),
            Some(118.6)
        );
        assert_eq!(get("web: conversation view, p50"), None);
    }
}
