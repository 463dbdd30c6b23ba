//! Reassembly of concatenated SMS parts (TS 23.040 §9.2.3.24.1).

use serde::{Deserialize, Serialize};

use crate::{Address, Alphabet, Deliver, Timestamp, codec, gsm7};

/// Default bound on messages waiting for parts (see [`Reassembler::with_max_pending`]).
pub const DEFAULT_MAX_PENDING: usize = 256;

/// A complete (or, after a timeout, incomplete) message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who sent it.
    pub sender: Address,
    /// Service-centre time stamp of the lowest-numbered part received.
    pub timestamp: Timestamp,
    /// The joined text; a run of missing parts is replaced by a visible marker
    /// such as `[…part 2 of 3 missing…]` or `[…parts 2–4 of 6 missing…]`.
    pub text: String,
    /// Number of parts the message has (the total announced).
    pub parts: u8,
    /// True when some parts never arrived.
    pub incomplete: bool,
}

/// What a message still waiting for parts has received so far (for logs,
/// health reports, or deciding which stored parts may be deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInfo {
    /// Who sends it.
    pub sender: Address,
    /// Concatenation reference.
    pub reference: u16,
    /// Parts announced.
    pub total: u8,
    /// Sequence numbers received so far, ascending.
    pub received: Vec<u8>,
    /// `now_secs` of the first part's arrival.
    pub first_seen: u64,
}

/// One received part, as needed to join it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Part {
    alphabet: Alphabet,
    text: String,
    data: Vec<u8>,
}

/// A message still waiting for parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    sender: Address,
    reference: u16,
    total: u8,
    first_seen: u64,
    timestamp: Timestamp,
    timestamp_seq: u8,
    parts: Vec<Option<Part>>,
}

/// Collects concatenated parts until a message is complete.
///
/// Pure: the caller supplies the time (seconds on any monotonic or wall
/// clock) and can persist the whole state with serde. Parts are keyed by
/// (sender, reference, total); arrival order does not matter and duplicate
/// parts are ignored. A single-part message comes back from [`push`] at once.
/// Memory is bounded: at most `max_pending` messages wait at a time (the
/// oldest is given up as incomplete when a new one would exceed it), and each
/// holds at most 255 parts of at most 160 characters.
///
/// [`push`]: Reassembler::push
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reassembler {
    timeout_secs: u64,
    #[serde(default = "default_max_pending")]
    max_pending: usize,
    #[serde(default)]
    pending: Vec<Pending>,
    /// Messages given up early (bound reached, reference reused after the
    /// timeout), handed out by the next [`Reassembler::expire`].
    #[serde(default)]
    given_up: Vec<Message>,
}

fn default_max_pending() -> usize {
    DEFAULT_MAX_PENDING
}

impl Reassembler {
    /// A reassembler that gives up on a message `timeout_secs` after its first
    /// part arrived, with at most [`DEFAULT_MAX_PENDING`] messages waiting.
    pub fn new(timeout_secs: u64) -> Self {
        Self::with_max_pending(timeout_secs, DEFAULT_MAX_PENDING)
    }

    /// Like [`Reassembler::new`] with a different bound on waiting messages (at least 1).
    pub fn with_max_pending(timeout_secs: u64, max_pending: usize) -> Self {
        Reassembler {
            timeout_secs,
            max_pending: max_pending.max(1),
            pending: Vec::new(),
            given_up: Vec::new(),
        }
    }

    /// Adds a part; returns the message when it is complete (at once for a
    /// message that is not concatenated). Duplicates return `None`.
    pub fn push(&mut self, part: &Deliver, now_secs: u64) -> Option<Message> {
        let Some(concat) = part
            .concat
            .filter(|c| c.total > 1 && c.seq >= 1 && c.seq <= c.total)
        else {
            return Some(Message {
                sender: part.sender.clone(),
                timestamp: part.timestamp,
                text: part.text.clone(),
                parts: 1,
                incomplete: false,
            });
        };
        let found = self.pending.iter().position(|p| {
            p.reference == concat.reference && p.total == concat.total && p.sender == part.sender
        });
        // A reference reused after the old message timed out starts afresh.
        let found = match found {
            Some(i) if self.is_expired(i, now_secs) => {
                let old = self.pending.remove(i);
                self.given_up.push(finish(old));
                None
            }
            other => other,
        };
        let index = match found {
            Some(i) => i,
            None => {
                if self.pending.len() >= self.max_pending {
                    self.give_up_oldest();
                }
                self.pending.push(Pending {
                    sender: part.sender.clone(),
                    reference: concat.reference,
                    total: concat.total,
                    first_seen: now_secs,
                    timestamp: part.timestamp,
                    timestamp_seq: concat.seq,
                    parts: vec![None; usize::from(concat.total)],
                });
                self.pending.len() - 1
            }
        };
        let entry = self.pending.get_mut(index)?;
        let slot = entry.parts.get_mut(usize::from(concat.seq) - 1)?;
        if slot.is_some() {
            return None;
        }
        *slot = Some(Part {
            alphabet: part.alphabet,
            text: part.text.clone(),
            data: part.data.clone(),
        });
        if concat.seq < entry.timestamp_seq {
            entry.timestamp = part.timestamp;
            entry.timestamp_seq = concat.seq;
        }
        if entry.parts.iter().all(Option::is_some) {
            let done = self.pending.remove(index);
            return Some(finish(done));
        }
        None
    }

    fn is_expired(&self, index: usize, now_secs: u64) -> bool {
        self.pending
            .get(index)
            .is_some_and(|p| now_secs.saturating_sub(p.first_seen) >= self.timeout_secs)
    }

    fn give_up_oldest(&mut self) {
        let oldest = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.first_seen)
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            let old = self.pending.remove(i);
            self.given_up.push(finish(old));
        }
    }

    /// Returns, as incomplete messages, everything whose first part arrived
    /// `timeout_secs` or more before `now_secs`, plus any message given up
    /// early; oldest first.
    pub fn expire(&mut self, now_secs: u64) -> Vec<Message> {
        let mut out = std::mem::take(&mut self.given_up);
        let timeout = self.timeout_secs;
        let (expired, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| now_secs.saturating_sub(p.first_seen) >= timeout);
        self.pending = kept;
        let mut expired = expired;
        expired.sort_by_key(|p| p.first_seen);
        out.extend(expired.into_iter().map(finish));
        out
    }

    /// Number of messages waiting for parts.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The messages waiting for parts, oldest first, with the parts received.
    pub fn waiting(&self) -> Vec<PendingInfo> {
        let mut out: Vec<PendingInfo> = self
            .pending
            .iter()
            .map(|p| PendingInfo {
                sender: p.sender.clone(),
                reference: p.reference,
                total: p.total,
                received: p
                    .parts
                    .iter()
                    .enumerate()
                    .filter(|(_, slot)| slot.is_some())
                    .filter_map(|(i, _)| u8::try_from(i + 1).ok())
                    .collect(),
                first_seen: p.first_seen,
            })
            .collect();
        out.sort_by_key(|p| p.first_seen);
        out
    }
}

/// Whether a part's raw units reproduce its text, so that runs can be joined
/// at the unit level (repairing characters split across parts).
fn raw_join_alphabet(parts: &[&Part]) -> Option<Alphabet> {
    let first = parts.first()?.alphabet;
    let consistent = parts.iter().all(|p| {
        p.alphabet == first
            && match first {
                Alphabet::Gsm7 => gsm7::decode(&p.data) == p.text,
                Alphabet::Ucs2 => p.data.len() % 2 == 0 && codec::utf16_lossy(&p.data) == p.text,
                Alphabet::Data8 => false,
            }
    });
    consistent.then_some(first)
}

fn join_run(run: &[&Part], out: &mut String) {
    match raw_join_alphabet(run) {
        Some(alphabet) => {
            let raw: Vec<u8> = run.iter().flat_map(|p| p.data.iter().copied()).collect();
            match alphabet {
                Alphabet::Ucs2 => out.push_str(&codec::utf16_lossy(&raw)),
                _ => out.push_str(&gsm7::decode(&raw)),
            }
        }
        None => run.iter().for_each(|p| out.push_str(&p.text)),
    }
}

fn missing_marker(from: usize, to: usize, total: u8, out: &mut String) {
    if from == to {
        out.push_str(&format!("[…part {from} of {total} missing…]"));
    } else {
        out.push_str(&format!("[…parts {from}–{to} of {total} missing…]"));
    }
}

fn finish(p: Pending) -> Message {
    let mut text = String::new();
    let mut run: Vec<&Part> = Vec::new();
    let mut missing_from: Option<usize> = None;
    let mut incomplete = false;
    for (i, slot) in p.parts.iter().enumerate() {
        let seq = i + 1;
        match slot {
            Some(part) => {
                if let Some(from) = missing_from.take() {
                    missing_marker(from, seq - 1, p.total, &mut text);
                }
                run.push(part);
            }
            None => {
                incomplete = true;
                if !run.is_empty() {
                    join_run(&run, &mut text);
                    run.clear();
                }
                missing_from.get_or_insert(seq);
            }
        }
    }
    if let Some(from) = missing_from {
        missing_marker(from, p.parts.len(), p.total, &mut text);
    }
    if !run.is_empty() {
        join_run(&run, &mut text);
    }
    Message {
        sender: p.sender,
        timestamp: p.timestamp,
        text,
        parts: p.total,
        incomplete,
    }
}
