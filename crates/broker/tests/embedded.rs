//! The embedded broker over real TCP on 127.0.0.1, with rumqttc and with the
//! third-party Mosquitto clients.

// Helpers outside #[test] functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::client::{Ev, connect, options, refused, try_connect};
use common::{Cred, Flavour, WAIT};
use crossline_broker::{
    AuthDecision, Authenticator, Broker, BrokerConfig, BrokerHandle, StaticAuthenticator,
};
use rumqttc::{ConnectReturnCode, LastWill, QoS, SubscribeReasonCode};
use tokio::time::timeout;

fn credentials() -> StaticAuthenticator {
    StaticAuthenticator::new()
        .with_device("a", "secret-a")
        .with_device("b", "secret-b")
        .with_device("c", "secret-c")
        .with_service("mgmt", "secret-mgmt")
}

async fn start(auth: Arc<dyn Authenticator>) -> BrokerHandle {
    let cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..BrokerConfig::default()
    };
    let handle = Broker::start(cfg, auth)
        .await
        .expect("start the embedded broker");
    assert_ne!(handle.local_addr().port(), 0, "the real port is reported");
    handle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_uses_its_own_topics_and_mgmt_sees_everything() {
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();

    let mut mgmt = connect(port, "mgmt-1", "mgmt", "secret-mgmt").await;
    assert_eq!(
        mgmt.subscribe("crossline/v1/#").await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    let mut a = connect(port, "a", "a", "secret-a").await;
    assert_eq!(
        a.subscribe("crossline/v1/d/a/#").await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert!(broker.is_connected("a").await);

    a.publish("crossline/v1/d/a/events", "event-1", false).await;
    mgmt.expect("crossline/v1/d/a/events", "event-1").await;
    mgmt.publish("crossline/v1/d/a/cmd", "command-1", false)
        .await;
    a.expect("crossline/v1/d/a/cmd", "command-1").await;

    // Retained desired config and presence survive for a later subscriber.
    mgmt.publish("crossline/v1/d/a/config", "config-v7", true)
        .await;
    a.publish("crossline/v1/d/a/presence", "online", true).await;
    mgmt.expect("crossline/v1/d/a/presence", "online").await;
    a.expect("crossline/v1/d/a/config", "config-v7").await;
    let mut later = connect(port, "a", "a", "secret-a").await;
    assert_eq!(
        later.subscribe("crossline/v1/d/a/config").await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert!(
        later.expect("crossline/v1/d/a/config", "config-v7").await,
        "retain flag set"
    );
    let mut mgmt2 = connect(port, "mgmt-2", "mgmt", "secret-mgmt").await;
    mgmt2.subscribe("crossline/v1/d/+/presence").await;
    assert!(mgmt2.expect("crossline/v1/d/a/presence", "online").await);
    // The second connection as "a" replaced the first one.
    a.expect_closed().await;

    // A service user stays inside crossline/v1 too.
    assert_eq!(mgmt.subscribe("$SYS/#").await, SubscribeReasonCode::Failure);
    assert_eq!(mgmt.subscribe("#").await, SubscribeReasonCode::Failure);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_without_disturbing_the_real_device() {
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();
    let mut mgmt = connect(port, "mgmt", "mgmt", "secret-mgmt").await;
    let mut a = connect(port, "a", "a", "secret-a").await;
    a.subscribe("crossline/v1/d/a/#").await;

    let wrong_password = refused(options(port, "a", Some(("a", "secret-b")))).await;
    assert_eq!(wrong_password, ConnectReturnCode::BadUserNamePassword);
    let unknown_user = refused(options(port, "z", Some(("z", "secret-a")))).await;
    assert_eq!(unknown_user, ConnectReturnCode::BadUserNamePassword);
    let anonymous = refused(options(port, "a", None)).await;
    assert_eq!(anonymous, ConnectReturnCode::NotAuthorized);
    // b's valid credential cannot take a's session.
    let id_not_user = refused(options(port, "a", Some(("b", "secret-b")))).await;
    assert_eq!(id_not_user, ConnectReturnCode::NotAuthorized);
    // A last will outside the device's topics would be published unchecked: refused.
    let mut opts = options(port, "b", Some(("b", "secret-b")));
    opts.set_last_will(LastWill::new(
        "crossline/v1/d/a/presence",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    assert_eq!(refused(opts).await, ConnectReturnCode::NotAuthorized);

    // None of these attempts kicked the real device a.
    assert!(broker.is_connected("a").await);
    mgmt.publish("crossline/v1/d/a/cmd", "still-here", false)
        .await;
    a.expect("crossline/v1/d/a/cmd", "still-here").await;
    assert!(
        !a.seen.iter().any(|ev| matches!(ev, Ev::Closed(_))),
        "{:?}",
        a.seen
    );

    // A will inside its own topics is fine (presence by last will).
    let mut opts = options(port, "b", Some(("b", "secret-b")));
    opts.set_last_will(LastWill::new(
        "crossline/v1/d/b/presence",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let b = try_connect(opts).await.expect("b with its own will");
    mgmt.subscribe("crossline/v1/d/b/presence").await;
    assert!(broker.disconnect_client("b").await);
    // The kick publishes the will (to existing subscribers without the retain flag)...
    mgmt.expect("crossline/v1/d/b/presence", "offline").await;
    drop(b);
    // ...and keeps it as the retained presence.
    let mut later = connect(port, "mgmt-later", "mgmt", "secret-mgmt").await;
    later.subscribe("crossline/v1/d/b/presence").await;
    assert!(
        later.expect("crossline/v1/d/b/presence", "offline").await,
        "retained will"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_publishing_outside_its_topics_is_disconnected() {
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();
    let mut mgmt = connect(port, "mgmt", "mgmt", "secret-mgmt").await;
    mgmt.subscribe("crossline/v1/#").await;
    let mut a = connect(port, "a", "a", "secret-a").await;
    a.publish("crossline/v1/d/b/cmd", "forged", false).await;
    let why = a.expect_closed().await;
    // The control published later arrives; the forged message never did.
    let b = connect(port, "b", "b", "secret-b").await;
    b.publish("crossline/v1/d/b/events", "control", false).await;
    mgmt.expect("crossline/v1/d/b/events", "control").await;
    assert!(
        !mgmt.saw_payload("forged"),
        "{:?} (a closed: {why})",
        mgmt.seen
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_device_attempts_with_mosquitto_clients_fail() {
    common::require_mosquitto_clients();
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();
    let forged = common::cross_device_checks(
        port,
        Flavour::Embedded,
        &Cred::new("a", "a", "secret-a"),
        &Cred::new("b", "b", "secret-b"),
        &Cred::new("c", "c", "secret-c"),
        &Cred::new("mgmt-test", "mgmt", "secret-mgmt"),
    )
    .await;
    // Our broker disconnects a device that publishes outside its topics.
    println!(
        "mosquitto_pub into another device's topic: {}",
        forged.output
    );
    assert!(
        !forged.success,
        "mosquitto_pub saw no error: {}",
        forged.output
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_clients_meet_the_same_rules() {
    common::require_mosquitto_clients();
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();
    let v5 = ["-V", "5"];
    let a = Cred::new("a", "a", "secret-a");
    let mut mgmt = connect(port, "mgmt", "mgmt", "secret-mgmt").await;
    mgmt.subscribe("crossline/v1/#").await;

    let (mut spy, granted) = common::Sub::start_with(
        port,
        &a,
        &["crossline/v1/d/a/#", "crossline/v1/d/+/events", "#"],
        &v5,
    )
    .await;
    // 1 = granted QoS 1, 135 = 0x87 not authorised.
    assert_eq!(granted, vec![1, 135, 135]);
    let mut b = connect(port, "b", "b", "secret-b").await;
    b.subscribe("crossline/v1/d/b/#").await;
    b.publish("crossline/v1/d/b/events", "secret-of-b", false)
        .await;
    mgmt.expect("crossline/v1/d/b/events", "secret-of-b").await;
    mgmt.publish("crossline/v1/d/a/cmd", "control", false).await;
    spy.wait_for("crossline/v1/d/a/cmd", "control").await;
    spy.drain();
    assert!(!spy.has_payload("secret-of-b"), "{:?}", spy.messages());
    spy.stop().await;

    let impostor = Cred::new("b", "a", "secret-a");
    let out = common::publish_with(port, &impostor, "crossline/v1/d/b/events", "x", &v5).await;
    assert!(
        !out.success && out.output.to_lowercase().contains("not authori"),
        "{}",
        out.output
    );
    let wrong = Cred::new("a", "a", "nope");
    let out = common::publish_with(port, &wrong, "crossline/v1/d/a/events", "x", &v5).await;
    assert!(
        !out.success
            && out
                .output
                .to_lowercase()
                .contains("bad user name or password"),
        "{}",
        out.output
    );

    let forged = common::publish_with(port, &a, "crossline/v1/d/b/cmd", "forged", &v5).await;
    assert!(!forged.success, "{}", forged.output);
    b.publish("crossline/v1/d/b/events", "later", false).await;
    mgmt.expect("crossline/v1/d/b/events", "later").await;
    b.expect("crossline/v1/d/b/events", "later").await;
    assert!(!mgmt.saw_payload("forged"), "{:?}", mgmt.seen);
    assert!(!b.saw_payload("forged"), "{:?}", b.seen);
    broker.shutdown().await;
}

/// An authenticator whose credentials can be revoked while the broker runs.
struct Revocable {
    inner: StaticAuthenticator,
    revoked: Mutex<HashSet<String>>,
}

impl Authenticator for Revocable {
    fn authenticate(&self, client_id: &str, username: &str, password: &[u8]) -> AuthDecision {
        if self.revoked.lock().unwrap().contains(username) {
            return AuthDecision::Deny(format!("{username} revoked"));
        }
        self.inner.authenticate(client_id, username, password)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_kicks_a_live_session_and_keeps_it_out() {
    let auth = Arc::new(Revocable {
        inner: credentials(),
        revoked: Mutex::new(HashSet::new()),
    });
    let broker = start(auth.clone()).await;
    let port = broker.local_addr().port();
    let mut a = connect(port, "a", "a", "secret-a").await;
    a.subscribe("crossline/v1/d/a/#").await;
    assert!(broker.is_connected("a").await);
    assert_eq!(broker.client_ids().await, vec!["a".to_string()]);

    auth.revoked.lock().unwrap().insert("a".into());
    assert!(broker.disconnect_client("a").await, "a had a session");
    a.expect_closed().await;
    assert!(!broker.is_connected("a").await);
    assert_eq!(
        refused(options(port, "a", Some(("a", "secret-a")))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert!(!broker.disconnect_client("nobody").await);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sessions_and_frees_the_port() {
    let broker = start(Arc::new(credentials())).await;
    let addr = broker.local_addr();
    let mut a = connect(addr.port(), "a", "a", "secret-a").await;
    broker.shutdown().await;
    a.expect_closed().await;
    let cfg = BrokerConfig {
        listen: addr,
        ..BrokerConfig::default()
    };
    let again = timeout(WAIT, Broker::start(cfg, Arc::new(credentials())))
        .await
        .unwrap()
        .expect("the port is free again");
    assert_eq!(again.local_addr(), addr);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_per_client_are_bounded() {
    let cfg = BrokerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_subscriptions_per_client: 2,
        ..BrokerConfig::default()
    };
    let broker = Broker::start(cfg, Arc::new(credentials())).await.unwrap();
    let mut a = connect(broker.local_addr().port(), "a", "a", "secret-a").await;
    let granted = SubscribeReasonCode::Success(QoS::AtLeastOnce);
    assert_eq!(a.subscribe("crossline/v1/d/a/cmd").await, granted);
    assert_eq!(a.subscribe("crossline/v1/d/a/ack").await, granted);
    assert_eq!(
        a.subscribe("crossline/v1/d/a/config").await,
        SubscribeReasonCode::Failure
    );
    // The connection stays usable.
    a.publish("crossline/v1/d/a/cmd", "still-works", false)
        .await;
    a.expect("crossline/v1/d/a/cmd", "still-works").await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = BrokerConfig {
        listen: taken.local_addr().unwrap(),
        ..BrokerConfig::default()
    };
    let err = Broker::start(cfg, Arc::new(credentials()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&taken.local_addr().unwrap().to_string()),
        "{msg}"
    );
    assert!(msg.contains("already using this port"), "{msg}");
}

/// A rogue device once filled mgmt's memory with 150 retained 1 MB messages
/// on its own topics. A device's retained message is kept only on its
/// presence topic and only when small: the rest is delivered, not retained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_retains_only_its_small_presence() {
    let broker = start(Arc::new(credentials())).await;
    let port = broker.local_addr().port();
    let mut mgmt = connect(port, "mgmt", "mgmt", "secret-mgmt").await;
    mgmt.subscribe("crossline/v1/d/a/events").await;
    mgmt.publish("crossline/v1/d/a/config", "config-v7", true)
        .await;
    let a = connect(port, "a", "a", "secret-a").await;
    a.publish("crossline/v1/d/a/presence", "online", true).await;
    let junk = "x".repeat(8 * 1024);
    for i in 0..151 {
        a.publish(&format!("crossline/v1/d/a/junk-{i}"), &junk, true)
            .await;
    }
    // Neither mgmt's desired configuration nor its presence can be
    // replaced by a retained message it may not leave.
    a.publish("crossline/v1/d/a/config", "forged", true).await;
    a.publish("crossline/v1/d/a/presence", &"y".repeat(2000), true)
        .await;
    // The broker handles one client's publishes in order: once this one
    // arrived, every retained publish before it was decided.
    a.publish("crossline/v1/d/a/events", "done", false).await;
    mgmt.expect("crossline/v1/d/a/events", "done").await;
    assert_eq!(
        broker.retained_count().await,
        2,
        "mgmt's config and a's presence only"
    );

    let mut later = connect(port, "mgmt-2", "mgmt", "secret-mgmt").await;
    later.subscribe("crossline/v1/d/a/#").await;
    assert!(later.expect("crossline/v1/d/a/config", "config-v7").await);
    assert!(later.expect("crossline/v1/d/a/presence", "online").await);
    assert!(!later.saw_payload("forged"));
    broker.shutdown().await;
}
