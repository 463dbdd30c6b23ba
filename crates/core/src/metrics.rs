//! Contact-center metrics computed from routing records, defined the way
//! Amazon Connect and Genesys Cloud define them (see docs/METRICS.md), each
//! in a plain (wall-clock) and a business-hours variant.
//!
//! Input: the records the routing engine produced ([`Record`]), in log order.
//! A "contact" is one routing attempt: from an `Arrived` record (new or
//! reopened conversation) to its first `Assigned` (answered) or `Abandoned`.

use crate::id::ConversationId;
use crate::routing::{AgentId, Calendar, Fact, Presence, QueueId, Record};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// What to compute.
#[derive(Debug, Clone)]
pub struct MetricsOptions {
    /// Service-level threshold X (ms), e.g. 20 000 for "80/20".
    pub service_level_ms: u64,
    /// Period start (ms, inclusive): contacts that arrived in
    /// `[from, until)` count; time is clipped to it.
    pub from: u64,
    /// Period end (ms, exclusive). Intervals still open then end there.
    pub until: u64,
    /// Business hours for the business-hours variant.
    pub calendar: Option<Calendar>,
}

/// The figures of one variant (plain or business hours) for one scope.
/// Ratios are `None` when their denominator is zero.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Contacts that entered a queue (Amazon Connect "contacts queued").
    pub offered: u64,
    /// Contacts connected to an agent ("contacts handled incoming").
    pub answered: u64,
    /// Contacts the customer left before an agent took them.
    pub abandoned: u64,
    pub answered_within_sl: u64,
    pub abandoned_within_sl: u64,
    /// (answered + abandoned within X) / offered: contacts removed from the
    /// queue within X over contacts queued (Amazon Connect "service level X").
    pub service_level: Option<f64>,
    /// answered within X / (answered + abandoned) (Genesys "service level %"
    /// with abandons counted against it).
    pub service_level_answered: Option<f64>,
    /// abandoned / offered.
    pub abandonment_rate: Option<f64>,
    /// Average speed of answer: queue time of answered contacts / answered.
    pub asa_ms: Option<f64>,
    /// Contacts an agent handled (answered in the period).
    pub handled: u64,
    pub talk_ms: u64,
    pub hold_ms: u64,
    pub wrap_up_ms: u64,
    /// Average handle time: (talk + hold + wrap-up) / handled.
    pub aht_ms: Option<f64>,
    /// Contacts that got a first agent response.
    pub responded: u64,
    /// Average first response time: arrival to first agent response.
    pub first_response_ms: Option<f64>,
    pub resolved: u64,
    /// Average resolution time: arrival (or reopening) to resolution.
    pub resolution_ms: Option<f64>,
    /// Agents' time on contacts (or wrap-up) / (that time + available idle
    /// time).
    pub occupancy: Option<f64>,
    #[serde(skip)]
    asa_sum: u64,
    #[serde(skip)]
    frt_sum: u64,
    #[serde(skip)]
    res_sum: u64,
    #[serde(skip)]
    occupied_ms: u64,
    #[serde(skip)]
    idle_ms: u64,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

impl Figures {
    fn finish(&mut self) {
        self.service_level = ratio(
            self.answered_within_sl + self.abandoned_within_sl,
            self.offered,
        );
        self.service_level_answered =
            ratio(self.answered_within_sl, self.answered + self.abandoned);
        self.abandonment_rate = ratio(self.abandoned, self.offered);
        self.asa_ms = ratio(self.asa_sum, self.answered);
        self.aht_ms = ratio(self.talk_ms + self.hold_ms + self.wrap_up_ms, self.handled);
        self.first_response_ms = ratio(self.frt_sum, self.responded);
        self.resolution_ms = ratio(self.res_sum, self.resolved);
        self.occupancy = ratio(self.occupied_ms, self.occupied_ms + self.idle_ms);
    }
}

/// One variant: overall and per queue (the queue a contact was in when it
/// was answered or abandoned).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub total: Figures,
    pub by_queue: BTreeMap<QueueId, Figures>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub plain: Variant,
    /// Present when a calendar was given: every duration counts only
    /// business time.
    pub business_hours: Option<Variant>,
}

/// Computes both variants.
pub fn compute(records: &[Record], opts: &MetricsOptions) -> Metrics {
    let plain = variant(records, opts, &|a, b| b.saturating_sub(a));
    let business_hours = opts
        .calendar
        .as_ref()
        .map(|cal| variant(records, opts, &|a, b| cal.business_ms_between(a, b)));
    Metrics {
        plain,
        business_hours,
    }
}

#[derive(Default)]
struct ConvTrack {
    arrived: u64,
    counted: bool,
    queue: Option<QueueId>,
    settled: bool,
    /// Counted as offered in its queue's figures (done once, when the
    /// queue that answers or loses it is known).
    offer_attributed: bool,
    agent: Option<AgentId>,
    active_since: Option<u64>,
    held_since: Option<u64>,
    /// Counted in its agent's occupied conversations (active or held).
    occupying: bool,
    voice: bool,
}

#[derive(Default)]
struct AgentTrack {
    presence: Option<Presence>,
    active: u32,
    since: u64,
    wrap_queue: Option<QueueId>,
}

struct Acc<'a> {
    opts: &'a MetricsOptions,
    dur: &'a dyn Fn(u64, u64) -> u64,
    out: Variant,
}

impl Acc<'_> {
    /// Duration of `[a, b)` clipped to the period.
    fn d(&self, a: u64, b: u64) -> u64 {
        let (a, b) = (a.max(self.opts.from), b.min(self.opts.until));
        if b > a { (self.dur)(a, b) } else { 0 }
    }

    /// Counts the contact as offered in the queue it ended in.
    fn attribute_offer(&mut self, c: &mut ConvTrack) {
        if c.counted && !c.offer_attributed {
            if let Some(q) = &c.queue {
                self.out.by_queue.entry(q.clone()).or_default().offered += 1;
            }
            c.offer_attributed = true;
        }
    }

    fn add(&mut self, queue: Option<&QueueId>, f: impl Fn(&mut Figures)) {
        f(&mut self.out.total);
        if let Some(q) = queue {
            f(self.out.by_queue.entry(q.clone()).or_default());
        }
    }

    fn agent_advance(&mut self, ag: &mut AgentTrack, at: u64) {
        let from = ag.since;
        ag.since = at;
        if at <= from {
            return;
        }
        // Wrap-up ends at its `until` even if the record saying so comes later.
        if let Some(Presence::WrapUp { until }) = ag.presence {
            let wrap_end = until.clamp(from, at);
            let d = self.d(from, wrap_end);
            self.out.total.occupied_ms += d;
            if ag.active == 0 {
                let q = ag.wrap_queue.clone();
                self.add(q.as_ref(), |f| f.wrap_up_ms += d);
            }
            if wrap_end < at {
                let d = self.d(wrap_end, at);
                if ag.active > 0 {
                    self.out.total.occupied_ms += d;
                } else {
                    self.out.total.idle_ms += d;
                }
            }
            return;
        }
        let d = self.d(from, at);
        if ag.active > 0 {
            self.out.total.occupied_ms += d;
        } else if ag.presence == Some(Presence::Available) {
            self.out.total.idle_ms += d;
        }
    }

    fn occupy(
        &mut self,
        c: &mut ConvTrack,
        at: u64,
        agents: &mut HashMap<AgentId, AgentTrack>,
        on: bool,
    ) {
        if c.occupying == on {
            return;
        }
        if let Some(a) = &c.agent {
            let ag = agents.entry(a.clone()).or_default();
            self.agent_advance(ag, at);
            if on {
                ag.active += 1;
            } else {
                ag.active = ag.active.saturating_sub(1);
            }
            c.occupying = on;
        }
    }

    /// Ends the running talk or hold interval.
    fn stop_interval(&mut self, c: &mut ConvTrack, at: u64) {
        if let Some(s) = c.active_since.take() {
            let d = self.d(s, at);
            if c.counted {
                let q = c.queue.clone();
                self.add(q.as_ref(), |f| f.talk_ms += d);
            }
        }
        if let Some(s) = c.held_since.take() {
            let d = self.d(s, at);
            if c.counted {
                let q = c.queue.clone();
                self.add(q.as_ref(), |f| f.hold_ms += d);
            }
        }
    }

    /// The conversation leaves its agent (or the period ends).
    fn stop_all(&mut self, c: &mut ConvTrack, at: u64, agents: &mut HashMap<AgentId, AgentTrack>) {
        self.stop_interval(c, at);
        self.occupy(c, at, agents, false);
    }
}

fn variant(records: &[Record], opts: &MetricsOptions, dur: &dyn Fn(u64, u64) -> u64) -> Variant {
    let mut acc = Acc {
        opts,
        dur,
        out: Variant::default(),
    };
    let mut convs: HashMap<ConversationId, ConvTrack> = HashMap::new();
    let mut agents: HashMap<AgentId, AgentTrack> = HashMap::new();
    let sl = opts.service_level_ms;
    for r in records {
        let at = r.at;
        if at >= opts.until {
            break;
        }
        match &r.fact {
            Fact::PresenceChanged { agent, presence } => {
                let ag = agents.entry(agent.clone()).or_default();
                acc.agent_advance(ag, at);
                ag.presence = Some(*presence);
            }
            Fact::Arrived {
                conversation,
                queue,
                channel,
                ..
            } => {
                let counted = at >= opts.from;
                let c = convs.entry(*conversation).or_default();
                acc.attribute_offer(c);
                *c = ConvTrack {
                    arrived: at,
                    counted,
                    queue: Some(queue.clone()),
                    voice: *channel == crate::event::Channel::Voice,
                    ..ConvTrack::default()
                };
                if counted {
                    acc.out.total.offered += 1;
                }
            }
            Fact::Queued {
                conversation,
                queue,
                ..
            } => {
                if let Some(c) = convs.get_mut(conversation)
                    && !c.settled
                {
                    c.queue = Some(queue.clone());
                }
            }
            Fact::Assigned {
                conversation,
                agent,
                ..
            } => {
                let Some(mut c) = convs.remove(conversation) else {
                    continue;
                };
                acc.stop_all(&mut c, at, &mut agents);
                acc.attribute_offer(&mut c);
                if !c.settled && c.counted {
                    let wait = acc.d(c.arrived, at);
                    let q = c.queue.clone();
                    acc.add(q.as_ref(), |f| {
                        f.answered += 1;
                        f.handled += 1;
                        f.asa_sum += wait;
                        if wait <= sl {
                            f.answered_within_sl += 1;
                        }
                    });
                }
                c.settled = true;
                c.agent = Some(agent.clone());
                c.active_since = Some(at);
                acc.occupy(&mut c, at, &mut agents, true);
                convs.insert(*conversation, c);
            }
            Fact::Abandoned { conversation } => {
                let Some(c) = convs.get_mut(conversation) else {
                    continue;
                };
                acc.attribute_offer(c);
                if !c.settled && c.counted {
                    let wait = acc.d(c.arrived, at);
                    let q = c.queue.clone();
                    acc.add(q.as_ref(), |f| {
                        f.abandoned += 1;
                        if wait <= sl {
                            f.abandoned_within_sl += 1;
                        }
                    });
                }
                c.settled = true;
            }
            Fact::Held { conversation } | Fact::Snoozed { conversation, .. } => {
                let Some(mut c) = convs.remove(conversation) else {
                    continue;
                };
                let was_active = c.active_since.is_some();
                acc.stop_interval(&mut c, at);
                if was_active && matches!(r.fact, Fact::Held { .. }) {
                    c.held_since = Some(at);
                } else {
                    acc.occupy(&mut c, at, &mut agents, false);
                }
                convs.insert(*conversation, c);
            }
            Fact::Resumed { conversation } => {
                let Some(mut c) = convs.remove(conversation) else {
                    continue;
                };
                acc.stop_interval(&mut c, at);
                c.active_since = Some(at);
                acc.occupy(&mut c, at, &mut agents, true);
                convs.insert(*conversation, c);
            }
            Fact::Unassigned { conversation, .. } => {
                let Some(mut c) = convs.remove(conversation) else {
                    continue;
                };
                acc.stop_all(&mut c, at, &mut agents);
                c.agent = None;
                convs.insert(*conversation, c);
            }
            Fact::LegStarted {
                conversation,
                channel,
            } => {
                if *channel == crate::event::Channel::Voice
                    && let Some(c) = convs.get_mut(conversation)
                {
                    c.voice = true;
                }
            }
            Fact::LegEnded {
                conversation,
                channel,
            } => {
                if *channel == crate::event::Channel::Voice
                    && let Some(c) = convs.get(conversation)
                    && let Some(a) = &c.agent
                {
                    agents.entry(a.clone()).or_default().wrap_queue = c.queue.clone();
                }
            }
            Fact::Responded {
                conversation,
                first: true,
                ..
            } => {
                if let Some(c) = convs.get(conversation)
                    && c.counted
                {
                    let d = acc.d(c.arrived, at);
                    let q = c.queue.clone();
                    acc.add(q.as_ref(), |f| {
                        f.responded += 1;
                        f.frt_sum += d;
                    });
                }
            }
            Fact::Resolved { conversation } | Fact::Closed { conversation } => {
                let Some(mut c) = convs.remove(conversation) else {
                    continue;
                };
                if let (Some(a), true) = (&c.agent, c.voice) {
                    agents.entry(a.clone()).or_default().wrap_queue = c.queue.clone();
                }
                acc.attribute_offer(&mut c);
                acc.stop_all(&mut c, at, &mut agents);
                if matches!(r.fact, Fact::Resolved { .. }) && c.counted {
                    let d = acc.d(c.arrived, at);
                    let q = c.queue.clone();
                    acc.add(q.as_ref(), |f| {
                        f.resolved += 1;
                        f.res_sum += d;
                    });
                }
                c.agent = None;
                convs.insert(*conversation, c);
            }
            _ => {}
        }
    }
    // Close what is still running at the end of the period.
    let end = opts.until;
    let mut ids: Vec<ConversationId> = convs.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        if let Some(mut c) = convs.remove(&id) {
            acc.stop_all(&mut c, end, &mut agents);
            acc.attribute_offer(&mut c);
        }
    }
    let mut names: Vec<AgentId> = agents.keys().cloned().collect();
    names.sort_unstable();
    for n in names {
        if let Some(mut ag) = agents.remove(&n) {
            acc.agent_advance(&mut ag, end);
        }
    }
    let mut out = acc.out;
    out.total.finish();
    for f in out.by_queue.values_mut() {
        f.finish();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Channel;
    use crate::routing::{
        AgentConfig, Attributes, BusinessHours, Command, QueueConfig, Router, RoutingConfig,
    };
    use jiff::civil::time;
    use uuid::Uuid;

    fn cv(n: u128) -> ConversationId {
        ConversationId(Uuid::from_u128(n))
    }

    fn run(cmds: Vec<(u64, Command)>, wrap: u64) -> Vec<Record> {
        let mut q = QueueConfig::new("q");
        q.members.agents = vec![AgentId::new("ana")];
        let mut cfg = RoutingConfig::new(vec![AgentConfig::new("ana")], vec![q]);
        cfg.default_queue = Some(QueueId::new("q"));
        cfg.wrap_up_ms = wrap;
        let mut r = Router::new(cfg).unwrap();
        let mut log = Vec::new();
        for (t, c) in cmds {
            log.extend(r.handle(t, c).unwrap());
        }
        log
    }

    fn inbound(c: u128, ch: Channel) -> Command {
        Command::Inbound {
            conversation: cv(c),
            contact: None,
            channel: ch,
            attributes: Attributes::default(),
            priority: None,
        }
    }

    #[test]
    fn queue_metrics_by_definition() {
        let ana = || AgentId::new("ana");
        let log = run(
            vec![
                (0, inbound(1, Channel::Voice)),
                (0, inbound(2, Channel::Voice)),
                (0, inbound(3, Channel::Voice)),
                // Answered after 10 s.
                (
                    10_000,
                    Command::SetPresence {
                        agent: ana(),
                        presence: Presence::Available,
                    },
                ),
                (
                    15_000,
                    Command::AgentReply {
                        conversation: cv(1),
                    },
                ),
                // Talk 60 s, then hold 20 s, talk 20 s more.
                (
                    70_000,
                    Command::Hold {
                        conversation: cv(1),
                    },
                ),
                (
                    90_000,
                    Command::Resume {
                        conversation: cv(1),
                    },
                ),
                // The third caller gives up after 100 s.
                (
                    100_000,
                    Command::Abandon {
                        conversation: cv(3),
                    },
                ),
                // Call ends at 110 s: wrap-up 30 s, then cv2 is answered.
                (
                    110_000,
                    Command::EndLeg {
                        conversation: cv(1),
                        channel: Channel::Voice,
                    },
                ),
                (
                    110_000,
                    Command::Resolve {
                        conversation: cv(1),
                    },
                ),
                (
                    200_000,
                    Command::Resolve {
                        conversation: cv(2),
                    },
                ),
            ],
            30_000,
        );
        let m = compute(
            &log,
            &MetricsOptions {
                service_level_ms: 20_000,
                from: 0,
                until: 300_000,
                calendar: None,
            },
        );
        let f = &m.plain.total;
        assert_eq!((f.offered, f.answered, f.abandoned), (3, 2, 1));
        assert_eq!(f.answered_within_sl, 1);
        assert_eq!(f.service_level, Some(1.0 / 3.0));
        assert_eq!(f.service_level_answered, Some(1.0 / 3.0));
        assert_eq!(f.abandonment_rate, Some(1.0 / 3.0));
        // cv1 waited 10 s, cv2 140 s (10 + 100 + 30 wrap-up).
        assert_eq!(f.asa_ms, Some(75_000.0));
        // cv1: talk 60 + 20, hold 20, wrap 30; cv2 (answered at 140 s when
        // cv1's wrap-up ended): talk 60, wrap 30.
        assert_eq!(
            (f.talk_ms, f.hold_ms, f.wrap_up_ms),
            (140_000, 20_000, 60_000)
        );
        assert_eq!(f.aht_ms, Some(110_000.0));
        assert_eq!(f.first_response_ms, Some(15_000.0));
        assert_eq!(f.resolution_ms, Some((110_000.0 + 200_000.0) / 2.0));
        // ana: on contacts (hold included) 10..110 and 140..200 s, wrap-up
        // 110..140 and 200..230 s, idle 230..300 s.
        assert_eq!(f.occupancy, Some(220_000.0 / 290_000.0));
        assert_eq!(
            m.plain.by_queue.get(&QueueId::new("q")).unwrap().answered,
            2
        );
    }

    #[test]
    fn business_hours_variant_counts_only_open_time() {
        let ms = |s: &str| s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64;
        let fri_1750 = ms("2026-11-27T15:50:00Z"); // 17:50 Kyiv
        let mon_0910 = ms("2026-11-30T07:10:00Z"); // 09:10 Kyiv
        let log = run(
            vec![
                (fri_1750, inbound(1, Channel::Email)),
                (
                    mon_0910,
                    Command::SetPresence {
                        agent: AgentId::new("ana"),
                        presence: Presence::Available,
                    },
                ),
            ],
            0,
        );
        let cal = Calendar::new(&BusinessHours::weekdays(
            "Europe/Kyiv",
            time(9, 0, 0, 0),
            time(18, 0, 0, 0),
        ))
        .unwrap();
        let m = compute(
            &log,
            &MetricsOptions {
                service_level_ms: 30 * 60_000,
                from: 0,
                until: mon_0910 + 1,
                calendar: Some(cal),
            },
        );
        assert_eq!(m.plain.total.service_level, Some(0.0));
        let b = m.business_hours.unwrap().total;
        assert_eq!(b.asa_ms, Some(20.0 * 60_000.0));
        assert_eq!(b.service_level, Some(1.0));
    }
}
