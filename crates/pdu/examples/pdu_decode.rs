//! Decodes PDU hex given on the command line and prints it as JSON.
//!
//! `cargo run -p crossline-pdu --example pdu_decode -- mt|mo smsc|nosmsc HEX...`
fn main() {
    let mut args = std::env::args().skip(1);
    let direction = match args.next().as_deref() {
        Some("mo") => crossline_pdu::Direction::MobileOriginated,
        _ => crossline_pdu::Direction::MobileTerminated,
    };
    let with_smsc = args.next().as_deref() != Some("nosmsc");
    for hex in args {
        match crossline_pdu::decode_hex(&hex, direction, with_smsc) {
            Ok(pdu) => println!(
                "{}",
                serde_json::to_string(&pdu).unwrap_or_else(|e| e.to_string())
            ),
            Err(e) => println!("error: {e}"),
        }
    }
}
