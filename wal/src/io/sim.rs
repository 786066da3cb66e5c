//! A simulated disk for power-loss tests: an in-memory file system behind [`Io`] that
//! records every operation, and builds from any prefix of them the images a power failure
//! at that point could leave.
//!
//! SIGKILL keeps the page cache, so killing a process cannot show what a power failure
//! loses; this can. The model is the conservative one a file system promises:
//!
//! - a file's bytes are durable once a `sync_data` of it (or a `write_and_sync`) completes;
//!   bytes written since may or may not be on the disk, in any combination;
//! - a creation, rename or removal is durable once its directory is synced; until then a
//!   power failure may undo it (a file created but never made durable in its directory is
//!   gone, whatever was synced in it).
//!
//! [`SimIo::crash_image`] builds one image per [`CrashMode`]: unsynced writes dropped, all
//! kept, the last one torn at sector granularity, only the last one kept (the earlier
//! ones reordered after it and lost), or all kept but those to one region of the files. [`CrashImage::write_to`] puts an image in a real
//! directory, for the code under test to open with a real backend.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Io, LogFile, OpenFlags, Preallocation};
use crate::sync::{lock, Mutex, MutexGuard};

/// The unit a torn write is cut at.
pub const SECTOR: usize = 512;

/// One recorded operation.
#[derive(Debug, Clone)]
enum Event {
    Create { path: PathBuf, file: usize },
    Write { file: usize, offset: u64, data: Vec<u8> },
    Extend { file: usize, len: u64 },
    Sync { file: usize },
    Rename { from: PathBuf, to: PathBuf },
    Remove { path: PathBuf },
    SyncDir { dir: PathBuf },
}

/// What happens to writes not yet synced when the power fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// None of them reached the disk.
    DropUnsynced,
    /// All of them did (what a process crash leaves).
    KeepUnsynced,
    /// All but the last did; of the last, only its first `sectors` whole sectors (counted
    /// from the sector its offset falls in).
    TornLast {
        /// Sectors of the last write that reached the disk.
        sectors: usize,
    },
    /// Only the last did: the earlier ones were reordered after it and lost.
    OnlyLast,
    /// All but those touching file offsets `from..to` did (in any file): the writes to
    /// one region, such as a segment's header block, reordered after the others and lost.
    DropUnsyncedIn {
        /// The first offset of the region.
        from: u64,
        /// The end of the region.
        to: u64,
    },
}

/// The files and directories a crash leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashImage {
    /// Every file, with its bytes.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
    /// Every directory created.
    pub dirs: Vec<PathBuf>,
}

impl CrashImage {
    /// Writes the image under `to`, each path with its prefix `from` replaced by `to`
    /// (paths outside `from` are skipped).
    ///
    /// # Errors
    /// An I/O error creating a directory or writing a file.
    pub fn write_to(&self, from: &Path, to: &Path) -> io::Result<()> {
        for dir in &self.dirs {
            if let Ok(relative) = dir.strip_prefix(from) {
                std::fs::create_dir_all(to.join(relative))?;
            }
        }
        for (path, bytes) in &self.files {
            if let Ok(relative) = path.strip_prefix(from) {
                let target = to.join(relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(target, bytes)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct State {
    /// The current namespace: path to file number.
    names: BTreeMap<PathBuf, usize>,
    /// Each file's current bytes, by number.
    contents: Vec<Vec<u8>>,
    dirs: Vec<PathBuf>,
    events: Vec<Event>,
}

/// The simulated disk; clone the `Arc` to keep a handle after giving it to a log.
#[derive(Debug, Default)]
pub struct SimIo {
    state: Arc<Mutex<State>>,
}

impl SimIo {
    /// An empty disk.
    pub fn new() -> Arc<SimIo> {
        Arc::new(SimIo::default())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// How many operations have been recorded: a crash point, for
    /// [`SimIo::crash_image`].
    pub fn events(&self) -> usize {
        self.lock().events.len()
    }

    /// The image a power failure after the first `at` operations leaves, under `mode`.
    pub fn crash_image(&self, at: usize, mode: CrashMode) -> CrashImage {
        let state = self.lock();
        let events = &state.events[..at.min(state.events.len())];
        // Replay: each file's durable bytes and its writes since; the namespace as synced
        // and as it stands.
        let mut durable: Vec<Vec<u8>> = Vec::new();
        let mut unsynced: Vec<Vec<(u64, Vec<u8>)>> = Vec::new();
        let mut current: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let mut synced_names: BTreeMap<PathBuf, usize> = BTreeMap::new();
        let mut dirs: Vec<PathBuf> = state.dirs.clone();
        dirs.sort();
        for event in events {
            match event {
                Event::Create { path, file } => {
                    while durable.len() <= *file {
                        durable.push(Vec::new());
                        unsynced.push(Vec::new());
                    }
                    current.insert(path.clone(), *file);
                }
                Event::Write { file, offset, data } => {
                    unsynced[*file].push((*offset, data.clone()));
                }
                Event::Extend { file, len } => {
                    // Zeroes reserved: written out as a write of zeroes past the end.
                    let from = apply_all(&durable[*file], &unsynced[*file]).len() as u64;
                    if *len > from {
                        let zeros = vec![0u8; usize::try_from(*len - from).unwrap_or(0)];
                        unsynced[*file].push((from, zeros));
                    }
                }
                Event::Sync { file } => {
                    durable[*file] = apply_all(&durable[*file], &unsynced[*file]);
                    unsynced[*file].clear();
                }
                Event::Rename { from, to } => {
                    if let Some(file) = current.remove(from) {
                        current.insert(to.clone(), file);
                    }
                }
                Event::Remove { path } => {
                    current.remove(path);
                }
                Event::SyncDir { dir } => {
                    synced_names.retain(|path, _| path.parent() != Some(dir.as_path()));
                    for (path, file) in &current {
                        if path.parent() == Some(dir.as_path()) {
                            synced_names.insert(path.clone(), *file);
                        }
                    }
                }
            }
        }
        let mut files = BTreeMap::new();
        for (path, &file) in &synced_names {
            let bytes = image_of(&durable[file], &unsynced[file], mode);
            files.insert(path.clone(), bytes);
        }
        CrashImage { files, dirs }
    }
}

/// One file's bytes after a crash under `mode`: `durable`, and of the writes since,
/// what `mode` keeps.
fn image_of(durable: &[u8], pending: &[(u64, Vec<u8>)], mode: CrashMode) -> Vec<u8> {
    match mode {
        CrashMode::DropUnsynced => durable.to_vec(),
        CrashMode::KeepUnsynced => apply_all(durable, pending),
        CrashMode::TornLast { sectors } => match pending.split_last() {
            None => durable.to_vec(),
            Some(((offset, data), earlier)) => {
                let mut bytes = apply_all(durable, earlier);
                let into_sector = usize::try_from(*offset).unwrap_or(0) % SECTOR;
                let kept = (sectors * SECTOR).saturating_sub(into_sector).min(data.len());
                apply(&mut bytes, *offset, &data[..kept]);
                bytes
            }
        },
        CrashMode::DropUnsyncedIn { from, to } => {
            let outside = |(offset, data): &&(u64, Vec<u8>)| {
                offset.saturating_add(data.len() as u64) <= from || *offset >= to
            };
            let kept: Vec<(u64, Vec<u8>)> = pending.iter().filter(outside).cloned().collect();
            apply_all(durable, &kept)
        }
        CrashMode::OnlyLast => match pending.last() {
            None => durable.to_vec(),
            Some((offset, data)) => {
                let mut bytes = durable.to_vec();
                apply(&mut bytes, *offset, data);
                bytes
            }
        },
    }
}

fn apply_all(base: &[u8], writes: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for (offset, data) in writes {
        apply(&mut bytes, *offset, data);
    }
    bytes
}

fn apply(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let Ok(offset) = usize::try_from(offset) else { return };
    let end = offset + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[offset..end].copy_from_slice(data);
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such simulated file", path.display()))
}

impl Io for SimIo {
    fn name(&self) -> String {
        "sim".into()
    }

    fn create(&self, path: &Path, _flags: OpenFlags) -> io::Result<Box<dyn LogFile>> {
        let mut state = self.lock();
        if state.names.contains_key(path) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()));
        }
        let file = state.contents.len();
        state.contents.push(Vec::new());
        state.names.insert(path.to_path_buf(), file);
        state.events.push(Event::Create { path: path.to_path_buf(), file });
        Ok(Box::new(SimFile { state: Arc::clone(&self.state), file }))
    }

    fn open(
        &self,
        path: &Path,
        _writable: bool,
        _flags: OpenFlags,
    ) -> io::Result<Box<dyn LogFile>> {
        let state = self.lock();
        let file = *state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Box::new(SimFile { state: Arc::clone(&self.state), file }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.events.push(Event::Remove { path: path.to_path_buf() });
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let file = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), file);
        state.events.push(Event::Rename { from: from.to_path_buf(), to: to.to_path_buf() });
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.dirs.iter().any(|known| known == dir) {
            state.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.lock();
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name().map(OsString::from))
            .collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.lock().events.push(Event::SyncDir { dir: dir.to_path_buf() });
        Ok(())
    }
}

/// An open simulated file.
#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    file: usize,
}

impl SimFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl LogFile for SimFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.lock().contents[self.file].len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let state = self.lock();
        let bytes = &state.contents[self.file];
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
        let len = buf.len().min(bytes.len() - start);
        buf[..len].copy_from_slice(&bytes[start..start + len]);
        Ok(len)
    }

    fn preallocate(&self, len: u64, _how: Preallocation) -> io::Result<()> {
        let mut state = self.lock();
        let bytes = &mut state.contents[self.file];
        if (bytes.len() as u64) < len {
            bytes.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
        }
        state.events.push(Event::Extend { file: self.file, len });
        Ok(())
    }

    fn write_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
        let data: Vec<u8> = bufs.iter().flat_map(|buf| buf.iter().copied()).collect();
        let mut state = self.lock();
        apply(&mut state.contents[self.file], offset, &data);
        let len = data.len();
        state.events.push(Event::Write { file: self.file, offset, data });
        Ok(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.lock().events.push(Event::Sync { file: self.file });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: &dyn LogFile, offset: u64, data: &[u8]) {
        assert_eq!(file.write_at(&[IoSlice::new(data)], offset).ok(), Some(data.len()));
    }

    #[test]
    fn images_keep_what_was_synced_and_vary_what_was_not() {
        let sim = SimIo::new();
        let dir = Path::new("/sim");
        let path = dir.join("a");
        let file = sim.create(&path, OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        write(file.as_ref(), 0, b"synced");
        file.sync_data().unwrap_or_else(|e| panic!("{e}"));
        write(file.as_ref(), 6, &[1u8; 600]);
        write(file.as_ref(), 1024, &[2u8; 1024]);
        let at = sim.events();
        let image = |mode| sim.crash_image(at, mode).files.get(&path).cloned().unwrap_or_default();
        assert_eq!(image(CrashMode::DropUnsynced), b"synced");
        let kept = image(CrashMode::KeepUnsynced);
        assert_eq!(kept.len(), 2048);
        assert!(kept[6..606].iter().all(|&b| b == 1) && kept[1024..].iter().all(|&b| b == 2));
        let torn = image(CrashMode::TornLast { sectors: 1 });
        assert_eq!(torn.len(), 1024 + SECTOR, "one sector of the last write");
        assert!(torn[6..606].iter().all(|&b| b == 1));
        let only_last = image(CrashMode::OnlyLast);
        assert_eq!(&only_last[..6], b"synced");
        assert!(only_last[6..606].iter().all(|&b| b == 0), "the earlier write was lost");
        // Before the directory sync, the file itself may be gone.
        assert!(sim.crash_image(1, CrashMode::KeepUnsynced).files.is_empty());
    }

    #[test]
    fn a_rename_not_yet_synced_in_its_directory_may_be_undone() {
        let sim = SimIo::new();
        let dir = Path::new("/sim");
        let file =
            sim.create(&dir.join("x.tmp"), OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
        write(file.as_ref(), 0, b"data");
        file.sync_data().unwrap_or_else(|e| panic!("{e}"));
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        sim.rename(&dir.join("x.tmp"), &dir.join("x")).unwrap_or_else(|e| panic!("{e}"));
        let before = sim.crash_image(sim.events(), CrashMode::KeepUnsynced);
        assert!(before.files.contains_key(&dir.join("x.tmp")), "{before:?}");
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        let after = sim.crash_image(sim.events(), CrashMode::DropUnsynced);
        assert_eq!(after.files.keys().collect::<Vec<_>>(), [&dir.join("x")]);
    }

    /// A durable file in `dir` named `name`, holding `data`.
    fn durable_file(sim: &SimIo, dir: &Path, name: &str, data: &[u8]) {
        let file =
            sim.create(&dir.join(name), OpenFlags::default()).unwrap_or_else(|e| panic!("{e}"));
        write(file.as_ref(), 0, data);
        file.sync_data().unwrap_or_else(|e| panic!("{e}"));
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_removal_not_yet_synced_in_its_directory_may_be_undone() {
        let sim = SimIo::new();
        let dir = Path::new("/sim");
        durable_file(&sim, dir, "old", b"kept until synced");
        sim.remove(&dir.join("old")).unwrap_or_else(|e| panic!("{e}"));
        assert!(sim.list_dir(dir).unwrap_or_else(|e| panic!("{e}")).is_empty(), "gone now");
        for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
            let before = sim.crash_image(sim.events(), mode);
            assert_eq!(
                before.files.get(&dir.join("old")).map(Vec::as_slice),
                Some(&b"kept until synced"[..])
            );
        }
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(sim.crash_image(sim.events(), CrashMode::KeepUnsynced).files.is_empty());
    }

    #[test]
    fn a_rename_over_an_existing_name_leaves_the_old_file_or_the_new_one() {
        let sim = SimIo::new();
        let dir = Path::new("/sim");
        durable_file(&sim, dir, "current", b"old");
        durable_file(&sim, dir, "next", b"new");
        sim.rename(&dir.join("next"), &dir.join("current")).unwrap_or_else(|e| panic!("{e}"));
        let names = sim.list_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names, [OsString::from("current")], "replaced");
        let contents = |at| {
            let image = sim.crash_image(at, CrashMode::DropUnsynced);
            image.files.get(&dir.join("current")).cloned()
        };
        assert_eq!(contents(sim.events()).as_deref(), Some(&b"old"[..]), "until synced");
        sim.sync_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(contents(sim.events()).as_deref(), Some(&b"new"[..]));
        let image = sim.crash_image(sim.events(), CrashMode::DropUnsynced);
        assert_eq!(image.files.len(), 1, "{image:?}");
    }
}
