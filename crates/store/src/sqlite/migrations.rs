//! Schema migrations, per database.
//!
//! # Three lists
//!
//! * [`BASE`]: what every database holds: the event log, replication state
//!   (`replica`), the outbox cursor and retention marks. Files in
//!   `migrations/base/`.
//! * [`APPLIANCE`]: the appliance's own tables (`appl_*`, the SMS loop).
//!   Files in `migrations/appliance/`.
//! * [`MGMT`]: mgmt's own tables (devices, conversations, fleet, users, ...).
//!   Files in `migrations/mgmt/`.
//!
//! [`SqliteStore::open`](super::SqliteStore::open) applies the base list and
//! the list of its [`Schema`] ([`StoreOptions::schema`](super::StoreOptions)):
//! base first, then its own, so an own-list migration may use base tables but
//! never the other way round. A fresh appliance database has no mgmt table
//! and a fresh mgmt database no appliance table, and an mgmt-only migration
//! does not change the appliance's schema version.
//!
//! To change a schema, append a [`Migration`] to the end of its list (and a
//! file to its directory); never edit or reorder a migration that has shipped
//! (an appliance in the field has already run it).
//!
//! # Where the versions live
//!
//! Table `schema_version(list, version, readable_from)`: per list the
//! database holds, how many of its migrations ran, and the lowest version of
//! that list a build must know to use the database (see below). All pending
//! migrations of an open run in one transaction with the rows that record
//! them: a failed migration leaves the database as it was.
//!
//! # The rollback rule
//!
//! Each migration says whether builds that know only the versions before it
//! can still use a database it was applied to ([`Migration::keeps_readers`]):
//! it only adds what older code ignores (a table it never reads, a column
//! that may stay NULL, an index), and what an older build writes meanwhile
//! leaves the database right for the newer one too. One that keeps readers
//! leaves `readable_from` as it was; any other sets it to its own version.
//! So a build that knows versions up to B of a list, opening a database at
//! version D of it:
//!
//! * D ≤ B: migrates it to B;
//! * D > B and `readable_from` ≤ B: uses it as it is (a firmware rollback
//!   after additive migrations keeps working; nothing is downgraded);
//! * D > B and `readable_from` > B: refuses it ([`StoreError::Schema`]), naming
//!   the file, its version, the version this build knows and what to do
//!   (run a release that knows the version, or restore a backup this release
//!   made).
//!
//! A database of the other program (an mgmt database opened by the
//! appliance, or the reverse) is refused too.
//!
//! # Databases from the combined list
//!
//! Releases before the split ran one list of 15 migrations on both databases
//! and kept its version in SQLite's `user_version` (so an appliance database
//! also holds mgmt's tables, and the reverse). [`COMBINED`] says which list
//! each of those migrations became (13 and 14 were split in two); a database
//! with `user_version` 1 to 15 and no `schema_version` table gets a row per
//! list at the version its combined version stands for, then is migrated as
//! any other. Its rows and the other program's tables stay (nothing is
//! dropped).
//!
//! `user_version` keeps meaning something to those releases: this code sets
//! it to 15 while every list's `readable_from` is within what the combined
//! list had (so the last combined release can still open the database after a
//! rollback), and to 16 once a migration that does not keep readers goes
//! beyond it (they refuse 16 as "too new").

use crate::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Which database a store opens: decides the migration lists applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schema {
    /// Only the base list: tools, benchmarks and tests that need the event
    /// log alone. Opens a database of either program without checking its kind.
    #[default]
    Base,
    /// The appliance's database: base + [`APPLIANCE`].
    Appliance,
    /// mgmt's database: base + [`MGMT`]. [`DeviceRegistry`](crate::DeviceRegistry)
    /// needs it (the `device` table is mgmt's).
    Mgmt,
}

impl Schema {
    /// The lists this schema applies, in order.
    pub fn lists(self) -> &'static [&'static List] {
        match self {
            Schema::Base => &[&BASE],
            Schema::Appliance => &[&BASE, &APPLIANCE],
            Schema::Mgmt => &[&BASE, &MGMT],
        }
    }

    /// The other program's list, whose presence (without this one's) means
    /// the file is the other program's database.
    fn foreign(self) -> Option<&'static List> {
        match self {
            Schema::Base => None,
            Schema::Appliance => Some(&MGMT),
            Schema::Mgmt => Some(&APPLIANCE),
        }
    }

    fn own(self) -> Option<&'static List> {
        match self {
            Schema::Base => None,
            Schema::Appliance => Some(&APPLIANCE),
            Schema::Mgmt => Some(&MGMT),
        }
    }
}

/// One migration of a list.
#[derive(Debug)]
pub struct Migration {
    /// Its file name (for messages).
    pub name: &'static str,
    pub sql: &'static str,
    /// Builds that know only the earlier versions can still use a database
    /// this migration was applied to (see the module's rollback rule).
    pub keeps_readers: bool,
}

/// A named, ordered list of migrations. Version N is `migrations[N-1]`.
#[derive(Debug)]
pub struct List {
    /// Its name in `schema_version.list`.
    pub name: &'static str,
    pub migrations: &'static [Migration],
}

impl List {
    /// The version this build writes.
    pub fn latest(&self) -> u32 {
        u32::try_from(self.migrations.len()).unwrap_or(u32::MAX)
    }

    /// `readable_from` after the first `version` migrations.
    pub fn readable_from(&self, version: u32) -> u32 {
        let mut floor = 0;
        for (n, m) in (1..=version).zip(self.migrations) {
            if !m.keeps_readers {
                floor = n;
            }
        }
        floor
    }
}

macro_rules! migration {
    ($dir:literal, $file:literal, $keeps:expr) => {
        Migration {
            name: $file,
            sql: include_str!(concat!("migrations/", $dir, "/", $file)),
            keeps_readers: $keeps,
        }
    };
}

/// Every database: event log, replication state, outbox cursor, retention.
pub const BASE: List = List {
    name: "base",
    migrations: &[
        migration!("base", "0001_event_log.sql", false),
        migration!("base", "0002_event_retention.sql", true),
        migration!("base", "0003_claimed_stamp.sql", true),
        migration!("base", "0004_event_position.sql", true),
    ],
};

/// The appliance's tables.
pub const APPLIANCE: List = List {
    name: "appliance",
    migrations: &[
        migration!("appliance", "0001_sms.sql", false),
        // Drops appl_sms_part, which version 1 uses.
        migration!("appliance", "0002_sms_reference_reuse.sql", false),
        migration!("appliance", "0003_sms_superseded.sql", true),
    ],
};

/// mgmt's tables. A migration creating a table mgmt keeps up to date
/// (a projection) does not keep readers: an older build would not maintain it.
pub const MGMT: List = List {
    name: "mgmt",
    migrations: &[
        migration!("mgmt", "0001_devices.sql", false),
        migration!("mgmt", "0002_conversations.sql", false),
        migration!("mgmt", "0003_routing.sql", true),
        migration!("mgmt", "0004_fleet.sql", false),
        migration!("mgmt", "0005_web.sql", true),
        migration!("mgmt", "0006_fleet_config_commands.sql", false),
        migration!("mgmt", "0007_contact_merge.sql", true),
        migration!("mgmt", "0008_fleet_list.sql", false),
        migration!("mgmt", "0009_fleet_rekey.sql", true),
        migration!("mgmt", "0010_reply_reason.sql", true),
        migration!("mgmt", "0011_command_device.sql", false),
        // Notes, tags, merges and routing configs become projections of
        // events; an older build would write them without events.
        migration!("mgmt", "0012_agent_facts_in_the_log.sql", false),
        migration!("mgmt", "0013_identity_handle.sql", true),
        // The change sets and cursors of the log's consumers.
        migration!("mgmt", "0014_feed.sql", true),
        // Calls: projections (and the gate's call_device) an older build
        // would not maintain.
        migration!("mgmt", "0015_calls.sql", false),
        // The timeline's index by integer keys; an older build would insert
        // entries without their conversation's number.
        migration!("mgmt", "0016_timeline_keys.sql", false),
    ],
};

/// Every list, for lookups by name.
const LISTS: [&List; 3] = [&BASE, &APPLIANCE, &MGMT];

/// The combined list of releases before the split: `COMBINED[N-1]` names the
/// lists that combined migration N added one migration to, in order (13 and
/// 14 were split in two).
pub const COMBINED: [&[&List]; 15] = [
    &[&BASE],             // 1 event log
    &[&MGMT],             // 2 devices
    &[&APPLIANCE],        // 3 appliance sms
    &[&MGMT],             // 4 conversations
    &[&MGMT],             // 5 routing
    &[&MGMT],             // 6 fleet
    &[&MGMT],             // 7 web
    &[&MGMT],             // 8 fleet config, commands
    &[&MGMT],             // 9 contact merge
    &[&MGMT],             // 10 fleet list
    &[&MGMT],             // 11 fleet rekey
    &[&BASE],             // 12 event retention
    &[&APPLIANCE, &MGMT], // 13 sms reference reuse + reply reason
    &[&BASE, &MGMT],      // 14 claimed stamp + command_device
    &[&APPLIANCE],        // 15 sms superseded
];

/// The last `user_version` of the combined list.
pub const COMBINED_LATEST: u32 = 15;

/// `user_version` of a database the combined list's releases must refuse.
const COMBINED_REFUSES: u32 = COMBINED_LATEST + 1;

/// Builds the schema a release before the split left: the combined list's
/// migrations 1 to `upto` (at most [`COMBINED_LATEST`]), with `user_version`
/// set as they set it. For upgrade tests (of the store and of each
/// program's data); a running program never needs it.
pub fn build_combined(conn: &Connection, upto: u32) -> rusqlite::Result<()> {
    let mut next: [(&List, usize); 3] = [(&BASE, 0), (&APPLIANCE, 0), (&MGMT, 0)];
    for (v, parts) in (1..=upto).zip(COMBINED) {
        let mut sql = String::new();
        for part in parts {
            if let Some((list, n)) = next.iter_mut().find(|(l, _)| l.name == part.name) {
                if let Some(m) = list.migrations.get(*n) {
                    sql.push_str(m.sql);
                    sql.push('\n');
                }
                *n += 1;
            }
        }
        conn.execute_batch(&format!(
            "BEGIN;\n{sql}\nPRAGMA user_version = {v};\nCOMMIT;"
        ))?;
    }
    Ok(())
}

/// How many migrations of `list` combined version `version` stands for.
pub fn combined_version(list: &List, version: u32) -> u32 {
    let n = usize::try_from(version).unwrap_or(usize::MAX);
    let count = COMBINED
        .iter()
        .take(n)
        .flat_map(|lists| lists.iter())
        .filter(|l| l.name == list.name)
        .count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// One row of `schema_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListVersion {
    pub list: String,
    pub version: u32,
    pub readable_from: u32,
}

/// The rows of `schema_version` (empty for a database without the table).
pub fn versions(conn: &Connection) -> rusqlite::Result<Vec<ListVersion>> {
    if !has_version_table(conn)? {
        return Ok(Vec::new());
    }
    let mut st =
        conn.prepare("SELECT list, version, readable_from FROM schema_version ORDER BY list")?;
    st.query_map([], |r| {
        Ok(ListVersion {
            list: r.get(0)?,
            version: r.get(1)?,
            readable_from: r.get(2)?,
        })
    })?
    .collect()
}

fn has_version_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

const VERSION_TABLE: &str = "CREATE TABLE schema_version (
    list          TEXT    PRIMARY KEY,
    version       INTEGER NOT NULL CHECK (version >= 0),
    readable_from INTEGER NOT NULL CHECK (readable_from >= 0)
) WITHOUT ROWID";

/// Brings the database on `conn` (file `db`, for messages) to `schema`'s
/// latest versions, or refuses it (see the module's rollback rule). Runs in
/// one transaction.
pub fn migrate(conn: &mut Connection, schema: Schema, db: &str) -> Result<()> {
    let sql = |source| StoreError::Sqlite {
        path: db.to_string(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    if !has_version_table(&tx).map_err(sql)? {
        let combined: u32 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        if combined > COMBINED_LATEST {
            return Err(StoreError::Schema {
                path: db.to_string(),
                detail: format!(
                    "its schema version is {combined} and it has no schema_version table: no \
                     release of Crossline writes that, so it is not a Crossline database or it \
                     is damaged. Check the path in the configuration, or move the file aside to \
                     start with an empty database"
                ),
            });
        }
        tx.execute_batch(VERSION_TABLE).map_err(sql)?;
        if combined > 0 {
            // Written by the combined list: it holds every list's tables up
            // to where that version had them.
            for list in LISTS {
                let v = combined_version(list, combined);
                put_version(&tx, list, v, list.readable_from(v)).map_err(sql)?;
            }
            tracing::info!(
                db,
                combined,
                "database from the combined migration list adopted"
            );
        }
    }
    let rows = versions(&tx).map_err(sql)?;
    let row = |list: &List| rows.iter().find(|r| r.list == list.name);
    if let (Some(foreign), Some(own)) = (schema.foreign(), schema.own())
        && row(foreign).is_some()
        && row(own).is_none()
    {
        return Err(StoreError::Schema {
            path: db.to_string(),
            detail: format!(
                "it is a crossline-{} database (it has the {} schema, not the {} one); this \
                 program keeps its own database. Check the database path in the configuration",
                foreign.name, foreign.name, own.name
            ),
        });
    }
    for list in schema.lists() {
        let (at, floor) = row(list).map_or((0, 0), |r| (r.version, r.readable_from));
        let known = list.latest();
        if at > known {
            if floor <= known {
                tracing::warn!(
                    db,
                    list = list.name,
                    version = at,
                    readable_from = floor,
                    known,
                    "database written by a newer release: used as it is (its newer migrations \
                     keep older readers)"
                );
                continue;
            }
            return Err(StoreError::Schema {
                path: db.to_string(),
                detail: format!(
                    "its {list} schema is at version {at}, which only builds that know {list} \
                     version {floor} or later can use; this build knows {list} versions up to \
                     {known}. Run a release that knows {list} schema version {at} (the one that \
                     wrote it, or newer), or restore a backup of this file made by this release",
                    list = list.name
                ),
            });
        }
        if at == known {
            continue;
        }
        let mut floor = floor;
        for (n, m) in (1..=known)
            .zip(list.migrations)
            .skip(usize::try_from(at).unwrap_or(usize::MAX))
        {
            tx.execute_batch(m.sql).map_err(|e| StoreError::Schema {
                path: db.to_string(),
                detail: format!(
                    "{} migration {n} ({}) failed: {e}. Nothing was changed (the database \
                     stays at {} version {at}); keep the file for a bug report",
                    list.name, m.name, list.name
                ),
            })?;
            if !m.keeps_readers {
                floor = n;
            }
        }
        put_version(&tx, list, known, floor).map_err(sql)?;
    }
    let rows = versions(&tx).map_err(sql)?;
    let combined_reads = rows.iter().all(|r| {
        LISTS
            .iter()
            .find(|l| l.name == r.list)
            .is_some_and(|l| r.readable_from <= combined_version(l, COMBINED_LATEST))
    });
    let user_version = if combined_reads {
        COMBINED_LATEST
    } else {
        COMBINED_REFUSES
    };
    let current: u32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql)?;
    if current != user_version {
        tx.pragma_update(None, "user_version", user_version)
            .map_err(sql)?;
    }
    tx.commit().map_err(sql)
}

fn put_version(
    conn: &Connection,
    list: &List,
    version: u32,
    readable_from: u32,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO schema_version (list, version, readable_from) VALUES (?1, ?2, ?3)
         ON CONFLICT (list) DO UPDATE SET version = excluded.version,
                                          readable_from = excluded.readable_from",
        params![list.name, version, readable_from],
    )
    .map(|_| ())
}
