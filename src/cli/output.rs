//! Human output: aligned tables and readable sizes. Machine output is `--json`.

/// Prints rows as a table with a header line; columns are left-aligned and padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", table_text(header, rows));
}

/// [`table`] as text.
pub fn table_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
    out
}

/// 1536 -> "1.5 KiB".
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use offsite::units::parse_size;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q`: commands that act (backup, restore, copy, forget, prune, init, a job's run)
/// print no summary; what went wrong still goes to stderr and the exit code.
pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A span of time as people read it, its two largest units: "45s", "1h 25m",
/// "3d 4h", "2w 1d".
pub fn span(secs: i64) -> String {
    const UNITS: [(i64, &str); 5] = [
        (604_800, "w"),
        (86_400, "d"),
        (3600, "h"),
        (60, "m"),
        (1, "s"),
    ];
    let sign = if secs < 0 { "-" } else { "" };
    let mut rest = secs.unsigned_abs() as i64;
    let mut parts = Vec::new();
    for (n, u) in UNITS {
        if rest >= n && parts.len() < 2 {
            parts.push(format!("{}{u}", rest / n));
            rest %= n;
        } else if !parts.is_empty() {
            // Only adjacent units: "1w 3h" would read as a typo for "1w 3d".
            break;
        }
    }
    match parts.is_empty() {
        true => "0s".into(),
        false => format!("{sign}{}", parts.join(" ")),
    }
}

/// "1 point", "3 points".
pub fn plural(n: u64, one: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    }
}

/// A moment in the local time zone, to the second, with its offset.
pub fn local_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

pub fn json<T: serde::Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("output serialises")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("x").is_err());
        assert_eq!(size(1536), "1.5 KiB");
    }

    #[test]
    fn spans() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(1799), "29m 59s");
        assert_eq!(span(84_001), "23h 20m");
        assert_eq!(span(1405 * 60), "23h 25m");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(7 * 86_400 + 3 * 3600), "1w");
        assert_eq!(span(9 * 86_400), "1w 2d");
        assert_eq!(span(-90), "-1m 30s");
        assert_eq!(plural(1, "point"), "1 point");
        assert_eq!(plural(0, "point"), "0 points");
    }
}
