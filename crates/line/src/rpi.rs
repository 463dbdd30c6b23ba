//! The Raspberry Pi backend (feature `rpi`): the line's pins from BCM GPIO
//! numbers through rppal, whose pins implement embedded-hal 1.0.

use crate::{Fxo, GpioPins, LineConfig, LineError, PinRole};
use rppal::gpio::{Gpio, InputPin, OutputPin};

/// An FXO line on the Raspberry Pi's GPIO.
pub type RpiLine = Fxo<OutputPin, InputPin, InputPin>;

/// Opens the GPIO pins and builds the line, hook relay on-hook. Inputs whose
/// active level is low (an opto-coupler pulling down) get the internal
/// pull-up.
pub fn open(config: LineConfig, pins: GpioPins) -> Result<RpiLine, LineError> {
    let open_err = |pin: PinRole, gpio: u8, e: rppal::gpio::Error| LineError::Open {
        line: config.name.clone(),
        pin,
        gpio,
        detail: e.to_string(),
    };
    let chip = Gpio::new().map_err(|e| open_err(PinRole::Hook, pins.hook, e))?;
    let hook_pin = chip
        .get(pins.hook)
        .map_err(|e| open_err(PinRole::Hook, pins.hook, e))?;
    // Start on-hook: never seize the line while the program starts.
    let hook = if config.levels.hook_off_high {
        hook_pin.into_output_low()
    } else {
        hook_pin.into_output_high()
    };
    let input = |gpio: u8, role: PinRole, active_low: bool| {
        chip.get(gpio)
            .map_err(|e| open_err(role, gpio, e))
            .map(|p| {
                if active_low {
                    p.into_input_pullup()
                } else {
                    p.into_input()
                }
            })
    };
    let ring = input(pins.ring, PinRole::Ring, config.levels.ring_active_low)?;
    let sense = input(
        pins.loop_sense,
        PinRole::LoopSense,
        config.levels.loop_active_low,
    )?;
    Fxo::new(config, hook, ring, sense)
}
