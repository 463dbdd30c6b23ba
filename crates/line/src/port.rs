//! Where a line's pins are: the Raspberry Pi's GPIO or a line link. One
//! `open` for the appliance's lines service, whatever the backend.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::link::LinkAudio;
use crate::{DriverEvent, Fxo, LineConfig, LineDriver, LineError};

/// BCM GPIO numbers of one line's pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioPins {
    /// Drives the hook relay.
    pub hook: u8,
    /// The ring-detect opto-coupler's output.
    pub ring: u8,
    /// The loop-current / polarity opto-coupler's output.
    pub loop_sense: u8,
}

/// Where a line's pins are (the `port` of an FXO line in the appliance config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Port {
    /// BCM GPIO numbers on a Raspberry Pi (needs the `rpi` feature).
    Gpio(GpioPins),
    /// A simulated line served on a Unix socket (`crossline_sim::line::SimLine::serve`).
    Link { path: PathBuf },
}

/// An opened line: its driver task, its events, and (for a link) its audio.
#[derive(Debug)]
pub struct OpenedLine {
    pub driver: LineDriver,
    pub events: mpsc::Receiver<DriverEvent>,
    /// The call audio for a link; on GPIO hardware the audio is the line's
    /// ALSA device (crossline-audio), configured beside the port.
    pub audio: Option<LinkAudio>,
}

/// Opens the line's pins, puts the relay on-hook and starts the driver task
/// (polling every [`LineDriver::PERIOD`]) on the current tokio runtime.
pub async fn open(config: LineConfig, port: &Port) -> Result<OpenedLine, LineError> {
    match port {
        Port::Link { path } => {
            let linked = crate::link::connect(path, &config.name).await?;
            let fxo = Fxo::new(config, linked.hook, linked.ring, linked.sense)?;
            let (driver, events) = LineDriver::spawn(fxo, LineDriver::PERIOD);
            Ok(OpenedLine {
                driver,
                events,
                audio: Some(linked.audio),
            })
        }
        #[cfg(feature = "rpi")]
        Port::Gpio(pins) => {
            let fxo = crate::rpi::open(config, *pins)?;
            let (driver, events) = LineDriver::spawn(fxo, LineDriver::PERIOD);
            Ok(OpenedLine {
                driver,
                events,
                audio: None,
            })
        }
        #[cfg(not(feature = "rpi"))]
        Port::Gpio(_) => Err(LineError::Config {
            line: config.name.clone(),
            reason: "GPIO pins need a build with the `rpi` feature of crossline-line".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_read_from_config() {
        let gpio: Port =
            serde_json::from_str(r#"{"kind":"gpio","hook":17,"ring":27,"loop_sense":22}"#).unwrap();
        assert_eq!(
            gpio,
            Port::Gpio(GpioPins {
                hook: 17,
                ring: 27,
                loop_sense: 22
            })
        );
        let link: Port =
            serde_json::from_str(r#"{"kind":"link","path":"/run/fxo0.sock"}"#).unwrap();
        assert_eq!(
            link,
            Port::Link {
                path: "/run/fxo0.sock".into()
            }
        );
    }

    #[cfg(not(feature = "rpi"))]
    #[tokio::test]
    async fn gpio_without_the_rpi_feature_says_so() {
        let port = Port::Gpio(GpioPins {
            hook: 17,
            ring: 27,
            loop_sense: 22,
        });
        let e = open(LineConfig::default(), &port).await.unwrap_err();
        assert!(e.to_string().contains("rpi"), "{e}");
    }

    #[tokio::test]
    async fn a_link_nobody_serves_is_an_error_naming_the_line_and_path() {
        let dir = std::env::temp_dir().join(format!("crossline-line-test-{}", std::process::id()));
        let port = Port::Link {
            path: dir.join("missing.sock"),
        };
        let e = open(LineConfig::default(), &port).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("fxo0") && text.contains("missing.sock"),
            "{text}"
        );
    }
}

#[cfg(test)]
mod embed_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// How the appliance config can hold a line: its port and its settings
    /// as a nested table (serde's `flatten` would let misspelt keys through).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        port: Port,
        #[serde(default)]
        fxo: LineConfig,
    }

    #[test]
    fn a_line_entry_nests_the_config_beside_its_port_and_refuses_typos() {
        let e: Entry = serde_json::from_str(
            r#"{"port":{"kind":"link","path":"/run/fxo1.sock"},"fxo":{"name":"fxo1","country":"uk"}}"#,
        )
        .unwrap();
        assert_eq!(e.fxo.name, "fxo1");
        assert_eq!(e.fxo.country, crate::Country::Uk);
        assert!(matches!(e.port, Port::Link { .. }));
        let typo = serde_json::from_str::<Entry>(
            r#"{"port":{"kind":"link","path":"/run/fxo1.sock"},"fxo":{"contry":"uk"}}"#,
        );
        assert!(typo.is_err(), "a misspelt key is refused");
    }
}
