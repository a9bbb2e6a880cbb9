//! `SimDisk`: a node's files (real ones under its data directory, or buffers in memory),
//! plus a model of the OS page cache that a simulated power cut can tear.
//!
//! What it injects, and why that stays recoverable:
//! - **Process crash** ([`SimDisk::crash`], a `kill`): the page cache survives, so nothing
//!   written is lost. Only open handles die: a handle opened before the crash fails every
//!   later call, which catches a zombie task still writing after its node was killed.
//! - **Power loss** ([`SimDisk::power_loss`]): every change not made durable is, per file and
//!   per seed, kept whole, cut at a random 512-byte sector boundary, or cut with the next
//!   sector torn (filled with garbage or zeros). Writes reach the platter in the order they
//!   were issued, so what survives of a file is always a prefix of its unsynced operations,
//!   the last one possibly cut. Unsynced name changes (create, rename, remove) of each
//!   directory are undone from a random point on, newest first. Everything a `sync` or
//!   `sync_dir` covered is kept exactly: a log engine that syncs what it acknowledges loses
//!   nothing, and one that does not can lose any unsynced suffix — which is the real
//!   failure the checks look for (this follows FoundationDB's AsyncFileNonDurable).
//! - **Power loss inside an fsync** ([`SimDisk::arm_power_loss`]): a power cut can strike
//!   while a `sync` is in flight. Armed, the disk cuts the power at the next `sync` or
//!   `sync_dir` call, before that sync takes effect, and the call fails — so the data the
//!   caller was about to make durable is torn like any unsynced data, and the caller never
//!   learns it was synced. Without this, a log that syncs inside `append` could only ever
//!   lose power between appends, and torn tails of fsynced logs would never be exercised.
//! - **Sync latency**: each `sync`/`sync_dir` adds a seeded delay to a debt that the node
//!   shell sleeps off ([`SimDisk::take_sync_debt`]), so fsync-per-append costs simulated time.
//!
//! How: the bytes live in one of two backings ([`Backing`]), chosen when the disk is made:
//! real files under the node's data directory ([`SimDisk::new`], what `ksim run` leaves to
//! inspect), or one buffer per file in memory ([`SimDisk::in_memory`], a sweep's: no file
//! system calls, nothing written unless the seed is kept). Either holds what reads see,
//! the page cache. The model on top is the same for both, and so are its seeded draws: a
//! run's trace does not depend on the backing. For each unsynced change the model keeps an
//! undo record (the bytes it overwrote, the old length), so a power cut rolls each file back
//! to a chosen point by undoing the newest changes. Removed and replaced files are moved to
//! a stash (`.ksim-stash/`, a name in memory) until their directory is synced, so a power
//! cut can bring them back. After a run, [`SimDisk::take_image`] hands the files as a
//! restarted process would find them to the checkers as a read-only [`DiskImage`].
//!
//! Simplifications: directories are durable once created; `rename` works within one
//! directory (all the log engine needs); the stash lives inside the disk's root.

use super::image::DiskImage;
use super::{calls, Disk, DiskFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Size of a disk sector: the unit a power cut tears.
pub const SECTOR: u64 = 512;

const STASH_DIR: &str = ".ksim-stash";

/// Where a [`SimDisk`] keeps its files' bytes. The model, and every seeded draw it makes,
/// is the same for both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backing {
    /// Real files under the disk's root directory ([`SimDisk::new`]).
    #[default]
    Files,
    /// One buffer per file in memory ([`SimDisk::in_memory`]): no file system calls.
    Memory,
}

/// Tunables of a [`SimDisk`].
#[derive(Clone, Debug)]
pub struct SimDiskConfig {
    /// Simulated cost of one `sync` or `sync_dir`: drawn uniformly from this range.
    pub sync_latency: (Duration, Duration),
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            sync_latency: (Duration::from_micros(200), Duration::from_millis(2)),
        }
    }
}

/// What a power cut did to one file or directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PowerLossEffect {
    /// Path relative to the disk root (or the stash path of a removed file).
    pub path: String,
    /// `kept`, `lost`, `cut@<pos>` or `torn@<pos>` for a file; `undone <n> of <m>` for a dir.
    pub outcome: String,
    /// Unsynced bytes that did not survive.
    pub bytes_lost: u64,
}

/// Everything a power cut changed, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PowerLossReport {
    /// One entry per file or directory that had unsynced changes.
    pub effects: Vec<PowerLossEffect>,
}

impl PowerLossReport {
    /// Total unsynced bytes lost.
    pub fn bytes_lost(&self) -> u64 {
        self.effects.iter().map(|e| e.bytes_lost).sum()
    }
}

/// Counters of a disk's activity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// File syncs.
    pub syncs: u64,
    /// Directory syncs.
    pub dir_syncs: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Power cuts suffered.
    pub power_losses: u64,
}

/// A node's disk in the simulation. Cloning shares the same disk.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

type InodeId = u64;

/// A memory-backed file's bytes: shared by the inode and its open handles, so a handle keeps
/// them alive after the inode is gone (like an open file whose name was removed).
type Bytes = Arc<Mutex<Vec<u8>>>;

/// Where the bytes of a disk are.
enum Store {
    /// In real files under `root`.
    Files { root: PathBuf },
    /// In each inode's buffer; the directories that exist (the root is `""`).
    Memory { dirs: BTreeSet<PathBuf> },
}

struct State {
    store: Store,
    rng: StdRng,
    config: SimDiskConfig,
    /// Bumped by every crash and power cut; handles from an older generation are dead.
    generation: u64,
    names: BTreeMap<PathBuf, InodeId>,
    inodes: BTreeMap<InodeId, Inode>,
    /// Unsynced name changes, per directory, oldest first.
    dir_ops: BTreeMap<PathBuf, Vec<DirOp>>,
    next_inode: InodeId,
    sync_debt: Duration,
    stats: SimDiskStats,
    /// The power goes at the next sync.
    armed: bool,
    /// What an armed power cut did, once it struck.
    struck: Option<PowerLossReport>,
}

struct Inode {
    /// Where the file is now, relative to the root: its name, or its stash path once removed.
    at: PathBuf,
    len: u64,
    /// Changes since the last sync, oldest first.
    pending: Vec<FileOp>,
    /// Its bytes on a memory-backed disk (a file-backed one keeps them in the file `at`).
    bytes: Option<Bytes>,
}

enum FileOp {
    Write {
        offset: u64,
        len: u64,
        old_len: u64,
        /// The bytes this write overwrote, `[offset, min(offset + len, old_len))`.
        before: Vec<u8>,
    },
    SetLen {
        old_len: u64,
        new_len: u64,
        /// The bytes a shrink removed, `[new_len, old_len)`.
        removed: Vec<u8>,
    },
}

enum DirOp {
    Create {
        name: PathBuf,
        inode: InodeId,
    },
    Rename {
        from: PathBuf,
        to: PathBuf,
        inode: InodeId,
        replaced: Option<InodeId>,
    },
    Remove {
        name: PathBuf,
        inode: InodeId,
    },
}

/// An open file of a [`SimDisk`].
pub struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    content: Content,
    generation: u64,
}

/// An open file's bytes, in either backing: the same calls as a real file's.
enum Content {
    File(File),
    Memory(Bytes),
}

fn lock_bytes(bytes: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    bytes
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Content {
    fn len(&self) -> io::Result<u64> {
        match self {
            Content::File(file) => Ok(file.metadata()?.len()),
            Content::Memory(bytes) => Ok(lock_bytes(bytes).len() as u64),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Content::File(file) => file.read_at(buf, offset),
            Content::Memory(bytes) => {
                let bytes = lock_bytes(bytes);
                let start = usize::try_from(offset).map_or(bytes.len(), |o| o.min(bytes.len()));
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Content::File(file) => file.read_exact_at(buf, offset),
            Content::Memory(_) => {
                if self.read_at(buf, offset)? < buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ));
                }
                Ok(())
            }
        }
    }

    fn write_all_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        match self {
            Content::File(file) => file.write_all_at(data, offset),
            // Like `pwrite`, writing nothing changes nothing, even past the end.
            Content::Memory(_) if data.is_empty() => Ok(()),
            Content::Memory(bytes) => {
                let mut bytes = lock_bytes(bytes);
                let offset = usize::try_from(offset).map_err(io::Error::other)?;
                if offset > bytes.len() {
                    bytes.resize(offset, 0);
                }
                let overlap = data.len().min(bytes.len() - offset);
                bytes[offset..offset + overlap].copy_from_slice(&data[..overlap]);
                bytes.extend_from_slice(&data[overlap..]);
                Ok(())
            }
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            Content::File(file) => file.set_len(len),
            Content::Memory(bytes) => {
                let len = usize::try_from(len).map_err(io::Error::other)?;
                lock_bytes(bytes).resize(len, 0);
                Ok(())
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file: {}", path.display()),
    )
}

fn stash_path(inode: InodeId) -> PathBuf {
    Path::new(STASH_DIR).join(inode.to_string())
}

impl SimDisk {
    /// A disk of real files rooted at `root`; files already there are taken as durable.
    pub fn new(root: impl Into<PathBuf>, seed: u64, config: SimDiskConfig) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let mut state = State::new(Store::Files { root }, seed, config);
        state.scan(Path::new(""))?;
        Ok(SimDisk::of(state))
    }

    /// An empty disk whose files are buffers in memory: nothing touches the file system.
    pub fn in_memory(seed: u64, config: SimDiskConfig) -> Self {
        let dirs = BTreeSet::from([PathBuf::new()]);
        SimDisk::of(State::new(Store::Memory { dirs }, seed, config))
    }

    /// A disk of `backing`: real files under `root`, or in memory (`root` unused).
    pub fn with_backing(
        backing: Backing,
        root: impl Into<PathBuf>,
        seed: u64,
        config: SimDiskConfig,
    ) -> io::Result<Self> {
        match backing {
            Backing::Files => SimDisk::new(root, seed, config),
            Backing::Memory => Ok(SimDisk::in_memory(seed, config)),
        }
    }

    fn of(state: State) -> Self {
        SimDisk {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// Where its bytes are.
    pub fn backing(&self) -> Backing {
        match lock(&self.state).store {
            Store::Files { .. } => Backing::Files,
            Store::Memory { .. } => Backing::Memory,
        }
    }

    /// The root directory of a file-backed disk (`None` in memory).
    pub fn root(&self) -> Option<PathBuf> {
        match &lock(&self.state).store {
            Store::Files { root } => Some(root.clone()),
            Store::Memory { .. } => None,
        }
    }

    /// The process using this disk crashed: the page cache survives, open handles die.
    pub fn crash(&self) {
        lock(&self.state).generation += 1;
    }

    /// The power was cut: every unsynced change is kept, cut or torn per the seed.
    pub fn power_loss(&self) -> io::Result<PowerLossReport> {
        lock(&self.state).power_loss()
    }

    /// Arms a power cut for the next `sync` or `sync_dir`: it strikes before that sync
    /// takes effect, and the sync fails. See [`SimDisk::disarm`].
    pub fn arm_power_loss(&self) {
        let mut state = lock(&self.state);
        state.armed = true;
        state.struck = None;
    }

    /// Disarms; returns what the armed power cut did if it struck (then the power is
    /// already off: every handle is dead), or `None` if no sync came.
    pub fn disarm(&self) -> Option<PowerLossReport> {
        let mut state = lock(&self.state);
        state.armed = false;
        state.struck.take()
    }

    /// Simulated time owed for syncs since the last call; the shell sleeps it off.
    pub fn take_sync_debt(&self) -> Duration {
        std::mem::take(&mut lock(&self.state).sync_debt)
    }

    /// Activity counters.
    pub fn stats(&self) -> SimDiskStats {
        lock(&self.state).stats.clone()
    }

    /// Bytes written but not yet durable, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        let state = lock(&self.state);
        state
            .inodes
            .values()
            .flat_map(|inode| &inode.pending)
            .map(|op| match op {
                FileOp::Write { len, .. } => *len,
                FileOp::SetLen { .. } => 0,
            })
            .sum()
    }

    /// A copy of the files and directories as a process starting now would find them: every
    /// named file with what reads see (the stash left out). Changes nothing.
    pub fn image(&self) -> io::Result<DiskImage> {
        let state = lock(&self.state);
        let mut files = BTreeMap::new();
        for (name, id) in &state.names {
            let inode = &state.inodes[id];
            let content = state.content(inode)?;
            let mut bytes = vec![0u8; inode.len as usize];
            content.read_exact_at(&mut bytes, 0)?;
            files.insert(name.clone(), bytes);
        }
        Ok(DiskImage::new(files, state.dirs()?))
    }

    /// [`SimDisk::image`], for when the disk is done with (the run is over): a memory-backed
    /// disk hands over its buffers instead of copying them and is left empty (every clone
    /// sees no file after); a file-backed one is copied and left as it is.
    pub fn take_image(&self) -> io::Result<DiskImage> {
        let mut state = lock(&self.state);
        let Store::Memory { dirs } = &mut state.store else {
            drop(state);
            return self.image();
        };
        let dirs = std::mem::take(dirs);
        let names = std::mem::take(&mut state.names);
        let mut inodes = std::mem::take(&mut state.inodes);
        state.dir_ops.clear();
        let files = names
            .into_iter()
            .map(|(name, id)| {
                let bytes = inodes
                    .remove(&id)
                    .and_then(|inode| inode.bytes)
                    .map(|bytes| std::mem::take(&mut *lock_bytes(&bytes)))
                    .unwrap_or_default();
                (name, bytes)
            })
            .collect();
        Ok(DiskImage::new(files, dirs))
    }
}

impl State {
    fn new(store: Store, seed: u64, config: SimDiskConfig) -> State {
        State {
            store,
            rng: StdRng::seed_from_u64(seed),
            config,
            generation: 0,
            names: BTreeMap::new(),
            inodes: BTreeMap::new(),
            dir_ops: BTreeMap::new(),
            next_inode: 1,
            sync_debt: Duration::ZERO,
            stats: SimDiskStats::default(),
            armed: false,
            struck: None,
        }
    }

    /// The real path of `relative` on a file-backed disk.
    fn real(root: &Path, relative: &Path) -> PathBuf {
        root.join(relative)
    }

    fn scan(&mut self, dir: &Path) -> io::Result<()> {
        let Store::Files { root } = &self.store else {
            return Ok(());
        };
        let mut entries: Vec<_> =
            fs::read_dir(State::real(root, dir))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if dir.as_os_str().is_empty() && name == STASH_DIR {
                continue;
            }
            let relative = dir.join(&name);
            if entry.file_type()?.is_dir() {
                self.scan(&relative)?;
            } else {
                let len = entry.metadata()?.len();
                let id = self.new_inode(relative.clone(), len, None);
                self.names.insert(relative, id);
            }
        }
        Ok(())
    }

    /// Every directory, the root (`""`) included, the stash left out.
    fn dirs(&self) -> io::Result<BTreeSet<PathBuf>> {
        match &self.store {
            Store::Memory { dirs } => Ok(dirs.clone()),
            Store::Files { root } => {
                let mut dirs = BTreeSet::from([PathBuf::new()]);
                let mut todo = vec![PathBuf::new()];
                while let Some(dir) = todo.pop() {
                    for entry in fs::read_dir(State::real(root, &dir))? {
                        let entry = entry?;
                        let relative = dir.join(entry.file_name());
                        if entry.file_type()?.is_dir() && relative != Path::new(STASH_DIR) {
                            dirs.insert(relative.clone());
                            todo.push(relative);
                        }
                    }
                }
                Ok(dirs)
            }
        }
    }

    fn is_dir(&self, dir: &Path) -> bool {
        match &self.store {
            Store::Files { root } => State::real(root, dir).is_dir(),
            Store::Memory { dirs } => dirs.contains(dir),
        }
    }

    fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let names = &self.names;
        match &mut self.store {
            Store::Files { root } => fs::create_dir_all(State::real(root, dir)),
            Store::Memory { dirs } => {
                let mut at = Some(dir);
                while let Some(path) = at {
                    if names.contains_key(path) {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("a file is in the way: {}", path.display()),
                        ));
                    }
                    at = path.parent();
                }
                let mut at = Some(dir);
                while let Some(path) = at {
                    if !dirs.insert(path.to_path_buf()) {
                        break;
                    }
                    at = path.parent();
                }
                Ok(())
            }
        }
    }

    /// Opens an inode's bytes.
    fn content(&self, inode: &Inode) -> io::Result<Content> {
        match (&inode.bytes, &self.store) {
            (Some(bytes), _) => Ok(Content::Memory(bytes.clone())),
            (None, Store::Files { root }) => Ok(Content::File(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(State::real(root, &inode.at))?,
            )),
            (None, Store::Memory { .. }) => Err(io::Error::other("an inode without bytes")),
        }
    }

    /// Makes the empty file `path` (no name change recorded): its bytes, and its buffer if
    /// it is in memory.
    fn create_content(&self, path: &Path) -> io::Result<(Content, Option<Bytes>)> {
        match &self.store {
            Store::Files { root } => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(State::real(root, path))?;
                Ok((Content::File(file), None))
            }
            Store::Memory { dirs } => {
                if !dirs.contains(&parent_of(path)) {
                    return Err(not_found(&parent_of(path)));
                }
                if dirs.contains(path) {
                    return Err(io::Error::other(format!(
                        "is a directory: {}",
                        path.display()
                    )));
                }
                let bytes = Bytes::default();
                Ok((Content::Memory(bytes.clone()), Some(bytes)))
            }
        }
    }

    /// Moves a file's bytes from one name to another (nothing to do in memory).
    fn move_bytes(&self, from: &Path, to: &Path) -> io::Result<()> {
        match &self.store {
            Store::Files { root } => {
                if to.starts_with(STASH_DIR) {
                    fs::create_dir_all(State::real(root, Path::new(STASH_DIR)))?;
                }
                fs::rename(State::real(root, from), State::real(root, to))
            }
            Store::Memory { dirs } => {
                if dirs.contains(to) {
                    return Err(io::Error::other(format!(
                        "is a directory: {}",
                        to.display()
                    )));
                }
                Ok(())
            }
        }
    }

    fn new_inode(&mut self, relative: PathBuf, len: u64, bytes: Option<Bytes>) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            id,
            Inode {
                at: relative,
                len,
                pending: Vec::new(),
                bytes,
            },
        );
        id
    }

    fn charge_sync(&mut self) {
        let (low, high) = self.config.sync_latency;
        let cost = if high > low {
            self.rng.gen_range(low..=high)
        } else {
            low
        };
        self.sync_debt += cost;
    }

    /// Moves a removed or replaced file aside so a power cut can bring it back.
    fn stash(&mut self, inode: InodeId) -> io::Result<()> {
        let stash = stash_path(inode);
        let from = self.inodes[&inode].at.clone();
        self.move_bytes(&from, &stash)?;
        self.inodes
            .get_mut(&inode)
            .expect("stashing a known inode")
            .at = stash;
        Ok(())
    }

    /// A stashed file's removal became durable: its bytes are gone for good.
    fn forget(&mut self, inode: InodeId) -> io::Result<()> {
        if let Some(node) = self.inodes.remove(&inode) {
            if let Store::Files { root } = &self.store {
                fs::remove_file(State::real(root, &node.at))?;
            }
        }
        Ok(())
    }

    fn commit_dir_ops(&mut self, ops: Vec<DirOp>) -> io::Result<()> {
        for op in ops {
            match op {
                DirOp::Create { .. } => {}
                DirOp::Rename { replaced, .. } => {
                    if let Some(old) = replaced {
                        self.forget(old)?;
                    }
                }
                DirOp::Remove { inode, .. } => self.forget(inode)?,
            }
        }
        Ok(())
    }

    fn undo_dir_op(&mut self, op: DirOp) -> io::Result<()> {
        match op {
            DirOp::Create { name, inode } => {
                self.names.remove(&name);
                self.forget(inode)?;
            }
            DirOp::Rename {
                from,
                to,
                inode,
                replaced,
            } => {
                self.move_bytes(&to, &from)?;
                self.names.remove(&to);
                self.names.insert(from.clone(), inode);
                if let Some(node) = self.inodes.get_mut(&inode) {
                    node.at = from;
                }
                if let Some(old) = replaced {
                    self.unstash(old, to)?;
                }
            }
            DirOp::Remove { name, inode } => self.unstash(inode, name)?,
        }
        Ok(())
    }

    fn unstash(&mut self, inode: InodeId, name: PathBuf) -> io::Result<()> {
        let from = self.inodes[&inode].at.clone();
        self.move_bytes(&from, &name)?;
        self.inodes
            .get_mut(&inode)
            .expect("unstashing a known inode")
            .at = name.clone();
        self.names.insert(name, inode);
        Ok(())
    }

    /// If armed, the power goes now, before the sync the caller is making.
    fn strike_if_armed(&mut self) -> io::Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
        crate::coverage::hit(crate::coverage::Mark::PowerLossInsideFsync);
        let report = self.power_loss()?;
        self.struck = Some(report);
        Err(io::Error::other("power lost during fsync"))
    }

    fn power_loss(&mut self) -> io::Result<PowerLossReport> {
        self.armed = false;
        self.generation += 1;
        self.stats.power_losses += 1;
        self.sync_debt = Duration::ZERO;
        let mut report = PowerLossReport::default();

        let ids: Vec<InodeId> = self
            .inodes
            .iter()
            .filter(|(_, inode)| !inode.pending.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let effect = self.lose_file_tail(id)?;
            report.effects.push(effect);
        }

        let dirs: Vec<PathBuf> = self.dir_ops.keys().cloned().collect();
        for dir in dirs {
            let mut ops = self.dir_ops.remove(&dir).unwrap_or_default();
            if ops.is_empty() {
                continue;
            }
            let total = ops.len();
            let keep = if self.rng.gen_bool(1.0 / 3.0) {
                total
            } else {
                self.rng.gen_range(0..total)
            };
            let undone = ops.split_off(keep);
            let undone_count = undone.len();
            self.commit_dir_ops(ops)?;
            for op in undone.into_iter().rev() {
                self.undo_dir_op(op)?;
            }
            report.effects.push(PowerLossEffect {
                path: format!("{}/", dir.display()),
                outcome: format!("undone {undone_count} of {total}"),
                bytes_lost: 0,
            });
        }
        report.effects.sort_by(|a, b| a.path.cmp(&b.path));
        if report.bytes_lost() > 0 {
            crate::coverage::hit(crate::coverage::Mark::PowerLossLosesUnsyncedBytes);
        }
        Ok(report)
    }

    /// Rolls one file back to a seeded point in its unsynced history.
    fn lose_file_tail(&mut self, id: InodeId) -> io::Result<PowerLossEffect> {
        let file = self.content(&self.inodes[&id])?;
        let inode = self
            .inodes
            .get_mut(&id)
            .expect("inode with pending changes");
        let ops = std::mem::take(&mut inode.pending);
        let path = inode.at.display().to_string();
        let len_before = inode.len;

        // Cut points, in write-back order: 0 = nothing written back; then for each op its
        // interior sector boundaries and its end. The last point keeps everything.
        let mut points: Vec<(usize, Option<u64>)> = vec![(0, None)];
        for (index, op) in ops.iter().enumerate() {
            if let FileOp::Write { offset, len, .. } = op {
                let mut boundary = (offset / SECTOR + 1) * SECTOR;
                while boundary < offset + len {
                    points.push((index, Some(boundary)));
                    boundary += SECTOR;
                }
            }
            points.push((index + 1, None));
        }
        let keep_all = self.rng.gen_bool(1.0 / 3.0);
        let chosen = if keep_all {
            points.len() - 1
        } else {
            self.rng.gen_range(0..points.len() - 1)
        };
        let (applied, cut) = points[chosen];

        // Undo the ops after the cut point, newest first; the op the cut falls inside is
        // undone only from the cut on.
        let mut len = len_before;
        let partial = cut.map(|at| (applied, at));
        for (index, op) in ops.iter().enumerate().rev() {
            if index < applied {
                break;
            }
            match op {
                FileOp::Write {
                    offset,
                    old_len,
                    before,
                    ..
                } => {
                    let from = match partial {
                        Some((i, at)) if i == index => at,
                        _ => *offset,
                    };
                    if from < *old_len {
                        let skip = (from - offset) as usize;
                        if skip < before.len() {
                            file.write_all_at(&before[skip..], from)?;
                        }
                    }
                    len = (*old_len).max(from);
                    file.set_len(len)?;
                }
                FileOp::SetLen {
                    old_len,
                    new_len,
                    removed,
                } => {
                    file.set_len(*old_len)?;
                    if old_len > new_len {
                        file.write_all_at(removed, *new_len)?;
                    }
                    len = *old_len;
                }
            }
        }

        // A torn sector: the next chunk that would have been written holds junk instead.
        let mut outcome = match (keep_all, cut, applied) {
            (true, _, _) => "kept".to_string(),
            (false, Some(at), _) => format!("cut@{at}"),
            (false, None, 0) => "lost".to_string(),
            (false, None, _) => format!("cut@{len}"),
        };
        if !keep_all && self.rng.gen_bool(0.5) {
            let next = match cut {
                Some(at) => ops.get(applied).map(|op| (op, at)),
                None => ops.get(applied).and_then(|op| match op {
                    FileOp::Write { offset, .. } => Some((op, *offset)),
                    FileOp::SetLen { .. } => None,
                }),
            };
            if let Some((FileOp::Write { offset, len: n, .. }, start)) = next {
                let end = ((start / SECTOR + 1) * SECTOR).min(offset + n);
                if end > start {
                    let mut junk = vec![0u8; (end - start) as usize];
                    if self.rng.gen_bool(0.5) {
                        self.rng.fill(&mut junk[..]);
                    }
                    file.write_all_at(&junk, start)?;
                    len = len.max(end);
                    outcome = format!("torn@{start}");
                }
            }
        }

        let inode = self.inodes.get_mut(&id).expect("inode still present");
        inode.len = len;
        let written: u64 = ops
            .iter()
            .map(|op| match op {
                FileOp::Write { len, .. } => *len,
                FileOp::SetLen { .. } => 0,
            })
            .sum();
        let kept: u64 = ops[..applied]
            .iter()
            .map(|op| match op {
                FileOp::Write { len, .. } => *len,
                FileOp::SetLen { .. } => 0,
            })
            .sum::<u64>()
            + match (cut, ops.get(applied)) {
                (Some(at), Some(FileOp::Write { offset, .. })) => at - offset,
                _ => 0,
            };
        Ok(PowerLossEffect {
            path,
            outcome,
            bytes_lost: written.saturating_sub(kept),
        })
    }
}

impl Disk for SimDisk {
    type File = SimFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        lock(&self.state).create_dir_all(dir)
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        calls::count(|c| c.metadata += 1);
        let mut state = lock(&self.state);
        let generation = state.generation;
        if let Some(&id) = state.names.get(path) {
            // Truncating an existing file is a change to its content, not to its name.
            let content = state.content(&state.inodes[&id])?;
            let old_len = state.inodes[&id].len;
            let mut removed = vec![0u8; old_len as usize];
            content.read_exact_at(&mut removed, 0)?;
            content.set_len(0)?;
            let inode = state.inodes.get_mut(&id).expect("named inode");
            inode.pending.push(FileOp::SetLen {
                old_len,
                new_len: 0,
                removed,
            });
            inode.len = 0;
            return Ok(SimFile {
                state: self.state.clone(),
                inode: id,
                content,
                generation,
            });
        }
        let (content, bytes) = state.create_content(path)?;
        let id = state.new_inode(path.to_path_buf(), 0, bytes);
        state.names.insert(path.to_path_buf(), id);
        state
            .dir_ops
            .entry(parent_of(path))
            .or_default()
            .push(DirOp::Create {
                name: path.to_path_buf(),
                inode: id,
            });
        Ok(SimFile {
            state: self.state.clone(),
            inode: id,
            content,
            generation,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        calls::count(|c| c.metadata += 1);
        let state = lock(&self.state);
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        let content = state.content(&state.inodes[&id])?;
        Ok(SimFile {
            state: self.state.clone(),
            inode: id,
            content,
            generation: state.generation,
        })
    }

    fn exists(&self, path: &Path) -> bool {
        lock(&self.state).names.contains_key(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        calls::count(|c| c.metadata += 1);
        let state = lock(&self.state);
        if !state.is_dir(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|name| name.parent() == Some(dir))
            .filter_map(|name| name.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        calls::count(|c| c.metadata += 1);
        let mut state = lock(&self.state);
        let dir = parent_of(from);
        if parent_of(to) != dir {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimDisk renames only within one directory",
            ));
        }
        let id = *state.names.get(from).ok_or_else(|| not_found(from))?;
        if from == to {
            // POSIX: renaming a file to its own name does nothing.
            return Ok(());
        }
        let replaced = state.names.get(to).copied();
        if let Some(old) = replaced {
            state.stash(old)?;
        }
        state.move_bytes(from, to)?;
        state.inodes.get_mut(&id).expect("named inode").at = to.to_path_buf();
        state.names.remove(from);
        state.names.insert(to.to_path_buf(), id);
        state.dir_ops.entry(dir).or_default().push(DirOp::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
            inode: id,
            replaced,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        calls::count(|c| c.metadata += 1);
        let mut state = lock(&self.state);
        let id = state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.stash(id)?;
        state
            .dir_ops
            .entry(parent_of(path))
            .or_default()
            .push(DirOp::Remove {
                name: path.to_path_buf(),
                inode: id,
            });
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        calls::count(|c| c.dir_syncs += 1);
        let mut state = lock(&self.state);
        state.strike_if_armed()?;
        let ops = state.dir_ops.remove(dir).unwrap_or_default();
        state.commit_dir_ops(ops)?;
        state.stats.dir_syncs += 1;
        state.charge_sync();
        Ok(())
    }
}

impl SimFile {
    fn live<'a>(&self, state: &'a mut State) -> io::Result<Option<&'a mut Inode>> {
        if state.generation != self.generation {
            return Err(io::Error::other(
                "stale file handle: the node crashed or lost power since it was opened",
            ));
        }
        // A removed file whose removal is durable has no inode any more; like an open
        // unlinked file, it still takes writes, which no power cut can matter to.
        Ok(state.inodes.get_mut(&self.inode))
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> u64 {
        let state = lock(&self.state);
        match state.inodes.get(&self.inode) {
            Some(inode) => inode.len,
            None => self.content.len().unwrap_or(0),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        calls::count(|c| {
            c.reads += 1;
            c.read_bytes += buf.len() as u64;
        });
        let mut state = lock(&self.state);
        self.live(&mut state)?;
        self.content.read_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        calls::count(|c| {
            c.writes += 1;
            c.write_bytes += data.len() as u64;
        });
        let state = &mut *lock(&self.state);
        let Some(inode) = self.live(state)? else {
            return self.content.write_all_at(data, offset);
        };
        let old_len = inode.len;
        let end = offset + data.len() as u64;
        let mut before = Vec::new();
        if offset < old_len {
            before = vec![0u8; (end.min(old_len) - offset) as usize];
            self.content.read_exact_at(&mut before, offset)?;
        }
        self.content.write_all_at(data, offset)?;
        if !data.is_empty() {
            inode.len = old_len.max(end);
        }
        inode.pending.push(FileOp::Write {
            offset,
            len: data.len() as u64,
            old_len,
            before,
        });
        state.stats.bytes_written += data.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, new_len: u64) -> io::Result<()> {
        calls::count(|c| c.metadata += 1);
        let state = &mut *lock(&self.state);
        let Some(inode) = self.live(state)? else {
            return self.content.set_len(new_len);
        };
        let old_len = inode.len;
        let mut removed = Vec::new();
        if new_len < old_len {
            removed = vec![0u8; (old_len - new_len) as usize];
            self.content.read_exact_at(&mut removed, new_len)?;
        }
        self.content.set_len(new_len)?;
        inode.len = new_len;
        inode.pending.push(FileOp::SetLen {
            old_len,
            new_len,
            removed,
        });
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        calls::count(|c| c.syncs += 1);
        let state = &mut *lock(&self.state);
        self.live(state)?;
        state.strike_if_armed()?;
        if let Some(inode) = self.live(state)? {
            inode.pending.clear();
        }
        state.stats.syncs += 1;
        state.charge_sync();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKINGS: [Backing; 2] = [Backing::Files, Backing::Memory];

    /// A file-backed disk's scratch root, removed on drop.
    struct Scratch(Option<PathBuf>);

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Some(root) = &self.0 {
                let _ = fs::remove_dir_all(root);
            }
        }
    }

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ksim-simdisk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn content(disk: &SimDisk, path: &str) -> Option<Vec<u8>> {
        let file = disk.open(Path::new(path)).ok()?;
        let mut buf = vec![0u8; file.len() as usize];
        file.read_exact_at(0, &mut buf).unwrap();
        Some(buf)
    }

    /// A disk of `backing`; a file-backed one in a scratch directory named after `name`.
    fn disk(backing: Backing, name: &str, seed: u64) -> (SimDisk, Scratch) {
        let root = temp_root(&format!("{name}-{backing:?}"));
        let disk = SimDisk::with_backing(backing, &root, seed, SimDiskConfig::default()).unwrap();
        assert_eq!(disk.backing(), backing);
        assert_eq!(disk.root().is_some(), backing == Backing::Files);
        let scratch = Scratch(disk.root());
        (disk, scratch)
    }

    #[test]
    fn crash_keeps_everything_written_but_kills_handles() {
        for backing in BACKINGS {
            crash_keeps_everything_written_but_kills_handles_on(backing);
        }
    }

    fn crash_keeps_everything_written_but_kills_handles_on(backing: Backing) {
        let (d, _root) = disk(backing, "crash", 1);
        let mut f = d.create(Path::new("log")).unwrap();
        f.append(b"unsynced").unwrap();
        d.crash();
        assert!(
            f.append(b"zombie").is_err(),
            "a pre-crash handle must be dead"
        );
        assert_eq!(content(&d, "log").unwrap(), b"unsynced");
    }

    #[test]
    fn synced_bytes_survive_every_power_cut_and_the_tail_is_a_cut_prefix() {
        for backing in BACKINGS {
            synced_bytes_survive_every_power_cut_and_the_tail_is_a_cut_prefix_on(backing);
        }
    }

    fn synced_bytes_survive_every_power_cut_and_the_tail_is_a_cut_prefix_on(backing: Backing) {
        let synced: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        let tail: Vec<u8> = (0..3000u32).map(|i| (i % 13 + 1) as u8).collect();
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let (d, _root) = disk(backing, &format!("tail{seed}"), seed);
            let mut f = d.create(Path::new("log")).unwrap();
            f.append(&synced).unwrap();
            f.sync().unwrap();
            d.sync_dir(Path::new("")).unwrap();
            f.append(&tail[..1000]).unwrap();
            f.append(&tail[1000..]).unwrap();
            let report = d.power_loss().unwrap();
            outcomes.insert(
                report.effects[0]
                    .outcome
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string(),
            );
            let after = content(&d, "log").unwrap();
            assert!(
                after.len() >= synced.len(),
                "seed {seed}: synced bytes lost"
            );
            assert_eq!(&after[..synced.len()], &synced[..], "seed {seed}");
            let rest = &after[synced.len()..];
            assert!(rest.len() <= tail.len() + SECTOR as usize);
            let survived = if let Some(at) = report.effects[0].outcome.strip_prefix("torn@") {
                // Everything before the torn sector is a prefix of what was written; the
                // torn sector starts at a sector boundary or where a write started.
                let torn_at = at.parse::<usize>().unwrap();
                assert!(torn_at % SECTOR as usize == 0 || torn_at == 1500 || torn_at == 2500);
                let survived = torn_at - synced.len();
                assert_eq!(&rest[..survived], &tail[..survived]);
                survived
            } else {
                assert_eq!(rest, &tail[..rest.len()], "seed {seed}: not a prefix");
                rest.len()
            };
            assert_eq!(report.bytes_lost(), (tail.len() - survived) as u64);
            assert!(f.append(b"x").is_err(), "handles die with the power");
        }
        for outcome in ["kept", "cut", "torn", "lost"] {
            assert!(
                outcomes.contains(outcome),
                "outcome {outcome} never drawn: {outcomes:?}"
            );
        }
    }

    #[test]
    fn unsynced_create_can_vanish_and_synced_dir_keeps_it() {
        for backing in BACKINGS {
            unsynced_create_can_vanish_and_synced_dir_keeps_it_on(backing);
        }
    }

    fn unsynced_create_can_vanish_and_synced_dir_keeps_it_on(backing: Backing) {
        let mut vanished = false;
        for seed in 0..32 {
            let (d, _root) = disk(backing, &format!("create{seed}"), seed);
            let mut f = d.create(Path::new("seg")).unwrap();
            f.append(b"data").unwrap();
            f.sync().unwrap();
            d.power_loss().unwrap();
            vanished |= !d.exists(Path::new("seg"));

            let mut g = d.create(Path::new("kept")).unwrap();
            g.append(b"data").unwrap();
            g.sync().unwrap();
            d.sync_dir(Path::new("")).unwrap();
            d.power_loss().unwrap();
            assert_eq!(content(&d, "kept").unwrap(), b"data");
        }
        assert!(vanished, "an unsynced create never vanished in 32 seeds");
    }

    #[test]
    fn unsynced_rename_can_be_undone_restoring_the_old_file() {
        for backing in BACKINGS {
            unsynced_rename_can_be_undone_restoring_the_old_file_on(backing);
        }
    }

    fn unsynced_rename_can_be_undone_restoring_the_old_file_on(backing: Backing) {
        let mut undone = false;
        for seed in 0..32 {
            let (d, _root) = disk(backing, &format!("rename{seed}"), seed);
            d.create_dir_all(Path::new("p")).unwrap();
            let mut old = d.create(Path::new("p/cp")).unwrap();
            old.append(b"old").unwrap();
            old.sync().unwrap();
            d.sync_dir(Path::new("p")).unwrap();
            let mut new = d.create(Path::new("p/cp.tmp")).unwrap();
            new.append(b"new").unwrap();
            new.sync().unwrap();
            d.rename(Path::new("p/cp.tmp"), Path::new("p/cp")).unwrap();
            d.power_loss().unwrap();
            let now = content(&d, "p/cp").unwrap();
            assert!(now == b"old" || now == b"new", "seed {seed}: {now:?}");
            undone |= now == b"old";
            assert_eq!(
                d.list(Path::new("p"))
                    .unwrap()
                    .iter()
                    .filter(|n| *n == "cp")
                    .count(),
                1
            );
        }
        assert!(undone);
    }

    #[test]
    fn unsynced_remove_can_come_back_and_unsynced_truncate_can_be_undone() {
        for backing in BACKINGS {
            unsynced_remove_can_come_back_and_unsynced_truncate_can_be_undone_on(backing);
        }
    }

    fn unsynced_remove_can_come_back_and_unsynced_truncate_can_be_undone_on(backing: Backing) {
        let (mut back, mut untruncated) = (false, false);
        for seed in 0..32 {
            let (d, _root) = disk(backing, &format!("remove{seed}"), seed);
            let mut f = d.create(Path::new("a")).unwrap();
            f.append(b"0123456789").unwrap();
            f.sync().unwrap();
            d.sync_dir(Path::new("")).unwrap();
            f.truncate(4).unwrap();
            let mut g = d.create(Path::new("b")).unwrap();
            g.append(b"bbb").unwrap();
            g.sync().unwrap();
            d.sync_dir(Path::new("")).unwrap();
            d.remove(Path::new("b")).unwrap();
            d.power_loss().unwrap();
            let a = content(&d, "a").unwrap();
            assert!(a == b"0123" || a == b"0123456789");
            untruncated |= a.len() == 10;
            if let Some(b) = content(&d, "b") {
                assert_eq!(b, b"bbb");
                back = true;
            }
        }
        assert!(back && untruncated);
    }

    #[test]
    fn an_armed_power_cut_strikes_inside_the_next_fsync() {
        for backing in BACKINGS {
            an_armed_power_cut_strikes_inside_the_next_fsync_on(backing);
        }
    }

    fn an_armed_power_cut_strikes_inside_the_next_fsync_on(backing: Backing) {
        let mut torn_or_lost = false;
        for seed in 0..16 {
            let (d, _root) = disk(backing, &format!("armed{seed}"), seed);
            let mut f = d.create(Path::new("log")).unwrap();
            f.append(&[7u8; 600]).unwrap();
            f.sync().unwrap();
            d.sync_dir(Path::new("")).unwrap();
            d.arm_power_loss();
            f.append(&[9u8; 1500]).unwrap();
            let err = f.sync().expect_err("the sync in flight fails");
            assert!(err.to_string().contains("power lost"));
            let report = d.disarm().expect("the cut struck");
            assert!(f.append(b"x").is_err(), "the power is off for old handles");
            let after = content(&d, "log").unwrap();
            assert_eq!(&after[..600], &[7u8; 600][..], "synced bytes survive");
            torn_or_lost |= report.bytes_lost() > 0;
        }
        assert!(torn_or_lost, "the batch being synced was never torn");
        let (d, _root) = disk(backing, "unarmed", 1);
        d.arm_power_loss();
        assert_eq!(d.disarm(), None, "no sync came: nothing struck");
        let mut f = d.create(Path::new("x")).unwrap();
        f.append(b"1").unwrap();
        f.sync().unwrap();
    }

    #[test]
    fn sync_costs_simulated_time() {
        for backing in BACKINGS {
            sync_costs_simulated_time_on(backing);
        }
    }

    fn sync_costs_simulated_time_on(backing: Backing) {
        let (d, _root) = disk(backing, "debt", 3);
        let mut f = d.create(Path::new("x")).unwrap();
        f.append(b"1").unwrap();
        f.sync().unwrap();
        let debt = d.take_sync_debt();
        assert!(debt >= Duration::from_micros(200) && debt <= Duration::from_millis(2));
        assert_eq!(d.take_sync_debt(), Duration::ZERO);
    }

    fn kind<T>(result: io::Result<T>) -> Result<T, io::ErrorKind> {
        result.map_err(|e| e.kind())
    }

    fn report_text(report: &PowerLossReport) -> String {
        let effects: Vec<String> = report
            .effects
            .iter()
            .map(|e| format!("{} {} -{}", e.path, e.outcome, e.bytes_lost))
            .collect();
        effects.join(", ")
    }

    /// A seeded script of disk calls (creates, opens, writes past the end and over old
    /// bytes, truncates, renames over files, removes, syncs, crashes, power cuts, armed cuts,
    /// writes through handles of removed files): what every call returned, in order, then
    /// every file as an image of the disk holds it.
    fn script(d: &SimDisk, seed: u64) -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let dirs = ["", "p", "p/q"];
        for dir in &dirs[1..] {
            d.create_dir_all(Path::new(dir)).unwrap();
        }
        let pick = |rng: &mut StdRng| {
            let dir = dirs[rng.gen_range(0..dirs.len())];
            (
                dir,
                Path::new(dir).join(format!("f{}", rng.gen_range(0..4))),
            )
        };
        let mut handles: Vec<SimFile> = Vec::new();
        let mut log: Vec<String> = Vec::new();
        for step in 0..400 {
            // Mostly the newest handles; after a crash or power cut, only the newest dead one
            // is kept (its calls must keep failing).
            let which = handles.len().saturating_sub(1 + rng.gen_range(0..3));
            if log.last().is_some_and(|l: &String| {
                l.contains("crash") || l.contains("power loss") || l.contains("disarm Some")
            }) {
                handles.drain(..handles.len().saturating_sub(1));
            }
            let which = which.min(handles.len().saturating_sub(1));
            let said = match rng.gen_range(0..100) {
                0..=9 => {
                    let (_, path) = pick(&mut rng);
                    let made = kind(d.create(&path)).map(|f| handles.push(f));
                    format!("create {} {made:?}", path.display())
                }
                10..=17 => {
                    let (_, path) = pick(&mut rng);
                    let opened = kind(d.open(&path)).map(|f| {
                        let len = f.len();
                        handles.push(f);
                        len
                    });
                    format!("open {} {opened:?}", path.display())
                }
                18..=44 if !handles.is_empty() => {
                    let file = &mut handles[which];
                    let len = file.len();
                    let data: Vec<u8> = (0..rng.gen_range(0..1500)).map(|_| rng.gen()).collect();
                    let wrote = if rng.gen_bool(0.5) {
                        kind(file.append(&data))
                    } else {
                        let at = rng.gen_range(0..=len + 600);
                        kind(file.write_at(at, &data)).map(|()| at)
                    };
                    format!("write {which} {} {wrote:?}", data.len())
                }
                45..=49 if !handles.is_empty() => {
                    let file = &mut handles[which];
                    let to = rng.gen_range(0..=file.len() + 100);
                    format!("truncate {which} {to} {:?}", kind(file.truncate(to)))
                }
                50..=59 if !handles.is_empty() => {
                    format!("sync {which} {:?}", kind(handles[which].sync()))
                }
                60..=64 => {
                    let dir = dirs[rng.gen_range(0..dirs.len())];
                    format!("sync_dir {dir} {:?}", kind(d.sync_dir(Path::new(dir))))
                }
                65..=69 => {
                    let (dir, from) = pick(&mut rng);
                    let to = Path::new(dir).join(format!("f{}", rng.gen_range(0..4)));
                    let renamed = kind(d.rename(&from, &to));
                    format!("rename {} {} {renamed:?}", from.display(), to.display())
                }
                70..=73 => {
                    let (_, path) = pick(&mut rng);
                    format!("remove {} {:?}", path.display(), kind(d.remove(&path)))
                }
                74..=75 => {
                    d.crash();
                    "crash".to_string()
                }
                76..=78 => format!(
                    "power loss {:?}",
                    kind(d.power_loss()).map(|r| report_text(&r))
                ),
                79..=83 => {
                    d.arm_power_loss();
                    "armed".to_string()
                }
                84..=85 => format!("disarm {:?}", d.disarm().map(|r| report_text(&r))),
                86..=89 => {
                    let dir = dirs[rng.gen_range(0..dirs.len())];
                    format!("list {dir} {:?}", kind(d.list(Path::new(dir))))
                }
                90..=96 if !handles.is_empty() => {
                    let file = &handles[which];
                    let mut buf = vec![0u8; rng.gen_range(0..2000)];
                    let at = rng.gen_range(0..=file.len() + 10);
                    let read = kind(file.read_at(at, &mut buf)).map(|n| crc32c::crc32c(&buf[..n]));
                    format!("read {which} len {} at {at} {read:?}", file.len())
                }
                _ => format!(
                    "stats {:?} unsynced {} debt {:?}",
                    d.stats(),
                    d.unsynced_bytes(),
                    d.take_sync_debt()
                ),
            };
            log.push(format!("{step}: {said}"));
        }
        let image = d.image().unwrap();
        for (path, bytes) in image.files() {
            log.push(format!(
                "{} {} {:08x}",
                path.display(),
                bytes.len(),
                crc32c::crc32c(bytes)
            ));
        }
        log.push(format!("dirs {:?}", image.dirs().collect::<Vec<_>>()));
        log
    }

    #[test]
    fn both_backings_answer_every_call_alike_and_draw_the_same_cuts() {
        let (mut cuts, mut torn, mut undone, mut struck) = (0, 0, 0, 0);
        for seed in 0..24 {
            let logs: Vec<Vec<String>> = BACKINGS
                .iter()
                .map(|&backing| {
                    let (d, _root) = disk(backing, &format!("script{seed}"), seed);
                    script(&d, seed)
                })
                .collect();
            for (files, memory) in logs[0].iter().zip(&logs[1]) {
                assert_eq!(files, memory, "seed {seed}: files vs memory");
            }
            assert_eq!(logs[0].len(), logs[1].len());
            let text = logs[0].join("\n");
            cuts += text.matches("cut@").count();
            torn += text.matches("torn@").count();
            undone += text.matches(" of ").count() - text.matches("undone 0 of").count();
            struck += text.matches("disarm Some").count();
        }
        assert!(
            cuts > 0 && torn > 0 && undone > 0 && struck > 0,
            "the scripts must cut ({cuts}), tear ({torn}), undo directory changes ({undone}) \
             and strike inside a sync ({struck})"
        );
    }

    #[test]
    fn a_taken_image_is_what_a_restart_would_find_and_empties_a_memory_disk() {
        for backing in BACKINGS {
            let (d, _root) = disk(backing, "take", 5);
            d.create_dir_all(Path::new("data/log")).unwrap();
            let mut f = d.create(Path::new("data/log/0.log")).unwrap();
            f.append(b"durable").unwrap();
            f.sync().unwrap();
            f.append(b" and unsynced").unwrap();
            let mut g = d.create(Path::new("gone")).unwrap();
            g.append(b"g").unwrap();
            d.remove(Path::new("gone")).unwrap();
            let copy = d.image().unwrap();
            let taken = d.take_image().unwrap();
            let files: Vec<(&Path, &[u8])> = taken.files().collect();
            assert_eq!(
                files,
                [(Path::new("data/log/0.log"), &b"durable and unsynced"[..])],
                "{backing:?}: the page cache, without the stash"
            );
            assert_eq!(files, copy.files().collect::<Vec<_>>());
            let dirs: Vec<&Path> = taken.dirs().collect();
            assert_eq!(dirs, ["", "data", "data/log"].map(Path::new));
            let left = d.list(Path::new("data/log"));
            match backing {
                Backing::Files => assert_eq!(left.unwrap(), ["0.log"]),
                Backing::Memory => {
                    assert!(!d.exists(Path::new("data/log/0.log")));
                    assert!(left.is_err(), "a memory disk is left empty");
                }
            }
        }
    }

    #[test]
    fn a_memory_disk_refuses_what_a_file_system_refuses() {
        for backing in BACKINGS {
            let (d, _root) = disk(backing, "refuse", 1);
            assert_eq!(
                kind(d.create(Path::new("no/such/dir/f")).map(drop)),
                Err(io::ErrorKind::NotFound),
                "{backing:?}"
            );
            assert_eq!(
                kind(d.list(Path::new("nope"))),
                Err(io::ErrorKind::NotFound)
            );
            d.create_dir_all(Path::new("a/b")).unwrap();
            assert!(
                d.create(Path::new("a/b")).is_err(),
                "{backing:?}: a directory"
            );
            d.create(Path::new("a/f")).unwrap();
            assert!(d.create_dir_all(Path::new("a/f/g")).is_err(), "{backing:?}");
            assert_eq!(d.list(Path::new("a")).unwrap(), ["f"]);
            assert_eq!(
                kind(d.rename(Path::new("a/x"), Path::new("a/y"))),
                Err(io::ErrorKind::NotFound)
            );
        }
    }
}
