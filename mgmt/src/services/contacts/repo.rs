//! What the contacts service needs from storage ([`ContactRepo`]): tags,
//! lookups by identity, and the merge rules checked in the transaction that
//! appends the fact. No SQL here; the SQLite implementation is
//! `crate::storage::sqlite::conversations`.

use super::address::AddressKind;
use super::facts::{MergeInto, MergeOutcome, UnmergeOutcome};
use crate::services::RepoFuture;
use crossline_core::contact::ContactId;
use std::collections::HashMap;

/// Contacts: who has which identity and tags, and the merge rules, checked
/// in the transaction that appends the fact (so check and fact cannot
/// race).
pub trait ContactRepo: Send + Sync {
    /// The tags of each of `contacts` (contacts without tags: empty).
    fn tags_of(&self, contacts: Vec<String>) -> RepoFuture<HashMap<String, Vec<String>>>;
    /// The contact with this id, or else the one with this identity.
    fn find_contact(
        &self,
        id: String,
        kind: AddressKind,
        address: String,
    ) -> RepoFuture<Option<String>>;
    /// The contact that holds `merged`'s history now: None if it is not
    /// merged; else its survivor, or whom the survivor was merged into.
    fn holder_of_merged(&self, merged: String) -> RepoFuture<Option<String>>;
    /// The contacts merged into `survivor`.
    fn merges_into(&self, survivor: String) -> RepoFuture<Vec<MergeInto>>;
    /// Appends `contacts_merged` if the merge rules allow it.
    fn merge(&self, survivor: ContactId, merged: ContactId, by: String)
    -> RepoFuture<MergeOutcome>;
    /// Appends `contact_unmerged` if the rules allow it.
    fn unmerge(&self, merged: ContactId, by: String) -> RepoFuture<UnmergeOutcome>;
}
