//! The SQLite store: the cases every store passes, and what only SQLite keeps.

use std::sync::Arc;

use super::*;

async fn open() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    Some((Arc::new(store), dir))
}

store_conformance_cases!(open);

fn switch(scope: KillScope, tenant: Option<&str>, reason: &str) -> KillSwitch {
    KillSwitch {
        scope,
        tenant: tenant.map(str::to_string),
        reason: reason.into(),
        set_by: "admin".into(),
        set_at: 1,
    }
}

#[tokio::test]
async fn kill_switches_and_relationships_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .set_kill_switch(&switch(
                KillScope::Tool("case__read_case".into()),
                None,
                "incident 42",
            ))
            .await
            .expect("set");
        store
            .append_relationship_update(&[serde_json::json!({"uid": 1})], "admin", 5)
            .await
            .expect("append");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let switches = store.kill_switches().await.expect("list");
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].reason, "incident 42");
    assert_eq!(
        store.relationship_updates().await.expect("updates")[0].entities,
        vec![serde_json::json!({"uid": 1})]
    );
    assert!(store
        .lift_kill_switch(&KillScope::Tool("case__read_case".into()), None)
        .await
        .expect("lift"));
    assert!(store.kill_switches().await.expect("list").is_empty());
}

/// The tenant is part of a switch's key: `user bob` in acme, in globex and in every tenant
/// are three switches, each set again in place and lifted on its own.
#[tokio::test]
async fn a_kill_switch_is_keyed_by_scope_and_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    let bob = || KillScope::User("bob".into());
    for tenant in [Some("acme"), Some("globex"), None, Some("acme"), None] {
        store
            .set_kill_switch(&switch(bob(), tenant, &format!("{tenant:?}")))
            .await
            .expect("set");
    }
    let mut tenants: Vec<Option<String>> = store
        .kill_switches()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.tenant)
        .collect();
    tenants.sort();
    assert_eq!(
        tenants,
        vec![None, Some("acme".into()), Some("globex".into())]
    );
    assert!(store
        .lift_kill_switch(&bob(), Some("acme"))
        .await
        .expect("lift"));
    assert!(!store
        .lift_kill_switch(&bob(), Some("acme"))
        .await
        .expect("lift"));
    assert!(store.lift_kill_switch(&bob(), None).await.expect("lift"));
    let left = store.kill_switches().await.expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].tenant.as_deref(), Some("globex"));
}

/// Switches set before tenants were part of the key cover every tenant; a tenant switch is
/// limited to its own tenant.
#[tokio::test]
async fn existing_kill_switches_are_migrated_to_every_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut connection = Connection::open(dir.path().join("capgate.db")).expect("open");
        let tx = connection.transaction().expect("tx");
        for migration in &MIGRATIONS[..2] {
            tx.execute_batch(migration).expect("old migration");
        }
        tx.pragma_update(None, "user_version", 2).expect("version");
        tx.execute_batch(
            "INSERT INTO kill_switches VALUES ('user', 'bob', 'old', 'admin', 1);
             INSERT INTO kill_switches VALUES ('tenant', 'acme', 'old', 'admin', 2);",
        )
        .expect("old rows");
        tx.commit().expect("commit");
    }
    let store = SqliteStore::open(dir.path()).expect("migrate");
    let switches = store.kill_switches().await.expect("list");
    assert_eq!(
        switches
            .iter()
            .map(|s| (s.scope.clone(), s.tenant.clone()))
            .collect::<Vec<_>>(),
        vec![
            (KillScope::User("bob".into()), None),
            (KillScope::Tenant("acme".into()), Some("acme".into())),
        ]
    );
}

/// By default the gateway holds its store exclusively: a second opener (another gateway on the
/// same data directory) is refused with a message that says why, and the store opens again
/// once the first has closed it; no `-shm` file is used (nor its per-transaction locks).
/// `shared` lets a second opener in.
#[test]
fn a_second_process_on_the_store_is_refused_while_the_first_holds_it() {
    let cases = [
        (SqliteLocking::Exclusive, false),
        (SqliteLocking::Exclusive, true),
        (SqliteLocking::Shared, false),
        (SqliteLocking::Shared, true),
    ];
    for (locking, existing) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        if existing {
            // A restart: the first opener finds the database (in WAL mode) a gateway left.
            drop(SqliteStore::open_with(dir.path(), locking).expect("create"));
        }
        let first = SqliteStore::open_with(dir.path(), locking).expect("open");
        let second = SqliteStore::open_with(dir.path(), locking);
        match locking {
            SqliteLocking::Exclusive => {
                assert!(!dir.path().join("capgate.db-shm").exists());
                let Err(refused) = second else {
                    panic!("a second opener was let in while the first holds the store (existing: {existing})");
                };
                assert!(
                    refused.0.contains("in use by another process"),
                    "{}",
                    refused.0
                );
                drop(first);
                SqliteStore::open(dir.path()).expect("open again once the first has closed");
            }
            SqliteLocking::Shared => {
                second.expect("a shared store lets a second opener in");
            }
        }
    }
}

/// A shared opener finding the store held exclusively is refused with what fits its own mode
/// (the other process holds the file; `shared` would not help).
#[test]
fn a_shared_opener_of_a_store_held_exclusively_is_told_what_holds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = SqliteStore::open_with(dir.path(), SqliteLocking::Exclusive).expect("open");
    let Err(refused) = SqliteStore::open_with(dir.path(), SqliteLocking::Shared) else {
        panic!("a shared opener was let in while another holds the store exclusively");
    };
    assert!(
        refused.0.contains("stayed locked by another process"),
        "{}",
        refused.0
    );
    assert!(
        !refused.0.contains("sqlite_locking = \"shared\""),
        "{}",
        refused.0
    );
}
