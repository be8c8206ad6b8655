//! `offsite job simulate`: what a year (or `--days`) of a job keeps and costs — run
//! through the job's own schedule, retention, prune and locks against a model of its
//! target (`offsite::job::simulate`) — as a monthly table, the points kept at the end,
//! and per day as CSV, JSON or an SVG chart.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use offsite::job::config::Job;
use offsite::job::simulate::{self, SimOptions, Simulation};

use super::super::output::{json, local_time, plural, size, table};
use super::{chosen, load_valid};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Only this job.
    #[arg(long, value_name = "NAME")]
    pub job: Option<String>,
    /// How many days to simulate.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    /// The share of a machine's data that changes a day (e.g. 2%); default: measured
    /// from the sources' recent points, else 2%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    pub daily_change: Option<f64>,
    /// Simulate this many machines alike (with --size) instead of the sources' own.
    #[arg(long, value_name = "N", requires = "size")]
    pub machines: Option<usize>,
    /// Each machine's size as stored (e.g. 500GiB); default: measured from the sources.
    #[arg(long, value_name = "SIZE", value_parser = super::super::output::parse_size)]
    pub size: Option<u64>,
    /// When the machines' daily backups are made (local time, HH:MM); default: an hour
    /// before the job's intervals start.
    #[arg(long, value_name = "HH:MM", value_parser = parse_time)]
    pub backup_at: Option<chrono::NaiveTime>,
    /// Price the target as this provider and class (s3, s3:GLACIER_IR, azure:Cool…),
    /// e.g. for a folder target that stands in for a bucket.
    #[arg(long, value_name = "PROVIDER[:CLASS]")]
    pub price_as: Option<String>,
    /// A price table (default: the built-in one, docs/prices.toml; or OFFSITE_PRICES).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Per day, as CSV, to this file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// A chart of stored bytes and monthly cost, as SVG, to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let n: f64 =
        s.trim().trim_end_matches('%').parse().map_err(|_| {
            format!("{s:?} is not a share like 2% (of a machine's data changed a day)")
        })?;
    match (0.0..=100.0).contains(&n) {
        true => Ok(n / 100.0),
        false => Err(format!("{s}: between 0% and 100%")),
    }
}

fn parse_time(s: &str) -> Result<chrono::NaiveTime, String> {
    chrono::NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?}: a time, HH:MM"))
}

pub(super) async fn simulate(a: SimulateArgs) -> anyhow::Result<ExitCode> {
    let file = load_valid(&a.config)?;
    let prices = offsite::prices::Prices::load(a.prices.as_deref())?;
    let clock: std::sync::Arc<dyn offsite::clock::Clock> =
        std::sync::Arc::new(offsite::clock::SystemClock);
    let mut all = Vec::new();
    for job in chosen(&file, a.job.as_deref(), &a.config)? {
        let measured = match (a.machines, a.size) {
            (Some(_), Some(_)) => Vec::new(),
            _ => simulate::size::measure(job, &clock).await.map_err(|e| {
                anyhow::anyhow!(
                    "job {}: sizing from its sources: {e} (or give --machines N --size SIZE)",
                    job.name
                )
            })?,
        };
        let machines = simulate::size::machines(measured, a.machines, a.size, a.daily_change);
        let opts = SimOptions {
            start: clock.now(),
            days: a.days,
            machines,
            backup_at: a.backup_at.unwrap_or_else(|| default_backup_at(job)),
            prices: price_class(job, &prices, a.price_as.as_deref())?,
        };
        all.push(simulate::simulate(job, &opts, &chrono::Local));
    }
    if let Some(path) = &a.csv {
        write(path, &all.iter().map(csv).collect::<String>())?;
    }
    if let Some(path) = &a.svg {
        let sim = all
            .first()
            .ok_or_else(|| anyhow::anyhow!("no job to chart"))?;
        write(path, &svg(sim))?;
    }
    match a.json {
        true => json(&all),
        false => all.iter().for_each(print),
    }
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// An hour before the job's intervals start (so each interval has a fresh point).
fn default_backup_at(job: &Job) -> chrono::NaiveTime {
    match &job.mode {
        offsite::job::Mode::Periodic { intervals } => {
            intervals.start_at - chrono::Duration::hours(1)
        }
        offsite::job::Mode::Immediate { .. } => chrono::NaiveTime::MIN,
    }
}

/// The class the job's data packs are billed at: the target's provider and data class,
/// or what `--price-as` says.
fn price_class(
    job: &Job,
    prices: &offsite::prices::Prices,
    price_as: Option<&str>,
) -> anyhow::Result<Option<offsite::prices::Class>> {
    let (kind, class) = match price_as {
        Some(p) => {
            let (provider, class) = p.split_once(':').map_or((p, None), |(p, c)| (p, Some(c)));
            let kind = offsite::store::StoreKind::by_provider(provider).ok_or_else(|| {
                anyhow::anyhow!("--price-as {p}: a provider is s3 or azure, with :CLASS if wanted")
            })?;
            (kind, class.map(str::to_string))
        }
        None => match offsite::store::kind_of(&job.target.url) {
            Some(k) => (k, job.target.data_class.clone()),
            None => return Ok(None),
        },
    };
    if kind.provider_name().is_none() {
        return Ok(None);
    }
    match prices.class(kind, class.as_deref()) {
        Some(c) => Ok(Some(c.clone())),
        None => anyhow::bail!(
            "no price for {} class {}: see the price table (docs/prices.toml)",
            kind.provider_name().unwrap_or_default(),
            class.as_deref().unwrap_or("(default)")
        ),
    }
}

fn print(s: &Simulation) {
    let machines: Vec<String> = (s.machines.iter())
        .map(|m| {
            format!(
                "{} {} at {:.1} %/day",
                m.machine,
                size(m.size),
                m.change * 100.0
            )
        })
        .collect();
    println!(
        "job {}: {} simulated from {}; {}: {}",
        s.job,
        plural(s.days.len() as u64, "day"),
        s.days
            .first()
            .map(|d| d.date.to_string())
            .unwrap_or_default(),
        plural(s.machines.len() as u64, "machine"),
        machines.join(", ")
    );
    let rows: Vec<Vec<String>> = (s.months.iter())
        .map(|m| {
            vec![
                m.month.clone(),
                size(m.stored_bytes),
                m.puts.to_string(),
                m.gets.to_string(),
                format!("{:.2}", m.storage_usd),
                format!("{:.2}", m.requests_usd),
                format!("{:.2}", m.early_delete_usd),
                format!("{:.2}", m.usd),
            ]
        })
        .collect();
    table(
        &[
            "MONTH",
            "STORED",
            "PUT",
            "GET",
            "STORAGE $",
            "REQUESTS $",
            "EARLY DELETE $",
            "TOTAL $",
        ],
        &rows,
    );
    match s.priced {
        true => println!("total: ${:.2}", s.usd),
        false => {
            println!("total: no price for a folder target (--price-as s3 prices it as a bucket)")
        }
    }
    if let Some(last) = s.days.last() {
        let locked = last
            .locked_until
            .map(|u| format!(" until {}", local_time(u)));
        println!(
            "at the end: {} stored in {}, {} locked{}",
            size(last.stored_bytes),
            plural(last.objects, "object"),
            size(last.locked_bytes),
            locked.unwrap_or_default()
        );
    }
    for (machine, kept) in &s.kept {
        println!("{machine}: {} kept", plural(kept.len() as u64, "point"));
        for k in kept {
            println!("  {}  {}", local_time(k.time), k.reasons.join(", "));
        }
    }
}

/// Per day, one line: the figures, then the points kept per machine.
fn csv(s: &Simulation) -> String {
    let names: Vec<&String> = s.kept.keys().collect();
    let mut out = String::from(
        "job,date,stored_bytes,objects,locked_bytes,points_copied,bytes_written,puts,gets,pruned,usd",
    );
    for n in &names {
        let _ = write!(out, ",points_{n}");
    }
    out.push('\n');
    for d in &s.days {
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{:.4}",
            s.job,
            d.date,
            d.stored_bytes,
            d.objects,
            d.locked_bytes,
            d.points_copied,
            d.bytes_written,
            d.puts,
            d.gets,
            d.pruned,
            d.usd
        );
        for n in &names {
            let _ = write!(out, ",{}", d.points.get(*n).copied().unwrap_or(0));
        }
        out.push('\n');
    }
    out
}

/// Stored bytes per day (a line) over the monthly cost (bars), with their scales.
fn svg(s: &Simulation) -> String {
    const W: f64 = 800.0;
    const H: f64 = 300.0;
    const PAD: f64 = 60.0;
    let most = s
        .days
        .iter()
        .map(|d| d.stored_bytes)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let dear = s.months.iter().map(|m| m.usd).fold(0.0, f64::max).max(0.01);
    let n = s.days.len().max(2) as f64;
    let x = |i: f64| PAD + i / (n - 1.0) * (W - 2.0 * PAD);
    let y = |v: f64, top: f64| H - PAD - v / top * (H - 2.0 * PAD);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>job {}: stored bytes and monthly cost</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        s.job
    );
    let mut day = 0.0;
    for m in &s.months {
        let len = s
            .days
            .iter()
            .filter(|d| d.date.format("%Y-%m").to_string() == m.month)
            .count() as f64;
        let (x0, x1) = (x(day), x(day + len - 1.0));
        let top = y(m.usd, dear);
        let _ = writeln!(
            out,
            "<rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f3c98b\"><title>{}: ${:.2}</title></rect>",
            (x1 - x0).max(1.0),
            H - PAD - top,
            m.month,
            m.usd
        );
        day += len;
    }
    let line: Vec<String> = (s.days.iter().enumerate())
        .map(|(i, d)| format!("{:.1},{:.1}", x(i as f64), y(d.stored_bytes as f64, most)))
        .collect();
    let _ = writeln!(
        out,
        "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"{}\"/>",
        line.join(" ")
    );
    let _ = writeln!(
        out,
        "<text x=\"{PAD}\" y=\"20\" fill=\"#1f5fa8\">stored: up to {}</text>\n<text x=\"{}\" y=\"20\" fill=\"#b07a2a\" text-anchor=\"end\">monthly cost: up to ${dear:.2}</text>",
        size(most as u64),
        W - PAD
    );
    if let (Some(a), Some(b)) = (s.days.first(), s.days.last()) {
        let _ = writeln!(
            out,
            "<text x=\"{PAD}\" y=\"{}\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            H - PAD + 20.0,
            a.date,
            W - PAD,
            H - PAD + 20.0,
            b.date
        );
    }
    out.push_str("</svg>\n");
    out
}
