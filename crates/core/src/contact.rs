//! Contacts: one customer, several identities (phone numbers, emails, chat
//! visitor ids, messenger ids).
//!
//! * A message from a known identity matches its contact automatically; only
//!   an exact, normalised identity counts as a match.
//! * Two contacts become one only by an explicit [`ContactBook::merge`] (an
//!   agent's decision, recorded with who and when). A weak signal (same
//!   name) is only ever a [`ContactBook::merge_suggestions`] entry.
//! * Every merge is in the audit trail and can be undone
//!   ([`ContactBook::unmerge`]) as long as no later merge built on it.
//!
//! Changes are [`ContactFact`]s: mgmt appends them to its log and
//! [`ContactBook::replay`] rebuilds the book.

use crate::id::ConversationId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use uuid::Uuid;

/// A contact (customer).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub Uuid);

impl ContactId {
    /// A new time-ordered (UUIDv7) id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for ContactId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for ContactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContactId({})", self.0)
    }
}

/// One way to reach a customer. Build with [`Identity::phone`],
/// [`Identity::email`]... which normalise, so equal identities compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Identity {
    /// E.164 (`+380501234567`); mgmt normalises national numbers first.
    Phone(String),
    /// Lower-cased address.
    Email(String),
    /// Web-chat visitor id (cookie).
    ChatVisitor(String),
    /// `network:id`, e.g. `telegram:123456`.
    Messenger(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContactError {
    #[error(
        "phone number {0:?} is not E.164 (+ then 6 to 15 digits): normalise it (phonenumber crate) before matching"
    )]
    BadPhone(String),
    #[error("email address {0:?} is not user@domain")]
    BadEmail(String),
    #[error("{what} is empty or longer than 256 bytes")]
    BadId { what: &'static str },
    #[error("unknown contact {0}")]
    UnknownContact(ContactId),
    #[error("contact {0} was merged into {1}: use that contact")]
    MergedAway(ContactId, ContactId),
    #[error("contact {0} already exists")]
    Exists(ContactId),
    #[error(
        "{identity:?} already belongs to contact {owner}: merge the two contacts explicitly if they are the same person"
    )]
    IdentityTaken {
        identity: Identity,
        owner: ContactId,
    },
    #[error("cannot merge contact {0} into itself")]
    SelfMerge(ContactId),
    #[error("unknown merge #{0}")]
    UnknownMerge(u64),
    #[error("merge #{0} was already undone")]
    AlreadyUndone(u64),
    #[error(
        "merge #{merge} cannot be undone while the later merge #{later} involving the same contacts stands: undo #{later} first"
    )]
    LaterMerge { merge: u64, later: u64 },
}

fn bounded(s: &str, what: &'static str) -> Result<String, ContactError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 256 {
        return Err(ContactError::BadId { what });
    }
    Ok(s.to_owned())
}

impl Identity {
    pub fn phone(s: &str) -> Result<Self, ContactError> {
        let digits: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        let ok = digits
            .strip_prefix('+')
            .is_some_and(|d| (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
        if ok {
            Ok(Identity::Phone(digits))
        } else {
            Err(ContactError::BadPhone(s.to_owned()))
        }
    }

    pub fn email(s: &str) -> Result<Self, ContactError> {
        let e = s.trim().to_lowercase();
        match e.split_once('@') {
            Some((u, d))
                if !u.is_empty() && d.contains('.') && !d.contains('@') && e.len() <= 254 =>
            {
                Ok(Identity::Email(e))
            }
            _ => Err(ContactError::BadEmail(s.to_owned())),
        }
    }

    pub fn chat_visitor(s: &str) -> Result<Self, ContactError> {
        Ok(Identity::ChatVisitor(bounded(s, "chat visitor id")?))
    }

    pub fn messenger(network: &str, id: &str) -> Result<Self, ContactError> {
        let n = bounded(network, "messenger network")?.to_lowercase();
        let i = bounded(id, "messenger id")?;
        Ok(Identity::Messenger(format!("{n}:{i}")))
    }
}

/// A contact as the book knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: ContactId,
    pub name: Option<String>,
    pub identities: BTreeSet<Identity>,
    pub conversations: BTreeSet<ConversationId>,
    /// Set when this contact was merged into another.
    pub merged_into: Option<ContactId>,
}

/// A change to the book; append to the log, replay to rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContactFact {
    Created {
        contact: ContactId,
        #[serde(default)]
        name: Option<String>,
        identity: Identity,
    },
    IdentityAdded {
        contact: ContactId,
        identity: Identity,
    },
    ConversationLinked {
        contact: ContactId,
        conversation: ConversationId,
    },
    /// `merged` folded into `survivor`; what moved is listed so it can be
    /// moved back.
    Merged {
        merge: u64,
        survivor: ContactId,
        merged: ContactId,
        identities: Vec<Identity>,
        conversations: Vec<ConversationId>,
        by: String,
        at: u64,
    },
    Unmerged {
        merge: u64,
        by: String,
        at: u64,
    },
}

/// Result of matching an inbound identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Known(ContactId),
    /// Unknown identity: the fact creating the contact was applied.
    Created(ContactId, ContactFact),
}

/// Two contacts that might be the same person (weak signal). Never merged
/// automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeSuggestion {
    pub a: ContactId,
    pub b: ContactId,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MergeEntry {
    survivor: ContactId,
    merged: ContactId,
    identities: Vec<Identity>,
    conversations: Vec<ConversationId>,
    undone: bool,
}

/// All contacts, their identities and the merge audit trail.
#[derive(Debug, Clone, Default)]
pub struct ContactBook {
    contacts: BTreeMap<ContactId, Contact>,
    by_identity: BTreeMap<Identity, ContactId>,
    merges: BTreeMap<u64, MergeEntry>,
    audit: Vec<ContactFact>,
}

impl ContactBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a book from its facts, in log order.
    pub fn replay<'a>(
        facts: impl IntoIterator<Item = &'a ContactFact>,
    ) -> Result<Self, ContactError> {
        let mut b = Self::new();
        for f in facts {
            b.apply(f)?;
        }
        Ok(b)
    }

    pub fn get(&self, id: &ContactId) -> Option<&Contact> {
        self.contacts.get(id)
    }

    /// The live contact an identity belongs to (exact match only).
    pub fn find(&self, identity: &Identity) -> Option<ContactId> {
        self.by_identity.get(identity).copied()
    }

    /// Follows merges to the contact that now holds `id`'s history.
    pub fn resolve(&self, id: ContactId) -> ContactId {
        let mut cur = id;
        for _ in 0..=self.merges.len() {
            match self.contacts.get(&cur).and_then(|c| c.merged_into) {
                Some(next) => cur = next,
                None => break,
            }
        }
        cur
    }

    /// Merges and un-merges, oldest first.
    pub fn audit_trail(&self) -> &[ContactFact] {
        &self.audit
    }

    /// Matches an inbound identity, creating a contact with `new_id` when it
    /// is unknown. Mgmt appends the `Created` fact.
    pub fn match_or_create(
        &mut self,
        identity: Identity,
        new_id: ContactId,
        name: Option<String>,
    ) -> Result<Match, ContactError> {
        if let Some(id) = self.find(&identity) {
            return Ok(Match::Known(id));
        }
        let f = ContactFact::Created {
            contact: new_id,
            name,
            identity,
        };
        self.apply(&f)?;
        Ok(Match::Created(new_id, f))
    }

    /// Adds an identity to a contact. Refused (never merged) when another
    /// contact already has it.
    pub fn add_identity(
        &mut self,
        contact: ContactId,
        identity: Identity,
    ) -> Result<Option<ContactFact>, ContactError> {
        self.live(contact)?;
        match self.find(&identity) {
            Some(owner) if owner == contact => return Ok(None),
            Some(owner) => return Err(ContactError::IdentityTaken { identity, owner }),
            None => {}
        }
        let f = ContactFact::IdentityAdded { contact, identity };
        self.apply(&f)?;
        Ok(Some(f))
    }

    pub fn link_conversation(
        &mut self,
        contact: ContactId,
        conversation: ConversationId,
    ) -> Result<ContactFact, ContactError> {
        let f = ContactFact::ConversationLinked {
            contact: self.live(contact)?,
            conversation,
        };
        self.apply(&f)?;
        Ok(f)
    }

    /// Explicit merge of `merged` into `survivor` by user `by`: identities
    /// and conversations follow.
    pub fn merge(
        &mut self,
        survivor: ContactId,
        merged: ContactId,
        by: &str,
        at: u64,
    ) -> Result<ContactFact, ContactError> {
        if survivor == merged {
            return Err(ContactError::SelfMerge(survivor));
        }
        self.live(survivor)?;
        let m = self.live(merged)?;
        let c = self
            .contacts
            .get(&m)
            .ok_or(ContactError::UnknownContact(m))?;
        let f = ContactFact::Merged {
            merge: self.merges.keys().next_back().map_or(1, |k| k + 1),
            survivor,
            merged,
            identities: c.identities.iter().cloned().collect(),
            conversations: c.conversations.iter().copied().collect(),
            by: by.to_owned(),
            at,
        };
        self.apply(&f)?;
        Ok(f)
    }

    /// Undoes merge `merge`: what moved goes back. Refused while a later,
    /// not undone merge involves either contact.
    pub fn unmerge(&mut self, merge: u64, by: &str, at: u64) -> Result<ContactFact, ContactError> {
        let f = ContactFact::Unmerged {
            merge,
            by: by.to_owned(),
            at,
        };
        self.apply(&f)?;
        Ok(f)
    }

    /// Contacts sharing a display name (case-insensitive): a weak signal,
    /// shown to an agent, never acted on.
    pub fn merge_suggestions(&self, contact: ContactId) -> Vec<MergeSuggestion> {
        let Some(name) = self
            .contacts
            .get(&contact)
            .and_then(|c| c.name.as_ref())
            .map(|n| n.trim().to_lowercase())
        else {
            return Vec::new();
        };
        self.contacts
            .values()
            .filter(|c| c.id != contact && c.merged_into.is_none())
            .filter(|c| {
                c.name
                    .as_ref()
                    .is_some_and(|n| n.trim().to_lowercase() == name)
            })
            .map(|c| MergeSuggestion {
                a: contact,
                b: c.id,
                why: format!("same name {name:?}"),
            })
            .collect()
    }

    fn live(&self, id: ContactId) -> Result<ContactId, ContactError> {
        let c = self
            .contacts
            .get(&id)
            .ok_or(ContactError::UnknownContact(id))?;
        match c.merged_into {
            Some(into) => Err(ContactError::MergedAway(id, self.resolve(into))),
            None => Ok(id),
        }
    }

    fn contact_mut(&mut self, id: ContactId) -> Result<&mut Contact, ContactError> {
        self.contacts
            .get_mut(&id)
            .ok_or(ContactError::UnknownContact(id))
    }

    /// Applies one fact (validating it).
    pub fn apply(&mut self, f: &ContactFact) -> Result<(), ContactError> {
        match f {
            ContactFact::Created {
                contact,
                name,
                identity,
            } => {
                if self.contacts.contains_key(contact) {
                    return Err(ContactError::Exists(*contact));
                }
                if let Some(owner) = self.find(identity) {
                    return Err(ContactError::IdentityTaken {
                        identity: identity.clone(),
                        owner,
                    });
                }
                self.contacts.insert(
                    *contact,
                    Contact {
                        id: *contact,
                        name: name.clone(),
                        identities: BTreeSet::from([identity.clone()]),
                        conversations: BTreeSet::new(),
                        merged_into: None,
                    },
                );
                self.by_identity.insert(identity.clone(), *contact);
            }
            ContactFact::IdentityAdded { contact, identity } => {
                self.live(*contact)?;
                if let Some(owner) = self.find(identity).filter(|o| o != contact) {
                    return Err(ContactError::IdentityTaken {
                        identity: identity.clone(),
                        owner,
                    });
                }
                self.contact_mut(*contact)?
                    .identities
                    .insert(identity.clone());
                self.by_identity.insert(identity.clone(), *contact);
            }
            ContactFact::ConversationLinked {
                contact,
                conversation,
            } => {
                self.live(*contact)?;
                self.contact_mut(*contact)?
                    .conversations
                    .insert(*conversation);
            }
            ContactFact::Merged {
                merge,
                survivor,
                merged,
                identities,
                conversations,
                ..
            } => {
                if survivor == merged {
                    return Err(ContactError::SelfMerge(*survivor));
                }
                self.live(*survivor)?;
                self.live(*merged)?;
                let m = self.contact_mut(*merged)?;
                for i in identities {
                    m.identities.remove(i);
                }
                for c in conversations {
                    m.conversations.remove(c);
                }
                m.merged_into = Some(*survivor);
                let s = self.contact_mut(*survivor)?;
                s.identities.extend(identities.iter().cloned());
                s.conversations.extend(conversations.iter().copied());
                for i in identities {
                    self.by_identity.insert(i.clone(), *survivor);
                }
                self.merges.insert(
                    *merge,
                    MergeEntry {
                        survivor: *survivor,
                        merged: *merged,
                        identities: identities.clone(),
                        conversations: conversations.clone(),
                        undone: false,
                    },
                );
                self.audit.push(f.clone());
            }
            ContactFact::Unmerged { merge, .. } => {
                let e = self
                    .merges
                    .get(merge)
                    .ok_or(ContactError::UnknownMerge(*merge))?;
                if e.undone {
                    return Err(ContactError::AlreadyUndone(*merge));
                }
                let involved = [e.survivor, e.merged];
                if let Some((later, _)) = self.merges.range(merge + 1..).find(|(_, l)| {
                    !l.undone && (involved.contains(&l.survivor) || involved.contains(&l.merged))
                }) {
                    return Err(ContactError::LaterMerge {
                        merge: *merge,
                        later: *later,
                    });
                }
                let e = e.clone();
                let s = self.contact_mut(e.survivor)?;
                for i in &e.identities {
                    s.identities.remove(i);
                }
                for c in &e.conversations {
                    s.conversations.remove(c);
                }
                let m = self.contact_mut(e.merged)?;
                m.merged_into = None;
                m.identities.extend(e.identities.iter().cloned());
                m.conversations.extend(e.conversations.iter().copied());
                for i in &e.identities {
                    self.by_identity.insert(i.clone(), e.merged);
                }
                if let Some(x) = self.merges.get_mut(merge) {
                    x.undone = true;
                }
                self.audit.push(f.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u128) -> ContactId {
        ContactId(Uuid::from_u128(n))
    }

    #[test]
    fn identities_normalise() {
        assert_eq!(
            Identity::phone("+380 (50) 123-45-67").unwrap(),
            Identity::Phone("+380501234567".into())
        );
        assert!(Identity::phone("0501234567").is_err());
        assert_eq!(
            Identity::email(" Olena@Example.COM ").unwrap(),
            Identity::Email("olena@example.com".into())
        );
        assert!(Identity::email("no-at-sign").is_err());
        assert_eq!(
            Identity::messenger("Telegram", "42").unwrap(),
            Identity::Messenger("telegram:42".into())
        );
        assert!(Identity::chat_visitor("").is_err());
    }

    #[test]
    fn known_identity_matches_and_weak_signal_never_merges() {
        let mut b = ContactBook::new();
        let phone = Identity::phone("+380501234567").unwrap();
        let m = b
            .match_or_create(phone.clone(), cid(1), Some("Olena".into()))
            .unwrap();
        assert!(matches!(m, Match::Created(id, _) if id == cid(1)));
        // Same number, another format: same contact.
        let again = Identity::phone("+380 50 123 45 67").unwrap();
        assert_eq!(
            b.match_or_create(again, cid(2), None).unwrap(),
            Match::Known(cid(1))
        );
        // Same name, different email: a new contact, only a suggestion.
        let e = Identity::email("olena@example.com").unwrap();
        b.match_or_create(e, cid(3), Some("olena".into())).unwrap();
        assert_eq!(b.find(&phone), Some(cid(1)));
        let s = b.merge_suggestions(cid(3));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].b, cid(1));
        assert!(b.get(&cid(3)).unwrap().merged_into.is_none());
        // Adding a taken identity is refused with the owner named.
        let err = b.add_identity(cid(3), phone.clone()).unwrap_err();
        assert_eq!(
            err,
            ContactError::IdentityTaken {
                identity: phone,
                owner: cid(1)
            }
        );
    }

    #[test]
    fn merge_moves_history_and_unmerge_restores_it() {
        let mut b = ContactBook::new();
        let phone = Identity::phone("+380501234567").unwrap();
        let email = Identity::email("o@example.com").unwrap();
        b.match_or_create(phone.clone(), cid(1), None).unwrap();
        b.match_or_create(email.clone(), cid(2), None).unwrap();
        let c1 = ConversationId(Uuid::from_u128(11));
        let c2 = ConversationId(Uuid::from_u128(12));
        b.link_conversation(cid(1), c1).unwrap();
        b.link_conversation(cid(2), c2).unwrap();
        let merge = b.merge(cid(1), cid(2), "supervisor-ana", 1000).unwrap();
        let ContactFact::Merged { merge: n, .. } = merge else {
            panic!()
        };
        assert_eq!(b.find(&email), Some(cid(1)));
        assert_eq!(b.resolve(cid(2)), cid(1));
        assert_eq!(
            b.get(&cid(1)).unwrap().conversations,
            BTreeSet::from([c1, c2])
        );
        assert!(matches!(
            b.link_conversation(cid(2), c1),
            Err(ContactError::MergedAway(_, _))
        ));
        // A later merge into the survivor blocks undoing the first one.
        b.match_or_create(Identity::chat_visitor("v1").unwrap(), cid(3), None)
            .unwrap();
        let later = b.merge(cid(1), cid(3), "ana", 2000).unwrap();
        assert!(matches!(
            b.unmerge(n, "ana", 2500),
            Err(ContactError::LaterMerge { .. })
        ));
        let ContactFact::Merged { merge: n2, .. } = later else {
            panic!()
        };
        b.unmerge(n2, "ana", 2600).unwrap();
        b.unmerge(n, "ana", 3000).unwrap();
        assert_eq!(b.find(&email), Some(cid(2)));
        assert_eq!(b.get(&cid(2)).unwrap().conversations, BTreeSet::from([c2]));
        assert_eq!(b.get(&cid(1)).unwrap().conversations, BTreeSet::from([c1]));
        assert_eq!(b.audit_trail().len(), 4);
        assert_eq!(
            b.unmerge(n, "ana", 3001),
            Err(ContactError::AlreadyUndone(n))
        );
    }

    #[test]
    fn replay_rebuilds_the_book() {
        let mut b = ContactBook::new();
        let mut log = Vec::new();
        for (i, p) in ["+380501111111", "+380502222222"].iter().enumerate() {
            if let Match::Created(_, f) = b
                .match_or_create(Identity::phone(p).unwrap(), cid(i as u128 + 1), None)
                .unwrap()
            {
                log.push(f);
            }
        }
        log.push(b.merge(cid(1), cid(2), "x", 5).unwrap());
        let r = ContactBook::replay(&log).unwrap();
        assert_eq!(r.get(&cid(1)), b.get(&cid(1)));
        assert_eq!(r.get(&cid(2)), b.get(&cid(2)));
        assert_eq!(r.audit_trail(), b.audit_trail());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Identity(u8, u8),
        Merge(u8, u8),
        UnmergeLast,
        Link(u8, u8),
    }

    fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0..6u8, 0..12u8).prop_map(|(c, i)| Op::Identity(c, i)),
            (0..6u8, 0..6u8).prop_map(|(a, b)| Op::Merge(a, b)),
            Just(Op::UnmergeLast),
            (0..6u8, 0..20u8).prop_map(|(c, v)| Op::Link(c, v)),
        ]
    }

    fn check(b: &ContactBook) -> Result<(), proptest::test_runner::TestCaseError> {
        for (i, owner) in &b.by_identity {
            let c = b.get(owner).unwrap();
            proptest::prop_assert!(
                c.merged_into.is_none(),
                "{:?} points at merged {}",
                i,
                owner
            );
            proptest::prop_assert!(c.identities.contains(i));
        }
        for c in b.contacts.values() {
            if c.merged_into.is_some() {
                proptest::prop_assert!(c.identities.is_empty() && c.conversations.is_empty());
            }
            for i in &c.identities {
                proptest::prop_assert_eq!(b.find(i), Some(c.id));
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::SourceParallel("proptest-regressions"),
            )),
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0C07_AC75),
            ..proptest::test_runner::Config::default()
        })]

        /// Random identities, links, merges and un-merges: every identity
        /// belongs to exactly one live contact, un-merging everything gives
        /// back the book as it was before the merges, and replay agrees.
        #[test]
        fn merges_are_reversible(ops in proptest::collection::vec(arb_op(), 0..60)) {
            let mut b = ContactBook::new();
            let mut log = Vec::new();
            for c in 0..6u8 {
                let id = Identity::chat_visitor(&format!("v{c}")).unwrap();
                if let Match::Created(_, f) = b.match_or_create(id, cid(u128::from(c)), None).unwrap() {
                    log.push(f);
                }
            }
            let mut merges: Vec<u64> = Vec::new();
            let mut before_merges: Vec<ContactBook> = Vec::new();
            for op in ops {
                let res = match op {
                    Op::Identity(c, i) => b
                        .add_identity(cid(u128::from(c)), Identity::email(&format!("u{i}@x.org")).unwrap())
                        .map(|f| f.into_iter().collect::<Vec<_>>()),
                    Op::Link(c, v) => b
                        .link_conversation(cid(u128::from(c)), ConversationId(Uuid::from_u128(u128::from(v) + 100)))
                        .map(|f| vec![f]),
                    Op::Merge(x, y) => {
                        let snapshot = b.clone();
                        let r = b.merge(cid(u128::from(x)), cid(u128::from(y)), "t", 0);
                        if let Ok(ContactFact::Merged { merge, .. }) = &r {
                            merges.push(*merge);
                            before_merges.push(snapshot);
                        }
                        r.map(|f| vec![f])
                    }
                    Op::UnmergeLast => match merges.pop() {
                        Some(m) => {
                            let r = b.unmerge(m, "t", 1).map(|f| vec![f]);
                            proptest::prop_assert!(r.is_ok(), "{:?}", r);
                            let was = before_merges.pop().unwrap();
                            // Identities and conversations are back where they were,
                            // except what was added to the survivor since.
                            for c in was.contacts.values() {
                                let now = b.get(&c.id).unwrap();
                                proptest::prop_assert_eq!(now.merged_into, c.merged_into);
                                proptest::prop_assert!(c.identities.is_subset(&now.identities));
                            }
                            r
                        }
                        None => Ok(vec![]),
                    },
                };
                if let Ok(f) = res {
                    log.extend(f);
                }
                check(&b)?;
            }
            let r = ContactBook::replay(&log).unwrap();
            proptest::prop_assert_eq!(&r.contacts, &b.contacts);
            proptest::prop_assert_eq!(r.audit_trail(), b.audit_trail());
        }
    }
}
