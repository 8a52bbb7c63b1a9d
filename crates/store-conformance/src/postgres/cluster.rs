//! A throwaway PostgreSQL cluster for tests, started by the test process
//! itself: `initdb` and `pg_ctl` from the installed PostgreSQL (on `PATH` or
//! under `/usr/lib/postgresql/*/bin`), in a temp dir, on a free loopback
//! port, with durability off (it is thrown away). As root, the server runs as
//! the `postgres` system user, because `initdb` refuses root.
//!
//! The cluster lives as long as the test process: a small guardian process
//! (`setsid sh`) holds the read end of a pipe whose write end only this process
//! holds; when this process exits, even by SIGKILL, the guardian sees EOF,
//! stops the server and removes the directory.
//!
//! With `CAPSTAN_TEST_DATABASE_URL` set, no cluster is started: cases create
//! their databases on that server and drop them when they end.
//!
//! No PostgreSQL and no URL: the suite fails, saying how to fix it. It never
//! skips silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use sqlx::{Connection, Executor, PgConnection};

/// The environment variable that points the suite at an existing server.
pub const URL_VAR: &str = "CAPSTAN_TEST_DATABASE_URL";

#[derive(Debug)]
struct Server {
    /// URL of a database to run `CREATE DATABASE` from, without the database name part.
    base: String,
    /// Database to connect to for administration.
    admin_db: String,
    /// True when this process started the server (and will throw it away).
    owned: bool,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);

fn server() -> &'static Server {
    let server = SERVER.get_or_init(|| match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => external(&url),
        _ => start_cluster(),
    });
    match server {
        Ok(s) => s,
        Err(message) => panic!("{message}"),
    }
}

fn external(url: &str) -> Result<Server, String> {
    let (base, db) = match url.rfind('/') {
        Some(i) if i > "postgres://".len() => (url[..i].to_owned(), url[i + 1..].to_owned()),
        _ => {
            return Err(format!(
                "{URL_VAR}={url} is not a postgres://user@host:port/database URL"
            ));
        }
    };
    let db = db.split('?').next().unwrap_or("postgres").to_owned();
    Ok(Server {
        base,
        admin_db: if db.is_empty() { "postgres".into() } else { db },
        owned: false,
    })
}

/// A database made for one test; dropped at the end on an external server
/// (a throwaway cluster is removed whole).
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    owned_cluster: bool,
}

impl TestDatabase {
    /// Create an empty database named after `test`.
    ///
    /// # Panics
    /// When PostgreSQL cannot be found or started, with a message that says
    /// how to fix it.
    pub async fn create(test: &str) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let server = tokio::task::spawn_blocking(server)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let slug: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = format!("t{}_{n}_{slug}", std::process::id());
        name.truncate(63);
        let admin_url = format!("{}/{}", server.base, server.admin_db);
        let template = template(server).await;
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to the test server at {admin_url}: {e}"));
        let create = match template {
            Some(t) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{t}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .execute(sqlx::AssertSqlSafe(create))
            .await
            .unwrap_or_else(|e| panic!("create test database {name}: {e}"));
        let _ = admin.close().await;
        TestDatabase {
            url: format!("{}/{name}", server.base),
            name,
            owned_cluster: server.owned,
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.owned_cluster {
            return;
        }
        let Some(Ok(server)) = SERVER.get() else {
            return;
        };
        let admin_url = format!("{}/{}", server.base, server.admin_db);
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                        let _ = admin
                            .execute(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            )))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// On a cluster of our own, a database migrated once, that every test
/// database is copied from (`CREATE DATABASE … TEMPLATE`): copying files is
/// faster than running the migrations again for each case. On an external
/// server, none (it would outlive the test process).
async fn template(server: &Server) -> Option<&'static str> {
    static TEMPLATE: tokio::sync::OnceCell<&'static str> = tokio::sync::OnceCell::const_new();
    if !server.owned {
        return None;
    }
    let name = *TEMPLATE
        .get_or_init(|| async {
            let name = "capstan_template";
            let admin_url = format!("{}/{}", server.base, server.admin_db);
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("connect to the test server at {admin_url}: {e}"));
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await
                .unwrap_or_else(|e| panic!("create the template database: {e}"));
            let _ = admin.close().await;
            let store =
                capstan_store_postgres::PgStore::connect(&format!("{}/{name}", server.base))
                    .await
                    .unwrap_or_else(|e| panic!("connect to the template database: {e}"));
            capstan_store::Store::migrate(&store)
                .await
                .unwrap_or_else(|e| panic!("migrate the template database: {e}"));
            // No session may stay on a template while it is copied.
            capstan_store::Store::close(&store).await;
            name
        })
        .await;
    Some(name)
}

fn not_found() -> String {
    format!(
        "PostgreSQL is needed by the test suite and was not found: no `initdb`/`pg_ctl` on PATH \
         nor under /usr/lib/postgresql/*/bin. Install it (Debian/Ubuntu: `apt-get install \
         postgresql`; macOS: `brew install postgresql`) or point the suite at a running server \
         with {URL_VAR}=postgres://user:password@host:port/postgres"
    )
}

fn find_bindir() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    candidates.sort();
    candidates.pop().map(|(_, bin)| bin).ok_or_else(not_found)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str, log: Option<&Path>) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let log_text = log
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    Err(format!(
        "{what} failed ({}):\n{}\n{}\n{log_text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port for the test cluster: {e}"))
}

fn start_cluster() -> Result<Server, String> {
    let cluster = Cluster::start("pg")?;
    let base = format!("postgres://postgres@127.0.0.1:{}", cluster.port);
    // The shared cluster lives as long as the process; its guardian removes it.
    *SHARED.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
    Ok(Server {
        base,
        admin_db: "postgres".into(),
        owned: true,
    })
}

/// A PostgreSQL cluster of the caller's own, that it may crash, stop and
/// start again (the chaos tests do): in a temp dir, on a free loopback
/// port, removed when dropped or when the process dies.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    root: bool,
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    guardian: Child,
}

impl Cluster {
    /// initdb and start a cluster in `capstan-<label>-<pid>` under the temp dir.
    ///
    /// # Errors
    /// When PostgreSQL is not installed or does not start: the message says
    /// what to install or what failed.
    pub fn start(label: &str) -> Result<Cluster, String> {
        let bin = find_bindir()?;
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("capstan-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "giving the test cluster directory to the postgres user (initdb refuses root)",
                None,
            )
            .map_err(|e| format!("{e}\nAs root, the suite runs PostgreSQL as the `postgres` system user; create it or set {URL_VAR}."))?;
        }
        let data = dir.join("data");
        let log = dir.join("server.log");
        let mut initdb = command(root, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(initdb, "initdb of the test cluster", None)?;

        // Start the guardian first, so the directory goes away whatever happens next.
        let stop = format!(
            "cat >/dev/null; {} '{}' stop -D '{}' -m immediate >/dev/null 2>&1; rm -rf '{}'",
            if root { "runuser -u postgres --" } else { "" },
            bin.join("pg_ctl").display(),
            data.display(),
            dir.display()
        );
        let guardian = Command::new("setsid")
            .args(["sh", "-c", &stop])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start the test cluster's guardian (setsid sh): {e}"))?;
        let mut cluster = Cluster {
            bin,
            root,
            dir,
            data,
            log,
            port: 0,
            guardian,
        };
        let mut last_err = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            match cluster.start_again() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// A URL for database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn pg_ctl(&self, args: &[&str], what: &str) -> Result<(), String> {
        let mut c = command(self.root, &self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(args);
        run(c, what, Some(&self.log))
    }

    /// Start the (stopped) server again, on the same port.
    ///
    /// # Errors
    /// When it does not start; the message holds its log.
    pub fn start_again(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k '{}' -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=500 -c shared_buffers=64MB",
            self.port,
            self.dir.display()
        );
        self.pg_ctl(
            &["-w", "-t", "60", "-o", &opts, "start"],
            "starting the test cluster",
        )
    }

    /// Stop the server: `immediate` as in a crash (no checkpoint: recovery
    /// runs at the next start), else a fast clean stop.
    ///
    /// # Errors
    /// When `pg_ctl stop` fails.
    pub fn stop(&self, immediate: bool) -> Result<(), String> {
        let mode = if immediate { "immediate" } else { "fast" };
        self.pg_ctl(&["-w", "-m", mode, "stop"], "stopping the test cluster")
    }

    /// Cut every connection to `db` but the caller's (as a failover or an
    /// operator's `pg_terminate_backend` does); returns how many.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn terminate_backends(&self, db: &str) -> Result<i64, String> {
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| e.to_string())?;
        sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .fetch_one(&mut admin)
        .await
        .map_err(|e| e.to_string())
    }

    /// `CREATE DATABASE db`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create_database(&self, db: &str) -> Result<(), String> {
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| e.to_string())?;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the guardian's stdin makes it stop the server and remove
        // the directory; wait for it, so the next test starts clean.
        drop(self.guardian.stdin.take());
        let _ = self.guardian.wait();
    }
}
