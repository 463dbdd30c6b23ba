#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use std::time::Duration;

fn incoming(n: Option<&str>) -> CallEvent {
    CallEvent::Incoming {
        number: n.map(str::to_string),
        name: None,
        absence: None,
    }
}

fn ended(reason: CallEnd) -> CallEvent {
    CallEvent::Ended { reason }
}

#[test]
fn a_call_that_rings_out_is_a_missed_call_with_its_ring_time() {
    let mut calls = Calls::new(false);
    let t0 = Instant::now();
    let (evs, action) = calls.on_event("gsm0", &incoming(Some("+380501234567")), t0);
    assert_eq!(action, None, "no IVR: nobody answers");
    let EventBody::CallRinging {
        call,
        line,
        from,
        withheld,
        ..
    } = &evs[0]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(
        (line.as_str(), from.as_deref(), *withheld),
        ("gsm0", Some("+380501234567"), false)
    );
    let call = *call;
    // Further rings of the same call log nothing.
    let (again, _) = calls.on_event(
        "gsm0",
        &CallEvent::Ringing {
            number: None,
            name: None,
            absence: None,
        },
        t0 + Duration::from_secs(5),
    );
    assert!(again.is_empty(), "{again:?}");
    let (evs, _) = calls.on_event(
        "gsm0",
        &ended(CallEnd::Missed),
        t0 + Duration::from_secs(24),
    );
    assert_eq!(
        evs,
        [EventBody::CallEnded {
            call,
            duration_ms: 0,
            ring_ms: 24_000,
            cause: CallEndCause::Missed
        }]
    );
    assert_eq!(calls.active("gsm0"), None);
}

#[test]
fn an_answered_call_has_its_connected_time_and_who_hung_up() {
    let mut calls = Calls::new(true);
    let t0 = Instant::now();
    let (evs, action) = calls.on_event("gsm1", &incoming(Some("+380671112233")), t0);
    assert_eq!(action, Some(Action::Answer));
    let call = calls.active("gsm1").unwrap();
    assert!(matches!(evs[0], EventBody::CallRinging { .. }));
    let (evs, _) = calls.on_event(
        "gsm1",
        &CallEvent::Connected,
        t0 + Duration::from_millis(1_500),
    );
    assert_eq!(
        evs,
        [EventBody::CallAnswered {
            call,
            by: "ivr".into()
        }]
    );
    let (evs, _) = calls.on_event(
        "gsm1",
        &ended(CallEnd::Remote),
        t0 + Duration::from_millis(31_500),
    );
    assert_eq!(
        evs,
        [EventBody::CallEnded {
            call,
            duration_ms: 30_000,
            ring_ms: 1_500,
            cause: CallEndCause::CallerHungUp
        }]
    );
}

#[test]
fn the_ivr_hanging_up_busy_and_failed_calls_keep_their_cause() {
    let t0 = Instant::now();
    for (reason, answered, want) in [
        (CallEnd::Local, true, CallEndCause::IvrHungUp),
        (CallEnd::Local, false, CallEndCause::Missed),
        (CallEnd::Busy, false, CallEndCause::Busy),
        (
            CallEnd::Failed("NO DIALTONE".into()),
            false,
            CallEndCause::Failed,
        ),
    ] {
        let mut calls = Calls::new(true);
        calls.on_event("gsm0", &incoming(None), t0);
        if answered {
            calls.on_event("gsm0", &CallEvent::Connected, t0);
        }
        let (evs, _) = calls.on_event("gsm0", &ended(reason.clone()), t0 + Duration::from_secs(1));
        let [EventBody::CallEnded { cause, .. }] = evs.as_slice() else {
            panic!("{evs:?}")
        };
        assert_eq!(*cause, want, "{reason:?}, answered {answered}");
    }
}

#[test]
fn the_caller_name_and_a_withheld_number_reach_call_ringing() {
    let mut calls = Calls::new(false);
    let t0 = Instant::now();
    let ringing = |ev: &CallEvent, line: &str, calls: &mut Calls| {
        let (evs, _) = calls.on_event(line, ev, t0);
        match evs.as_slice() {
            [
                EventBody::CallRinging {
                    from,
                    name,
                    withheld,
                    ..
                },
            ] => (from.clone(), name.clone(), *withheld),
            other => panic!("{other:?}"),
        }
    };
    let named = CallEvent::Incoming {
        number: Some("+380501234567".into()),
        name: Some("  Олена К ".into()),
        absence: None,
    };
    assert_eq!(
        ringing(&named, "gsm0", &mut calls),
        (Some("+380501234567".into()), Some("Олена К".into()), false)
    );
    let withheld = CallEvent::Incoming {
        number: None,
        name: Some(String::new()),
        absence: Some(NumberAbsence::Withheld),
    };
    assert_eq!(ringing(&withheld, "gsm1", &mut calls), (None, None, true));
    // Unavailable is no number, not withheld.
    let unavailable = CallEvent::Incoming {
        number: None,
        name: None,
        absence: Some(NumberAbsence::Unavailable),
    };
    assert_eq!(
        ringing(&unavailable, "fxo0", &mut calls),
        (None, None, false)
    );
    // A name is bounded like the number.
    let long = CallEvent::Ringing {
        number: None,
        name: Some("N".repeat(300)),
        absence: None,
    };
    let (_, name, _) = ringing(&long, "gsm2", &mut calls);
    assert_eq!(name.map(|n| n.chars().count()), Some(64));
}

#[test]
fn no_caller_id_is_no_number_and_a_lost_line_ends_its_call() {
    let mut calls = Calls::new(false);
    let t0 = Instant::now();
    let (evs, _) = calls.on_event("gsm0", &incoming(Some("  ")), t0);
    let EventBody::CallRinging { from, .. } = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(*from, None);
    // Another line's call is its own.
    calls.on_event("gsm1", &incoming(Some("+380501234567")), t0);
    let call = calls.active("gsm0").unwrap();
    let lost = calls
        .line_lost("gsm0", t0 + Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        lost,
        EventBody::CallEnded {
            call,
            duration_ms: 0,
            ring_ms: 3_000,
            cause: CallEndCause::LineLost
        }
    );
    assert!(calls.line_lost("gsm0", t0).is_none(), "ended once");
    assert!(calls.active("gsm1").is_some());
    // An end without a call (the driver restarted mid-call) logs nothing.
    let (evs, _) = calls.on_event("gsm2", &ended(CallEnd::Remote), t0);
    assert!(evs.is_empty());
}

#[test]
fn a_call_answered_by_the_ivr_runs_it_once_connected_and_a_push_changes_later_calls() {
    let t0 = Instant::now();
    let mut calls = Calls::new(true);
    let (_, action) = calls.on_event("gsm0", &incoming(Some("+380501234567")), t0);
    assert_eq!(action, Some(Action::Answer));
    assert_eq!(calls.caller("gsm0").as_deref(), Some("+380501234567"));
    // The IVR is removed by a push while the call rings: the call was
    // answered with it, so it still runs once connected.
    calls.set_answer(false);
    let (_, action) = calls.on_event("gsm0", &CallEvent::Connected, t0);
    assert_eq!(action, Some(Action::RunIvr));
    // A second Connected (a +CLCC repeat) starts nothing.
    let (evs, action) = calls.on_event("gsm0", &CallEvent::Connected, t0);
    assert!(evs.is_empty() && action.is_none());
    // Later calls ring out.
    let (_, action) = calls.on_event("gsm1", &incoming(None), t0);
    assert_eq!(action, None);
    assert_eq!(calls.caller("gsm1"), None);
    // A call connected without the appliance answering it (answered
    // elsewhere) gets no IVR.
    let (_, action) = calls.on_event("gsm1", &CallEvent::Connected, t0);
    assert_eq!(action, None);
}
