//! Where the checkers find a node's files after the run, whichever backing its disk had.
//!
//! Owns: [`NodeData`] (the run directory of a file-backed run, or the disk images of a
//! memory-backed one) and [`NodeDisk`], one [`Disk`] over either, which the checkers open the
//! final logs and snapshots with — read-only: the log engine's `open_read_only` and whole-file
//! reads. An image refuses every change; a node directory is an [`FsDisk`] as before.

use crate::disk::{Disk, DiskFile, DiskImage, FsDisk, FsFile, ImageFile};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Every node's files as the run left them.
#[derive(Clone, Copy)]
pub enum NodeData<'a> {
    /// Under `<dir>/<node>/` (a file-backed run: its run directory).
    Dir(&'a Path),
    /// One image per node that had a disk, by node name (a memory-backed run); a node
    /// without one has no files.
    Images(&'a BTreeMap<String, DiskImage>),
}

impl NodeData<'_> {
    /// The disk of node `name` (nothing is created: a node without files has an empty one).
    pub fn disk(&self, name: &str) -> NodeDisk {
        match self {
            NodeData::Dir(dir) => NodeDisk::Fs(FsDisk::at(dir.join(name))),
            NodeData::Images(images) => {
                NodeDisk::Image(images.get(name).cloned().unwrap_or_default())
            }
        }
    }
}

/// A node's disk as the checkers read it.
#[derive(Clone)]
pub enum NodeDisk {
    /// Its directory.
    Fs(FsDisk),
    /// Its image.
    Image(DiskImage),
}

impl NodeDisk {
    /// Whether `dir` is a directory of this disk.
    pub fn is_dir(&self, dir: &Path) -> bool {
        match self {
            NodeDisk::Fs(disk) => disk.root().join(dir).is_dir(),
            NodeDisk::Image(image) => image.is_dir(dir),
        }
    }
}

/// An open file of a [`NodeDisk`].
pub enum NodeFile {
    /// A real file.
    Fs(FsFile),
    /// A file of an image.
    Image(ImageFile),
}

impl Disk for NodeDisk {
    type File = NodeFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        match self {
            NodeDisk::Fs(disk) => disk.create_dir_all(dir),
            NodeDisk::Image(image) => image.create_dir_all(dir),
        }
    }

    fn create(&self, path: &Path) -> io::Result<NodeFile> {
        match self {
            NodeDisk::Fs(disk) => disk.create(path).map(NodeFile::Fs),
            NodeDisk::Image(image) => image.create(path).map(NodeFile::Image),
        }
    }

    fn open(&self, path: &Path) -> io::Result<NodeFile> {
        match self {
            NodeDisk::Fs(disk) => disk.open(path).map(NodeFile::Fs),
            NodeDisk::Image(image) => image.open(path).map(NodeFile::Image),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        match self {
            NodeDisk::Fs(disk) => disk.exists(path),
            NodeDisk::Image(image) => image.exists(path),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        match self {
            NodeDisk::Fs(disk) => disk.list(dir),
            NodeDisk::Image(image) => image.list(dir),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            NodeDisk::Fs(disk) => disk.rename(from, to),
            NodeDisk::Image(image) => image.rename(from, to),
        }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        match self {
            NodeDisk::Fs(disk) => disk.remove(path),
            NodeDisk::Image(image) => image.remove(path),
        }
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        match self {
            NodeDisk::Fs(disk) => disk.sync_dir(dir),
            NodeDisk::Image(image) => image.sync_dir(dir),
        }
    }
}

impl DiskFile for NodeFile {
    fn len(&self) -> u64 {
        match self {
            NodeFile::Fs(file) => file.len(),
            NodeFile::Image(file) => file.len(),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            NodeFile::Fs(file) => file.read_at(offset, buf),
            NodeFile::Image(file) => file.read_at(offset, buf),
        }
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        match self {
            NodeFile::Fs(file) => file.write_at(offset, data),
            NodeFile::Image(file) => file.write_at(offset, data),
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        match self {
            NodeFile::Fs(file) => file.truncate(len),
            NodeFile::Image(file) => file.truncate(len),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self {
            NodeFile::Fs(file) => file.sync(),
            NodeFile::Image(file) => file.sync(),
        }
    }
}
