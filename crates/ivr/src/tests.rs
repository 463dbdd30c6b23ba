#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crossline_proto::ivr::IvrSettings;

/// Monday 2026-12-07, 10:00 in Kyiv (08:00 UTC): open.
const OPEN: u64 = 1_796_630_400_000;
/// The same Monday, 19:00 in Kyiv: closed.
const EVENING: u64 = 1_796_662_800_000;
/// Friday 2026-12-25, 10:00 in Kyiv: a holiday.
const HOLIDAY: u64 = 1_798_185_600_000;
/// Saturday 2026-12-12, 10:00 in Kyiv: weekend.
const SATURDAY: u64 = 1_797_062_400_000;

fn settings() -> IvrSettings {
    serde_json::from_str(include_str!("../../../docs/ivr-demo.json")).unwrap()
}

fn ivr() -> Ivr {
    Ivr::new(settings()).unwrap()
}

fn caller() -> Call {
    Call {
        caller: Some("+380501234567".into()),
        language: Some("uk".into()),
    }
}

fn play(p: &str) -> Output {
    Output::Do(Action::Play {
        prompt: p.into(),
        language: "uk".into(),
    })
}

fn plays(out: &[Output]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Do(Action::Play { prompt, .. }) => Some(prompt.as_str()),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<&IvrEvent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Log(e) => Some(e),
            _ => None,
        })
        .collect()
}

/// Answers every play of `out` with PromptDone at `t`, collecting what follows.
fn finish_prompts(s: &mut Session, out: &[Output], t: u64) -> Vec<Output> {
    let mut more = Vec::new();
    for _ in 0..plays(out).len() {
        more.extend(s.input(Input::PromptDone, t));
    }
    more
}

#[test]
fn in_hours_a_call_starts_in_the_entry_menu_in_its_language() {
    let (s, out) = ivr().start(caller(), OPEN);
    assert_eq!(
        out,
        vec![
            Output::Log(IvrEvent::Entered {
                menu: "main".into(),
                out_of_hours: false
            }),
            play("main"),
        ]
    );
    assert_eq!(s.language(), "uk");
    // No timer runs while the prompt plays.
    assert_eq!(s.deadline(), None);
}

#[test]
fn a_language_without_prompts_falls_back_to_the_default() {
    let call = Call {
        language: Some("de".into()),
        ..caller()
    };
    let (s, out) = ivr().start(call, OPEN);
    assert_eq!(s.language(), "en");
    assert!(out.contains(&Output::Do(Action::Play {
        prompt: "main".into(),
        language: "en".into()
    })));
    let (s, _) = ivr().start(Call::default(), OPEN);
    assert_eq!(s.language(), "en");
}

#[test]
fn out_of_hours_weekends_and_holidays_start_in_the_closed_menu() {
    for t in [EVENING, SATURDAY, HOLIDAY] {
        let (_, out) = ivr().start(caller(), t);
        assert_eq!(
            out[0],
            Output::Log(IvrEvent::Entered {
                menu: "closed".into(),
                out_of_hours: true
            }),
            "at {t}"
        );
        assert_eq!(plays(&out), ["closed"]);
    }
    // Without business hours every call is in hours.
    let mut s = settings();
    s.hours = None;
    s.closed_entry = None;
    let (_, out) = Ivr::new(s).unwrap().start(caller(), EVENING);
    assert_eq!(plays(&out), ["main"]);
}

#[test]
fn a_key_goes_to_a_submenu_and_star_comes_back() {
    let (mut s, _) = ivr().start(caller(), OPEN);
    let out = s.input(Input::Digit('1'), OPEN + 500);
    // The key barges in: the prompt stops, the choice is logged.
    assert_eq!(
        out,
        vec![
            Output::Do(Action::StopPlayback),
            Output::Log(IvrEvent::Choice {
                menu: "main".into(),
                key: '1'
            }),
            Output::Log(IvrEvent::Entered {
                menu: "sales".into(),
                out_of_hours: false
            }),
            play("sales"),
        ]
    );
    let out = s.input(Input::PromptDone, OPEN + 3_000);
    assert!(out.is_empty());
    assert_eq!(s.deadline(), Some(OPEN + 8_000));
    let out = s.input(Input::Digit('*'), OPEN + 4_000);
    // The prompt had finished: nothing to stop.
    assert_eq!(
        out[0],
        Output::Log(IvrEvent::Choice {
            menu: "sales".into(),
            key: '*'
        })
    );
    assert_eq!(plays(&out), ["main"]);
}

#[test]
fn no_key_re_prompts_then_takes_the_default_when_retries_are_exhausted() {
    let (mut s, out) = ivr().start(caller(), OPEN);
    let mut t = OPEN + 2_000;
    let mut out = finish_prompts(&mut s, &out, t);
    assert!(out.is_empty());
    // main: timeout 5 s, 2 retries.
    for retry in 1..=2 {
        let deadline = s.deadline().unwrap();
        assert_eq!(deadline, t + 5_000);
        assert!(
            s.poll(deadline - 1).is_empty(),
            "no timeout before the deadline"
        );
        out = s.poll(deadline);
        assert_eq!(
            events(&out),
            [&IvrEvent::NoInput {
                menu: "main".into()
            }],
            "retry {retry}"
        );
        assert_eq!(plays(&out), ["no_input", "main"]);
        assert_eq!(s.deadline(), None, "the wait restarts after the prompts");
        t = deadline + 4_000;
        let more = finish_prompts(&mut s, &out, t);
        assert!(more.is_empty());
    }
    let out = s.poll(s.deadline().unwrap());
    assert_eq!(
        events(&out),
        [
            &IvrEvent::NoInput {
                menu: "main".into()
            },
            &IvrEvent::Default {
                menu: "main".into()
            },
        ]
    );
    // main's default is voicemail: its prompt plays.
    assert_eq!(plays(&out), ["voicemail"]);
}

#[test]
fn a_wrong_key_counts_as_a_retry_and_plays_the_invalid_prompt() {
    let mut cfg = settings();
    cfg.menus.get_mut("main").unwrap().retries = 1;
    let (mut s, _) = Ivr::new(cfg).unwrap().start(caller(), OPEN);
    let out = s.input(Input::Digit('7'), OPEN + 100);
    assert_eq!(out[0], Output::Do(Action::StopPlayback));
    assert_eq!(
        events(&out),
        [&IvrEvent::Invalid {
            menu: "main".into(),
            key: '7'
        }]
    );
    assert_eq!(plays(&out), ["invalid", "main"]);
    let out = s.input(Input::Digit('9'), OPEN + 200);
    assert_eq!(
        events(&out),
        [
            &IvrEvent::Invalid {
                menu: "main".into(),
                key: '9'
            },
            &IvrEvent::Default {
                menu: "main".into()
            },
        ]
    );
}

#[test]
fn the_default_hang_up_when_a_menu_says_nothing() {
    let mut cfg = settings();
    let main = cfg.menus.get_mut("main").unwrap();
    main.retries = 0;
    main.default = crossline_proto::ivr::Action::HangUp { prompt: None };
    let (mut s, out) = Ivr::new(cfg).unwrap().start(caller(), OPEN);
    finish_prompts(&mut s, &out, OPEN);
    let out = s.poll(OPEN + 5_000);
    assert_eq!(out.last(), Some(&Output::Do(Action::HangUp)));
    assert!(s.is_done());
    assert_eq!(s.deadline(), None);
}

/// Presses 2 in the main menu and lets the voicemail prompt play; returns
/// the session recording since `t`.
fn recording(t: u64) -> Session {
    let (mut s, _) = ivr().start(caller(), OPEN);
    let out = s.input(Input::Digit('2'), OPEN + 1_000);
    assert_eq!(
        events(&out),
        [&IvrEvent::Choice {
            menu: "main".into(),
            key: '2'
        }]
    );
    assert_eq!(plays(&out), ["voicemail"]);
    // Keys during the voicemail prompt are ignored.
    assert!(s.input(Input::Digit('5'), OPEN + 1_500).is_empty());
    let out = s.input(Input::PromptDone, t);
    assert_eq!(
        out,
        vec![
            Output::Log(IvrEvent::VoicemailStarted),
            Output::Do(Action::StartRecording { max_ms: 120_000 }),
        ]
    );
    s
}

#[test]
fn voicemail_ends_on_hash_then_thanks_and_hangs_up() {
    let t = OPEN + 4_000;
    let mut s = recording(t);
    // Other keys are part of the message.
    assert!(s.input(Input::Digit('1'), t + 1_000).is_empty());
    s.input(Input::Voice, t + 2_000);
    let out = s.input(Input::Digit('#'), t + 9_000);
    assert_eq!(
        out,
        vec![
            Output::Do(Action::StopRecording),
            Output::Log(IvrEvent::VoicemailEnded {
                duration_ms: 9_000,
                by: VoicemailEnd::Key
            }),
            play("voicemail_thanks"),
        ]
    );
    assert!(!s.is_done());
    let out = s.input(Input::PromptDone, t + 11_000);
    assert_eq!(out, vec![Output::Do(Action::HangUp)]);
    assert!(s.is_done());
}

#[test]
fn voicemail_ends_after_silence_and_voice_keeps_it_going() {
    let t = OPEN + 4_000;
    let mut s = recording(t);
    // silence_s = 5
    assert_eq!(s.deadline(), Some(t + 5_000));
    s.input(Input::Voice, t + 3_000);
    s.input(Input::Voice, t + 7_000);
    assert_eq!(s.deadline(), Some(t + 12_000));
    assert!(s.poll(t + 11_999).is_empty());
    let out = s.poll(t + 12_000);
    assert_eq!(
        events(&out),
        [&IvrEvent::VoicemailEnded {
            duration_ms: 12_000,
            by: VoicemailEnd::Silence
        }]
    );
    assert_eq!(out[0], Output::Do(Action::StopRecording));
}

#[test]
fn voicemail_ends_at_its_longest() {
    let t = OPEN + 4_000;
    let mut s = recording(t);
    let mut now = t;
    while now < t + 119_000 {
        now += 1_000;
        s.input(Input::Voice, now);
        assert!(s.poll(now).is_empty(), "ended early at {}", now - t);
    }
    assert_eq!(s.deadline(), Some(t + 120_000));
    let out = s.poll(t + 120_000);
    assert_eq!(
        events(&out),
        [&IvrEvent::VoicemailEnded {
            duration_ms: 120_000,
            by: VoicemailEnd::MaxLength
        }]
    );
}

#[test]
fn voicemail_ends_when_the_caller_hangs_up_and_the_file_is_kept() {
    let t = OPEN + 4_000;
    let mut s = recording(t);
    let out = s.input(Input::HangUp, t + 6_500);
    assert_eq!(
        out,
        vec![
            Output::Do(Action::StopRecording),
            Output::Log(IvrEvent::VoicemailEnded {
                duration_ms: 6_500,
                by: VoicemailEnd::HangUp
            }),
            Output::Log(IvrEvent::CallerHungUp),
        ]
    );
    assert!(s.is_done());
    // Nothing after the end.
    assert!(s.input(Input::HangUp, t + 7_000).is_empty());
    assert!(s.input(Input::Digit('1'), t + 7_000).is_empty());
    assert!(s.poll(t + 60_000).is_empty());
}

#[test]
fn a_hang_up_during_a_prompt_stops_it() {
    let (mut s, _) = ivr().start(caller(), OPEN);
    let out = s.input(Input::HangUp, OPEN + 100);
    assert_eq!(
        out,
        vec![
            Output::Do(Action::StopPlayback),
            Output::Log(IvrEvent::CallerHungUp)
        ]
    );
    assert!(s.is_done());
}

#[test]
fn a_callback_request_records_the_callers_number() {
    let (mut s, _) = ivr().start(caller(), OPEN);
    let out = s.input(Input::Digit('3'), OPEN + 100);
    assert!(events(&out).contains(&&IvrEvent::CallbackRequested {
        number: Some("+380501234567".into())
    }));
    assert_eq!(plays(&out), ["callback"]);
    let out = s.input(Input::PromptDone, OPEN + 2_000);
    assert_eq!(out, vec![Output::Do(Action::HangUp)]);

    // Without caller ID: logged without a number, and the caller is told.
    let call = Call {
        caller: None,
        ..caller()
    };
    let (mut s, _) = ivr().start(call, OPEN);
    let out = s.input(Input::Digit('3'), OPEN + 100);
    assert!(events(&out).contains(&&IvrEvent::CallbackRequested { number: None }));
    assert_eq!(plays(&out), ["callback_no_number"]);
}

#[test]
fn out_of_hours_key_2_records_a_voicemail_too() {
    let (mut s, _) = ivr().start(caller(), EVENING);
    let out = s.input(Input::Digit('2'), EVENING + 100);
    assert_eq!(plays(&out), ["voicemail"]);
    let out = s.input(Input::PromptDone, EVENING + 3_000);
    assert!(out.contains(&Output::Do(Action::StartRecording { max_ms: 120_000 })));
}

#[test]
fn voicemail_without_a_prompt_records_at_once() {
    let mut cfg = settings();
    cfg.voicemail.prompt = None;
    cfg.voicemail.thanks_prompt = None;
    let (mut s, _) = Ivr::new(cfg).unwrap().start(caller(), OPEN);
    let out = s.input(Input::Digit('2'), OPEN + 100);
    assert!(out.contains(&Output::Do(Action::StartRecording { max_ms: 120_000 })));
    assert_eq!(s.deadline(), Some(OPEN + 5_100));
    let out = s.input(Input::Digit('#'), OPEN + 2_100);
    // No thanks prompt: straight to hang-up.
    assert_eq!(out.last(), Some(&Output::Do(Action::HangUp)));
}

#[test]
fn the_hang_up_key_plays_goodbye_first() {
    let (mut s, _) = ivr().start(caller(), OPEN);
    let out = s.input(Input::Digit('0'), OPEN + 100);
    assert_eq!(plays(&out), ["goodbye"]);
    assert!(!out.contains(&Output::Do(Action::HangUp)));
    let out = s.input(Input::PromptDone, OPEN + 1_000);
    assert_eq!(out, vec![Output::Do(Action::HangUp)]);
}

#[test]
fn an_invalid_configuration_is_refused_with_the_reason() {
    let mut cfg = settings();
    cfg.entry = "start".into();
    let e = Ivr::new(cfg).unwrap_err().to_string();
    assert!(e.contains("entry") && e.contains("\"start\""), "{e}");
}

#[test]
fn the_demo_prompt_script_speaks_every_prompt_in_every_language() {
    let tsv = include_str!("../../../scripts/ivr-prompts.tsv");
    let have: std::collections::BTreeSet<(&str, &str)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            let id = f.next()?;
            let lang = f.next()?;
            let text = f.next()?;
            assert!(!text.trim().is_empty(), "{l}");
            Some((lang, id))
        })
        .collect();
    let s = settings();
    let need: std::collections::BTreeSet<(&str, &str)> = s.prompt_files().collect();
    assert_eq!(have, need);
}
