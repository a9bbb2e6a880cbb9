//! The disk layer: the file operations the log engine needs, behind one trait.
//!
//! Owns: [`Disk`] and [`DiskFile`], the plain-`std::fs` implementation [`FsDisk`]
//! (benches, tools, reading a file-backed run's logs back), [`SimDisk`] (real files or
//! buffers in memory, per [`Backing`], plus a model of the OS page cache that a power cut
//! can tear; see `sim.rs`), [`DiskImage`] (a disk's files frozen after a run, read-only: how
//! the checkers read a memory-backed run; see `image.rs`), and [`calls`], the per-thread
//! counts of what a `SimDisk` served (for `ksim bench`).
//!
//! Every path handed to a `Disk` is relative to the disk's root directory; a disk never
//! touches anything outside its root. Durability follows POSIX, as the log engine must
//! assume it:
//! - bytes written to a file are visible to reads at once and durable only after
//!   [`DiskFile::sync`] of that file;
//! - a created, renamed or removed name is durable only after [`Disk::sync_dir`] of the
//!   directory holding it.
//!
//! `FsDisk` gets these guarantees from the kernel; `SimDisk` enforces them by losing
//! whatever was not made durable when the simulation cuts the power.

pub mod calls;
mod image;
mod sim;

pub use image::{share_identical, DiskImage, ImageFile};
pub use sim::{Backing, PowerLossReport, SimDisk, SimDiskConfig};

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File-system operations on one node's disk. Paths are relative to the disk's root.
pub trait Disk: Clone {
    /// An open file of this disk.
    type File: DiskFile;

    /// Creates `dir` and its parents (directories are durable at once; see `sim.rs`).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path` empty, truncating it if it exists, and opens it read-write.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens the existing file `path` read-write.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// Whether `path` names an existing file.
    fn exists(&self, path: &Path) -> bool;
    /// The names of the files in `dir`, sorted (directories are not listed).
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Renames `from` to `to` in the same directory, atomically replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes every name change in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open read-write file.
pub trait DiskFile {
    /// Current length in bytes, as reads see it.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (short at EOF).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes all of `data` at `offset`, extending the file if needed.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Writes all of `data` at the end of the file; returns the position it was written at.
    fn append(&mut self, data: &[u8]) -> io::Result<u64> {
        let at = self.len();
        self.write_at(at, data)?;
        Ok(at)
    }
    /// Sets the length to `len` (shrinking or zero-extending).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's content durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(offset + done as u64, &mut buf[done..])?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "read past the end of the file",
                ));
            }
            done += n;
        }
        Ok(())
    }
}

/// Atomically replaces `path` with `bytes`: write `<path>.tmp`, sync it, rename it over
/// `path`, sync the directory. After a crash or power cut, `path` holds either the old or
/// the new content, whole.
pub fn write_atomic<D: Disk>(disk: &D, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let mut file = disk.create(&tmp)?;
    file.write_at(0, bytes)?;
    file.sync()?;
    drop(file);
    disk.rename(&tmp, path)?;
    disk.sync_dir(path.parent().unwrap_or(Path::new("")))
}

/// The whole content of `path`.
pub fn read_whole<D: Disk>(disk: &D, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open(path)?;
    let mut bytes = vec![0u8; file.len() as usize];
    file.read_exact_at(0, &mut bytes)?;
    Ok(bytes)
}

/// `<path>.tmp`: where [`write_atomic`] stages a new version (garbage after a crash).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// A disk backed directly by `std::fs` under a root directory.
#[derive(Clone, Debug)]
pub struct FsDisk {
    root: PathBuf,
}

impl FsDisk {
    /// A disk rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(FsDisk { root })
    }

    /// A disk rooted at `root` as it is: nothing is created (a missing root has no files and
    /// no directories; creating in it fails).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        FsDisk { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }
}

/// A file of an [`FsDisk`]; caches its length so appends need no `stat`.
#[derive(Debug)]
pub struct FsFile {
    file: File,
    len: u64,
}

impl Disk for FsDisk {
    type File = FsFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(self.path(dir))
    }

    fn create(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.path(path))?;
        Ok(FsFile { file, len: 0 })
    }

    fn open(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(path))?;
        let len = file.metadata()?.len();
        Ok(FsFile { file, len })
    }

    fn exists(&self, path: &Path) -> bool {
        self.path(path).is_file()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(self.path(dir))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(self.path(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(self.path(dir))?.sync_all()
    }
}

impl DiskFile for FsFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        self.len = self.len.max(offset + data.len() as u64);
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_disk_round_trip() {
        let dir = std::env::temp_dir().join(format!("ksim-fsdisk-{}", std::process::id()));
        let disk = FsDisk::new(&dir).unwrap();
        disk.create_dir_all(Path::new("a")).unwrap();
        let mut f = disk.create(Path::new("a/x")).unwrap();
        assert_eq!(f.append(b"hello").unwrap(), 0);
        assert_eq!(f.append(b" world").unwrap(), 5);
        f.sync().unwrap();
        let mut buf = [0u8; 11];
        f.read_exact_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"hello world");
        f.truncate(5).unwrap();
        assert_eq!(f.len(), 5);
        disk.rename(Path::new("a/x"), Path::new("a/y")).unwrap();
        assert_eq!(disk.list(Path::new("a")).unwrap(), vec!["y".to_string()]);
        assert_eq!(disk.open(Path::new("a/y")).unwrap().len(), 5);
        disk.remove(Path::new("a/y")).unwrap();
        assert!(!disk.exists(Path::new("a/y")));
        disk.sync_dir(Path::new("a")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
