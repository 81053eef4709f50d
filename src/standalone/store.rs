//! The embedded object store of standalone mode: amlops objects (metadata, spec, status) and
//! their events in SQLite. WAL lets `amlops get` read while `apply` writes; every change is one
//! transaction, so a killed `apply` leaves either the old or the new object, never half of one.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use nix::unistd::AccessFlags;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;

use super::writer_lock::WriterLock;

/// Schema version written in `meta`; `migrate` upgrades older stores step by step.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for SQLite's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // Not a `source`: the message says SQLite's words already (or better ones).
    #[error("state store {path}: {}", sqlite_message(path, error))]
    Sqlite {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error(
        "state store {path} has schema version {found}, newer than this amlops ({supported}); upgrade amlops"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("state store {path}: {kind} {namespace}/{name} holds an unreadable object: {source}")]
    Corrupt {
        path: PathBuf,
        kind: String,
        namespace: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("state store {path}: cannot take the writer lock {lock}: {source}")]
    Lock {
        path: PathBuf,
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("state store {path} was opened for reading only")]
    ReadOnly { path: PathBuf },
    #[error("{kind} {namespace}/{name} was changed by someone else meanwhile; retry")]
    Conflict {
        kind: String,
        namespace: String,
        name: String,
    },
}

/// SQLite's words, with the reason when the file cannot be opened or written, and without
/// SQLite's words for a database still locked after the busy timeout: amlops commands wait for
/// each other (see [`WriterLock`]), so the holder is another program.
fn sqlite_message(path: &Path, e: &rusqlite::Error) -> String {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked) => {
            format!(
                "another program has held the database for over {} s (amlops commands take turns, so it is not one of them); close it and retry",
                BUSY_TIMEOUT.as_secs()
            )
        }
        Some(CannotOpen) => format!("cannot open the database: {}", why_unopenable(path)),
        Some(ReadOnly) => format!(
            "cannot write it: {} (apply and delete change the state; get, describe, logs, validate and plan only read it)",
            why_unwritable(path)
        ),
        _ => e.to_string(),
    }
}

/// Why SQLite could not open `path`, from what the file system says, and what to do.
fn why_unopenable(path: &Path) -> String {
    let dir = state_dir(path);
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => format!(
            "it is a directory; --state names the database file, e.g. {}",
            path.join("state.db").display()
        ),
        Ok(_) if !accessible(path, AccessFlags::R_OK) => {
            "it is not readable by you: fix its permissions or choose another --state".into()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() => format!(
            "its directory {} does not exist or is not a directory",
            dir.display()
        ),
        _ => why_unwritable(path),
    }
}

/// Why `path` (or its directory, where SQLite keeps the -wal and -shm files) cannot be written.
fn why_unwritable(path: &Path) -> String {
    let dir = state_dir(path);
    if path.exists() && !accessible(path, AccessFlags::W_OK) {
        "the file is read-only for you: fix its permissions or choose another --state".into()
    } else if !accessible(dir, AccessFlags::W_OK | AccessFlags::X_OK) {
        format!(
            "its directory {} is not writable by you (SQLite keeps the -wal and -shm files there): fix its permissions or choose another --state",
            dir.display()
        )
    } else {
        "the file system refused it (read-only or full?)".into()
    }
}

fn state_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn accessible(path: &Path, mode: AccessFlags) -> bool {
    nix::unistd::access(path, mode).is_ok()
}

/// Identifies one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    /// The object `kind`/`name` in the same namespace (what a reference in a spec names).
    pub fn sibling(&self, kind: &str, name: &str) -> Key {
        Key {
            kind: kind.into(),
            namespace: self.namespace.clone(),
            name: name.into(),
        }
    }
}

impl Key {
    /// `computetarget/name`, as the CLI names objects in its output, with the namespace when it
    /// is not `default` (so objects of one name in two namespaces read apart).
    pub fn short(&self) -> String {
        format!(
            "{}/{}{}",
            self.kind.to_lowercase(),
            self.name,
            self.namespace_note()
        )
    }

    fn namespace_note(&self) -> String {
        if self.namespace == "default" {
            String::new()
        } else {
            format!(" (namespace {})", self.namespace)
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.name, self.namespace_note())
    }
}

/// What `apply` did to an object, in kubectl's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    Unchanged,
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub time: String,
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// Readers never wait: WAL gives them the last committed state while a writer works. Writers
/// take turns: the first change a Store makes takes the state's [`WriterLock`] for good.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    writer: RefCell<Option<WriterLock>>,
    /// Opened with [`Store::open_read_only`]: every change is refused.
    read_only: bool,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, in a directory that exists: see
    /// [`super::private::make_private`] for creating it.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |error| StoreError::Sqlite {
            path: path.to_path_buf(),
            error,
        };
        let conn = Connection::open(path).map_err(err)?;
        // Writers hold SQLite's lock only for one short transaction, readers never: a wait
        // this long means something else holds the database.
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
            writer: RefCell::new(None),
            read_only: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Opens the store at `path` for reading only: nothing is created, migrated or locked, so
    /// a state in a read-only directory (or of read-only files) can be read. A store that does
    /// not exist yet, or was never written, reads as empty.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let err = |error| StoreError::Sqlite {
            path: path.to_path_buf(),
            error,
        };
        let written = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let conn = if written {
            Some(read_only_connection(path).map_err(err)?)
        } else {
            None
        };
        let found = match &conn {
            Some(c) => schema_version(c).map_err(err)?,
            None => 0,
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mut store = Self {
            conn: match conn.filter(|_| found == SCHEMA_VERSION) {
                Some(c) => c,
                None => Connection::open_in_memory().map_err(err)?,
            },
            path: path.to_path_buf(),
            writer: RefCell::new(None),
            read_only: true,
        };
        // An empty store in memory: the tables exist, holding nothing.
        store.migrate()?;
        Ok(store)
    }

    /// Takes the state's writer lock unless this Store holds it already (waits for another
    /// writer to exit). Every change goes through here first.
    fn writing(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let mut writer = self.writer.borrow_mut();
        if writer.is_none() {
            *writer = Some(
                WriterLock::acquire(&self.path).map_err(|source| StoreError::Lock {
                    path: self.path.clone(),
                    lock: super::writer_lock::lock_path(&self.path),
                    source,
                })?,
            );
        }
        Ok(())
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |error| StoreError::Sqlite {
            path: self.path.clone(),
            error,
        }
    }

    /// Brings the schema up to date; a store that is (readers open stores too) writes nothing.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = move |error| StoreError::Sqlite {
            path: path.clone(),
            error,
        };
        if schema_version(&self.conn).map_err(&err)? == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = immediate(&mut self.conn).map_err(&err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(&err)?;
        let found = schema_version(&tx).map_err(&err)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < 1 {
            tx.execute_batch(
                "CREATE TABLE objects (
                    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    resource_version INTEGER NOT NULL,
                    object TEXT NOT NULL,
                    PRIMARY KEY (kind, namespace, name));
                 CREATE TABLE events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                    time TEXT NOT NULL, warning INTEGER NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL);
                 CREATE INDEX events_by_object ON events (kind, namespace, name, id);
                 INSERT INTO meta (key, value) VALUES ('resource_version', 0);",
            )
            .map_err(&err)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// The object, as a Kubernetes-style JSON document (metadata incl. uid, generation,
    /// resourceVersion, finalizers, deletionTimestamp; spec; status).
    pub fn get(&self, key: &Key) -> Result<Option<Value>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT object FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![key.kind, key.namespace, key.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err())?;
        text.map(|t| self.parse(key, &t)).transpose()
    }

    fn parse(&self, key: &Key, text: &str) -> Result<Value, StoreError> {
        parse(&self.path, key, text)
    }

    /// All objects of `kind` (or of every kind), ordered by kind, namespace, name.
    pub fn list(&self, kind: Option<&str>) -> Result<Vec<(Key, Value)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT kind, namespace, name, object FROM objects WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, namespace, name")
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![kind], |r| {
                Ok((
                    Key {
                        kind: r.get(0)?,
                        namespace: r.get(1)?,
                        name: r.get(2)?,
                    },
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (key, text) = row.map_err(self.err())?;
            let value = self.parse(&key, &text)?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// `kubectl apply` semantics: create, or update labels/annotations and content (spec, or a
    /// Secret's or ConfigMap's data) of an existing object. The generation moves only when the
    /// content changes; uid, status and finalizers are kept. A ConfigMap whose content is new
    /// gives the Experiments that snapshot it a new generation too (see [`regenerate_dependants`]).
    pub fn apply(&mut self, key: &Key, manifest: &Value) -> Result<(Applied, Value), StoreError> {
        self.writing()?;
        let path = self.path.clone();
        let err = move |error| StoreError::Sqlite {
            path: path.clone(),
            error,
        };
        let tx = immediate(&mut self.conn).map_err(&err)?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT object FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![key.kind, key.namespace, key.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        let (applied, object, content_changed) = match existing {
            None => {
                let mut obj = manifest.clone();
                let meta = metadata_mut(&mut obj);
                meta.insert(
                    "uid".into(),
                    Value::String(uuid::Uuid::new_v4().to_string()),
                );
                meta.insert("generation".into(), 1.into());
                meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
                meta.insert("namespace".into(), Value::String(key.namespace.clone()));
                (Applied::Created, obj, true)
            }
            Some(text) => {
                let mut obj = parse(&self.path, key, &text)?;
                let change = change(&key.kind, &obj, manifest);
                if change == Change::None {
                    return Ok((Applied::Unchanged, obj));
                }
                for field in content_fields(&key.kind) {
                    match manifest.get(field) {
                        Some(v) => obj[*field] = v.clone(),
                        None => {
                            obj.as_object_mut().map(|o| o.remove(*field));
                        }
                    }
                }
                let meta = metadata_mut(&mut obj);
                for f in ["labels", "annotations"] {
                    match manifest["metadata"].get(f) {
                        Some(v) => meta.insert(f.to_string(), v.clone()),
                        None => meta.remove(f),
                    };
                }
                let content_changed = change == Change::Content;
                if content_changed {
                    bump_generation(meta);
                }
                (Applied::Configured, obj, content_changed)
            }
        };
        let rv = next_resource_version(&tx).map_err(&err)?;
        let object = write_object(&tx, key, object, rv).map_err(&err)?;
        if content_changed {
            regenerate_dependants(&tx, key).map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok((applied, object))
    }

    /// The objects that `changed` feeds and that a change of its content gives a new
    /// generation: the Experiments snapshotting a ConfigMap (so `apply` of the ConfigMap
    /// alone reconciles them too).
    pub fn dependants(&self, changed: &Key) -> Result<Vec<Key>, StoreError> {
        experiments_snapshotting(&self.conn, changed)
            .map(|found| {
                found
                    .into_iter()
                    .map(|(name, _)| changed.sibling("Experiment", &name))
                    .collect()
            })
            .map_err(|error| StoreError::Sqlite {
                path: self.path.clone(),
                error,
            })
    }

    /// Replaces status (and finalizers) if the object still has `resource_version`; returns the new object.
    pub fn update(&mut self, key: &Key, object: &Value) -> Result<Value, StoreError> {
        self.writing()?;
        let path = self.path.clone();
        let err = move |error| StoreError::Sqlite {
            path: path.clone(),
            error,
        };
        let tx = immediate(&mut self.conn).map_err(&err)?;
        let stored_rv: Option<i64> = tx
            .query_row(
                "SELECT resource_version FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                params![key.kind, key.namespace, key.name],
                |r| r.get(0),
            )
            .optional()
            .map_err(&err)?;
        let expected = object["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse::<i64>().ok());
        if stored_rv.is_none() || stored_rv != expected {
            return Err(StoreError::Conflict {
                kind: key.kind.clone(),
                namespace: key.namespace.clone(),
                name: key.name.clone(),
            });
        }
        let rv = next_resource_version(&tx).map_err(&err)?;
        let object = write_object(&tx, key, object.clone(), rv).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(object)
    }

    /// Marks the object for deletion (like a DELETE with finalizers) or removes it when it has none.
    /// Returns true when the object is gone.
    pub fn delete(&mut self, key: &Key) -> Result<bool, StoreError> {
        self.writing()?;
        let Some(mut obj) = self.get(key)? else {
            return Ok(true);
        };
        let has_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if !has_finalizers {
            self.remove(key)?;
            return Ok(true);
        }
        if obj["metadata"].get("deletionTimestamp").is_none() {
            metadata_mut(&mut obj).insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
            self.update(key, &obj)?;
        }
        Ok(false)
    }

    /// Removes the object and its events for good.
    pub fn remove(&mut self, key: &Key) -> Result<(), StoreError> {
        self.writing()?;
        let path = self.path.clone();
        let err = move |error| StoreError::Sqlite {
            path: path.clone(),
            error,
        };
        let tx = immediate(&mut self.conn).map_err(&err)?;
        let p = params![key.kind, key.namespace, key.name];
        tx.execute(
            "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            p,
        )
        .map_err(&err)?;
        tx.execute(
            "DELETE FROM events WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            p,
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    pub fn add_event(
        &self,
        key: &Key,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        self.writing()?;
        insert_event(&self.conn, key, warning, reason, message).map_err(self.err())?;
        Ok(())
    }

    /// The newest `limit` events of an object, oldest first.
    pub fn events(&self, key: &Key, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time, warning, reason, message FROM (SELECT * FROM events WHERE kind = ?1 AND namespace = ?2 AND name = ?3
                 ORDER BY id DESC LIMIT ?4) ORDER BY id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                params![key.kind, key.namespace, key.name, limit as i64],
                |r| {
                    Ok(StoredEvent {
                        time: r.get(0)?,
                        warning: r.get(1)?,
                        reason: r.get(2)?,
                        message: r.get(3)?,
                    })
                },
            )
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}

/// The schema version of the store; 0 for a new one.
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

/// A read-only connection that has read the database once. Reading a database in WAL mode
/// needs its `-shm` index, which SQLite creates when missing: in a directory this user cannot
/// write, a state whose last writer exited cleanly (no `-wal` left to replay) is read as an
/// immutable file instead.
fn read_only_connection(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let error = match schema_version(&conn) {
        Ok(_) => return Ok(conn),
        Err(e) => e,
    };
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
    let uri = std::path::absolute(path)
        .ok()
        .and_then(|p| url::Url::from_file_path(p).ok());
    match uri {
        Some(mut uri) if wal_empty => {
            uri.set_query(Some("immutable=1"));
            let conn =
                Connection::open_with_flags(uri.as_str(), flags | OpenFlags::SQLITE_OPEN_URI)?;
            schema_version(&conn)?;
            Ok(conn)
        }
        _ => Err(error),
    }
}

/// A transaction that takes SQLite's write lock at once: a deferred one that reads first fails
/// with SQLITE_BUSY, without waiting, when another writer committed since its read.
fn immediate(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

fn parse(path: &Path, key: &Key, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        source,
    })
}

/// What applying a manifest changes in a stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    /// Labels or annotations only: no new generation.
    Metadata,
    /// The spec, or a Secret's or ConfigMap's data: a new generation.
    Content,
}

/// What applying `manifest` over `stored` changes, as kubectl sees it: Secrets and ConfigMaps
/// are their data, every other kind its spec; then labels and annotations.
pub fn change(kind: &str, stored: &Value, manifest: &Value) -> Change {
    if content_fields(kind)
        .iter()
        .any(|f| stored.get(f) != manifest.get(f))
    {
        Change::Content
    } else if ["labels", "annotations"]
        .iter()
        .any(|f| stored["metadata"].get(f) != manifest["metadata"].get(f))
    {
        Change::Metadata
    } else {
        Change::None
    }
}

/// The fields that hold what an object is, beside its metadata.
fn content_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Secret" | "ConfigMap" => &["data", "stringData", "binaryData"],
        _ => &["spec"],
    }
}

/// Whether `experiment` snapshots the ConfigMap `config_map` (same namespace assumed): its
/// runs carry that ConfigMap's content, so new content is a new run.
pub fn snapshots_config_map(experiment: &Value, config_map: &str) -> bool {
    experiment
        .pointer("/spec/source/configMap/name")
        .and_then(Value::as_str)
        == Some(config_map)
}

/// The Experiments (name, object) of `changed`'s namespace that snapshot it, when it is a
/// ConfigMap; those being deleted are left out (their runs are only cancelled).
fn experiments_snapshotting(
    conn: &Connection,
    changed: &Key,
) -> rusqlite::Result<Vec<(String, Value)>> {
    if changed.kind != "ConfigMap" {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare("SELECT name, object FROM objects WHERE kind = 'Experiment' AND namespace = ?1")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([&changed.namespace], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        // An unreadable object is reported as Corrupt by whoever reads it; nothing to do here.
        .filter_map(|(name, text)| Some((name, serde_json::from_str::<Value>(&text).ok()?)))
        .filter(|(_, o)| {
            snapshots_config_map(o, &changed.name)
                && o["metadata"].get("deletionTimestamp").is_none()
        })
        .collect())
}

/// A ConfigMap with new content (or created anew) changes what the Experiments that snapshot
/// it would run: each gets a new generation (a new run, as after a spec change) and an event.
/// Secrets need nothing here: their readers compare the Secret's resourceVersion.
fn regenerate_dependants(tx: &rusqlite::Transaction<'_>, changed: &Key) -> rusqlite::Result<()> {
    for (name, mut object) in experiments_snapshotting(tx, changed)? {
        bump_generation(metadata_mut(&mut object));
        let key = changed.sibling("Experiment", &name);
        let rv = next_resource_version(tx)?;
        write_object(tx, &key, object, rv)?;
        insert_event(
            tx,
            &key,
            false,
            "SourceChanged",
            &format!(
                "ConfigMap {:?} changed: the next run snapshots its new content",
                changed.name
            ),
        )?;
    }
    Ok(())
}

fn bump_generation(meta: &mut serde_json::Map<String, Value>) {
    let generation = meta.get("generation").and_then(Value::as_i64).unwrap_or(0) + 1;
    meta.insert("generation".into(), generation.into());
}

fn insert_event(
    conn: &Connection,
    key: &Key,
    warning: bool,
    reason: &str,
    message: &str,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO events (kind, namespace, name, time, warning, reason, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![key.kind, key.namespace, key.name, now_rfc3339(), warning, reason, message],
    )
}

fn next_resource_version(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'resource_version' RETURNING value",
        [],
        |r| r.get(0),
    )
}

fn write_object(
    tx: &rusqlite::Transaction<'_>,
    key: &Key,
    mut object: Value,
    rv: i64,
) -> rusqlite::Result<Value> {
    metadata_mut(&mut object).insert("resourceVersion".into(), Value::String(rv.to_string()));
    tx.execute(
        "INSERT INTO objects (kind, namespace, name, resource_version, object) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, namespace, name) DO UPDATE SET resource_version = ?4, object = ?5",
        params![key.kind, key.namespace, key.name, rv, object.to_string()],
    )?;
    Ok(object)
}

fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Default::default());
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Key {
        Key {
            kind: "Experiment".into(),
            namespace: "default".into(),
            name: "e".into(),
        }
    }
    fn manifest(script: &str) -> Value {
        json!({"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment", "metadata": {"name": "e"}, "spec": {"script": script}})
    }

    #[test]
    fn apply_creates_updates_and_bumps_generation_only_on_spec_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("state.db")).unwrap();
        let (a, created) = store.apply(&key(), &manifest("a.py")).unwrap();
        assert_eq!(a, Applied::Created);
        assert_eq!(created["metadata"]["generation"], 1);
        let uid = created["metadata"]["uid"].clone();
        assert_eq!(
            store.apply(&key(), &manifest("a.py")).unwrap().0,
            Applied::Unchanged
        );
        let mut labelled = manifest("a.py");
        labelled["metadata"]["labels"] = json!({"team": "x"});
        let (a, obj) = store.apply(&key(), &labelled).unwrap();
        assert_eq!(
            (a, obj["metadata"]["generation"].clone()),
            (Applied::Configured, json!(1))
        );
        let (a, obj) = store.apply(&key(), &manifest("b.py")).unwrap();
        assert_eq!(
            (a, obj["metadata"]["generation"].clone()),
            (Applied::Configured, json!(2))
        );
        assert_eq!(obj["metadata"]["uid"], uid);
        assert!(obj["metadata"].get("labels").is_none());
    }

    #[test]
    fn secrets_compare_by_data_and_a_new_config_map_regenerates_its_experiments() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let secret_key = key().sibling("Secret", "registry");
        let secret = |pw: &str| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry"}, "stringData": {"password": pw}});
        let (_, first) = store.apply(&secret_key, &secret("a")).unwrap();
        assert_eq!(
            store.apply(&secret_key, &secret("a")).unwrap().0,
            Applied::Unchanged
        );
        let (a, second) = store.apply(&secret_key, &secret("b")).unwrap();
        assert_eq!(a, Applied::Configured);
        assert_eq!(second["stringData"]["password"], "b");
        // Readers of the Secret (a registry connection) compare its resourceVersion.
        assert_ne!(
            second["metadata"]["resourceVersion"],
            first["metadata"]["resourceVersion"]
        );

        let mut exp = manifest("a.py");
        exp["spec"]["source"] = json!({"configMap": {"name": "code"}});
        store.apply(&key(), &exp).unwrap();
        let other = key().sibling("Experiment", "other");
        store.apply(&other, &manifest("b.py")).unwrap();
        let cm_key = key().sibling("ConfigMap", "code");
        let cm = |code: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "code"}, "data": {"a.py": code}});
        store.apply(&cm_key, &cm("v1")).unwrap();
        assert_eq!(
            store.get(&key()).unwrap().unwrap()["metadata"]["generation"],
            2
        );
        store.apply(&cm_key, &cm("v1")).unwrap();
        store.apply(&cm_key, &cm("v2")).unwrap();
        assert_eq!(
            store.get(&key()).unwrap().unwrap()["metadata"]["generation"],
            3
        );
        assert_eq!(
            store.get(&other).unwrap().unwrap()["metadata"]["generation"],
            1
        );
        let events = store.events(&key(), 10).unwrap();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.reason == "SourceChanged"));
    }

    #[test]
    fn a_database_held_by_another_program_is_named_not_reported_as_error_code_5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path).unwrap();
        store.conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let message = store
            .apply(&key(), &manifest("a.py"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("another program has held the database")
                && !message.contains("database is locked"),
            "{message}"
        );
    }

    #[test]
    fn status_updates_need_the_current_resource_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let (_, mut obj) = store.apply(&key(), &manifest("a.py")).unwrap();
        obj["status"] = json!({"observedGeneration": 1});
        let stale = obj.clone();
        let obj = store.update(&key(), &obj).unwrap();
        assert!(matches!(
            store.update(&key(), &stale),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            store.get(&key()).unwrap().unwrap()["status"]["observedGeneration"],
            1
        );
        // apply keeps status
        let (_, after) = store.apply(&key(), &manifest("c.py")).unwrap();
        assert_eq!(after["status"], obj["status"]);
    }

    #[test]
    fn delete_waits_for_finalizers() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let (_, mut obj) = store.apply(&key(), &manifest("a.py")).unwrap();
        obj["metadata"]["finalizers"] = json!(["amlops.io/cleanup"]);
        store.update(&key(), &obj).unwrap();
        store
            .add_event(&key(), false, "Submitted", "run submitted")
            .unwrap();
        assert!(!store.delete(&key()).unwrap());
        let marked = store.get(&key()).unwrap().unwrap();
        assert!(marked["metadata"]["deletionTimestamp"].is_string());
        store.remove(&key()).unwrap();
        assert!(store.get(&key()).unwrap().is_none());
        assert!(store.events(&key(), 10).unwrap().is_empty());
        // without finalizers, delete removes at once
        store.apply(&key(), &manifest("a.py")).unwrap();
        assert!(store.delete(&key()).unwrap());
    }

    #[test]
    fn a_newer_schema_is_refused_and_readers_see_committed_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut writer = Store::open(&path).unwrap();
        writer.apply(&key(), &manifest("a.py")).unwrap();
        let reader = Store::open(&path).unwrap();
        assert_eq!(reader.list(Some("Experiment")).unwrap().len(), 1);
        writer
            .conn
            .execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        match Store::open(&path) {
            Err(StoreError::TooNew { found: 99, .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a store from a newer amlops must be refused"),
        }
    }
}
