//! Migrations per database: fresh schemas, databases of the combined list
//! (releases before the split), and the rollback rule.

use super::migrations::{
    APPLIANCE, BASE, COMBINED_LATEST, List, ListVersion, MGMT, build_combined, combined_version,
    migrate, versions,
};
use super::*;
use crate::EventLog;
use crossline_core::{EventBody, EventId};

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn open(path: &Path, schema: Schema) -> Result<SqliteStore> {
    SqliteStore::open_with(
        path,
        node("local"),
        StoreOptions {
            schema,
            ..StoreOptions::default()
        },
    )
}

/// Builds a database the way releases before the split did: combined
/// migrations 1..=`upto`, each in its own transaction with its
/// `user_version`. Combined migration N is the SQL of the list migrations
/// `COMBINED[N-1]` names, in that order (13 and 14 were one file each, the
/// appliance's / base's half first).
fn combined(conn: &Connection, upto: u32) {
    build_combined(conn, upto).unwrap();
}

fn tables(conn: &Connection) -> Vec<String> {
    let mut st = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

fn user_version(conn: &Connection) -> u32 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Migrations a list got after the split (none existed in the combined list).
fn since_split(list: &List) -> u32 {
    match list.name {
        // 4: the events' local positions.
        "base" => 1,
        // 12: notes, tags, merges and routing configs as events;
        // 13: a contact identity may be a channel's handle;
        // 14: the log's consumers (change sets, cursors);
        // 15: calls;
        // 16: the timeline's integer keys.
        "mgmt" => 5,
        _ => 0,
    }
}

/// `user_version` after migrating to `schema`: releases before the split
/// may open it (15) only while no list went beyond them with a migration
/// that does not keep readers (mgmt 12 does not: they would write notes and
/// tags without events).
fn user_version_of(schema: Schema) -> u32 {
    match schema {
        Schema::Mgmt => COMBINED_LATEST + 1,
        _ => COMBINED_LATEST,
    }
}

fn row(list: &List, version: u32, readable_from: u32) -> ListVersion {
    ListVersion {
        list: list.name.to_string(),
        version,
        readable_from,
    }
}

#[test]
fn the_combined_list_maps_onto_every_migration_of_every_list() {
    for list in [&BASE, &APPLIANCE, &MGMT] {
        assert_eq!(
            combined_version(list, COMBINED_LATEST) + since_split(list),
            list.latest(),
            "{}",
            list.name
        );
        assert!(!list.migrations[0].keeps_readers, "{}", list.name);
    }
    assert_eq!(combined_version(&MGMT, 12), 9);
    assert_eq!(combined_version(&APPLIANCE, 12), 1);
    assert_eq!(combined_version(&BASE, 12), 2);
}

#[test]
fn a_fresh_appliance_database_has_no_mgmt_table_and_the_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let appl = dir.path().join("appliance.db");
    let mgmt = dir.path().join("mgmt.db");
    open(&appl, Schema::Appliance).unwrap().close().unwrap();
    open(&mgmt, Schema::Mgmt).unwrap().close().unwrap();

    let conn = Connection::open(&appl).unwrap();
    let t = tables(&conn);
    for want in [
        "event",
        "replica",
        "outbox_cursor",
        "appl_sms_in",
        "appl_command",
    ] {
        assert!(t.iter().any(|n| n == want), "{want} missing from {t:?}");
    }
    for mgmt_table in [
        "device",
        "conversation",
        "web_user",
        "fleet_device",
        "routing_config",
    ] {
        assert!(!t.iter().any(|n| n == mgmt_table), "{mgmt_table} in {t:?}");
    }
    assert_eq!(
        versions(&conn).unwrap(),
        [row(&APPLIANCE, 3, 2), row(&BASE, 4, 1)]
    );
    // Releases before the split (combined version 15) can still open it.
    assert_eq!(user_version(&conn), COMBINED_LATEST);

    let conn = Connection::open(&mgmt).unwrap();
    let t = tables(&conn);
    for want in [
        "event",
        "device",
        "conversation",
        "web_user",
        "command_device",
        "call",
        "call_device",
    ] {
        assert!(t.iter().any(|n| n == want), "{want} missing from {t:?}");
    }
    assert!(!t.iter().any(|n| n.starts_with("appl_")), "{t:?}");
    assert_eq!(
        versions(&conn).unwrap(),
        [row(&BASE, 4, 1), row(&MGMT, 16, 16)]
    );
}

/// Every object (table, index, trigger) of a fresh database, with its SQL.
fn objects(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut st = conn
        .prepare(
            "SELECT type, name, sql FROM sqlite_master
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn a_database_of_every_combined_version_upgrades_to_the_fresh_schema() {
    for schema in [Schema::Appliance, Schema::Mgmt] {
        let mut fresh = Connection::open_in_memory().unwrap();
        migrate(&mut fresh, schema, "fresh").unwrap();
        let want = objects(&fresh);
        for v in 0..=COMBINED_LATEST {
            let mut old = Connection::open_in_memory().unwrap();
            combined(&old, v);
            migrate(&mut old, schema, "old").unwrap();
            let got = objects(&old);
            for o in &want {
                assert!(
                    got.contains(o),
                    "{schema:?} from combined version {v}: {o:?} differs or is missing"
                );
            }
            for list in schema.lists() {
                let r = versions(&old).unwrap();
                let r = r.iter().find(|r| r.list == list.name).unwrap();
                assert_eq!(r.version, list.latest(), "{schema:?} from {v}");
                assert_eq!(r.readable_from, list.readable_from(list.latest()));
            }
            assert_eq!(user_version(&old), user_version_of(schema));
        }
    }
}

#[tokio::test]
async fn an_appliance_database_of_the_combined_list_upgrades_without_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.db");
    let id = EventId::new();
    {
        // Combined version 12: before the sent parts got their own table.
        let conn = Connection::open(&path).unwrap();
        combined(&conn, 12);
        conn.execute(
            "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body)
             VALUES ('local', 1, ?1, 100, 0, NULL, 'device_heartbeat',
                     '{\"type\":\"device_heartbeat\",\"uptime_s\":7}')",
            [&id.0.as_bytes()[..]],
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO replica (origin, contiguous) VALUES ('local', 1);
             INSERT INTO outbox_cursor (peer, acked) VALUES ('mgmt', 1);
             INSERT INTO appl_sms_in (line, key, seq) VALUES ('gsm0', 'k1', 1);
             INSERT INTO appl_sms_part (line, mr, command, part) VALUES ('gsm0', 7, 'c1', 1);",
        )
        .unwrap();
    }
    let store = open(&path, Schema::Appliance).unwrap();
    let old = store.read_from(&node("local"), 1, 10).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].id, id);
    assert_eq!(old[0].body, EventBody::DeviceHeartbeat { uptime_s: 7 });
    let next = store
        .append(vec![crate::NewEvent {
            conversation: None,
            body: EventBody::DeviceHeartbeat { uptime_s: 8 },
        }])
        .await
        .unwrap();
    assert_eq!(next[0].seq, 2);
    assert!(next[0].at > Hlc { ms: 100, c: 0 });
    let (acked, dedup, waiting, vs, uv) = store
        .read(|c| {
            Ok((
                c.query_row("SELECT acked FROM outbox_cursor", [], |r| {
                    r.get::<_, u64>(0)
                })?,
                c.query_row("SELECT key FROM appl_sms_in", [], |r| r.get::<_, String>(0))?,
                c.query_row(
                    "SELECT command || '/' || part || '@' || mr FROM appl_sms_sent_part",
                    [],
                    |r| r.get::<_, String>(0),
                )?,
                versions(c)?,
                c.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        (acked, dedup.as_str(), waiting.as_str()),
        (1, "k1", "c1/1@7")
    );
    // It held mgmt's tables up to combined 12 (mgmt 9): recorded, kept, not migrated.
    assert_eq!(
        vs,
        [row(&APPLIANCE, 3, 2), row(&BASE, 4, 1), row(&MGMT, 9, 8)]
    );
    assert_eq!(uv, COMBINED_LATEST);
}

#[tokio::test]
async fn an_mgmt_database_of_the_combined_list_upgrades_without_losing_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mgmt.db");
    {
        // Combined version 13: before command_device.
        let conn = Connection::open(&path).unwrap();
        combined(&conn, 13);
        conn.execute_batch(
            "INSERT INTO device (id, secret_hash, created_ms) VALUES ('branch-1', '$h', 5);
             INSERT INTO web_user (login, name, role, password_hash, agent_id, created_ms)
                 VALUES ('ann', 'Ann', 'agent', '$argon2id$x', 'ann', 1);
             INSERT INTO pending_command (id, device, payload, created_ms)
                 VALUES ('cmd-1', 'branch-1', '{}', 9);",
        )
        .unwrap();
    }
    let store = open(&path, Schema::Mgmt).unwrap();
    let (device, user, command_device) = store
        .read(|c| {
            Ok((
                c.query_row("SELECT secret_hash FROM device", [], |r| {
                    r.get::<_, String>(0)
                })?,
                c.query_row("SELECT login FROM web_user", [], |r| r.get::<_, String>(0))?,
                c.query_row(
                    "SELECT device FROM command_device WHERE command = 'cmd-1'",
                    [],
                    |r| r.get::<_, String>(0),
                )?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(
        (device.as_str(), user.as_str(), command_device.as_str()),
        ("$h", "ann", "branch-1")
    );
    let d = crate::DeviceRegistry::device(&store, &node("branch-1")).unwrap();
    assert_eq!(d.map(|d| d.created_ms), Some(5));
}

/// A database written by a newer build: `list` one version ahead of this
/// build, with `readable_from` as given, and a table only that build knows.
fn from_a_newer_build(path: &Path, schema: Schema, list: &List, readable_from: u32) {
    open(path, schema).unwrap().close().unwrap();
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE appl_future (x INTEGER)")
        .unwrap();
    conn.execute(
        "UPDATE schema_version SET version = ?2, readable_from = ?3 WHERE list = ?1",
        rusqlite::params![list.name, list.latest() + 1, readable_from],
    )
    .unwrap();
}

#[tokio::test]
async fn a_newer_database_that_keeps_readers_opens_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.db");
    from_a_newer_build(&path, Schema::Appliance, &APPLIANCE, 2);
    let store = open(&path, Schema::Appliance).unwrap();
    let evs = store
        .append(vec![crate::NewEvent {
            conversation: None,
            body: EventBody::DeviceHeartbeat { uptime_s: 1 },
        }])
        .await
        .unwrap();
    assert_eq!(evs[0].seq, 1);
    let vs = store.read(versions).await.unwrap();
    // Not downgraded: the newer build finds its version when it comes back.
    assert_eq!(vs, [row(&APPLIANCE, 4, 2), row(&BASE, 4, 1)]);
}

#[test]
fn a_newer_database_this_build_cannot_read_is_refused_saying_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.db");
    from_a_newer_build(&path, Schema::Appliance, &APPLIANCE, 4);
    let err = open(&path, Schema::Appliance).err().expect("refused");
    assert!(matches!(err, StoreError::Schema { .. }), "{err}");
    let msg = err.to_string();
    for want in [
        path.display().to_string().as_str(),
        "appliance schema is at version 4",
        "appliance version 4 or later",
        "knows appliance versions up to 3",
        "Run a release that knows appliance schema version 4",
        "restore a backup",
    ] {
        assert!(msg.contains(want), "{want:?} not in: {msg}");
    }
    // Nothing was changed by the refusal.
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        versions(&conn).unwrap(),
        [row(&APPLIANCE, 4, 4), row(&BASE, 4, 1)]
    );
}

#[test]
fn a_schema_beyond_what_the_combined_list_reads_makes_its_releases_refuse_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.db");
    from_a_newer_build(&path, Schema::Appliance, &APPLIANCE, 4);
    // A tool (base schema only) opens it and writes user_version for the rows it finds.
    open(&path, Schema::Base).unwrap().close().unwrap();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(user_version(&conn), COMBINED_LATEST + 1);
}

#[test]
fn the_other_programs_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mgmt.db");
    open(&path, Schema::Mgmt).unwrap().close().unwrap();
    let err = open(&path, Schema::Appliance).err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("mgmt.db"), "{msg}");
    assert!(msg.contains("it is a crossline-mgmt database"), "{msg}");
    // The event log alone may be read by a tool.
    open(&path, Schema::Base).unwrap().close().unwrap();
}

#[test]
fn a_failed_migration_changes_nothing_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appliance.db");
    open(&path, Schema::Base).unwrap().close().unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE appl_command (x)")
        .unwrap();
    let err = open(&path, Schema::Appliance).err().expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("appliance migration 1 (0001_sms.sql) failed"),
        "{msg}"
    );
    let conn = Connection::open(&path).unwrap();
    assert_eq!(versions(&conn).unwrap(), [row(&BASE, 4, 1)]);
    assert!(!tables(&conn).iter().any(|t| t == "appl_sms_in"));
}

#[test]
fn an_unknown_user_version_without_versions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = open(&path, Schema::Mgmt).err().expect("refused");
    assert!(matches!(err, StoreError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("new.db"), "{err}");
    assert!(err.to_string().contains("version is 99"), "{err}");
}

#[test]
fn contact_identities_survive_the_handle_migration_and_a_handle_is_accepted() {
    let mut conn = Connection::open_in_memory().unwrap();
    combined(&conn, COMBINED_LATEST);
    conn.execute_batch(
        "INSERT INTO contact (id, created_ms) VALUES ('k1', 1);
         INSERT INTO contact_identity (kind, address, contact_id) VALUES ('phone', '+380501234567', 'k1');",
    )
    .unwrap();
    // Before: a handle is refused by the CHECK.
    assert!(
        conn.execute(
            "INSERT INTO contact_identity (kind, address, contact_id) VALUES ('handle', 'chat:v1', 'k1')",
            [],
        )
        .is_err()
    );
    migrate(&mut conn, Schema::Mgmt, "old").unwrap();
    conn.execute(
        "INSERT INTO contact_identity (kind, address, contact_id) VALUES ('handle', 'chat:v1', 'k1')",
        [],
    )
    .unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT kind, address FROM contact_identity WHERE contact_id = 'k1' ORDER BY kind")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("handle".to_string(), "chat:v1".to_string()),
            ("phone".to_string(), "+380501234567".to_string())
        ]
    );
    // Still refused: a kind no build knows.
    assert!(
        conn.execute(
            "INSERT INTO contact_identity (kind, address, contact_id) VALUES ('fax', '1', 'k1')",
            [],
        )
        .is_err()
    );
}

#[tokio::test]
async fn existing_events_get_positions_in_the_order_they_were_stored() {
    use crate::Feed;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let ids: Vec<EventId> = (0..3).map(|_| EventId::new()).collect();
    {
        let conn = Connection::open(&path).unwrap();
        combined(&conn, COMBINED_LATEST);
        // Stored out of seq order across origins: the position is the
        // order of storing, not of origin or stamp.
        for (i, (origin, seq, at)) in [("b", 1, 300), ("a", 1, 100), ("b", 2, 200)]
            .into_iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO event (origin, seq, id, at_ms, at_c, conversation, kind, body)
                 VALUES (?1, ?2, ?3, ?4, 0, NULL, 'device_heartbeat', ?5)",
                rusqlite::params![
                    origin,
                    seq,
                    &ids[i].0.as_bytes()[..],
                    at,
                    format!("{{\"type\":\"device_heartbeat\",\"uptime_s\":{i}}}")
                ],
            )
            .unwrap();
        }
    }
    let store = open(&path, Schema::Mgmt).unwrap();
    assert_eq!(*store.head().borrow(), 3);
    let feed = store.read_feed(0, 10).await.unwrap();
    let got: Vec<(u64, EventId)> = feed.iter().map(|e| (e.pos, e.event.id)).collect();
    assert_eq!(got, vec![(1, ids[0]), (2, ids[1]), (3, ids[2])]);
    // Still immutable after the table was rebuilt; appends go on after it.
    let err = store
        .write(|tx| tx.execute("UPDATE event SET kind = 'x'", []))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");
    store
        .append(vec![crate::NewEvent {
            conversation: None,
            body: EventBody::DeviceHeartbeat { uptime_s: 9 },
        }])
        .await
        .unwrap();
    let feed = store.read_feed(3, 10).await.unwrap();
    assert_eq!(feed.len(), 1);
    assert_eq!(feed[0].pos, 4);
}
