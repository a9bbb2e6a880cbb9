//! Run directories: which directories ksim may write into and empty.
//!
//! Owns: [`prepare`] and the marker file [`MARKER`]. ksim never deletes what it did not
//! create: a run may use a directory that does not exist yet, that is empty, or that holds
//! ksim's marker (a run directory ksim made earlier, which it then empties). Anything else —
//! a user's directory, the working directory, a file — is refused before a node starts, and
//! the user is told which path and why (exit 2).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The marker file ksim writes first into every run directory it makes.
pub const MARKER: &str = ".ksim-run";

const MARKER_TEXT: &str = "This directory is a ksim run directory: ksim empties it when a run \
                           reuses it.\n";

/// Why a directory cannot be a run directory.
#[derive(Debug)]
pub enum RunDirError {
    /// It holds entries and no marker: someone else's directory.
    NotOurs {
        /// The directory.
        dir: PathBuf,
        /// One of the entries found in it.
        example: String,
    },
    /// The path exists and is not a directory.
    NotADirectory(PathBuf),
    /// Creating, reading or emptying it failed.
    Io {
        /// The path that failed.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
}

impl fmt::Display for RunDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunDirError::NotOurs { dir, example } => write!(
                f,
                "{}: refusing to use this directory as a run directory: it holds files ksim did \
                 not write (e.g. `{example}`) and no {MARKER} marker; choose a new or empty \
                 directory",
                dir.display()
            ),
            RunDirError::NotADirectory(path) => write!(
                f,
                "{}: refusing to use this path as a run directory: it exists and is not a \
                 directory",
                path.display()
            ),
            RunDirError::Io { path, error } => {
                write!(
                    f,
                    "{}: cannot write the run directory: {error}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for RunDirError {}

/// Makes `dir` an empty run directory holding only the marker: creates it (and its parents)
/// if missing, empties it if ksim made it, refuses otherwise.
pub fn prepare(dir: &Path) -> Result<(), RunDirError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |error| RunDirError::Io { path, error }
    };
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => return Err(RunDirError::NotADirectory(dir.to_path_buf())),
        Ok(_) => {
            let mut entries: Vec<_> = fs::read_dir(dir)
                .map_err(io_error(dir))?
                .collect::<io::Result<Vec<_>>>()
                .map_err(io_error(dir))?;
            if !entries.is_empty() {
                if !is_run_dir(dir) {
                    entries.sort_by_key(|e| e.file_name());
                    return Err(RunDirError::NotOurs {
                        dir: dir.to_path_buf(),
                        example: entries[0].file_name().to_string_lossy().into_owned(),
                    });
                }
                for entry in entries {
                    let path = entry.path();
                    // `file_type` does not follow symlinks: a link is removed, not its target.
                    let is_dir = entry.file_type().map_err(io_error(&path))?.is_dir();
                    if is_dir {
                        fs::remove_dir_all(&path)
                    } else {
                        fs::remove_file(&path)
                    }
                    .map_err(io_error(&path))?;
                }
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        Err(error) => {
            return Err(RunDirError::Io {
                path: dir.to_path_buf(),
                error,
            })
        }
    }
    let marker = dir.join(MARKER);
    fs::write(&marker, MARKER_TEXT).map_err(io_error(&marker))
}

/// Whether `dir` holds ksim's marker file.
pub fn is_run_dir(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ksim-run-dir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_missing_directory_is_created_with_its_marker() {
        let dir = scratch("missing").join("a/b");
        prepare(&dir).unwrap();
        assert!(is_run_dir(&dir));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir.parent().unwrap().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_run_directory_is_emptied_and_a_strangers_directory_is_left_alone() {
        let dir = scratch("reuse");
        fs::create_dir_all(&dir).unwrap();
        prepare(&dir).unwrap();
        fs::write(dir.join("verdict.json"), "{}").unwrap();
        fs::create_dir_all(dir.join("broker-1/data")).unwrap();
        prepare(&dir).unwrap();
        let left: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "only the marker stays");

        let stranger = scratch("stranger");
        fs::create_dir_all(&stranger).unwrap();
        fs::write(stranger.join("thesis.tex"), "years of work").unwrap();
        let error = prepare(&stranger).unwrap_err();
        assert!(matches!(error, RunDirError::NotOurs { .. }), "{error}");
        assert!(error.to_string().contains("thesis.tex"), "{error}");
        assert_eq!(
            fs::read_to_string(stranger.join("thesis.tex")).unwrap(),
            "years of work"
        );
        assert!(!is_run_dir(&stranger));

        let file = stranger.join("thesis.tex");
        assert!(matches!(
            prepare(&file).unwrap_err(),
            RunDirError::NotADirectory(_)
        ));
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&stranger).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn emptying_a_run_directory_never_follows_a_symlink_out_of_it() {
        let dir = scratch("link");
        let outside = scratch("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "mine").unwrap();
        prepare(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "mine");
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }
}
