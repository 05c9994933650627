//! The volunteer socket, `/ws/worker`. The session logic works on plain streams of frames and
//! sinks of messages, so it does not care whether frames come from axum's WebSocket or from a
//! test's channel.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use vitalgrid_worker::protocol::{
    ErrorCode, Frame, PROTOCOL_VERSION, ServerMessage, WorkerMessage, decode_worker_frame,
    encode_server_message,
};

use crate::app::AppState;
use crate::scheduler::{Departure, Outgoing, SenderCore};

/// Largest frame accepted from a worker: a result with its chart buckets, with ample room.
const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
/// Read buffer allocated up front for each connection. Most frames are ACKs and small results;
/// a larger frame grows the buffer to its size. (tungstenite's default, 128 KiB, made a thousand
/// idle workers cost over 100 MB.)
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes a connection may have waiting to be written when its peer reads slowly: room for the
/// largest task packet (several MB of rows) many times over. A bound, not an allocation.
const MAX_UNSENT_BYTES: usize = 64 * 1024 * 1024;
/// A connection must introduce itself this quickly.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Most tasks one connection may hold at once, whatever it announces.
const MAX_SLOTS: u32 = 64;

pub async fn worker_socket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let core = Arc::clone(&state.scheduler);
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        // Each message goes to the socket as it is sent: the session flushes after every message
        // anyway, so a write buffer would only hold memory.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve_socket(core, socket))
}

/// What arrives on a worker's socket, as the session needs it.
#[derive(Debug)]
pub enum Inbound {
    /// A frame's bytes, from a text or a binary message alike (docs/protocol.md).
    Frame(axum::body::Bytes),
    /// A ping or pong: nothing to handle.
    Keepalive,
    /// A close frame: the worker left on purpose (a volunteer pressed Stop or closed the tab).
    Goodbye,
}

async fn serve_socket(core: Arc<SenderCore>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    let incoming = stream.filter_map(|frame| async move {
        match frame {
            Ok(Message::Text(text)) => Some(Inbound::Frame(text.into())),
            Ok(Message::Binary(bytes)) => Some(Inbound::Frame(bytes)),
            Ok(Message::Close(_)) => Some(Inbound::Goodbye),
            Ok(Message::Ping(_) | Message::Pong(_)) => Some(Inbound::Keepalive),
            // The stream ends after a transport error: the connection was lost, not closed.
            Err(_) => None,
        }
    });
    serve_worker(core, Box::pin(incoming), sink).await;
}

/// Runs one worker connection to its end: Hello, then messages both ways until either side stops.
pub async fn serve_worker<I, O>(core: Arc<SenderCore>, mut incoming: I, mut outgoing: O)
where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Message> + Unpin,
{
    let hello = loop {
        match tokio::time::timeout(HELLO_TIMEOUT, incoming.next()).await {
            Ok(Some(Inbound::Keepalive)) => continue,
            Ok(Some(Inbound::Frame(frame))) => break frame,
            Ok(Some(Inbound::Goodbye) | None) | Err(_) => return,
        }
    };
    let (slots, agent, worker_key) = match decode_worker_frame(&hello) {
        Ok(WorkerMessage::Hello {
            protocol,
            slots,
            agent,
            worker_key,
        }) if protocol == PROTOCOL_VERSION => (
            slots.clamp(1, MAX_SLOTS),
            agent.chars().take(200).collect::<String>(),
            worker_key,
        ),
        Ok(WorkerMessage::Hello { protocol, .. }) => {
            let message = format!(
                "protocol {protocol} is not supported; this server speaks {PROTOCOL_VERSION}"
            );
            let _ = send(&mut outgoing, protocol_error(message).into()).await;
            return;
        }
        _ => {
            let message = "the first message must be a hello".to_owned();
            let _ = send(&mut outgoing, protocol_error(message).into()).await;
            return;
        }
    };
    // The database work of registering, handling and releasing is boxed: inline, its futures
    // would make every connection's own future as large (9.7 KB instead of 1.6 KB) for as long as
    // its worker stays connected, about 10 MB for a thousand volunteers.
    let (worker_id, mut outbox) = match Box::pin(core.connect(slots, agent, worker_key)).await {
        Ok(Some(connected)) => connected,
        Ok(None) => {
            let message =
                "this worker returned a wrong result and may not take more work".to_owned();
            let _ = send(&mut outgoing, protocol_error(message).into()).await;
            return;
        }
        Err(error) => {
            tracing::error!(%error, "registering a worker failed");
            return;
        }
    };
    let mut departure = Departure::Lost;
    loop {
        tokio::select! {
            inbound = incoming.next() => {
                let frame = match inbound {
                    Some(Inbound::Frame(frame)) => frame,
                    Some(Inbound::Keepalive) => continue,
                    Some(Inbound::Goodbye) => {
                        departure = Departure::Left;
                        break;
                    }
                    None => break,
                };
                match decode_worker_frame(&frame) {
                    Ok(message) => {
                        let handled = Box::pin(core.handle(&worker_id, message));
                        if !send_while(handled, &worker_id, &mut outbox, &mut outgoing).await {
                            break;
                        }
                    }
                    Err(error) => core.send_to(&worker_id, ServerMessage::Error {
                        task_id: None,
                        code: ErrorCode::Malformed,
                        message: format!("unreadable message: {error}"),
                    }),
                }
            }
            message = outbox.recv() => {
                let Some(message) = message else { break };
                if send(&mut outgoing, message).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Err(error) = Box::pin(core.disconnect(&worker_id, departure)).await {
        tracing::error!(worker.id = %worker_id, %error, "releasing a departed worker's tasks failed");
    }
}

fn protocol_error(message: String) -> ServerMessage {
    ServerMessage::Error {
        task_id: None,
        code: ErrorCode::Protocol,
        message,
    }
}

/// Runs the handling of one worker message while passing what is queued for the worker to the
/// socket: a result frees a slot and its next (reserved) task is queued at once, and it must reach
/// the worker then, not once the result is committed. Returns whether the socket still writes.
async fn send_while<O: Sink<Message> + Unpin>(
    handled: impl Future<Output = Result<(), sea_orm::DbErr>>,
    worker_id: &str,
    outbox: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    outgoing: &mut O,
) -> bool {
    let mut handled = std::pin::pin!(handled);
    let mut writes = true;
    let result = loop {
        tokio::select! {
            result = &mut handled => break result,
            Some(message) = outbox.recv(), if writes => {
                writes = send(outgoing, message).await.is_ok();
            }
        }
    };
    if let Err(error) = result {
        tracing::error!(worker.id = %worker_id, %error, "handling a worker message failed");
    }
    writes
}

/// Writes one message to the socket. A task's payload stays charged to the payload budget until its
/// frame has been written (with no write buffer, `send` returns once the bytes are in the kernel).
async fn send<O: Sink<Message> + Unpin>(
    outgoing: &mut O,
    outgoing_message: Outgoing,
) -> Result<(), ()> {
    let Outgoing { message, charge } = outgoing_message;
    // A task goes out as a binary message, its header line and its payload's bytes
    // (docs/protocol.md): a browser hands the bytes to the wasm as they are, instead of decoding a
    // megabyte of samples into a string and encoding it back.
    let frame = match encode_server_message(&message).map_err(|_| ())? {
        Frame::Binary(bytes) => Message::Binary(bytes.into()),
        Frame::Text(text) => Message::Text(text.into()),
    };
    // A task's payload is freed now, not once a slow peer has read the whole frame: with a
    // thousand workers that is one payload per connection.
    drop(message);
    let written = outgoing.send(frame).await.map_err(|_| ());
    drop(charge);
    written
}
