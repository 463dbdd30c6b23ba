//! The log is the truth: a scripted working day through the desk and the
//! API (SMS in on two lines, replies with their delivery reports, hold,
//! snooze, transfer, notes, tags, merge, unmerge, resolve, reopen, a new
//! conversation after resolution, routing decisions), then every
//! projection dropped and rebuilt from the log alone: the same rows, and
//! the desk shows the same notes, tags and merges after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::desk::{Browser, login, routed, routing_state, setup};
use common::{Mgmt, wait_for};
use crossline_core::{CallEndCause, CallId, DeliveryState, EventBody, RecordingId};
use crossline_mgmt::config::Config;
use crossline_mgmt::server;
use crossline_mgmt::storage::sqlite::rebuild::{self, PROJECTIONS};
use crossline_store::SqliteStore;
use rusqlite::types::Value;

/// Every projection table, each row as text, sorted; `pending_command`
/// without `last_sent_ms` (when mgmt last published it: not a fact of the
/// log, see crossline_mgmt::storage::sqlite::rebuild).
async fn dump(s: &SqliteStore) -> Vec<String> {
    s.read(|c| {
        let mut out = Vec::new();
        for t in PROJECTIONS {
            let mut st = c.prepare(&format!("SELECT * FROM {t}"))?;
            let cols: Vec<String> = st.column_names().iter().map(|n| n.to_string()).collect();
            let mut rows = st
                .query_map([], |r| {
                    let mut vals = Vec::new();
                    for (i, name) in cols.iter().enumerate() {
                        if *t == "pending_command" && name == "last_sent_ms" {
                            continue;
                        }
                        vals.push(format!("{name}={:?}", r.get::<_, Value>(i)?));
                    }
                    Ok(format!("{t}: {}", vals.join(" | ")))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.sort();
            out.extend(rows);
        }
        Ok(out)
    })
    .await
    .unwrap()
}

fn count(rows: &[String], table: &str) -> usize {
    rows.iter()
        .filter(|r| r.starts_with(&format!("{table}: ")))
        .count()
}

async fn post_ok(b: &Browser<'_>, path: &str, form: &str) {
    let r = b.post(path, form).await;
    assert_eq!(r.status, 303, "{path} {form}: {}", r.body);
    let to = r.header("location").unwrap_or_default();
    assert!(!to.contains("err="), "{path} {form} refused: {to}");
}

async fn contact_of(m: &Mgmt, conv: &str) -> String {
    m.get(&format!("/api/v1/conversations/{conv}")).await.1["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_agent(m: &Mgmt, conv: &str, agent: &str) {
    wait_for(|| async {
        let r = routing_state(m, conv).await;
        (r["agent"] == agent && r["state"]["state"] == "active").then_some(())
    })
    .await;
}

/// Replies from the desk as `b`, and plays the appliance: sent, then
/// delivered.
async fn reply(m: &Mgmt, dev: &mut common::Device, b: &Browser<'_>, conv: &str, text: &str) {
    post_ok(b, &format!("/desk/c/{conv}/reply"), &format!("text={text}")).await;
    let cmd = dev.next_command().await;
    let sent = dev.event(common::sent(&cmd, vec![7]));
    let delivered = dev.event(common::status(&cmd, Some(1), DeliveryState::Delivered));
    dev.publish(vec![sent, delivered]).await;
    m.wait_conversation(conv, |v| {
        v["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["command"] == cmd.id.to_string() && e["state"] == "delivered")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_day_rebuilt_from_the_log_gives_the_same_tables() {
    // ana serves line gsm0 (queue north), ivan gsm1 (south); the routing
    // configuration is installed through the API (an event too).
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let (ana, ivan, sofia) = (
        login(&m, "ana", "ana-password").await,
        login(&m, "ivan", "ivan-password").await,
        login(&m, "sofia", "sofia-password").await,
    );
    for b in [&ana, &ivan] {
        let r = b
            .post("/desk/presence", "state=available&next=%2Fdesk")
            .await;
        assert_eq!(r.status, 303);
    }
    let (num_a, num_b) = ("+380501112233", "+380509998877");

    // Morning: A texts line gsm0, B line gsm1; routing gives them out.
    dev.sms("gsm0", num_a, "my order is late").await;
    let a1 = routed(&m, num_a).await;
    dev.sms("gsm1", num_b, "wrong invoice").await;
    let b1 = routed(&m, num_b).await;
    wait_agent(&m, &a1, "ana").await;
    wait_agent(&m, &b1, "ivan").await;
    let (ca, cb) = (contact_of(&m, &a1).await, contact_of(&m, &b1).await);

    // ana answers A with a canned response (the page names it in the
    // form's `canned` field), puts the conversation on hold while she
    // checks, notes
    // what she found (mentioning ivan), resumes.
    m.running()
        .store
        .write(|tx| {
            tx.execute(
                "INSERT INTO canned_response (title, text) VALUES ('Checking', 'checking now')",
                [],
            )
        })
        .await
        .unwrap();
    reply(
        &m,
        &mut dev,
        &ana,
        &a1,
        "checking+now&canned=Checking%0ANo+such+title",
    )
    .await;
    post_ok(&ana, &format!("/desk/c/{a1}/action"), "do=hold").await;
    post_ok(
        &ana,
        &format!("/desk/c/{a1}/note"),
        "text=courier+lost+it%2C+%40ivan+knows",
    )
    .await;
    post_ok(&ana, &format!("/desk/c/{a1}/action"), "do=resume").await;

    // ivan snoozes B, takes it back, then hands it to ana.
    post_ok(&ivan, &format!("/desk/c/{b1}/action"), "do=snooze_1h").await;
    post_ok(&ivan, &format!("/desk/c/{b1}/action"), "do=resume").await;
    reply(&m, &mut dev, &ivan, &b1, "looking+into+it").await;
    post_ok(&ivan, &format!("/desk/c/{b1}/transfer"), "to=agent%3Aana").await;
    wait_agent(&m, &b1, "ana").await;

    // Tags and notes on both customers; one tag taken off again.
    for (c, conv, tags, note) in [
        (&ca, &a1, ["vip", "courier"], "prefers+sms"),
        (&cb, &b1, ["late-payer", "invoice"], "call+after+five"),
    ] {
        for t in tags {
            post_ok(
                &ana,
                &format!("/desk/contact/{c}/tag"),
                &format!("tag={t}&conv={conv}"),
            )
            .await;
        }
        post_ok(
            &ana,
            &format!("/desk/contact/{c}/note"),
            &format!("text={note}&conv={conv}"),
        )
        .await;
    }
    post_ok(
        &ana,
        &format!("/desk/contact/{ca}/untag"),
        &format!("tag=courier&conv={a1}"),
    )
    .await;

    // B's case is done; a supervisor finds B is A's other phone and merges,
    // then undoes it (a different person after all), and B writes again.
    reply(&m, &mut dev, &ana, &b1, "fixed").await;
    post_ok(&ana, &format!("/desk/c/{b1}/action"), "do=resolve").await;
    post_ok(
        &sofia,
        &format!("/desk/contact/{ca}/merge"),
        &format!("with=%2B380509998877&conv={a1}"),
    )
    .await;
    assert_eq!(contact_of(&m, &b1).await, ca, "B's conversation moved to A");
    let page = sofia.get(&format!("/desk/c/{a1}")).await.body;
    assert!(page.contains("data-testid=\"merged\""), "{page}");
    post_ok(
        &sofia,
        &format!("/desk/contact/{cb}/unmerge"),
        &format!("conv={a1}"),
    )
    .await;
    assert_eq!(contact_of(&m, &b1).await, cb, "the unmerge moved it back");
    let page = sofia.get(&format!("/desk/c/{b1}")).await.body;
    assert!(
        page.contains("data-testid=\"tag\">late-payer<") && page.contains("call after five"),
        "B's tags and notes are B's again: {page}"
    );
    // ...and reopens B's conversation (nothing else of B is open): it goes
    // back to B's queue, south.
    post_ok(&sofia, &format!("/desk/c/{b1}/action"), "do=reopen").await;

    // Evening: A's case is resolved; A's next message starts a new
    // conversation (the rule after resolution), routed to ana again.
    post_ok(&ana, &format!("/desk/c/{a1}/action"), "do=resolve").await;
    dev.sms("gsm0", num_a, "one more thing").await;
    let l = m
        .wait_list(&format!("?number={}", num_a.replace('+', "%2B")), |l| {
            l.len() == 2
        })
        .await;
    let a2 = l
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .find(|id| *id != a1)
        .unwrap();
    wait_for(|| async {
        let r = routing_state(&m, &a2).await;
        (!r["state"].is_null()).then_some(())
    })
    .await;
    // A calls about it (the IVR takes a voicemail): the call joins A's
    // open conversation; a withheld caller's missed call opens its own.
    let (call, anon) = (CallId::new(), CallId::new());
    let evs = vec![
        dev.event(EventBody::CallRinging {
            call,
            line: "gsm0".into(),
            from: Some(num_a.into()),
            name: None,
            withheld: false,
            to: None,
        }),
        dev.event(EventBody::CallAnswered {
            call,
            by: "ivr".into(),
        }),
        dev.event(EventBody::IvrChoice {
            call,
            menu: "main".into(),
            digit: "2".into(),
            action: "voicemail".into(),
        }),
        dev.event(EventBody::VoicemailRecorded {
            call,
            recording: RecordingId::new(),
            duration_ms: 4_000,
            bytes: 64_044,
            sha256: "ab".repeat(32),
        }),
        dev.event(EventBody::CallbackRequested {
            call,
            number: num_a.into(),
        }),
        dev.event(EventBody::CallEnded {
            call,
            duration_ms: 20_000,
            ring_ms: 2_000,
            cause: CallEndCause::IvrHungUp,
        }),
        dev.event(EventBody::CallRinging {
            call: anon,
            line: "gsm1".into(),
            from: None,
            name: None,
            withheld: true,
            to: None,
        }),
        dev.event(EventBody::CallEnded {
            call: anon,
            duration_ms: 0,
            ring_ms: 9_000,
            cause: CallEndCause::Missed,
        }),
    ];
    dev.publish(evs).await;
    m.wait_conversation(&a2, |v| v["calls"][0]["cause"] == "ivr_hung_up")
        .await;
    m.wait_list("", |l| l.iter().any(|c| c["channel"] == "voice"))
        .await;

    // The last merge of the day stands: B into A again (B's conversation
    // is open, A's new one too: refused; resolve B's first).
    post_ok(&sofia, &format!("/desk/c/{b1}/action"), "do=resolve").await;
    post_ok(
        &sofia,
        &format!("/desk/contact/{ca}/merge"),
        &format!("with=%2B380509998877&conv={a2}"),
    )
    .await;

    // Routing's state is not a table: it is replayed from its decisions in
    // the log at start. What it says now, it must say after the restart.
    let mut routes = Vec::new();
    for id in [&a1, &b1, &a2] {
        let r = routing_state(&m, id).await;
        assert!(!r["state"].is_null(), "{id}: {r}");
        routes.push((
            id.clone(),
            r["state"].clone(),
            r["agent"].clone(),
            r["queue"].clone(),
        ));
    }
    let dir = m.stop_keeping_data().await;
    let mut cfg: Config = toml::from_str("").unwrap();
    cfg.data_dir = dir.path().to_path_buf();
    let store = server::open_store(&cfg).unwrap();
    let before = dump(&store).await;
    for (table, at_least) in [
        ("conversation", 3),
        ("timeline_entry", 10),
        ("reply_part", 3),
        ("conversation_note", 1),
        ("contact_note", 2),
        ("contact_tag", 3),
        ("contact_merge", 1),
        ("contact_merge_moved", 2),
        ("routing_config", 1),
        ("device_line", 2),
    ] {
        assert!(
            count(&before, table) >= at_least,
            "the day left fewer than {at_least} rows in {table}: {before:#?}"
        );
    }
    assert_eq!(count(&before, "contact_tag"), 3, "courier was taken off");
    // Every one of those facts is an event.
    let kinds: Vec<String> = store
        .read(|c| {
            let mut st = c.prepare("SELECT DISTINCT kind FROM event ORDER BY kind")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .await
        .unwrap();
    for k in [
        "note_added",
        "contact_note_added",
        "contact_tagged",
        "contact_untagged",
        "contacts_merged",
        "contact_unmerged",
        "routing_configured",
        "routing_decision",
        "conversation_resolved",
        "conversation_reopened",
        "reply_requested",
        "canned_response_used",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} event in {kinds:?}");
    }

    let canned: Vec<String> = store
        .read(|c| {
            let mut st = c.prepare("SELECT body FROM event WHERE kind = 'canned_response_used'")?;
            st.query_map([], |r| r.get(0))?.collect()
        })
        .await
        .unwrap();
    assert_eq!(canned.len(), 1, "only the title that exists: {canned:?}");
    assert!(
        canned[0].contains("\"title\":\"Checking\"") && canned[0].contains("\"by\":\"ana\""),
        "{canned:?}"
    );

    // Dropped: nothing left of any projection.
    store.write(rebuild::clear).await.unwrap();
    assert_eq!(dump(&store).await, Vec::<String>::new());
    // Rebuilt from the log alone: the same rows.
    let n = rebuild::rebuild(&store).await.unwrap();
    assert!(n > 20, "{n} events");
    let after = dump(&store).await;
    if after != before {
        let lost: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
        panic!("the rebuild differs\nonly before: {lost:#?}\nonly after: {new:#?}");
    }
    store.close().unwrap();

    // And the desk says so after a restart: notes, tags, the merge.
    let m = Mgmt::start_on(dir).await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let page = sofia.get(&format!("/desk/c/{a1}")).await.body;
    for want in [
        "courier lost it, @ivan knows",
        "data-testid=\"tag\">vip<",
        "data-testid=\"tag\">late-payer<",
        "prefers sms",
        "call after five",
        "data-testid=\"merged\"",
    ] {
        assert!(
            page.contains(want),
            "{want} missing after the rebuild: {page}"
        );
    }
    assert!(!page.contains("data-testid=\"tag\">courier<"), "{page}");
    for (id, state, agent, queue) in routes {
        let r = routing_state(&m, &id).await;
        assert_eq!(
            (&r["state"], &r["agent"], &r["queue"]),
            (&state, &agent, &queue),
            "routing of {id} after the restart"
        );
    }
    m.stop().await;
}

/// A database the release before this one left (the combined schema, its
/// notes, tags, contact notes, a merge and a routing configuration written
/// straight into tables): after the upgrade every one of them is an event,
/// the desk and the API show them as before, and a restart does not add
/// them twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_from_before_facts_were_events_enter_the_log_once_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cb) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let (conv1, conv2) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    {
        let conn = rusqlite::Connection::open(dir.path().join("mgmt.db")).unwrap();
        crossline_store::sqlite::migrations::build_combined(&conn, 15).unwrap();
        let config =
            serde_json::to_string(&crossline_mgmt::services::routing::default_config(vec![
                "ana".into(),
            ]))
            .unwrap();
        // B was merged into A by the old code: B's number and conversation
        // are A's already.
        conn.execute_batch(&format!(
            "INSERT INTO contact (id, created_ms) VALUES ('{ca}', 1), ('{cb}', 2);
             INSERT INTO contact_identity (kind, address, contact_id) VALUES
                 ('phone', '+380501112233', '{ca}'), ('phone', '+380509998877', '{ca}');
             INSERT INTO conversation (id, contact_id, status, channel, device, line,
                 created_ms, last_ms, last_c, last_preview, unread, messages)
                 VALUES ('{conv1}', '{ca}', 'open', 'sms', 'branch-1', 'gsm0', 10, 10, 0, 'hi', 1, 1),
                        ('{conv2}', '{ca}', 'resolved', 'sms', 'branch-1', 'gsm0', 5, 5, 0, 'old', 0, 1);
             INSERT INTO conversation_note (id, conversation_id, at_ms, author, text, mentions)
                 VALUES ('{}', '{conv1}', 20, 'ana', 'called back, no answer', '');
             INSERT INTO contact_tag (contact_id, tag) VALUES ('{ca}', 'vip');
             INSERT INTO contact_note (contact_id, at_ms, author, text)
                 VALUES ('{ca}', 30, 'ana', 'speaks Romanian');
             INSERT INTO contact_merge (merged, survivor, at_ms, by) VALUES ('{cb}', '{ca}', 40, 'sofia');
             INSERT INTO routing_config (config, replay_from_seq, created_ms)
                 VALUES ('{config}', 1, 50);",
            uuid::Uuid::now_v7()
        ))
        .unwrap();
    }
    let m = Mgmt::start_on(dir).await;
    common::desk::add_user(
        &m,
        "sofia",
        crossline_mgmt::services::users::auth::Role::Supervisor,
        &[],
    )
    .await;
    upgraded_facts_are_shown(&m, &conv1).await;
    // Once: a restart finds nothing left to carry over.
    let m = m.restart().await;
    upgraded_facts_are_shown(&m, &conv1).await;
    m.stop().await;
}

/// What the upgrade test expects to see after each start.
async fn upgraded_facts_are_shown(m: &Mgmt, conv1: &str) {
    let sofia = login(m, "sofia", "sofia-password").await;
    let page = sofia.get(&format!("/desk/c/{conv1}")).await.body;
    for want in [
        "called back, no answer",
        "data-testid=\"tag\">vip<",
        "speaks Romanian",
        "data-testid=\"merged\"",
    ] {
        assert!(page.contains(want), "{want} lost in the upgrade: {page}");
    }
    let (s, v) = m.get("/api/v1/routing/config").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["default"], false, "{v}");
    assert_eq!(v["config"]["agents"][0]["id"], "ana", "{v}");
    let kinds: Vec<(String, i64)> = m
        .running()
        .store
        .read(|c| {
            let mut st = c.prepare(
                "SELECT kind, count(*) FROM event WHERE kind IN ('note_added',
                 'contact_tagged', 'contact_note_added', 'contacts_merged',
                 'routing_configured') GROUP BY kind ORDER BY kind",
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })
        .await
        .unwrap();
    assert_eq!(
        kinds,
        [
            ("contact_note_added".to_string(), 1),
            ("contact_tagged".into(), 1),
            ("contacts_merged".into(), 1),
            ("note_added".into(), 1),
            ("routing_configured".into(), 1),
        ]
    );
}
