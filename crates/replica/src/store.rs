//! The file layer: creates, opens, updates and recovers a volume's metadata.
//!
//! Everything byte-level is delegated to the pure modules; this layer only
//! decides *when* blocks are written and synced, which is what makes a crash
//! harmless:
//!
//! - a superblock update writes the other slot and syncs before returning;
//! - [`Metadata::activity_log_begin`] makes the activity-log transaction
//!   durable before returning (and, before it, the bitmap pages of evicted
//!   extents, and the clearing of `al-clean`), so the caller may then write
//!   the data;
//! - [`Metadata::mark_clean_shutdown`] flushes the bitmap before it sets
//!   `al-clean`;
//! - [`Metadata::apply_activity_log`] ORs the hot extents into the bitmap and
//!   flushes it before it sets `al-clean` again.
//!
//! I/O goes through the [`Storage`] trait: `std::fs::File` for real use, any
//! other implementation (an in-memory disk that records writes) for tests.
//! After a write to the metadata fails, the in-memory state may be ahead of
//! the disk, so every later write-path call fails too: detach and reattach.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::activity_log::{ActivityLog, AlError, UPDATES_PER_TRANSACTION};
use crate::bitmap::{DirtyBitmap, DirtyRanges, decode_page, page_of_extent};
use crate::block::{BLOCK_BYTES, BLOCK_SIZE, DecodeError};
use crate::dump;
use crate::generation::{GenerationIds, random_id};
use crate::layout::{
    EXTENT_SIZE, Geometry, GeometryError, Layout, RangeError, check_range, superblock_offsets,
};
use crate::size::format_size;
use crate::superblock::{
    Flags, NodeName, NodeNameError, Placement, SelectError, Superblock, VolumeState, select,
};

/// Positioned, synchronous access to the device or file that holds the
/// metadata area.
pub trait Storage {
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every completed write durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
}

impl Storage for File {
    fn size(&self) -> io::Result<u64> {
        // Works for block devices too, whose metadata length is zero.
        let mut file = self;
        file.seek(SeekFrom::End(0))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.write_all_at(data, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// Where the metadata of a volume lives, as the config's `meta-disk` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaDisk {
    /// At the end of the backing file, which loses that much usable space.
    Internal,
    /// In a file (or device) of its own; the backing file is all data.
    External(PathBuf),
}

/// The files of one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePaths {
    /// Resource name, used in the hints of error messages.
    pub resource: String,
    /// The backing file or device holding the data.
    pub backing: PathBuf,
    pub meta_disk: MetaDisk,
}

/// The data file of external metadata, for checking sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalBacking {
    /// Name used in messages.
    pub name: String,
    pub size: u64,
}

/// The storage holding a metadata area, with what messages need to know.
#[derive(Debug)]
pub struct MetaTarget<S> {
    pub storage: S,
    /// Name of the storage in messages (usually its path).
    pub name: String,
    /// Resource name, used in the hints of error messages.
    pub resource: String,
    /// `None` for internal metadata; the data file for external metadata.
    pub external: Option<ExternalBacking>,
}

/// Why metadata could not be created, opened or updated. Every message names
/// the file and says what to do.
#[derive(Debug, Error)]
pub enum Error {
    #[error("{file}: no hapair metadata found (run haadm create-md {resource})")]
    NoMetadata { file: String, resource: String },
    #[error(
        "{file}: both superblock copies are damaged ({detail}); the replication state is lost: run haadm create-md {resource} (the next connect makes a full sync)"
    )]
    Damaged {
        file: String,
        resource: String,
        detail: String,
    },
    #[error("{file}: {error}; use the hapair release that wrote this metadata")]
    UnsupportedVersion { file: String, error: DecodeError },
    #[error(
        "{file}: the metadata was created as {found} but the configuration says {configured} (fix meta-disk in the configuration, or run haadm create-md {resource})"
    )]
    PlacementMismatch {
        file: String,
        resource: String,
        found: Placement,
        configured: Placement,
    },
    #[error("{file}: metadata says {} but the backing file {backing} is now {} (restore its size, or run haadm create-md {resource} to start over with a full sync)", format_size(*expected), format_size(*actual))]
    BackingShrunk {
        file: String,
        backing: String,
        resource: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{file}: the metadata does not fit the file: {detail} (run haadm create-md {resource})"
    )]
    Inconsistent {
        file: String,
        resource: String,
        detail: String,
    },
    #[error("{file}: cannot create metadata: {error}")]
    Geometry { file: String, error: GeometryError },
    #[error("{file}: cannot create metadata: {error}")]
    NodeName { file: String, error: NodeNameError },
    #[error("{file}: cannot {action}: {error}")]
    Io {
        file: String,
        action: String,
        error: io::Error,
    },
    #[error("{file}: {error}")]
    Range { file: String, error: RangeError },
    #[error("{file}: activity log: {error}")]
    ActivityLog { file: String, error: AlError },
    #[error(
        "{file}: the metadata holds state from a crash; run crash recovery first (apply_activity_log, as haadm apply-al does)"
    )]
    RecoveryRequired { file: String },
    #[error("{file}: {count} writes are still in flight; end them before a clean shutdown")]
    WritesInFlight { file: String, count: u64 },
    #[error(
        "{file}: the al-clean flag is managed by the metadata layer and cannot be set or cleared through update_superblock"
    )]
    AlCleanIsManaged { file: String },
    #[error(
        "{file}: an earlier metadata write failed ({reason}); the metadata in memory may be ahead of the disk: detach the disk and attach it again"
    )]
    Failed { file: String, reason: String },
}

/// What [`Metadata::apply_activity_log`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashRecovery {
    /// The `primary` flag was set: the node crashed (or stopped) while
    /// Primary; `crashed-primary` is now set and `primary` cleared.
    pub crashed_primary: bool,
    pub activity_log: AppliedLog,
}

/// What happened to the activity log during crash recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedLog {
    /// The log was clean: nothing to apply.
    WasClean,
    /// This many hot extents were marked dirty in the bitmap.
    HotExtents(usize),
    /// The log could not be read completely: the whole device was marked
    /// dirty (a full resync, the safe choice).
    WholeDevice,
}

/// Largest write chunk that fits one transaction's updates.
const CHUNK: u64 = UPDATES_PER_TRANSACTION as u64 * EXTENT_SIZE;

/// Most bitmap pages read or written by one I/O (1 MiB).
const PAGES_PER_IO: u32 = 256;

/// A volume's metadata, loaded and ready for use.
#[derive(Debug)]
pub struct Metadata<S: Storage = File> {
    storage: S,
    name: String,
    resource: String,
    layout: Layout,
    superblock: Superblock,
    bitmap: DirtyBitmap,
    activity_log: ActivityLog,
    ring_complete: bool,
    recovery_pending: bool,
    damaged_bitmap_pages: u32,
    failure: Option<String>,
}

fn open_file(path: &Path, create: bool) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|error| Error::Io {
            file: path.display().to_string(),
            action: "open it for reading and writing".to_owned(),
            error,
        })
}

fn external_backing(path: &Path) -> Result<ExternalBacking, Error> {
    let name = path.display().to_string();
    let io_error = |error| Error::Io {
        file: name.clone(),
        action: "find the size of the backing file".to_owned(),
        error,
    };
    let file = File::open(path).map_err(io_error)?;
    let size = file.size().map_err(io_error)?;
    Ok(ExternalBacking { name, size })
}

impl Metadata<File> {
    /// Writes fresh metadata (create-md): clean bitmap, empty activity log,
    /// just-created generation ids, `al-clean` set. Internal metadata takes
    /// the end of the backing file, which must exist. An external metadata
    /// file is created if missing and, if it is a regular file, sized to the
    /// metadata area exactly.
    pub fn create(paths: &VolumePaths, node_name: &str, al_extents: u32) -> Result<Self, Error> {
        let target = match &paths.meta_disk {
            MetaDisk::Internal => MetaTarget {
                storage: open_file(&paths.backing, false)?,
                name: paths.backing.display().to_string(),
                resource: paths.resource.clone(),
                external: None,
            },
            MetaDisk::External(meta_path) => {
                let backing = external_backing(&paths.backing)?;
                let name = meta_path.display().to_string();
                let geometry =
                    planned_geometry(0, Some(&backing), al_extents).map_err(|error| {
                        Error::Geometry {
                            file: name.clone(),
                            error,
                        }
                    })?;
                let file = open_file(meta_path, true)?;
                let is_regular = file.metadata().map(|meta| meta.is_file());
                if is_regular.unwrap_or(false) {
                    file.set_len(geometry.area_size())
                        .map_err(|error| Error::Io {
                            file: name.clone(),
                            action: "size the metadata file".to_owned(),
                            error,
                        })?;
                }
                MetaTarget {
                    storage: file,
                    name,
                    resource: paths.resource.clone(),
                    external: Some(backing),
                }
            }
        };
        Self::create_on(target, node_name, al_extents)
    }

    /// Opens and validates existing metadata. Does not write: call
    /// [`Metadata::apply_activity_log`] next, before any write.
    pub fn open(paths: &VolumePaths) -> Result<Self, Error> {
        let target = match &paths.meta_disk {
            MetaDisk::Internal => MetaTarget {
                storage: open_file(&paths.backing, false)?,
                name: paths.backing.display().to_string(),
                resource: paths.resource.clone(),
                external: None,
            },
            MetaDisk::External(meta_path) => {
                let backing = external_backing(&paths.backing)?;
                if !meta_path.exists() {
                    return Err(Error::NoMetadata {
                        file: meta_path.display().to_string(),
                        resource: paths.resource.clone(),
                    });
                }
                MetaTarget {
                    storage: open_file(meta_path, false)?,
                    name: meta_path.display().to_string(),
                    resource: paths.resource.clone(),
                    external: Some(backing),
                }
            }
        };
        Self::open_on(target)
    }
}

/// The geometry create-md gives a volume.
fn planned_geometry(
    storage_size: u64,
    external: Option<&ExternalBacking>,
    al_extents: u32,
) -> Result<Geometry, GeometryError> {
    match external {
        None => Geometry::internal(storage_size, al_extents),
        Some(backing) => Geometry::new(backing.size - backing.size % BLOCK_BYTES, al_extents),
    }
}

impl<S: Storage> Metadata<S> {
    /// [`Metadata::create`] on any storage. The storage must already be large
    /// enough; the metadata area takes its aligned end.
    pub fn create_on(
        target: MetaTarget<S>,
        node_name: &str,
        al_extents: u32,
    ) -> Result<Self, Error> {
        let MetaTarget {
            mut storage,
            name,
            resource,
            external,
        } = target;
        let node_name = NodeName::new(node_name).map_err(|error| Error::NodeName {
            file: name.clone(),
            error,
        })?;
        let io_error = |action: &str| {
            let file = name.clone();
            let action = action.to_owned();
            move |error| Error::Io {
                file,
                action,
                error,
            }
        };
        let storage_size = storage.size().map_err(io_error("find its size"))?;
        let geometry =
            planned_geometry(storage_size, external.as_ref(), al_extents).map_err(|error| {
                Error::Geometry {
                    file: name.clone(),
                    error,
                }
            })?;
        let layout = Layout::at_end(geometry, storage_size).ok_or_else(|| Error::Geometry {
            file: name.clone(),
            error: GeometryError::BackingTooSmall {
                backing_size: storage_size,
                metadata_size: geometry.area_size(),
            },
        })?;
        let superblock = Superblock {
            sequence: 1,
            device_uuid: random_id(),
            geometry,
            placement: if external.is_some() {
                Placement::External
            } else {
                Placement::Internal
            },
            node_name,
            state: VolumeState {
                flags: Flags::AL_CLEAN,
                generations: GenerationIds::just_created(),
            },
        };
        // Invalidate any old superblock first, so a crash part-way leaves
        // "no metadata" rather than an old superblock over new blocks.
        storage
            .write_at(layout.superblock_offset(0), &[0; 2 * BLOCK_SIZE])
            .map_err(io_error("erase the old superblocks"))?;
        storage.sync().map_err(io_error("sync"))?;
        let mut metadata = Self {
            storage,
            name,
            resource,
            layout,
            bitmap: DirtyBitmap::new(geometry.blocks()),
            activity_log: ActivityLog::new(geometry, superblock.device_uuid),
            superblock,
            ring_complete: true,
            recovery_pending: false,
            damaged_bitmap_pages: 0,
            failure: None,
        };
        let all_pages: Vec<u32> = (0..geometry.bitmap_pages()).collect();
        metadata.write_pages(&all_pages)?;
        metadata.write_full_ring()?;
        let first = metadata.superblock.encode();
        metadata.write(
            layout.superblock_offset(metadata.superblock.slot()),
            &first,
            "write the superblock",
        )?;
        metadata.sync()?;
        Ok(metadata)
    }

    /// [`Metadata::open`] on any storage.
    pub fn open_on(target: MetaTarget<S>) -> Result<Self, Error> {
        let MetaTarget {
            storage,
            name,
            resource,
            external,
        } = target;
        let io_error = |action: &str| {
            let file = name.clone();
            let action = action.to_owned();
            move |error| Error::Io {
                file,
                action,
                error,
            }
        };
        let no_metadata = || Error::NoMetadata {
            file: name.clone(),
            resource: resource.clone(),
        };
        let storage_size = storage.size().map_err(io_error("find its size"))?;
        let [slot0_offset, slot1_offset] =
            superblock_offsets(storage_size).ok_or_else(no_metadata)?;
        let mut slots = [[0u8; BLOCK_SIZE]; 2];
        storage
            .read_at(slot0_offset, &mut slots[0])
            .and_then(|()| storage.read_at(slot1_offset, &mut slots[1]))
            .map_err(io_error("read the superblocks"))?;
        let superblock = select(&slots[0], &slots[1]).map_err(|error| match error {
            SelectError::NoMetadata => no_metadata(),
            SelectError::UnsupportedVersion(error) => Error::UnsupportedVersion {
                file: name.clone(),
                error,
            },
            damaged @ SelectError::Damaged(..) => Error::Damaged {
                file: name.clone(),
                resource: resource.clone(),
                detail: damaged.to_string(),
            },
        })?;
        let configured = if external.is_some() {
            Placement::External
        } else {
            Placement::Internal
        };
        if superblock.placement != configured {
            return Err(Error::PlacementMismatch {
                file: name,
                resource,
                found: superblock.placement,
                configured,
            });
        }
        let geometry = superblock.geometry;
        let inconsistent = |detail: String| Error::Inconsistent {
            file: name.clone(),
            resource: resource.clone(),
            detail,
        };
        let layout = Layout::at_end(geometry, storage_size).ok_or_else(|| {
            inconsistent(format!(
                "a metadata area of {} does not fit in {}",
                format_size(geometry.area_size()),
                format_size(storage_size)
            ))
        })?;
        match &external {
            None if geometry.usable_size() > layout.area_start() => {
                return Err(inconsistent(format!(
                    "usable size {} overlaps the metadata area at {}",
                    format_size(geometry.usable_size()),
                    layout.area_start()
                )));
            }
            Some(backing) if backing.size < geometry.usable_size() => {
                return Err(Error::BackingShrunk {
                    file: name,
                    backing: backing.name.clone(),
                    resource,
                    expected: geometry.usable_size(),
                    actual: backing.size,
                });
            }
            _ => {}
        }
        let mut bitmap = DirtyBitmap::new(geometry.blocks());
        let mut damaged_bitmap_pages = 0;
        let mut buffer = Vec::new();
        for first in (0..geometry.bitmap_pages()).step_by(PAGES_PER_IO as usize) {
            let count = PAGES_PER_IO.min(geometry.bitmap_pages() - first);
            buffer.resize(count as usize * BLOCK_SIZE, 0);
            storage
                .read_at(layout.bitmap_page_offset(first), &mut buffer)
                .map_err(io_error("read the bitmap"))?;
            for (page, bytes) in (first..).zip(buffer.chunks(BLOCK_SIZE)) {
                match decode_page(bytes, superblock.device_uuid, page) {
                    Ok(words) => bitmap.load_page(page, &words),
                    Err(_) => {
                        bitmap.mark_page_dirty(page);
                        damaged_bitmap_pages += 1;
                    }
                }
            }
        }
        let mut ring = vec![0u8; geometry.al_ring_slots() as usize * BLOCK_SIZE];
        storage
            .read_at(layout.al_slot_offset(0), &mut ring)
            .map_err(io_error("read the activity log"))?;
        let recovered = ActivityLog::recover(geometry, superblock.device_uuid, &ring);
        let flags = superblock.state.flags;
        Ok(Self {
            storage,
            name,
            resource,
            layout,
            bitmap,
            activity_log: recovered.log,
            ring_complete: recovered.complete,
            recovery_pending: !flags.contains(Flags::AL_CLEAN) || flags.contains(Flags::PRIMARY),
            damaged_bitmap_pages,
            superblock,
            failure: None,
        })
    }

    /// Name of the storage holding the metadata, as used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Bytes of data the volume exposes (data lives at `0..usable_size` of
    /// the backing file, for internal and external metadata alike).
    pub fn usable_size(&self) -> u64 {
        self.superblock.geometry.usable_size()
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn superblock(&self) -> &Superblock {
        &self.superblock
    }

    pub fn bitmap(&self) -> &DirtyBitmap {
        &self.bitmap
    }

    pub fn activity_log(&self) -> &ActivityLog {
        &self.activity_log
    }

    /// Bitmap pages that failed their checksum at open and were taken as all
    /// dirty.
    pub fn damaged_bitmap_pages(&self) -> u32 {
        self.damaged_bitmap_pages
    }

    /// True until [`Metadata::apply_activity_log`] ran, if the metadata shows
    /// a crash (`al-clean` not set, or `primary` still set).
    pub fn needs_crash_recovery(&self) -> bool {
        self.recovery_pending
    }

    /// Changes flags and generation ids; durable before it returns. The
    /// `al-clean` flag cannot be changed here.
    pub fn update_superblock(
        &mut self,
        change: impl FnOnce(&mut VolumeState),
    ) -> Result<(), Error> {
        self.check_not_failed()?;
        let mut state = self.superblock.state;
        change(&mut state);
        if state.flags.contains(Flags::AL_CLEAN)
            != self.superblock.state.flags.contains(Flags::AL_CLEAN)
        {
            return Err(Error::AlCleanIsManaged {
                file: self.name.clone(),
            });
        }
        self.write_state(state)
    }

    /// Marks the blocks `range` (bytes) touches as out of sync, in memory.
    /// They reach the disk with the next [`Metadata::flush_bitmap`], when their
    /// extent leaves the activity log, or at a clean shutdown. Marking a range
    /// while a write to it is in flight (between `activity_log_begin` and
    /// `activity_log_end`) is crash-safe at once: the activity log covers it.
    /// For any other range, call `flush_bitmap` before relying on it.
    pub fn mark_dirty(&mut self, range: Range<u64>) -> Result<(), Error> {
        self.bitmap
            .mark(range)
            .map_err(|error| self.range_error(error))
    }

    /// Marks the blocks `range` covers completely as in sync, in memory. Call
    /// only once the data is durable on both nodes.
    pub fn clear_dirty(&mut self, range: Range<u64>) -> Result<(), Error> {
        self.bitmap
            .clear(range)
            .map_err(|error| self.range_error(error))
    }

    /// The out-of-sync byte ranges, in order.
    pub fn dirty_ranges(&self) -> DirtyRanges<'_> {
        self.bitmap.dirty_ranges()
    }

    /// Writes every changed bitmap page and syncs.
    pub fn flush_bitmap(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        let pages: Vec<u32> = self.bitmap.unsaved_pages().collect();
        if pages.is_empty() {
            return Ok(());
        }
        self.write_pages(&pages)?;
        self.sync()
    }

    /// Enters a write of `range` into the activity log. When this returns,
    /// everything needed to resync `range` after a crash is durable, and the
    /// caller may write the data. Pair with [`Metadata::activity_log_end`].
    ///
    /// Fails with [`AlError::Full`] when every slot has writes in flight:
    /// wait for one to end and retry.
    pub fn activity_log_begin(&mut self, range: Range<u64>) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.recovery_pending {
            return Err(Error::RecoveryRequired {
                file: self.name.clone(),
            });
        }
        check_range(&range, self.usable_size()).map_err(|error| self.range_error(error))?;
        if range.is_empty() {
            return Ok(());
        }
        let mut flags = self.superblock.state.flags;
        if flags.contains(Flags::AL_CLEAN) {
            flags.remove(Flags::AL_CLEAN);
            self.write_state(VolumeState {
                flags,
                ..self.superblock.state
            })?;
        }
        let chunks = split_at_chunks(&range);
        for (done, chunk) in chunks.iter().enumerate() {
            if let Err(error) = self.begin_chunk(chunk.clone()) {
                for begun in &chunks[..done] {
                    // These chunks began above, so ending them cannot fail.
                    let _ = self.activity_log.end_write(begun.clone());
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Enters a write of `range` into the activity log only when that
    /// needs no metadata I/O: the log is in use (not marked clean) and every
    /// extent the range touches is hot. Returns whether it was entered; when
    /// not, nothing changed and [`Metadata::activity_log_begin`] is the way.
    /// Pair an entered write with [`Metadata::activity_log_end`].
    pub fn activity_log_begin_hot(&mut self, range: Range<u64>) -> Result<bool, Error> {
        self.check_not_failed()?;
        check_range(&range, self.usable_size()).map_err(|error| self.range_error(error))?;
        if self.recovery_pending || self.superblock.state.flags.contains(Flags::AL_CLEAN) {
            return Ok(false);
        }
        self.activity_log
            .begin_write_if_hot(range)
            .map_err(|error| Error::ActivityLog {
                file: self.name.clone(),
                error,
            })
    }

    fn begin_chunk(&mut self, chunk: Range<u64>) -> Result<(), Error> {
        let pending = match self.activity_log.begin_write(chunk) {
            Ok(Some(pending)) => pending,
            Ok(None) => return Ok(()),
            Err(error) => {
                return Err(Error::ActivityLog {
                    file: self.name.clone(),
                    error,
                });
            }
        };
        let pages: BTreeSet<u32> = pending
            .evicted
            .iter()
            .map(|&extent| page_of_extent(extent))
            .filter(|&page| self.bitmap.is_page_unsaved(page))
            .collect();
        if !pages.is_empty() {
            self.write_pages(&pages.into_iter().collect::<Vec<_>>())?;
            self.sync()?;
        }
        let transaction = &pending.transaction;
        let offset = self
            .layout
            .al_slot_offset(self.activity_log.ring_slot(transaction.sequence));
        self.write(
            offset,
            &transaction.encode(),
            "write an activity-log transaction",
        )?;
        self.sync()
    }

    /// The write of `range` finished (successfully or not).
    pub fn activity_log_end(&mut self, range: Range<u64>) -> Result<(), Error> {
        self.activity_log
            .end_write(range)
            .map_err(|error| Error::ActivityLog {
                file: self.name.clone(),
                error,
            })
    }

    /// Flushes the bitmap and sets `al-clean`, so the next start has nothing
    /// to recover. Call with no writes in flight, when stopping.
    pub fn mark_clean_shutdown(&mut self) -> Result<(), Error> {
        self.check_not_failed()?;
        if self.recovery_pending {
            return Err(Error::RecoveryRequired {
                file: self.name.clone(),
            });
        }
        let count = self.activity_log.writes_in_flight();
        if count > 0 {
            return Err(Error::WritesInFlight {
                file: self.name.clone(),
                count,
            });
        }
        self.flush_bitmap()?;
        let mut flags = self.superblock.state.flags;
        if !flags.contains(Flags::AL_CLEAN) {
            flags.insert(Flags::AL_CLEAN);
            self.write_state(VolumeState {
                flags,
                ..self.superblock.state
            })?;
        }
        Ok(())
    }

    /// Crash recovery, to run once after opening and before any write (DRBD's
    /// apply-al). If the activity log is not clean, every hot extent is
    /// marked dirty and the bitmap flushed, so every region that may have
    /// had a write in flight gets resynced; this is done whatever the role,
    /// since a Secondary's in-flight replicated writes may be torn too. If
    /// the log cannot be read completely, the whole device is marked dirty.
    /// A `primary` flag left set becomes `crashed-primary`. Idempotent.
    pub fn apply_activity_log(&mut self) -> Result<CrashRecovery, Error> {
        self.check_not_failed()?;
        let mut flags = self.superblock.state.flags;
        let crashed_primary = flags.contains(Flags::PRIMARY);
        if crashed_primary {
            flags.remove(Flags::PRIMARY);
            flags.insert(Flags::CRASHED_PRIMARY);
        }
        let applied = if flags.contains(Flags::AL_CLEAN) {
            AppliedLog::WasClean
        } else {
            let applied = if self.ring_complete {
                let hot = self.activity_log.hot_extents();
                for &extent in &hot {
                    let range = self.activity_log.extent_range(extent);
                    self.bitmap
                        .mark(range)
                        .map_err(|error| self.range_error(error))?;
                }
                AppliedLog::HotExtents(hot.len())
            } else {
                self.bitmap
                    .mark(0..self.usable_size())
                    .map_err(|error| self.range_error(error))?;
                AppliedLog::WholeDevice
            };
            self.flush_bitmap()?;
            flags.insert(Flags::AL_CLEAN);
            applied
        };
        if !self.ring_complete {
            self.write_full_ring()?;
        }
        if flags != self.superblock.state.flags {
            self.write_state(VolumeState {
                flags,
                ..self.superblock.state
            })?;
        }
        self.recovery_pending = false;
        Ok(CrashRecovery {
            crashed_primary,
            activity_log: applied,
        })
    }

    /// Closes the metadata without writing anything and gives the storage
    /// back (to simulate a crash in tests, or to reopen it).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// The same metadata on `wrap(storage)`: the storage, wrapped (e.g. in
    /// one that gives up on a disk that does not answer), now takes the
    /// reads and writes.
    pub fn map_storage<T: Storage>(self, wrap: impl FnOnce(S) -> T) -> Metadata<T> {
        Metadata {
            storage: wrap(self.storage),
            name: self.name,
            resource: self.resource,
            layout: self.layout,
            superblock: self.superblock,
            bitmap: self.bitmap,
            activity_log: self.activity_log,
            ring_complete: self.ring_complete,
            recovery_pending: self.recovery_pending,
            damaged_bitmap_pages: self.damaged_bitmap_pages,
            failure: self.failure,
        }
    }

    /// Everything in the metadata as text, for `haadm dump-md`.
    pub fn dump(&self) -> String {
        dump::render(
            &self.name,
            &self.superblock,
            &self.bitmap,
            &self.activity_log,
        )
    }

    fn check_not_failed(&self) -> Result<(), Error> {
        match &self.failure {
            Some(reason) => Err(Error::Failed {
                file: self.name.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    fn range_error(&self, error: RangeError) -> Error {
        Error::Range {
            file: self.name.clone(),
            error,
        }
    }

    /// Records an I/O failure: from now on the write path refuses to run.
    fn io_failed(&mut self, action: &str, error: io::Error) -> Error {
        let error = Error::Io {
            file: self.name.clone(),
            action: action.to_owned(),
            error,
        };
        self.failure = Some(error.to_string());
        error
    }

    fn write(&mut self, offset: u64, data: &[u8], action: &str) -> Result<(), Error> {
        self.storage
            .write_at(offset, data)
            .map_err(|error| self.io_failed(action, error))
    }

    fn sync(&mut self) -> Result<(), Error> {
        self.storage
            .sync()
            .map_err(|error| self.io_failed("sync", error))
    }

    /// Writes the superblock with `state` into the other slot and syncs.
    fn write_state(&mut self, state: VolumeState) -> Result<(), Error> {
        let next = Superblock {
            sequence: self.superblock.sequence + 1,
            state,
            ..self.superblock.clone()
        };
        let offset = self.layout.superblock_offset(next.slot());
        self.write(offset, &next.encode(), "write the superblock")?;
        self.sync()?;
        self.superblock = next;
        Ok(())
    }

    /// Writes `pages` (ascending), one I/O per run of up to
    /// [`PAGES_PER_IO`] consecutive pages, and records them as saved. The
    /// caller syncs.
    fn write_pages(&mut self, pages: &[u32]) -> Result<(), Error> {
        let uuid = self.superblock.device_uuid;
        let mut index = 0;
        while index < pages.len() {
            let run_start = index;
            while index + 1 < pages.len()
                && pages[index + 1] == pages[index] + 1
                && index + 1 - run_start < PAGES_PER_IO as usize
            {
                index += 1;
            }
            index += 1;
            let run = &pages[run_start..index];
            let mut bytes = Vec::with_capacity(run.len() * BLOCK_SIZE);
            for &page in run {
                bytes.extend_from_slice(&self.bitmap.encode_page(uuid, page));
            }
            self.write(
                self.layout.bitmap_page_offset(run[0]),
                &bytes,
                "write the bitmap",
            )?;
        }
        for &page in pages {
            self.bitmap.mark_page_saved(page);
        }
        Ok(())
    }

    /// Rewrites every ring slot with the current table and syncs.
    fn write_full_ring(&mut self) -> Result<(), Error> {
        for transaction in self.activity_log.full_ring() {
            let offset = self
                .layout
                .al_slot_offset(self.activity_log.ring_slot(transaction.sequence));
            self.write(offset, &transaction.encode(), "write the activity log")?;
        }
        self.sync()?;
        self.ring_complete = true;
        Ok(())
    }
}

/// Splits `range` at multiples of [`CHUNK`], so no piece touches more
/// extents than one transaction can add and no two pieces share an extent.
fn split_at_chunks(range: &Range<u64>) -> Vec<Range<u64>> {
    let mut pieces = Vec::new();
    let mut start = range.start;
    while start < range.end {
        let end = ((start / CHUNK + 1) * CHUNK).min(range.end);
        pieces.push(start..end);
        start = end;
    }
    pieces
}

#[cfg(test)]
// A list of one byte range is what these tests expect, not a typo for a range of values.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_at_transaction_boundaries() {
        assert_eq!(split_at_chunks(&(5..10)), [5..10]);
        assert!(split_at_chunks(&(7..7)).is_empty());
        assert_eq!(
            split_at_chunks(&(CHUNK - 1..2 * CHUNK + 1)),
            [CHUNK - 1..CHUNK, CHUNK..2 * CHUNK, 2 * CHUNK..2 * CHUNK + 1]
        );
    }
}
