//! The file patterns of `include` in drbd.conf and keepalived.conf
//! (glob(7): `*`, `?`, `[...]`), expanded against the file system, sorted
//! like the shell sorts them.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Whether `text` holds a wildcard, so that matching no file is not an error.
pub(crate) fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The existing paths that `pattern` matches, a relative pattern taken from
/// `base`. Names starting with `.` match only a pattern component that
/// starts with `.`, as in the shell. Directories that cannot be read match
/// nothing. At most `limit + 1` paths are kept at each step, which bounds
/// the work of a pattern such as `/*/*/*/*`: a caller that reads at most
/// `limit` files refuses the rest anyway.
pub(crate) fn expand(pattern: &str, base: &Path, limit: usize) -> Vec<PathBuf> {
    let pattern = Path::new(pattern);
    let mut found = vec![if pattern.is_absolute() {
        PathBuf::from("/")
    } else {
        base.to_path_buf()
    }];
    for component in pattern.components() {
        let part = match component {
            Component::Normal(part) => part.to_string_lossy().into_owned(),
            Component::ParentDir => "..".to_owned(),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
        };
        let mut next = Vec::new();
        for dir in &found {
            if !has_wildcard(&part) {
                let path = dir.join(&part);
                if path.symlink_metadata().is_ok() {
                    next.push(path);
                }
                continue;
            }
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| matches(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| dir.join(name)));
        }
        found = next;
        found.truncate(limit.saturating_add(1));
    }
    found
}

/// Whether `name` matches the one-component glob `pattern`.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic backtracking over the last `*`: linear in practice and never
    // exponential.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class_matches(&pattern[p..], name[n]),
            Some(&literal) => (literal == name[n]).then_some(1),
            None => None,
        };
        match step {
            Some(width) => {
                p += width;
                n += 1;
            }
            None => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// For a pattern starting with `[`: the class's width in the pattern when
/// `c` is in it. A `[` without a closing `]` is a literal `[`.
fn class_matches(pattern: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while let Some(&member) = pattern.get(i) {
        if member == ']' && !first {
            return (found != negated).then_some(i + 1);
        }
        first = false;
        if pattern.get(i + 1) == Some(&'-') && pattern.get(i + 2).is_some_and(|&end| end != ']') {
            found |= (member..=pattern[i + 2]).contains(&c);
            i += 3;
        } else {
            found |= member == c;
            i += 1;
        }
    }
    (c == '[').then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_classes_and_literals() {
        assert!(matches("*.res", "r0.res"));
        assert!(!matches("*.res", "r0.res.bak"));
        assert!(matches("r?.res", "r1.res"));
        assert!(matches("r[0-3].res", "r2.res"));
        assert!(!matches("r[!0-3].res", "r2.res"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("[x", "[x"));
        assert!(matches("*", ""));
        assert!(matches("vi_?.c*f", "vi_1.conf"));
    }

    #[test]
    fn expansion_stops_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        for index in 0..20 {
            fs::write(dir.path().join(format!("{index:02}.conf")), "").unwrap();
        }
        assert_eq!(expand("*.conf", dir.path(), 5).len(), 6);
        assert_eq!(expand("*.conf", dir.path(), 100).len(), 20);
    }

    #[test]
    fn expands_sorted_and_relative_to_base() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.res", "a.res", ".hidden.res", "c.conf"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let found = expand("*.res", dir.path(), 10);
        assert_eq!(found, [dir.path().join("a.res"), dir.path().join("b.res")]);
        assert!(expand("nothing/*.res", dir.path(), 10).is_empty());
        let absolute = format!("{}/c.*", dir.path().display());
        assert_eq!(
            expand(&absolute, Path::new("/"), 10),
            [dir.path().join("c.conf")]
        );
    }
}
