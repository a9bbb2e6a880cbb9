//! `SimDisk`: real files under a node's data directory, plus a model of the OS page cache
//! that a simulated power cut can tear.
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
//! How: the bytes live in real files (what reads see, the page cache). For each unsynced
//! change the model keeps an undo record (the bytes it overwrote, the old length), so a
//! power cut rolls each file back to a chosen point by undoing the newest changes.
//! Removed and replaced files are moved to a stash (`.ksim-stash/`) until their directory
//! is synced, so a power cut can bring them back.
//!
//! Simplifications: directories are durable once created; `rename` works within one
//! directory (all the log engine needs); the stash lives inside the disk's root.

use super::{calls, Disk, DiskFile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Size of a disk sector: the unit a power cut tears.
pub const SECTOR: u64 = 512;

const STASH_DIR: &str = ".ksim-stash";

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

struct State {
    root: PathBuf,
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
    /// Where the bytes are now: the file's name, or its stash path once removed.
    real: PathBuf,
    len: u64,
    /// Changes since the last sync, oldest first.
    pending: Vec<FileOp>,
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
    file: File,
    generation: u64,
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

impl SimDisk {
    /// A disk rooted at `root`; files already there are taken as durable.
    pub fn new(root: impl Into<PathBuf>, seed: u64, config: SimDiskConfig) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let mut state = State {
            root,
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
        };
        state.scan(Path::new(""))?;
        Ok(SimDisk {
            state: Arc::new(Mutex::new(state)),
        })
    }

    /// The root directory.
    pub fn root(&self) -> PathBuf {
        lock(&self.state).root.clone()
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
}

impl State {
    fn real(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }

    fn stash_path(&self, inode: InodeId) -> PathBuf {
        self.root.join(STASH_DIR).join(inode.to_string())
    }

    fn scan(&mut self, dir: &Path) -> io::Result<()> {
        let mut entries: Vec<_> = fs::read_dir(self.real(dir))?.collect::<Result<_, _>>()?;
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
                let id = self.new_inode(relative.clone(), len);
                self.names.insert(relative, id);
            }
        }
        Ok(())
    }

    fn new_inode(&mut self, relative: PathBuf, len: u64) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        let real = self.real(&relative);
        self.inodes.insert(
            id,
            Inode {
                real,
                len,
                pending: Vec::new(),
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
        let stash = self.stash_path(inode);
        fs::create_dir_all(self.root.join(STASH_DIR))?;
        let node = self.inodes.get_mut(&inode).expect("stashing a known inode");
        fs::rename(&node.real, &stash)?;
        node.real = stash;
        Ok(())
    }

    /// A stashed file's removal became durable: its bytes are gone for good.
    fn forget(&mut self, inode: InodeId) -> io::Result<()> {
        if let Some(node) = self.inodes.remove(&inode) {
            fs::remove_file(&node.real)?;
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
                let from_real = self.real(&from);
                fs::rename(self.real(&to), &from_real)?;
                self.names.remove(&to);
                self.names.insert(from, inode);
                if let Some(node) = self.inodes.get_mut(&inode) {
                    node.real = from_real;
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
        let real = self.real(&name);
        let node = self
            .inodes
            .get_mut(&inode)
            .expect("unstashing a known inode");
        fs::rename(&node.real, &real)?;
        node.real = real;
        self.names.insert(name, inode);
        Ok(())
    }

    /// If armed, the power goes now, before the sync the caller is making.
    fn strike_if_armed(&mut self) -> io::Result<()> {
        if !self.armed {
            return Ok(());
        }
        self.armed = false;
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
        Ok(report)
    }

    /// Rolls one file back to a seeded point in its unsynced history.
    fn lose_file_tail(&mut self, id: InodeId) -> io::Result<PowerLossEffect> {
        let inode = self
            .inodes
            .get_mut(&id)
            .expect("inode with pending changes");
        let ops = std::mem::take(&mut inode.pending);
        let real = inode.real.clone();
        let len_before = inode.len;
        let file = OpenOptions::new().read(true).write(true).open(&real)?;

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
        let path = real
            .strip_prefix(&self.root)
            .unwrap_or(&real)
            .display()
            .to_string();
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
        let state = lock(&self.state);
        fs::create_dir_all(state.real(dir))
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        calls::count(|c| c.metadata += 1);
        let mut state = lock(&self.state);
        let generation = state.generation;
        if let Some(&id) = state.names.get(path) {
            // Truncating an existing file is a change to its content, not to its name.
            let real = state.inodes[&id].real.clone();
            let file = OpenOptions::new().read(true).write(true).open(&real)?;
            let old_len = state.inodes[&id].len;
            let mut removed = vec![0u8; old_len as usize];
            file.read_exact_at(&mut removed, 0)?;
            file.set_len(0)?;
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
                file,
                generation,
            });
        }
        let real = state.real(path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&real)?;
        let id = state.new_inode(path.to_path_buf(), 0);
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
            file,
            generation,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        calls::count(|c| c.metadata += 1);
        let state = lock(&self.state);
        let id = *state.names.get(path).ok_or_else(|| not_found(path))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&state.inodes[&id].real)?;
        Ok(SimFile {
            state: self.state.clone(),
            inode: id,
            file,
            generation: state.generation,
        })
    }

    fn exists(&self, path: &Path) -> bool {
        lock(&self.state).names.contains_key(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        calls::count(|c| c.metadata += 1);
        let state = lock(&self.state);
        if !state.real(dir).is_dir() {
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
        let replaced = state.names.get(to).copied();
        if let Some(old) = replaced {
            state.stash(old)?;
        }
        let to_real = state.real(to);
        fs::rename(state.real(from), &to_real)?;
        state.inodes.get_mut(&id).expect("named inode").real = to_real;
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
            None => self.file.metadata().map(|m| m.len()).unwrap_or(0),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        calls::count(|c| {
            c.reads += 1;
            c.read_bytes += buf.len() as u64;
        });
        let mut state = lock(&self.state);
        self.live(&mut state)?;
        self.file.read_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        calls::count(|c| {
            c.writes += 1;
            c.write_bytes += data.len() as u64;
        });
        let state = &mut *lock(&self.state);
        let Some(inode) = self.live(state)? else {
            return self.file.write_all_at(data, offset);
        };
        let old_len = inode.len;
        let end = offset + data.len() as u64;
        let mut before = Vec::new();
        if offset < old_len {
            before = vec![0u8; (end.min(old_len) - offset) as usize];
            self.file.read_exact_at(&mut before, offset)?;
        }
        self.file.write_all_at(data, offset)?;
        inode.len = old_len.max(end);
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
            return self.file.set_len(new_len);
        };
        let old_len = inode.len;
        let mut removed = Vec::new();
        if new_len < old_len {
            removed = vec![0u8; (old_len - new_len) as usize];
            self.file.read_exact_at(&mut removed, new_len)?;
        }
        self.file.set_len(new_len)?;
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

    fn disk(name: &str, seed: u64) -> SimDisk {
        SimDisk::new(temp_root(name), seed, SimDiskConfig::default()).unwrap()
    }

    #[test]
    fn crash_keeps_everything_written_but_kills_handles() {
        let d = disk("crash", 1);
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
        let synced: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        let tail: Vec<u8> = (0..3000u32).map(|i| (i % 13 + 1) as u8).collect();
        let mut outcomes = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let d = disk(&format!("tail{seed}"), seed);
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
        let mut vanished = false;
        for seed in 0..32 {
            let d = disk(&format!("create{seed}"), seed);
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
        let mut undone = false;
        for seed in 0..32 {
            let d = disk(&format!("rename{seed}"), seed);
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
        let (mut back, mut untruncated) = (false, false);
        for seed in 0..32 {
            let d = disk(&format!("remove{seed}"), seed);
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
        let mut torn_or_lost = false;
        for seed in 0..16 {
            let d = disk(&format!("armed{seed}"), seed);
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
        let d = disk("unarmed", 1);
        d.arm_power_loss();
        assert_eq!(d.disarm(), None, "no sync came: nothing struck");
        let mut f = d.create(Path::new("x")).unwrap();
        f.append(b"1").unwrap();
        f.sync().unwrap();
    }

    #[test]
    fn sync_costs_simulated_time() {
        let d = disk("debt", 3);
        let mut f = d.create(Path::new("x")).unwrap();
        f.append(b"1").unwrap();
        f.sync().unwrap();
        let debt = d.take_sync_debt();
        assert!(debt >= Duration::from_micros(200) && debt <= Duration::from_millis(2));
        assert_eq!(d.take_sync_debt(), Duration::ZERO);
    }
}
