//! `offsite forget`: applies a retention policy — the newest N points, and weekly,
//! monthly and yearly (GFS) points — to a repository's machines and deletes the points it
//! does not keep; `--dry-run` only says which.

use std::process::ExitCode;

use chrono::Weekday;

use offsite::retention::{self, ForgetOptions, MonthPoint, Policy};

use super::PasswordFile;
use super::output::{json, table};
use super::repos::open;

#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    /// Keep the newest N restore points of each machine.
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Keep one point a week for the last N weeks (the first point on or after --weekly-on).
    #[arg(long, value_name = "N")]
    pub weekly: Option<u32>,
    /// The day a week's point is taken: mon … sun.
    #[arg(long, value_name = "DAY", default_value = "sun")]
    pub weekly_on: Weekday,
    /// Keep one point a month for the last N months.
    #[arg(long, value_name = "N")]
    pub monthly: Option<u32>,
    /// Which point is a month's: its first or its last.
    #[arg(long, value_name = "first|last", default_value = "first")]
    pub monthly_on: MonthPoint,
    /// Keep one point a year for the last N years (the first point on or after the 1st
    /// of --yearly-in).
    #[arg(long, value_name = "N")]
    pub yearly: Option<u32>,
    /// The month (1–12) a year's point is taken from.
    #[arg(long, value_name = "MONTH", default_value_t = 1)]
    pub yearly_in: u32,
    /// Only these machines (name or glob, repeatable); default: every machine.
    #[arg(long = "machine", value_name = "NAME")]
    pub machines: Vec<String>,
    /// Say what would be forgotten; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: ForgetArgs, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    if a.keep.is_none() && a.weekly.is_none() && a.monthly.is_none() && a.yearly.is_none() {
        anyhow::bail!(
            "say what to keep: --keep N and/or --weekly N, --monthly N, --yearly N \
             (nothing is forgotten without a policy)"
        );
    }
    let policy = Policy {
        keep: a.keep.unwrap_or(0),
        weekly: a.weekly.unwrap_or(0),
        weekly_on: a.weekly_on,
        monthly: a.monthly.unwrap_or(0),
        monthly_on: a.monthly_on,
        yearly: a.yearly.unwrap_or(0),
        yearly_in: a.yearly_in,
    };
    let r = open(&a.repo, pwf).await?;
    let opts = ForgetOptions {
        policy,
        machines: a.machines,
        dry_run: a.dry_run,
    };
    let report = retention::forget(&r, &opts, &chrono::Local).await?;
    if a.json {
        json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    if super::output::quiet() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    for m in &report.machines {
        let mut all: Vec<(chrono::DateTime<chrono::Utc>, Vec<String>)> = Vec::new();
        for k in &m.kept {
            let mut why = k
                .reasons
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>();
            for f in &k.flagged {
                why.push(format!(
                    "{} flag set until {}",
                    f.kind,
                    f.until.format("%Y-%m-%d")
                ));
            }
            all.push((k.time, vec![k.id.short(), "keep".into(), why.join(", ")]));
        }
        for f in &m.forgotten {
            let what = if report.dry_run {
                "would forget"
            } else {
                "forgotten"
            };
            all.push((f.time, vec![f.id.short(), what.into(), String::new()]));
        }
        for l in &m.locked {
            all.push((
                l.time,
                vec![
                    l.id.short(),
                    "keep".into(),
                    format!(
                        "let go, but locked until {}",
                        l.locked_until.format("%Y-%m-%d")
                    ),
                ],
            ));
        }
        all.sort_by_key(|(t, _)| *t);
        for (t, cells) in all {
            let local = t.with_timezone(&chrono::Local);
            let mut row = vec![
                m.machine.clone(),
                local.format("%Y-%m-%d %H:%M").to_string(),
            ];
            row.extend(cells);
            rows.push(row);
        }
    }
    table(&["MACHINE", "TIME", "POINT", "ACTION", "KEPT AS"], &rows);
    if let Some(h) = &report.locks {
        println!(
            "locks: {} object(s) of {} flagged point(s) looked at, {} extended to their period",
            h.looked, h.points, h.extended
        );
    }
    println!(
        "{} point(s) kept ({} GFS flag(s) {}), {} {} in {}{}",
        report.kept(),
        report.flagged(),
        if report.dry_run { "to set" } else { "set" },
        report.forgotten(),
        if report.dry_run {
            "would be forgotten"
        } else {
            "forgotten"
        },
        report.repository,
        if report.dry_run || report.forgotten() == 0 {
            String::new()
        } else {
            "; `offsite prune` frees the data only they used".into()
        }
    );
    Ok(ExitCode::SUCCESS)
}
