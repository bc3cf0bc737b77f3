//! The metadata layer on real files: create-md, open, errors and their
//! messages, the data region staying untouched, and the dump.

// A list of one byte range is what these tests expect, not a typo for a range of values.
#![allow(clippy::single_range_in_vec_init)]

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use replica::block::BLOCK_BYTES;
use replica::layout::{DEFAULT_AL_EXTENTS, EXTENT_SIZE, Geometry};
use replica::store::{AppliedLog, Error, MetaDisk, Metadata, VolumePaths};
use replica::superblock::{Flags, Placement};

const MIB: u64 = 1 << 20;

fn sized_file(path: &Path, size: u64) {
    File::create(path).unwrap().set_len(size).unwrap();
}

fn internal(dir: &Path, size: u64) -> VolumePaths {
    let backing = dir.join("r0.img");
    sized_file(&backing, size);
    VolumePaths {
        resource: "r0".to_owned(),
        backing,
        meta_disk: MetaDisk::Internal,
    }
}

fn external(dir: &Path, size: u64) -> VolumePaths {
    let backing = dir.join("r0.img");
    sized_file(&backing, size);
    VolumePaths {
        resource: "r0".to_owned(),
        backing,
        meta_disk: MetaDisk::External(dir.join("r0.meta")),
    }
}

fn meta_path(paths: &VolumePaths) -> PathBuf {
    match &paths.meta_disk {
        MetaDisk::Internal => paths.backing.clone(),
        MetaDisk::External(path) => path.clone(),
    }
}

#[test]
fn internal_metadata_takes_the_end_of_the_backing_file() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let created = Metadata::create(&paths, "ha1", DEFAULT_AL_EXTENTS).unwrap();
    let expected = Geometry::internal(64 * MIB, DEFAULT_AL_EXTENTS).unwrap();
    assert_eq!(created.usable_size(), expected.usable_size());
    assert_eq!(
        created.usable_size(),
        64 * MIB - 11 * BLOCK_BYTES,
        "1 bitmap page, 8 ring slots, 2 superblocks"
    );
    assert_eq!(
        fs::metadata(&paths.backing).unwrap().len(),
        64 * MIB,
        "the file is not resized"
    );
    let superblock = created.superblock().clone();
    assert_eq!(superblock.placement, Placement::Internal);
    assert_eq!(superblock.node_name.as_str(), "ha1");
    assert_eq!(superblock.state.flags, Flags::AL_CLEAN);
    assert!(superblock.state.generations.is_just_created());
    drop(created);

    let mut opened = Metadata::open(&paths).unwrap();
    assert_eq!(opened.superblock(), &superblock);
    assert!(!opened.needs_crash_recovery());
    assert_eq!(
        opened.apply_activity_log().unwrap().activity_log,
        AppliedLog::WasClean
    );
    assert_eq!(opened.dirty_ranges().count(), 0);
}

#[test]
fn create_md_leaves_the_data_region_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 16 * MIB);
    let pattern: Vec<u8> = (0..16 * MIB).map(|index| (index % 251) as u8).collect();
    fs::write(&paths.backing, &pattern).unwrap();
    let metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    let usable = metadata.usable_size() as usize;
    let after = fs::read(&paths.backing).unwrap();
    assert!(
        after[..usable] == pattern[..usable],
        "data before the metadata area changed"
    );
    assert!(
        after[usable..] != pattern[usable..],
        "the metadata area was written"
    );
}

#[test]
fn external_metadata_file_is_created_with_the_area_size() {
    let dir = tempfile::tempdir().unwrap();
    let paths = external(dir.path(), 64 * MIB);
    let created = Metadata::create(&paths, "ha2", 100).unwrap();
    assert_eq!(
        created.usable_size(),
        64 * MIB,
        "external metadata leaves all data usable"
    );
    let geometry = created.superblock().geometry;
    assert_eq!(
        fs::metadata(meta_path(&paths)).unwrap().len(),
        geometry.area_size()
    );
    assert_eq!(fs::metadata(&paths.backing).unwrap().len(), 64 * MIB);
    drop(created);
    let opened = Metadata::open(&paths).unwrap();
    assert_eq!(opened.superblock().placement, Placement::External);
    assert_eq!(opened.superblock().geometry.al_extents(), 100);
}

#[test]
fn state_survives_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let mut metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    metadata
        .update_superblock(|state| {
            state
                .flags
                .insert(Flags::CONSISTENT | Flags::WAS_UP_TO_DATE);
            state.generations.start_new_generation(0x5550, false);
        })
        .unwrap();
    metadata.activity_log_begin(MIB..3 * MIB).unwrap();
    metadata.mark_dirty(MIB..3 * MIB).unwrap();
    metadata.activity_log_end(MIB..3 * MIB).unwrap();
    metadata.mark_clean_shutdown().unwrap();
    let superblock = metadata.superblock().clone();
    drop(metadata);

    let mut reopened = Metadata::open(&paths).unwrap();
    assert_eq!(reopened.superblock(), &superblock);
    assert_eq!(
        reopened.apply_activity_log().unwrap().activity_log,
        AppliedLog::WasClean
    );
    assert_eq!(reopened.dirty_ranges().collect::<Vec<_>>(), [MIB..3 * MIB]);
    assert_eq!(
        reopened.activity_log().hot_extents(),
        [0],
        "the hot set is kept across restarts"
    );
}

#[test]
fn crash_recovery_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let mut metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    metadata
        .update_superblock(|state| state.flags.insert(Flags::PRIMARY))
        .unwrap();
    metadata
        .activity_log_begin(5 * EXTENT_SIZE..5 * EXTENT_SIZE + 4096)
        .unwrap();
    drop(metadata); // crash with the write in flight

    let mut crashed = Metadata::open(&paths).unwrap();
    assert!(crashed.needs_crash_recovery());
    let error = crashed.activity_log_begin(0..4096).unwrap_err();
    assert!(matches!(error, Error::RecoveryRequired { .. }));
    assert!(
        error.to_string().contains("run crash recovery first"),
        "{error}"
    );
    let recovery = crashed.apply_activity_log().unwrap();
    assert!(recovery.crashed_primary);
    assert_eq!(recovery.activity_log, AppliedLog::HotExtents(1));
    assert_eq!(
        crashed.dirty_ranges().collect::<Vec<_>>(),
        [5 * EXTENT_SIZE..6 * EXTENT_SIZE]
    );
    crashed.activity_log_begin(0..4096).unwrap();
}

#[test]
fn missing_metadata_says_to_run_create_md() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let error = Metadata::open(&paths).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: no hapair metadata found (run haadm create-md r0)",
            paths.backing.display()
        )
    );
    let tiny = internal(dir.path(), 100);
    assert!(matches!(
        Metadata::open(&tiny),
        Err(Error::NoMetadata { .. })
    ));
    let paths = external(dir.path(), 64 * MIB);
    let error = Metadata::open(&paths).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: no hapair metadata found (run haadm create-md r0)",
            meta_path(&paths).display()
        )
    );
}

#[test]
fn shrunk_backing_file_is_reported_with_both_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let paths = external(dir.path(), 1 << 30);
    Metadata::create(&paths, "ha1", 7).unwrap();
    File::options()
        .write(true)
        .open(&paths.backing)
        .unwrap()
        .set_len(512 * MIB)
        .unwrap();
    let error = Metadata::open(&paths).unwrap_err();
    assert!(matches!(error, Error::BackingShrunk { .. }));
    assert_eq!(
        error.to_string(),
        format!(
            "{}: metadata says 1 GiB but the backing file {} is now 512 MiB (restore its size, or run haadm create-md r0 to start over with a full sync)",
            meta_path(&paths).display(),
            paths.backing.display()
        )
    );
}

#[test]
fn configured_placement_must_match_the_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let paths = external(dir.path(), 64 * MIB);
    Metadata::create(&paths, "ha1", 7).unwrap();
    // The external metadata file, wrongly configured as a backing file with
    // internal metadata.
    let wrong = VolumePaths {
        resource: "r0".to_owned(),
        backing: meta_path(&paths),
        meta_disk: MetaDisk::Internal,
    };
    let error = Metadata::open(&wrong).unwrap_err();
    assert!(matches!(
        error,
        Error::PlacementMismatch {
            found: Placement::External,
            configured: Placement::Internal,
            ..
        }
    ));
    assert!(
        error
            .to_string()
            .contains("created as external but the configuration says internal"),
        "{error}"
    );
}

#[test]
fn damaged_superblocks_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let mut metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    let first = metadata.superblock().clone();
    metadata
        .update_superblock(|state| state.flags.insert(Flags::CONSISTENT))
        .unwrap();
    let layout = metadata.layout();
    drop(metadata);
    let file = File::options().write(true).open(&paths.backing).unwrap();
    // Sequence 2 went to slot 0; damaging it falls back to sequence 1.
    file.write_all_at(b"garbage!", layout.superblock_offset(0) + 200)
        .unwrap();
    assert_eq!(Metadata::open(&paths).unwrap().superblock(), &first);
    file.write_all_at(b"garbage!", layout.superblock_offset(1) + 200)
        .unwrap();
    let error = Metadata::open(&paths).unwrap_err();
    assert!(matches!(error, Error::Damaged { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("both superblock copies are damaged"),
        "{error}"
    );
}

#[test]
fn al_clean_flag_cannot_be_changed_by_callers() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let mut metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    let error = metadata
        .update_superblock(|state| state.flags.remove(Flags::AL_CLEAN))
        .unwrap_err();
    assert!(matches!(error, Error::AlCleanIsManaged { .. }));
    assert!(metadata.superblock().state.flags.contains(Flags::AL_CLEAN));
}

#[test]
fn create_md_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let error = Metadata::create(&paths, "", 7).unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("cannot create metadata: node name is empty"),
        "{error}"
    );
    let error = Metadata::create(&paths, "ha1", 3).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("al-extents 3 is outside 7..=65534"),
        "{error}"
    );
    let small = internal(dir.path(), 40 * 1024);
    let error = Metadata::create(&small, "ha1", 7).unwrap_err();
    assert!(
        error.to_string().contains("is too small to hold any data"),
        "{error}"
    );
    let missing = VolumePaths {
        resource: "r0".to_owned(),
        backing: dir.path().join("absent.img"),
        meta_disk: MetaDisk::Internal,
    };
    let error = Metadata::create(&missing, "ha1", 7).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("absent.img: cannot open it for reading and writing"),
        "{error}"
    );
}

#[test]
fn dump_of_fresh_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let paths = internal(dir.path(), 64 * MIB);
    let mut metadata = Metadata::create(&paths, "ha1", 7).unwrap();
    metadata.activity_log_begin(0..4096).unwrap();
    metadata.mark_dirty(0..4096).unwrap();
    metadata.activity_log_end(0..4096).unwrap();
    let uuid = format!("{:#018x}", metadata.superblock().device_uuid);
    let dump = metadata
        .dump()
        .replace(&uuid, "<uuid>")
        .replace(&paths.backing.display().to_string(), "r0.img");
    let expected = "\
metadata:       r0.img
format-version: 1
placement:      internal
node:           ha1
device-uuid:    <uuid>
usable-size:    67063808 bytes (65492 KiB)
superblock:     sequence 2 in slot 0
flags:          (none)
current-id:     0x0000000000000004
bitmap-id:      0x0000000000000000
history-ids:    0x0000000000000000 0x0000000000000000 0x0000000000000000 0x0000000000000000
bitmap:         16373 blocks of 4 KiB in 1 pages, 1 dirty (4 KiB)
dirty:          0..4096 (4 KiB)
activity-log:   7 extents of 4 MiB in 8 ring slots, last transaction 9
hot-extents:    1 (0)
";
    assert_eq!(dump, expected);
}
