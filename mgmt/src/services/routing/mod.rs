//! The routing service: one task owns the routing engine
//! ([`crossline_core::routing::Router`]) and feeds it, one input at a time,
//! the API's commands ([`Routing`]), what the log says happened to
//! conversations, and its own timers (`next_deadline` → `tick`).
//!
//! # The feed
//!
//! Routing follows mgmt's event log by a durable cursor (consumer
//! [`CONSUMER`] of [`crossline_store::Feed`]): it reads every stored event
//! after its cursor with the projector's change set, and turns a customer's
//! message added to a conversation into `Command::Inbound`, a reply added
//! into `Command::AgentReply` and a resolve into `Command::Resolve`. It
//! never misses one: it is woken by the log's head (a `watch`, which
//! coalesces but never drops) and reads everything since its cursor, so a
//! burst of thousands of messages is routed late, not lost. The decisions
//! an event caused are appended together with the cursor moving past that
//! event (one transaction), so after a crash or restart routing resumes
//! right after the last event it dealt with: nothing is routed twice and
//! nothing stored meanwhile is skipped. The first start without a cursor
//! (a database from an older release) starts at the head and routes the
//! open conversations it has never seen ([`Service::catch_up`]).
//!
//! Every record the engine returns is appended to the event log as
//! `EventBody::RoutingDecision { record }` (origin mgmt, with the record's
//! conversation) *before* the caller gets its answer, so what the API shows
//! has been audited and survives a restart: at start the service rebuilds
//! the engine with `Router::replay(config, records)`.
//!
//! The configuration lives in the `routing_config` table (one row per PUT;
//! the newest is in force). Until an admin installs one, the default routing
//! ([`default_config`]) is in force: one queue `default` for every line with
//! every agent (user with role agent) a member; it grows when an agent is
//! added, and the first installed configuration replaces it (starting
//! afresh when the decisions logged under the default do not fit it). A new configuration must replay the log since
//! the current epoch (`replay_from_seq`); if it cannot (the log names an
//! agent or queue it removes), it is refused unless installed with `reset`,
//! which starts a new epoch: routing state starts empty, the older decisions
//! stay in the log for audit and metrics. See docs/API.md, "Routing".

pub mod repo;

use crate::clock::now_ms;
use crate::services::contacts::repo::ContactRepo;
use crate::services::conversations::ConversationSummary;
use crate::services::conversations::repo::ConversationRepo;
use crossline_core::contact::ContactId;
use crossline_core::routing::{
    AgentConfig, AgentId, Attributes, Command, ConfigError, Fact, OutsideHoursAction, QueueConfig,
    QueueId, Record, Rejected, RouteState, Router, RoutingConfig, RoutingError, TransferTarget,
};
use crossline_core::{Change, Channel, ConversationId, Direction, EventBody};
use crossline_store::{EventLog, Feed, FeedEntry, Follower, NewEvent, SqliteStore, StoreError};
use repo::RoutingRepo;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Requests waiting for the routing task; more make callers wait.
pub const REQUEST_QUEUE: usize = 256;

/// Routing's name as a consumer of the log (its cursor in `feed_cursor`).
pub const CONSUMER: &str = "routing";

/// Events read from the log at a time.
const FEED_BATCH: usize = 512;

/// Why a routing request failed.
#[derive(Debug, thiserror::Error)]
pub enum RoutingServiceError {
    /// The engine could not be rebuilt from the log after a failed write.
    #[error(
        "routing is off: its decisions could not be written or replayed (see mgmt's log); restart mgmt"
    )]
    Off,
    #[error("invalid routing config: {0}")]
    Config(#[from] ConfigError),
    #[error("invalid routing config: {0}")]
    Parse(String),
    #[error(
        "the routing decisions logged so far do not fit this config ({0}); keep the agents and queues they name, or PUT the config with ?reset=true to start routing afresh (current assignments and waiting conversations are dropped; the log is kept)"
    )]
    Incompatible(String),
    #[error("{0}")]
    Routing(RoutingError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("stored routing decision (mgmt seq {seq}) is unreadable: {detail}")]
    Corrupt { seq: u64, detail: String },
    #[error("the routing service has stopped (mgmt is shutting down)")]
    Stopped,
}

/// The configuration in force.
#[derive(Debug, Clone)]
pub struct ConfigInfo {
    /// Row of `routing_config`: 1 for the first PUT, then 2, ...; 0 for the
    /// default routing.
    pub version: u64,
    /// The default routing ([`default_config`]): no configuration installed.
    pub default: bool,
    /// Decisions with mgmt seq below this are not replayed (earlier epochs).
    pub replay_from_seq: u64,
    pub created_ms: u64,
    pub config: RoutingConfig,
}

type Query = Box<dyn FnOnce(Option<(&Router, &ConfigInfo)>) + Send>;
type AfterCommand = Box<dyn FnOnce(Result<(&Router, Vec<Record>), RoutingServiceError>) + Send>;

enum Request {
    Query(Query),
    Command {
        cmd: Command,
        then: AfterCommand,
    },
    SetConfig {
        config: Box<RoutingConfig>,
        reset: bool,
        by: String,
        reply: oneshot::Sender<Result<ConfigInfo, RoutingServiceError>>,
    },
    EnsureAgent {
        agent: AgentId,
        reply: oneshot::Sender<Result<(), RoutingServiceError>>,
    },
}

/// Handle to the routing task (cheap to clone).
#[derive(Clone)]
pub struct Routing {
    tx: mpsc::Sender<Request>,
    store: SqliteStore,
    channels: crate::services::channels::Channels,
    /// The log position routing has dealt with (decisions logged).
    dealt: watch::Receiver<u64>,
}

impl Routing {
    /// Waits (at most `within`) until routing has dealt with everything
    /// stored when called: a query after it sees what routing decided about
    /// those events. Returns at once when routing has stopped.
    pub async fn caught_up(&self, within: Duration) {
        let head = *self.store.head().borrow();
        let mut dealt = self.dealt.clone();
        let _ = tokio::time::timeout(within, dealt.wait_for(|d| *d >= head)).await;
    }

    /// The channels mgmt carries (those with an adapter): the ones the
    /// desk and the board show capacity counters and filters for.
    pub fn live_channels(&self) -> Vec<Channel> {
        self.channels.live()
    }

    /// Runs `f` on the engine (None until configured) and returns its result.
    pub async fn query<T, F>(&self, f: F) -> Result<T, RoutingServiceError>
    where
        T: Send + 'static,
        F: FnOnce(Option<(&Router, &ConfigInfo)>) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let q: Query = Box::new(move |r| {
            let _ = tx.send(f(r));
        });
        self.tx
            .send(Request::Query(q))
            .await
            .map_err(|_| RoutingServiceError::Stopped)?;
        rx.await.map_err(|_| RoutingServiceError::Stopped)
    }

    /// Handles `cmd` now; the records are in the log when this returns.
    pub async fn command(&self, cmd: Command) -> Result<Vec<Record>, RoutingServiceError> {
        self.command_then(cmd, |_, records| records).await
    }

    /// Handles `cmd`, then runs `f` on the engine right after (before any
    /// other input), with the records it decided.
    pub async fn command_then<T, F>(&self, cmd: Command, f: F) -> Result<T, RoutingServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&Router, Vec<Record>) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let then: AfterCommand = Box::new(move |r| {
            let _ = tx.send(r.map(|(router, records)| f(router, records)));
        });
        self.tx
            .send(Request::Command { cmd, then })
            .await
            .map_err(|_| RoutingServiceError::Stopped)?;
        rx.await.map_err(|_| RoutingServiceError::Stopped)?
    }

    /// A conversation reopened by an agent (desk or API) re-enters routing
    /// as if the customer had written (`Command::Inbound` reopens a resolved
    /// conversation and queues it by the routing rules), unless routing has
    /// it open already or does not run.
    pub async fn reopened(&self, s: &ConversationSummary) -> Result<(), RoutingServiceError> {
        let Ok(cid) = s.id.parse::<ConversationId>() else {
            return Ok(());
        };
        let open = self
            .query(move |r| {
                r.map(|(r, _)| {
                    r.conversation(&cid).is_some_and(|v| {
                        !matches!(v.state, RouteState::Resolved | RouteState::Abandoned)
                    })
                })
            })
            .await?;
        if open != Some(false) {
            return Ok(());
        }
        let channel = match Channel::parse(&s.channel) {
            Ok(c) => c,
            Err(e) => {
                warn!(conversation = %s.id, error = %e, "reopened conversation not routed");
                return Ok(());
            }
        };
        let (contact, conversation) = (s.contact.id.clone(), s.id.clone());
        let text = self.store.first_inbound_text(conversation).await?;
        let customer_tags = self
            .store
            .tags_of(vec![contact.clone()])
            .await?
            .remove(&contact)
            .unwrap_or_default();
        self.command(Command::Inbound {
            conversation: cid,
            contact: s.contact.id.parse().ok().map(ContactId),
            channel,
            attributes: attributes(s.line.clone(), text, customer_tags),
            priority: None,
        })
        .await?;
        Ok(())
    }

    /// Under the default routing, makes sure `agent` (a user who may have
    /// been added with `crossline-mgmt user add` while mgmt runs) is one of
    /// its agents; a no-op otherwise.
    pub async fn ensure_agent(&self, agent: AgentId) -> Result<(), RoutingServiceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::EnsureAgent { agent, reply })
            .await
            .map_err(|_| RoutingServiceError::Stopped)?;
        rx.await.map_err(|_| RoutingServiceError::Stopped)?
    }

    /// Validates, persists and installs a configuration.
    pub async fn set_config(
        &self,
        config: RoutingConfig,
        reset: bool,
    ) -> Result<ConfigInfo, RoutingServiceError> {
        self.set_config_by(config, reset, "system").await
    }

    /// [`Self::set_config`] by `by` (a user's login, `api-token`, `cli`),
    /// who is named in the `routing_configured` event.
    pub async fn set_config_by(
        &self,
        config: RoutingConfig,
        reset: bool,
        by: &str,
    ) -> Result<ConfigInfo, RoutingServiceError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::SetConfig {
                config: Box::new(config),
                reset,
                by: by.to_string(),
                reply,
            })
            .await
            .map_err(|_| RoutingServiceError::Stopped)?;
        rx.await.map_err(|_| RoutingServiceError::Stopped)?
    }
}

/// Loads the configuration, rebuilds the engine from the log and finds
/// where routing stopped following the log; returns the handle and the
/// task to spawn.
pub async fn start(
    store: SqliteStore,
    outbound: crate::services::channels::Outbound,
    shutdown: CancellationToken,
) -> anyhow::Result<(
    Routing,
    impl Future<Output = anyhow::Result<()>> + Send + 'static,
)> {
    let mut service = Service {
        store: store.clone(),
        outbound,
        router: None,
        info: None,
        saved: 0,
        dealt: watch::channel(0).0,
    };
    service.rebuild().await?;
    service.saved = match store.cursor(CONSUMER).await? {
        Some(pos) => pos,
        None => {
            // No cursor yet (a database from before routing followed the
            // log): start at the head, after routing what is open.
            let head = *store.head().borrow();
            service.catch_up().await;
            store.set_cursor(CONSUMER, head).await?;
            head
        }
    };
    info!(
        position = service.saved,
        head = *store.head().borrow(),
        "routing follows the log"
    );
    let follower = Follower::from(store.clone(), service.saved);
    let (tx, rx) = mpsc::channel(REQUEST_QUEUE);
    let dealt = service.dealt.subscribe();
    service.dealt.send_replace(service.saved);
    Ok((
        Routing {
            tx,
            store,
            channels: service.outbound.channels.clone(),
            dealt,
        },
        service.run(rx, follower, shutdown),
    ))
}

struct Service {
    store: SqliteStore,
    /// Sends the replies routing makes (outside-hours auto-replies).
    outbound: crate::services::channels::Outbound,
    router: Option<Router>,
    info: Option<ConfigInfo>,
    /// Routing's cursor as stored: every event up to it has been dealt with.
    saved: u64,
    /// The position dealt with, for [`Routing::caught_up`] (also moves
    /// while routing is off: there is nothing to wait for then).
    dealt: watch::Sender<u64>,
}

impl Service {
    /// (Re)builds the engine from the stored config and decisions.
    async fn rebuild(&mut self) -> Result<(), RoutingServiceError> {
        self.router = None;
        self.info = match load_config(&self.store).await? {
            Some(info) => Some(info),
            None => Some(default_info(&self.store).await?),
        };
        if let Some(info) = &self.info {
            let records = load_records(&self.store, info.replay_from_seq, None).await?;
            let n = records.len();
            let router = Router::replay(info.config.clone(), records.iter().map(|(_, r)| r))
                .map_err(|e| {
                    RoutingServiceError::Incompatible(format!(
                        "config version {}: {e}",
                        info.version
                    ))
                })?;
            info!(
                version = info.version,
                decisions = n,
                "routing engine rebuilt from the log"
            );
            if info.default {
                announce_default(&info.config);
            }
            self.router = Some(router);
        }
        Ok(())
    }

    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut follower: Follower<SqliteStore>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            let deadline = self.router.as_mut().and_then(Router::next_deadline);
            let timer = async move {
                match deadline {
                    Some(t) => {
                        tokio::time::sleep(Duration::from_millis(t.saturating_sub(now_ms()))).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                req = rx.recv() => match req {
                    Some(req) => self.request(req).await,
                    None => break,
                },
                b = follower.next(FEED_BATCH) => match b {
                    Ok(entries) => {
                        let last = entries.last().map_or(0, |e| e.pos);
                        if self.follow(entries).await {
                            self.dealt.send_if_modified(|d| {
                                let moved = last > *d;
                                *d = (*d).max(last);
                                moved
                            });
                        } else {
                            // Read the batch again from what was dealt with.
                            follower = Follower::from(self.store.clone(), self.saved);
                            tokio::select! {
                                _ = shutdown.cancelled() => break,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                    // The store is closed: mgmt is stopping.
                    Err(StoreError::WriterGone) => break,
                    Err(e) => {
                        warn!(error = %e, position = follower.pos(), "routing could not read the log; retrying in 1 s");
                        // Read again from what was dealt with.
                        follower = Follower::from(self.store.clone(), self.saved);
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                },
                () = timer => {
                    if let Err(e) = self.handle(Command::Tick).await {
                        warn!(error = %e, "routing timers failed; retrying in 1 s");
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn request(&mut self, req: Request) {
        match req {
            Request::Query(q) => q(self.router.as_ref().zip(self.info.as_ref())),
            Request::Command { cmd, then } => match self.handle(cmd).await {
                Ok(records) => match &self.router {
                    Some(r) => then(Ok((r, records))),
                    None => then(Err(RoutingServiceError::Off)),
                },
                Err(e) => then(Err(e)),
            },
            Request::SetConfig {
                config,
                reset,
                by,
                reply,
            } => {
                let _ = reply.send(self.set_config(*config, reset, by).await);
            }
            Request::EnsureAgent { agent, reply } => {
                let _ = reply.send(self.ensure_agent(&agent).await);
            }
        }
    }

    async fn set_config(
        &mut self,
        config: RoutingConfig,
        reset: bool,
        by: String,
    ) -> Result<ConfigInfo, RoutingServiceError> {
        Router::new(config.clone())?;
        let current_from = self.info.as_ref().map_or(1, |i| i.replay_from_seq);
        let replacing_default = self.info.as_ref().is_some_and(|i| i.default);
        let replayed = if reset {
            None
        } else {
            let records = load_records(&self.store, current_from, None).await?;
            match Router::replay(config.clone(), records.iter().map(|(_, r)| r)) {
                Ok(router) => Some(router),
                // What the default routing decided (its queue `default`)
                // need not fit the first real configuration: start afresh;
                // open conversations are routed again below (catch_up).
                Err(e) if replacing_default => {
                    info!(reason = %e, "the first routing config replaces the default routing; routing starts afresh");
                    None
                }
                Err(e) => return Err(RoutingServiceError::Incompatible(e.to_string())),
            }
        };
        // The configuration is an event: the projector writes its
        // `routing_config` row (version, and replay from this event's own
        // seq when routing starts afresh) in the event's transaction.
        let (router, starts_afresh) = match replayed {
            Some(router) => (router, false),
            None => (Router::new(config.clone())?, true),
        };
        self.store
            .append(vec![NewEvent {
                conversation: None,
                body: EventBody::RoutingConfigured {
                    config: Box::new(config),
                    reset: starts_afresh,
                    by,
                    replay_from_seq: None,
                },
            }])
            .await?;
        let info = load_config(&self.store).await?.ok_or_else(|| {
            RoutingServiceError::Parse(
                "the routing config just installed is not in routing_config".into(),
            )
        })?;
        info!(
            version = info.version,
            reset,
            replay_from_seq = info.replay_from_seq,
            "routing config installed"
        );
        self.router = Some(router);
        self.info = Some(info.clone());
        self.catch_up().await;
        Ok(info)
    }

    /// Runs one command and appends what it decided before answering.
    async fn handle(&mut self, cmd: Command) -> Result<Vec<Record>, RoutingServiceError> {
        if let Some(agent) = named_agent(&cmd) {
            self.ensure_agent(agent).await?;
        }
        let router = self.router.as_mut().ok_or(RoutingServiceError::Off)?;
        let (records, refused) = match router.handle(now_ms(), cmd) {
            Ok(records) => (records, None),
            Err(Rejected { error, records }) => (records, Some(error)),
        };
        let records = self.log_decisions(records, None).await?;
        match refused {
            Some(e) => Err(RoutingServiceError::Routing(e)),
            None => Ok(records),
        }
    }

    /// Under the default routing, an agent it does not know yet makes it
    /// look at the users again ([`Routing::ensure_agent`]).
    async fn ensure_agent(&mut self, agent: &AgentId) -> Result<(), RoutingServiceError> {
        let unknown = self.info.as_ref().is_some_and(|i| i.default)
            && self
                .router
                .as_ref()
                .is_some_and(|r| r.agent(agent).is_none());
        if unknown {
            self.refresh_default().await?;
        }
        Ok(())
    }

    /// The default routing again, with the agents added since (a user added
    /// with `crossline-mgmt user add` while mgmt runs).
    async fn refresh_default(&mut self) -> Result<(), RoutingServiceError> {
        let info = default_info(&self.store).await?;
        let same = self
            .info
            .as_ref()
            .is_some_and(|i| i.config.agents == info.config.agents);
        if same {
            return Ok(());
        }
        let records = load_records(&self.store, info.replay_from_seq, None).await?;
        let router = Router::replay(info.config.clone(), records.iter().map(|(_, r)| r))
            .map_err(|e| RoutingServiceError::Incompatible(format!("default routing: {e}")))?;
        announce_default(&info.config);
        self.router = Some(router);
        self.info = Some(info);
        Ok(())
    }

    /// Carries out what routing decided mgmt itself must do: outside business
    /// hours with an auto-reply, the customer gets that text by SMS on the
    /// line they wrote to (a reply like an agent's, authored "outside-hours",
    /// with its delivery state in the timeline). Voicemail and callback
    /// offers need voice and are only logged.
    async fn carry_out(&self, records: &[Record]) {
        for r in records {
            let Fact::OutsideHours {
                conversation,
                action,
                ..
            } = &r.fact
            else {
                continue;
            };
            let OutsideHoursAction::AutoReply { text } = action else {
                info!(conversation = %conversation, action = ?action, "outside business hours; the action needs voice and is only logged");
                continue;
            };
            if let Err(e) = self.auto_reply(*conversation, text).await {
                warn!(conversation = %conversation, error = %e, "could not send the outside-hours auto-reply");
            }
        }
    }

    async fn auto_reply(&self, conversation: ConversationId, text: &str) -> anyhow::Result<()> {
        let id = conversation.to_string();
        let conv = self.store.summary(id).await?;
        let Some(conv) = conv else {
            return Ok(());
        };
        // The conversation's channel decides whether the customer can be
        // answered there (an SMS cannot reach a sender name).
        let Ok(channel) = Channel::parse(&conv.channel) else {
            return Ok(());
        };
        let to = crate::services::contacts::address::Address {
            kind: conv.contact.kind,
            value: conv.contact.address.clone(),
        };
        let reachable = self
            .outbound
            .channels
            .get(channel)
            .is_some_and(|a| a.reachable(&to).is_ok());
        let (Some(device), Some(line), true) =
            (conv.device.as_deref(), conv.line.clone(), reachable)
        else {
            return Ok(());
        };
        let device = crossline_core::NodeId::new(device)?;
        let command = self
            .outbound
            .send(crate::services::channels::Outgoing {
                conversation,
                channel,
                device: device.clone(),
                line,
                to: to.value,
                text: text.to_string(),
                author: Some("outside-hours".into()),
            })
            .await?;
        info!(conversation = %conversation, device = %device, command = %command, "outside business hours: auto-reply sent");
        Ok(())
    }

    /// Deals with events read from the log: a customer's message added to
    /// a conversation is routed, a reply added counts as the agent's
    /// response, a resolve frees the agent. The whole batch goes through the
    /// engine in memory and what it decided is appended in one write that
    /// also moves routing's cursor past the batch: a burst of messages costs
    /// routing one read of the contacts' tags and one commit, so queries
    /// (the desk's inbox) never wait behind a commit per message.
    ///
    /// Returns false when the decisions could not be logged: the engine was
    /// rebuilt from the log and the batch must be read again from the
    /// stored cursor.
    async fn follow(&mut self, entries: Vec<FeedEntry>) -> bool {
        let Some(last) = entries.last().map(|e| e.pos) else {
            return true;
        };
        if self.router.is_none() {
            // Routing is off: keep the cursor where it is, so a restart
            // deals with these events.
            return true;
        }
        let relevant = |c: &&Change| {
            matches!(
                c,
                Change::MessageAdded { .. } | Change::ConversationResolved { .. }
            )
        };
        let contacts: Vec<String> = entries
            .iter()
            .flat_map(|e| e.changes.iter())
            .filter_map(|c| match c {
                Change::MessageAdded {
                    contact,
                    direction: Direction::Inbound,
                    ..
                } => Some(contact.clone()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let tags = self.tags_of(contacts).await;
        let mut records = Vec::new();
        for e in &entries {
            for change in e.changes.iter().filter(relevant) {
                // Each command is made from the engine as the earlier ones
                // of the batch left it.
                let Some(cmd) = self.command_for(e, change, &tags) else {
                    continue;
                };
                self.apply(e.pos, cmd, &mut records);
            }
        }
        match self.log_decisions(records, Some(last)).await {
            Ok(records) => {
                debug!(
                    position = last,
                    events = entries.len(),
                    decisions = records.len(),
                    "log events routed"
                );
                true
            }
            Err(e) => {
                warn!(position = last, error = %e, "log events not applied to routing; reading them again");
                false
            }
        }
    }

    /// Runs one command from the log (at `pos`) through the engine and adds
    /// what it decided to `records`; a command the engine refuses is logged
    /// and skipped (what it decided before refusing is kept).
    fn apply(&mut self, pos: u64, cmd: Command, records: &mut Vec<Record>) {
        let Some(router) = self.router.as_mut() else {
            return;
        };
        let conversation = command_conversation(&cmd);
        match router.handle(now_ms(), cmd) {
            Ok(r) => records.extend(r),
            Err(Rejected { error, records: r }) => {
                warn!(position = pos, conversation = ?conversation, error = %error, "routing refused a command from the log");
                records.extend(r);
            }
        }
    }

    /// Appends `records` (what the engine decided) in one write; with
    /// `upto`, that write also moves routing's cursor there (stored alone
    /// when nothing was decided). If the append fails, the engine goes back
    /// to what the log says (it never shows an unlogged decision).
    async fn log_decisions(
        &mut self,
        records: Vec<Record>,
        upto: Option<u64>,
    ) -> Result<Vec<Record>, RoutingServiceError> {
        if records.is_empty() {
            if let Some(pos) = upto
                && pos > self.saved
            {
                match self.store.set_cursor(CONSUMER, pos).await {
                    Ok(()) => self.saved = pos,
                    Err(e) => {
                        warn!(position = pos, error = %e, "could not store routing's cursor; a restart deals with these events again")
                    }
                }
            }
            return Ok(records);
        }
        let events = records
            .iter()
            .map(|r| NewEvent {
                conversation: r.fact.conversation(),
                body: EventBody::RoutingDecision { record: r.clone() },
            })
            .collect();
        let appended = match upto {
            Some(pos) => self.store.append_at_cursor(CONSUMER, pos, events).await,
            None => self.store.append(events).await,
        };
        if let Err(e) = appended {
            error!(error = %e, decisions = records.len(), "could not log routing decisions; rebuilding the engine from the log");
            if let Err(e2) = self.rebuild().await {
                error!(error = %e2, "could not rebuild routing from the log; routing is off until mgmt restarts");
            }
            return Err(e.into());
        }
        if let Some(pos) = upto {
            self.saved = self.saved.max(pos);
        }
        self.carry_out(&records).await;
        Ok(records)
    }

    /// The tags of `contacts`, in one read (routing goes on without them,
    /// and says so, if they cannot be read).
    async fn tags_of(&self, contacts: Vec<String>) -> HashMap<String, Vec<String>> {
        if contacts.is_empty() {
            return HashMap::new();
        }
        let n = contacts.len();
        match self.store.tags_of(contacts).await {
            Ok(t) => t,
            Err(err) => {
                warn!(contacts = n, error = %err, "could not read the contacts' tags; routing without them");
                HashMap::new()
            }
        }
    }

    /// The routing command for one change of a log event, if any.
    fn command_for(
        &self,
        e: &FeedEntry,
        change: &Change,
        tags: &HashMap<String, Vec<String>>,
    ) -> Option<Command> {
        let router = self.router.as_ref()?;
        let state = |c: &ConversationId| router.conversation(c).map(|v| v.state);
        match change {
            Change::MessageAdded {
                conversation,
                contact,
                direction: Direction::Inbound,
                ..
            } => {
                let EventBody::MessageReceived {
                    channel,
                    line,
                    text,
                    ..
                } = &e.event.body
                else {
                    return None;
                };
                let tags = tags.get(contact).cloned().unwrap_or_default();
                Some(Command::Inbound {
                    conversation: *conversation,
                    contact: contact.parse().ok().map(ContactId),
                    channel: *channel,
                    attributes: attributes(Some(line.clone()), Some(text.clone()), tags),
                    priority: None,
                })
            }
            Change::MessageAdded {
                conversation,
                direction: Direction::Outbound,
                ..
            } => matches!(
                state(conversation),
                Some(RouteState::Active | RouteState::Held | RouteState::Snoozed { .. })
            )
            .then_some(Command::AgentReply {
                conversation: *conversation,
            }),
            Change::ConversationResolved { conversation } => match state(conversation) {
                None | Some(RouteState::Resolved | RouteState::Abandoned) => None,
                Some(_) => Some(Command::Resolve {
                    conversation: *conversation,
                }),
            },
            _ => None,
        }
    }

    /// Routes open conversations (on every channel) routing has never seen: those that
    /// arrived before routing was configured, or whose message was stored
    /// while routing was not running (a crash between the two commits).
    /// Oldest first, with their first message's text and last line.
    async fn catch_up(&mut self) {
        let Some(router) = &self.router else { return };
        let open = self.store.open_conversations().await;
        let open = match open {
            Ok(o) => o,
            Err(e) => {
                warn!(error = %e, "could not list open conversations to route");
                return;
            }
        };
        let unseen: Vec<_> = open
            .into_iter()
            .filter_map(|o| {
                let c = o.id.parse::<ConversationId>().ok()?;
                router.conversation(&c).is_none().then_some((
                    c,
                    (o.contact, o.channel),
                    o.line,
                    o.first_text,
                ))
            })
            .collect();
        if unseen.is_empty() {
            return;
        }
        info!(
            conversations = unseen.len(),
            "routing open conversations it has not seen"
        );
        let contacts = unseen
            .iter()
            .map(|(_, (contact, _), _, _)| contact.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let tags = self.tags_of(contacts).await;
        let mut commands = Vec::with_capacity(unseen.len());
        for (conversation, (contact, channel), line, text) in unseen {
            let channel = match Channel::parse(&channel) {
                Ok(c) => c,
                Err(e) => {
                    warn!(%conversation, error = %e, "open conversation not routed");
                    continue;
                }
            };
            let tags = tags.get(&contact).cloned().unwrap_or_default();
            commands.push((
                0,
                Command::Inbound {
                    conversation,
                    contact: contact.parse().ok().map(ContactId),
                    channel,
                    attributes: attributes(line, text, tags),
                    priority: None,
                },
            ));
        }
        // One write for all of them (a config installed over thousands of
        // open conversations is one commit, not one per conversation).
        let mut records = Vec::new();
        for (pos, cmd) in commands {
            self.apply(pos, cmd, &mut records);
        }
        if let Err(e) = self.log_decisions(records, None).await {
            warn!(error = %e, "open conversations not routed");
        }
    }
}

async fn load_config(store: &dyn RoutingRepo) -> Result<Option<ConfigInfo>, RoutingServiceError> {
    let Some(repo::StoredConfig {
        version,
        config: json,
        replay_from_seq: from,
        created_ms: created,
    }) = store.latest_config().await?
    else {
        return Ok(None);
    };
    let config: RoutingConfig = serde_json::from_str(&json).map_err(|e| {
        RoutingServiceError::Parse(format!("stored routing config version {version}: {e}"))
    })?;
    Ok(Some(ConfigInfo {
        version: version as u64,
        default: false,
        replay_from_seq: from as u64,
        created_ms: created as u64,
        config,
    }))
}

/// The id of the default routing's one queue.
pub const DEFAULT_QUEUE: &str = "default";

/// The routing in force until an admin installs a configuration: one queue
/// [`DEFAULT_QUEUE`] that takes every conversation (every line, every
/// channel), with every agent in `agents` a member.
pub fn default_config(agents: Vec<String>) -> RoutingConfig {
    let mut queue = QueueConfig::new(DEFAULT_QUEUE);
    queue.members.agents = agents.iter().map(|a| AgentId::new(a.as_str())).collect();
    let mut cfg = RoutingConfig::new(
        agents.into_iter().map(AgentConfig::new).collect(),
        vec![queue],
    );
    cfg.default_queue = Some(QueueId::new(DEFAULT_QUEUE));
    cfg
}

/// The default routing with every agent user of the database (disabled ones
/// too, so decisions naming them still replay).
async fn default_info(store: &SqliteStore) -> Result<ConfigInfo, RoutingServiceError> {
    let mut agents: Vec<String> = crate::services::users::auth::list_users(store)
        .await?
        .into_iter()
        .filter(|u| u.role == crate::services::users::auth::Role::Agent)
        .map(|u| u.agent_id)
        .collect();
    agents.sort();
    agents.dedup();
    Ok(ConfigInfo {
        version: 0,
        default: true,
        replay_from_seq: 1,
        created_ms: 0,
        config: default_config(agents),
    })
}

/// The first-run hint in the log: what the default routing does and how to
/// replace it.
fn announce_default(cfg: &RoutingConfig) {
    let agents: Vec<&str> = cfg.agents.iter().map(|a| a.id.as_str()).collect();
    if agents.is_empty() {
        warn!(
            "no routing configuration installed and no agents yet: customer messages wait in queue \"default\" until an agent exists and is available. Add one with `crossline-mgmt user add LOGIN --role agent`; she signs in at /desk and sets herself Available"
        );
    } else {
        info!(
            agents = %agents.join(","),
            "no routing configuration installed: using the default routing (one queue \"default\" for every line, every agent a member). Agents start offline: each gets conversations once she sets herself Available in the desk. Install your own routing with PUT /api/v1/routing/config (docs/ROUTING.md)"
        );
    }
}

/// The agent a command names (presence, transfer to an agent).
/// The conversation a command from the log is about (for the logs).
fn command_conversation(cmd: &Command) -> Option<ConversationId> {
    match cmd {
        Command::Inbound { conversation, .. }
        | Command::AgentReply { conversation }
        | Command::Resolve { conversation } => Some(*conversation),
        _ => None,
    }
}

fn named_agent(cmd: &Command) -> Option<&AgentId> {
    match cmd {
        Command::SetPresence { agent, .. } => Some(agent),
        Command::Transfer {
            target: TransferTarget::Agent { agent },
            ..
        } => Some(agent),
        _ => None,
    }
}

/// What routing knows of an inbound conversation: the line, the customer's
/// text and the language its letters suggest ([`crossline_core::lang`]),
/// the contact's tags.
fn attributes(
    line: Option<String>,
    text: Option<String>,
    customer_tags: Vec<String>,
) -> Attributes {
    Attributes {
        line,
        language: text
            .as_deref()
            .and_then(crossline_core::lang::detect)
            .map(str::to_string),
        text,
        customer_tags,
    }
}

/// One logged routing decision.
#[derive(Debug, Clone)]
pub struct Logged {
    /// mgmt's seq of the event (the audit trail's order and cursor).
    pub seq: u64,
    pub event_id: String,
    pub record: Record,
}

/// Filter of [`decisions`].
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub conversation: Option<ConversationId>,
    /// Only seq > after.
    pub after: u64,
    pub limit: usize,
}

/// Routing decisions in log order.
pub async fn decisions(
    store: &(impl RoutingRepo + EventLog),
    f: DecisionFilter,
) -> Result<Vec<Logged>, RoutingServiceError> {
    let origin = crossline_store::EventLog::local_node(store).to_string();
    let rows = store
        .decision_rows(origin, f.after, f.conversation, f.limit)
        .await?;
    rows.into_iter()
        .map(|(seq, id, body)| {
            let seq = seq as u64;
            let event_id = uuid::Uuid::from_slice(&id)
                .map(|u| u.to_string())
                .unwrap_or_default();
            match serde_json::from_str::<EventBody>(&body) {
                Ok(EventBody::RoutingDecision { record }) => Ok(Logged {
                    seq,
                    event_id,
                    record,
                }),
                Ok(other) => Err(RoutingServiceError::Corrupt {
                    seq,
                    detail: format!("kind routing_decision holds a {}", other.kind()),
                }),
                Err(e) => Err(RoutingServiceError::Corrupt {
                    seq,
                    detail: e.to_string(),
                }),
            }
        })
        .collect()
}

/// Routing decisions logged at or after `from_ms` (by log time), in log
/// order (the supervisor's board and reports).
pub async fn records_since(
    store: &dyn RoutingRepo,
    from_ms: u64,
) -> Result<Vec<Record>, RoutingServiceError> {
    Ok(store
        .decision_bodies_since(from_ms)
        .await?
        .into_iter()
        .filter_map(|b| match serde_json::from_str::<EventBody>(&b) {
            Ok(EventBody::RoutingDecision { record }) => Some(record),
            _ => None,
        })
        .collect())
}

/// Every routing decision with mgmt seq >= `from`, in log order.
pub async fn load_records(
    store: &SqliteStore,
    from: u64,
    conversation: Option<ConversationId>,
) -> Result<Vec<(u64, Record)>, RoutingServiceError> {
    let all = decisions(
        store,
        DecisionFilter {
            conversation,
            after: from.saturating_sub(1),
            limit: i64::MAX as usize,
        },
    )
    .await?;
    Ok(all.into_iter().map(|l| (l.seq, l.record)).collect())
}

/// The input of contact-center figures over a period (docs/METRICS.md), one
/// definition for the metrics API and the supervisor's reports: every
/// logged routing record before the period's end (a contact answered before
/// the period and still open counts its time within it), and the options
/// with the end never after now: an interval still running, such as a
/// conversation an agent has open, counts up to now, not up to the end of
/// the day the report shows.
pub async fn metrics_input(
    store: &SqliteStore,
    opts: crossline_core::metrics::MetricsOptions,
) -> Result<(Vec<Record>, crossline_core::metrics::MetricsOptions), RoutingServiceError> {
    let until = opts.until.min(now_ms());
    let records = load_records(store, 1, None)
        .await?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r.at < until)
        .collect();
    Ok((
        records,
        crossline_core::metrics::MetricsOptions { until, ..opts },
    ))
}
