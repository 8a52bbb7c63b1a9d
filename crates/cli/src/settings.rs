//! Configuration, resolved once: flags > `CAPSTAN_*` environment variables >
//! `capstan.toml` > defaults, one section per crate. The sections deserialize
//! themselves (the runtime's `Config` is `[node]`); this module only layers
//! the sources and remembers where each value came from, for
//! `capstan config` and for error messages that name the key, the value and
//! its source.
//!
//! ```toml
//! [database]
//! url = "postgres://capstan@localhost/app"   # CAPSTAN_DATABASE_URL, --database-url
//! [database.postgres]                        # or CAPSTAN_DATABASE_POSTGRES='{max_connections = 32}'
//! max_connections = 32
//! [database.sqlite]
//! synchronous_full = true
//! [node]                                      # CAPSTAN_NODE_<KEY>, e.g. CAPSTAN_NODE_DEFAULT_TIMEOUT=5m
//! queues = ["default", "mail"]                # CAPSTAN_NODE_QUEUES=default,mail, serve --queues
//! concurrency = 100                           # serve --concurrency
//! default_timeout = "5m"
//! [node.queue.mail]
//! concurrency = 10
//! [node.retry.kinds."documents.process"]
//! max_attempts = 4
//! [server]                                    # CAPSTAN_SERVER_<KEY>; see capstan_server::ServerConfig
//! listen = "127.0.0.1:7400"                   # serve --listen
//! [queues.hooks]                              # a push queue: capstan::runtime::push::PushConfig
//! push_url = "https://example.com/hook"
//! ```
//!
//! An environment value is read as a TOML value when it is one (`100`,
//! `1.5`, `true`, `["a","b"]`, `{max_attempts = 4}`), else as a string
//! (`5m`, `default,mail`). Unknown keys are errors in every source, so a
//! typo never goes unnoticed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use capstan::{AnyStore, Config, Store};
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::args::{Cli, Command};

/// The database URL when nothing else names one.
pub(crate) const DEFAULT_URL: &str = "sqlite://capstan.db";
const DEFAULT_CONFIG_FILE: &str = "capstan.toml";
/// The sections of `capstan.toml`, each its environment prefix.
const SECTIONS: [(&str, &str); 4] = [
    ("database", "CAPSTAN_DATABASE_"),
    ("node", "CAPSTAN_NODE_"),
    ("server", "CAPSTAN_SERVER_"),
    ("queues", "CAPSTAN_QUEUES_"),
];
/// Keys whose values are secrets: printed redacted.
const SECRET_URLS: [&str; 1] = ["database.url"];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// The whole file, one field per section.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    database: Database,
    node: Config,
    server: capstan_server::ServerConfig,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    queues: BTreeMap<String, capstan::runtime::push::PushConfig>,
}

/// `[database]`: the URL, and the options of each backend (owned and
/// deserialized by the backend crates: `SqliteOptions`, `PgOptions`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Database {
    url: String,
    sqlite: capstan::sqlite::SqliteOptions,
    postgres: capstan::postgres::PgOptions,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: DEFAULT_URL.to_owned(),
            sqlite: Default::default(),
            postgres: Default::default(),
        }
    }
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) url: String,
    /// The backends' options.
    pub(crate) database: capstan::DatabaseOptions,
    pub(crate) config: Config,
    /// `[server]`: the HTTP API of `serve`.
    pub(crate) server: capstan_server::ServerConfig,
    /// `[queues.NAME]`: push queues.
    pub(crate) queues: BTreeMap<String, capstan::runtime::push::PushConfig>,
    /// The source of every value set by a file, the environment or a flag,
    /// by dotted key.
    sources: BTreeMap<String, Source>,
}

/// The sources merged so far.
#[derive(Debug, Default)]
struct Layers {
    table: Table,
    sources: BTreeMap<String, Source>,
    /// Environment values as given, by dotted key (read as TOML in `table`).
    env_text: BTreeMap<String, String>,
}

impl Layers {
    /// Merge `value` at `path` (tables deeply), recording `source` for every
    /// leaf it sets.
    fn set(&mut self, path: &[&str], value: Value, source: &Source) {
        let mut leaves = Vec::new();
        collect_leaves(&path.join("."), &value, &mut leaves);
        for leaf in leaves {
            self.sources.insert(leaf, source.clone());
        }
        let (last, parents) = path.split_last().expect("a non-empty path");
        let mut table = &mut self.table;
        for p in parents {
            let entry = table
                .entry((*p).to_owned())
                .or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            table = entry.as_table_mut().expect("a table");
        }
        match (table.get_mut(*last), value) {
            (Some(Value::Table(old)), Value::Table(new)) => merge(old, new),
            (_, v) => {
                table.insert((*last).to_owned(), v);
            }
        }
    }

    /// Remove what is at `path` (a flag replaced it).
    fn remove(&mut self, path: &[&str]) {
        let prefix = path.join(".");
        self.sources
            .retain(|k, _| k != &prefix && !k.starts_with(&format!("{prefix}.")));
        let (last, parents) = path.split_last().expect("a non-empty path");
        let mut table = &mut self.table;
        for p in parents {
            match table.get_mut(*p).and_then(Value::as_table_mut) {
                Some(t) => table = t,
                None => return,
            }
        }
        table.remove(*last);
    }

    fn get(&self, key: &str) -> Option<&Value> {
        let mut parts = key.split('.');
        let mut v = self.table.get(parts.next()?)?;
        for p in parts {
            v = v.as_table()?.get(p)?;
        }
        Some(v)
    }

    fn source_of(&self, key: &str) -> Source {
        lookup_source(&self.sources, key)
    }
}

fn lookup_source(sources: &BTreeMap<String, Source>, key: &str) -> Source {
    let mut k = key;
    loop {
        if let Some(s) = sources.get(k) {
            return s.clone();
        }
        match k.rfind('.') {
            Some(i) => k = &k[..i],
            None => return Source::Default,
        }
    }
}

fn merge(old: &mut Table, new: Table) {
    for (k, v) in new {
        match (old.get_mut(&k), v) {
            (Some(Value::Table(o)), Value::Table(n)) => merge(o, n),
            (_, v) => {
                old.insert(k, v);
            }
        }
    }
}

fn collect_leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                collect_leaves(&format!("{prefix}.{k}"), v, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// An environment value: a TOML value when it parses as one, else a string.
fn env_value(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

impl Settings {
    /// Resolve settings for `cli`.
    pub(crate) fn load(cli: &Cli) -> anyhow::Result<Settings> {
        // `vars_os`: a variable that is not Unicode must not stop the
        // program, unless it is one of ours.
        let mut env = Vec::new();
        for (k, v) in std::env::vars_os() {
            let Some(k) = k.to_str().map(str::to_owned) else {
                continue;
            };
            if !SECTIONS.iter().any(|(_, prefix)| k.starts_with(prefix)) {
                continue;
            }
            match v.into_string() {
                Ok(v) => env.push((k, v)),
                Err(_) => bail!("the environment variable {k} is not valid UTF-8"),
            }
        }
        Self::resolve(cli, env.into_iter())
    }

    fn resolve(cli: &Cli, env: impl Iterator<Item = (String, String)>) -> anyhow::Result<Settings> {
        let mut layers = Layers::default();
        let path = match &cli.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        if let Some(path) = &path {
            let table = read(path)?;
            let source = Source::File(path.clone());
            for (key, value) in table {
                layers.set(&[&key], value, &source);
            }
        }
        for (var, raw) in env {
            for (section, prefix) in SECTIONS {
                if let Some(key) = var.strip_prefix(prefix).filter(|k| !k.is_empty()) {
                    let key = key.to_lowercase();
                    layers.set(&[section, &key], env_value(&raw), &Source::Env(var.clone()));
                    layers
                        .env_text
                        .insert(format!("{section}.{key}"), raw.clone());
                }
            }
        }
        flags(cli, &mut layers);
        prune_unserved_queues(&mut layers);
        let file = loop {
            match deserialize(&layers) {
                Ok(file) => break file,
                // An environment value read as a number, a date or a bool
                // where the setting wants text: take it as the text it was.
                Err(Retry::AsText(key, raw)) => {
                    let parts: Vec<&str> = key.split('.').collect();
                    let source = layers.source_of(&key);
                    layers.set(&parts, Value::String(raw), &source);
                }
                Err(Retry::No(e)) => return Err(e),
            }
        };
        let url = file.database.url.trim().to_owned();
        if url.is_empty() {
            bail!(
                "database.url is empty ({}): give a URL, postgres://… or sqlite://path",
                layers.source_of("database.url")
            );
        }
        Ok(Settings {
            url,
            database: capstan::DatabaseOptions {
                sqlite: file.database.sqlite,
                postgres: file.database.postgres,
            },
            config: file.node,
            server: file.server,
            queues: file.queues,
            sources: layers.sources,
        })
    }

    /// Every effective setting, by dotted key, with its value as TOML and
    /// its source; secrets redacted.
    pub(crate) fn report(&self) -> Vec<(String, Value, Source)> {
        let file = FileConfig {
            database: Database {
                url: self.url.clone(),
                sqlite: self.database.sqlite.clone(),
                postgres: self.database.postgres.clone(),
            },
            node: self.config.clone(),
            server: self.server.clone(),
            queues: self.queues.clone(),
        };
        let Ok(Value::Table(table)) = Value::try_from(&file) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        flatten("", &Value::Table(table), &mut out);
        out.into_iter()
            .map(|(key, value)| {
                let value = match (&value, SECRET_URLS.contains(&key.as_str())) {
                    (Value::String(s), true) => Value::String(capstan::redact_url(s)),
                    _ => value,
                };
                let source = lookup_source(&self.sources, &key);
                (key, value, source)
            })
            .collect()
    }

    /// Open the store and apply pending migrations (`migrate`, `serve`,
    /// `bench`: the commands that are asked to).
    pub(crate) async fn open_and_migrate(&self) -> anyhow::Result<AnyStore> {
        let store = AnyStore::connect_with(&self.url, &self.database).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Open the store of a database already migrated to this version;
    /// writes no schema (and creates no SQLite file), and says how to fix a
    /// missing or older one.
    pub(crate) async fn open(&self) -> anyhow::Result<AnyStore> {
        if !self.url.starts_with("postgres") {
            let path = capstan::sqlite::SqliteConfig::from_url(&self.url)?.path;
            if !path.exists() {
                bail!(
                    "no database at {}: run `capstan migrate` to create it (or `capstan serve`, which migrates), or pass --database-url",
                    path.display()
                );
            }
        }
        let store = AnyStore::connect_with(&self.url, &self.database).await?;
        store.check_schema().await?;
        Ok(store)
    }

    /// A client on [`Settings::open`]'s store with these settings.
    pub(crate) async fn client(&self) -> anyhow::Result<capstan::Client<AnyStore>> {
        Ok(capstan::Client::with_config(
            self.open().await?,
            self.config.clone(),
        )?)
    }
}

/// The flags that set configuration, layered last.
fn flags(cli: &Cli, layers: &mut Layers) {
    if let Some(url) = cli.database_url.clone().filter(|u| !u.trim().is_empty()) {
        layers.set(
            &["database", "url"],
            Value::String(url),
            &Source::Flag("--database-url"),
        );
    }
    let Command::Serve(serve) = &cli.command else {
        return;
    };
    if let Some(names) = &serve.queues {
        // (`prune_unserved_queues` then drops the per-queue tables of
        // queues no longer served, as for the environment.)
        let list = names
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .map(Value::String)
            .collect();
        layers.set(
            &["node", "queues"],
            Value::Array(list),
            &Source::Flag("--queues"),
        );
    }
    if let Some(n) = serve.concurrency {
        // The flag is every queue's concurrency, per-queue settings included.
        layers.remove(&["node", "queue"]);
        layers.set(
            &["node", "concurrency"],
            Value::Integer(n as i64),
            &Source::Flag("--concurrency"),
        );
    }
    if let Some(addr) = &serve.listen {
        layers.set(
            &["server", "listen"],
            Value::String(addr.clone()),
            &Source::Flag("--listen"),
        );
    }
    if let Some(id) = &serve.node_id {
        layers.set(
            &["node", "node_id"],
            Value::String(id.clone()),
            &Source::Flag("--node-id"),
        );
    }
}

/// A higher layer (environment, flag) that set `node.queues` replaces the
/// per-queue tables of queues it no longer lists, as `--queues` does.
fn prune_unserved_queues(layers: &mut Layers) {
    if matches!(
        layers.source_of("node.queues"),
        Source::Default | Source::File(_)
    ) {
        return;
    }
    let listed: Vec<String> = match layers.get("node.queues") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|q| q.trim().to_owned()).collect(),
        _ => return,
    };
    let stale: Vec<String> = layers
        .get("node.queue")
        .and_then(Value::as_table)
        .map(|t| t.keys().filter(|k| !listed.contains(k)).cloned().collect())
        .unwrap_or_default();
    for q in stale {
        layers.remove(&["node", "queue", &q]);
    }
}

/// Why the layered table did not deserialize.
enum Retry {
    /// The value at this key came from the environment as a non-string;
    /// try it as the string it was.
    AsText(String, String),
    /// A real error, with the key, the value and its source.
    No(anyhow::Error),
}

/// Keys whose values are never printed in an error (they may be secrets).
fn secret(key: &str) -> bool {
    key.starts_with("database.")
}

/// The layered table as [`FileConfig`]; an error names the key, the value
/// (unless it may be a secret) and where it came from.
fn deserialize(layers: &Layers) -> Result<FileConfig, Retry> {
    for key in layers.table.keys() {
        if !SECTIONS.iter().any(|(s, _)| s == key) {
            let source = layers.source_of(key);
            let hint = if key == "database_url" {
                "the URL is now `url` under [database]".to_owned()
            } else if is_node_key(key) {
                format!("runtime settings live under [node]: write `{key}` there")
            } else {
                "the sections are [database], [node], [server] and [queues.NAME]".to_owned()
            };
            return Err(Retry::No(anyhow::anyhow!(
                "unknown key `{key}` at the top of {source}: {hint}"
            )));
        }
    }
    // `queues` is both a [node] key (the queues a node serves) and the
    // section of push queues: a list at the top meant the former.
    if let Some(v) = layers.table.get("queues").filter(|v| !v.is_table()) {
        let source = layers.source_of("queues");
        return Err(Retry::No(anyhow::anyhow!(
            "`queues` at the top of {source} is {v}: the queues a node serves live under [node] \
             (write `queues = {v}` there); top-level [queues.NAME] tables configure push queues"
        )));
    }
    serde_path_to_error::deserialize(Value::Table(layers.table.clone())).map_err(|e| {
        let e: serde_path_to_error::Error<toml::de::Error> = e;
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // toml appends "in `section`" on lines of its own: one line is enough.
        let inner = inner.lines().next().unwrap_or_default().trim().to_owned();
        // An unknown field is reported at its parent: name the field itself.
        let key = match inner.strip_prefix("unknown field `") {
            Some(rest) => match rest.split('`').next() {
                Some(field) if path == "." => field.to_owned(),
                Some(field) if path == field || path.ends_with(&format!(".{field}")) => {
                    path.clone()
                }
                Some(field) => format!("{path}.{field}"),
                None => path.clone(),
            },
            None => path.clone(),
        };
        let source = layers.source_of(&key);
        if let (Source::Env(_), Some(v), Some(raw)) =
            (&source, layers.get(&key), layers.env_text.get(&key))
            && !v.is_str()
            && !v.is_table()
            && inner.contains("invalid type")
        {
            return Retry::AsText(key, raw.clone());
        }
        Retry::No(match layers.get(&key).filter(|v| !v.is_table()) {
            Some(_) if secret(&key) => anyhow::anyhow!("{key} (from {source}): {inner}"),
            Some(v) => anyhow::anyhow!("{key} = {v} (from {source}): {inner}"),
            None => {
                // A section-wide check (validation): show what was set in it.
                let set: Vec<String> = layers
                    .sources
                    .iter()
                    .filter(|(k, _)| k.starts_with(&format!("{key}.")))
                    .filter_map(|(k, src)| {
                        layers.get(k).map(|v| match secret(k) {
                            true => format!("{k} from {src}"),
                            false => format!("{k} = {v} from {src}"),
                        })
                    })
                    .collect();
                if set.is_empty() {
                    anyhow::anyhow!("[{key}]: {inner}")
                } else {
                    anyhow::anyhow!("[{key}]: {inner} (set: {})", set.join(", "))
                }
            }
        })
    })
}

/// Whether `key` is a setting of `[node]` (to point a top-level one there).
fn is_node_key(key: &str) -> bool {
    let mut t = Table::new();
    t.insert(key.to_owned(), Value::Integer(0));
    match Config::deserialize(Value::Table(t)) {
        Ok(_) => true,
        Err(e) => !e.to_string().contains("unknown field"),
    }
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Table(t) if !t.is_empty() => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        _ => out.push((prefix.to_owned(), v.clone())),
    }
}

fn read(path: &Path) -> anyhow::Result<Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("config file {} is not valid TOML", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn settings(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut argv = vec!["capstan"];
        argv.extend_from_slice(args);
        let cli = Cli::parse_from(argv);
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Settings::resolve(&cli, env.collect::<Vec<_>>().into_iter())
    }

    fn config_file(text: &str) -> (Dir, String) {
        let dir = Dir::new();
        let path = dir.0.join("capstan.toml");
        std::fs::write(&path, text).unwrap();
        let p = path.display().to_string();
        (dir, p)
    }

    /// A temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Self {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("capstan-settings-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn source(s: &Settings, key: &str) -> String {
        s.report()
            .into_iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, v, s)| format!("{v} {s}"))
            .unwrap_or_else(|| panic!("no {key}"))
    }

    #[test]
    fn flags_beat_env_which_beats_the_file_which_beats_defaults() {
        let (_d, path) = config_file(
            "[database]\nurl = \"sqlite://file.db\"\n[node]\ndefault_timeout = \"1m\"\nconcurrency = 7\nclean_batch = 5\n",
        );
        let s = settings(
            &["--config", &path, "serve", "--concurrency", "9"],
            &[
                ("CAPSTAN_NODE_DEFAULT_TIMEOUT", "2m"),
                ("CAPSTAN_NODE_CONCURRENCY", "8"),
                ("CAPSTAN_DATABASE_URL", "sqlite://env.db"),
                ("CAPSTAN_TEST_DATABASE_URL", "postgres://ignored"),
            ],
        )
        .unwrap();
        assert_eq!(s.url, "sqlite://env.db");
        assert_eq!(
            s.config.default_timeout,
            std::time::Duration::from_secs(120)
        );
        assert_eq!(s.config.queues[0].concurrency, 9);
        assert_eq!(s.config.clean_batch, 5);
        assert_eq!(
            source(&s, "node.default_timeout"),
            "\"2m\" env CAPSTAN_NODE_DEFAULT_TIMEOUT"
        );
        assert_eq!(source(&s, "node.concurrency"), "9 flag --concurrency");
        assert_eq!(source(&s, "node.clean_batch"), format!("5 {path}"));
        assert_eq!(source(&s, "node.poll_max"), "\"30s\" default");
    }

    #[test]
    fn every_runtime_setting_can_be_set_from_the_environment() {
        let s = settings(
            &["migrate"],
            &[
                ("CAPSTAN_NODE_QUEUES", "a,b"),
                ("CAPSTAN_NODE_CANCEL_GRACE", "2s"),
                ("CAPSTAN_NODE_POLL_MULTIPLIER", "2.5"),
                ("CAPSTAN_NODE_RETRY", "{kinds = {x = {max_attempts = 4}}}"),
                ("CAPSTAN_NODE_QUEUE", "{b = {concurrency = 3}}"),
            ],
        )
        .unwrap();
        let names: Vec<_> = s
            .config
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.concurrency))
            .collect();
        assert_eq!(names, vec![("a", 100), ("b", 3)]);
        assert_eq!(s.config.cancel_grace, std::time::Duration::from_secs(2));
        assert!((s.config.poll_multiplier - 2.5).abs() < f64::EPSILON);
        assert_eq!(s.config.retry.by_kind["x"].max_attempts, 4);
    }

    #[test]
    fn server_tokens_and_push_queues_come_from_the_file_the_environment_and_flags() {
        let (dir, path) = config_file(
            "[server]\nworker_timeout = \"90s\"\n[queues.hooks]\npush_url = \"https://example.com/h\"\n",
        );
        let hash = capstan_server::hash_token("t");
        let tokens = format!(
            "[{{name = \"ci\", role = \"worker\", queues = [\"a\"], sha256 = \"{hash}\"}}]"
        );
        let s = settings(
            &["--config", &path, "serve", "--listen", "0.0.0.0:9000"],
            &[("CAPSTAN_SERVER_TOKENS", tokens.as_str())],
        )
        .unwrap();
        assert_eq!(s.server.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.server.worker_timeout, std::time::Duration::from_secs(90));
        assert_eq!(s.server.tokens.len(), 1);
        assert_eq!(s.server.tokens[0].queues, vec!["a"]);
        assert!(
            s.server.validate().is_ok(),
            "tokens make another address allowed"
        );
        assert_eq!(s.queues["hooks"].push_url, "https://example.com/h");
        assert_eq!(
            source(&s, "server.listen"),
            "\"0.0.0.0:9000\" flag --listen"
        );
        drop(dir);
        // A typo under [server] is named.
        let (_dir, path) = config_file("[server]\nlisten_on = \"x\"\n");
        let e = settings(&["--config", &path, "serve"], &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen_on"), "{e}");
    }

    #[test]
    fn a_bad_value_names_the_key_the_value_and_its_source() {
        let e = settings(&["migrate"], &[("CAPSTAN_NODE_DEFAULT_TIMEOUT", "soon")]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("node.default_timeout = \"soon\"")
                && e.contains("env CAPSTAN_NODE_DEFAULT_TIMEOUT")
                && e.contains("30s"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            settings(&["migrate"], &[("CAPSTAN_NODE_CONCURENCY", "3")]).unwrap_err()
        );
        assert!(
            e.contains("node.concurency") && e.contains("env CAPSTAN_NODE_CONCURENCY"),
            "{e}"
        );
        let (_d, path) = config_file("queues = [\"a\"]\n");
        let e = format!(
            "{:#}",
            settings(&["--config", &path, "migrate"], &[]).unwrap_err()
        );
        assert!(e.contains("`queues`") && e.contains("[node]"), "{e}");
        let (_d, path) = config_file("database_url = \"sqlite://x.db\"\n");
        let e = format!(
            "{:#}",
            settings(&["--config", &path, "migrate"], &[]).unwrap_err()
        );
        assert!(e.contains("[database]"), "{e}");
    }

    #[test]
    fn serve_flags_replace_per_queue_settings_they_override() {
        let (_d, path) =
            config_file("[node]\nqueues = [\"a\", \"b\"]\n[node.queue.b]\nconcurrency = 3\n");
        let s = settings(&["--config", &path, "serve", "--queues", "a"], &[]).unwrap();
        assert_eq!(s.config.queues.len(), 1);
        let s = settings(&["--config", &path, "serve", "--concurrency", "5"], &[]).unwrap();
        assert!(s.config.queues.iter().all(|q| q.concurrency == 5));
    }

    #[test]
    fn env_values_are_text_where_text_is_wanted_and_env_queues_replace_per_queue_tables() {
        let s = settings(&["migrate"], &[("CAPSTAN_NODE_NODE_ID", "42")]).unwrap();
        assert_eq!(s.config.node_id.map(|n| n.0), Some("42".to_owned()));
        let (_d, path) =
            config_file("[node]\nqueues = [\"a\", \"b\"]\n[node.queue.b]\nconcurrency = 3\n");
        let s = settings(
            &["--config", &path, "migrate"],
            &[("CAPSTAN_NODE_QUEUES", "a")],
        )
        .unwrap();
        assert_eq!(s.config.queues.len(), 1);
    }

    #[test]
    fn the_backends_options_are_settings_too() {
        let (_d, path) =
            config_file("[database.sqlite]\nbusy_timeout = \"10s\"\nsynchronous_full = true\n");
        let s = settings(
            &["--config", &path, "migrate"],
            &[("CAPSTAN_DATABASE_POSTGRES", "{max_connections = 4}")],
        )
        .unwrap();
        assert_eq!(
            s.database.sqlite.busy_timeout,
            std::time::Duration::from_secs(10)
        );
        assert!(s.database.sqlite.synchronous_full);
        assert_eq!(s.database.postgres.max_connections, 4);
        assert_eq!(
            source(&s, "database.postgres.max_connections"),
            "4 env CAPSTAN_DATABASE_POSTGRES"
        );
        let (_d, path) = config_file("[database.sqlite]\nbusy = \"10s\"\n");
        let e = format!(
            "{:#}",
            settings(&["--config", &path, "migrate"], &[]).unwrap_err()
        );
        assert!(
            e.contains("database.sqlite.busy") && e.contains("busy_timeout"),
            "{e}"
        );
    }

    #[test]
    fn an_error_never_prints_a_database_value() {
        let e = settings(&["migrate"], &[("CAPSTAN_DATABASE_PASSWORD", "hunter2")]).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("database.password") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn the_report_names_the_file_for_a_per_queue_concurrency() {
        let (_d, path) =
            config_file("[node]\nqueues = [\"a\", \"b\"]\n[node.queue.a]\nconcurrency = 3\n");
        let s = settings(&["--config", &path, "migrate"], &[]).unwrap();
        assert_eq!(source(&s, "node.concurrency"), "100 default");
        assert_eq!(source(&s, "node.queue.a.concurrency"), format!("3 {path}"));
    }

    #[test]
    fn the_report_redacts_the_database_password() {
        let s = settings(
            &["--database-url", "postgres://u:secret@h/db", "migrate"],
            &[],
        )
        .unwrap();
        let url = source(&s, "database.url");
        assert!(
            !url.contains("secret") && url.contains("flag --database-url"),
            "{url}"
        );
    }
}
