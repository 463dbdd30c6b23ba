//! Schema migrations, in one place.
//!
//! [`MIGRATIONS`] is applied by [`SqliteStore::open`](super::SqliteStore::open)
//! (the version lives in SQLite's `user_version`). To change the schema,
//! append an `M::up(include_str!("migrations/NNNN_what.sql"))` at the end of
//! [`MIGRATION_ARRAY`]; never edit or reorder a migration that has shipped
//! (an appliance in the field has already run it). Each migration runs in a
//! transaction together with the `user_version` bump.
//!
//! A database written by a newer release (after a firmware rollback, for
//! instance) is refused with [`StoreError::Migration`](crate::StoreError),
//! never silently used with a schema this build does not know.

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. Version N is `MIGRATION_ARRAY[N-1]`.
pub const MIGRATION_ARRAY: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_event_log.sql")),
    M::up(include_str!("migrations/0002_devices.sql")),
    M::up(include_str!("migrations/0003_appliance_sms.sql")),
    M::up(include_str!("migrations/0004_mgmt_conversations.sql")),
    M::up(include_str!("migrations/0005_routing.sql")),
    M::up(include_str!("migrations/0006_fleet.sql")),
    M::up(include_str!("migrations/0007_web.sql")),
    M::up(include_str!("migrations/0008_fleet_config_commands.sql")),
    M::up(include_str!("migrations/0009_contact_merge.sql")),
    M::up(include_str!("migrations/0010_fleet_list.sql")),
    M::up(include_str!("migrations/0011_fleet_rekey.sql")),
    M::up(include_str!("migrations/0012_event_retention.sql")),
    M::up(include_str!("migrations/0013_sms_reference_reuse.sql")),
    M::up(include_str!("migrations/0014_ingest_trust.sql")),
    M::up(include_str!("migrations/0015_sms_superseded.sql")),
];

/// The migration set [`SqliteStore::open`](super::SqliteStore::open) applies.
pub const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_ARRAY);

/// The schema version this build writes (`user_version` after open).
pub const LATEST_VERSION: usize = MIGRATION_ARRAY.len();
