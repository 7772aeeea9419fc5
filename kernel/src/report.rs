//! From the roles' lines to one table row per scenario and mode, and tether's contract checks.
//!
//! Line kinds (after the timestamp): servers write `R <tag> <id>` per message they processed,
//! `session`, `link <tag> disconnected|resumed`, `end <tag> closed|lost ...` (tether) and `abnormal
//! <conn> <why>` / `bye <conn>` (plain); clients write `err ...` (an error the application saw),
//! `link`, `lost <k> ... exact= confirmed= unconfirmed=` and `closed <k>` (tether), and finally
//! `done finished= sent= ...`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use crate::common::{parse_ranges, IDLE_TIMEOUT};
use crate::faults::Scenario;

/// Slack on top of `idle_timeout` for "noticed within idle_timeout", measured from the fault's
/// start: frames already in flight, and new segments the peer's TCP still sends until its first
/// retransmission timeout (one-way faults), can reach a side a few hundred ms after that start.
const NOTICE_SLACK_S: f64 = 0.5;
/// Lines that mean tether (or the harness) broke an invariant outright.
const BAD_KINDS: [&str; 5] = ["gap", "corrupt", "seq-mismatch", "ack-error", "accept-error"];

/// Everything one mode's processes wrote during one scenario.
#[derive(Debug)]
pub struct Observed<'a> {
    /// The scenario.
    pub scenario: Scenario,
    /// `plain` or `tether`.
    pub mode: &'static str,
    /// When the clients started, the fault began, and it was healed (ms since the epoch).
    pub start: u64,
    /// See `start`.
    pub fault_at: u64,
    /// See `start`.
    pub healed_at: u64,
    /// The first server process was killed at `fault_at`.
    pub first_server_killed: bool,
    /// The client's lines.
    pub client: &'a [String],
    /// Each server process's lines (first host first; a restarted process after the killed one).
    pub servers: &'a [Vec<String>],
}

/// When a side first noticed the fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Notice {
    /// Seconds after the fault began.
    After(f64),
    /// It never did (during the run).
    Never,
    /// The side was killed by the fault.
    Killed,
}

/// One row of the results table.
#[derive(Debug)]
pub struct Row {
    /// Scenario name.
    pub scenario: &'static str,
    /// `plain` or `tether`.
    pub mode: &'static str,
    /// Messages the application was told were sent (plain: `write` returned Ok).
    pub sent: usize,
    /// Distinct messages the server application processed.
    pub delivered: usize,
    /// Extra copies processed within one session or connection.
    pub dup_in_session: usize,
    /// Extra copies from the application's own resending of messages handed back as unconfirmed.
    pub dup_after_resend: usize,
    /// Sent, never delivered, and never reported to the sender.
    pub silently_lost: usize,
    /// tether: messages handed back as unconfirmed (and sent again on a new session).
    pub handed_back: usize,
    /// Errors the client application saw (plain: failed calls; tether: sessions that ended lost).
    pub client_errors: usize,
    /// When the client noticed.
    pub client_noticed: Notice,
    /// When the server noticed.
    pub server_noticed: Notice,
    /// Seconds from the client's start until it finished, `None` if it did not.
    pub finished_after: Option<f64>,
    /// Ways tether broke its contract (always empty for plain: it has none to break).
    pub violations: Vec<String>,
}

struct Line<'a> {
    ts: u64,
    kind: &'a str,
    rest: Vec<&'a str>,
}

fn lines(raw: &[String]) -> Vec<Line<'_>> {
    raw.iter()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let ts = it.next()?.parse().ok()?;
            let kind = it.next()?;
            Some(Line { ts, kind, rest: it.collect() })
        })
        .collect()
}

fn kv<'a>(l: &Line<'a>, key: &str) -> Option<&'a str> {
    l.rest.iter().find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

fn ids(l: &Line<'_>, key: &str) -> Vec<u64> {
    kv(l, key).and_then(|s| parse_ranges(s).ok()).unwrap_or_default()
}

/// Counts and checks one mode of one scenario.
pub fn evaluate(o: &Observed<'_>) -> Row {
    let client = lines(o.client);
    let servers: Vec<Vec<Line<'_>>> = o.servers.iter().map(|s| lines(s)).collect();
    let tether = o.mode == "tether";
    let mut v = Vec::new();

    let done = client.iter().rfind(|l| l.kind == "done");
    let sent: HashSet<u64> = done.map(|d| ids(d, "sent")).unwrap_or_default().into_iter().collect();
    let total = done.map_or(0, |d| {
        let all = ["sent", "unsent", "resend"].iter().flat_map(|k| ids(d, k));
        all.collect::<HashSet<u64>>().len()
    });
    let finished = done.is_some_and(|d| kv(d, "finished") == Some("true"));

    // Deliveries: id -> the (process, session/connection) each copy was processed in.
    let mut copies: HashMap<u64, Vec<(usize, &str)>> = HashMap::new();
    for (p, s) in servers.iter().enumerate() {
        for l in s.iter().filter(|l| l.kind == "R" && l.rest.len() == 2) {
            if let Ok(id) = l.rest[1].parse() {
                copies.entry(id).or_default().push((p, l.rest[0]));
            }
        }
    }
    let delivered = copies.len();
    let mut dup_in_session = 0;
    let mut dup_total = 0;
    for c in copies.values() {
        dup_total += c.len() - 1;
        dup_in_session += c.len() - c.iter().collect::<HashSet<_>>().len();
    }
    let pending: HashSet<u64> =
        done.map(|d| ids(d, "resend")).unwrap_or_default().into_iter().collect();
    let silently_lost =
        sent.iter().filter(|id| !copies.contains_key(id) && !pending.contains(id)).count();

    let lost: Vec<&Line<'_>> = client.iter().filter(|l| l.kind == "lost").collect();
    let handed_back = lost.iter().map(|l| ids(l, "unconfirmed").len()).sum();
    let client_errors =
        if tether { lost.len() } else { client.iter().filter(|l| l.kind == "err").count() };

    let reference = if o.scenario.fault.is_burst() { o.start } else { o.fault_at };
    let client_noticed = first_notice(&client, reference, tether, true);
    let server_noticed = if o.first_server_killed {
        Notice::Killed
    } else {
        servers.first().map_or(Notice::Never, |s| first_notice(s, reference, tether, false))
    };
    let finished_after =
        done.filter(|_| finished).map(|d| d.ts.saturating_sub(o.start) as f64 / 1e3);

    if tether {
        check_fields(&client, &mut v);
        check_cross_session_copies(&copies, &lost, &mut v);
        if !finished {
            v.push("the client did not finish".into());
        }
        if silently_lost > 0 {
            v.push(format!("{silently_lost} messages silently lost"));
        }
        if delivered < total {
            v.push(format!("only {delivered} of {total} messages delivered"));
        }
        if dup_in_session > 0 {
            v.push(format!("{dup_in_session} duplicates within a session"));
        }
        check_lost_lists(&lost, &copies, &mut v);
        check_bad_lines(&client, &servers, &mut v);
        if !o.scenario.fault.is_burst() {
            check_clean_end(&client, &servers, &mut v);
        }
        if o.scenario.must_notice {
            let bound = IDLE_TIMEOUT.as_secs_f64() + NOTICE_SLACK_S;
            for (side, n) in [("client", client_noticed), ("server", server_noticed)] {
                match n {
                    Notice::After(s) if s <= bound => {}
                    Notice::Killed => {}
                    n => v.push(format!("{side} noticed the fault {n:?}, bound {bound:.1} s")),
                }
            }
        }
    }
    let _ = o.healed_at;
    Row {
        scenario: o.scenario.name,
        mode: o.mode,
        sent: sent.len(),
        delivered,
        dup_in_session,
        dup_after_resend: dup_total - dup_in_session,
        silently_lost,
        handed_back,
        client_errors,
        client_noticed,
        server_noticed,
        finished_after,
        violations: v,
    }
}

/// The first line at or after `since` that shows this side learned of trouble.
fn first_notice(ls: &[Line<'_>], since: u64, tether: bool, client: bool) -> Notice {
    let hit = |l: &Line<'_>| match (tether, client, l.kind) {
        (_, _, "link") => l.rest.get(1) == Some(&"disconnected"),
        (true, true, k) => matches!(k, "lost" | "send-refused" | "connect-failed" | "err"),
        (true, false, "end") => l.rest.get(1) == Some(&"lost"),
        (false, true, k) => k == "err",
        (false, false, k) => k == "abnormal",
        _ => false,
    };
    ls.iter()
        .find(|l| l.ts >= since && hit(l))
        .map_or(Notice::Never, |l| Notice::After((l.ts - since) as f64 / 1e3))
}

/// Every `Lost` handed back exactly the unacknowledged suffix (the client checked sequence
/// numbers and payloads: `exact=`), and everything before it was really delivered.
fn check_lost_lists(
    lost: &[&Line<'_>],
    copies: &HashMap<u64, Vec<(usize, &str)>>,
    v: &mut Vec<String>,
) {
    for l in lost {
        if kv(l, "exact") != Some("true") {
            v.push(format!(
                "session {:?}: the unconfirmed list is not the exact suffix",
                l.rest.first()
            ));
        }
        let missing = ids(l, "confirmed").into_iter().filter(|id| !copies.contains_key(id)).count();
        if missing > 0 {
            v.push(format!("{missing} messages confirmed but never delivered"));
        }
    }
}

/// Every id list the client reported parses: a malformed one would make the counts above
/// vacuous (an unparseable `sent=` would mean nothing was sent, so nothing could be lost).
fn check_fields(client: &[Line<'_>], v: &mut Vec<String>) {
    const KEYS: [&str; 5] = ["sent", "unsent", "resend", "unconfirmed", "confirmed"];
    for l in client {
        for key in KEYS {
            if let Some(Err(e)) = kv(l, key).map(parse_ranges) {
                v.push(format!("malformed {key}= on a {} line: {e}", l.kind));
            }
        }
    }
}

/// A message processed in two sessions must have been handed back by a `Lost` in between (the
/// application resent it): a copy in a second session otherwise means a message went out twice.
fn check_cross_session_copies(
    copies: &HashMap<u64, Vec<(usize, &str)>>,
    lost: &[&Line<'_>],
    v: &mut Vec<String>,
) {
    let handed_back: HashSet<u64> = lost.iter().flat_map(|l| ids(l, "unconfirmed")).collect();
    let unexplained = copies
        .iter()
        .filter(|(id, c)| c.iter().collect::<HashSet<_>>().len() > 1 && !handed_back.contains(id))
        .count();
    if unexplained > 0 {
        v.push(format!("{unexplained} messages processed in two sessions without a Lost between"));
    }
}

fn check_bad_lines(client: &[Line<'_>], servers: &[Vec<Line<'_>>], v: &mut Vec<String>) {
    for l in client.iter().chain(servers.iter().flatten()) {
        if BAD_KINDS.contains(&l.kind) {
            v.push(format!("{} {}", l.kind, l.rest.join(" ")));
        }
    }
}

/// The client's last session closed cleanly, and so did the server's side of it.
fn check_clean_end(client: &[Line<'_>], servers: &[Vec<Line<'_>>], v: &mut Vec<String>) {
    if !client.iter().any(|l| l.kind == "closed") {
        v.push("the client's last session did not close cleanly".into());
        return;
    }
    let Some(sid) = client.iter().rfind(|l| l.kind == "session").and_then(|l| l.rest.get(1)) else {
        v.push("no session line from the client".into());
        return;
    };
    let closed = servers.iter().flatten().any(|l| {
        l.kind == "end" && l.rest.first() == Some(sid) && l.rest.get(1) == Some(&"closed")
    });
    if !closed {
        v.push(format!("the server's side of session {sid} did not end closed"));
    }
}

fn secs(n: Notice) -> String {
    match n {
        Notice::After(s) => format!("{s:.2} s"),
        Notice::Never => "never".into(),
        Notice::Killed => "(killed)".into(),
    }
}

/// One line per row, for progress output.
pub fn one_line(r: &Row) -> String {
    let mut s = format!(
        "    {:<7} sent {:>5} delivered {:>5} dup {}+{} silently lost {:>5} handed back {:>4} \
         errors {:>4} noticed c {} / s {}",
        r.mode,
        r.sent,
        r.delivered,
        r.dup_in_session,
        r.dup_after_resend,
        r.silently_lost,
        r.handed_back,
        r.client_errors,
        secs(r.client_noticed),
        secs(r.server_noticed),
    );
    for x in &r.violations {
        let _ = write!(s, "\n      CONTRACT VIOLATION: {x}");
    }
    s
}

/// The results as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| fault | mode | sent | delivered | duplicated | silently lost | handed back unconfirmed \
         | errors the client saw | client noticed after | server noticed after | finished after \
         | contract |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    for r in rows {
        let tether = r.mode == "tether";
        let dup = if r.dup_after_resend > 0 {
            format!("{} (+{} resent after Lost)", r.dup_in_session, r.dup_after_resend)
        } else {
            r.dup_in_session.to_string()
        };
        let contract = match (tether, r.violations.is_empty()) {
            (false, _) => "none".to_string(),
            (true, true) => "held".to_string(),
            (true, false) => format!("**BROKEN**: {}", r.violations.join("; ")),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.mode,
            r.sent,
            r.delivered,
            dup,
            r.silently_lost,
            if tether { r.handed_back.to_string() } else { "—".into() },
            r.client_errors,
            secs(r.client_noticed),
            secs(r.server_noticed),
            r.finished_after.map_or("did not".into(), |s| format!("{s:.1} s")),
            contract,
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_copy_in_a_second_session_needs_a_lost_that_handed_it_back() {
        let mut copies: HashMap<u64, Vec<(usize, &str)>> = HashMap::new();
        copies.insert(1, vec![(0, "s1")]);
        copies.insert(2, vec![(0, "s1"), (1, "s2")]);
        let client = raw(&["10 lost s1 unconfirmed=3-4"]);
        let client = lines(&client);
        let lost: Vec<&Line<'_>> = client.iter().collect();
        let mut v = Vec::new();
        check_cross_session_copies(&copies, &lost, &mut v);
        assert_eq!(v.len(), 1, "message 2 went out twice without being handed back: {v:?}");
        let client = raw(&["10 lost s1 unconfirmed=2-4"]);
        let client = lines(&client);
        let lost: Vec<&Line<'_>> = client.iter().collect();
        let mut v = Vec::new();
        check_cross_session_copies(&copies, &lost, &mut v);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn a_malformed_id_list_is_a_violation() {
        let client = raw(&["10 done finished=true sent=0-x unsent=-", "11 lost s1 unconfirmed=5"]);
        let mut v = Vec::new();
        check_fields(&lines(&client), &mut v);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("sent="), "{v:?}");
    }
}
