//! SMS: the first channel adapter. Replies go out through the appliance
//! that hosts the line (proto's `send_sms` command); segments are counted
//! with the same PDU codec the appliance encodes with (crates/pdu).

use super::{Capabilities, ChannelAdapter, Dispatch, Measure, Reply, Unreachable};
use crate::services::contacts::address::{Address, Region, normalise};
use crossline_core::Channel;
use crossline_proto::CommandKind;

/// Most parts a reply may take.
pub const MAX_SEGMENTS: usize = 10;
/// GSM 7-bit septets in one part of a multipart message (160 alone).
const GSM7_PER_PART: usize = 153;
/// UTF-16 units in one part of a multipart UCS-2 message (70 alone).
const UCS2_PER_PART: usize = 67;

/// The SMS adapter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sms;

/// The encoding `text` needs and its length in that encoding's units:
/// GSM 7-bit septets (an extension character such as `€` takes two) when
/// every character has one, else UTF-16 units.
fn encoding(text: &str) -> (&'static str, usize) {
    let septets: Option<usize> = text.chars().map(crossline_pdu::gsm7::char_septets).sum();
    match septets {
        Some(n) => ("gsm7", n),
        None => ("ucs2", text.encode_utf16().count()),
    }
}

/// Parts the codec splits `text` into (what the appliance will send).
fn segments(text: &str) -> Option<usize> {
    let to = crossline_pdu::Address::parse("+10000000000").ok()?;
    crossline_pdu::encode_submit(&to, text, &crossline_pdu::SubmitOptions::default())
        .ok()
        .map(|p| p.len())
}

impl ChannelAdapter for Sms {
    fn channel(&self) -> Channel {
        Channel::Sms
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            channel: Channel::Sms.as_str(),
            max_chars: MAX_SEGMENTS * GSM7_PER_PART,
            max_segments: Some(MAX_SEGMENTS),
            attachments: false,
            reply_window_s: None,
        }
    }

    fn measure(&self, text: &str) -> Measure {
        let (encoding, units) = encoding(text);
        let per_part = if encoding == "gsm7" {
            GSM7_PER_PART
        } else {
            UCS2_PER_PART
        };
        let max_units = MAX_SEGMENTS * per_part;
        // Beyond the limit the codec is not asked (a text of megabytes
        // would be encoded for nothing): the count is the plain estimate.
        let segments = if units > max_units {
            units.div_ceil(per_part)
        } else {
            segments(text).unwrap_or(units.div_ceil(per_part))
        };
        Measure {
            encoding,
            units,
            max_units,
            segments,
            fits: units <= max_units && segments <= MAX_SEGMENTS,
        }
    }

    fn identity(&self, from: &str, region: Region) -> Address {
        normalise(from, region)
    }

    fn reachable(&self, to: &Address) -> Result<(), Unreachable> {
        if to.kind.replyable() {
            Ok(())
        } else {
            Err(Unreachable(format!(
                "the contact is the alphanumeric sender {:?}; SMS cannot be sent to it",
                to.value
            )))
        }
    }

    fn dispatch(&self, reply: &Reply) -> Dispatch {
        Dispatch::Device(CommandKind::SendSms {
            line: reply.line.clone(),
            to: reply.to.clone(),
            text: reply.text.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::contacts::address::AddressKind;

    fn measure(text: &str) -> Measure {
        Sms.measure(text)
    }

    #[test]
    fn a_short_latin_text_is_one_gsm7_segment() {
        let m = measure("Your order is ready");
        assert_eq!(
            (m.encoding, m.units, m.segments, m.fits),
            ("gsm7", 19, 1, true)
        );
        assert_eq!(m.max_units, 1530);
    }

    #[test]
    fn gsm7_fits_160_in_one_segment_and_splits_at_153_after() {
        assert_eq!(measure(&"a".repeat(160)).segments, 1);
        assert_eq!(measure(&"a".repeat(161)).segments, 2);
        assert_eq!(measure(&"a".repeat(306)).segments, 2);
        assert_eq!(measure(&"a".repeat(307)).segments, 3);
    }

    #[test]
    fn an_extension_character_counts_two_septets() {
        let m = measure(&"€".repeat(80));
        assert_eq!((m.encoding, m.units, m.segments), ("gsm7", 160, 1));
        assert_eq!(measure(&"€".repeat(81)).segments, 2);
    }

    #[test]
    fn cyrillic_needs_ucs2_70_in_one_segment_67_after() {
        let m = measure(&"Ж".repeat(70));
        assert_eq!(
            (m.encoding, m.units, m.segments, m.fits),
            ("ucs2", 70, 1, true)
        );
        assert_eq!(m.max_units, 670);
        assert_eq!(measure(&"Ж".repeat(71)).segments, 2);
        // One Cyrillic letter makes a Latin text UCS-2.
        let mixed = format!("{}Ж", "a".repeat(69));
        assert_eq!(measure(&mixed).encoding, "ucs2");
    }

    #[test]
    fn an_emoji_is_two_utf16_units() {
        let m = measure("🙂");
        assert_eq!((m.encoding, m.units, m.segments), ("ucs2", 2, 1));
    }

    #[test]
    fn ten_segments_is_the_limit_in_either_encoding() {
        let gsm = measure(&"a".repeat(1530));
        assert_eq!((gsm.segments, gsm.fits), (10, true));
        let gsm = measure(&"a".repeat(1531));
        assert_eq!((gsm.segments, gsm.fits), (11, false));
        let ucs = measure(&"Ж".repeat(670));
        assert_eq!((ucs.segments, ucs.fits), (10, true));
        let ucs = measure(&"Ж".repeat(671));
        assert_eq!((ucs.segments, ucs.fits), (11, false));
        // Far beyond the limit: refused without running the codec.
        let huge = measure(&"a".repeat(1_000_000));
        assert_eq!((huge.segments, huge.fits), (6536, false));
    }

    #[test]
    fn the_capabilities_say_ten_segments_no_attachments_no_window() {
        let c = Sms.capabilities();
        assert_eq!(c.channel, "sms");
        assert_eq!(c.max_chars, 1530);
        assert_eq!(c.max_segments, Some(10));
        assert!(!c.attachments);
        assert_eq!(c.reply_window_s, None);
    }

    #[test]
    fn an_alphanumeric_sender_cannot_be_replied_to() {
        let region = Region::default();
        let bank = Sms.identity("MyBank", region);
        assert_eq!(bank.kind, AddressKind::Alphanumeric);
        let e = Sms.reachable(&bank).unwrap_err();
        assert!(e.to_string().contains("\"MyBank\""), "{e}");
        let phone = Sms.identity("0501234567", region);
        assert_eq!(phone.value, "+380501234567");
        assert!(Sms.reachable(&phone).is_ok());
    }

    #[test]
    fn a_reply_goes_out_as_send_sms_on_its_line() {
        let reply = Reply {
            command: crossline_core::EventId::new(),
            line: "gsm1".into(),
            to: "+380501234567".into(),
            text: "Hi".into(),
        };
        assert_eq!(
            Sms.dispatch(&reply),
            Dispatch::Device(CommandKind::SendSms {
                line: "gsm1".into(),
                to: "+380501234567".into(),
                text: "Hi".into()
            })
        );
    }
}
