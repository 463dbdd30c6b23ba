//! The fleet's tables in SQLite (mgmt migrations 4, 6, 8, 9): the
//! [`FleetRepo`] implementation on [`SqliteStore`].

pub(crate) mod alerts;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod db;
pub(crate) mod rekey;
pub(crate) mod telemetry;

use super::{read, write};
use crate::services::RepoFuture;
use crate::services::fleet::alerts::{Alert, Condition};
use crate::services::fleet::commands::CommandView;
use crate::services::fleet::config::{ConfigState, Target};
use crate::services::fleet::db::{
    Answer, Approval, Enrollment, FleetDevice, FleetError, ListFilter, ListPage, UnknownEvent,
};
use crate::services::fleet::rekey::RekeyView;
use crate::services::fleet::repo::{Due, Facets, FleetRepo, MetaChange, Published};
use crate::services::fleet::telemetry::{Point, Sample};
use crossline_proto::{
    ApplianceSettings, Command, CommandKind, CommandResult, DesiredConfig, EnrollRequest, Rekeyed,
    ReportedConfig,
};
use crossline_store::SqliteStore;

/// A database error inside an operation that may also refuse (the refusal
/// is the caller's [`FleetError`]; the transaction still commits what was
/// done before it, as it always did).
impl From<rusqlite::Error> for FleetError {
    fn from(e: rusqlite::Error) -> Self {
        FleetError::Storage(e.to_string())
    }
}

impl FleetRepo for SqliteStore {
    fn record_enrollment(
        &self,
        id: String,
        req: EnrollRequest,
        now_ms: i64,
        max_pending: u32,
    ) -> RepoFuture<Option<(Answer, bool)>> {
        write(self, move |tx| {
            db::record_request(tx, &id, &req, now_ms, max_pending)
        })
    }

    fn enrollments(&self, state: Option<String>) -> RepoFuture<Vec<Enrollment>> {
        read(self, move |c| db::enrollments(c, state.as_deref()))
    }

    fn pending_enrollments(&self) -> RepoFuture<usize> {
        read(self, db::pending_count)
    }

    fn undelivered_credentials(&self) -> RepoFuture<Vec<(String, String, String)>> {
        read(self, db::undelivered)
    }

    fn credential_delivered(&self, device: String) -> RepoFuture<usize> {
        write(self, move |tx| db::delivered(tx, &device))
    }

    fn approve(
        &self,
        enrollment: String,
        approval: Approval,
        secret: String,
        secret_hash: String,
        now_ms: i64,
    ) -> RepoFuture<Result<(), FleetError>> {
        write(self, move |tx| {
            Ok(db::approve(
                tx,
                &enrollment,
                &approval,
                &secret,
                &secret_hash,
                now_ms,
            ))
        })
    }

    fn reject(&self, enrollment: String, now_ms: i64) -> RepoFuture<Result<(), FleetError>> {
        write(self, move |tx| Ok(db::reject(tx, &enrollment, now_ms)))
    }

    fn set_meta(&self, device: String, m: MetaChange) -> RepoFuture<Result<(), FleetError>> {
        write(self, move |tx| {
            Ok(db::set_meta(
                tx,
                &device,
                m.name.as_deref(),
                m.site.as_deref(),
                m.group.as_deref(),
                m.tags.as_deref(),
            ))
        })
    }

    fn fleet_devices(&self) -> RepoFuture<Vec<FleetDevice>> {
        read(self, db::devices)
    }

    fn fleet_device(&self, id: String) -> RepoFuture<Option<FleetDevice>> {
        read(self, move |c| db::device(c, &id))
    }

    fn device_page(&self, filter: ListFilter) -> RepoFuture<ListPage> {
        read(self, move |c| db::list(c, &filter))
    }

    fn facets(&self) -> RepoFuture<Facets> {
        read(self, db::facets)
    }

    fn mark_silent_offline(&self, silent_since_ms: i64) -> RepoFuture<Vec<String>> {
        write(self, move |tx| db::mark_silent_offline(tx, silent_since_ms))
    }

    fn revoked_devices(&self) -> RepoFuture<Vec<String>> {
        read(self, db::revoked)
    }

    fn unknown_events(&self, device: String, limit: usize) -> RepoFuture<Vec<UnknownEvent>> {
        read(self, move |c| db::unknown_events(c, &device, limit))
    }

    fn push_config(
        &self,
        target: Target,
        settings: ApplianceSettings,
        now_ms: i64,
    ) -> RepoFuture<Result<(u64, Vec<String>), FleetError>> {
        write(self, move |tx| {
            Ok(config::push(tx, &target, &settings, now_ms))
        })
    }

    fn desired_config(&self, device: String) -> RepoFuture<Option<DesiredConfig>> {
        read(self, move |c| config::desired(c, &device))
    }

    fn config_state(&self, device: String) -> RepoFuture<ConfigState> {
        read(self, move |c| config::state(c, &device))
    }

    fn record_reported_config(
        &self,
        device: String,
        reported: ReportedConfig,
        now_ms: i64,
    ) -> RepoFuture<()> {
        write(self, move |tx| {
            config::record_reported(tx, &device, &reported, now_ms)
        })
    }

    fn create_command(
        &self,
        device: String,
        kind: CommandKind,
        now_ms: i64,
    ) -> RepoFuture<Command> {
        write(self, move |tx| commands::create(tx, &device, kind, now_ms))
    }

    fn record_command_result(
        &self,
        device: String,
        result: CommandResult,
        now_ms: i64,
    ) -> RepoFuture<bool> {
        write(self, move |tx| {
            commands::record_result(tx, &device, &result, now_ms)
        })
    }

    fn commands(&self, device: String, limit: usize) -> RepoFuture<Vec<CommandView>> {
        read(self, move |c| commands::list(c, &device, limit))
    }

    fn command(&self, id: String) -> RepoFuture<Option<CommandView>> {
        read(self, move |c| commands::get(c, &id))
    }

    fn create_rekey(
        &self,
        device: String,
        secret: String,
        secret_hash: String,
        now_ms: i64,
    ) -> RepoFuture<RekeyView> {
        write(self, move |tx| {
            rekey::create(tx, &device, &secret, &secret_hash, now_ms)
        })
    }

    fn rekey_state(&self, device: String) -> RepoFuture<Option<RekeyView>> {
        read(self, move |c| rekey::state(c, &device))
    }

    fn record_rekey_answer(
        &self,
        device: String,
        answer: Rekeyed,
        now_ms: i64,
    ) -> RepoFuture<bool> {
        write(self, move |tx| {
            rekey::record_answer(tx, &device, &answer, now_ms)
        })
    }

    fn complete_rekey(&self, device: String, now_ms: i64) -> RepoFuture<bool> {
        write(self, move |tx| rekey::complete(tx, &device, now_ms))
    }

    fn cancel_rekey(&self, device: String) -> RepoFuture<()> {
        write(self, move |tx| rekey::cancel(tx, &device))
    }

    fn pending_rekeys(&self) -> RepoFuture<Vec<(String, String)>> {
        read(self, rekey::pending)
    }

    fn due(&self, device: Option<String>, before_ms: Option<i64>) -> RepoFuture<Due> {
        read(self, move |c| {
            let dev = device.as_deref();
            Ok(Due {
                configs: config::due(c, dev, before_ms)?,
                commands: commands::due(c, dev, before_ms)?,
                rekeys: rekey::due(c, dev, before_ms)?,
            })
        })
    }

    fn mark_published(&self, p: Published, now_ms: i64) -> RepoFuture<()> {
        write(self, move |tx| {
            config::mark_published(tx, &p.configs, now_ms)?;
            rekey::mark_sent(tx, &p.rekeys, now_ms)?;
            commands::mark_sent(tx, &p.commands, now_ms)
        })
    }

    fn store_telemetry(&self, samples: Vec<Sample>) -> RepoFuture<()> {
        write(self, move |tx| telemetry::store(tx, &samples))
    }

    fn prune_telemetry(&self, now_ms: i64) -> RepoFuture<usize> {
        write(self, move |tx| telemetry::prune(tx, now_ms))
    }

    fn series_names(&self, device: String) -> RepoFuture<Vec<String>> {
        read(self, move |c| telemetry::series_names(c, &device))
    }

    fn history(
        &self,
        device: String,
        series: String,
        from_ms: i64,
        now_ms: i64,
    ) -> RepoFuture<Vec<Point>> {
        read(self, move |c| {
            telemetry::history(c, &device, &series, from_ms, now_ms)
        })
    }

    fn reconcile_alerts(&self, now: Vec<Condition>, now_ms: i64) -> RepoFuture<Vec<Alert>> {
        write(self, move |tx| alerts::reconcile(tx, &now, now_ms))
    }

    fn open_alerts(&self) -> RepoFuture<Vec<Alert>> {
        read(self, alerts::open_alerts)
    }

    fn latest_open_alerts(&self, limit: usize) -> RepoFuture<(Vec<Alert>, usize)> {
        read(self, move |c| alerts::open_latest(c, limit))
    }

    fn recent_alerts(&self, device: Option<String>, limit: usize) -> RepoFuture<Vec<Alert>> {
        read(self, move |c| alerts::recent(c, device.as_deref(), limit))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::services::fleet::db::Answer;
    use crossline_core::NodeId;
    use std::sync::Arc;

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        crate::storage::sqlite::test_store(dir)
    }

    /// The fleet's life through the trait object the service holds: an
    /// enrollment approved and picked up, a configuration and a command due
    /// until published, a re-key pending until completed.
    #[tokio::test]
    async fn the_fleet_lifecycle_through_the_repository_trait() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let repo: Arc<dyn FleetRepo> = Arc::new(store.clone());
        let req = EnrollRequest {
            v: 1,
            serial: Some("SN1".into()),
            macs: vec![],
            imeis: vec!["350000000000001".into()],
            hostname: None,
            software: "1.0".into(),
        };
        let (answer, new) = repo
            .record_enrollment("e1".into(), req.clone(), 10, 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((answer, new), (Answer::Pending, true));
        assert_eq!(repo.pending_enrollments().await.unwrap(), 1);
        let approval = Approval {
            device: "branch-1".into(),
            name: Some("Kyiv 1".into()),
            tags: vec!["north".into()],
            ..Approval::default()
        };
        repo.approve(
            "e1".into(),
            approval.clone(),
            "s3cret".into(),
            "$h".into(),
            20,
        )
        .await
        .unwrap()
        .unwrap();
        // A second approval of the same enrollment is refused, not an error of the store.
        assert!(matches!(
            repo.approve("e1".into(), approval, "x".into(), "$x".into(), 21)
                .await
                .unwrap(),
            Err(FleetError::AlreadyDecided { .. })
        ));
        assert_eq!(
            repo.undelivered_credentials().await.unwrap(),
            [("e1".into(), "branch-1".into(), "s3cret".into())]
        );
        assert_eq!(
            repo.credential_delivered("branch-1".into()).await.unwrap(),
            1
        );
        assert!(repo.undelivered_credentials().await.unwrap().is_empty());
        let d = repo.fleet_device("branch-1".into()).await.unwrap().unwrap();
        assert_eq!(d.name.as_deref(), Some("Kyiv 1"));

        let (version, devices) = repo
            .push_config(
                Target::Tag("north".into()),
                ApplianceSettings::default(),
                30,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(devices, ["branch-1"]);
        let cmd = repo
            .create_command("branch-1".into(), CommandKind::Reboot, 31)
            .await
            .unwrap();
        let due = repo.due(None, None).await.unwrap();
        assert_eq!(due.configs.len(), 1);
        assert_eq!(due.commands.len(), 1);
        repo.mark_published(
            Published {
                configs: vec![("branch-1".into(), version)],
                rekeys: vec![],
                commands: vec![cmd.id.to_string()],
            },
            40,
        )
        .await
        .unwrap();
        let due = repo.due(None, Some(40)).await.unwrap();
        assert!(due.configs.is_empty() && due.commands.is_empty());
        assert_eq!(
            repo.commands("branch-1".into(), 10).await.unwrap()[0].sent_ms,
            Some(40)
        );

        repo.create_rekey("branch-1".into(), "new".into(), "$new".into(), 50)
            .await
            .unwrap();
        assert_eq!(
            repo.pending_rekeys().await.unwrap(),
            [("branch-1".into(), "$new".into())]
        );
        assert!(repo.complete_rekey("branch-1".into(), 60).await.unwrap());
        assert!(repo.pending_rekeys().await.unwrap().is_empty());
        let rec =
            crossline_store::DeviceRegistry::device(&store, &NodeId::new("branch-1").unwrap())
                .unwrap()
                .unwrap();
        assert_eq!(rec.secret_hash, "$new");
    }
}
