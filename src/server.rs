//! `points serve`: the data folder, first-run initialisation, the sequencer, the checkpointer
//! and the HTTP listener, with graceful shutdown that drains in-flight ops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use tokio::sync::watch;

use crate::api::auth::AuthConfig;
use crate::api::{self, AppState, Limits};
use crate::checkpoint::Checkpoint;
use crate::client::{self, DEFAULT_TTL_MS};
use crate::crypto::{KeyFileError, Keypair};
use crate::op::*;
use crate::store::{Sequencer, Store, StoreConfig, StoreError, Tip, Writer};

/// File name of the issuer key inside the data folder (created on first run).
pub const ISSUER_KEY_FILE: &str = "issuer.key";
/// File name of the checkpoint (log) key inside the data folder.
pub const LOG_KEY_FILE: &str = "log.key";
/// Folder of the sled database inside the data folder.
pub const LEDGER_DIR: &str = "ledger";

/// Everything `points serve` can be told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data folder.
    pub data_dir: PathBuf,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Chain id for a new ledger (random `points.local/xxxxxxxx` if absent).
    pub chain_id: Option<String>,
    /// Settlement currency of a new ledger.
    pub currency: String,
    /// Minor unit digits of that currency.
    pub minor_unit_digits: u8,
    /// Store tunables.
    pub store: StoreConfig,
    /// Request limits.
    pub limits: Limits,
    /// Signed-request authentication of private reads.
    pub auth: AuthConfig,
    /// A new checkpoint is signed at most this often while entries arrive.
    pub checkpoint_interval_ms: u64,
}

impl ServeConfig {
    /// Defaults for a data folder: 127.0.0.1:8700, CNY with 2 digits, 1 s checkpoints.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            chain_id: None,
            currency: "CNY".into(),
            minor_unit_digits: 2,
            store: StoreConfig::default(),
            limits: Limits::default(),
            auth: AuthConfig::default(),
            checkpoint_interval_ms: 1000,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The listener.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error("{0}")]
    Config(String),
}

/// What first-run initialisation created.
#[derive(Debug, Clone)]
pub struct Created {
    /// Path of the new issuer key file.
    pub issuer_key_path: PathBuf,
    /// The issuer's public key.
    pub issuer: AccountId,
    /// The chain id.
    pub chain_id: String,
}

/// An opened ledger, ready to serve.
pub struct Opened {
    /// The store.
    pub store: Arc<Store>,
    /// The writer (not yet started).
    pub writer: Writer,
    /// The key that signs checkpoints.
    pub log_key: Keypair,
    /// Set when this run created the ledger.
    pub created: Option<Created>,
}

fn load_or_create_key(path: &Path) -> Result<(Keypair, bool), KeyFileError> {
    if path.exists() {
        Ok((Keypair::read_file(path)?, false))
    } else {
        let k = Keypair::generate();
        k.write_file(path)?;
        Ok((k, true))
    }
}

/// Opens the ledger in the data folder, creating it (keys and genesis) if the folder is empty.
pub fn open_or_init(config: &ServeConfig) -> Result<Opened, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(StoreError::Io)?;
    let store = Arc::new(Store::open(
        &config.data_dir.join(LEDGER_DIR),
        &config.store,
    )?);
    let mut writer = Writer::open(store.clone())?;
    let log_key_path = config.data_dir.join(LOG_KEY_FILE);
    let mut created = None;
    let log_key = if writer.tip().size == 0 {
        let chain_id = match &config.chain_id {
            Some(c) => c.clone(),
            None => {
                let mut b = [0u8; 4];
                OsRng.fill_bytes(&mut b);
                format!("points.local/{}", hex::encode(b))
            }
        };
        if !crate::rules::valid_chain_id(&chain_id) {
            return Err(ServeError::Config(format!(
                "chain id `{chain_id}`: use 1 to 64 characters of a-z 0-9 . - _ /"
            )));
        }
        let issuer_path = config.data_dir.join(ISSUER_KEY_FILE);
        let (issuer, _) = load_or_create_key(&issuer_path)?;
        let (log_key, _) = load_or_create_key(&log_key_path)?;
        let genesis = client::sign_op(
            &issuer,
            &chain_id,
            OpId(0),
            client::now_ms() + DEFAULT_TTL_MS,
            Op::Genesis(Genesis {
                currency: config.currency.clone(),
                minor_unit_digits: config.minor_unit_digits,
                checkpoint_key: AccountId(log_key.public_key()),
            }),
        );
        let mut results = writer.commit_group(vec![genesis])?;
        if let Some(Err(r)) = results.pop() {
            return Err(ServeError::Config(format!("genesis refused: {r}")));
        }
        created = Some(Created {
            issuer_key_path: issuer_path,
            issuer: AccountId(issuer.public_key()),
            chain_id,
        });
        log_key
    } else {
        let log_key = Keypair::read_file(&log_key_path)?;
        let info = store
            .info()?
            .ok_or_else(|| ServeError::Config("the ledger has entries but no genesis".into()))?;
        if info.checkpoint_key.0 != log_key.public_key() {
            return Err(ServeError::Config(format!(
                "{} is not the checkpoint key named in this ledger's genesis ({})",
                log_key_path.display(),
                info.checkpoint_key
            )));
        }
        log_key
    };
    Ok(Opened {
        store,
        writer,
        log_key,
        created,
    })
}

/// Signs checkpoints of the durable tip.
pub struct Checkpointer {
    store: Arc<Store>,
    key: Keypair,
    origin: String,
    lock: tokio::sync::Mutex<u64>,
}

impl Checkpointer {
    /// A checkpointer for `store`, signing with `key` under `origin` (the chain id).
    pub fn new(
        store: Arc<Store>,
        key: Keypair,
        origin: String,
    ) -> Result<Checkpointer, StoreError> {
        let last = store.latest_checkpoint()?.map_or(0, |(s, _)| s);
        Ok(Checkpointer {
            store,
            key,
            origin,
            lock: tokio::sync::Mutex::new(last),
        })
    }

    /// The C2SP key name checkpoints are signed under.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Signs and stores a checkpoint of `tip` unless one of that size exists; returns the
    /// latest checkpoint (size, note).
    pub async fn checkpoint(&self, tip: Tip) -> Result<(u64, String), StoreError> {
        let mut last = self.lock.lock().await;
        if tip.size > *last {
            let cp = Checkpoint {
                origin: self.origin.clone(),
                size: tip.size,
                root: tip.root.0,
                head: tip.head.0,
                time_ms: client::now_ms(),
            };
            let note = cp.sign(&self.origin, &self.key);
            let store = self.store.clone();
            let size = tip.size;
            let n = note.clone();
            tokio::task::spawn_blocking(move || store.put_checkpoint(size, &n))
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e)))??;
            *last = tip.size;
            return Ok((tip.size, note));
        }
        match self.store.latest_checkpoint()? {
            Some(c) => Ok(c),
            None => Err(StoreError::Corrupt {
                seq: 0,
                detail: "no checkpoint stored".into(),
            }),
        }
    }

    async fn run(self: Arc<Self>, mut tip: watch::Receiver<Tip>, interval_ms: u64) {
        loop {
            let current = *tip.borrow_and_update();
            if current.size > 0 {
                if let Err(e) = self.checkpoint(current).await {
                    tracing::error!(error = %e, "checkpoint failed");
                }
            }
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
            if tip.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A server running in this process.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// What this run created, if anything.
    pub created: Option<Created>,
    /// The ledger's chain id.
    pub chain_id: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Base URL, e.g. `http://127.0.0.1:8700`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, drains in-flight ones, stops the sequencer after its queue
    /// is empty and the last group is durable.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .await
            .map_err(|e| ServeError::Config(format!("server task failed: {e}")))?
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let task = &mut self.task;
        task.await
            .map_err(|e| ServeError::Config(format!("server task failed: {e}")))?
    }

    /// A sender that triggers shutdown (e.g. from a signal handler).
    pub fn take_shutdown(&mut self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// Opens the ledger, binds the listener and serves in the background.
pub async fn start(config: ServeConfig) -> Result<Running, ServeError> {
    let cfg = config.clone();
    let opened = tokio::task::spawn_blocking(move || open_or_init(&cfg))
        .await
        .map_err(|e| ServeError::Config(format!("open failed: {e}")))??;
    let Opened {
        store,
        writer,
        log_key,
        created,
    } = opened;
    let info = store
        .info()?
        .ok_or_else(|| ServeError::Config("the ledger has no genesis".into()))?;
    let (sequencer, writer_thread) = Sequencer::start(writer, &config.store);
    let checkpointer = Arc::new(Checkpointer::new(
        store.clone(),
        log_key,
        info.chain_id.clone(),
    )?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let cp_task = tokio::spawn(
        checkpointer
            .clone()
            .run(sequencer.watch_tip(), config.checkpoint_interval_ms),
    );
    let app = AppState::new(
        store.clone(),
        sequencer.clone(),
        config.limits.clone(),
        config.auth.clone(),
        checkpointer.clone(),
    )?;
    let router = api::router(app);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let final_checkpointer = checkpointer.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        // Every handler has returned: drop our handle so the sequencer drains and stops.
        let final_tip = sequencer.watch_tip();
        drop(sequencer);
        cp_task.abort();
        let joined = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("the sequencer thread did not stop cleanly");
        }
        // A last checkpoint of the final tip, so a restart serves it at once.
        let tip = *final_tip.borrow();
        if tip.size > 0 {
            if let Err(e) = final_checkpointer.checkpoint(tip).await {
                tracing::error!(error = %e, "final checkpoint failed");
            }
        }
        if let Err(e) = store.sync() {
            tracing::error!(error = %e, "final sync failed");
        }
        served.map_err(|source| ServeError::Listen { addr, source })
    });
    Ok(Running {
        addr,
        created,
        chain_id: info.chain_id,
        shutdown: Some(tx),
        task,
    })
}
