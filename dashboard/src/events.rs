//! `GET /api/events`: server-sent events, one `change` event (`{"job_id", "state"}`) per
//! report or kill request, a `hello` on connect and a `resync` when this client fell behind
//! (then it should read everything again). Streams end when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, WatchStream};

use crate::server::AppState;

pub(crate) async fn events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let guard = s.metrics.sse_open();
    let changes = BroadcastStream::new(s.changes.subscribe()).map(|m| {
        Ok(match m {
            Ok(data) => Event::default().event("change").data(data),
            Err(BroadcastStreamRecvError::Lagged(n)) => Event::default()
                .event("resync")
                .data(format!("{{\"missed\":{n}}}")),
        })
    });
    let stopped = WatchStream::new(s.stopping.clone()).filter(|stop| std::future::ready(*stop));
    let hello = stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let stream = hello
        .chain(changes)
        .take_until(stopped.into_future())
        .map(move |e| {
            let _keep = &guard;
            e
        });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
