//! The driver emits a `debug` event for every connection state transition.

mod common;

use common::*;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Collects "from -> to" of every `state change` event.
#[derive(Clone, Default)]
struct Transitions(Arc<Mutex<Vec<String>>>);

#[derive(Default)]
struct Fields {
    message: String,
    from: String,
    to: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "message" => &mut self.message,
            "from" => &mut self.from,
            "to" => &mut self.to,
            _ => return,
        };
        let _ = write!(slot, "{value:?}");
    }
}

impl<S: tracing::Subscriber> Layer<S> for Transitions {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        if f.message == "state change" {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} -> {}", f.from, f.to));
        }
    }
}

#[tokio::test]
async fn every_state_transition_is_traced() {
    let seen = Transitions::default();
    let subscriber = tracing_subscriber::registry().with(
        seen.clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    // The current-thread runtime runs both drivers on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let (a, b) = stacks();
    let (mut client, mut server) = connected(&a, &b, 1).await;
    within("close", async {
        client.shutdown().await.unwrap();
        let mut buf = Vec::new();
        server.read_to_end(&mut buf).await.unwrap();
        server.shutdown().await.unwrap();
        client.read_to_end(&mut buf).await.unwrap();
        // Wait for the server's LAST-ACK -> CLOSED.
        while !seen
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|t| t == "LAST-ACK -> CLOSED")
        {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let seen = seen.0.lock().unwrap().clone();
    for expected in [
        "SYN-SENT -> ESTABLISHED",
        "ESTABLISHED -> FIN-WAIT-1",
        "ESTABLISHED -> CLOSE-WAIT",
        "CLOSE-WAIT -> LAST-ACK",
        "LAST-ACK -> CLOSED",
    ] {
        assert!(
            seen.iter().any(|t| t == expected),
            "missing {expected} in {seen:?}"
        );
    }
}
