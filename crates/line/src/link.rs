//! The line link: an FXO line's three pins and its audio over a Unix
//! socket, to a simulated analog line in another process
//! (`crossline_sim::line::SimLine::serve`), the way a PTY stands in for a
//! modem's serial port. The appliance builds its `Fxo` on the link's pins
//! and plays and hears the call through [`LinkAudio`].
//!
//! Wire: each message is a tag byte and a fixed-size payload.
//!
//! | tag | payload | direction |
//! |---|---|---|
//! | `H` | 1 byte, 0 or 1: the hook relay pin's level | driver → line |
//! | `R` | 1 byte, 0 or 1: the ring-detect pin's level | line → driver |
//! | `S` | 1 byte, 0 or 1: the loop-sense pin's level | line → driver |
//! | `A` | 160 samples, i16 little-endian (20 ms at 8 kHz) | both |
//!
//! The line sends `R` and `S` as soon as a driver connects and on every
//! change. Anything else is a protocol error that closes the link.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use embedded_hal::digital::{ErrorKind, ErrorType, InputPin, OutputPin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::LineError;

/// Samples in one audio message (20 ms at 8 kHz).
pub const FRAME_SAMPLES: usize = 160;
/// Audio frames queued towards the driver (1 s); more are dropped (counted
/// in [`LinkAudio::dropped`]).
const AUDIO_QUEUE: usize = 50;
/// Messages queued towards the socket.
const SEND_QUEUE: usize = 256;
/// How long `connect` waits for the line's first pin levels.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// One 20 ms frame of audio.
pub type AudioFrame = [i16; FRAME_SAMPLES];

/// One link message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hook(bool),
    Ring(bool),
    Sense(bool),
    Audio(Box<AudioFrame>),
}

/// A byte the link cannot decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("unknown message tag 0x{0:02x}")]
    UnknownTag(u8),
    #[error("pin level byte 0x{0:02x} is neither 0 nor 1")]
    BadLevel(u8),
}

impl Message {
    /// Appends the message's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Message::Hook(l) => out.extend([b'H', u8::from(*l)]),
            Message::Ring(l) => out.extend([b'R', u8::from(*l)]),
            Message::Sense(l) => out.extend([b'S', u8::from(*l)]),
            Message::Audio(frame) => {
                out.push(b'A');
                for s in frame.iter() {
                    out.extend(s.to_le_bytes());
                }
            }
        }
    }
}

/// Splits a byte stream into messages; keeps at most one partial message.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the messages they complete. After an error the
    /// stream is out of step: drop the link.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Message>, LinkError> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            // Top the buffer up to one whole message, then decode it.
            let Some(&tag) = self.buf.first().or(rest.first()) else {
                break;
            };
            let len = match tag {
                b'H' | b'R' | b'S' => 2,
                b'A' => 1 + 2 * FRAME_SAMPLES,
                other => return Err(LinkError::UnknownTag(other)),
            };
            let take = (len - self.buf.len()).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.buf.extend_from_slice(head);
            rest = tail;
            if self.buf.len() < len {
                break;
            }
            let msg = decode_one(&self.buf)?;
            self.buf.clear();
            out.push(msg);
        }
        Ok(out)
    }
}

fn level(b: u8) -> Result<bool, LinkError> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(LinkError::BadLevel(other)),
    }
}

/// Decodes one whole message (`buf` holds exactly its bytes).
fn decode_one(buf: &[u8]) -> Result<Message, LinkError> {
    match buf {
        [b'H', l] => Ok(Message::Hook(level(*l)?)),
        [b'R', l] => Ok(Message::Ring(level(*l)?)),
        [b'S', l] => Ok(Message::Sense(level(*l)?)),
        [b'A', samples @ ..] => {
            let mut frame = Box::new([0i16; FRAME_SAMPLES]);
            for (slot, pair) in frame.iter_mut().zip(samples.chunks_exact(2)) {
                if let [lo, hi] = pair {
                    *slot = i16::from_le_bytes([*lo, *hi]);
                }
            }
            Ok(Message::Audio(frame))
        }
        [tag, ..] => Err(LinkError::UnknownTag(*tag)),
        [] => Err(LinkError::UnknownTag(0)),
    }
}

#[derive(Debug, Default)]
struct Shared {
    ring: AtomicBool,
    sense: AtomicBool,
    closed: AtomicBool,
    dropped_audio: AtomicU64,
}

/// What a link pin returns once the link is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the line link is closed (the simulated line went away)")]
pub struct LinkClosed;

impl embedded_hal::digital::Error for LinkClosed {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// The hook relay pin over the link.
#[derive(Debug)]
pub struct LinkHook {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Message>,
}

impl ErrorType for LinkHook {
    type Error = LinkClosed;
}

impl LinkHook {
    fn send(&mut self, high: bool) -> Result<(), LinkClosed> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(LinkClosed);
        }
        self.tx
            .try_send(Message::Hook(high))
            .map_err(|_| LinkClosed)
    }
}

impl OutputPin for LinkHook {
    fn set_low(&mut self) -> Result<(), LinkClosed> {
        self.send(false)
    }

    fn set_high(&mut self) -> Result<(), LinkClosed> {
        self.send(true)
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Ring,
    Sense,
}

/// The ring-detect or loop-sense pin over the link.
#[derive(Debug)]
pub struct LinkInput {
    shared: Arc<Shared>,
    which: Which,
}

impl ErrorType for LinkInput {
    type Error = LinkClosed;
}

impl InputPin for LinkInput {
    fn is_high(&mut self) -> Result<bool, LinkClosed> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(LinkClosed);
        }
        Ok(match self.which {
            Which::Ring => self.shared.ring.load(Ordering::SeqCst),
            Which::Sense => self.shared.sense.load(Ordering::SeqCst),
        })
    }

    fn is_low(&mut self) -> Result<bool, LinkClosed> {
        self.is_high().map(|h| !h)
    }
}

/// The line's audio over the link.
#[derive(Debug)]
pub struct LinkAudio {
    rx: LinkAudioReceiver,
    tx: LinkAudioSender,
}

/// The line's audio towards the driver (what the caller says).
#[derive(Debug)]
pub struct LinkAudioReceiver {
    shared: Arc<Shared>,
    from_line: mpsc::Receiver<Box<AudioFrame>>,
}

/// The driver's audio into the line (what the caller hears). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkAudioSender {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Message>,
}

impl LinkAudio {
    /// The next 20 ms the line carries; `None` once the link is closed.
    pub async fn recv_frame(&mut self) -> Option<Box<AudioFrame>> {
        self.rx.recv_frame().await
    }

    /// Sends 20 ms into the line; see [`LinkAudioSender::send_frame`].
    pub fn send_frame(&self, frame: &AudioFrame) -> Result<(), LinkClosed> {
        self.tx.send_frame(frame)
    }

    /// Frames dropped because a queue was full, both ways.
    pub fn dropped(&self) -> u64 {
        self.tx.dropped()
    }

    /// The two directions, for two tasks (a recorder and a prompt player).
    pub fn split(self) -> (LinkAudioReceiver, LinkAudioSender) {
        (self.rx, self.tx)
    }
}

impl LinkAudioReceiver {
    /// The next 20 ms the line carries; `None` once the link is closed.
    pub async fn recv_frame(&mut self) -> Option<Box<AudioFrame>> {
        self.from_line.recv().await
    }

    /// Frames dropped because a queue was full, both ways.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped_audio.load(Ordering::Relaxed)
    }
}

impl LinkAudioSender {
    /// Sends 20 ms into the line (pace it yourself: the line plays what
    /// comes). A full queue drops the frame (counted).
    pub fn send_frame(&self, frame: &AudioFrame) -> Result<(), LinkClosed> {
        match self.tx.try_send(Message::Audio(Box::new(*frame))) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped_audio.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(LinkClosed),
        }
    }

    /// Frames dropped because a queue was full, both ways.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped_audio.load(Ordering::Relaxed)
    }
}

/// A line reached through the link: pins for `Fxo::new` and the audio.
#[derive(Debug)]
pub struct LinkedLine {
    pub hook: LinkHook,
    pub ring: LinkInput,
    pub sense: LinkInput,
    pub audio: LinkAudio,
}

/// Connects to the simulated line at `path` and waits for its first pin
/// levels. `line` names the line in errors and logs.
pub async fn connect(path: impl AsRef<Path>, line: &str) -> Result<LinkedLine, LineError> {
    let path = path.as_ref();
    let link_err = |detail: String| LineError::Link {
        line: line.to_owned(),
        path: path.display().to_string(),
        detail,
    };
    let stream = tokio::net::UnixStream::connect(path).await.map_err(|e| {
        link_err(format!(
            "cannot connect: {e} (is the simulator serving this line?)"
        ))
    })?;
    let (mut rd, mut wr) = stream.into_split();
    let shared = Arc::new(Shared::default());
    let (tx, mut rx) = mpsc::channel::<Message>(SEND_QUEUE);
    let (audio_tx, audio_rx) = mpsc::channel::<Box<AudioFrame>>(AUDIO_QUEUE);

    // Wait for the first R and S before handing out pins.
    let mut decoder = Decoder::new();
    let mut pending = Vec::new();
    let (mut ring_known, mut sense_known) = (false, false);
    let mut buf = vec![0u8; 4096];
    let hello = async {
        while !(ring_known && sense_known) {
            let n = rd.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the line closed the link".to_owned());
            }
            let msgs = decoder
                .push(buf.get(..n).unwrap_or_default())
                .map_err(|e| e.to_string())?;
            for m in msgs {
                match m {
                    Message::Ring(l) => {
                        shared.ring.store(l, Ordering::SeqCst);
                        ring_known = true;
                    }
                    Message::Sense(l) => {
                        shared.sense.store(l, Ordering::SeqCst);
                        sense_known = true;
                    }
                    other => pending.push(other),
                }
            }
        }
        Ok::<(), String>(())
    };
    tokio::time::timeout(HELLO_TIMEOUT, hello)
        .await
        .map_err(|_| link_err("no pin levels from the line within 5 s".into()))?
        .map_err(link_err)?;
    for m in pending {
        if let Message::Audio(f) = m {
            let _ = audio_tx.try_send(f);
        }
    }

    let reader_shared = Arc::clone(&shared);
    let name = line.to_owned();
    tokio::spawn(async move {
        let why = loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) => break "closed by the line".to_owned(),
                Ok(n) => n,
                Err(e) => break e.to_string(),
            };
            let msgs = match decoder.push(buf.get(..n).unwrap_or_default()) {
                Ok(m) => m,
                Err(e) => break e.to_string(),
            };
            for m in msgs {
                match m {
                    Message::Ring(l) => reader_shared.ring.store(l, Ordering::SeqCst),
                    Message::Sense(l) => reader_shared.sense.store(l, Ordering::SeqCst),
                    Message::Audio(f) => {
                        if audio_tx.try_send(f).is_err() {
                            reader_shared.dropped_audio.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Message::Hook(_) => {}
                }
            }
        };
        reader_shared.closed.store(true, Ordering::SeqCst);
        tracing::warn!(line = %name, reason = %why, "line link closed");
    });
    let writer_shared = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut bytes = Vec::with_capacity(1 + 2 * FRAME_SAMPLES);
        while let Some(m) = rx.recv().await {
            bytes.clear();
            m.encode(&mut bytes);
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        writer_shared.closed.store(true, Ordering::SeqCst);
    });

    Ok(LinkedLine {
        hook: LinkHook {
            shared: Arc::clone(&shared),
            tx: tx.clone(),
        },
        ring: LinkInput {
            shared: Arc::clone(&shared),
            which: Which::Ring,
        },
        sense: LinkInput {
            shared: Arc::clone(&shared),
            which: Which::Sense,
        },
        audio: LinkAudio {
            rx: LinkAudioReceiver {
                shared: Arc::clone(&shared),
                from_line: audio_rx,
            },
            tx: LinkAudioSender { shared, tx },
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            any::<bool>().prop_map(Message::Hook),
            any::<bool>().prop_map(Message::Ring),
            any::<bool>().prop_map(Message::Sense),
            proptest::collection::vec(any::<i16>(), FRAME_SAMPLES).prop_map(|v| {
                let mut f = Box::new([0i16; FRAME_SAMPLES]);
                f.copy_from_slice(&v);
                Message::Audio(f)
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_11E5),
            ..ProptestConfig::default()
        })]

        #[test]
        fn messages_survive_any_split_of_the_stream(
            msgs in proptest::collection::vec(message(), 0..20),
            cuts in proptest::collection::vec(1usize..400, 0..30),
        ) {
            let mut bytes = Vec::new();
            for m in &msgs {
                m.encode(&mut bytes);
            }
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut rest = &bytes[..];
            for c in cuts {
                let (a, b) = rest.split_at(c.min(rest.len()));
                got.extend(d.push(a).unwrap());
                rest = b;
            }
            got.extend(d.push(rest).unwrap());
            prop_assert_eq!(got, msgs);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_errors_stop_the_stream(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
        ) {
            let mut d = Decoder::new();
            let _ = d.push(&bytes);
            prop_assert!(d.buf.len() <= 2 * FRAME_SAMPLES);
        }
    }

    #[test]
    fn a_bad_level_or_tag_is_an_error() {
        assert_eq!(Decoder::new().push(b"R\x02"), Err(LinkError::BadLevel(2)));
        assert_eq!(Decoder::new().push(b"X"), Err(LinkError::UnknownTag(b'X')));
        assert_eq!(
            Decoder::new().push(b"R\x01S\x00").unwrap(),
            vec![Message::Ring(true), Message::Sense(false)]
        );
    }
}
