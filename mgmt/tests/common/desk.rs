//! The web UI as a browser uses it, over real HTTP: requests, a logged-in
//! user's session, the users and routing of the desk tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{Mgmt, wait_for};
use crossline_mgmt::services::users::auth::{self, NewUser, Role};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response: status, head, body.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        let name = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&name))
            .map(|l| l[name.len()..].trim().to_string())
    }
}

/// One request. `headers` are sent as given; a body is sent as a form.
pub async fn req(
    m: &Mgmt,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Resp {
    req_typed(
        m,
        method,
        path,
        headers,
        form.map(|f| ("application/x-www-form-urlencoded", f)),
    )
    .await
}

/// One request with a body of the given content type.
pub async fn req_typed(
    m: &Mgmt,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> Resp {
    let mut s = TcpStream::connect(&m.http).await.unwrap();
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        m.http
    );
    for (k, v) in headers {
        r += &format!("{k}: {v}\r\n");
    }
    if let Some((t, b)) = body {
        r += &format!("Content-Type: {t}\r\nContent-Length: {}\r\n", b.len());
    }
    r += "\r\n";
    if let Some((_, b)) = body {
        r += b;
    }
    s.write_all(r.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let at = text.find("\r\n\r\n").map(|p| p + 4).unwrap_or(text.len());
    let head = text[..at].to_string();
    let mut body = text[at..].to_string();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Resp {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        head,
        body,
    }
}

pub fn unchunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some(p) = b.find("\r\n") {
        let n = usize::from_str_radix(b[..p].trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out += &b[p + 2..p + 2 + n];
        b = &b[p + 2 + n + 2..];
    }
    out
}

pub fn origin(m: &Mgmt) -> String {
    format!("http://{}", m.http)
}

/// A logged-in browser: its session cookie.
pub struct Browser<'a> {
    pub m: &'a Mgmt,
    pub cookie: String,
}

impl Browser<'_> {
    pub async fn get(&self, path: &str) -> Resp {
        req(self.m, "GET", path, &[("Cookie", &self.cookie)], None).await
    }

    /// A same-origin form POST (what our pages send).
    pub async fn post(&self, path: &str, form: &str) -> Resp {
        let o = origin(self.m);
        req(
            self.m,
            "POST",
            path,
            &[
                ("Cookie", &self.cookie),
                ("Origin", &o),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some(form),
        )
        .await
    }
}

pub async fn login<'a>(m: &'a Mgmt, user: &str, password: &str) -> Browser<'a> {
    let o = origin(m);
    let r = req(
        m,
        "POST",
        "/login",
        &[("Origin", &o)],
        Some(&format!("login={user}&password={password}&next=%2Fdesk")),
    )
    .await;
    assert_eq!(r.status, 303, "login of {user}: {}", r.body);
    assert_eq!(r.header("location").as_deref(), Some("/desk"));
    let set = r.header("set-cookie").expect("a session cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    Browser { m, cookie }
}

pub async fn add_user(m: &Mgmt, login: &str, role: Role, teams: &[&str]) {
    let u = NewUser {
        login: login.into(),
        name: format!("{login} name"),
        role,
        agent_id: None,
        sites: Vec::new(),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        locale: None,
        time_zone: Some("Europe/Kyiv".into()),
    };
    let hash = auth::hash_password(&format!("{login}-password")).unwrap();
    auth::insert_user(&m.running().store, &u, &hash)
        .await
        .unwrap();
}

/// ana serves team north (queue north, line gsm0), ivan team south (gsm1);
/// sofia supervises everything, sam supervises team south only; root is admin.
pub async fn setup() -> Mgmt {
    let m = Mgmt::start().await;
    add_user(&m, "ana", Role::Agent, &[]).await;
    add_user(&m, "ivan", Role::Agent, &[]).await;
    add_user(&m, "sofia", Role::Supervisor, &[]).await;
    add_user(&m, "sam", Role::Supervisor, &["south"]).await;
    add_user(&m, "root", Role::Admin, &[]).await;
    let cfg = json!({
        "default_queue": "north",
        "agents": [
            { "id": "ana", "team": "north" },
            { "id": "ivan", "team": "south" }
        ],
        "queues": [
            { "id": "north", "members": { "teams": ["north"] }, "sla": { "first_response_ms": 300000 } },
            { "id": "south", "members": { "teams": ["south"] } }
        ],
        "rules": [
            { "when": { "line": "gsm0" }, "queue": "north" },
            { "when": { "line": "gsm1" }, "queue": "south" }
        ]
    });
    let (s, v) = m
        .request("PUT", "/api/v1/routing/config", Some(&cfg.to_string()))
        .await;
    assert_eq!(s, 200, "{v}");
    m
}

/// Waits until routing has put conversation of `number` in a queue; its id.
pub async fn routed(m: &Mgmt, number: &str) -> String {
    let list = m
        .wait_list(&format!("?number={}", number.replace('+', "%2B")), |l| {
            l.len() == 1
        })
        .await;
    let id = list[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/routing/conversations/{id}");
    wait_for(|| async {
        let (s, _) = m.get(&path).await;
        (s == 200).then_some(())
    })
    .await;
    id
}

pub async fn routing_state(m: &Mgmt, id: &str) -> Value {
    m.get(&format!("/api/v1/routing/conversations/{id}"))
        .await
        .1
}
