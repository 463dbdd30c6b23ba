//! The AT line parser: bytes from the serial line → frames → classified lines.
//!
//! Two layers, both pure (no I/O) so they can be fuzzed and tested with
//! scripted byte streams split at every boundary:
//!
//! * [`Splitter`] cuts the byte stream into [`Frame`]s: text lines (ended by
//!   CR or LF, empty lines dropped), the SMS prompt `> ` (which has no newline
//!   after it), the two-line URCs `+CMT:`/`+CDS:` (header + PDU line), and
//!   garbage (control bytes, over-long lines). Memory is bounded: a line longer
//!   than [`MAX_LINE`] bytes is discarded as garbage.
//! * [`classify`] decides what a line means *given the command in flight*:
//!   a final result, an unsolicited result code ([`Urc`]), an information line
//!   of the response, or the echo of what we sent. URCs are recognised
//!   anywhere — also between a command's information lines and its final
//!   result — and taken out before the response is matched.

use std::collections::VecDeque;

use crate::error::{CmeError, CmsError};

/// Longest line kept, in bytes. The longest legitimate line is a +CMGL/+CMT
/// PDU line (at most 2 × (12 + 164) hex digits) or a long USSD answer.
pub const MAX_LINE: usize = 2048;

/// One unit cut from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete, trimmed, non-empty text line.
    Line(String),
    /// The `> ` prompt after `AT+CMGS=<n>`.
    Prompt,
    /// A two-line URC: `+CMT: ...` or `+CDS: ...` header and its PDU line.
    TwoLine { header: String, pdu: String },
    /// Bytes that cannot be a line of a sane modem (control bytes, over-long).
    Garbage { len: usize },
}

/// Cuts bytes into [`Frame`]s. Feed with [`Splitter::push`], drain with
/// [`Splitter::next_frame`].
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    overflow: usize,
    pending_header: Option<String>,
    out: VecDeque<Frame>,
}

impl Splitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds raw bytes.
    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    if b == b'\n' && self.in_open_quote() {
                        // A multi-line quoted USSD answer: keep the newline.
                        self.keep(b);
                    } else {
                        self.end_line();
                    }
                }
                // Ctrl-Z / ESC come back in the echo of a PDU: not text.
                0x1a | 0x1b => {}
                b'>' if self.buf.is_empty() && self.overflow == 0 => {
                    self.flush_pending_header();
                    self.out.push_back(Frame::Prompt);
                }
                _ => self.keep(b),
            }
        }
    }

    /// Next complete frame, if any.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.out.pop_front()
    }

    /// Drops any partial line and pending header (after a resync or reopen).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overflow = 0;
        self.pending_header = None;
        self.out.clear();
    }

    fn keep(&mut self, b: u8) {
        if self.overflow > 0 || self.buf.len() >= MAX_LINE {
            self.overflow = self.overflow.saturating_add(1);
        } else {
            self.buf.push(b);
        }
    }

    fn in_open_quote(&self) -> bool {
        self.buf.starts_with(b"+CUSD:") && self.buf.iter().filter(|&&c| c == b'"').count() % 2 == 1
    }

    fn flush_pending_header(&mut self) {
        if let Some(h) = self.pending_header.take() {
            self.out.push_back(Frame::Line(h));
        }
    }

    fn end_line(&mut self) {
        if self.overflow > 0 {
            let len = self.buf.len().saturating_add(self.overflow);
            self.buf.clear();
            self.overflow = 0;
            self.flush_pending_header();
            self.out.push_back(Frame::Garbage { len });
            return;
        }
        let raw = std::mem::take(&mut self.buf);
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\0');
        if line.is_empty() {
            return;
        }
        if line
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{fffd}')
        {
            // Non-UTF-8 or control bytes: line noise, a baud mismatch, a
            // modem rebooting. Never part of a sane answer.
            self.flush_pending_header();
            self.out.push_back(Frame::Garbage { len: raw.len() });
            return;
        }
        let line = line.to_string();
        if let Some(header) = self.pending_header.take() {
            if is_hex(&line) {
                self.out.push_back(Frame::TwoLine { header, pdu: line });
                return;
            }
            // The PDU line never came: hand the header on alone (it will be
            // reported as malformed) and treat this line on its own.
            self.out.push_back(Frame::Line(header));
        }
        if line.starts_with("+CMT:") || line.starts_with("+CDS:") {
            self.pending_header = Some(line);
        } else {
            self.out.push_back(Frame::Line(line));
        }
    }
}

/// True if `s` is a non-empty string of hex digits of even length.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A final result code ending a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Final {
    Ok,
    Error,
    Cme(CmeError),
    Cms(CmsError),
    NoCarrier,
    Busy,
    NoAnswer,
    NoDialtone,
    Connect,
}

/// Which registration URC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegDomain {
    /// +CREG: circuit switched (voice, SMS).
    Cs,
    /// +CGREG: GPRS.
    Gprs,
    /// +CEREG: LTE (EPS).
    Eps,
}

/// One entry of +CLCC (URC or response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClccEntry {
    pub id: u8,
    /// true when the call is mobile-terminated (incoming).
    pub incoming: bool,
    /// 0 active, 1 held, 2 dialing, 3 alerting, 4 incoming, 5 waiting,
    /// 6 disconnected (SIMCom).
    pub state: u8,
    pub number: Option<String>,
}

/// Unsolicited result codes the driver understands. Unknown ones are kept as
/// [`Urc::Other`] so they are still taken out of responses and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Urc {
    Ring,
    /// `+CRING: <type>` (e.g. VOICE).
    CRing(String),
    /// `+CLIP: "<number>",<type>[,"<subaddr>",<satype>[,"<alpha>"[,<CLI
    /// validity>]]]`: caller ID. `number` is None when the validity says
    /// withheld or unavailable (`absence`), or it is empty; `name` is the
    /// alpha field (decoded from UCS2 hex when it is that), None if empty.
    Clip {
        number: Option<String>,
        name: Option<String>,
        absence: Option<crate::types::NumberAbsence>,
    },
    /// `+CMTI: "<mem>",<index>` — a message was stored. `index` is None for
    /// the broken `+CMTI: ,-1` some modems send (the driver then sweeps).
    Cmti {
        mem: Option<String>,
        index: Option<u32>,
    },
    /// +CMT: direct delivery, header and PDU hex.
    Cmt {
        pdu: String,
    },
    /// +CDS: direct status report, PDU hex.
    Cds {
        pdu: String,
    },
    /// `+CDSI: "<mem>",<index>` — a status report was stored.
    Cdsi {
        mem: Option<String>,
        index: Option<u32>,
    },
    /// `+CUSD: <m>[,"<str>"[,<dcs>]]`.
    Cusd {
        status: u8,
        text: Option<String>,
        dcs: Option<u8>,
    },
    /// +CREG/+CGREG/+CEREG in URC form.
    Registration {
        domain: RegDomain,
        status: u8,
        lac: Option<String>,
        cell: Option<String>,
    },
    NoCarrier,
    Busy,
    NoAnswer,
    /// +CLCC as a URC (SIMCom after AT+CLCC=1).
    Clcc(ClccEntry),
    /// Quectel/SIMCom `RDY`: the modem (re)booted.
    Ready,
    /// Quectel `+QUSIM: <n>`.
    QuSim,
    /// Quectel `POWERED DOWN`.
    PoweredDown,
    /// Quectel `+QIND: ...`.
    Qind(String),
    /// SIMCom `VOICE CALL: BEGIN`.
    VoiceCallBegin,
    /// SIMCom `VOICE CALL: END...`.
    VoiceCallEnd,
    /// SIMCom `MISSED_CALL: <time> <number>`.
    MissedCall {
        number: Option<String>,
    },
    /// SIMCom `PB DONE`.
    PbDone,
    /// SIMCom `SMS DONE`.
    SmsDone,
    /// SIMCom SIM800 `UNDER-VOLTAGE WARNNING` / `UNDER-VOLTAGE POWER DOWN`.
    UnderVoltage(String),
    /// `+CPIN: <state>` arriving unsolicited (SIMCom at boot).
    Cpin(String),
    /// Huawei `^ORIG:<id>,<type>` — outgoing call started.
    HuaweiOrig,
    /// Huawei `^CONF:<id>` — remote is ringing.
    HuaweiConf,
    /// Huawei `^CONN:<id>,<type>` — call connected.
    HuaweiConn,
    /// Huawei `^CEND:...` — call ended.
    HuaweiCend,
    /// Huawei `^SMMEMFULL:"<mem>"` — message storage full.
    SmsMemoryFull(String),
    /// A key the other party pressed, detected by the modem: SIMCom
    /// `+RXDTMF: <key>`, Quectel `+QTONEDET: <ASCII code>` (after
    /// `AT+QTONEDET=1`), Huawei `^DDTMF: <key>`.
    Dtmf(char),
    /// Huawei status noise (^RSSI, ^BOOT, ^MODE, ^SRVST, ^DSFLOWRPT, ...).
    HuaweiNoise(String),
    /// A URC with the right prefix but unusable content (e.g. +CMT without
    /// its PDU line).
    Malformed(String),
    /// Any other `+XXX:` line arriving while a command with other prefixes
    /// is in flight, or while idle.
    Other(String),
}

/// The command in flight, as far as classification needs to know it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Prefixes of this command's information lines (e.g. `+CREG:`). Lines
    /// with these prefixes are the response, never URCs.
    pub prefixes: &'a [&'a str],
    /// ATD/ATA: NO CARRIER/BUSY/NO ANSWER are this command's final result.
    pub call_command: bool,
    /// Text we sent that the modem may echo back (the command line, the PDU).
    pub echo: &'a [&'a str],
    /// No command in flight: every `+XXX:` line is a URC.
    pub idle: bool,
}

/// What a line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    Final(Final),
    Urc(Urc),
    Info(String),
    Echo,
}

/// Classifies one line from [`Splitter`] in the given context.
pub fn classify(line: &str, ctx: &Context<'_>) -> Class {
    if ctx
        .echo
        .iter()
        .any(|e| !e.is_empty() && line.eq_ignore_ascii_case(e.trim()))
    {
        return Class::Echo;
    }
    if let Some(f) = final_result(line, ctx) {
        return Class::Final(f);
    }
    let expected = ctx.prefixes.iter().any(|p| line.starts_with(p));
    if expected && !ctx.idle {
        return Class::Info(line.to_string());
    }
    if let Some(u) = known_urc(line) {
        return Class::Urc(u);
    }
    if (ctx.idle || !ctx.prefixes.is_empty()) && looks_like_urc(line) {
        return Class::Urc(Urc::Other(line.to_string()));
    }
    if ctx.idle {
        // A stray line while idle (a late answer, an echo): nothing to do.
        return Class::Urc(Urc::Other(line.to_string()));
    }
    Class::Info(line.to_string())
}

fn looks_like_urc(line: &str) -> bool {
    (line.starts_with('+') || line.starts_with('^') || line.starts_with('*'))
        && line.find(':').is_some_and(|i| {
            i > 1
                && line[1..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

fn final_result(line: &str, ctx: &Context<'_>) -> Option<Final> {
    match line {
        "OK" => return Some(Final::Ok),
        "ERROR" | "COMMAND NOT SUPPORT" | "TOO MANY PARAMETERS" => return Some(Final::Error),
        "NO DIALTONE" => return Some(Final::NoDialtone),
        _ => {}
    }
    if ctx.call_command {
        match line {
            "NO CARRIER" => return Some(Final::NoCarrier),
            "BUSY" => return Some(Final::Busy),
            "NO ANSWER" => return Some(Final::NoAnswer),
            _ => {}
        }
        if line == "CONNECT" || line.starts_with("CONNECT ") {
            return Some(Final::Connect);
        }
    }
    if let Some(rest) = line.strip_prefix("+CME ERROR:") {
        return Some(Final::Cme(CmeError::parse(rest.trim())));
    }
    if let Some(rest) = line.strip_prefix("+CMS ERROR:") {
        return Some(Final::Cms(CmsError::parse(rest.trim())));
    }
    None
}

/// Recognises a URC line (not the two-line ones, see [`classify_two_line`]).
pub fn known_urc(line: &str) -> Option<Urc> {
    match line {
        "RING" => return Some(Urc::Ring),
        "NO CARRIER" => return Some(Urc::NoCarrier),
        "BUSY" => return Some(Urc::Busy),
        "NO ANSWER" => return Some(Urc::NoAnswer),
        "RDY" => return Some(Urc::Ready),
        "POWERED DOWN" | "NORMAL POWER DOWN" => return Some(Urc::PoweredDown),
        "VOICE CALL: BEGIN" => return Some(Urc::VoiceCallBegin),
        "PB DONE" => return Some(Urc::PbDone),
        "SMS DONE" | "SMS Ready" => return Some(Urc::SmsDone),
        "Call Ready" => return Some(Urc::PbDone),
        _ => {}
    }
    if line.starts_with("UNDER-VOLTAGE") {
        return Some(Urc::UnderVoltage(line.to_string()));
    }
    if line.starts_with("VOICE CALL: END") {
        return Some(Urc::VoiceCallEnd);
    }
    if let Some(rest) = line.strip_prefix("MISSED_CALL:") {
        let number = rest
            .split_whitespace()
            .find(|w| w.starts_with('+') || w.bytes().all(|b| b.is_ascii_digit()) && w.len() > 2)
            .map(str::to_string);
        return Some(Urc::MissedCall { number });
    }
    let (name, rest) = match line.find(':') {
        Some(i) => (&line[..i], line[i + 1..].trim()),
        None => return None,
    };
    let f = fields(rest);
    let num = |i: usize| f.get(i).and_then(|s| s.parse::<u32>().ok());
    let text = |i: usize| f.get(i).filter(|s| !s.is_empty()).cloned();
    Some(match name {
        "+CRING" => Urc::CRing(rest.to_string()),
        "+CLIP" => parse_clip(&f),
        "+CMTI" => Urc::Cmti {
            mem: text(0),
            index: num(1),
        },
        "+CDSI" => Urc::Cdsi {
            mem: text(0),
            index: num(1),
        },
        "+CUSD" => match num(0) {
            Some(s) => Urc::Cusd {
                status: u8::try_from(s).unwrap_or(u8::MAX),
                text: f.get(1).cloned(),
                dcs: num(2).and_then(|d| u8::try_from(d).ok()),
            },
            None => Urc::Malformed(line.to_string()),
        },
        "+CREG" | "+CGREG" | "+CEREG" => {
            let domain = match name {
                "+CREG" => RegDomain::Cs,
                "+CGREG" => RegDomain::Gprs,
                _ => RegDomain::Eps,
            };
            match parse_registration(&f) {
                Some((status, lac, cell)) => Urc::Registration {
                    domain,
                    status,
                    lac,
                    cell,
                },
                None => Urc::Malformed(line.to_string()),
            }
        }
        "+CLCC" => match parse_clcc(&f) {
            Some(e) => Urc::Clcc(e),
            None => Urc::Malformed(line.to_string()),
        },
        "+QUSIM" => Urc::QuSim,
        "+QIND" => Urc::Qind(rest.to_string()),
        "+CPIN" => Urc::Cpin(rest.to_string()),
        "+CMT" | "+CDS" => Urc::Malformed(line.to_string()),
        "^ORIG" => Urc::HuaweiOrig,
        "^CONF" => Urc::HuaweiConf,
        "^CONN" => Urc::HuaweiConn,
        "^CEND" => Urc::HuaweiCend,
        "^SMMEMFULL" => Urc::SmsMemoryFull(text(0).unwrap_or_default()),
        "+RXDTMF" | "^DDTMF" | "+QTONEDET" => {
            let key = if name == "+QTONEDET" {
                num(0).and_then(char::from_u32)
            } else {
                text(0).and_then(|t| t.chars().next())
            };
            match key.map(|k| k.to_ascii_uppercase()) {
                Some(k) if k.is_ascii_digit() || matches!(k, '*' | '#' | 'A'..='D') => Urc::Dtmf(k),
                _ => Urc::Malformed(line.to_string()),
            }
        }
        n if n.starts_with('^') && n.len() > 1 => Urc::HuaweiNoise(line.to_string()),
        _ => return None,
    })
}

/// Classifies a [`Frame::TwoLine`].
pub fn classify_two_line(header: &str, pdu: &str) -> Urc {
    if header.starts_with("+CMT:") {
        Urc::Cmt {
            pdu: pdu.to_string(),
        }
    } else if header.starts_with("+CDS:") {
        Urc::Cds {
            pdu: pdu.to_string(),
        }
    } else {
        Urc::Malformed(header.to_string())
    }
}

/// Registration in either form: URC `<stat>[,<lac>,<ci>[,<act>]]` or
/// response `<n>,<stat>[,<lac>,<ci>[,<act>]]`. The second field being an
/// unquoted number tells the response form apart.
pub fn parse_registration(f: &[String]) -> Option<(u8, Option<String>, Option<String>)> {
    let is_num = |s: &String| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let response_form = f.len() >= 2 && is_num(&f[1]) && f[1].len() <= 2 && !f[1].starts_with('"');
    let off = usize::from(response_form);
    let status: u8 = f.get(off)?.parse().ok()?;
    let lac = f.get(off + 1).filter(|s| !s.is_empty()).cloned();
    let cell = f.get(off + 2).filter(|s| !s.is_empty()).cloned();
    Some((status, lac, cell))
}

/// `+CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>...]`
pub fn parse_clcc(f: &[String]) -> Option<ClccEntry> {
    Some(ClccEntry {
        id: f.first()?.parse().ok()?,
        incoming: f.get(1)? == "1",
        state: f.get(2)?.parse().ok()?,
        number: f.get(5).filter(|s| !s.is_empty()).cloned(),
    })
}

/// Splits `a,"b,c",d` into `["a", "b,c", "d"]`, trimming spaces and quotes.
/// Bounded by the line length.
pub fn fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(std::mem::take(&mut cur).trim().to_string());
            }
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// The fields of `+CLIP: "<number>",<type>,"<subaddr>",<satype>,"<alpha>",<CLI
/// validity>` (27.007 §7.6; every field after the type is optional).
/// Validity 0 (or none) and 3 (payphone) keep the number; 1 (withheld), 2
/// (interworking) and 4 (other) drop whatever is in it: networks put
/// placeholders there ("", "Unknown", the caller's real number under CLIR
/// on some modems) that are not a number to show or call back.
pub fn parse_clip(f: &[String]) -> Urc {
    use crate::types::NumberAbsence;
    let absence = match f.get(5).and_then(|v| v.trim().parse::<u32>().ok()) {
        Some(1) => Some(NumberAbsence::Withheld),
        Some(2) | Some(4) => Some(NumberAbsence::Unavailable),
        _ => None,
    };
    let number = f
        .first()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty() && absence.is_none())
        .map(|n| n.chars().take(64).collect());
    Urc::Clip {
        number,
        name: f.get(4).and_then(|a| clip_name(a)),
        absence,
    }
}

/// `+CLIP`'s alpha field as text: a modem in `AT+CSCS="UCS2"` writes it as
/// the hex of UTF-16 units (`"0418043204300043"`), read as such when it looks
/// like text in that form (see `crossline_pdu::ussd::detect`); control
/// characters are dropped and at most 64 characters kept.
fn clip_name(alpha: &str) -> Option<String> {
    use crossline_pdu::ussd::{PayloadFormat, decode_as, detect};
    let a = alpha.trim();
    if a.is_empty() {
        return None;
    }
    // DCS 0x0F (GSM 7-bit): the guess says UCS2 only for hex whose units
    // all look like text; 0x08 (UCS2) then decodes it as such.
    let text = match detect(0x0F, a) {
        PayloadFormat::Ucs2Hex => {
            decode_as(0x08, a, PayloadFormat::Ucs2Hex).unwrap_or_else(|_| a.to_string())
        }
        _ => a.to_string(),
    };
    let name: String = text
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

/// Parses everything in `data` with a fresh splitter and an idle context and
/// a few command contexts; returns the number of frames. Used by the fuzz
/// target and the corpus test: it must never panic, whatever the bytes.
pub fn exercise(data: &[u8]) -> usize {
    let mut s = Splitter::new();
    s.push(data);
    let contexts = [
        Context {
            idle: true,
            ..Context::default()
        },
        Context {
            prefixes: &["+CMGL:", "+CREG:"],
            ..Context::default()
        },
        Context {
            call_command: true,
            echo: &["ATD123;"],
            ..Context::default()
        },
        Context::default(),
    ];
    let mut n = 0;
    while let Some(frame) = s.next_frame() {
        n += 1;
        match frame {
            Frame::Line(l) => {
                for ctx in &contexts {
                    let _ = classify(&l, ctx);
                }
                let _ = fields(&l);
            }
            Frame::TwoLine { header, pdu } => {
                let _ = classify_two_line(&header, &pdu);
            }
            Frame::Prompt | Frame::Garbage { .. } => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut s = Splitter::new();
        let mut v = Vec::new();
        for c in chunks {
            s.push(c);
            while let Some(f) = s.next_frame() {
                v.push(f);
            }
        }
        v
    }

    /// Feeds `data` split at every single byte boundary (and in one piece)
    /// and checks the frames are always the same.
    fn all_splits(data: &[u8]) -> Vec<Frame> {
        let whole = frames(&[data]);
        for i in 0..=data.len() {
            let (a, b) = data.split_at(i);
            assert_eq!(frames(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(frames(&bytes), whole, "byte by byte");
        whole
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_string())
    }

    #[test]
    fn response_with_urc_in_the_middle() {
        let data = b"\r\n+CREG: 0,1\r\n\r\n+CMTI: \"SM\",3\r\n\r\nOK\r\n";
        let f = all_splits(data);
        assert_eq!(
            f,
            vec![line("+CREG: 0,1"), line("+CMTI: \"SM\",3"), line("OK")]
        );
        let ctx = Context {
            prefixes: &["+CREG:"],
            ..Context::default()
        };
        assert_eq!(
            classify("+CREG: 0,1", &ctx),
            Class::Info("+CREG: 0,1".into())
        );
        assert_eq!(
            classify("+CMTI: \"SM\",3", &ctx),
            Class::Urc(Urc::Cmti {
                mem: Some("SM".into()),
                index: Some(3)
            })
        );
        assert_eq!(classify("OK", &ctx), Class::Final(Final::Ok));
    }

    #[test]
    fn prompt_without_newline() {
        let data = b"AT+CMGS=23\r\r\n> ";
        let f = all_splits(data);
        assert_eq!(f, vec![line("AT+CMGS=23"), Frame::Prompt]);
        let ctx = Context {
            echo: &["AT+CMGS=23"],
            ..Context::default()
        };
        assert_eq!(classify("AT+CMGS=23", &ctx), Class::Echo);
    }

    #[test]
    fn two_line_cmt_and_cds() {
        let data = b"\r\n+CMT: ,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n+CDS: 25\r\n0006\r\n";
        let f = all_splits(data);
        assert_eq!(
            f,
            vec![
                Frame::TwoLine {
                    header: "+CMT: ,24".into(),
                    pdu: "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07".into()
                },
                Frame::TwoLine { header: "+CDS: 25".into(), pdu: "0006".into() },
            ]
        );
    }

    #[test]
    fn cmt_without_pdu_is_not_lost_and_next_line_kept() {
        let f = all_splits(b"+CMT: ,24\r\nOK\r\n");
        assert_eq!(f, vec![line("+CMT: ,24"), line("OK")]);
        assert_eq!(
            classify(
                "+CMT: ,24",
                &Context {
                    idle: true,
                    ..Context::default()
                }
            ),
            Class::Urc(Urc::Malformed("+CMT: ,24".into()))
        );
    }

    #[test]
    fn garbage_and_overlong_lines_are_bounded() {
        let mut data = vec![0xffu8, 0x00, 0x81, b'\r', b'\n'];
        data.extend(std::iter::repeat_n(b'A', MAX_LINE + 10));
        data.extend_from_slice(b"\r\nOK\r\n");
        let f = frames(&[&data]);
        assert_eq!(f.len(), 3);
        assert!(matches!(f[0], Frame::Garbage { .. }));
        assert_eq!(f[1], Frame::Garbage { len: MAX_LINE + 10 });
        assert_eq!(f[2], line("OK"));
    }

    #[test]
    fn simcom_double_cr() {
        let f = all_splits(
            b"\r\r\n+CRING: VOICE\r\r\n\r\n+CLIP: \"+79161234567\",145,\"\",0,\"\",0\r\n",
        );
        assert_eq!(f.len(), 2);
        let idle = Context {
            idle: true,
            ..Context::default()
        };
        assert_eq!(
            classify("+CRING: VOICE", &idle),
            Class::Urc(Urc::CRing("VOICE".into()))
        );
        assert_eq!(
            classify("+CLIP: \"+79161234567\",145,\"\",0,\"\",0", &idle),
            Class::Urc(Urc::Clip {
                number: Some("+79161234567".into()),
                name: None,
                absence: None,
            })
        );
    }

    fn clip(line: &str) -> Urc {
        let idle = Context {
            idle: true,
            ..Context::default()
        };
        match classify(line, &idle) {
            Class::Urc(u) => u,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn clip_urc(
        number: Option<&str>,
        name: Option<&str>,
        absence: Option<crate::types::NumberAbsence>,
    ) -> Urc {
        Urc::Clip {
            number: number.map(str::to_string),
            name: name.map(str::to_string),
            absence,
        }
    }

    #[test]
    fn clip_every_field_as_real_modems_send_it() {
        use crate::types::NumberAbsence::{Unavailable, Withheld};
        let cases: &[(&str, Urc)] = &[
            // Quectel EC25, a valid number with the network's name.
            (
                "+CLIP: \"+380501234567\",145,\"\",0,\"Olena K\",0",
                clip_urc(Some("+380501234567"), Some("Olena K"), None),
            ),
            // SIMCom SIM7600: national number, no name.
            (
                "+CLIP: \"0501234567\",129,\"\",,\"\",0",
                clip_urc(Some("0501234567"), None, None),
            ),
            // Withheld (CLIR): empty number, type 128, validity 1.
            (
                "+CLIP: \"\",128,\"\",0,\"\",1",
                clip_urc(None, None, Some(Withheld)),
            ),
            // Some firmwares put a placeholder in the number: validity wins.
            (
                "+CLIP: \"Unknown\",128,\"\",0,\"\",1",
                clip_urc(None, None, Some(Withheld)),
            ),
            // Unavailable (interworking), and "other reasons" (validity 4).
            (
                "+CLIP: \"\",128,\"\",0,\"\",2",
                clip_urc(None, None, Some(Unavailable)),
            ),
            (
                "+CLIP: \"\",128,,,,4",
                clip_urc(None, None, Some(Unavailable)),
            ),
            // Payphone (validity 3) keeps its number.
            (
                "+CLIP: \"+380442001122\",145,\"\",0,\"\",3",
                clip_urc(Some("+380442001122"), None, None),
            ),
            // SIM800 and old modems: number and type only.
            (
                "+CLIP: \"+79161234567\",145",
                clip_urc(Some("+79161234567"), None, None),
            ),
            // A modem in AT+CSCS="UCS2": the alpha is UTF-16 hex ("Іван").
            (
                "+CLIP: \"+380501234567\",145,\"\",0,\"0406043204300043D\",0",
                // an odd hex length is not UCS2: kept as text
                clip_urc(Some("+380501234567"), Some("0406043204300043D"), None),
            ),
            (
                "+CLIP: \"+380501234567\",145,\"\",0,\"040604320430043D\",0",
                clip_urc(Some("+380501234567"), Some("Іван"), None),
            ),
            // A hex-looking name that is not text in UCS2 stays as sent.
            (
                "+CLIP: \"+15551234567\",145,\"\",0,\"CAFE\",0",
                clip_urc(Some("+15551234567"), Some("CAFE"), None),
            ),
            // A name with a comma inside its quotes, and a withheld number
            // that still has a name.
            (
                "+CLIP: \"\",128,\"\",0,\"Bank, Kyiv\",1",
                clip_urc(None, Some("Bank, Kyiv"), Some(Withheld)),
            ),
            // Nothing at all.
            ("+CLIP: ", clip_urc(None, None, None)),
            // A validity that is not a number is ignored.
            (
                "+CLIP: \"+380501234567\",145,\"\",0,\"\",x",
                clip_urc(Some("+380501234567"), None, None),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(&clip(line), want, "{line}");
        }
    }

    #[test]
    fn clip_name_is_bounded_and_has_no_control_characters() {
        let long = "N".repeat(500);
        let Urc::Clip { name, .. } =
            clip(&format!("+CLIP: \"+380501234567\",145,\"\",0,\"{long}\",0"))
        else {
            panic!()
        };
        assert_eq!(name.map(|n| n.chars().count()), Some(64));
        // UCS2 hex of "A\u{7}B": the bell is dropped.
        let Urc::Clip { name, .. } = clip("+CLIP: \"1\",129,\"\",0,\"004100070042\",0") else {
            panic!()
        };
        assert_eq!(
            name.as_deref(),
            Some("004100070042"),
            "a control unit: not taken as UCS2"
        );
        let Urc::Clip { name, .. } = clip("+CLIP: \"1\",129,\"\",0,\"A\u{7}B\",0") else {
            panic!()
        };
        assert_eq!(name.as_deref(), Some("AB"));
    }

    #[test]
    fn multi_line_ussd_answer_kept_together() {
        let f = all_splits(b"\r\n+CUSD: 0,\"Balance:\n10.00 RUB\",15\r\n");
        assert_eq!(f, vec![line("+CUSD: 0,\"Balance:\n10.00 RUB\",15")]);
    }

    #[test]
    fn errors_numeric_and_verbose() {
        let ctx = Context::default();
        let Class::Final(Final::Cme(e)) = classify("+CME ERROR: SIM not inserted", &ctx) else {
            panic!()
        };
        assert_eq!(e.code, Some(10));
        let Class::Final(Final::Cms(e)) = classify("+CMS ERROR: 321", &ctx) else {
            panic!()
        };
        assert_eq!(e.code, Some(321));
    }

    #[test]
    fn call_results_depend_on_command() {
        let atd = Context {
            call_command: true,
            ..Context::default()
        };
        assert_eq!(classify("BUSY", &atd), Class::Final(Final::Busy));
        let other = Context {
            prefixes: &["+CSQ:"],
            ..Context::default()
        };
        assert_eq!(classify("NO CARRIER", &other), Class::Urc(Urc::NoCarrier));
    }

    #[test]
    fn registration_forms() {
        let f = fields("2,1,\"00C3\",\"0000A13F\",7");
        assert_eq!(
            parse_registration(&f),
            Some((1, Some("00C3".into()), Some("0000A13F".into())))
        );
        let f = fields("5,\"00C3\",\"A13F\",7");
        assert_eq!(
            parse_registration(&f),
            Some((5, Some("00C3".into()), Some("A13F".into())))
        );
        assert_eq!(parse_registration(&fields("0")), Some((0, None, None)));
        assert_eq!(parse_registration(&fields("0,2")), Some((2, None, None)));
    }

    #[test]
    fn echo_on_send_with_pdu_echo_every_split() {
        // Echo on: the command line, the prompt, the typed PDU with Ctrl-Z
        // echoed back, a URC, then the result.
        let data = b"AT+CMGS=18\r\r\n> 0011000B911326880736F40000A70661F1985C3603\x1a\r\n\r\n+CMTI: \"ME\",7\r\n\r\n+CMGS: 5\r\n\r\nOK\r\n";
        let f = all_splits(data);
        assert_eq!(
            f,
            vec![
                line("AT+CMGS=18"),
                Frame::Prompt,
                line("0011000B911326880736F40000A70661F1985C3603"),
                line("+CMTI: \"ME\",7"),
                line("+CMGS: 5"),
                line("OK"),
            ]
        );
        let echo = ["AT+CMGS=18", "0011000B911326880736F40000A70661F1985C3603"];
        let ctx = Context {
            prefixes: &["+CMGS:"],
            echo: &echo,
            ..Context::default()
        };
        let classes: Vec<Class> = f
            .iter()
            .filter_map(|fr| match fr {
                Frame::Line(l) => Some(classify(l, &ctx)),
                _ => None,
            })
            .collect();
        assert_eq!(
            classes,
            vec![
                Class::Echo,
                Class::Echo,
                Class::Urc(Urc::Cmti {
                    mem: Some("ME".into()),
                    index: Some(7)
                }),
                Class::Info("+CMGS: 5".into()),
                Class::Final(Final::Ok),
            ]
        );
    }

    #[test]
    fn cmgl_listing_every_split() {
        let data = b"\r\n+CMGL: 0,1,,24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n+CMGL: 3,0,\"\",24\r\n07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07\r\n\r\nOK\r\n";
        let f = all_splits(data);
        assert_eq!(f.len(), 5);
        let ctx = Context {
            prefixes: &["+CMGL:"],
            ..Context::default()
        };
        for fr in &f[..4] {
            let Frame::Line(l) = fr else { panic!("{fr:?}") };
            assert!(matches!(classify(l, &ctx), Class::Info(_)), "{l}");
        }
    }

    proptest::proptest! {
        // A fixed seed: CI runs the same cases every time (a failure found
        // is kept in proptest-regressions/ beside the source).
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
            )),
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0000_A7A7),
            ..proptest::test_runner::Config::default()
        })]
        #[test]
        fn arbitrary_bytes_never_panic_and_split_anywhere(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700),
            cut in 0usize..700,
        ) {
            let _ = exercise(&data);
            let cut = cut.min(data.len());
            let (a, b) = data.split_at(cut);
            proptest::prop_assert_eq!(frames(&[a, b]), frames(&[&data]));
        }

        #[test]
        fn any_clip_line_parses_without_panic_and_bounded(
            rest in "[ -~\u{80}-\u{10FFFF}]{0,300}",
            hex in "[0-9A-Fa-f]{0,200}",
        ) {
            for line in [format!("+CLIP: {rest}"), format!("+CLIP: \"1\",129,\"\",0,\"{hex}\",0")] {
                if let Some(Urc::Clip { number, name, .. }) = known_urc(&line) {
                    proptest::prop_assert!(number.is_none_or(|n| n.chars().count() <= 64));
                    proptest::prop_assert!(name.is_none_or(|n| n.chars().count() <= 64 && !n.chars().any(char::is_control)));
                }
            }
        }

        #[test]
        fn known_lines_come_back_whatever_the_line_ends(
            picks in proptest::collection::vec((0usize..8, 0usize..4), 1..20),
        ) {
            const LINES: [&str; 8] = ["OK", "RING", "+CMTI: \"SM\",1", "+CSQ: 20,99", "^RSSI:17",
                "+CME ERROR: 10", "VOICE CALL: BEGIN", "NO CARRIER"];
            const ENDS: [&str; 4] = ["\r\n", "\r\r\n", "\n", "\r"];
            let mut data = String::from("\r\n");
            let mut want = Vec::new();
            for (l, e) in &picks {
                data.push_str(LINES[*l]);
                data.push_str(ENDS[*e]);
                want.push(line(LINES[*l]));
            }
            proptest::prop_assert_eq!(frames(&[data.as_bytes()]), want);
        }
    }

    #[test]
    fn modem_detected_dtmf_per_vendor() {
        assert_eq!(known_urc("+RXDTMF: 5"), Some(Urc::Dtmf('5')));
        assert_eq!(known_urc("+QTONEDET: 35"), Some(Urc::Dtmf('#')));
        assert_eq!(known_urc("^DDTMF: a"), Some(Urc::Dtmf('A')));
        assert_eq!(
            known_urc("+QTONEDET: 88"),
            Some(Urc::Malformed("+QTONEDET: 88".into()))
        );
        assert_eq!(
            known_urc("+RXDTMF:"),
            Some(Urc::Malformed("+RXDTMF:".into()))
        );
    }

    #[test]
    fn vendor_urcs_during_prefixless_command() {
        let ctx = Context::default();
        assert_eq!(
            classify("^RSSI:17", &ctx),
            Class::Urc(Urc::HuaweiNoise("^RSSI:17".into()))
        );
        assert_eq!(classify("RDY", &ctx), Class::Urc(Urc::Ready));
        assert_eq!(
            classify("867123456789012", &ctx),
            Class::Info("867123456789012".into())
        );
        assert_eq!(
            classify("UNDER-VOLTAGE WARNNING", &ctx),
            Class::Urc(Urc::UnderVoltage("UNDER-VOLTAGE WARNNING".into()))
        );
    }
}
