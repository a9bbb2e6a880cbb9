//! Znode paths: ZooKeeper's validity rules, and splitting a path into parent and name.

use crate::zk::ZkError;

/// The root znode's path.
pub const ROOT: &str = "/";

/// Checks ZooKeeper's path rules: absolute; `/` is the root; otherwise no trailing `/`, no
/// empty component, no `.` or `..` component, and none of the characters ZooKeeper refuses
/// (NUL, the other control characters, the private-use area and U+FFF0..U+FFFF).
pub fn validate_path(path: &str) -> Result<(), ZkError> {
    if path == ROOT {
        return Ok(());
    }
    let rest = path.strip_prefix('/').ok_or(ZkError::BadArguments)?;
    let component_ok = |component: &str| {
        !component.is_empty()
            && component != "."
            && component != ".."
            && !component.chars().any(is_refused)
    };
    if rest.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(ZkError::BadArguments)
    }
}

/// The parent's path and the last component of a valid, non-root path.
///
/// # Panics
/// On the root or a path without `/` (callers validate first: that is a bug).
pub fn parent_and_name(path: &str) -> (&str, &str) {
    assert_ne!(path, ROOT, "the root has no parent");
    let slash = path
        .rfind('/')
        .unwrap_or_else(|| panic!("not an absolute path: {path:?}"));
    let parent = if slash == 0 { ROOT } else { &path[..slash] };
    (parent, &path[slash + 1..])
}

/// The path of `name` under `parent`.
pub fn child_path(parent: &str, name: &str) -> String {
    if parent == ROOT {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Characters ZooKeeper does not allow in a path (`PathUtils.validatePath`).
fn is_refused(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeepers_path_rules() {
        let valid = [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/.a",
            "/a/...",
            "/brokers/ids/1",
            "/a b",
        ];
        for path in valid {
            assert_eq!(validate_path(path), Ok(()), "{path:?}");
        }
        let invalid = [
            "",
            "a",
            "a/b",
            "//",
            "/a/",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/../b",
            "/a\0b",
            "/a\u{1}",
            "/a\u{7f}",
            "/\u{e000}",
            "/\u{fff0}",
        ];
        for path in invalid {
            assert_eq!(validate_path(path), Err(ZkError::BadArguments), "{path:?}");
        }
    }

    #[test]
    fn parent_and_name_split_at_the_last_slash() {
        assert_eq!(parent_and_name("/a"), ("/", "a"));
        assert_eq!(parent_and_name("/a/b/c"), ("/a/b", "c"));
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a/b", "c"), "/a/b/c");
    }
}
