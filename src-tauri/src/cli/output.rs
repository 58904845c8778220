//! How the CLI prints accounts and history: JSON for programs, aligned text for people.

use std::io::Write;

use anyhow::Result;

use crate::engine::{AccountView, Entry, TakerRow};

pub fn accounts(views: &[AccountView], json: bool) -> Result<()> {
    // Buffered: stdout is line-buffered, and `list --json` with 100,000 accounts is 2.5
    // million lines, one write(2) each (1.7 s) without it.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, &views)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    if views.is_empty() {
        writeln!(out, "no accounts; add one to the config file")?;
        return Ok(out.flush()?);
    }
    writeln!(
        out,
        "{:<20} {:<20} {:<16} {:<22} {:<22} LAST ERROR",
        "NAME", "PROVIDER", "STATUS", "EXPIRES", "LAST REFRESH"
    )?;
    for v in views {
        writeln!(
            out,
            "{:<20} {:<20} {:<16} {:<22} {:<22} {}",
            v.name,
            v.provider,
            v.status.as_str(),
            v.expires_at
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            v.last_refresh
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            v.last_error.as_deref().unwrap_or("")
        )?;
        for note in notes(v) {
            writeln!(out, "    {note}")?;
        }
    }
    Ok(out.flush()?)
}

/// What a row cannot hold, one line each under it.
fn notes(v: &AccountView) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(by) = v.refresh_token_expires_at {
        notes.push(format!(
            "reconnect needed by {by}: the refresh token stops working then"
        ));
    }
    if let Some(q) = &v.quota {
        notes.push(format!(
            "WeChat fetches today: {} of {} ({}%); the count resets at {}",
            q.used,
            q.limit,
            q.used * 100 / q.limit.max(1),
            q.resets_at
        ));
    }
    notes
}

pub fn history(entries: &[Entry], json: bool) -> Result<()> {
    // Buffered: stdout is line-buffered, and `list --json` with 100,000 accounts is 2.5
    // million lines, one write(2) each (1.7 s) without it.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, entries)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    for e in entries {
        writeln!(
            out,
            "{} {}{:<20} {:<10} {:<16} {:>6}ms {}",
            e.at,
            e.host
                .as_deref()
                .map(|h| format!("{h} "))
                .unwrap_or_default(),
            e.account,
            e.trigger,
            e.outcome,
            e.duration_ms,
            e.message
                .as_deref()
                .or(e.expires_at.map(|_| ""))
                .unwrap_or("")
        )?;
    }
    Ok(out.flush()?)
}

/// Who took which tokens: one line per account and program, most recent first.
pub fn takers(rows: &[TakerRow], json: bool) -> Result<()> {
    // Buffered: stdout is line-buffered, and `list --json` with 100,000 accounts is 2.5
    // million lines, one write(2) each (1.7 s) without it.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(out.flush()?);
    }
    if rows.is_empty() {
        writeln!(out, "no token has been taken yet")?;
        return Ok(out.flush()?);
    }
    writeln!(
        out,
        "{:<16} {:<40} {:>6} {:>8} {:<10} {:<16} {:>7}  LAST",
        "ACCOUNT", "PROGRAM", "UID", "PID", "VIA", "KEY", "COUNT"
    )?;
    let unknown = || "?".to_owned();
    for r in rows {
        let program = match (&r.exe, &r.detail) {
            (Some(exe), Some(detail)) => format!("{exe} {detail}"),
            (Some(exe), None) => exe.clone(),
            (None, _) => r
                .command
                .clone()
                .unwrap_or_else(|| "(not known)".to_owned()),
        };
        writeln!(
            out,
            "{:<16} {:<40} {:>6} {:>8} {:<10} {:<16} {:>7}  {}",
            r.account,
            program,
            r.uid.map_or_else(unknown, |u| u.to_string()),
            r.pid.map_or_else(unknown, |p| p.to_string()),
            r.via.as_str(),
            r.key.as_deref().unwrap_or("-"),
            r.count,
            r.last_at
        )?;
    }
    Ok(out.flush()?)
}
