//! `DiskImage`: a node's files frozen after a run, read-only, in memory.
//!
//! Owns: [`DiskImage`], what [`SimDisk::take_image`](super::SimDisk::take_image) hands over
//! once a run is done — every file a restarted process would find, with what reads would
//! see, and every directory. It is a [`Disk`] whose mutating calls all fail, so the checkers
//! can open a memory-backed run's logs with the log engine (read-only) exactly as they open a
//! file-backed run's through [`FsDisk`](super::FsDisk); and [`DiskImage::write_to`] puts it
//! on disk as files when a sweep keeps the seed. Cloning shares the image, and
//! [`share_identical`] makes images share the buffers of files with the same bytes (a
//! partition's replicas usually are), so a run's images hold each content once.

use super::{Disk, DiskFile};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A node's files and directories, read-only. Cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct DiskImage {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug, Default)]
struct Inner {
    /// Each file's bytes, by path relative to the root.
    files: BTreeMap<PathBuf, Arc<Vec<u8>>>,
    /// Every directory, the root (`""`) included.
    dirs: BTreeSet<PathBuf>,
}

/// An open file of a [`DiskImage`]; writes fail.
#[derive(Debug)]
pub struct ImageFile {
    bytes: Arc<Vec<u8>>,
}

fn read_only() -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, "a disk image is read-only")
}

impl DiskImage {
    /// An image of `files` (by path relative to the root) in `dirs` (the root is `""`; a
    /// file's parent not among them is added, as are a directory's parents).
    pub fn new(files: BTreeMap<PathBuf, Vec<u8>>, dirs: BTreeSet<PathBuf>) -> Self {
        let mut all = BTreeSet::from([PathBuf::new()]);
        let parents = files
            .keys()
            .filter_map(|path| path.parent())
            .chain(dirs.iter().map(PathBuf::as_path));
        for dir in parents {
            all.extend(dir.ancestors().map(Path::to_path_buf));
        }
        DiskImage {
            inner: Arc::new(Inner {
                files: files
                    .into_iter()
                    .map(|(path, bytes)| (path, Arc::new(bytes)))
                    .collect(),
                dirs: all,
            }),
        }
    }

    /// Every file and its bytes, by path.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &[u8])> {
        self.inner
            .files
            .iter()
            .map(|(path, bytes)| (path.as_path(), bytes.as_slice()))
    }

    /// Every directory, the root (`""`) first.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.inner.dirs.iter().map(PathBuf::as_path)
    }

    /// Whether `dir` is a directory of the image.
    pub fn is_dir(&self, dir: &Path) -> bool {
        self.inner.dirs.contains(dir)
    }

    /// Total bytes of its files.
    pub fn bytes(&self) -> u64 {
        self.inner.files.values().map(|b| b.len() as u64).sum()
    }

    /// Writes the image under `root` (created if missing): its directories, then its files.
    pub fn write_to(&self, root: &Path) -> io::Result<()> {
        for dir in self.dirs() {
            fs::create_dir_all(root.join(dir))?;
        }
        for (path, bytes) in self.files() {
            fs::write(root.join(path), bytes)?;
        }
        Ok(())
    }
}

/// Makes the files of `images` that hold the same bytes share one buffer, freeing the
/// others: a partition's replicas on different brokers, empty files. Changes no content.
pub fn share_identical<'a>(images: impl IntoIterator<Item = &'a mut DiskImage>) {
    // Candidates by length and checksum; equal bytes are confirmed before sharing. Only
    // looked up, never iterated, so the hash order cannot matter.
    let mut seen: HashMap<(usize, u32), Vec<Arc<Vec<u8>>>> = HashMap::new();
    for image in images {
        let inner = Arc::make_mut(&mut image.inner);
        for bytes in inner.files.values_mut() {
            let same = seen
                .entry((bytes.len(), crc32c::crc32c(bytes)))
                .or_default();
            match same
                .iter()
                .find(|other| other.as_slice() == bytes.as_slice())
            {
                Some(other) => *bytes = other.clone(),
                None => same.push(bytes.clone()),
            }
        }
    }
}

impl Disk for DiskImage {
    type File = ImageFile;

    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn create(&self, _path: &Path) -> io::Result<ImageFile> {
        Err(read_only())
    }

    fn open(&self, path: &Path) -> io::Result<ImageFile> {
        match self.inner.files.get(path) {
            Some(bytes) => Ok(ImageFile {
                bytes: bytes.clone(),
            }),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such file: {}", path.display()),
            )),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.files.contains_key(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        if !self.is_dir(dir) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such directory: {}", dir.display()),
            ));
        }
        // Paths order by component, so a directory's files are together and sorted by name.
        Ok(self
            .inner
            .files
            .range::<Path, _>((std::ops::Bound::Excluded(dir), std::ops::Bound::Unbounded))
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dir))
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn rename(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn remove(&self, _path: &Path) -> io::Result<()> {
        Err(read_only())
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Err(read_only())
    }
}

impl DiskFile for ImageFile {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset).map_or(self.bytes.len(), |o| o.min(self.bytes.len()));
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }

    fn write_at(&mut self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(read_only())
    }

    fn truncate(&mut self, _len: u64) -> io::Result<()> {
        Err(read_only())
    }

    fn sync(&mut self) -> io::Result<()> {
        Err(read_only())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> DiskImage {
        let files = BTreeMap::from([
            (PathBuf::from("a/b/x"), b"xx".to_vec()),
            (PathBuf::from("a/b/c/deep"), b"d".to_vec()),
            (PathBuf::from("a/b-c"), b"sibling".to_vec()),
            (PathBuf::from("a/b/y"), b"yyy".to_vec()),
            (PathBuf::from("top"), Vec::new()),
        ]);
        DiskImage::new(files, BTreeSet::from([PathBuf::from("empty/dir")]))
    }

    #[test]
    fn an_image_lists_a_directorys_files_sorted_and_reads_them() {
        let image = image();
        assert_eq!(image.list(Path::new("a/b")).unwrap(), ["x", "y"]);
        assert_eq!(image.list(Path::new("a")).unwrap(), ["b-c"]);
        assert_eq!(image.list(Path::new("")).unwrap(), ["top"]);
        assert!(image.list(Path::new("empty/dir")).unwrap().is_empty());
        assert!(image.is_dir(Path::new("empty")), "parents are directories");
        assert_eq!(
            image.list(Path::new("nope")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(image.exists(Path::new("a/b/y")) && !image.exists(Path::new("a/b")));
        let file = image.open(Path::new("a/b/y")).unwrap();
        assert_eq!(file.len(), 3);
        let mut buf = [0u8; 8];
        assert_eq!(file.read_at(1, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"yy");
        assert_eq!(file.read_at(9, &mut buf).unwrap(), 0);
        assert_eq!(image.bytes(), 13);
    }

    #[test]
    fn an_image_refuses_every_change() {
        let image = image();
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            kind(image.create_dir_all(Path::new("n"))),
            io::ErrorKind::PermissionDenied
        );
        assert!(image.create(Path::new("top")).is_err());
        assert!(image.rename(Path::new("top"), Path::new("t2")).is_err());
        assert!(image.remove(Path::new("top")).is_err());
        assert!(image.sync_dir(Path::new("")).is_err());
        let mut file = image.open(Path::new("a/b/x")).unwrap();
        assert!(file.write_at(0, b"z").is_err());
        assert!(file.truncate(0).is_err());
        assert!(file.sync().is_err());
        let mut buf = [0u8; 2];
        file.read_exact_at(0, &mut buf).unwrap();
        assert_eq!(&buf, b"xx", "nothing changed");
    }

    #[test]
    fn an_image_writes_itself_out_as_files() {
        let root = std::env::temp_dir().join(format!("ksim-image-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        image().write_to(&root).unwrap();
        assert_eq!(fs::read(root.join("a/b/c/deep")).unwrap(), b"d");
        assert_eq!(fs::read(root.join("top")).unwrap(), b"");
        assert!(root.join("empty/dir").is_dir());
        let again = crate::disk::FsDisk::new(&root).unwrap();
        assert_eq!(again.list(Path::new("a/b")).unwrap(), ["x", "y"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn identical_files_share_one_buffer_and_keep_their_bytes() {
        let image = |files: &[(&str, &[u8])]| {
            let files = files
                .iter()
                .map(|(path, bytes)| (PathBuf::from(path), bytes.to_vec()))
                .collect();
            DiskImage::new(files, BTreeSet::new())
        };
        let mut one = image(&[("log/a", b"replica"), ("e1", b""), ("x", b"replicb")]);
        let mut two = image(&[("log/a", b"replica"), ("e2", b""), ("y", b"other")]);
        let before: Vec<Vec<(PathBuf, Vec<u8>)>> = [&one, &two]
            .map(|i| {
                i.files()
                    .map(|(p, b)| (p.to_path_buf(), b.to_vec()))
                    .collect()
            })
            .into();
        share_identical([&mut one, &mut two]);
        let buffer = |image: &DiskImage, path: &str| image.inner.files[Path::new(path)].clone();
        assert!(Arc::ptr_eq(&buffer(&one, "log/a"), &buffer(&two, "log/a")));
        assert!(Arc::ptr_eq(&buffer(&one, "e1"), &buffer(&two, "e2")));
        assert!(!Arc::ptr_eq(&buffer(&one, "log/a"), &buffer(&one, "x")));
        let after: Vec<Vec<(PathBuf, Vec<u8>)>> = [&one, &two]
            .map(|i| {
                i.files()
                    .map(|(p, b)| (p.to_path_buf(), b.to_vec()))
                    .collect()
            })
            .into();
        assert_eq!(before, after, "no content changed");
    }
}
