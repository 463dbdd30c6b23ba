//! The MQTT broker embedded in mgmt: rmqtt with our own authentication and ACL
//! hooks and a bounded in-memory store for retained messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::server::MqttServer;
use rmqtt::types::{
    AuthResult, ClientId, ConnectInfo, Id, LastWill, PublishAclResult, Retain, SubscribeAclResult,
    TopicFilter, TopicName,
};
use tokio::task::JoinHandle;

use crate::auth::{AuthDecision, Authenticator};
use crate::error::BrokerError;
use crate::topic;

/// Settings of the embedded broker.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Where to listen for MQTT over TCP; port 0 picks a free port
    /// ([`BrokerHandle::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Largest MQTT packet accepted, in bytes (bigger ones close the connection).
    pub max_packet_size: u32,
    /// Most simultaneous TCP connections.
    pub max_connections: usize,
    /// Most retained messages kept (presence and desired config, a few per
    /// device); a retained publish to a new topic beyond this is not retained.
    pub max_retained: usize,
    /// Largest retained message a device may leave, in bytes (its presence
    /// is about 30). A device's retained message is kept only on its
    /// `presence` topic and only up to this size, so one device holds at
    /// most one small retained message; anything else is delivered but not
    /// retained, and logged.
    pub max_device_retained_bytes: usize,
    /// Most messages queued for one slow or offline (persistent-session) client.
    pub max_queued_per_client: usize,
    /// Most subscriptions one client may hold; beyond it a SUBSCRIBE fails.
    pub max_subscriptions_per_client: usize,
    /// How long a client has to send CONNECT after opening the connection
    /// (and, on the TLS listener, to finish the TLS handshake).
    pub handshake_timeout: Duration,
    /// MQTT over TLS (`mqtts`) as well: where, and with which certificate.
    pub tls: Option<TlsListen>,
}

/// The MQTT-over-TLS listener (see [`BrokerConfig::tls`]).
#[derive(Debug, Clone)]
pub struct TlsListen {
    /// Where to listen (port 0 picks a free one; [`BrokerHandle::tls_addr`]).
    pub listen: SocketAddr,
    /// mgmt's certificate (`crossline_tls::ServerIdentity::server_config`).
    pub config: Arc<crossline_tls::rustls::ServerConfig>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_packet_size: 1024 * 1024,
            max_connections: 10_000,
            max_retained: 100_000,
            max_device_retained_bytes: 1024,
            max_queued_per_client: 1_000,
            max_subscriptions_per_client: 100,
            handshake_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// The embedded broker; see [`Broker::start`].
#[derive(Debug)]
pub struct Broker;

impl Broker {
    /// Binds `cfg.listen` and serves MQTT 3.1.1 and 5 over TCP until
    /// [`BrokerHandle::shutdown`] (or until the handle is dropped).
    ///
    /// Every CONNECT is checked by `auth`; anonymous clients are refused. A device
    /// must use its username as client id and is confined to
    /// `crossline/v1/d/<username>/#`; a publish outside disconnects it, a
    /// subscription outside gets a SUBACK failure. Service users may use
    /// anything under `crossline/v1/#`.
    ///
    /// Must be called within a tokio runtime (with the `net` and `time` drivers).
    pub async fn start(
        cfg: BrokerConfig,
        auth: Arc<dyn Authenticator>,
    ) -> Result<BrokerHandle, BrokerError> {
        let scx = ServerContext::new()
            // The busy check samples CPU load in a task that never ends and refuses
            // CONNECTs on a loaded machine: not for an embedded broker.
            .busy_check_enable(false)
            .build()
            .await;

        let access = AccessControl {
            auth,
            roles: Arc::new(RwLock::new(HashMap::new())),
        };
        let register = scx.extends.hook_mgr().register();
        for typ in [
            Type::ClientAuthenticate,
            Type::ClientSubscribeCheckAcl,
            Type::MessagePublishCheckAcl,
            Type::SessionTerminated,
        ] {
            register.add(typ, Box::new(access.clone())).await;
        }
        register.start().await;

        *scx.extends.retain_mut().await = Box::new(BoundedRetain {
            inner: DefaultRetainStorage::new(),
            max: cfg.max_retained,
            max_device_bytes: cfg.max_device_retained_bytes,
            access: access.clone(),
        });

        let bind_err = |e: rmqtt::Error| BrokerError::Bind {
            addr: cfg.listen,
            source: e.into(),
        };
        let listener = Builder::new()
            .name("crossline/tcp")
            .laddr(cfg.listen)
            // Like std's TcpListener: a restart must not wait for TIME_WAIT to clear.
            .reuseaddr(Some(true))
            // Small MQTT packets (acks, PUBACKs) must not wait for Nagle's
            // delayed-ACK interplay (40 ms per hop on Linux).
            .nodelay(true)
            .allow_anonymous(false)
            .max_packet_size(cfg.max_packet_size)
            .max_connections(cfg.max_connections)
            .max_mqueue_len(cfg.max_queued_per_client)
            .max_subscriptions(cfg.max_subscriptions_per_client)
            .max_clientid_len(256)
            .handshake_timeout(cfg.handshake_timeout)
            // No default expiry: retained presence and config stay until replaced
            // (an MQTT 5 message expiry property is still honoured).
            .message_expiry_interval(Duration::ZERO)
            .bind()
            .map_err(bind_err)?
            .tcp()
            .map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;

        let server = MqttServer::new(scx.clone())
            .listener_by_id(listener, 1)
            .build();
        let task = tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        });
        tracing::info!(%local_addr, "embedded MQTT broker listening");
        let (tls_addr, tls_task) = match &cfg.tls {
            Some(t) => {
                let (addr, task) = start_tls(t, local_addr, &cfg).await?;
                (Some(addr), Some(task))
            }
            None => (None, None),
        };
        Ok(BrokerHandle {
            scx,
            local_addr,
            tls_addr,
            task: Some(task),
            tls_task,
        })
    }
}

/// A running embedded broker. Dropping it stops accepting connections (like
/// [`BrokerHandle::shutdown`] without closing the live sessions).
pub struct BrokerHandle {
    scx: ServerContext,
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    task: Option<JoinHandle<()>>,
    tls_task: Option<JoinHandle<()>>,
}

/// rmqtt's `tls` feature would compile rustls with aws-lc-rs; instead our
/// own rustls (ring) listener terminates TLS and relays each connection to
/// the plain listener over loopback. The broker then applies the same
/// authentication and ACL to both.
async fn start_tls(
    t: &TlsListen,
    plain: SocketAddr,
    cfg: &BrokerConfig,
) -> Result<(SocketAddr, JoinHandle<()>), BrokerError> {
    let bind_err = |e: std::io::Error| BrokerError::Bind {
        addr: t.listen,
        source: e.into(),
    };
    let listener = tokio::net::TcpListener::bind(t.listen)
        .await
        .map_err(bind_err)?;
    let mut incoming = crossline_tls::accept::TlsIncoming::start(
        listener,
        t.config.clone(),
        cfg.handshake_timeout,
        1024,
        "MQTT",
    )
    .map_err(bind_err)?;
    let addr = incoming.local_addr();
    let target = match plain.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, plain.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, plain.port()))
        }
        _ => plain,
    };
    let task = tokio::spawn(async move {
        while let Some((mut tls, peer)) = incoming.next().await {
            tokio::spawn(async move {
                let mut inner = match tokio::net::TcpStream::connect(target).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "MQTT over TLS: cannot reach the broker's plain listener");
                        return;
                    }
                };
                let _ = inner.set_nodelay(true);
                tracing::debug!(%peer, "MQTT over TLS connection");
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut inner).await;
            });
        }
    });
    tracing::info!(%addr, "embedded MQTT broker listening for MQTT over TLS");
    Ok((addr, task))
}

impl std::fmt::Debug for BrokerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl BrokerHandle {
    /// The address actually bound (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the MQTT-over-TLS listener, if there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Ends the session of `client_id` now (revoked device, replaced credential):
    /// the connection is closed and its subscriptions and queued messages are
    /// dropped. Its last will, if any, is published. Returns whether such a
    /// session existed. The client may reconnect at once: revoke its credential
    /// in the [`Authenticator`] first.
    pub async fn disconnect_client(&self, client_id: &str) -> bool {
        kick(&self.scx, client_id).await
    }

    /// A cloneable handle that can end sessions (for mgmt's fleet service,
    /// which revokes devices while the broker runs).
    pub fn kicker(&self) -> ClientKicker {
        ClientKicker {
            scx: self.scx.clone(),
        }
    }

    /// Whether a client with this id is connected right now.
    pub async fn is_connected(&self, client_id: &str) -> bool {
        let entry = self
            .scx
            .extends
            .shared()
            .await
            .entry(client_key(&self.scx, client_id));
        entry.is_connected().await
    }

    /// How many retained messages the broker keeps right now.
    pub async fn retained_count(&self) -> usize {
        usize::try_from(self.scx.extends.retain().await.count().await).unwrap_or(0)
    }

    /// Client ids of the sessions the broker holds (connected or kept for a
    /// persistent session).
    pub async fn client_ids(&self) -> Vec<String> {
        let shared = self.scx.extends.shared().await;
        shared
            .iter()
            .map(|entry| entry.id().client_id.to_string())
            .collect()
    }

    /// Stops accepting connections, closes the listening socket and ends every
    /// session.
    pub async fn shutdown(mut self) {
        if let Some(task) = self.tls_task.take() {
            task.abort();
            let _ = task.await;
        }
        if let Some(task) = self.task.take() {
            task.abort();
            // The accept loop owns the listener: once the task is gone the port is free.
            let _ = task.await;
        }
        for client_id in self.client_ids().await {
            kick(&self.scx, &client_id).await;
        }
        tracing::info!(local_addr = %self.local_addr, "embedded MQTT broker shut down");
    }
}

impl Drop for BrokerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(task) = self.tls_task.take() {
            task.abort();
        }
    }
}

/// Ends sessions of the embedded broker; see [`BrokerHandle::kicker`].
#[derive(Clone)]
pub struct ClientKicker {
    scx: ServerContext,
}

impl std::fmt::Debug for ClientKicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKicker").finish_non_exhaustive()
    }
}

impl ClientKicker {
    /// Like [`BrokerHandle::disconnect_client`].
    pub async fn disconnect_client(&self, client_id: &str) -> bool {
        kick(&self.scx, client_id).await
    }

    /// Whether a client with this id is connected right now.
    pub async fn is_connected(&self, client_id: &str) -> bool {
        let entry = self
            .scx
            .extends
            .shared()
            .await
            .entry(client_key(&self.scx, client_id));
        entry.is_connected().await
    }
}

fn client_key(scx: &ServerContext, client_id: &str) -> Id {
    Id::from(scx.node.id(), ClientId::from(client_id))
}

async fn kick(scx: &ServerContext, client_id: &str) -> bool {
    let mut entry = scx.extends.shared().await.entry(client_key(scx, client_id));
    if entry.session().is_none() {
        return false;
    }
    match entry.kick(true, true, true).await {
        Ok(_) => {
            tracing::info!(client_id, "MQTT client disconnected by mgmt");
            true
        }
        Err(e) => {
            tracing::warn!(client_id, error = %e, "could not disconnect MQTT client");
            false
        }
    }
}

/// What an authenticated username may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Device,
    Service,
    Enrollment,
}

/// Our hook handler: authentication at CONNECT, then the topic ACL.
#[derive(Clone)]
struct AccessControl {
    auth: Arc<dyn Authenticator>,
    /// Role of every username that authenticated successfully (bounded by the
    /// number of known credentials). The ACL hooks see the session's username.
    roles: Arc<RwLock<HashMap<String, Role>>>,
}

impl AccessControl {
    /// The role of a session. Enrolling sessions are keyed by client id
    /// (they all share one username), the others by username.
    fn role_of(&self, username: Option<&str>, client_id: &str) -> Option<Role> {
        let username = username?;
        let roles = match self.roles.read() {
            Ok(roles) => roles,
            Err(poisoned) => poisoned.into_inner(),
        };
        match roles.get(username).copied() {
            Some(Role::Enrollment) => (roles.get(&enroll_key(client_id)).copied()
                == Some(Role::Enrollment))
            .then_some(Role::Enrollment),
            other => other,
        }
    }

    fn remember(&self, username: &str, client_id: &str, role: Role) {
        let mut roles = match self.roles.write() {
            Ok(roles) => roles,
            Err(poisoned) => poisoned.into_inner(),
        };
        if role == Role::Enrollment {
            // Bounded: entries are removed when the session ends (see hook).
            roles.insert(enroll_key(client_id), role);
        }
        if roles.get(username) != Some(&role) {
            roles.insert(username.to_owned(), role);
        }
    }

    fn forget_enrollment(&self, client_id: &str) {
        let mut roles = match self.roles.write() {
            Ok(roles) => roles,
            Err(poisoned) => poisoned.into_inner(),
        };
        roles.remove(&enroll_key(client_id));
    }

    fn may_use(role: Role, username: &str, client_id: &str, topic_or_filter: &str) -> bool {
        match role {
            Role::Device => topic::device_may_use(username, topic_or_filter),
            Role::Service => topic::service_may_use(topic_or_filter),
            Role::Enrollment => topic::enrollment_may_use(client_id, topic_or_filter),
        }
    }

    async fn authenticate(&self, ci: &ConnectInfo) -> AuthResult {
        let client_id = ci.client_id().to_string();
        let Some(username) = ci.username().map(|u| u.to_string()) else {
            tracing::info!(client_id, "MQTT CONNECT refused: no username");
            return AuthResult::NotAuthorized;
        };
        let password = ci.password().map(|p| p.to_vec()).unwrap_or_default();
        let auth = self.auth.clone();
        let (cid, user) = (client_id.clone(), username.clone());
        // The authenticator may hash (argon2): keep it off the async workers.
        let decision =
            match tokio::task::spawn_blocking(move || auth.authenticate(&cid, &user, &password))
                .await
            {
                Ok(decision) => decision,
                Err(e) => {
                    tracing::error!(client_id, username, error = %e, "authenticator failed");
                    return AuthResult::NotAuthorized;
                }
            };
        let will_topic = ci.last_will().map(|lw| match lw {
            LastWill::V3(w) => w.topic.to_string(),
            LastWill::V5(w) => w.topic.to_string(),
        });
        let role = match decision {
            AuthDecision::Deny(reason) => {
                tracing::info!(client_id, username, reason, "MQTT CONNECT refused");
                return AuthResult::BadUsernameOrPassword;
            }
            AuthDecision::Device => {
                if !topic::is_valid_device_id(&username) {
                    tracing::warn!(
                        client_id,
                        username,
                        "MQTT CONNECT refused: a device username must match [a-z0-9_-]{{1,64}}"
                    );
                    return AuthResult::NotAuthorized;
                }
                if client_id != username {
                    tracing::warn!(
                        client_id,
                        username,
                        "MQTT CONNECT refused: a device must use its username as client id"
                    );
                    return AuthResult::NotAuthorized;
                }
                Role::Device
            }
            AuthDecision::Service => Role::Service,
            AuthDecision::Enrollment => {
                if !topic::is_valid_enrollment_id(&client_id) {
                    tracing::warn!(
                        client_id,
                        username,
                        "MQTT CONNECT refused: an enrolling client's id must be 32 lowercase hex digits"
                    );
                    return AuthResult::NotAuthorized;
                }
                Role::Enrollment
            }
        };
        // rmqtt publishes the last will without asking the ACL hooks: check it here.
        if let Some(will) = will_topic
            && !Self::may_use(role, &username, &client_id, &will)
        {
            tracing::warn!(
                client_id,
                username,
                will,
                "MQTT CONNECT refused: last will topic outside the client's topics"
            );
            return AuthResult::NotAuthorized;
        }
        self.remember(&username, &client_id, role);
        tracing::debug!(client_id, username, ?role, "MQTT client authenticated");
        AuthResult::Allow(false, None)
    }
}

#[async_trait]
impl Handler for AccessControl {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => {
                let result = self.authenticate(ci).await;
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, sub) => {
                let username = session.id.username.as_deref();
                let cid = session.id.client_id.as_ref();
                let allowed = match (self.role_of(username, cid), username) {
                    (Some(role), Some(user)) => Self::may_use(role, user, cid, &sub.topic_filter),
                    _ => false,
                };
                let result = if allowed {
                    SubscribeAclResult::new_success(sub.opts.qos(), None)
                } else {
                    tracing::warn!(
                        client_id = %session.id.client_id,
                        username = username.unwrap_or_default(),
                        filter = %sub.topic_filter,
                        "MQTT subscription refused: outside the client's topics"
                    );
                    SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let username = session.id.username.as_deref();
                let cid = session.id.client_id.as_ref();
                let allowed = match (self.role_of(username, cid), username) {
                    (Some(role), Some(user)) => Self::may_use(role, user, cid, &publish.topic),
                    _ => false,
                };
                let result = if allowed {
                    PublishAclResult::allow()
                } else {
                    tracing::warn!(
                        client_id = %session.id.client_id,
                        username = username.unwrap_or_default(),
                        topic = %publish.topic,
                        "MQTT publish refused, client disconnected: outside the client's topics"
                    );
                    PublishAclResult::rejected(true, Some("topic not authorised".into()))
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            Parameter::SessionTerminated(session, _) => {
                if session.id.username.as_deref() == Some(crate::topic::ENROLL_USER) {
                    self.forget_enrollment(session.id.client_id.as_ref());
                }
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

/// Key of an enrolling session in [`AccessControl::roles`] (cannot clash
/// with a username: usernames hold no NUL).
fn enroll_key(client_id: &str) -> String {
    format!("\0enroll:{client_id}")
}

/// Retained messages in memory, at most `max` topics; from a device only
/// its presence, at most `max_device_bytes` long.
struct BoundedRetain {
    inner: DefaultRetainStorage,
    max: usize,
    max_device_bytes: usize,
    /// Who published: a device's retained message is held to its rules.
    access: AccessControl,
}

impl BoundedRetain {
    /// Why a retained message from this publisher is not kept, if it is not:
    /// a device retains only its presence, small (see
    /// [`BrokerConfig::max_device_retained_bytes`]). An enrolling client
    /// retains nothing; mgmt (a service user) is bounded by `max` alone.
    fn refusal(&self, retain: &Retain, topic: &TopicName) -> Option<String> {
        let id = &retain.from.id;
        let username = id.username.as_deref();
        match self.access.role_of(username, id.client_id.as_ref()) {
            Some(Role::Service) => None,
            None => Some("the publisher is not an authenticated client".into()),
            Some(Role::Enrollment) => Some("an enrolling client retains nothing".into()),
            Some(Role::Device) => {
                let device = username.unwrap_or_default();
                if !topic::device_may_retain(device, topic) {
                    Some("a device retains only its presence".into())
                } else if retain.publish.payload.len() > self.max_device_bytes {
                    Some(format!(
                        "{} bytes, more than the {} a device may retain",
                        retain.publish.payload.len(),
                        self.max_device_bytes
                    ))
                } else {
                    None
                }
            }
        }
    }
}

#[async_trait]
impl RetainStorage for BoundedRetain {
    fn enable(&self) -> bool {
        true
    }

    fn need_sync(&self) -> bool {
        false
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        if let Some(why) = self.refusal(&retain, topic) {
            tracing::warn!(
                client_id = %retain.from.id.client_id,
                %topic,
                reason = %why,
                "retained message not kept (delivered as a plain message)"
            );
            return Ok(());
        }
        let storing = !retain.publish.payload.is_empty();
        if storing && usize::try_from(self.inner.count().await).unwrap_or(0) >= self.max {
            let exists = !self
                .inner
                .get_message(&TopicFilter::from(topic.as_ref()))
                .await?
                .is_empty();
            if !exists {
                tracing::warn!(
                    %topic,
                    max = self.max,
                    "retained message not kept: the broker holds the most retained topics allowed"
                );
                return Ok(());
            }
        }
        // Zero means "no expiry" (our listener default), not "expire at once".
        let expiry = expiry_interval.filter(|d| !d.is_zero());
        self.inner.set_with_timeout(topic, retain, expiry).await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.inner.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        self.inner.count().await
    }

    async fn max(&self) -> isize {
        self.inner.max().await
    }
}
