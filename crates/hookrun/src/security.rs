//! Script security, as keepalived's `enable_script_security`: a hook run as
//! root must not be changeable by anyone but root. The program and every
//! directory on the way to it (through every symlink, whose targets are
//! checked the same way) must be owned by root and not writable by group
//! or others; a directory with the sticky bit may be writable by others,
//! since only root can then replace the root-owned entries in it.
//!
//! Also here: the user hooks run as instead of root (`script_user`).

use std::collections::VecDeque;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::unistd::{Group, User};

/// More symlinks than this on one path is a loop (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

const GROUP_WRITE: u32 = 0o020;
const OTHER_WRITE: u32 = 0o002;
const STICKY: u32 = 0o1000;

/// Whether `program` (a path, or a name looked up in `PATH`) may be run as
/// root: `Err` says which path stops it and why, in the words of
/// `refusing to run P as root: D is writable by group 1000 (...)`.
pub fn check_script(program: &str) -> Result<(), String> {
    let path = match find_program(program) {
        Some(path) => path,
        // Not found: spawning it fails and says so.
        None => return Ok(()),
    };
    check_path(&path).map_err(|problem| {
        format!(
            "refusing to run {} as root: {problem}",
            Path::new(program).display()
        )
    })
}

/// The file `program` names: itself when it holds a slash, else the first
/// executable file of that name in `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = PathBuf::from(program);
        return Some(if path.is_absolute() {
            path
        } else {
            env::current_dir().ok()?.join(path)
        });
    }
    let search = env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Walks `path` from `/` as the kernel resolves it, checking each
/// directory and the final file, and following symlinks into their targets.
fn check_path(path: &Path) -> Result<(), String> {
    let mut pending: VecDeque<OsString> = VecDeque::new();
    push_front(&mut pending, path);
    let mut current = PathBuf::from("/");
    check_entry(&current)?;
    let mut symlinks = 0;
    while let Some(name) = pending.pop_front() {
        match name.to_str() {
            Some("/") => {
                current = PathBuf::from("/");
                continue;
            }
            Some(".") => continue,
            Some("..") => {
                current.pop();
                continue;
            }
            _ => {}
        }
        let next = current.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            // Missing: spawning it fails and says so.
            Err(_) => return Ok(()),
        };
        if meta.file_type().is_symlink() {
            check_owner(&next, &meta)?;
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                return Err(format!(
                    "{} has more than {MAX_SYMLINKS} symlinks on its way (a loop?)",
                    path.display()
                ));
            }
            let target = fs::read_link(&next)
                .map_err(|error| format!("cannot read the symlink {}: {error}", next.display()))?;
            push_front(&mut pending, &target);
            continue;
        }
        check_metadata(&next, &meta)?;
        current = next;
    }
    Ok(())
}

/// Puts the components of `path` in front of `pending`, a leading `/`
/// included.
fn push_front(pending: &mut VecDeque<OsString>, path: &Path) {
    for component in path.components().rev() {
        let name = match component {
            Component::RootDir => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(name) => name.to_owned(),
            // Windows only.
            Component::Prefix(_) => continue,
        };
        pending.push_front(name);
    }
}

fn check_entry(path: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(path)
        .map_err(|error| format!("cannot check {}: {error}", path.display()))?;
    check_metadata(path, &meta)
}

fn check_owner(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    if meta.uid() != 0 {
        return Err(format!(
            "{} is owned by {}, not root (chown root {}, or run hooks as another user)",
            path.display(),
            user_name(meta.uid()),
            path.display()
        ));
    }
    Ok(())
}

fn check_metadata(path: &Path, meta: &fs::Metadata) -> Result<(), String> {
    check_owner(path, meta)?;
    let mode = meta.mode();
    if meta.is_dir() && mode & STICKY != 0 {
        return Ok(());
    }
    if mode & OTHER_WRITE != 0 {
        return Err(format!(
            "{} is writable by everyone (chmod o-w {}, or run hooks as another user)",
            path.display(),
            path.display()
        ));
    }
    if mode & GROUP_WRITE != 0 {
        return Err(format!(
            "{} is writable by group {} (chmod g-w {}, or run hooks as another user)",
            path.display(),
            group_name(meta.gid()),
            path.display()
        ));
    }
    Ok(())
}

/// `user 1000 (alice)`, or `user 1000` when no such user exists.
fn user_name(uid: u32) -> String {
    match User::from_uid(uid.into()) {
        Ok(Some(user)) => format!("user {uid} ({})", user.name),
        _ => format!("user {uid}"),
    }
}

/// `1000 (staff)`, or the bare number when no such group exists.
fn group_name(gid: u32) -> String {
    match Group::from_gid(gid.into()) {
        Ok(Some(group)) => format!("{gid} ({})", group.name),
        _ => gid.to_string(),
    }
}

/// The user (and group) hooks run as instead of the daemon's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Looks up `user` (a name or a number) and `group` (default: the
    /// user's primary group).
    pub fn lookup(user: &str, group: Option<&str>) -> Result<RunAs, String> {
        let found = match user.parse::<u32>() {
            Ok(uid) => User::from_uid(uid.into()),
            Err(_) => User::from_name(user),
        }
        .map_err(|error| format!("cannot look up user {user}: {error}"))?;
        let Some(found) = found else {
            return Err(format!(
                "no user {user} on this host (create it, e.g. `useradd --system {user}`, or \
                 name another user)"
            ));
        };
        let gid = match group {
            None => found.gid.as_raw(),
            Some(group) => {
                let found_group = match group.parse::<u32>() {
                    Ok(gid) => Group::from_gid(gid.into()),
                    Err(_) => Group::from_name(group),
                }
                .map_err(|error| format!("cannot look up group {group}: {error}"))?;
                found_group
                    .ok_or_else(|| {
                        format!("no group {group} on this host (create it, or name another group)")
                    })?
                    .gid
                    .as_raw()
            }
        };
        Ok(RunAs {
            uid: found.uid.as_raw(),
            gid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, symlink};

    /// A root-owned 0755 directory tree with an executable script in it.
    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        fs::create_dir(&hooks).unwrap();
        fs::set_permissions(&hooks, fs::Permissions::from_mode(0o755)).unwrap();
        let script = hooks.join("promote");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        (dir, script)
    }

    fn check(path: &Path) -> Result<(), String> {
        check_script(path.to_str().unwrap())
    }

    /// Whether the test runs as root; if not, says it skips and `why`.
    fn root_or_skip(why: &str) -> bool {
        let root = nix::unistd::geteuid().is_root();
        if !root {
            eprintln!("skipping: {why}");
        }
        root
    }

    #[test]
    fn a_root_owned_tree_passes() {
        if !root_or_skip("the files must be root's") {
            return;
        }
        let (_dir, script) = tree();
        assert_eq!(check(&script), Ok(()));
        // Looked up in PATH: sh lives in root's directories.
        assert_eq!(check_script("sh"), Ok(()));
    }

    #[test]
    fn a_group_writable_directory_is_named() {
        if !root_or_skip("needs root to give files away") {
            return;
        }
        let (_dir, script) = tree();
        let hooks = script.parent().unwrap();
        chown(hooks, Some(0), Some(1000)).unwrap();
        fs::set_permissions(hooks, fs::Permissions::from_mode(0o775)).unwrap();
        let error = check(&script).unwrap_err();
        assert!(
            error.starts_with(&format!(
                "refusing to run {} as root: {} is writable by group 1000",
                script.display(),
                hooks.display()
            )),
            "{error}"
        );
        assert!(error.contains("chmod g-w"), "{error}");
    }

    #[test]
    fn a_script_owned_by_another_user_or_writable_by_all_is_refused() {
        if !root_or_skip("needs root to give files away") {
            return;
        }
        let (_dir, script) = tree();
        chown(&script, Some(1000), None).unwrap();
        let error = check(&script).unwrap_err();
        assert!(
            error.contains(&format!("{} is owned by user 1000", script.display())),
            "{error}"
        );
        chown(&script, Some(0), None).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o757)).unwrap();
        let error = check(&script).unwrap_err();
        assert!(error.contains("is writable by everyone"), "{error}");
    }

    #[test]
    fn symlink_targets_are_checked_too() {
        if !root_or_skip("needs root to give files away") {
            return;
        }
        let (dir, script) = tree();
        // A safe link to a script in a directory another user owns.
        let unsafe_dir = dir.path().join("theirs");
        fs::create_dir(&unsafe_dir).unwrap();
        chown(&unsafe_dir, Some(1000), Some(1000)).unwrap();
        let target = unsafe_dir.join("real");
        fs::copy(&script, &target).unwrap();
        let link = script.parent().unwrap().join("link");
        symlink(&target, &link).unwrap();
        let error = check(&link).unwrap_err();
        assert!(
            error.contains(&format!("{} is owned by user 1000", unsafe_dir.display())),
            "{error}"
        );
        // A relative link into the safe tree passes.
        let good = script.parent().unwrap().join("good");
        symlink("promote", &good).unwrap();
        assert_eq!(check(&good), Ok(()));
    }

    #[test]
    fn sticky_world_writable_directories_are_allowed() {
        if !root_or_skip("the files must be root's") {
            return;
        }
        let (_dir, script) = tree();
        let hooks = script.parent().unwrap();
        fs::set_permissions(hooks, fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check(&script), Ok(()));
    }

    #[test]
    fn run_as_looks_up_users_and_groups() {
        assert_eq!(RunAs::lookup("root", None), Ok(RunAs { uid: 0, gid: 0 }));
        assert_eq!(RunAs::lookup("0", Some("0")), Ok(RunAs { uid: 0, gid: 0 }));
        let error = RunAs::lookup("no-such-user-hapair", None).unwrap_err();
        assert!(error.contains("no user no-such-user-hapair"), "{error}");
        let error = RunAs::lookup("root", Some("no-such-group-hapair")).unwrap_err();
        assert!(error.contains("no group no-such-group-hapair"), "{error}");
    }
}
