//! The AT engine: one command at a time over any tokio `AsyncRead +
//! AsyncWrite`, with a hard deadline per command, echo stripping, URCs taken
//! out of responses, the `> ` prompt of AT+CMGS, and resync after a hang.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, trace, warn};

use crate::error::AtError;
use crate::parser::{self, Class, Context, Final, Frame, Splitter, Urc};

/// Anything the engine can talk AT over: a serial port, a PTY, a TCP socket,
/// an in-memory duplex in tests.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}

/// An open connection to a modem.
pub type Transport = Box<dyn Io>;

/// A boxed future returning a freshly opened [`Transport`].
pub type OpenFuture = Pin<Box<dyn Future<Output = std::io::Result<Transport>> + Send>>;

/// Opens a serial device with tokio-serial (8N1, no flow control).
pub fn open_serial(path: &str, baud: u32) -> std::io::Result<Transport> {
    use tokio_serial::SerialPortBuilderExt;
    // Said plainly: serialport's own error for a missing node is vaguer.
    if !std::path::Path::new(path).exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{path} does not exist"),
        ));
    }
    let port = tokio_serial::new(path, baud)
        .flow_control(tokio_serial::FlowControl::None)
        .timeout(Duration::from_secs(1))
        .open_native_async()
        .map_err(std::io::Error::other)?;
    Ok(Box::new(port))
}

/// A reusable opener for [`crate::Modem::start`]: reopens `path` (a device
/// node or a symlink such as /dev/serial/by-id/...) on every call.
pub fn serial_opener(
    path: impl Into<String>,
    baud: u32,
) -> impl Fn() -> OpenFuture + Send + Sync + 'static {
    let path: String = path.into();
    move || {
        let path = path.clone();
        Box::pin(async move { open_serial(&path, baud) }) as OpenFuture
    }
}

/// One AT command to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// The command line without the trailing CR, e.g. `AT+CSQ`.
    pub text: String,
    /// Prefixes of its information lines (e.g. `+CSQ:`).
    pub prefixes: &'static [&'static str],
    /// Hard deadline for the final result, from the moment it is written.
    pub timeout: Duration,
    /// For AT+CMGS: the PDU hex to type after the `> ` prompt.
    pub pdu: Option<String>,
    /// ATD/ATA: NO CARRIER/BUSY/NO ANSWER end this command.
    pub call: bool,
    /// Keep the command text out of logs (`AT+CPIN="<pin>"`).
    pub redact: bool,
}

impl Command {
    pub fn new(text: impl Into<String>, timeout: Duration) -> Self {
        Self {
            text: text.into(),
            prefixes: &[],
            timeout,
            pdu: None,
            call: false,
            redact: false,
        }
    }
    pub fn prefixes(mut self, p: &'static [&'static str]) -> Self {
        self.prefixes = p;
        self
    }
    pub fn pdu(mut self, pdu: String) -> Self {
        self.pdu = Some(pdu);
        self
    }
    pub fn call(mut self) -> Self {
        self.call = true;
        self
    }
}

/// The information lines of a successful command (URCs and echo removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub lines: Vec<String>,
}

impl Response {
    /// Contents after `prefix` of every line starting with it, trimmed.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter_map(move |l| l.strip_prefix(prefix).map(str::trim))
    }
    /// First line with `prefix`, split into fields.
    pub fn fields(&self, prefix: &str) -> Option<Vec<String>> {
        self.with_prefix(prefix).next().map(parser::fields)
    }
}

/// Most information lines kept for one command (AT+CMGL of a full ME store
/// is ~510 lines).
const MAX_LINES: usize = 4096;
/// Most URCs kept waiting for the driver.
const MAX_URCS: usize = 1024;

/// The AT engine over one open transport.
pub struct AtEngine {
    io: Transport,
    port: String,
    splitter: Splitter,
    urcs: VecDeque<Urc>,
    buf: Vec<u8>,
    garbage: u64,
    quiet: bool,
}

impl AtEngine {
    /// `port` names the device in errors and logs (e.g. `gsm0 /dev/ttyUSB2`).
    pub fn new(io: Transport, port: impl Into<String>) -> Self {
        Self {
            io,
            port: port.into(),
            splitter: Splitter::new(),
            urcs: VecDeque::new(),
            buf: vec![0; 1024],
            garbage: 0,
            quiet: false,
        }
    }

    /// Name used in errors.
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Garbage frames seen so far (line noise counter for health).
    pub fn garbage_seen(&self) -> u64 {
        self.garbage
    }

    /// Next queued URC.
    pub fn take_urc(&mut self) -> Option<Urc> {
        self.urcs.pop_front()
    }

    /// Drops queued URCs matching `pred`.
    pub fn discard_urcs(&mut self, pred: impl Fn(&Urc) -> bool) {
        self.urcs.retain(|u| !pred(u));
    }

    /// True if URCs are waiting.
    pub fn has_urcs(&self) -> bool {
        !self.urcs.is_empty()
    }

    fn queue_urc(&mut self, u: Urc) {
        trace!(port = %self.port, urc = ?u, "urc");
        if self.urcs.len() >= MAX_URCS {
            warn!(port = %self.port, "URC queue full; dropping the oldest");
            self.urcs.pop_front();
        }
        self.urcs.push_back(u);
    }

    /// Handles buffered frames while no command is in flight.
    fn drain_idle(&mut self) {
        let ctx = Context {
            idle: true,
            ..Context::default()
        };
        while let Some(frame) = self.splitter.next_frame() {
            match frame {
                Frame::Line(l) => match parser::classify(&l, &ctx) {
                    Class::Urc(Urc::Other(o)) if !o.starts_with('+') && !o.starts_with('^') => {
                        debug!(port = %self.port, line = %o, "stray line while idle");
                    }
                    Class::Urc(u) => self.queue_urc(u),
                    Class::Final(f) => {
                        debug!(port = %self.port, result = ?f, "stray final result while idle")
                    }
                    Class::Info(_) | Class::Echo => {}
                },
                Frame::TwoLine { header, pdu } => {
                    let u = parser::classify_two_line(&header, &pdu);
                    self.queue_urc(u);
                }
                Frame::Prompt => debug!(port = %self.port, "stray prompt while idle"),
                Frame::Garbage { len } => self.note_garbage(len),
            }
        }
    }

    fn note_garbage(&mut self, len: usize) {
        self.garbage = self.garbage.saturating_add(1);
        warn!(port = %self.port, len, "garbage on the line (noise, wrong baud rate, or the modem rebooting)");
    }

    /// Reads once (waiting as long as needed) and queues URCs. Cancel-safe:
    /// use it in `select!` while idle.
    pub async fn read_some(&mut self) -> Result<(), AtError> {
        let n = self
            .io
            .read(&mut self.buf)
            .await
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Err(AtError::Closed {
                port: self.port.clone(),
            });
        }
        let data = self.buf.get(..n).unwrap_or_default().to_vec();
        if !self.quiet {
            trace!(port = %self.port, bytes = ?String::from_utf8_lossy(&data), "rx");
        }
        self.splitter.push(&data);
        self.drain_idle();
        Ok(())
    }

    /// Reads and queues URCs until `until` (used for backoff waits so that
    /// URCs keep flowing). Returns early with the error if the port fails.
    pub async fn pump_until(&mut self, until: Instant) -> Result<(), AtError> {
        loop {
            match tokio::time::timeout_at(until, self.read_some()).await {
                Err(_) => return Ok(()),
                Ok(r) => r?,
            }
        }
    }

    fn io_err(&self, e: std::io::Error) -> AtError {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            AtError::Closed {
                port: self.port.clone(),
            }
        } else {
            AtError::Io {
                port: self.port.clone(),
                source: e,
            }
        }
    }

    async fn write(
        &mut self,
        data: &[u8],
        deadline: Instant,
        command: &str,
    ) -> Result<(), AtError> {
        if !self.quiet {
            trace!(port = %self.port, bytes = ?String::from_utf8_lossy(data), "tx");
        }
        let fut = async {
            self.io.write_all(data).await?;
            self.io.flush().await
        };
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io_err(e)),
            Err(_) => Err(AtError::Timeout {
                port: self.port.clone(),
                command: command.to_string(),
                after: Duration::ZERO,
            }),
        }
    }

    /// Runs one command to its final result within its hard deadline. URCs
    /// arriving meanwhile are queued (see [`AtEngine::take_urc`]); they never
    /// extend the deadline.
    pub async fn run(&mut self, cmd: &Command) -> Result<Response, AtError> {
        let quiet = std::mem::replace(&mut self.quiet, cmd.redact);
        let r = self.run_inner(cmd).await;
        self.quiet = quiet;
        // URCs that arrived in the same read as the final result are still in
        // the buffer: queue them now, or a +CMTI right behind an OK would wait
        // for the next command (up to a health interval).
        self.drain_idle();
        if cmd.redact {
            return r.map_err(AtError::redacted);
        }
        r
    }

    async fn run_inner(&mut self, cmd: &Command) -> Result<Response, AtError> {
        self.drain_idle();
        let started = Instant::now();
        let deadline = started + cmd.timeout;
        let shown = if cmd.redact {
            "<redacted>"
        } else {
            cmd.text.as_str()
        };
        debug!(port = %self.port, command = %shown, "at");
        let mut line = cmd.text.clone().into_bytes();
        line.push(b'\r');
        self.write(&line, deadline, &cmd.text).await?;
        let echo_pdu = cmd.pdu.clone().unwrap_or_default();
        let echo = [cmd.text.as_str(), echo_pdu.as_str()];
        let ctx = Context {
            prefixes: cmd.prefixes,
            call_command: cmd.call,
            echo: &echo,
            idle: false,
        };
        let mut lines = Vec::new();
        let mut pdu_sent = false;
        loop {
            while let Some(frame) = self.splitter.next_frame() {
                match frame {
                    Frame::Prompt => {
                        if let (Some(pdu), false) = (&cmd.pdu, pdu_sent) {
                            let mut data = pdu.clone().into_bytes();
                            data.push(0x1a);
                            // From here on, a failure is ambiguous.
                            pdu_sent = true;
                            if let Err(e) = self.write(&data, deadline, &cmd.text).await {
                                return Err(self.ambiguous(cmd, e.to_string()));
                            }
                        }
                    }
                    Frame::Garbage { len } => self.note_garbage(len),
                    Frame::TwoLine { header, pdu } => {
                        let u = parser::classify_two_line(&header, &pdu);
                        self.queue_urc(u);
                    }
                    Frame::Line(l) => match parser::classify(&l, &ctx) {
                        Class::Echo => {}
                        Class::Urc(u) => self.queue_urc(u),
                        Class::Info(s) => {
                            if lines.len() < MAX_LINES {
                                lines.push(s);
                            }
                        }
                        Class::Final(f) => {
                            debug!(port = %self.port, command = %cmd.text, result = ?f, elapsed = ?started.elapsed(), "at done");
                            return self.finish(cmd, f, lines, pdu_sent);
                        }
                    },
                }
            }
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut self.buf)).await;
            match read {
                Err(_) => {
                    if cmd.pdu.is_some() {
                        // Abort a pending prompt / PDU entry.
                        let _ = tokio::time::timeout(
                            Duration::from_millis(500),
                            self.io.write_all(&[0x1b]),
                        )
                        .await;
                        if pdu_sent {
                            return Err(
                                self.ambiguous(cmd, format!("no result within {:?}", cmd.timeout))
                            );
                        }
                        return Err(AtError::NoPrompt {
                            port: self.port.clone(),
                            command: cmd.text.clone(),
                        });
                    }
                    return Err(AtError::Timeout {
                        port: self.port.clone(),
                        command: cmd.text.clone(),
                        after: cmd.timeout,
                    });
                }
                Ok(Ok(0)) => {
                    let e = AtError::Closed {
                        port: self.port.clone(),
                    };
                    return Err(if pdu_sent {
                        self.ambiguous(cmd, e.to_string())
                    } else {
                        e
                    });
                }
                Ok(Err(e)) => {
                    let e = self.io_err(e);
                    return Err(if pdu_sent {
                        self.ambiguous(cmd, e.to_string())
                    } else {
                        e
                    });
                }
                Ok(Ok(n)) => {
                    let data = self.buf.get(..n).unwrap_or_default().to_vec();
                    if !self.quiet {
                        trace!(port = %self.port, bytes = ?String::from_utf8_lossy(&data), "rx");
                    }
                    self.splitter.push(&data);
                }
            }
        }
    }

    fn ambiguous(&self, cmd: &Command, reason: String) -> AtError {
        AtError::Ambiguous {
            port: self.port.clone(),
            command: cmd.text.clone(),
            reason,
        }
    }

    fn finish(
        &self,
        cmd: &Command,
        f: Final,
        lines: Vec<String>,
        pdu_sent: bool,
    ) -> Result<Response, AtError> {
        let port = self.port.clone();
        let command = cmd.text.clone();
        match f {
            // An OK before the PDU was typed is a stale answer (e.g. to a
            // command that hung earlier): the message did not leave.
            Final::Ok if cmd.pdu.is_some() && !pdu_sent => Err(AtError::NoPrompt { port, command }),
            Final::Ok | Final::Connect => Ok(Response { lines }),
            Final::Error => Err(AtError::Error { port, command }),
            Final::Cme(error) => Err(AtError::Cme {
                port,
                command,
                error,
            }),
            Final::Cms(error) => Err(AtError::Cms {
                port,
                command,
                error,
            }),
            Final::NoCarrier | Final::Busy | Final::NoAnswer | Final::NoDialtone => {
                Err(AtError::CallResult {
                    port,
                    command,
                    result: format!("{f:?}"),
                })
            }
        }
    }

    /// Gets a hung or confused modem back to a known state: ESC (aborts a
    /// pending SMS prompt), then `AT` until `OK`, up to `attempts` times with
    /// `each` as deadline. Leftover bytes are dropped.
    pub async fn resync(&mut self, attempts: u32, each: Duration) -> Result<(), AtError> {
        let mut last = None;
        for i in 0..attempts.max(1) {
            let deadline = Instant::now() + each;
            self.write(&[0x1b], deadline, "ESC").await?;
            // Let a half-typed line end, then drop whatever is buffered.
            self.splitter.reset();
            match self.run(&Command::new("AT", each)).await {
                Ok(_) => {
                    if i > 0 {
                        debug!(port = %self.port, attempts = i + 1, "resynced");
                    }
                    // Drop any late answers to the AT probes.
                    let settle = Instant::now() + Duration::from_millis(50);
                    self.pump_until(settle).await?;
                    return Ok(());
                }
                Err(e) if e.is_transport() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(AtError::Timeout {
            port: self.port.clone(),
            command: "AT".into(),
            after: each,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    fn pair() -> (AtEngine, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(4096);
        (AtEngine::new(Box::new(a), "test"), b)
    }

    async fn expect_cmd(r: &mut BufReader<tokio::io::DuplexStream>) -> String {
        let mut buf = Vec::new();
        r.read_until(b'\r', &mut buf).await.unwrap();
        String::from_utf8(buf).unwrap().trim().to_string()
    }

    #[tokio::test]
    async fn urc_in_the_middle_is_taken_out() {
        let (mut eng, modem) = pair();
        let mut r = BufReader::new(modem);
        let task = tokio::spawn(async move {
            assert_eq!(expect_cmd(&mut r).await, "AT+CREG?");
            r.get_mut()
                .write_all(
                    b"AT+CREG?\r\r\n+CREG: 2,1\r\n\r\n+CMTI: \"SM\",2\r\n\r\nRING\r\n\r\nOK\r\n",
                )
                .await
                .unwrap();
            r
        });
        let resp = eng
            .run(&Command::new("AT+CREG?", Duration::from_secs(2)).prefixes(&["+CREG:"]))
            .await
            .unwrap();
        assert_eq!(resp.lines, vec!["+CREG: 2,1"]);
        assert_eq!(
            eng.take_urc(),
            Some(Urc::Cmti {
                mem: Some("SM".into()),
                index: Some(2)
            })
        );
        assert_eq!(eng.take_urc(), Some(Urc::Ring));
        task.await.unwrap();
    }

    /// A +CMTI in the same read right behind the final OK is queued when the
    /// command returns, not left in the buffer until the next command.
    #[tokio::test]
    async fn urc_right_after_the_final_result_is_queued_at_once() {
        let (mut eng, modem) = pair();
        let mut r = BufReader::new(modem);
        let task = tokio::spawn(async move {
            assert_eq!(expect_cmd(&mut r).await, "AT");
            r.get_mut()
                .write_all(b"\r\nOK\r\n\r\n+CMTI: \"SM\",7\r\n")
                .await
                .unwrap();
            r
        });
        eng.run(&Command::new("AT", Duration::from_secs(2)))
            .await
            .unwrap();
        let _modem = task.await.unwrap();
        // One write, so one read brought the OK and the URC together: the
        // URC must already be queued, with no further command or read.
        assert_eq!(
            eng.take_urc(),
            Some(Urc::Cmti {
                mem: Some("SM".into()),
                index: Some(7)
            })
        );
    }

    #[tokio::test(start_paused = true)]
    async fn urcs_do_not_extend_the_deadline() {
        let (mut eng, modem) = pair();
        let task = tokio::spawn(async move {
            let mut m = modem;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if m.write_all(b"\r\n^RSSI:17\r\n").await.is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let err = eng
            .run(&Command::new("AT+CSQ", Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(6));
        assert!(eng.has_urcs());
        task.abort();
    }

    #[tokio::test]
    async fn prompt_pdu_and_result() {
        let (mut eng, modem) = pair();
        let mut r = BufReader::new(modem);
        let task = tokio::spawn(async move {
            assert_eq!(expect_cmd(&mut r).await, "AT+CMGS=5");
            r.get_mut().write_all(b"\r\n> ").await.unwrap();
            let mut pdu = Vec::new();
            r.read_until(0x1a, &mut pdu).await.unwrap();
            assert_eq!(pdu, b"0011000B\x1a");
            r.get_mut()
                .write_all(b"\r\n+CMGS: 42\r\n\r\nOK\r\n")
                .await
                .unwrap();
        });
        let resp = eng
            .run(
                &Command::new("AT+CMGS=5", Duration::from_secs(2))
                    .prefixes(&["+CMGS:"])
                    .pdu("0011000B".into()),
            )
            .await
            .unwrap();
        assert_eq!(resp.fields("+CMGS:"), Some(vec!["42".to_string()]));
        task.await.unwrap();
    }

    #[tokio::test]
    async fn port_closing_after_pdu_is_ambiguous() {
        let (mut eng, modem) = pair();
        let mut r = BufReader::new(modem);
        let task = tokio::spawn(async move {
            expect_cmd(&mut r).await;
            r.get_mut().write_all(b"\r\n> ").await.unwrap();
            let mut pdu = Vec::new();
            r.read_until(0x1a, &mut pdu).await.unwrap();
            drop(r);
        });
        let err = eng
            .run(&Command::new("AT+CMGS=5", Duration::from_secs(2)).pdu("00".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::Ambiguous { .. }), "{err}");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn stale_ok_before_the_prompt_is_not_a_send() {
        let (mut eng, modem) = pair();
        let mut r = BufReader::new(modem);
        let task = tokio::spawn(async move {
            expect_cmd(&mut r).await;
            r.get_mut().write_all(b"\r\nOK\r\n").await.unwrap();
            r
        });
        let err = eng
            .run(&Command::new("AT+CMGS=5", Duration::from_secs(2)).pdu("00".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, AtError::NoPrompt { .. }), "{err}");
        task.await.unwrap();
    }

    #[tokio::test]
    async fn cms_error_typed() {
        let (mut eng, mut modem) = pair();
        modem.write_all(b"").await.unwrap();
        let task = tokio::spawn(async move {
            let mut r = BufReader::new(modem);
            expect_cmd(&mut r).await;
            r.get_mut()
                .write_all(b"\r\n+CMS ERROR: 42\r\n")
                .await
                .unwrap();
            r
        });
        let err = eng
            .run(&Command::new("AT+CMGS=5", Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert_eq!(err.cms_code(), Some(42));
        assert_eq!(err.class(), crate::error::ErrorClass::Temporary);
        task.await.unwrap();
    }
}
