//! The driver against the simulated modem over a real PTY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Rig, WAIT, long_cyrillic, long_cyrillic_parts, test_config};
use crossline_modem::{
    CallEnd, CallEvent, IncomingSms, ModemEvent, NumberAbsence, RegStatus, SendError, SendOptions,
    SimState,
};
use crossline_pdu::DeliveryOutcome;
use crossline_sim::{CallState, CallerDisplay, Registration, SimConfig};

fn sms(e: ModemEvent) -> IncomingSms {
    match e {
        ModemEvent::Sms(s) => s,
        other => panic!("not an SMS: {other:?}"),
    }
}

async fn wait_sms(rig: &mut Rig) -> IncomingSms {
    sms(rig
        .wait_for("an SMS", |e| matches!(e, ModemEvent::Sms(_)))
        .await)
}

#[tokio::test]
async fn probe_reports_identity_sim_network_and_signal() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.set_signal(20);
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.manufacturer.as_deref(), Some("Quectel"));
    assert_eq!(info.model.as_deref(), Some("EC25"));
    assert_eq!(info.imei.as_deref(), Some("861234051234567"));
    assert_eq!(info.iccid.as_deref(), Some("89380031234567890123"));
    assert_eq!(info.imsi.as_deref(), Some("255031234567890"));
    assert_eq!(info.operator.as_deref(), Some("Kyivstar"));
    assert_eq!(info.sim, SimState::Ready);
    assert_eq!(info.registration, RegStatus::Home);
    assert_eq!(info.signal_dbm, Some(-73));
    assert_eq!(info.signal_bars, 4);
    assert!(info.cnmi.is_some());
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["sim"]["state"], "ready");
    let _ = rig.drain_for(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn cyrillic_multipart_via_cmti_stays_on_sim_until_confirmed() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    let text = long_cyrillic();
    assert_eq!(rig.sim.inject_sms("+380501234567", &text).unwrap(), 4);
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, text);
    assert_eq!(m.sender, "+380501234567");
    assert_eq!(m.parts, 4);
    assert!(!m.incomplete);
    assert_eq!(m.receipt.locations.len(), 4);
    // Not confirmed yet: every part is still stored.
    assert_eq!(rig.sim.stored().len(), 4);
    rig.modem.confirm(m.receipt.clone()).await.unwrap();
    assert!(rig.sim.stored().is_empty());
}

#[tokio::test]
async fn cyrillic_multipart_via_cmt_with_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("gsm0.json");
    let st = state.clone();
    let mut rig = Rig::new(SimConfig::default(), move |c| {
        c.delivery = Some(crossline_modem::Delivery::Direct);
        c.state_file = Some(st);
    })
    .await;
    let text = long_cyrillic();
    rig.sim.inject_sms("+380501234567", &text).unwrap();
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, text);
    assert!(m.receipt.locations.is_empty());
    assert_eq!(m.receipt.direct_parts.len(), 4);
    // Acknowledged with AT+CNMA: nothing was stored on the SIM.
    assert!(rig.sim.commands().iter().any(|c| c == "AT+CNMA"));
    assert!(rig.sim.stored().is_empty());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert_eq!(saved.matches("\"pdu\"").count(), 4);
    rig.modem.confirm(m.receipt).await.unwrap();
    let saved = std::fs::read_to_string(&state).unwrap();
    assert_eq!(saved.matches("\"pdu\"").count(), 0);
    // No redelivery (the network got its acknowledgements).
    let later = rig.drain_for(Duration::from_millis(500)).await;
    assert!(
        !later.iter().any(|e| matches!(e, ModemEvent::Sms(_))),
        "{later:?}"
    );
}

#[tokio::test]
async fn direct_parts_survive_a_driver_restart_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("gsm0.json");
    let sim = common::sim(SimConfig::default()).await;
    let mut cfg = test_config(&sim);
    cfg.delivery = Some(crossline_modem::Delivery::Direct);
    cfg.state_file = Some(state.clone());
    let parts = long_cyrillic_parts(77);
    let mut rig = Rig::start(sim, cfg.clone());
    rig.wait_for("health", |e| matches!(e, ModemEvent::Health(_)))
        .await;
    rig.sim.inject_pdu(&parts[0].hex()).unwrap();
    rig.sim.inject_pdu(&parts[1].hex()).unwrap();
    rig.sim
        .wait_until("two +CMT acknowledged", WAIT, |s| {
            s.commands().iter().filter(|c| *c == "AT+CNMA").count() >= 2
        })
        .await
        .unwrap();
    // Restart: the two parts come back from the file, the rest from the network.
    rig.restart(cfg).await;
    rig.wait_for("health", |e| matches!(e, ModemEvent::Health(_)))
        .await;
    rig.sim.inject_pdu(&parts[2].hex()).unwrap();
    rig.sim.inject_pdu(&parts[3].hex()).unwrap();
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, long_cyrillic());
    assert!(!m.incomplete);
}

#[tokio::test]
async fn send_multipart_cyrillic_with_delivery_reports_matched() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    let text = long_cyrillic();
    let sent = rig
        .modem
        .send_sms("+380509876543", &text, SendOptions::default())
        .await
        .unwrap();
    assert_eq!(sent.refs.len(), 4);
    let on_sim = rig.sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(on_sim.len(), 1);
    assert_eq!(on_sim[0].text, text);
    assert_eq!(on_sim[0].to, "+380509876543");
    let mut parts_reported = Vec::new();
    while parts_reported.len() < 4 {
        let e = rig
            .wait_for("a delivery report", |e| {
                matches!(e, ModemEvent::DeliveryReport(_))
            })
            .await;
        let ModemEvent::DeliveryReport(r) = e else {
            unreachable!()
        };
        assert_eq!(r.id, Some(sent.id));
        assert_eq!(r.outcome, DeliveryOutcome::Delivered);
        let part = r.part.unwrap();
        assert_eq!(sent.refs[part], r.reference);
        parts_reported.push(part);
    }
    parts_reported.sort();
    assert_eq!(parts_reported, vec![0, 1, 2, 3]);
    // Stored status reports were deleted after being reported.
    rig.sim
        .wait_until("status reports deleted", WAIT, |s| s.stored().is_empty())
        .await
        .unwrap();
}

#[tokio::test]
async fn urc_in_the_middle_of_a_response() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.inject_urc_mid_response("+CREG: 5");
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.sim, SimState::Ready);
    let e = rig
        .wait_for(
            "the roaming registration",
            |e| matches!(e, ModemEvent::Registration(r) if r.status == RegStatus::Roaming),
        )
        .await;
    assert!(matches!(e, ModemEvent::Registration(_)));
    // A +CMTI in the middle of a response is honoured too.
    rig.sim.inject_urc_mid_response("RING");
    rig.sim.inject_sms("+380501234567", "Привет").unwrap();
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, "Привет");
}

#[tokio::test]
async fn unplugged_mid_send_is_unknown_never_resent_and_driver_recovers() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.unplug_after_next_submit();
    let err = rig
        .modem
        .send_sms("+380509876543", "Первое сообщение", SendOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Unknown { .. }), "{err:?}");
    rig.wait_for("disconnected", |e| {
        matches!(e, ModemEvent::Disconnected { .. })
    })
    .await;
    rig.sim.replug().await.unwrap();
    rig.wait_for("reconnected", |e| matches!(e, ModemEvent::Reconnected))
        .await;
    rig.modem
        .send_sms("+380509876543", "Второе", SendOptions::default())
        .await
        .unwrap();
    let sent = rig.sim.wait_sent(2, WAIT).await.unwrap();
    // The ambiguous one went out exactly once (the network took it), never again.
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, vec!["Первое сообщение", "Второе"]);
    assert_eq!(rig.sim.sent_parts().len(), 2);
}

#[tokio::test]
async fn queued_while_unplugged_is_sent_after_replug() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.unplug().await.unwrap();
    rig.wait_for("disconnected", |e| {
        matches!(e, ModemEvent::Disconnected { .. })
    })
    .await;
    let modem = rig.modem.clone();
    let send = tokio::spawn(async move {
        modem
            .send_sms("+380509876543", "Ждал розетку", SendOptions::default())
            .await
    });
    rig.sim.replug().await.unwrap();
    let sent = send.await.unwrap().unwrap();
    assert_eq!(sent.refs.len(), 1);
    assert_eq!(rig.sim.sent().len(), 1);
}

#[tokio::test]
async fn garbage_and_a_hung_command_are_survived() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim
        .inject_garbage(b"\x00\xff\xfe#@!\r\n\x81\x82garbage\r\nAT+\r\n");
    rig.sim.hang_next("AT+CSQ");
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.sim, SimState::Ready);
    // Back in sync: everything works afterwards.
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.operator.as_deref(), Some("Kyivstar"));
    rig.sim.inject_sms("+380501234567", "после мусора").unwrap();
    assert_eq!(wait_sms(&mut rig).await.text, "после мусора");
}

#[tokio::test]
async fn sim_pin_is_entered_from_config() {
    let rig = Rig::new(
        SimConfig {
            pin: Some("4321".into()),
            ..SimConfig::default()
        },
        |c| {
            c.pin = Some("4321".into());
        },
    )
    .await;
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.sim, SimState::Ready);
    assert!(rig.sim.commands().iter().any(|c| c == "AT+CPIN=\"4321\""));
}

#[tokio::test]
async fn wrong_pin_is_tried_once_and_reported() {
    let sim = common::sim(SimConfig {
        pin: Some("4321".into()),
        ..SimConfig::default()
    })
    .await;
    let mut cfg = test_config(&sim);
    cfg.pin = Some("0000".into());
    let mut rig = Rig::start(sim, cfg);
    let e = rig
        .wait_for(
            "a PIN warning",
            |e| matches!(e, ModemEvent::Warning(w) if w.contains("rejected")),
        )
        .await;
    assert!(matches!(e, ModemEvent::Warning(_)));
    rig.wait_for(
        "health",
        |e| matches!(e, ModemEvent::Health(i) if i.sim == SimState::PinRejected),
    )
    .await;
    let tries = rig
        .sim
        .commands()
        .iter()
        .filter(|c| c.starts_with("AT+CPIN="))
        .count();
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn missing_pin_is_reported() {
    let sim = common::sim(SimConfig {
        pin: Some("4321".into()),
        ..SimConfig::default()
    })
    .await;
    let cfg = test_config(&sim);
    let mut rig = Rig::start(sim, cfg);
    rig.wait_for(
        "health",
        |e| matches!(e, ModemEvent::Health(i) if i.sim == SimState::PinRequired),
    )
    .await;
}

#[tokio::test]
async fn registration_lost_and_regained() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.set_registration(Registration::Searching);
    rig.wait_for(
        "searching",
        |e| matches!(e, ModemEvent::Registration(r) if r.status == RegStatus::Searching),
    )
    .await;
    assert_eq!(
        rig.modem.probe().await.unwrap().registration,
        RegStatus::Searching
    );
    rig.sim.set_registration(Registration::Home);
    rig.wait_for(
        "home",
        |e| matches!(e, ModemEvent::Registration(r) if r.status == RegStatus::Home),
    )
    .await;
    assert_eq!(
        rig.modem.probe().await.unwrap().registration,
        RegStatus::Home
    );
}

#[tokio::test]
async fn ussd_balance_quectel_and_huawei() {
    let rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.set_ussd_reply("Баланс: 125,40 грн");
    assert_eq!(rig.modem.ussd("*111#").await.unwrap(), "Баланс: 125,40 грн");

    let rig = Rig::new(
        SimConfig {
            profile: crossline_sim::Profile::HuaweiE173,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    rig.sim.set_ussd_reply("Balance: 12.50 UAH");
    assert_eq!(rig.modem.ussd("*111#").await.unwrap(), "Balance: 12.50 UAH");
    assert_eq!(rig.sim.ussd_requests(), vec!["*111#".to_string()]);
}

#[tokio::test]
async fn clip_name_and_withheld_number_reach_the_call_event() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    // A named caller; the modem in UCS2 mode writes the name as hex.
    rig.sim.inject_call_with(
        "+380501112233",
        CallerDisplay {
            alpha: "041E043B0435043D0430".into(),
            validity: 0,
        },
    );
    let e = rig
        .wait_for("incoming call", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Incoming { .. }))
        })
        .await;
    assert_eq!(
        e,
        ModemEvent::Call(CallEvent::Incoming {
            number: Some("+380501112233".into()),
            name: Some("Олена".into()),
            absence: None,
        })
    );
    rig.sim.remote_hangup();
    rig.wait_for("ended", |e| {
        matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    // A withheld caller: no number, and the reason.
    rig.sim.inject_call_with(
        "+380509998877",
        CallerDisplay {
            alpha: String::new(),
            validity: 1,
        },
    );
    let e = rig
        .wait_for("incoming call", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Incoming { .. }))
        })
        .await;
    assert_eq!(
        e,
        ModemEvent::Call(CallEvent::Incoming {
            number: None,
            name: None,
            absence: Some(NumberAbsence::Withheld),
        })
    );
    // Each further RING repeats what is known.
    let e = rig
        .wait_for("ringing", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Ringing { .. }))
        })
        .await;
    assert_eq!(
        e,
        ModemEvent::Call(CallEvent::Ringing {
            number: None,
            name: None,
            absence: Some(NumberAbsence::Withheld),
        })
    );
}

#[tokio::test]
async fn incoming_call_with_caller_id_answer_and_hang_up() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.answer_incoming("+380501112233").await;
    assert_eq!(rig.sim.calls()[0].state, CallState::Active);
    rig.modem.dtmf("12#").await.unwrap();
    assert_eq!(rig.sim.dtmf_sent(), "12#");
    rig.modem.hangup().await.unwrap();
    let e = rig
        .wait_for("ended", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
        })
        .await;
    assert_eq!(
        e,
        ModemEvent::Call(CallEvent::Ended {
            reason: CallEnd::Local
        })
    );
    assert!(rig.sim.calls().is_empty());
}

#[tokio::test]
async fn outgoing_call_connects_and_remote_hangs_up() {
    for profile in [
        crossline_sim::Profile::QuectelEc25,
        crossline_sim::Profile::Sim7600,
    ] {
        let mut rig = Rig::new(
            SimConfig {
                profile,
                ..SimConfig::default()
            },
            |_| {},
        )
        .await;
        rig.modem.dial("+380501112233").await.unwrap();
        rig.wait_for("dialing", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Dialing { .. }))
        })
        .await;
        rig.wait_for("connected", |e| {
            matches!(e, ModemEvent::Call(CallEvent::Connected))
        })
        .await;
        rig.sim.remote_hangup();
        let e = rig
            .wait_for("ended", |e| {
                matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
            })
            .await;
        assert_eq!(
            e,
            ModemEvent::Call(CallEvent::Ended {
                reason: CallEnd::Remote
            }),
            "{profile:?}"
        );
    }
}

#[tokio::test]
async fn unconfirmed_message_is_reoffered_after_restart_with_the_same_key() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim
        .inject_sms("+380501234567", "Не потеряйте меня")
        .unwrap();
    let first = wait_sms(&mut rig).await;
    // The appliance crashes before it stored the message: no confirm.
    rig.modem.shutdown().await;
    assert_eq!(rig.sim.stored().len(), 1);
    rig.restart(test_config(&rig.sim)).await;
    let again = wait_sms(&mut rig).await;
    assert_eq!(again.key, first.key);
    assert_eq!(again.text, "Не потеряйте меня");
    rig.modem.confirm(again.receipt).await.unwrap();
    assert!(rig.sim.stored().is_empty());
}

#[tokio::test]
async fn stored_parts_survive_a_restart_mid_message() {
    let sim = common::sim(SimConfig::default()).await;
    let parts = long_cyrillic_parts(99);
    let cfg = test_config(&sim);
    let mut rig = Rig::start(sim, cfg);
    rig.wait_for("health", |e| matches!(e, ModemEvent::Health(_)))
        .await;
    rig.sim.inject_pdu(&parts[0].hex()).unwrap();
    rig.sim.inject_pdu(&parts[1].hex()).unwrap();
    rig.sim
        .wait_until("two parts read", WAIT, |s| {
            s.commands()
                .iter()
                .filter(|c| c.starts_with("AT+CMGR="))
                .count()
                >= 2
        })
        .await
        .unwrap();
    rig.modem.shutdown().await;
    // While the driver is down the rest arrives.
    rig.sim.inject_pdu(&parts[2].hex()).unwrap();
    rig.sim.inject_pdu(&parts[3].hex()).unwrap();
    rig.restart(test_config(&rig.sim)).await;
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, long_cyrillic());
    assert_eq!(m.receipt.locations.len(), 4);
    rig.modem.confirm(m.receipt).await.unwrap();
    assert!(rig.sim.stored().is_empty());
}

#[tokio::test]
async fn incomplete_message_delivered_after_timeout_with_marker() {
    let mut rig = Rig::new(SimConfig::default(), |c| {
        c.reassembly_timeout = Duration::from_secs(1)
    })
    .await;
    let parts = long_cyrillic_parts(5);
    rig.sim.inject_pdu(&parts[0].hex()).unwrap();
    let m = wait_sms(&mut rig).await;
    assert!(m.incomplete);
    assert!(m.text.contains("missing"), "{}", m.text);
    assert_eq!(m.receipt.locations.len(), 1);
}

#[tokio::test]
async fn permanent_error_fails_one_message_temporary_is_retried() {
    let rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.fail_next("AT+CMGS", "+CMS ERROR: 21");
    let err = rig
        .modem
        .send_sms("+380509876543", "first", SendOptions::default())
        .await
        .unwrap_err();
    match err {
        SendError::Failed { code, .. } => assert_eq!(code, Some(21)),
        other => panic!("{other:?}"),
    }
    rig.sim.fail_next("AT+CMGS", "+CMS ERROR: 42");
    rig.modem
        .send_sms("+380509876543", "second", SendOptions::default())
        .await
        .unwrap();
    let sent = rig.sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "second");
}

#[tokio::test]
async fn undecodable_stored_pdu_is_offered_raw_and_can_be_confirmed() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    // A DELIVER whose user data length claims more than there is.
    rig.sim
        .inject_pdu("07911326040000F0040B911346610089F60000208062917314089FC8")
        .unwrap();
    let e = rig
        .wait_for("undecodable", |e| {
            matches!(e, ModemEvent::UndecodableSms { .. })
        })
        .await;
    let ModemEvent::UndecodableSms { receipt, .. } = e else {
        unreachable!()
    };
    rig.modem.confirm(receipt).await.unwrap();
    assert!(rig.sim.stored().is_empty());
}

#[tokio::test]
async fn octets_past_tp_udl_are_decoded_by_tp_udl_and_reported() {
    // What real networks deliver: the PDU runs three octets past TP-UDL.
    // gammu and ModemManager read such a message; so does the driver, and
    // it warns about the extra octets instead of dropping the message.
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim
        .inject_pdu(
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC370A0B0C",
        )
        .unwrap();
    let w = rig
        .wait_for(
            "the extra-octets warning",
            |e| matches!(e, ModemEvent::Warning(w) if w.contains("TP-UDL")),
        )
        .await;
    let ModemEvent::Warning(w) = w else {
        unreachable!()
    };
    assert!(w.contains("3 octet(s)") && w.contains("0A0B0C"), "{w}");
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, "hellohello");
    assert!(m.sender.ends_with("27838890001"), "{}", m.sender);
    rig.modem.confirm(m.receipt).await.unwrap();
    rig.sim
        .wait_until("the message deleted", WAIT, |s| s.stored().is_empty())
        .await
        .unwrap();
}

#[tokio::test]
async fn every_vendor_profile_detected_receives_and_sends() {
    for profile in crossline_sim::Profile::ALL {
        let mut rig = Rig::new(
            SimConfig {
                profile,
                noise_interval: Some(Duration::from_millis(300)),
                ..SimConfig::default()
            },
            |c| c.profile = crossline_modem::Profile::Auto,
        )
        .await;
        let info = rig.modem.probe().await.unwrap();
        assert_eq!(info.profile, common::driver_profile(profile), "{profile:?}");
        assert_eq!(info.model.as_deref(), Some(profile.model()), "{profile:?}");
        rig.sim
            .inject_sms("+380501234567", "Привіт, як справи? 😀")
            .unwrap();
        let m = wait_sms(&mut rig).await;
        assert_eq!(m.text, "Привіт, як справи? 😀", "{profile:?}");
        rig.modem.confirm(m.receipt).await.unwrap();
        let sent = rig
            .modem
            .send_sms("+380509876543", "Дякуємо!", SendOptions::default())
            .await
            .unwrap();
        assert_eq!(sent.refs.len(), 1);
        let e = rig
            .wait_for("delivery report", |e| {
                matches!(e, ModemEvent::DeliveryReport(_))
            })
            .await;
        let ModemEvent::DeliveryReport(r) = e else {
            unreachable!()
        };
        assert_eq!(r.id, Some(sent.id), "{profile:?}");
        rig.sim
            .wait_until("storage empty", WAIT, |s| s.stored().is_empty())
            .await
            .unwrap_or_else(|e| panic!("{profile:?}: {e}"));
    }
}

#[tokio::test]
async fn quectel_urc_port_is_configured_at_every_boot() {
    let mut rig = Rig::new(
        SimConfig {
            urc_port_needs_setup: true,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    assert!(
        rig.sim
            .commands()
            .iter()
            .any(|c| c.starts_with("AT+QURCCFG=\"urcport\""))
    );
    rig.sim.inject_sms("+380501234567", "URC port ok").unwrap();
    assert_eq!(wait_sms(&mut rig).await.text, "URC port ok");
}

#[tokio::test]
async fn cnmi_falls_back_when_ds1_is_advertised_but_rejected() {
    let mut rig = Rig::new(
        SimConfig {
            cnmi_rejects_ds1: true,
            ..SimConfig::default()
        },
        |c| {
            c.delivery = Some(crossline_modem::Delivery::Direct);
        },
    )
    .await;
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.cnmi.as_deref(), Some("AT+CNMI=2,2,2,0,0"));
    rig.sim.inject_sms("+380501234567", "fallback").unwrap();
    assert_eq!(wait_sms(&mut rig).await.text, "fallback");
}

#[tokio::test]
async fn a_send_given_up_while_unplugged_is_never_sent_later() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.unplug().await.unwrap();
    rig.wait_for("disconnected", |e| {
        matches!(e, ModemEvent::Disconnected { .. })
    })
    .await;
    let r = tokio::time::timeout(
        Duration::from_millis(300),
        rig.modem
            .send_sms("+380509876543", "слишком поздно", SendOptions::default()),
    )
    .await;
    assert!(r.is_err(), "the send cannot finish while unplugged");
    rig.sim.replug().await.unwrap();
    rig.wait_for("reconnected", |e| matches!(e, ModemEvent::Reconnected))
        .await;
    rig.modem
        .send_sms("+380509876543", "вовремя", SendOptions::default())
        .await
        .unwrap();
    let sent = rig.sim.wait_sent(1, WAIT).await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "вовремя");
}

#[tokio::test]
async fn full_storage_drains_as_messages_are_confirmed() {
    let mut rig = Rig::new(
        SimConfig {
            sm_capacity: 2,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    for i in 0..5 {
        rig.sim
            .inject_sms("+380501234567", &format!("сообщение {i}"))
            .unwrap();
    }
    let mut texts = Vec::new();
    while texts.len() < 5 {
        let m = wait_sms(&mut rig).await;
        texts.push(m.text.clone());
        rig.modem.confirm(m.receipt).await.unwrap();
    }
    texts.sort();
    let want: Vec<String> = (0..5).map(|i| format!("сообщение {i}")).collect();
    assert_eq!(texts, want);
}

#[tokio::test]
async fn modem_reboot_is_detected_and_initialised_again() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    let before = rig
        .sim
        .commands()
        .iter()
        .filter(|c| *c == "AT+CMGF=0")
        .count();
    rig.sim.inject_urc("RDY");
    rig.sim
        .wait_until("a second initialisation", WAIT, |s| {
            s.commands().iter().filter(|c| *c == "AT+CMGF=0").count() > before
        })
        .await
        .unwrap();
    rig.sim
        .inject_sms("+380501234567", "после перезагрузки")
        .unwrap();
    assert_eq!(wait_sms(&mut rig).await.text, "после перезагрузки");
}

#[tokio::test]
async fn a_report_after_a_tp_mr_reuse_goes_to_the_newest_send_with_its_tag() {
    let mut rig = Rig::new(
        SimConfig {
            status_report_delay: Duration::from_millis(50),
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    let tagged = |tag: &str| SendOptions {
        tag: Some(tag.into()),
        ..SendOptions::default()
    };
    // The first send's report is lost in the network.
    rig.sim.withhold_reports(1);
    let old = rig
        .modem
        .send_sms("+380509876543", "first", tagged("old"))
        .await
        .unwrap();
    // The counter comes round to the same TP-MR (a wrap, a modem reset).
    rig.sim.set_next_mr(old.refs[0]);
    let new = rig
        .modem
        .send_sms("0509876543", "second", tagged("new"))
        .await
        .unwrap();
    assert_eq!(new.refs, old.refs);
    let e = rig
        .wait_for("the report", |e| matches!(e, ModemEvent::DeliveryReport(_)))
        .await;
    let ModemEvent::DeliveryReport(r) = e else {
        unreachable!()
    };
    assert_eq!(
        (r.id, r.part, r.tag.as_deref()),
        (Some(new.id), Some(0), Some("new"))
    );
    // The older send can no longer be told apart: a second report with that
    // TP-MR is not pinned on it.
    let again = crossline_pdu::encode_status_report(
        old.refs[0],
        &crossline_pdu::Address::parse("+380509876543").unwrap(),
        &crossline_pdu::Timestamp::from_unix(1_795_432_532, 8).unwrap(),
        &crossline_pdu::Timestamp::from_unix(1_795_432_540, 8).unwrap(),
        0,
    )
    .unwrap();
    rig.sim.inject_pdu(&again.hex()).unwrap();
    let e = rig
        .wait_for("the second report", |e| {
            matches!(e, ModemEvent::DeliveryReport(_))
        })
        .await;
    let ModemEvent::DeliveryReport(r) = e else {
        unreachable!()
    };
    assert_eq!((r.id, r.tag), (None, None));
}

#[tokio::test]
async fn direct_status_reports_via_cds_are_matched() {
    let mut rig = Rig::new(SimConfig::default(), |c| {
        c.delivery = Some(crossline_modem::Delivery::Direct)
    })
    .await;
    let sent = rig
        .modem
        .send_sms("0509876543", "national number", SendOptions::default())
        .await
        .unwrap();
    let e = rig
        .wait_for("a delivery report", |e| {
            matches!(e, ModemEvent::DeliveryReport(_))
        })
        .await;
    let ModemEvent::DeliveryReport(r) = e else {
        unreachable!()
    };
    assert_eq!(r.id, Some(sent.id));
    assert_eq!(r.part, Some(0));
    assert!(rig.sim.stored().is_empty());
}

#[tokio::test]
async fn cmti_memory_is_honoured_when_it_differs_from_the_read_memory() {
    let mut rig = Rig::new(SimConfig::default(), |c| {
        c.storage = Some(["SM".into(), "SM".into(), "ME".into()]);
    })
    .await;
    rig.sim
        .inject_sms("+380501234567", "в памяти модема")
        .unwrap();
    let m = wait_sms(&mut rig).await;
    assert_eq!(m.text, "в памяти модема");
    assert_eq!(m.receipt.locations[0].mem, "ME");
    assert_eq!(rig.sim.stored()[0].mem, "ME");
    rig.modem.confirm(m.receipt).await.unwrap();
    assert!(rig.sim.stored().is_empty());
    // The SIM memory is selected again for what follows.
    let info = rig.modem.probe().await.unwrap();
    assert_eq!(info.storage_total, Some(30));
}

#[tokio::test]
async fn outgoing_call_busy_and_no_answer() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    for (outcome, reason) in [
        (crossline_sim::DialOutcome::Busy, CallEnd::Busy),
        (crossline_sim::DialOutcome::NoAnswer, CallEnd::NoAnswer),
        (crossline_sim::DialOutcome::NoCarrier, CallEnd::Remote),
    ] {
        rig.sim.set_dial_outcome(outcome);
        let _ = rig.modem.dial("+380501112233").await;
        let e = rig
            .wait_for("ended", |e| {
                matches!(e, ModemEvent::Call(CallEvent::Ended { .. }))
            })
            .await;
        assert_eq!(
            e,
            ModemEvent::Call(CallEvent::Ended { reason }),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_hanging_cmgl_is_cut_by_its_deadline_and_the_driver_goes_on() {
    let mut rig = Rig::new(SimConfig::default(), |_| {}).await;
    rig.sim.hang_next("AT+CMGL");
    let started = std::time::Instant::now();
    assert_eq!(rig.modem.sweep().await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Back in sync: a message stored while the driver was down is found at
    // start-up.
    rig.modem.shutdown().await;
    rig.sim.inject_sms("+380501234567", "найди меня").unwrap();
    rig.restart(test_config(&rig.sim)).await;
    assert_eq!(wait_sms(&mut rig).await.text, "найди меня");
}
