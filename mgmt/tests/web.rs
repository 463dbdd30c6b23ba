//! The web UI over real HTTP against one running mgmt: login, sessions,
//! logout everywhere, CSRF refusal, the login rate limit, role and team
//! authorisation of every page and of the JSON API, escaping of customer
//! text, the desk's actions, and the live stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::desk::{
    Browser, Resp, add_user, login, origin, req, req_typed, routed, routing_state, setup,
};
use common::{DEADLINE, Mgmt, wait_for};
use crossline_mgmt::services::users::auth::{self, Role};
use serde_json::{Value, json};
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn login_sessions_and_logout_everywhere() {
    let m = setup().await;
    // Not logged in: pages redirect to the login page, htmx gets 401.
    let r = req(&m, "GET", "/desk", &[], None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/login?next=/desk"));
    let r = req(&m, "GET", "/desk/list", &[("HX-Request", "true")], None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("hx-redirect").is_some());
    // Wrong password: 401 with the message, no cookie.
    let o = origin(&m);
    let r = req(
        &m,
        "POST",
        "/login",
        &[("Origin", &o)],
        Some("login=ana&password=nope"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong login or password."), "{}", r.body);
    assert!(r.header("set-cookie").is_none());

    let a1 = login(&m, "ana", "ana-password").await;
    let a2 = login(&m, "ANA", "ana-password").await; // logins are case-insensitive
    let page = a1.get("/desk").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-testid=\"me\">ana name<"),
        "{}",
        page.body
    );
    assert_eq!(a2.get("/desk").await.status, 200);
    // Pages are not cached.
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));

    // Log out this session only.
    let r = a2.post("/logout", "").await;
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(a2.get("/desk").await.status, 303);
    assert_eq!(a1.get("/desk").await.status, 200);

    // Log out everywhere ends every session of the user.
    let a3 = login(&m, "ana", "ana-password").await;
    let r = a1.post("/logout/all", "").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/login?out=all"));
    assert_eq!(a1.get("/desk").await.status, 303);
    assert_eq!(a3.get("/desk").await.status, 303);
    // ...and is in the audit log.
    let root = login(&m, "root", "root-password").await;
    let audit = root.get("/admin/audit").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("logout.everywhere"), "{}", audit.body);
    m.stop().await;
}

#[tokio::test]
async fn cross_site_requests_are_refused() {
    let m = setup().await;
    let ana = login(&m, "ana", "ana-password").await;
    // A state-changing request without Origin or Sec-Fetch-Site.
    let r = req(&m, "POST", "/logout", &[("Cookie", &ana.cookie)], Some("")).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("did not come from this site"), "{}", r.body);
    // From another site.
    for h in [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let r = req(
            &m,
            "POST",
            "/logout",
            &[("Cookie", &ana.cookie), h],
            Some(""),
        )
        .await;
        assert_eq!(r.status, 403, "{h:?}");
    }
    // The session survived all of them.
    assert_eq!(ana.get("/desk").await.status, 200);
    // Login CSRF: a login form posted from elsewhere.
    let r = req(
        &m,
        "POST",
        "/login",
        &[("Origin", "http://evil.example")],
        Some("login=ana&password=ana-password"),
    )
    .await;
    assert_eq!(r.status, 403);
    // The JSON API with a session: also checked (bearer tokens are not ambient).
    let sofia = login(&m, "sofia", "sofia-password").await;
    let r = req(
        &m,
        "PUT",
        "/api/v1/agents/ana/presence",
        &[
            ("Cookie", &sofia.cookie),
            ("Content-Type", "application/json"),
        ],
        Some("{\"state\":\"away\"}"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("csrf"), "{}", r.body);
    m.stop().await;
}

#[tokio::test]
async fn login_is_rate_limited_with_a_clear_message() {
    let m = setup().await;
    let o = origin(&m);
    for _ in 0..auth::LIMIT_PER_LOGIN {
        let r = req(
            &m,
            "POST",
            "/login",
            &[("Origin", &o)],
            Some("login=ivan&password=guess"),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    // Now even the right password is refused for a while.
    let r = req(
        &m,
        "POST",
        "/login",
        &[("Origin", &o)],
        Some("login=ivan&password=ivan-password"),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(
        r.body
            .contains("Too many failed sign-ins. Try again in 15 min."),
        "{}",
        r.body
    );
    assert!(r.header("retry-after").is_some());
    // In Russian for a Russian browser.
    let r = req(
        &m,
        "POST",
        "/login",
        &[("Origin", &o), ("Accept-Language", "ru-RU,ru;q=0.9")],
        Some("login=ivan&password=ivan-password"),
    )
    .await;
    assert_eq!(r.status, 429);
    assert!(
        r.body.contains("Слишком много неудачных попыток входа"),
        "{}",
        r.body
    );
    // Other users are not affected.
    login(&m, "ana", "ana-password").await;
    m.stop().await;
}

#[tokio::test]
async fn every_page_and_api_refuses_users_without_the_role() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112233", "hello south").await;
    let south = routed(&m, "+380501112233").await;

    let ana = login(&m, "ana", "ana-password").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let sam = login(&m, "sam", "sam-password").await;
    let root = login(&m, "root", "root-password").await;

    let supervisor_pages = [
        "/supervisor",
        "/supervisor/board",
        "/supervisor/reports",
        "/supervisor/reports.csv",
        "/desk?tab=all",
        "/desk/list?tab=all",
    ];
    let admin_pages = ["/admin/audit", "/admin/users"];
    let desk_pages = ["/desk", "/desk/list", "/desk/stream"];
    // Nobody logged in: redirected to login.
    for p in supervisor_pages
        .iter()
        .chain(&admin_pages)
        .chain(&desk_pages)
    {
        let r = req(&m, "GET", p, &[], None).await;
        assert_eq!(r.status, 303, "{p}");
    }
    for p in supervisor_pages.iter().chain(&admin_pages) {
        assert_eq!(ana.get(p).await.status, 403, "agent on {p}");
    }
    for p in &admin_pages {
        assert_eq!(sofia.get(p).await.status, 403, "supervisor on {p}");
    }
    for p in supervisor_pages.iter().chain(&admin_pages) {
        if p.ends_with("stream") {
            continue;
        }
        assert_eq!(root.get(p).await.status, 200, "admin on {p}");
    }
    for p in &supervisor_pages {
        assert_eq!(sofia.get(p).await.status, 200, "supervisor on {p}");
    }

    // The JSON API: bearer token, or the session of an unrestricted supervisor/admin.
    let api = [
        "/api/v1/conversations".to_string(),
        format!("/api/v1/conversations/{south}"),
        "/api/v1/agents".into(),
        "/api/v1/queues".into(),
        "/api/v1/routing/config".into(),
        "/api/v1/devices".into(),
        "/api/v1/events".into(),
        "/api/v1/metrics/routing".into(),
    ];
    for p in &api {
        assert_eq!(
            req(&m, "GET", p, &[], None).await.status,
            401,
            "anonymous {p}"
        );
        assert_eq!(ana.get(p).await.status, 403, "agent {p}");
        assert_eq!(
            sam.get(p).await.status,
            403,
            "team-restricted supervisor {p}"
        );
        assert_eq!(sofia.get(p).await.status, 200, "supervisor {p}");
        assert_eq!(m.get(p).await.0, 200, "bearer {p}");
    }
    let r = req(
        &m,
        "GET",
        "/api/v1/conversations",
        &[("Authorization", "Bearer wrong"), ("Cookie", &sofia.cookie)],
        None,
    )
    .await;
    assert_eq!(
        r.status, 401,
        "a wrong token is refused even with a session"
    );
    m.stop().await;
}

#[tokio::test]
async fn the_api_stream_accepts_a_supervisors_session() {
    let m = setup().await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let ana = login(&m, "ana", "ana-password").await;
    let head = |cookie: String| {
        let http = m.http.clone();
        async move {
            let mut s = TcpStream::connect(&http).await.unwrap();
            let r =
                format!("GET /api/v1/stream HTTP/1.1\r\nHost: {http}\r\nCookie: {cookie}\r\n\r\n");
            s.write_all(r.as_bytes()).await.unwrap();
            let mut lines = BufReader::new(s).lines();
            let mut head = String::new();
            while let Ok(Ok(Some(l))) = tokio::time::timeout(DEADLINE, lines.next_line()).await {
                if l.is_empty() {
                    break;
                }
                head += &l.to_ascii_lowercase();
                head += "\n";
            }
            head
        }
    };
    let h = head(sofia.cookie.clone()).await;
    assert!(
        h.starts_with("http/1.1 200") && h.contains("content-type: text/event-stream"),
        "{h}"
    );
    let h = head(ana.cookie.clone()).await;
    assert!(h.starts_with("http/1.1 403"), "{h}");
    m.stop().await;
}

#[tokio::test]
async fn agents_see_only_their_teams_conversations() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112233", "for the south team").await;
    let south = routed(&m, "+380501112233").await;
    dev.sms("gsm0", "+380509998877", "for the north team").await;
    let north = routed(&m, "+380509998877").await;

    let ana = login(&m, "ana", "ana-password").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    let sam = login(&m, "sam", "sam-password").await;
    let conv = |id: &str| format!("/desk/c/{id}");

    assert_eq!(ivan.get(&conv(&south)).await.status, 200);
    assert_eq!(ana.get(&conv(&north)).await.status, 200);
    for p in [conv(&south), format!("{}/timeline", conv(&south))] {
        assert_eq!(ana.get(&p).await.status, 403, "{p}");
    }
    // Actions on it are refused too, and change nothing.
    for (path, form) in [
        (format!("{}/reply", conv(&south)), "text=hi"),
        (format!("{}/note", conv(&south)), "text=hi"),
        (format!("{}/action", conv(&south)), "do=resolve"),
        (format!("{}/action", conv(&south)), "do=take"),
        (format!("{}/transfer", conv(&south)), "to=agent%3Aana"),
    ] {
        assert_eq!(ana.post(&path, form).await.status, 403, "{path} {form}");
    }
    let (_, v) = m.get(&format!("/api/v1/conversations/{south}")).await;
    assert_eq!(v["status"], "open");
    assert_eq!(v["timeline"].as_array().unwrap().len(), 1);

    // Inbox lists: each agent's "my teams" holds only their team's work.
    let ana_list = ana.get("/desk/list?tab=teams").await.body;
    let ivan_list = ivan.get("/desk/list?tab=teams").await.body;
    assert!(
        ana_list.contains(&north) && !ana_list.contains(&south),
        "{ana_list}"
    );
    assert!(
        ivan_list.contains(&south) && !ivan_list.contains(&north),
        "{ivan_list}"
    );
    // A supervisor of team south sees south only.
    assert_eq!(sam.get(&conv(&south)).await.status, 200);
    assert_eq!(sam.get(&conv(&north)).await.status, 403);
    let sam_all = sam.get("/desk/list?tab=all").await.body;
    assert!(
        sam_all.contains(&south) && !sam_all.contains(&north),
        "{sam_all}"
    );
    m.stop().await;
}

#[tokio::test]
async fn customer_html_is_shown_as_text() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let evil = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    dev.sms("gsm1", "+380501112233", evil).await;
    let id = routed(&m, "+380501112233").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    for p in [
        format!("/desk/c/{id}"),
        "/desk/list?tab=teams".into(),
        format!("/desk/c/{id}/timeline"),
    ] {
        let page = ivan.get(&p).await;
        assert_eq!(page.status, 200, "{p}");
        assert!(
            page.body.contains("&#60;img src=x onerror=alert(1)&#62;")
                || page.body.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{p}: {}",
            page.body
        );
        assert!(!page.body.contains("<img src=x"), "{p}");
        assert!(!page.body.contains("<script>alert(2)"), "{p}");
    }
    m.stop().await;
}

#[tokio::test]
async fn desk_actions_reach_routing_and_the_log() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    // Ivan is available: the south conversation is assigned to him.
    let r = ivan
        .post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    assert_eq!(r.status, 303);
    dev.sms("gsm1", "+380501112233", "where is my parcel?")
        .await;
    let id = routed(&m, "+380501112233").await;
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ivan").then_some(()) }).await;
    let mine = ivan.get("/desk/list?tab=mine").await.body;
    assert!(mine.contains(&id), "{mine}");

    // Reply: the command reaches the device, authored by ivan.
    let r = ivan
        .post(
            &format!("/desk/c/{id}/reply"),
            "text=On+its+way%21&line=gsm1",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(
        !r.header("location").unwrap().contains("err="),
        "{:?}",
        r.header("location")
    );
    let cmd = dev.next_command().await;
    assert!(format!("{cmd:?}").contains("On its way!"), "{cmd:?}");
    let (_, v) = m.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(v["timeline"][1]["author"], "ivan");

    // Hold frees capacity, resume takes it back.
    assert_eq!(
        ivan.post(&format!("/desk/c/{id}/action"), "do=hold")
            .await
            .status,
        303
    );
    assert_eq!(routing_state(&m, &id).await["state"]["state"], "held");
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    assert!(page.contains("data-testid=\"act-resume\""), "{page}");
    assert_eq!(
        ivan.post(&format!("/desk/c/{id}/action"), "do=resume")
            .await
            .status,
        303
    );
    assert_eq!(routing_state(&m, &id).await["state"]["state"], "active");

    // A private note with a mention.
    assert_eq!(
        ivan.post(&format!("/desk/c/{id}/note"), "text=ask+%40ana+about+it")
            .await
            .status,
        303
    );
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    assert!(
        page.contains("ask @ana about it") && page.contains("class=\"mention\">@ana"),
        "{page}"
    );
    // Mentioned users see a marker on the conversation in their inbox.
    let sofia = login(&m, "sofia", "sofia-password").await;
    let r = sofia
        .post(
            &format!("/desk/c/{id}/note"),
            "text=%40ivan+please+call+back",
        )
        .await;
    assert_eq!(r.status, 303);
    let mine = ivan.get("/desk/list?tab=mine").await.body;
    assert!(mine.contains("data-testid=\"row-mention\""), "{mine}");
    let all = sofia.get("/desk/list?tab=all").await.body;
    assert!(
        !all.contains("data-testid=\"row-mention\""),
        "sofia is not mentioned: {all}"
    );

    // Resolve: the projection and routing agree.
    assert_eq!(
        ivan.post(&format!("/desk/c/{id}/action"), "do=resolve")
            .await
            .status,
        303
    );
    let (_, v) = m.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(v["status"], "resolved");
    wait_for(|| async {
        (routing_state(&m, &id).await["state"]["state"] == "resolved").then_some(())
    })
    .await;

    // A refused action comes back as a message on the page.
    let r = ivan.post(&format!("/desk/c/{id}/action"), "do=hold").await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("err="));

    // Reopened from the desk: open in the projection and back in routing
    // (assigned again to ivan, who is available), with Resolve again.
    let r = ivan
        .post(&format!("/desk/c/{id}/action"), "do=reopen")
        .await;
    assert_eq!(r.status, 303);
    assert!(
        !r.header("location").unwrap().contains("err="),
        "{:?}",
        r.header("location")
    );
    let (_, v) = m.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(v["status"], "open");
    wait_for(|| async {
        let r = routing_state(&m, &id).await;
        (r["state"]["state"] == "active" && r["agent"] == "ivan").then_some(())
    })
    .await;
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    assert!(page.contains("data-testid=\"act-resolve\""), "{page}");
    assert!(page.contains("data-testid=\"act-hold\""), "{page}");

    // The JSON API's resolve and reopen take the same path through routing.
    let (st, v) = m
        .request("POST", &format!("/api/v1/conversations/{id}/resolve"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    wait_for(|| async {
        (routing_state(&m, &id).await["state"]["state"] == "resolved").then_some(())
    })
    .await;
    let (st, v) = m
        .request("POST", &format!("/api/v1/conversations/{id}/reopen"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "open");
    wait_for(|| async {
        let r = routing_state(&m, &id).await;
        (r["state"]["state"] == "active" && r["agent"] == "ivan").then_some(())
    })
    .await;

    // Everything is in the audit log.
    let root = login(&m, "root", "root-password").await;
    let audit = root.get("/admin/audit?actor=ivan").await.body;
    for a in [
        "conversation.reply",
        "conversation.hold",
        "conversation.resume",
        "conversation.note",
        "conversation.resolve",
        "conversation.reopen",
        "conversation.open",
        "presence",
    ] {
        assert!(audit.contains(a), "{a} missing from {audit}");
    }
    m.stop().await;
}

#[tokio::test]
async fn merge_contacts_from_the_customer_panel() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let (num_a, num_b) = ("+380501112233", "+380509998877");
    dev.sms("gsm1", num_a, "first from A").await;
    let a1 = routed(&m, num_a).await;
    dev.sms("gsm0", num_b, "first from B").await;
    let b1 = routed(&m, num_b).await;
    let contact = |id: String| {
        let m = &m;
        async move { m.get(&format!("/api/v1/conversations/{id}")).await.1["contact"].clone() }
    };
    let ca = contact(a1.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cb = contact(b1.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(ca, cb);

    let sofia = login(&m, "sofia", "sofia-password").await;
    // Tags and notes on both contacts.
    for (c, conv, tag, note) in [
        (&ca, &a1, "vip", "note+on+A"),
        (&cb, &b1, "late-payer", "note+on+B"),
    ] {
        let r = sofia
            .post(
                &format!("/desk/contact/{c}/tag"),
                &format!("tag={tag}&conv={conv}"),
            )
            .await;
        assert_eq!(r.status, 303);
        let r = sofia
            .post(
                &format!("/desk/contact/{c}/note"),
                &format!("text={note}&conv={conv}"),
            )
            .await;
        assert_eq!(r.status, 303);
    }
    let page = sofia.get(&format!("/desk/c/{a1}")).await.body;
    assert!(
        page.contains("Merge another contact into this one"),
        "{page}"
    );
    let merge = format!("/desk/contact/{ca}/merge");
    let form = format!("with=%2B380509998877&conv={a1}");

    // Both have an open conversation: refused with a message, nothing moved.
    assert_eq!(
        sofia.follow_err(&merge, &form).await,
        "Both customers have an open conversation: resolve one of them, then merge."
    );
    assert_eq!(contact(b1.clone()).await["id"], cb.as_str());
    assert_eq!(
        sofia
            .post(&format!("/desk/c/{b1}/action"), "do=resolve")
            .await
            .status,
        303
    );

    // Users who may not see both contacts are refused: ana sees only B's
    // (north) conversation, not A's page at all; sam supervises only the
    // south team (A's) and reads the same message as for a number that is
    // nobody's (the form does not tell who is a customer).
    let ana = login(&m, "ana", "ana-password").await;
    let r = ana.post(&merge, &form).await;
    assert_eq!(r.status, 403, "ana: {}", r.body);
    let sam = login(&m, "sam", "sam-password").await;
    let not_theirs = sam.follow_err(&merge, &form).await;
    assert_eq!(not_theirs, "No customer you may see has this number or id.");
    let nobody = sofia
        .follow_err(&merge, &format!("with=%2B380631234567&conv={a1}"))
        .await;
    assert_eq!(nobody, not_theirs);
    // Without same-origin proof: refused like every action.
    let r = req(
        &m,
        "POST",
        &merge,
        &[("Cookie", &sofia.cookie)],
        Some(&form),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(contact(b1.clone()).await["id"], cb.as_str());

    // Sofia sees both: B merges into A.
    let r = sofia.post(&merge, &form).await;
    assert_eq!(r.status, 303);
    assert!(
        !r.header("location").unwrap().contains("err="),
        "{:?}",
        r.head
    );

    let check = |page: String| {
        for want in [
            format!("</small> {num_a}<"),
            format!("</small> {num_b}<"),
            format!("/desk/c/{b1}?"),
            "data-testid=\"tag\">vip<".to_string(),
            "data-testid=\"tag\">late-payer<".to_string(),
            "note on A".to_string(),
            "note on B".to_string(),
        ] {
            assert!(page.contains(&want), "{want} missing from {page}");
        }
    };
    check(sofia.get(&format!("/desk/c/{a1}")).await.body);
    // B's conversation now lists A as its contact, still with B's number.
    let c = contact(b1.clone()).await;
    assert_eq!(c["id"], ca.as_str());
    assert_eq!(c["address"], num_b);
    assert_eq!(contact(a1.clone()).await["address"], num_a);
    // Listing by either number gives the contact's conversations, once each.
    let l = m
        .wait_list("?number=%2B380509998877", |l| l.len() == 2)
        .await;
    assert!(l.iter().any(|c| c["id"] == a1.as_str()) && l.iter().any(|c| c["id"] == b1.as_str()));

    // A new SMS from B's number lands on A (in A's open conversation).
    dev.sms("gsm0", num_b, "again from B").await;
    let v = m
        .wait_conversation(&a1, |v| v["last_message_preview"] == "again from B")
        .await;
    assert_eq!(v["contact"]["id"], ca.as_str());
    assert_eq!(
        m.wait_list("?number=%2B380509998877", |l| l.len() == 2)
            .await
            .len(),
        2
    );
    // With nothing open, B's number starts a new conversation of A, with B's
    // number (replies go there).
    assert_eq!(
        sofia
            .post(&format!("/desk/c/{a1}/action"), "do=resolve")
            .await
            .status,
        303
    );
    dev.sms("gsm0", num_b, "B once more").await;
    let l = m
        .wait_list("?number=%2B380509998877", |l| l.len() == 3)
        .await;
    let c1 = l
        .iter()
        .find(|c| c["last_message_preview"] == "B once more")
        .unwrap();
    assert_eq!(c1["contact"]["id"], ca.as_str());
    assert_eq!(c1["contact"]["address"], num_b);
    assert_eq!(c1["status"], "open");

    // Audited.
    let root = login(&m, "root", "root-password").await;
    let audit = root.get("/admin/audit?actor=sofia").await.body;
    assert!(audit.contains("contact.merged"), "{audit}");

    // Survives a restart.
    let m = m.restart().await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    check(sofia.get(&format!("/desk/c/{a1}")).await.body);
    let (_, v) = m.get(&format!("/api/v1/conversations/{b1}")).await;
    assert_eq!(v["contact"]["id"], ca.as_str());
    m.stop().await;
}

/// Reads SSE events from `/desk/stream` as `browser` until `pred` says stop.
async fn read_stream(http: String, cookie: String, mut pred: impl FnMut(&str, &str) -> bool) {
    let mut s = TcpStream::connect(&http).await.unwrap();
    let r = format!(
        "GET /desk/stream HTTP/1.1\r\nHost: {http}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    s.write_all(r.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut event = String::new();
    let start = Instant::now();
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("stream event within the deadline")
            .unwrap()
            .expect("stream open");
        assert!(start.elapsed() < DEADLINE);
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ")
            && pred(&event, d)
        {
            return;
        }
    }
}

#[tokio::test]
async fn the_live_stream_tells_each_agent_only_about_their_conversations() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ana = login(&m, "ana", "ana-password").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, String)>();
    for (who, b) in [("ana", &ana), ("ivan", &ivan), ("sofia", &sofia)] {
        let tx = tx.clone();
        // Each browser forwards the conversation ids it is told about.
        let (http, cookie) = (b.m.http.clone(), b.cookie.clone());
        tokio::spawn(async move {
            read_stream(http, cookie, |ev, data| {
                if ev == "change" {
                    let _ = tx.send((who, data.to_string()));
                }
                false
            })
            .await;
        });
    }
    // Let the three streams subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    dev.sms("gsm1", "+380501112233", "south first").await;
    let south = routed(&m, "+380501112233").await;
    dev.sms("gsm0", "+380509998877", "north second").await;
    let north = routed(&m, "+380509998877").await;
    let mut seen: Vec<(&str, String)> = Vec::new();
    wait_for(|| {
        while let Ok(x) = rx.try_recv() {
            seen.push(x);
        }
        let got = |who: &str, id: &str| seen.iter().any(|(w, i)| *w == who && i == id);
        let done = got("ana", &north)
            && got("ivan", &south)
            && got("sofia", &south)
            && got("sofia", &north);
        async move { done.then_some(()) }
    })
    .await;
    // The south change was broadcast before the north one: had ana's stream
    // passed it on, she would have it by now.
    assert!(
        !seen.iter().any(|(w, i)| *w == "ana" && *i == south),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|(w, i)| *w == "ivan" && *i == north),
        "{seen:?}"
    );
    m.stop().await;
}

/// Collects the conversation ids `rx` brings into `seen` until `id` is there
/// `times` times.
async fn changes_until(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: &mut Vec<String>,
    id: &str,
    times: usize,
) {
    let deadline = Instant::now() + DEADLINE;
    while seen.iter().filter(|s| *s == id).count() < times {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(x)) => seen.push(x),
            _ => panic!("no change {times}x for {id} within the deadline: {seen:?}"),
        }
    }
}

/// A new message is one change on a desk's stream, not one for the message
/// and another for routing queueing it: routing deals with the message
/// before the stream resolves who may see it, and a decision that leaves
/// routing's view as it was passed on is not sent again. A decision that
/// does change it (a transfer) is.
#[tokio::test]
async fn a_new_message_is_one_change_on_the_desk_stream() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (http, cookie) = (sofia.m.http.clone(), sofia.cookie.clone());
    tokio::spawn(async move {
        read_stream(http, cookie, |ev, data| {
            if ev == "change" {
                let _ = tx.send(data.to_string());
            }
            false
        })
        .await;
    });
    // Let the stream subscribe.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut seen: Vec<String> = Vec::new();
    dev.sms("gsm1", "+380501112233", "south first").await;
    let south = routed(&m, "+380501112233").await;
    changes_until(&mut rx, &mut seen, &south, 1).await;
    // The next message's change comes after everything the log said about
    // the first (the stream follows the log in order): a second change for
    // `south` would be here by then.
    dev.sms("gsm0", "+380509998877", "north second").await;
    let north = routed(&m, "+380509998877").await;
    changes_until(&mut rx, &mut seen, &north, 1).await;
    let got = seen.clone();
    assert_eq!(
        got.iter().filter(|s| **s == south).count(),
        1,
        "one change for one message: {got:?}"
    );
    // A transfer changes routing's view: the desk hears of it.
    let (status, body) = m
        .post(
            &format!("/api/v1/conversations/{south}/assign"),
            r#"{"queue": "north"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    changes_until(&mut rx, &mut seen, &south, 2).await;
    m.stop().await;
}

#[tokio::test]
async fn a_failed_reply_shows_its_state_and_reason_per_part_in_the_desk() {
    use crossline_core::{DeliveryState, EventBody};
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112233", "where is my parcel?")
        .await;
    let id = routed(&m, "+380501112233").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    let cms_500 =
        "the modem or network failed without giving a reason (+CMS ERROR 500: unknown error)";

    // One part, refused by the modem.
    let r = ivan
        .post(&format!("/desk/c/{id}/reply"), "text=On+its+way&line=gsm1")
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c1 = dev.next_command().await;
    let e = dev.event(EventBody::DeliveryStatus {
        command: c1.id,
        part: Some(1),
        state: DeliveryState::Failed,
        detail: Some(cms_500.into()),
    });
    dev.publish(vec![e]).await;
    m.wait_conversation(&id, |v| v["timeline"][1]["state"] == "failed")
        .await;
    let page = ivan.get(&format!("/desk/c/{id}/timeline")).await.body;
    assert!(
        page.contains(r#"data-delivery="delivery.failed""#),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"<span class="reason" data-testid="delivery-reason">{cms_500}</span>"#
        )),
        "{page}"
    );

    // Two parts: one delivered, one the network gave up on: each part shows
    // its state and reason, in the agent's language.
    let r = ivan
        .post(
            &format!("/desk/c/{id}/reply"),
            "text=Second+reply&line=gsm1",
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c2 = dev.next_command().await;
    let gave_up = "the network gave up delivering part 2 to +380501112233 (TP-ST 70)";
    let evs = vec![
        dev.event(common::sent(&c2, vec![3, 4])),
        dev.event(common::status(&c2, Some(1), DeliveryState::Delivered)),
        dev.event(EventBody::DeliveryStatus {
            command: c2.id,
            part: Some(2),
            state: DeliveryState::Failed,
            detail: Some(gave_up.into()),
        }),
    ];
    dev.publish(evs).await;
    m.wait_conversation(&id, |v| v["timeline"][2]["state"] == "failed")
        .await;
    assert_eq!(
        ivan.post("/settings/language", "locale=uk&next=%2Fdesk")
            .await
            .status,
        303
    );
    let page = ivan.get(&format!("/desk/c/{id}/timeline")).await.body;
    assert!(page.contains(r#"data-testid="delivery-parts""#), "{page}");
    assert!(
        page.contains(
            r#"<li data-testid="delivery-part" data-delivery="delivery.delivered">Частина 1: "#
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            r#"<li data-testid="delivery-part" data-delivery="delivery.failed">Частина 2: <span class="ticks">✗</span> Помилка: <span class="reason">{gave_up}</span>"#
        )),
        "{page}"
    );
    m.stop().await;
}

#[tokio::test]
async fn pages_render_in_the_users_language() {
    let m = setup().await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    // From Accept-Language...
    let r = req(
        &m,
        "GET",
        "/supervisor",
        &[
            ("Cookie", &sofia.cookie),
            ("Accept-Language", "uk-UA,uk;q=0.9"),
        ],
        None,
    )
    .await;
    assert!(
        r.body.contains("<html lang=\"uk\">") && r.body.contains("Черги"),
        "{}",
        r.body
    );
    // ...until the user picks one.
    assert_eq!(
        sofia
            .post("/settings/language", "locale=ro&next=%2Fsupervisor")
            .await
            .status,
        303
    );
    let r = req(
        &m,
        "GET",
        "/supervisor",
        &[("Cookie", &sofia.cookie), ("Accept-Language", "uk-UA")],
        None,
    )
    .await;
    assert!(
        r.body.contains("<html lang=\"ro\">") && r.body.contains("Cozi"),
        "{}",
        r.body
    );
    let login_ru = req(&m, "GET", "/login", &[("Accept-Language", "ru")], None).await;
    assert!(login_ru.body.contains("Войти"), "{}", login_ru.body);
    // Error pages speak the user's language too: an agent refused the board...
    let ana = login(&m, "ana", "ana-password").await;
    let r = req(
        &m,
        "GET",
        "/supervisor",
        &[
            ("Cookie", &ana.cookie),
            ("Accept-Language", "ru-RU,ru;q=0.9"),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("<html lang=\"ru\">") && r.body.contains("У вас нет доступа к этому."),
        "{}",
        r.body
    );
    // ...and a cross-site form post refused before anyone is known.
    let r = req(
        &m,
        "POST",
        "/login",
        &[("Accept-Language", "uk"), ("Sec-Fetch-Site", "cross-site")],
        Some("login=ana&password=x"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("<html lang=\"uk\">")
            && r.body
                .contains("Запит надійшов не з цього сайту і відхилений."),
        "{}",
        r.body
    );
    m.stop().await;
}

#[tokio::test]
async fn assets_are_versioned_and_cached() {
    let m = setup().await;
    let page = req(&m, "GET", "/login", &[], None).await.body;
    let url = page
        .split("src=\"")
        .find_map(|s| s.split('"').next().filter(|u| u.ends_with("htmx.min.js")))
        .unwrap()
        .to_string();
    let r = req(&m, "GET", &url, &[], None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    assert!(r.body.contains("htmx"));
    let etag = r.header("etag").unwrap();
    let r = req(&m, "GET", &url, &[("If-None-Match", &etag)], None).await;
    assert_eq!(r.status, 304);
    let r = req(&m, "GET", "/favicon.ico", &[], None).await;
    assert_eq!(r.status, 308);
    assert!(r.header("location").unwrap().ends_with("/favicon.svg"));
    let r = req(&m, "GET", "/assets/old/app.css", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control").as_deref(), Some("no-cache"));
    m.stop().await;
}

#[tokio::test]
async fn supervisor_board_and_reports() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112233", "anyone there?").await;
    let id = routed(&m, "+380501112233").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let board = sofia.get("/supervisor/board").await.body;
    assert!(board.contains("data-queue=\"south\""), "{board}");
    assert!(
        board.contains(&format!("data-testid=\"waiting-item\" data-id=\"{id}\"")),
        "{board}"
    );
    // Reassign from the board.
    let r = sofia
        .post(
            &format!("/desk/c/{id}/transfer"),
            "to=agent%3Aivan&back=board",
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location").as_deref(), Some("/supervisor"));
    let reports = sofia.get("/supervisor/reports").await;
    assert_eq!(reports.status, 200);
    assert!(reports.body.contains("data-testid=\"chart-volume\""));
    assert!(
        reports
            .body
            .contains("data-scope=\"queue\" data-name=\"south\""),
        "{}",
        reports.body
    );
    let csv = sofia.get("/supervisor/reports.csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    assert!(csv.body.starts_with("scope,name,offered"), "{}", csv.body);
    assert!(csv.body.contains("queue,\"south\",1,"), "{}", csv.body);
    m.stop().await;
}

/// A fresh install, no routing configured: an agent added as `user add`
/// does sees why her inbox is empty (she starts offline), sets herself
/// available in the desk and gets the next customer by the default routing.
#[tokio::test]
async fn first_run_the_empty_inbox_says_why_and_the_default_routing_serves_her() {
    let m = Mgmt::start().await;
    add_user(&m, "olga", Role::Agent, &[]).await;
    let olga = login(&m, "olga", "olga-password").await;
    let page = olga.get("/desk").await.body;
    assert!(page.contains("data-testid=\"inbox-empty\""), "{page}");
    assert!(
        page.contains(
            "New conversations reach you only while your status is Available. You can change it at the top of the page."
        ),
        "{page}"
    );
    let r = olga
        .post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let list = olga.get("/desk/list?tab=mine").await.body;
    assert!(!list.contains("inbox-not-available"), "{list}");
    let mut dev = m.device("branch-first").await;
    dev.sms("gsm0", "+380501118800", "Добрий день!").await;
    let id = routed(&m, "+380501118800").await;
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "olga").then_some(()) }).await;
    let mine = olga.get("/desk/list?tab=mine").await.body;
    assert!(mine.contains(&id), "{mine}");
    m.stop().await;
}

/// Entry rules on `customer_tag` see the tags agents gave the contact in
/// the desk.
#[tokio::test]
async fn entry_rules_on_customer_tags_see_the_desks_tags() {
    let m = Mgmt::start().await;
    add_user(&m, "sofia", Role::Supervisor, &[]).await;
    let cfg = json!({
        "default_queue": "front",
        "agents": [ { "id": "ana" }, { "id": "ivan" } ],
        "queues": [
            { "id": "front", "members": { "agents": ["ana"] } },
            { "id": "vip", "members": { "agents": ["ivan"] } }
        ],
        "rules": [ { "when": { "customer_tag": "vip" }, "queue": "vip", "priority": 5 } ]
    });
    let (s, v) = m
        .request("PUT", "/api/v1/routing/config", Some(&cfg.to_string()))
        .await;
    assert_eq!(s, 200, "{v}");
    let mut dev = m.device("branch-vip").await;
    dev.sms("gsm0", "+380501118811", "Перше звернення").await;
    let first = routed(&m, "+380501118811").await;
    assert_eq!(routing_state(&m, &first).await["queue"], "front");
    let contact = m.get(&format!("/api/v1/conversations/{first}")).await.1["contact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sofia = login(&m, "sofia", "sofia-password").await;
    let r = sofia
        .post(
            &format!("/desk/contact/{contact}/tag"),
            &format!("tag=vip&conv={first}"),
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (s, _) = m
        .post(&format!("/api/v1/conversations/{first}/resolve"), "")
        .await;
    assert_eq!(s, 200);
    // The tagged customer writes again: a new conversation, to the vip queue.
    dev.sms("gsm0", "+380501118811", "Знову я").await;
    let list = m
        .wait_list("?number=%2B380501118811", |l| l.len() == 2)
        .await;
    let second = list[0]["id"].as_str().unwrap().to_string();
    let view = wait_for(|| async {
        let (s, v) = m
            .get(&format!("/api/v1/routing/conversations/{second}"))
            .await;
        (s == 200).then_some(v)
    })
    .await;
    assert_eq!(
        (&view["queue"], &view["priority"]),
        (&json!("vip"), &json!(5)),
        "{view}"
    );
    m.stop().await;
}

/// The `<select name="to"` forms of a page: each select's HTML.
fn transfer_selects(page: &str) -> Vec<&str> {
    page.match_indices("<select name=\"to\"")
        .map(|(i, _)| {
            let rest = &page[i..];
            &rest[..rest.find("</select>").unwrap()]
        })
        .collect()
}

/// Whether the page offers the action button `act-<what>`.
fn offers(page: &str, what: &str) -> bool {
    page.contains(&format!("data-testid=\"act-{what}\""))
}

#[tokio::test]
async fn desk_controls_follow_the_conversations_state_and_who_has_it() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    let r = ivan
        .post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    assert_eq!(r.status, 303);
    dev.sms("gsm1", "+380501112233", "where is my parcel?")
        .await;
    let id = routed(&m, "+380501112233").await;
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ivan").then_some(()) }).await;

    // Ivan's own conversation: hold, snooze, resolve, transfer; not "take".
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    for what in ["hold", "snooze", "resolve", "transfer"] {
        assert!(offers(&page, what), "{what} missing: {page}");
    }
    assert!(!offers(&page, "take"), "{page}");
    // Transfer picks nobody by itself and does not offer ivan himself.
    let sel = transfer_selects(&page);
    assert_eq!(sel.len(), 1, "{page}");
    assert!(sel[0].contains("required"), "{}", sel[0]);
    assert!(
        sel[0].contains("<option value=\"\" selected disabled>"),
        "{}",
        sel[0]
    );
    assert!(!sel[0].contains("agent:ivan"), "{}", sel[0]);

    // Transferred to ana: ivan still sees it (his team's queue), with none
    // of the handling agent's controls, and the actions are refused.
    let ana = login(&m, "ana", "ana-password").await;
    ana.post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    let r = ivan
        .post(&format!("/desk/c/{id}/transfer"), "to=agent%3Aana")
        .await;
    assert_eq!(r.status, 303);
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ana").then_some(()) }).await;
    let page = ivan.get(&format!("/desk/c/{id}")).await;
    assert_eq!(page.status, 200);
    for what in ["take", "hold", "snooze", "resume", "resolve", "transfer"] {
        assert!(
            !offers(&page.body, what),
            "ivan is offered {what}: {}",
            page.body
        );
    }
    for what in ["hold", "snooze_1h", "resolve", "take"] {
        let r = ivan
            .post(&format!("/desk/c/{id}/action"), &format!("do={what}"))
            .await;
        assert_eq!(r.status, 303);
        let to = r.header("location").unwrap();
        assert!(to.contains("err="), "{what}: {to}");
    }
    let r = ivan
        .follow_err(&format!("/desk/c/{id}/action"), "do=hold")
        .await;
    assert!(
        r.contains("ana handles this conversation: ask a supervisor to reassign it."),
        "{r}"
    );
    let state = routing_state(&m, &id).await;
    assert_eq!(
        (state["agent"].as_str(), state["state"]["state"].as_str()),
        (Some("ana"), Some("active")),
        "{state}"
    );
    // The supervisor may still move or close it; hold stays with ana.
    let sofia = login(&m, "sofia", "sofia-password").await;
    let page = sofia.get(&format!("/desk/c/{id}")).await.body;
    assert!(
        offers(&page, "transfer") && offers(&page, "resolve"),
        "{page}"
    );
    assert!(!offers(&page, "hold"), "{page}");

    // Resolved: only "reopen", for everyone; the rest is refused.
    let r = sofia
        .post(&format!("/desk/c/{id}/action"), "do=resolve")
        .await;
    assert_eq!(r.status, 303);
    assert!(!r.header("location").unwrap().contains("err="));
    for (who, b) in [("sofia", &sofia), ("ivan", &ivan)] {
        let page = b.get(&format!("/desk/c/{id}")).await.body;
        assert!(offers(&page, "reopen"), "{who}: {page}");
        for what in ["take", "hold", "snooze", "resume", "resolve", "transfer"] {
            assert!(
                !offers(&page, what),
                "{who} is offered {what} when resolved"
            );
        }
    }
    let r = ivan
        .follow_err(&format!("/desk/c/{id}/action"), "do=take")
        .await;
    assert!(
        r.contains("This conversation is resolved: reopen it first."),
        "{r}"
    );
    m.stop().await;
}

impl Browser<'_> {
    /// Posts a form whose answer redirects back with an error; the page
    /// shown after the redirect (what the user reads).
    async fn follow_err(&self, path: &str, form: &str) -> String {
        let r = self.post(path, form).await;
        assert_eq!(r.status, 303, "{}", r.body);
        let to = r.header("location").unwrap();
        assert!(to.contains("err="), "{to}");
        let page = self.get(&to).await;
        assert_eq!(page.status, 200);
        let at = page
            .body
            .find("data-testid=\"action-error\">")
            .unwrap_or_else(|| panic!("no error shown: {}", page.body));
        let rest = &page.body[at + "data-testid=\"action-error\">".len()..];
        rest[..rest.find("</p>").unwrap()].to_string()
    }
}

#[tokio::test]
async fn board_reassign_preselects_nobody() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    ivan.post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    dev.sms("gsm1", "+380501112233", "hello").await;
    let id = routed(&m, "+380501112233").await;
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ivan").then_some(()) }).await;
    dev.sms("gsm0", "+380509998877", "waiting here").await;
    let waiting = routed(&m, "+380509998877").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let board = sofia.get("/supervisor/board").await.body;
    let sel = transfer_selects(&board);
    assert_eq!(sel.len(), 2, "ivan's item and the waiting one: {board}");
    for s in &sel {
        // A placeholder is selected: one click on Reassign moves nothing.
        assert!(
            s.contains("required") && s.contains("<option value=\"\" selected disabled>"),
            "{s}"
        );
    }
    // Ivan's conversation does not offer ivan.
    let at = board
        .find(&format!("data-testid=\"agent-item\" data-id=\"{id}\""))
        .unwrap_or_else(|| panic!("{board}"));
    let item = transfer_selects(&board[at..])[0];
    assert!(
        !item.contains("agent:ivan") && item.contains("agent:ana"),
        "{item}"
    );
    // A form posted without a choice is refused and moves nothing.
    let r = sofia
        .post(&format!("/desk/c/{id}/transfer"), "to=&back=board")
        .await;
    assert!(r.status == 400 || r.status == 303, "{}", r.status);
    assert_eq!(routing_state(&m, &id).await["agent"], "ivan");
    assert!(board.contains(&format!("data-id=\"{waiting}\"")));
    m.stop().await;
}

/// `handle_time_ms` of the CSV's total row.
fn csv_total_aht(csv: &str) -> f64 {
    let total = csv.lines().find(|l| l.starts_with("total,")).unwrap();
    total.split(',').nth(8).unwrap().parse().unwrap()
}

#[tokio::test]
async fn reports_handle_time_is_the_metrics_apis() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    ivan.post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    let t_sms = Instant::now();
    dev.sms("gsm1", "+380501112233", "hello").await;
    let id = routed(&m, "+380501112233").await;
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ivan").then_some(()) }).await;
    // Ivan has it open (still active): handle time runs until now, not
    // until the end of the day the report shows.
    let sofia = login(&m, "sofia", "sofia-password").await;
    let t0 = Instant::now();
    let (s, api) = m.get("/api/v1/metrics/routing").await;
    assert_eq!(s, 200, "{api}");
    let csv = sofia.get("/supervisor/reports.csv").await.body;
    let page = sofia.get("/supervisor/reports").await.body;
    let between = t0.elapsed().as_millis() as f64;
    let since_sms = t_sms.elapsed().as_millis() as f64;
    let api_aht = api["plain"]["total"]["aht_ms"].as_f64().unwrap();
    let report_aht = csv_total_aht(&csv);
    assert!(
        report_aht <= since_sms + 1000.0,
        "reports say {report_aht} ms of handle time {since_sms} ms after the SMS: {csv}"
    );
    assert!(
        (report_aht - api_aht).abs() <= between + 1000.0,
        "reports {report_aht} ms, API {api_aht} ms"
    );
    // The page shows seconds, not hours.
    let at = page.find("data-scope=\"total\"").unwrap();
    let row = &page[at..at + page[at..].find("</tr>").unwrap()];
    let aht_cell = row.rsplit("<td>").next().unwrap();
    assert!(
        aht_cell.trim().trim_end_matches("</td>").ends_with(" s"),
        "{row}"
    );
    m.stop().await;
}

#[tokio::test]
async fn numbers_channels_and_capacity_read_right() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    ivan.post("/desk/presence", "state=available&next=%2Fdesk")
        .await;
    // A UK mobile in the range kept for drama: a phone, not a short code.
    dev.sms("gsm1", "+447700900123", "hello from London").await;
    let id = routed(&m, "+447700900123").await;
    let (_, v) = m.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(v["contact"]["kind"], "phone", "{v}");
    wait_for(|| async { (routing_state(&m, &id).await["agent"] == "ivan").then_some(()) }).await;
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    assert!(
        page.contains("data-kind=\"phone\"><small>phone</small> +447700900123<"),
        "{page}"
    );
    // SMS is drawn as a phone, never an envelope (that is email).
    let list = ivan.get("/desk/list?tab=mine").await.body;
    assert!(
        list.contains("data-channel=\"sms\"><svg class=\"icon\" data-icon=\"sms\""),
        "{list}"
    );
    assert!(!list.contains('✉'), "{list}");
    // Capacity and the channel filter only for channels that exist (SMS).
    let cap = {
        let at = page.find("data-testid=\"capacity\"").unwrap();
        &page[at..at + page[at..].find("</span></span>").unwrap()]
    };
    assert!(cap.contains("SMS 1/"), "{cap}");
    for absent in ["Call", "Chat", "Email", "Messenger"] {
        assert!(!cap.contains(absent), "{absent} in {cap}");
        assert!(
            !page.contains(&format!(">{absent}</option>")),
            "{absent} in the channel filter"
        );
    }
    // In Russian: the kind of number and the filters agree with their nouns.
    assert_eq!(
        ivan.post("/settings/language", "locale=ru&next=%2Fdesk")
            .await
            .status,
        303
    );
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    for want in [
        "<small>телефон</small>",
        ">Любой канал<",
        ">Любой статус<",
        ">Любая очередь<",
        ">Любая метка<",
        ">На паузу<",
        ">Решено<",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    for wrong in ["Любой</option>", "Удержать", "Решить", ">phone<", ">short<"] {
        assert!(!page.contains(wrong), "{wrong} on the Russian page");
    }
    ivan.post("/settings/language", "locale=uk&next=%2Fdesk")
        .await;
    let page = ivan.get(&format!("/desk/c/{id}")).await.body;
    for want in [
        "<small>телефон</small>",
        ">Будь-яка черга<",
        ">Будь-яка мітка<",
        ">Будь-який канал<",
        ">На паузу<",
    ] {
        assert!(page.contains(want), "{want} missing: {page}");
    }
    assert!(!page.contains("Утримати"), "{page}");
    m.stop().await;
}

/// Logs in with the form as a browser would; the raw answer.
async fn login_form(m: &Mgmt, form: &str) -> Resp {
    let o = origin(m);
    req(m, "POST", "/login", &[("Origin", &o)], Some(form)).await
}

#[tokio::test]
async fn a_login_written_differently_shares_the_lockout() {
    let m = setup().await;
    // Five failures spread over spellings of the same login...
    for l in ["ivan", "ivan+", "IVAN", "+Ivan", "ivan%09"] {
        let r = login_form(&m, &format!("login={l}&password=guess")).await;
        assert_eq!(r.status, 401, "{l}");
    }
    // ...lock every spelling of it, the right password included.
    for l in ["ivan", "ivan+", "IVAN", "%20ivan%20"] {
        let r = login_form(&m, &format!("login={l}&password=ivan-password")).await;
        assert_eq!(r.status, 429, "{l}: {}", r.body);
        assert!(r.header("set-cookie").is_none(), "{l}");
    }
    // A spelling of another login is not locked, and signs in as that login.
    let r = login_form(&m, "login=Ana+&password=ana-password&next=%2Fdesk").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    let page = req(
        &m,
        "GET",
        "/desk",
        &[("Cookie", cookie.split(';').next().unwrap())],
        None,
    )
    .await;
    assert!(
        page.body.contains("data-testid=\"me\">ana name<"),
        "{}",
        page.body
    );
    m.stop().await;
}

#[tokio::test]
async fn after_login_only_paths_on_this_site() {
    let m = setup().await;
    for (next, to) in [
        ("%2Fdesk%3Ftab%3Dall", "/desk?tab=all"),
        ("%2F%09%2Fevil.example", "/"),
        ("%2F%0A%2Fevil.example", "/"),
        ("%2F%0D%0ASet-Cookie%3A+x%3D1", "/"),
        ("%2F%2Fevil.example", "/"),
        ("%2F%5Cevil.example", "/"),
        ("%5C%5Cevil.example", "/"),
        ("https%3A%2F%2Fevil.example%2F", "/"),
        ("%2F%20%2Fevil.example", "/"),
        ("%2F%E2%80%8B%2Fevil.example", "/"),
    ] {
        let r = login_form(&m, &format!("login=ana&password=ana-password&next={next}")).await;
        assert_eq!(r.status, 303, "{next}: {}", r.head);
        assert_eq!(
            r.header("location").as_deref(),
            Some(to),
            "{next}: {}",
            r.head
        );
        assert!(r.header("set-cookie").is_some(), "{next}");
        // The login page's form carries the same, cleaned value.
        let page = req(&m, "GET", &format!("/login?next={next}"), &[], None).await;
        assert_eq!(page.status, 200, "{next}");
        assert!(
            page.body.contains(&format!(
                "name=\"next\" value=\"{}\"",
                to.replace('&', "&#38;")
            )),
            "{next}: {}",
            page.body
        );
    }
    // The language and presence forms take the same rule.
    let ana = login(&m, "ana", "ana-password").await;
    let r = ana
        .post("/settings/language", "locale=en&next=%2F%09%2Fevil.example")
        .await;
    assert_eq!(r.header("location").as_deref(), Some("/"));
    let r = ana
        .post("/desk/presence", "state=away&next=%2F%5Cevil.example")
        .await;
    assert_eq!(r.header("location").as_deref(), Some("/desk"));
    m.stop().await;
}

#[tokio::test]
async fn the_desk_shows_only_its_own_messages_in_the_users_language() {
    let m = setup().await;
    let ana = login(&m, "ana", "ana-password").await;
    // Text of a link's choosing is not shown...
    let page = ana
        .get("/desk?err=Your+account+is+locked.+Call+%2B44+20+7946+0000")
        .await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("account is locked"), "{}", page.body);
    assert!(!page.body.contains("action-error"), "{}", page.body);
    // ...a known code is, from the catalog, in the user's language.
    let page = ana.get("/desk?err=not_possible").await;
    assert!(
        page.body.contains(
            "data-testid=\"action-error\">Not possible in the conversation&#39;s current state.<"
        ) || page.body.contains(
            "data-testid=\"action-error\">Not possible in the conversation&#x27;s current state.<"
        ) || page.body.contains(
            "data-testid=\"action-error\">Not possible in the conversation's current state.<"
        ),
        "{}",
        page.body
    );
    ana.post("/settings/language", "locale=uk&next=%2Fdesk")
        .await;
    let page = ana.get("/desk?err=merge_same").await;
    assert!(page.body.contains("Це той самий клієнт."), "{}", page.body);

    // A refused action sends a code back, not a sentence.
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm0", "+380501112233", "hello").await;
    let id = routed(&m, "+380501112233").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let r = sofia
        .post(&format!("/desk/c/{id}/reply"), "text=%20%20&qs=tab%3Dall")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/desk/c/{id}?tab=all&err=empty_text").as_str())
    );
    // A query string with a line break is not carried into the redirect.
    let r = sofia
        .post(&format!("/desk/c/{id}/reply"), "text=%20&qs=a%0D%0Ab")
        .await;
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/desk/c/{id}?tab=mine&err=empty_text").as_str())
    );
    m.stop().await;
}

/// The head of a GET over HTTPS to 127.0.0.1:`port`, pinning `ca` (blocking).
fn https_head(port: u16, ca: &std::path::Path, path: &str) -> String {
    use std::io::{Read, Write};
    let cfg = crossline_tls::pinned_client_config(ca).unwrap();
    let name = crossline_tls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = crossline_tls::rustls::ClientConnection::new(cfg, name.to_owned()).unwrap();
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut tls = crossline_tls::rustls::StreamOwned::new(conn, s);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    text[..text.find("\r\n\r\n").unwrap()].to_ascii_lowercase()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let m = setup().await;
    let ana = login(&m, "ana", "ana-password").await;
    let pages = [
        req(&m, "GET", "/login", &[], None).await,
        ana.get("/desk").await,
        ana.get("/supervisor").await, // a 403 page
        req(&m, "GET", "/api/v1/conversations", &[], None).await, // a 401
        req(&m, "GET", "/healthz", &[], None).await,
    ];
    for r in &pages {
        let csp = r.header("content-security-policy").unwrap_or_default();
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{part} missing: {}", r.head);
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(
            r.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("referrer-policy").as_deref(),
            Some("same-origin"),
            "{}",
            r.head
        );
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{}",
            r.head
        );
        // HSTS only over HTTPS (browsers ignore it over plain HTTP).
        assert!(
            r.header("strict-transport-security").is_none(),
            "{}",
            r.head
        );
    }
    // The pages CSP guards have no inline script or style to break.
    let page = ana.get("/desk").await.body;
    for inline in [
        "<script>",
        " style=\"",
        " onclick=",
        " onchange=",
        " onsubmit=",
        "<style",
    ] {
        assert!(!page.contains(inline), "{inline} in {page}");
    }
    assert!(page.contains("name=\"htmx-config\""), "{page}");
    m.stop().await;

    // Over HTTPS: Strict-Transport-Security too.
    let m = Mgmt::start_with("[tls]\nenabled = true\n").await;
    let port = m.running().https_addr.unwrap().port();
    let ca = m.running().ca_file.clone().unwrap();
    let head = tokio::task::spawn_blocking(move || https_head(port, &ca, "/login"))
        .await
        .unwrap();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("strict-transport-security: max-age=31536000"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'self'"),
        "{head}"
    );
    m.stop().await;
}

#[tokio::test]
async fn a_team_supervisor_sees_only_her_teams_figures() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm0", "+380501110001", "north one").await;
    dev.sms("gsm0", "+380501110002", "north two").await;
    dev.sms("gsm1", "+380501110003", "south one").await;
    for n in ["+380501110001", "+380501110002", "+380501110003"] {
        routed(&m, n).await;
    }
    let sofia = login(&m, "sofia", "sofia-password").await;
    let sam = login(&m, "sam", "sam-password").await;
    // Everything for the supervisor of every team.
    let csv = sofia.get("/supervisor/reports.csv").await.body;
    assert!(csv.contains("total,\"\",3,"), "{csv}");
    assert!(csv.contains("queue,\"north\",2,"), "{csv}");
    assert!(csv.contains("queue,\"south\",1,"), "{csv}");
    // Only south for sam: no north row, totals and channels of south alone.
    let csv = sam.get("/supervisor/reports.csv").await.body;
    assert!(csv.contains("total,\"\",1,"), "{csv}");
    assert!(csv.contains("channel,\"sms\",1,"), "{csv}");
    assert!(csv.contains("queue,\"south\",1,"), "{csv}");
    assert!(!csv.contains("north"), "{csv}");
    let hours: u64 = csv
        .split("hour,conversations\r\n")
        .nth(1)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(',').nth(1)?.parse::<u64>().ok())
        .sum();
    assert_eq!(hours, 1, "{csv}");
    let page = sam.get("/supervisor/reports").await.body;
    assert!(!page.contains("data-name=\"north\""), "{page}");
    assert!(page.contains("data-name=\"south\""), "{page}");
    m.stop().await;
}

#[tokio::test]
async fn data_files_are_private_and_corrupt_secrets_stop_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let m = setup().await;
    let dir = m.data_dir().to_path_buf();
    let mut seen = Vec::new();
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            let name = e.file_name().to_string_lossy().to_string();
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{name}");
                stack.push(e.path());
            } else if name != "ca.pem" && name != "server.pem" {
                assert_eq!(mode, 0o600, "{name}");
            }
            seen.push(name);
        }
    }
    for f in [
        "mgmt.db",
        "mgmt.db-wal",
        "mgmt.db-shm",
        "mgmt.secret",
        "api.token",
    ] {
        assert!(seen.iter().any(|s| s == f), "{f} not in {seen:?}");
    }
    m.stop().await;
    // An empty API token: mgmt refuses to start, naming the file; the file
    // is left for the admin to restore.
    for (file, content) in [("api.token", ""), ("mgmt.secret", "garbled\u{0}")] {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(file), content).unwrap();
        let mut cfg: crossline_mgmt::config::Config = toml::from_str("").unwrap();
        cfg.data_dir = d.path().to_path_buf();
        cfg.listen_on_free_loopback_ports();
        let e = match crossline_mgmt::server::start(cfg).await {
            Ok(_) => panic!("mgmt started with a corrupt {file}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            e.contains(file) && e.contains("Restore it from a backup"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join(file)).unwrap(),
            content
        );
    }
}

/// Who makes a request in the fleet matrix.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who<'a> {
    Nobody,
    Session(&'a str, &'a str),
    Token,
}

/// A same-origin request as `who` (JSON body under /api, a form elsewhere).
async fn as_who(m: &Mgmt, who: Who<'_>, method: &str, path: &str, body: Option<&str>) -> Resp {
    let o = origin(m);
    let bearer = format!("Bearer {}", m.token);
    let mut h: Vec<(&str, &str)> = vec![("Origin", &o), ("Sec-Fetch-Site", "same-origin")];
    if let Who::Session(_, cookie) = who {
        h.push(("Cookie", cookie));
    }
    if who == Who::Token {
        h.push(("Authorization", &bearer));
    }
    let kind = if path.starts_with("/api/") {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    req_typed(m, method, path, &h, body.map(|b| (kind, b))).await
}

#[tokio::test]
async fn the_fleet_is_for_admins_on_every_surface_and_audited_with_the_real_actor() {
    let m = setup().await;
    let dev = crossline_core::NodeId::new("shop-1").unwrap();
    {
        use crossline_store::DeviceRegistry;
        m.running().store.put_device(&dev, "$7$x").await.unwrap();
    }
    let ana = login(&m, "ana", "ana-password").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let sam = login(&m, "sam", "sam-password").await;
    let root = login(&m, "root", "root-password").await;
    let settings = r#"{"offline":{"texts":{"en":"closed"}}}"#;
    let config_form = format!(
        "target=device&settings={}",
        settings
            .replace('{', "%7B")
            .replace('}', "%7D")
            .replace('"', "%22")
            .replace(':', "%3A")
    );
    // Every fleet route of the JSON API and of the console.
    let api: Vec<(&str, String, Option<String>)> = vec![
        ("GET", "/api/v1/fleet/enrollments".into(), None),
        (
            "POST",
            "/api/v1/fleet/enrollments/e1/approve".into(),
            Some(r#"{"device":"shop-9"}"#.into()),
        ),
        ("POST", "/api/v1/fleet/enrollments/e1/reject".into(), None),
        ("GET", "/api/v1/fleet/devices".into(), None),
        ("GET", "/api/v1/fleet/devices/shop-1".into(), None),
        (
            "GET",
            "/api/v1/fleet/devices/shop-1/telemetry?series=signal".into(),
            None,
        ),
        ("GET", "/api/v1/fleet/alerts".into(), None),
        ("GET", "/api/v1/fleet/devices/shop-1/config".into(), None),
        ("GET", "/api/v1/fleet/devices/shop-1/commands".into(), None),
        ("GET", "/api/v1/fleet/commands/c1".into(), None),
        ("GET", "/api/v1/fleet/commands/c1/output".into(), None),
        (
            "POST",
            "/api/v1/fleet/devices/shop-1/meta".into(),
            Some(r#"{"name":"Renamed"}"#.into()),
        ),
        ("POST", "/api/v1/fleet/devices/shop-1/rekey".into(), None),
        (
            "POST",
            "/api/v1/fleet/devices/shop-1/commands".into(),
            Some(r#"{"type":"reboot"}"#.into()),
        ),
        (
            "POST",
            "/api/v1/fleet/config".into(),
            Some(format!(r#"{{"device":"shop-1","settings":{settings}}}"#)),
        ),
        ("POST", "/api/v1/fleet/devices/shop-1/revoke".into(), None),
    ];
    let console: Vec<(&str, String, Option<String>)> = vec![
        ("GET", "/admin/fleet".into(), None),
        ("GET", "/admin/fleet/list".into(), None),
        ("GET", "/admin/fleet/enrollments".into(), None),
        ("GET", "/admin/fleet/d/shop-1".into(), None),
        (
            "POST",
            "/admin/fleet/enrollments/e1/approve".into(),
            Some("device=shop-9".into()),
        ),
        (
            "POST",
            "/admin/fleet/enrollments/e1/reject".into(),
            Some(String::new()),
        ),
        (
            "POST",
            "/admin/fleet/d/shop-1/meta".into(),
            Some("name=Renamed".into()),
        ),
        (
            "POST",
            "/admin/fleet/d/shop-1/rekey".into(),
            Some(String::new()),
        ),
        (
            "POST",
            "/admin/fleet/d/shop-1/command".into(),
            Some("kind=reboot".into()),
        ),
        (
            "POST",
            "/admin/fleet/d/shop-1/config".into(),
            Some(config_form.clone()),
        ),
        (
            "POST",
            "/admin/fleet/d/shop-1/revoke".into(),
            Some(String::new()),
        ),
    ];
    let refused = [
        Who::Session("ana", &ana.cookie),
        Who::Session("sofia", &sofia.cookie),
        Who::Session("sam", &sam.cookie),
    ];
    for (method, path, body) in api.iter().chain(&console) {
        let r = as_who(&m, Who::Nobody, method, path, body.as_deref()).await;
        let want = if path.starts_with("/api/") { 401 } else { 303 };
        assert_eq!(r.status, want, "nobody {method} {path}: {}", r.body);
        for who in refused {
            let r = as_who(&m, who, method, path, body.as_deref()).await;
            assert_eq!(r.status, 403, "{who:?} {method} {path}: {}", r.body);
        }
    }
    // Nothing was changed by the refused requests.
    let (_, d) = m.get("/api/v1/fleet/devices/shop-1").await;
    assert_eq!(d["device"]["revoked"], false, "{d}");
    assert!(d["device"]["name"].is_null(), "{d}");
    assert!(d["rekey"].is_null(), "{d}");
    let audit = root.get("/admin/audit").await.body;
    assert!(!audit.contains("fleet."), "{audit}");

    // The admin's session and the API token may: each change is audited
    // under who made it (console and JSON API alike).
    let root_who = Who::Session("root", &root.cookie);
    for (who, actor, routes) in [
        (root_who, "root", &api),
        (Who::Token, "api-token", &api),
        (root_who, "root", &console),
    ] {
        {
            use crossline_store::DeviceRegistry;
            m.running().store.put_device(&dev, "$7$x").await.unwrap();
        }
        for (method, path, body) in routes.iter() {
            let r = as_who(&m, who, method, path, body.as_deref()).await;
            assert!(
                ![401, 403].contains(&r.status) && r.status < 500,
                "{who:?} {method} {path}: {} {}",
                r.status,
                r.body
            );
        }
        let entries = root.get(&format!("/admin/audit?actor={actor}")).await.body;
        for action in [
            "fleet.device.meta",
            "fleet.device.rekey",
            "fleet.command.reboot",
            "fleet.config.push",
            "fleet.device.revoke",
        ] {
            assert!(
                entries.contains(action),
                "{action} by {actor} missing: {entries}"
            );
        }
        // Cleared for the next round.
        m.running()
            .store
            .write(|tx| tx.execute("DELETE FROM audit_log WHERE action LIKE 'fleet.%'", []))
            .await
            .unwrap();
    }
    m.stop().await;
}

#[tokio::test]
async fn api_changes_are_audited_with_the_real_actor() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112233", "hello").await;
    let id = routed(&m, "+380501112233").await;
    let sofia = login(&m, "sofia", "sofia-password").await;
    let root = login(&m, "root", "root-password").await;
    let sofia_who = Who::Session("sofia", &sofia.cookie);
    // A reply with the API token: sent, and in the audit log as api-token.
    let r = as_who(
        &m,
        Who::Token,
        "POST",
        &format!("/api/v1/conversations/{id}/replies"),
        Some(r#"{"text":"by token"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    dev.next_command().await;
    // The same with sofia's session: audited as sofia, authored by her.
    let r = as_who(
        &m,
        sofia_who,
        "POST",
        &format!("/api/v1/conversations/{id}/replies"),
        Some(r#"{"text":"by sofia"}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let (_, v) = m.get(&format!("/api/v1/conversations/{id}")).await;
    let authors: Vec<&Value> = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["author"])
        .collect();
    assert!(authors.contains(&&json!("sofia")), "{v}");
    for (who, method, path, body) in [
        (
            sofia_who,
            "POST",
            format!("/api/v1/conversations/{id}/resolve"),
            None,
        ),
        (
            Who::Token,
            "POST",
            format!("/api/v1/conversations/{id}/reopen"),
            None,
        ),
        (
            sofia_who,
            "PUT",
            "/api/v1/agents/ana/presence".to_string(),
            Some(r#"{"state":"away"}"#),
        ),
        (
            Who::Token,
            "POST",
            format!("/api/v1/conversations/{id}/assign"),
            Some(r#"{"queue":"north"}"#),
        ),
    ] {
        let r = as_who(&m, who, method, &path, body).await;
        assert_eq!(r.status, 200, "{who:?} {method} {path}: {}", r.body);
    }
    let token_log = root.get("/admin/audit?actor=api-token").await.body;
    for a in [
        "conversation.reply",
        "conversation.reopen",
        "routing.transfer",
    ] {
        assert!(
            token_log.contains(a),
            "{a} by api-token missing: {token_log}"
        );
    }
    let sofia_log = root.get("/admin/audit?actor=sofia").await.body;
    for a in [
        "conversation.reply",
        "conversation.resolve",
        "routing.set_presence",
    ] {
        assert!(sofia_log.contains(a), "{a} by sofia missing: {sofia_log}");
    }
    assert!(!token_log.contains("conversation.resolve"), "{token_log}");
    m.stop().await;
}

#[tokio::test]
async fn console_redirects_never_carry_a_line_break() {
    let m = setup().await;
    {
        use crossline_store::DeviceRegistry;
        let dev = crossline_core::NodeId::new("shop-1").unwrap();
        m.running().store.put_device(&dev, "$7$x").await.unwrap();
    }
    let (s, v) = m
        .post("/api/v1/fleet/devices/shop-1/meta", r#"{"group":"g"}"#)
        .await;
    assert_eq!(s, 200, "{v}");
    let root = login(&m, "root", "root-password").await;
    // The device id comes from the path: %0D%0A decodes to CR LF.
    let r = root
        .post(
            "/admin/fleet/d/x%0D%0ASet-Cookie:%20a=b/config",
            "target=group&value=g&settings=%7B%22offline%22%3A%7B%22texts%22%3A%7B%22en%22%3A%22x%22%7D%7D%7D",
        )
        .await;
    assert_eq!(r.status, 303, "{}{}", r.head, r.body);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/admin/fleet"),
        "{}",
        r.head
    );
    assert!(
        !r.head.to_ascii_lowercase().contains("set-cookie: a=b"),
        "{}",
        r.head
    );
    m.stop().await;
}

/// Version skew: a newer appliance's event of a kind this mgmt does not know
/// is stored as sent and acknowledged, the messages around it in the same
/// batch are threaded as usual, and the admin sees it raw in the API and on
/// the device's page in the fleet console.
#[tokio::test]
async fn an_event_of_a_kind_mgmt_does_not_know_is_kept_and_shown_to_admins() {
    let m = setup().await;
    let root = login(&m, "root", "root-password").await;
    let mut dev = m.device("branch-new").await;
    let before = dev.event(common::sms("gsm0", "+380501110001", "Добрий день"));
    let unknown = dev.event(
        serde_json::from_value(json!({
            "type": "call_parked", "line": "gsm0", "from": "+380501110001",
            "note": "<b>not markup</b>"
        }))
        .unwrap(),
    );
    let after = dev.event(common::sms("gsm0", "+380501110002", "Ще одне"));
    dev.publish(vec![before, unknown, after]).await;
    for number in ["+380501110001", "+380501110002"] {
        m.wait_list(&format!("?number={}", number.replace('+', "%2B")), |l| {
            l.len() == 1
        })
        .await;
    }
    let (s, events) = m.get("/api/v1/events?device=branch-new&limit=10").await;
    assert_eq!(s, 200, "{events}");
    let stored = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == 2)
        .unwrap_or_else(|| panic!("seq 2 not stored: {events}"));
    assert_eq!(
        stored["body"],
        json!({"type": "call_parked", "line": "gsm0", "from": "+380501110001",
               "note": "<b>not markup</b>"})
    );
    let page = root.get("/admin/fleet/d/branch-new").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Events this mgmt does not understand")
            && page.body.contains(r#"data-testid="unknown-event-2""#)
            && page.body.contains("<code>call_parked</code>")
            && page.body.contains("not markup")
            && !page.body.contains("<b>not markup"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("unknown-event-1"), "{}", page.body);
    m.stop().await;
}

#[tokio::test]
async fn the_composer_counts_sms_segments_as_the_agent_types() {
    let m = setup().await;
    let mut dev = m.device("branch-1").await;
    dev.sms("gsm1", "+380501112244", "how much is the delivery?")
        .await;
    let id = routed(&m, "+380501112244").await;
    let ivan = login(&m, "ivan", "ivan-password").await;
    // The page: the counter for an empty text, the channel's limit on the
    // box, the line named by the conversation's channel.
    let page = ivan.get(&format!("/desk/c/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("data-testid=\"reply-measure\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("0/1530 · parts: 1"), "{}", page.body);
    assert!(page.body.contains("maxlength=\"1530\""), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("hx-get=\"/desk/c/{id}/measure\""))
    );
    assert!(page.body.contains("SMS · gsm1"), "{}", page.body);
    // What htmx asks while the agent types: the SMS adapter counts.
    let measure = |text: String| {
        let path = format!("/desk/c/{id}/measure?text={text}");
        let ivan = &ivan;
        async move {
            let r = ivan.get(&path).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body
        }
    };
    let one = measure("a".repeat(160)).await;
    assert!(one.contains("data-segments=\"1\""), "{one}");
    assert!(one.contains("160/1530 · parts: 1"), "{one}");
    let two = measure("a".repeat(161)).await;
    assert!(two.contains("data-segments=\"2\""), "{two}");
    // Cyrillic needs UCS-2: 70 characters a part alone, 67 in a long one.
    let zh = "%D0%96"; // Ж
    let cyr = measure(zh.repeat(71)).await;
    assert!(cyr.contains("71/670 · parts: 2"), "{cyr}");
    let long = measure("a".repeat(1531)).await;
    assert!(long.contains("data-fits=\"false\""), "{long}");
    assert!(long.contains("Too long: 1531/1530 · parts: 11"), "{long}");
    m.stop().await;
}
