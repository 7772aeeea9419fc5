//! The tracing contract: one `tether_session` span per session on each side, carrying the
//! session's id (the client's recorded once the server issued it), and an event inside it at
//! each state change. A small subscriber records spans and events; it is installed globally
//! because the drivers log from the runtime's worker threads, so this file holds one test (a
//! second would fail to install its own subscriber and see the first one's log).

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::{config, payload, within};
use tether_tokio::{connect, AckMode, Config, End, Server};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// A span's name and its fields as text.
#[derive(Clone, Debug, Default)]
struct SpanInfo {
    name: &'static str,
    fields: BTreeMap<String, String>,
}

/// An event's message and its other fields as text.
type EventFields = (String, BTreeMap<String, String>);

#[derive(Default)]
struct Log {
    spans: Mutex<BTreeMap<u64, SpanInfo>>,
    /// Every event: what it says, and the span it happened in.
    events: Mutex<Vec<(EventFields, Option<SpanInfo>)>>,
}

struct Capture {
    next: AtomicU64,
    log: Arc<Log>,
}

thread_local! {
    /// Spans entered on this thread, innermost last.
    static ENTERED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut info = SpanInfo { name: attrs.metadata().name(), ..SpanInfo::default() };
        attrs.record(&mut Fields(&mut info.fields));
        self.log.spans.lock().unwrap().insert(id, info);
        Id::from_u64(id)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(info) = self.log.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut info.fields));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ENTERED.with(|e| e.borrow().last().copied());
        let span = span.and_then(|id| self.log.spans.lock().unwrap().get(&id).cloned());
        self.log.events.lock().unwrap().push(((message, fields), span));
    }

    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }

    fn exit(&self, span: &Id) {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            if let Some(i) = e.iter().rposition(|&id| id == span.into_u64()) {
                e.remove(i);
            }
        });
    }
}

impl Log {
    /// The session spans of `role`, with the events logged inside each (by session id).
    fn session_events(&self, role: &str) -> BTreeMap<String, Vec<String>> {
        let with_fields = self.session_events_with_fields(role);
        let messages = |events: Vec<(String, _)>| events.into_iter().map(|(m, _)| m).collect();
        with_fields.into_iter().map(|(id, events)| (id, messages(events))).collect()
    }

    /// Like `session_events`, with each event's fields besides its message.
    fn session_events_with_fields(&self, role: &str) -> BTreeMap<String, Vec<EventFields>> {
        let mut out: BTreeMap<String, Vec<EventFields>> = BTreeMap::new();
        for (event, span) in self.events.lock().unwrap().iter() {
            let Some(span) = span.as_ref().filter(|s| s.name == "tether_session") else {
                continue;
            };
            if span.fields.get("role").map(String::as_str) == Some(&format!("{role:?}")) {
                let id = span.fields.get("id").cloned().unwrap_or_default();
                out.entry(id).or_default().push(event.clone());
            }
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_span_per_session_with_its_id_and_an_event_per_state_change() {
    let log = Arc::new(Log::default());
    let capture = Capture { next: AtomicU64::new(0), log: log.clone() };
    tracing::subscriber::set_global_default(capture).unwrap();
    within(30, async {
        let server = Server::bind("127.0.0.1:0", config()).await.unwrap();
        let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
        let session = server.accept().await.unwrap();
        client.send(payload("t", 0)).await.unwrap();
        assert_eq!(session.recv().await.unwrap().payload, payload("t", 0));
        let id = session.id().unwrap().0;
        assert_eq!(client.id().map(|i| i.0), Some(id));
        // A message unread at the close, with automatic acks: the close takes it for the
        // application (recv returns it after the end) and has no reason to warn.
        client.send(payload("t", 2)).await.unwrap();
        while session.stats().messages_received < 2 {
            tokio::task::yield_now().await;
        }
        let (c, s) = tokio::join!(client.close(), session.close());
        assert_eq!((c, s), (End::Closed, End::Closed));
        assert_eq!(session.recv().await.unwrap().payload, payload("t", 2));

        let id = format!("{}", id);
        let clients = log.session_events("client");
        let servers = log.session_events("server");
        let client_events =
            clients.get(&id).unwrap_or_else(|| panic!("no client span {id}: {clients:?}"));
        let server_events =
            servers.get(&id).unwrap_or_else(|| panic!("no server span {id}: {servers:?}"));
        for expected in ["connected", "close requested", "session closed cleanly"] {
            assert!(client_events.iter().any(|m| m == expected), "client: {client_events:?}");
        }
        for expected in ["session accepted", "close requested", "session closed cleanly"] {
            assert!(server_events.iter().any(|m| m == expected), "server: {server_events:?}");
        }
        for events in [client_events, server_events] {
            let asked = events.iter().filter(|m| *m == "close requested").count();
            assert_eq!(asked, 1, "one close, however often it is polled: {events:?}");
        }
        let warned = server_events.iter().any(|m| m.starts_with("close waits"));
        assert!(!warned, "a close with automatic acks warned: {server_events:?}");

        // With manual acks a close cannot take unread messages for the application: it says so.
        let manual = Config { ack_mode: AckMode::Manual, ..config() };
        let server = Server::bind("127.0.0.1:0", manual).await.unwrap();
        let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
        let session = server.accept().await.unwrap();
        for i in 1..=3 {
            client.send(payload("t", i)).await.unwrap();
        }
        while session.stats().messages_received < 3 {
            tokio::task::yield_now().await;
        }
        // One taken and not acked: two wait unread (in the handles' batch, or the inbox).
        let first = session.recv().await.unwrap();
        let closing = session.close();
        tokio::pin!(closing);
        // Polled once (a timeout polls what it wraps before its clock): the close is requested
        // while two messages are unread.
        let requested = tokio::time::timeout(std::time::Duration::ZERO, &mut closing).await;
        assert!(requested.is_err(), "closed with messages unacked");
        let mut last = first.seq;
        for _ in 0..2 {
            last = session.recv().await.unwrap().seq;
        }
        session.ack(last).unwrap();
        assert_eq!(closing.await, End::Closed);
        let id = format!("{}", session.id().unwrap().0);
        let events = log.session_events_with_fields("server").remove(&id).unwrap();
        let warning = "close waits for the application to take and ack the peer's messages \
                       (manual acks), at most close_timeout";
        let warnings: Vec<_> = events.iter().filter(|(m, _)| m == warning).collect();
        // Polled again while it waited: still one close, one warning, which counts the unread.
        assert_eq!(warnings.len(), 1, "server: {events:?}");
        assert_eq!(warnings[0].1.get("unread").map(String::as_str), Some("2"), "{events:?}");
        let asked = events.iter().filter(|(m, _)| m == "close requested").count();
        assert_eq!(asked, 1, "server: {events:?}");

        // With manual acks and nothing unread, a close has nothing to warn about.
        let client = connect(server.local_addr().unwrap(), config()).await.unwrap();
        let session = server.accept().await.unwrap();
        // The server's close is requested first: nothing holds this session open, so a close
        // from the client, its drivers on other threads, could otherwise end it before the
        // server's close was first polled (then nobody on this side asked, and it is not logged).
        let closing = session.close();
        tokio::pin!(closing);
        let s = match tokio::time::timeout(std::time::Duration::ZERO, &mut closing).await {
            Ok(end) => end,
            Err(_) => closing.await,
        };
        assert_eq!((client.close().await, s), (End::Closed, End::Closed));
        let id = format!("{}", session.id().unwrap().0);
        let events = log.session_events("server").remove(&id).unwrap();
        assert!(events.iter().any(|m| m == "close requested"), "server: {events:?}");
        assert!(!events.iter().any(|m| m == warning), "warned with nothing unread: {events:?}");
    })
    .await;
}
