//! An async-friendly wrapper: a tokio task polls the line every ~10 ms and
//! sends its events through a channel; a cloneable handle gives the
//! commands.
//!
//! ```no_run
//! # async fn demo<H, R, L>(fxo: crossline_line::Fxo<H, R, L>) -> Result<(), crossline_line::LineError>
//! # where H: embedded_hal::digital::OutputPin + Send + 'static,
//! #       R: embedded_hal::digital::InputPin + Send + 'static,
//! #       L: embedded_hal::digital::InputPin + Send + 'static {
//! use crossline_line::{LineDriver, LineEvent};
//! let (line, mut events) = LineDriver::spawn(fxo, LineDriver::PERIOD);
//! while let Some(event) = events.recv().await {
//!     match event? {
//!         LineEvent::Ring { count: 2 } => line.answer()?,
//!         LineEvent::FarEndDisconnect { .. } => break,
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use embedded_hal::digital::{InputPin, OutputPin};
use tokio::sync::mpsc;

use crate::{Fxo, LineConfig, LineError, LineEvent};

/// What the driver task needs of a line, without its pin types.
trait Control: Send {
    fn poll(&mut self, now: Instant) -> Result<Vec<LineEvent>, LineError>;
    fn answer(&mut self) -> Result<(), LineError>;
    fn seize(&mut self) -> Result<(), LineError>;
    fn hang_up(&mut self) -> Result<(), LineError>;
    fn tone_disconnect(&mut self) -> Result<(), LineError>;
    fn is_off_hook(&self) -> bool;
}

impl<H, R, L> Control for Fxo<H, R, L>
where
    H: OutputPin + Send,
    R: InputPin + Send,
    L: InputPin + Send,
{
    fn poll(&mut self, now: Instant) -> Result<Vec<LineEvent>, LineError> {
        Fxo::poll(self, now)
    }
    fn answer(&mut self) -> Result<(), LineError> {
        Fxo::answer(self)
    }
    fn seize(&mut self) -> Result<(), LineError> {
        Fxo::seize(self)
    }
    fn hang_up(&mut self) -> Result<(), LineError> {
        Fxo::hang_up(self)
    }
    fn tone_disconnect(&mut self) -> Result<(), LineError> {
        Fxo::tone_disconnect(self)
    }
    fn is_off_hook(&self) -> bool {
        Fxo::is_off_hook(self)
    }
}

/// Commands to a line driven by a [`LineDriver`] task. Cheap to clone; the
/// task stops when the event receiver is dropped.
#[derive(Clone)]
pub struct LineDriver {
    config: Arc<LineConfig>,
    line: Arc<Mutex<dyn Control>>,
}

impl std::fmt::Debug for LineDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineDriver")
            .field("line", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// The driver's events: a line event, or a pin error (reported once until
/// the error changes or clears; the task keeps polling).
pub type DriverEvent = Result<LineEvent, LineError>;

impl LineDriver {
    /// The poll period the ring detector is tuned for.
    pub const PERIOD: Duration = Duration::from_millis(10);

    /// Spawns the polling task on the current tokio runtime. Time is tokio's
    /// (so `tokio::time::pause` drives it in tests).
    pub fn spawn<H, R, L>(
        fxo: Fxo<H, R, L>,
        period: Duration,
    ) -> (Self, mpsc::Receiver<DriverEvent>)
    where
        H: OutputPin + Send + 'static,
        R: InputPin + Send + 'static,
        L: InputPin + Send + 'static,
    {
        let config = Arc::new(fxo.config().clone());
        let line: Arc<Mutex<dyn Control>> = Arc::new(Mutex::new(fxo));
        let (tx, rx) = mpsc::channel(64);
        let task_line = Arc::clone(&line);
        let task_name = config.name.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            loop {
                tick.tick().await;
                if tx.is_closed() {
                    break;
                }
                let now = tokio::time::Instant::now().into_std();
                let polled = task_line
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .poll(now);
                let batch: Vec<DriverEvent> = match polled {
                    Ok(events) => {
                        last_error = None;
                        events.into_iter().map(Ok).collect()
                    }
                    Err(e) => {
                        let text = e.to_string();
                        if last_error.as_deref() == Some(text.as_str()) {
                            Vec::new()
                        } else {
                            tracing::warn!(line = %task_name, error = %text, "line poll failed");
                            last_error = Some(text);
                            vec![Err(e)]
                        }
                    }
                };
                for item in batch {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
        });
        (Self { config, line }, rx)
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Control) -> T) -> T {
        let mut guard = self.line.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut *guard)
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The line's configuration (its caller ID standard, disconnect-tone
    /// setting and country for the voice side).
    pub fn config(&self) -> &LineConfig {
        &self.config
    }

    /// See [`Fxo::answer`].
    pub fn answer(&self) -> Result<(), LineError> {
        self.with(|l| l.answer())
    }

    /// See [`Fxo::seize`].
    pub fn seize(&self) -> Result<(), LineError> {
        self.with(|l| l.seize())
    }

    /// See [`Fxo::hang_up`].
    pub fn hang_up(&self) -> Result<(), LineError> {
        self.with(|l| l.hang_up())
    }

    /// See [`Fxo::tone_disconnect`].
    pub fn tone_disconnect(&self) -> Result<(), LineError> {
        self.with(|l| l.tone_disconnect())
    }

    pub fn is_off_hook(&self) -> bool {
        self.with(|l| l.is_off_hook())
    }
}
