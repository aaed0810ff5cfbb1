//! The store cases on a database of their own, and what only PostgreSQL has: the change feed
//! between replicas, its resync after a lost connection, versioned migrations.

use super::admission::lock_key;
use super::test_db::TestDatabase;
use super::*;

async fn open() -> Option<(Arc<dyn Store>, TestDatabase)> {
    let db = TestDatabase::create("store").await?;
    let store = PostgresStore::connect(&db.options(4))
        .await
        .expect("connect");
    Some((Arc::new(store), db))
}

store_conformance_cases!(open);

/// The next change on `feed` other than a resync, within a second.
async fn next_change(feed: &mut broadcast::Receiver<Change>) -> Change {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let change = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("a change within one second")
            .expect("the feed is open");
        if change != Change::Resync {
            return change;
        }
    }
}

/// Waits until the store's feed is listening (it resyncs then).
async fn listening(store: &PostgresStore) {
    for _ in 0..100 {
        if store.listening() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the change feed did not start listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_through_one_replica_reach_the_other() {
    let Some(db) = TestDatabase::create("feed").await else {
        return;
    };
    let options = db.options(2);
    let (one, two) = tokio::join!(
        PostgresStore::connect(&options),
        PostgresStore::connect(&options)
    );
    let (one, two) = (one.expect("replica one"), two.expect("replica two"));
    let mut feed = two.changes().expect("PostgreSQL has a change feed");
    listening(&two).await;
    one.set_kill_switch(&KillSwitch {
        tenant: None,
        scope: KillScope::Global,
        reason: "incident".into(),
        set_by: "admin".into(),
        set_at: 1,
    })
    .await
    .expect("set");
    assert_eq!(next_change(&mut feed).await, Change::KillSwitches);
    conformance_grant(&one).await;
    assert_eq!(next_change(&mut feed).await, Change::Grants);
    // A use changes no view: no notification, so the next one is the revocation.
    one.record_grant_use("bg-feed").await.expect("use");
    one.revoke_grant("bg-feed", "erin", 5)
        .await
        .expect("revoke");
    assert_eq!(next_change(&mut feed).await, Change::Grants);
    one.append_relationship_update(&[serde_json::json!({})], "admin", 1)
        .await
        .expect("append");
    assert_eq!(next_change(&mut feed).await, Change::Relationships);
    assert_eq!(two.kill_switches().await.expect("read").len(), 1);
}

async fn conformance_grant(store: &PostgresStore) {
    store
        .open_grant(&BreakGlassGrant {
            id: "bg-feed".into(),
            tenant: "acme".into(),
            user: "alice".into(),
            agent_role: None,
            tool: None,
            reason: "incident review".into(),
            opened_by: "erin".into(),
            opened_at: 1,
            expires_at: 100,
            uses: 0,
            revoked_by: None,
            revoked_at: None,
        })
        .await
        .expect("open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_resyncs_after_its_connection_is_killed() {
    let Some(db) = TestDatabase::create("resync").await else {
        return;
    };
    let store = PostgresStore::connect(&db.options(2)).await.expect("store");
    let mut feed = store.changes().expect("feed");
    listening(&store).await;
    let (admin, connection) = tokio_postgres::connect(&test_db::server_url(), NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(connection);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&db.name],
        )
        .await
        .expect("terminate");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let change = tokio::time::timeout_at(deadline, feed.recv())
            .await
            .expect("a resync after the reconnect")
            .expect("open");
        if change == Change::Resync {
            break;
        }
    }
    // And the pool serves again, with fresh connections.
    let mut served = false;
    for _ in 0..20 {
        if store.kill_switches().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the pool reconnected");
}

#[tokio::test]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let Some(db) = TestDatabase::create("migrate").await else {
        return;
    };
    let options = db.options(1);
    let (first, second) = tokio::join!(migrate_postgres(&options), migrate_postgres(&options));
    let applied = first.expect("first").len() + second.expect("second").len();
    assert_eq!(
        applied,
        MIGRATIONS_POSTGRES.len(),
        "each migration ran once"
    );
    assert!(migrate_postgres(&options).await.expect("again").is_empty());
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO capgate_migrations (version, name) VALUES (999, 'from the future')",
            &[],
        )
        .await
        .expect("insert");
    let refused = migrate_postgres(&options).await.expect_err("refused");
    assert!(
        refused.0.contains("newer than this capgate knows"),
        "{refused}"
    );
}

#[test]
fn lock_keys_differ_by_kind_and_key() {
    assert_ne!(
        lock_key("run", "[\"a\"]"),
        lock_key("idempotency", "[\"a\"]")
    );
    assert_ne!(lock_key("run", "[\"a\"]"), lock_key("run", "[\"b\"]"));
    assert_eq!(lock_key("run", "[\"a\"]"), lock_key("run", "[\"a\"]"));
}
