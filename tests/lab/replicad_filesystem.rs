//! A real file system on replicad's export, as a service on the Primary
//! would use it: nbdfuse exposes the export as a file, a loop device makes
//! it a block device, and ext4 lives on that. What was written must
//! survive an unmount, a clean `e2fsck -fn`, and a remount through a new
//! NBD connection.

use std::fs;
use std::path::Path;

use hapair_lab::{
    FuseExport, LoopDevice, Mount, ReplicadNode, lab_lock, path_arg, program, random_bytes,
    require_root, run_ok,
};

const BACKING_SIZE: u64 = 128 << 20;

/// Files of awkward sizes: empty, one byte, a block and a bit, a few MiB.
const FILE_SIZES: [usize; 5] = [0, 1, 4097, 1 << 20, (3 << 20) + 12345];

/// The export stacked up to a block device: nbdfuse, then a loop device.
/// Fields drop in declaration order: the loop device goes first.
struct BlockDevice {
    device: LoopDevice,
    fuse: FuseExport,
}

impl BlockDevice {
    fn attach(node: &ReplicadNode) -> BlockDevice {
        let fuse = FuseExport::mount(node);
        let device = LoopDevice::attach(&fuse.file());
        BlockDevice { device, fuse }
    }

    fn path(&self) -> &Path {
        self.device.device()
    }

    /// Detaches the loop device and unmounts nbdfuse; panics unless both
    /// succeed.
    fn detach(self) {
        self.device.detach();
        self.fuse.unmount();
    }
}

#[test]
fn ext4_on_the_export_survives_unmount_fsck_and_remount() {
    let _lock = lab_lock();
    if !require_root() {
        return;
    }
    let node = ReplicadNode::primary(BACKING_SIZE);
    let mountpoint = node.new_path("ext4", "mnt");
    fs::create_dir(&mountpoint).expect("create the mount point");
    let files: Vec<(String, Vec<u8>)> = FILE_SIZES
        .iter()
        .enumerate()
        .map(|(n, &size)| (format!("file-{n}-{size}.bin"), random_bytes(size)))
        .collect();

    let block = BlockDevice::attach(&node);
    run_ok(&[
        path_arg(&program("mkfs.ext4")),
        "-q",
        "-F",
        path_arg(block.path()),
    ]);
    let mount = Mount::new(block.path(), &mountpoint);
    fs::create_dir(mount.target().join("dir")).expect("create a directory");
    for (name, content) in &files {
        fs::write(mount.target().join("dir").join(name), content)
            .unwrap_or_else(|error| panic!("cannot write {name}: {error}"));
    }
    mount.unmount();
    block.detach();
    assert_eq!(node.open_count(), 0, "every NBD connection is closed");

    // Everything from here reads through new NBD connections, so nothing
    // can come from the first mount's caches.
    let block = BlockDevice::attach(&node);
    let fsck = run_ok(&[path_arg(&program("e2fsck")), "-fn", path_arg(block.path())]);
    assert!(
        fsck.stdout.contains("Pass 5"),
        "e2fsck ran every pass: {}",
        fsck.stdout
    );
    let mount = Mount::new(block.path(), &mountpoint);
    for (name, content) in &files {
        let read = fs::read(mount.target().join("dir").join(name))
            .unwrap_or_else(|error| panic!("cannot read {name} after the remount: {error}"));
        assert_eq!(read.len(), content.len(), "{name}: size after the remount");
        assert!(
            read == *content,
            "{name}: content differs after the remount"
        );
    }
    mount.unmount();
    block.detach();
}
