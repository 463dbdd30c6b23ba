//! Telemetry history (mgmt migrations 4 and 8).

use crate::services::fleet::telemetry::{AGG_KEEP_MS, BUCKET_MS, Point, RAW_KEEP_MS, Sample};
use rusqlite::{Connection, Transaction, params};

/// Stores samples: latest per device (and its lines), raw rows, 5-minute
/// aggregates.
pub(crate) fn store(tx: &Transaction<'_>, samples: &[Sample]) -> rusqlite::Result<()> {
    let mut latest = tx.prepare_cached(
        "INSERT INTO fleet_device (id, telemetry, telemetry_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET telemetry = excluded.telemetry,
             telemetry_ms = excluded.telemetry_ms
         WHERE fleet_device.telemetry_ms IS NULL OR fleet_device.telemetry_ms <= excluded.telemetry_ms",
    )?;
    let mut raw = tx.prepare_cached(
        "INSERT INTO fleet_metric_raw (device, series, at_ms, value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut agg = tx.prepare_cached(
        "INSERT INTO fleet_metric_5m (device, series, bucket_ms, n, sum, min, max)
         VALUES (?1, ?2, ?3, 1, ?4, ?4, ?4)
         ON CONFLICT (device, series, bucket_ms) DO UPDATE SET
             n = n + 1, sum = sum + excluded.sum,
             min = MIN(min, excluded.min), max = MAX(max, excluded.max)",
    )?;
    let mut drop_lines = tx.prepare_cached("DELETE FROM fleet_line WHERE device = ?1")?;
    let mut line = tx.prepare_cached(
        "INSERT OR REPLACE INTO fleet_line (device, line, operator, imei) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for s in samples {
        if latest.execute(params![s.device, s.json, s.at_ms])? > 0 {
            drop_lines.execute([&s.device])?;
            for (l, operator, imei) in &s.lines {
                line.execute(params![s.device, l, operator, imei])?;
            }
        }
        let bucket = s.at_ms - s.at_ms.rem_euclid(BUCKET_MS);
        for (name, v) in &s.series {
            raw.execute(params![s.device, name, s.at_ms, v])?;
            agg.execute(params![s.device, name, bucket, v])?;
        }
    }
    Ok(())
}

/// Drops history past its retention.
pub(crate) fn prune(tx: &Transaction<'_>, now_ms: i64) -> rusqlite::Result<usize> {
    let a = tx.execute(
        "DELETE FROM fleet_metric_raw WHERE at_ms < ?1",
        [now_ms - RAW_KEEP_MS],
    )?;
    let b = tx.execute(
        "DELETE FROM fleet_metric_5m WHERE bucket_ms < ?1",
        [now_ms - AGG_KEEP_MS],
    )?;
    Ok(a + b)
}

/// Series names a device has history for.
pub(crate) fn series_names(conn: &Connection, device: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached(
        "SELECT DISTINCT series FROM fleet_metric_5m WHERE device = ?1 ORDER BY series",
    )?;
    st.query_map([device], |r| r.get(0))?.collect()
}

/// History of one series since `from_ms`: raw samples when the range lies
/// within the raw retention, 5-minute averages otherwise. At most 2000 points.
pub(crate) fn history(
    conn: &Connection,
    device: &str,
    series: &str,
    from_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<Vec<Point>> {
    if from_ms >= now_ms - RAW_KEEP_MS {
        let mut st = conn.prepare_cached(
            "SELECT at_ms, value FROM fleet_metric_raw
             WHERE device = ?1 AND series = ?2 AND at_ms >= ?3 ORDER BY at_ms DESC LIMIT 2000",
        )?;
        let mut v: Vec<Point> = st
            .query_map(params![device, series, from_ms], |r| {
                Ok(Point {
                    at_ms: r.get(0)?,
                    value: r.get(1)?,
                    min: None,
                    max: None,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        v.reverse();
        return Ok(v);
    }
    let mut st = conn.prepare_cached(
        "SELECT bucket_ms, sum / n, min, max FROM fleet_metric_5m
         WHERE device = ?1 AND series = ?2 AND bucket_ms >= ?3 ORDER BY bucket_ms DESC LIMIT 2000",
    )?;
    let mut v: Vec<Point> = st
        .query_map(params![device, series, from_ms], |r| {
            Ok(Point {
                at_ms: r.get(0)?,
                value: r.get(1)?,
                min: Some(r.get(2)?),
                max: Some(r.get(3)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    v.reverse();
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::fleet::telemetry::{Rate, RateLimit, Verdict, sample};
    use crossline_core::{ModemHealth, SystemHealth};
    use crossline_proto::Telemetry;

    fn db() -> Connection {
        crate::storage::sqlite::fleet::db::test_db()
    }

    fn tel(load: f32, dbm: i32) -> Telemetry {
        Telemetry {
            v: 1,
            system: SystemHealth {
                load1: Some(load),
                ..SystemHealth::default()
            },
            modems: vec![ModemHealth {
                line: "gsm0".into(),
                signal_dbm: Some(dbm),
                ..ModemHealth::default()
            }],
        }
    }

    #[test]
    fn telemetry_rate_per_device() {
        let mut r = RateLimit::new(Rate {
            per_min: 60,
            burst: 3,
        });
        // A burst of 3, then one a second; other devices are not affected.
        let kept = |r: &mut RateLimit, dev: &str, at: i64| r.check(dev, at) == Verdict::Keep;
        assert!((0..3).all(|_| kept(&mut r, "a", 0)));
        assert_eq!(r.check("a", 0), Verdict::Drop { report: Some(1) });
        assert!(kept(&mut r, "b", 0));
        for _ in 0..500 {
            assert_eq!(r.check("a", 10), Verdict::Drop { report: None });
        }
        assert!(kept(&mut r, "a", 1010));
        assert!(!kept(&mut r, "a", 1020));
        // The drops are reported once a minute, with their number.
        assert!((0..3).all(|_| kept(&mut r, "a", 60_000)));
        assert_eq!(r.check("a", 60_000), Verdict::Drop { report: Some(502) });
    }

    #[test]
    fn raw_then_five_minute_averages_then_pruned() {
        let mut c = db();
        let day = 24 * 3600 * 1000;
        let t0 = 40 * day;
        let samples: Vec<Sample> = (0..10)
            .map(|i| sample("a", &tel(i as f32, -70 - i), t0 + i64::from(i) * 60_000))
            .collect();
        let tx = c.transaction().unwrap();
        store(&tx, &samples).unwrap();
        tx.commit().unwrap();
        let now = t0 + 10 * 60_000;
        let raw = history(&c, "a", "load1", t0, now).unwrap();
        assert_eq!(raw.len(), 10);
        assert_eq!(raw[3].value, 3.0);
        // Older than a day's range: 5-minute buckets (0..=4 and 5..=9 min).
        let agg = history(&c, "a", "signal_dbm:gsm0", t0 - 2 * day, now).unwrap();
        assert_eq!(agg.len(), 2, "{agg:?}");
        assert_eq!(agg[0].value, -72.0);
        assert_eq!((agg[0].min, agg[0].max), (Some(-74.0), Some(-70.0)));
        assert_eq!(
            series_names(&c, "a").unwrap(),
            vec!["load1".to_string(), "signal_dbm:gsm0".to_string()]
        );
        let latest: i64 = c
            .query_row(
                "SELECT telemetry_ms FROM fleet_device WHERE id = 'a'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(latest, t0 + 9 * 60_000);
        // A day later the raw rows go; 31 days later the aggregates too.
        let tx = c.transaction().unwrap();
        prune(&tx, now + day).unwrap();
        tx.commit().unwrap();
        assert!(
            history(&c, "a", "load1", now, now + day)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            history(&c, "a", "load1", t0 - 2 * day, now + day)
                .unwrap()
                .len(),
            2
        );
        let tx = c.transaction().unwrap();
        prune(&tx, now + 31 * day).unwrap();
        tx.commit().unwrap();
        assert!(
            history(&c, "a", "load1", 0, now + 31 * day)
                .unwrap()
                .is_empty()
        );
    }
}
