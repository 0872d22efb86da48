//! Power-cut harness for the installer (issue #6): the real `Installer` and
//! the real `uboot` backend over storage that "loses power" at the Nth write
//! event (flash write, flash fsync or environment write; N random), then a
//! simulated power-on under U-Boot's boot-count rules, then the agent again —
//! sometimes cut again — until the install completes, the device boots the
//! new slot and confirms it.
//!
//! Storage model: flash writes land in a volatile list until `sync`; a power
//! cut keeps a random prefix of the unsynced writes (some reached the chip,
//! the rest did not). The environment store is atomic (old or new), as the
//! redundant-copy env guarantees. The install journal lives on the model
//! filesystem of `durable::model` (unsynced data torn or lost, unsynced
//! name changes undone or left empty), and its operations are write events
//! too: cuts land inside checkpoint updates. The other state records are in
//! a real directory, written atomically (rename), so a cut lands before or
//! after each of them.
//!
//! Every iteration asserts, at every power-on:
//! 1. U-Boot boots a slot whose images are a complete, verified release: the
//!    old slot with the old images, or the new slot with exactly the new
//!    images (it is only activated after verification);
//! 2. the booted slot is never written (the fake disk panics on any write
//!    into the running slot's partitions) and the old slot stays intact
//!    until the new one is confirmed;
//! 3. re-running the agent completes the install (resuming where the journal
//!    allows: the iterations that resumed mid-image are counted);
//! 4. the stored minimum security version rises only after `mark-good`;
//! 5. a run after a cut writes again at most one checkpoint interval of
//!    what earlier runs wrote (plus one write chunk, plus one bzip2 stream
//!    for a bzip2 payload, whose checkpoints wait for a stream end): the
//!    figure is printed.
//!
//! Default: 500 iterations (`OTA_POWER_CUT_RUNS=N` for long runs,
//! `OTA_POWER_CUT_SEED=S` to replay; see README "Long runs").

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::rc::Rc;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};

use ota_agent::bootctl::uboot::{EnvAccess, Uboot};
use ota_agent::bootctl::BootControl;
use ota_agent::bundle::bsdiff::{offtout, ReadAt, MAGIC};
use ota_agent::bundle::{
    Blob, Compression, DeviceFacts, Digest, Image, Kind, Manifest, PublicKey, TrustedKeys,
    CLOCK_FLOOR,
};
use ota_agent::durable::model::ModelFs;
use ota_agent::durable::Medium;
use ota_agent::gpt::{Guid, Partition};
use ota_agent::install::{self, Approved, Disk, Installer, NoProgress, Options, Payloads};
use ota_agent::slots::{Layout, Slot};
use ota_agent::state::StateDir;

use crate::common::bootloader::uboot_power_on;
use crate::common::rng::Rng;

/// Write events shared by the disk and the environment; the power fails at
/// event number `cut_at` (1-based), after which every operation fails.
#[derive(Default)]
struct Power {
    events: Cell<u64>,
    cut_at: Cell<Option<u64>>,
    dead: Cell<bool>,
}

impl Power {
    fn event(&self) -> io::Result<()> {
        if self.dead.get() {
            return Err(io::Error::other("power is off"));
        }
        let n = self.events.get() + 1;
        self.events.set(n);
        if self.cut_at.get() == Some(n) {
            self.dead.set(true);
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }
}

struct Flash {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
}

struct MemDisk {
    flash: RefCell<Flash>,
    power: Rc<Power>,
    /// Partitions of the running slot: any write there is a bug.
    protected: RefCell<Vec<(u64, u64, String)>>,
    /// Partitions of the slot being written, with how far earlier runs
    /// wrote into each (relative end offset).
    targets: RefCell<Vec<(u64, u64, u64)>>,
    /// Bytes written in this run below what earlier runs had written.
    rewritten: Cell<u64>,
}

impl MemDisk {
    fn view(&self) -> Vec<u8> {
        let f = self.flash.borrow();
        let mut v = f.durable.clone();
        for (off, data) in &f.pending {
            v[*off as usize..*off as usize + data.len()].copy_from_slice(data);
        }
        v
    }
    /// Power loss: a random prefix of the unsynced writes survives.
    fn lose_power(&self, rng: &mut Rng) {
        let mut f = self.flash.borrow_mut();
        let keep = rng.below(f.pending.len() as u64 + 1) as usize;
        let pending = std::mem::take(&mut f.pending);
        for (off, data) in pending.into_iter().take(keep) {
            f.durable[off as usize..off as usize + data.len()].copy_from_slice(&data);
        }
    }
    fn range(&self, off: u64, len: u64) -> Vec<u8> {
        self.view()[off as usize..(off + len) as usize].to_vec()
    }
}

impl Disk for MemDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if self.power.dead.get() {
            return Err(io::Error::other("power is off"));
        }
        let f = self.flash.borrow();
        let o = (offset as usize).min(f.durable.len());
        let n = buf.len().min(f.durable.len() - o);
        buf[..n].copy_from_slice(&f.durable[o..o + n]);
        // Unsynced writes are visible to reads (page cache), in order.
        for (at, data) in &f.pending {
            let (at, end) = (*at as usize, *at as usize + data.len());
            let (lo, hi) = (at.max(o), end.min(o + n));
            if lo < hi {
                buf[lo - o..hi - o].copy_from_slice(&data[lo - at..hi - at]);
            }
        }
        Ok(n)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        for (start, len, name) in self.protected.borrow().iter() {
            let end = offset + buf.len() as u64;
            assert!(
                end <= *start || offset >= start + len,
                "write of {} bytes at {offset} hits the booted slot's `{name}`",
                buf.len()
            );
        }
        self.power.event()?;
        let end = offset + buf.len() as u64;
        for (start, len, before) in self.targets.borrow().iter() {
            if offset >= *start && end <= start + len && *before > offset - start {
                let again = (*before).min(end - start) - (offset - start);
                self.rewritten.set(self.rewritten.get() + again);
            }
        }
        self.flash.borrow_mut().pending.push((offset, buf.to_vec()));
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.power.event()?;
        let mut f = self.flash.borrow_mut();
        let pending = std::mem::take(&mut f.pending);
        for (off, data) in pending {
            f.durable[off as usize..off as usize + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }
    fn describe(&self) -> String {
        "mem".into()
    }
}

/// The model filesystem holding the install journal, failing with the
/// same power as the disk.
struct CutMedium {
    fs: ModelFs,
    power: Rc<Power>,
}

impl CutMedium {
    fn alive(&self) -> io::Result<()> {
        match self.power.dead.get() {
            true => Err(io::Error::other("power is off")),
            false => Ok(()),
        }
    }
}

impl Medium for CutMedium {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        self.alive()?;
        self.fs.read(path)
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.power.event()?;
        self.fs.write_new(path, bytes)
    }
    fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.power.event()?;
        self.fs.overwrite(path, offset, bytes)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.power.event()?;
        self.fs.sync_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.power.event()?;
        self.fs.sync_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.power.event()?;
        self.fs.rename(from, to)
    }
}

struct CutEnv {
    vars: Rc<RefCell<BTreeMap<String, String>>>,
    power: Rc<Power>,
}

impl EnvAccess for CutEnv {
    fn load(&mut self) -> ota_agent::Result<BTreeMap<String, String>> {
        if self.power.dead.get() {
            return Err(ota_agent::Error::io(
                "env",
                io::Error::other("power is off"),
            ));
        }
        Ok(self.vars.borrow().clone())
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> ota_agent::Result<()>,
    ) -> ota_agent::Result<bool> {
        let mut vars = self.load()?;
        edit(&mut vars)?;
        if vars == *self.vars.borrow() {
            return Ok(false);
        }
        self.power
            .event()
            .map_err(|e| ota_agent::Error::io("env", e))?;
        *self.vars.borrow_mut() = vars;
        Ok(true)
    }
}

struct Bytes(Vec<u8>);

impl ReadAt for Bytes {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0[..].read_at(buf, offset)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }
}

struct MemPayloads {
    data: Vec<Bytes>,
    local: bool,
    /// Every `open_at` of the current install: (image, payload offset).
    opened: Vec<(usize, u64)>,
    /// A slow source: this pause per read of at most 1 KiB.
    delay: Option<std::time::Duration>,
}

/// Reads at most 1 KiB at a time, pausing before each read.
struct Slow<R>(R, std::time::Duration);

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        std::thread::sleep(self.1);
        let n = buf.len().min(1024);
        self.0.read(&mut buf[..n])
    }
}

impl Payloads for MemPayloads {
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        self.opened.push((index, offset));
        let d = &self.data[index].0;
        let r = Cursor::new(&d[(offset as usize).min(d.len())..]);
        Ok(match self.delay {
            Some(pause) => Box::new(Slow(r, pause)),
            None => Box::new(r),
        })
    }
    fn local(&self, index: usize) -> Option<&dyn ReadAt> {
        self.local.then(|| &self.data[index] as &dyn ReadAt)
    }
}

fn bz(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A multi-stream bzip2 payload, one stream per `every` bytes (as `ota-sign`
/// writes them): the installer can resume at a stream start.
fn bz_streams(data: &[u8], every: usize) -> Vec<u8> {
    data.chunks(every).flat_map(bz).collect()
}

/// A BSDIFF40 patch from explicit control triples: `new` = `old`[..n] plus
/// the byte differences, then `new`'s remaining bytes as extra.
fn patch(old: &[u8], new: &[u8]) -> Vec<u8> {
    let n = old.len().min(new.len());
    let diff: Vec<u8> = (0..n).map(|i| new[i].wrapping_sub(old[i])).collect();
    let extra = &new[n..];
    let mut ctrl = Vec::new();
    for v in [n as i64, extra.len() as i64, 0] {
        ctrl.extend_from_slice(&offtout(v));
    }
    let (c, d, e) = (bz(&ctrl), bz(&diff), bz(extra));
    let mut out = MAGIC.to_vec();
    for v in [c.len() as i64, d.len() as i64, new.len() as i64] {
        out.extend_from_slice(&offtout(v));
    }
    out.extend(c);
    out.extend(d);
    out.extend(e);
    out
}

/// The state directory: on tmpfs when there is one. Its records are
/// atomic renames either way; real fsyncs would only make 500 runs slow.
fn state_dir() -> tempfile::TempDir {
    match Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm").unwrap(),
        false => tempfile::tempdir().unwrap(),
    }
}

fn blob(b: &[u8]) -> Blob {
    Blob {
        size: b.len() as u64,
        sha256: Digest::of(b),
    }
}

const ROOTFS: u64 = 64 << 10;
const BOOT: u64 = 16 << 10;

fn part(number: u32, name: &str, offset: u64, size: u64) -> Partition {
    Partition {
        number,
        name: name.into(),
        type_guid: Guid([1; 16]),
        guid: Guid([number as u8; 16]),
        offset,
        size,
    }
}

/// `m` signed by the test key and approved for product `p` at 1.0.0.
fn approve(m: &Manifest) -> Approved {
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let json = m.to_json();
    let sig: DerSignature = key.sign(json.as_bytes());
    let keys = TrustedKeys::new(vec![PublicKey::from_uncompressed_point(
        "k",
        key.verifying_key().to_sec1_point(false).as_bytes(),
    )
    .unwrap()]);
    let facts = DeviceFacts {
        product: "p".into(),
        hardware: None,
        installed: semver::Version::new(1, 0, 0),
        min_security_version: 0,
        now: CLOCK_FLOOR + 10,
        reinstall: false,
    };
    Approved::new(json.as_bytes(), sig.as_bytes(), &keys, &facts).unwrap()
}

/// One device with a release installed in slot a and an update to install.
struct World {
    disk: MemDisk,
    layout: Layout,
    env: Rc<RefCell<BTreeMap<String, String>>>,
    power: Rc<Power>,
    state: tempfile::TempDir,
    journal: Rc<CutMedium>,
    /// Replaces the harness tuning.
    options: Option<Options>,
    old: Vec<(String, Vec<u8>)>,
    new: Vec<(String, Vec<u8>)>,
    approved: Approved,
    payloads: MemPayloads,
}

fn world(rng: &mut Rng) -> World {
    world_with(rng, |_| {})
}

fn world_with(rng: &mut Rng, tamper: impl Fn(&mut Manifest)) -> World {
    let parts = vec![
        part(1, "rootfs_a", 4096, ROOTFS),
        part(2, "rootfs_b", 4096 + ROOTFS, ROOTFS),
        part(3, "boot_a", 4096 + 2 * ROOTFS, BOOT),
        part(4, "boot_b", 4096 + 2 * ROOTFS + BOOT, BOOT),
    ];
    let total = 4096 + 2 * ROOTFS + 2 * BOOT;
    let layout = Layout::from_partitions(Path::new("mem"), parts).unwrap();
    let mut durable = rng.image(total as usize, 5, 700); // garbage in slot b
    let mut old = Vec::new();
    let mut new = Vec::new();
    let mut images = Vec::new();
    let mut payloads = Vec::new();
    let names: &[(&str, u64)] = if rng.below(2) == 0 {
        &[("rootfs", ROOTFS)]
    } else {
        &[("rootfs", ROOTFS), ("boot", BOOT)]
    };
    for (name, size) in names {
        let old_len = (size / 2 + rng.below(size / 2)) as usize;
        let base = rng.image(old_len, 5, 700);
        let a = layout.partition(name, Slot::A).unwrap();
        durable[a.offset as usize..a.offset as usize + old_len].copy_from_slice(&base);
        let new_len = (size / 2 + rng.below(size / 2)) as usize;
        let mut img = base.clone();
        img.resize(new_len, 0);
        for _ in 0..8 {
            let at = rng.below(new_len as u64 - 100) as usize;
            let fill = rng.image(100, 5, 700);
            img[at..at + 100].copy_from_slice(&fill);
        }
        let (payload, compression, kind) = match rng.below(3) {
            0 => (img.clone(), Compression::None, Kind::Full),
            // Streams smaller than the harness's 16 KiB checkpoint interval.
            1 => (bz_streams(&img, 6 << 10), Compression::Bzip2, Kind::Full),
            _ => (
                patch(&base, &img),
                Compression::None,
                Kind::Bsdiff { base: blob(&base) },
            ),
        };
        images.push(Image {
            name: name.to_string(),
            file: format!("{name}.payload"),
            payload: blob(&payload),
            compression,
            kind,
            result: blob(&img),
        });
        payloads.push(Bytes(payload));
        old.push((name.to_string(), base));
        new.push((name.to_string(), img));
    }
    let m = Manifest {
        product: "p".into(),
        hardware: vec![],
        version: semver::Version::new(2, 0, 0),
        security_version: 5,
        urgency: Default::default(),
        created: CLOCK_FLOOR,
        expires: CLOCK_FLOOR + 1_000_000,
        images,
    };
    let mut m = m;
    tamper(&mut m);
    let approved = approve(&m);
    let mut vars = BTreeMap::new();
    for (k, v) in [
        ("ota_slot", "a"),
        ("upgrade_available", "0"),
        ("bootcount", "0"),
        ("bootlimit", "3"),
        ("altbootcmd", "run fallback"),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    let power = Rc::new(Power::default());
    World {
        disk: MemDisk {
            flash: RefCell::new(Flash {
                durable,
                pending: Vec::new(),
            }),
            power: power.clone(),
            protected: RefCell::new(Vec::new()),
            targets: RefCell::new(Vec::new()),
            rewritten: Cell::new(0),
        },
        layout,
        env: Rc::new(RefCell::new(vars)),
        journal: Rc::new(CutMedium {
            fs: ModelFs::new(rng.next()),
            power: power.clone(),
        }),
        power,
        state: state_dir(),
        old,
        new,
        approved,
        payloads: MemPayloads {
            opened: Vec::new(),
            data: payloads,
            local: rng.below(2) == 0,
            delay: None,
        },
        options: None,
    }
}

impl World {
    fn slot_holds(&self, slot: Slot, images: &[(String, Vec<u8>)]) -> bool {
        images.iter().all(|(name, bytes)| {
            let p = self.layout.partition(name, slot).unwrap();
            self.disk.range(p.offset, bytes.len() as u64) == *bytes
        })
    }

    fn backend(&self, booted: Slot) -> Uboot<CutEnv> {
        let env = CutEnv {
            vars: self.env.clone(),
            power: self.power.clone(),
        };
        Uboot::new(env, booted, 3, StateDir::new(self.state.path())).unwrap()
    }

    /// One agent process on `booted`: install, with the power failing at
    /// event `cut` (relative to this run).
    fn install(&mut self, booted: Slot, cut: Option<u64>) -> ota_agent::Result<install::Outcome> {
        self.power.events.set(0);
        self.power.cut_at.set(cut);
        self.payloads.opened.clear();
        *self.disk.protected.borrow_mut() = self
            .layout
            .pairs
            .values()
            .map(|p| {
                let r = &p[booted.index()];
                (r.offset, r.size, r.name.clone())
            })
            .collect();
        // How far earlier runs wrote into each target partition.
        let mut targets = self.disk.targets.borrow_mut();
        let earlier: Vec<u64> = targets.iter().map(|t| t.2).collect();
        *targets = self
            .layout
            .pairs
            .values()
            .map(|p| &p[booted.other().index()])
            .enumerate()
            .map(|(i, r)| (r.offset, r.size, earlier.get(i).copied().unwrap_or(0)))
            .collect();
        drop(targets);
        self.disk.rewritten.set(0);
        let mut bc = self.backend(booted);
        let mut progress = NoProgress;
        let options = Options {
            checkpoint: CHECKPOINT,
            chunk: CHUNK as usize,
            ..Options::default()
        };
        Installer::new(
            &self.disk,
            &self.layout,
            &mut bc,
            self.state.path(),
            &mut progress,
        )
        .with_options(self.options.unwrap_or(options))
        .with_journal_medium(self.journal.clone())
        .install(&self.approved, &mut self.payloads)
        .inspect(|_| self.note_high_water())
        .inspect_err(|_| self.note_high_water())
    }

    /// Records how far this run wrote into each target partition.
    fn note_high_water(&self) {
        let f = self.disk.flash.borrow();
        let mut targets = self.disk.targets.borrow_mut();
        for (start, len, before) in targets.iter_mut() {
            for (off, data) in &f.pending {
                let end = off + data.len() as u64;
                if *off >= *start && end <= *start + *len {
                    *before = (*before).max(end - *start);
                }
            }
        }
    }

    /// The journal as the installer sees it.
    fn journal(&self) -> ota_agent::install::journal::Journal {
        ota_agent::install::journal::Journal::with_medium(self.state.path(), self.journal.clone())
    }

    /// Power on after a cut (or a clean shutdown): returns the booted slot.
    fn power_on(&mut self, rng: &mut Rng, seed: u64) -> Slot {
        self.disk.lose_power(rng);
        self.journal.fs.power_on();
        self.power.dead.set(false);
        self.power.cut_at.set(None);
        let (slot, _) = uboot_power_on(&mut self.env.borrow_mut());
        // 1. What boots is a complete release.
        let ok = match slot {
            Slot::A => self.slot_holds(Slot::A, &self.old),
            // Activated (possibly by a run cut right after set_active).
            Slot::B => self.slot_holds(Slot::B, &self.new),
        };
        assert!(
            ok,
            "seed {seed}: U-Boot boots slot {slot} which is not a verified release (env {:?})",
            self.env.borrow()
        );
        // 2. The old slot is intact until the new one is confirmed.
        assert!(
            self.slot_holds(Slot::A, &self.old),
            "seed {seed}: the old slot a changed"
        );
        slot
    }
}

#[derive(Default, Debug)]
struct Tally {
    iterations: u64,
    cuts: u64,
    resumed_mid_image: u64,
    /// Mid-image resumes of a bzip2 image, continued at a stream start.
    resumed_mid_bzip2: u64,
    /// Mid-image resumes of a delta image, continued at a checkpoint.
    resumed_mid_delta: u64,
    /// Bytes written again after a cut: the most in one run, and in all.
    max_rewritten: u64,
    total_rewritten: u64,
}

/// Harness tuning: a checkpoint every 16 KiB, 4 KiB writes, bzip2 streams
/// of 6 KiB of image.
const CHECKPOINT: u64 = 16 << 10;
const CHUNK: u64 = 4 << 10;
const STREAM: u64 = 6 << 10;

fn iteration(seed: u64, tally: &mut Tally) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    // Probe: how many write events does an uninterrupted install make?
    let events = {
        let mut probe = world(&mut Rng(rng.0));
        probe.install(Slot::A, None).unwrap();
        probe.power.events.get()
    };
    let mut w = world(&mut rng);
    let mut cuts_left = 1 + rng.below(3);
    let mut booted = Slot::A;
    let mut activated = false;
    let mut cut_after_activation = false;
    for round in 0..12 {
        let cut = (cuts_left > 0).then(|| 1 + rng.below(events));
        let after_cut = round > 0;
        let result = w.install(booted, cut);
        let fired = w.power.dead.get();
        if after_cut {
            let again = w.disk.rewritten.get();
            tally.total_rewritten += again;
            tally.max_rewritten = tally.max_rewritten.max(again);
            // 5. At most one checkpoint interval written again.
            let bound = CHECKPOINT + CHUNK + STREAM;
            assert!(
                again <= bound,
                "seed {seed}: round {round} wrote {again} bytes again (bound {bound})"
            );
        }
        match (&result, fired) {
            (Ok(outcome), false) => {
                activated = true;
                if let Some((i, off)) = outcome.resumed.filter(|&(_, off)| off > 0) {
                    tally.resumed_mid_image += 1;
                    if w.approved.manifest().images[i].compression == Compression::Bzip2 {
                        // Not decoded from the payload's start again: its
                        // first bytes were never fetched in this run.
                        assert!(
                            w.payloads.opened.iter().any(|&(j, p)| j == i && p > 0)
                                && !w.payloads.opened.contains(&(i, 0)),
                            "seed {seed}: bzip2 image {i} resumed at {off} but opened {:?}",
                            w.payloads.opened
                        );
                        tally.resumed_mid_bzip2 += 1;
                    }
                    if matches!(w.approved.manifest().images[i].kind, Kind::Bsdiff { .. }) {
                        tally.resumed_mid_delta += 1;
                    }
                }
                assert!(
                    w.slot_holds(Slot::B, &w.new),
                    "seed {seed}: install reported success, slot b is not the release"
                );
                assert_eq!(
                    ota_agent::state::StateDir::new(w.state.path())
                        .min_security_version()
                        .unwrap(),
                    0,
                    "seed {seed}: security floor raised before confirmation"
                );
                break;
            }
            (Err(_), true) => {
                tally.cuts += 1;
                cuts_left -= 1;
                booted = w.power_on(&mut rng, seed);
                if booted == Slot::B {
                    // The cut came after set_active (while the journal was
                    // being emptied): the update is activated.
                    activated = true;
                    cut_after_activation = true;
                    break;
                }
            }
            (Ok(_), true) => unreachable!("success after the power went off"),
            (Err(e), false) => panic!("seed {seed}: round {round}: install failed: {e}"),
        }
        if round == 11 {
            panic!("seed {seed}: the install never completed");
        }
    }
    // The new slot boots (trial), is confirmed; only now the floor rises.
    assert!(activated, "seed {seed}");
    let slot = w.power_on(&mut rng, seed);
    assert_eq!(
        slot,
        Slot::B,
        "seed {seed}: the activated slot does not boot"
    );
    let mut bc = w.backend(Slot::B);
    bc.mark_successful().unwrap();
    let raised = install::confirm_security_version(w.state.path(), Slot::B).unwrap();
    assert_eq!(raised, Some(5), "seed {seed}");
    assert_eq!(
        ota_agent::state::StateDir::new(w.state.path())
            .min_security_version()
            .unwrap(),
        5
    );
    assert!(!w.state.path().join("install-journal").exists());
    if !cut_after_activation {
        assert_eq!(
            w.journal().load(),
            None,
            "seed {seed}: journal left after the install"
        );
    }
    tally.iterations += 1;
}

#[test]
fn power_cuts_at_random_writes_always_leave_a_bootable_verified_device() {
    let runs: u64 = std::env::var("OTA_POWER_CUT_RUNS")
        .ok()
        .map(|v| v.parse().expect("OTA_POWER_CUT_RUNS is a number"))
        .unwrap_or(500);
    let base: u64 = std::env::var("OTA_POWER_CUT_SEED")
        .ok()
        .map(|v| v.parse().expect("OTA_POWER_CUT_SEED is a number"))
        .unwrap_or(0x5eed);
    let mut tally = Tally::default();
    for i in 0..runs {
        iteration(base + i, &mut tally);
    }
    eprintln!("power-cut harness: {tally:?}");
    eprintln!(
        "power-cut harness: bytes written again after a cut: at most {} in one run (bound: checkpoint {CHECKPOINT} + chunk {CHUNK} + bzip2 stream {STREAM}), {} per cut on average",
        tally.max_rewritten,
        tally.total_rewritten / tally.cuts.max(1)
    );
    assert_eq!(tally.iterations, runs);
    // The harness must actually exercise cuts and mid-image resumes.
    assert!(tally.cuts >= runs, "{tally:?}");
    assert!(tally.resumed_mid_image > runs / 10, "{tally:?}");
    assert!(tally.resumed_mid_bzip2 > runs / 50, "{tally:?}");
    assert!(tally.resumed_mid_delta > runs / 50, "{tally:?}");
}

/// A journal for another manifest is discarded and the install starts over.
#[test]
fn journal_of_another_manifest_is_discarded() {
    let mut rng = Rng(42);
    let mut w = world(&mut rng);
    let other = ota_agent::install::journal::Record {
        manifest: Digest([9; 32]),
        slot: Slot::B,
        phase: ota_agent::install::journal::Phase::Writing,
        image: 0,
        offset: 8192,
        payload_offset: 8192,
        prefix: Digest([1; 32]),
    };
    w.journal().store(&other).unwrap();
    assert!(w.journal().load().is_some());
    let out = w.install(Slot::A, None).unwrap();
    assert_eq!(out.resumed, None);
    assert!(w.slot_holds(Slot::B, &w.new));
}

/// A signed payload that decompresses to more than its `result_size` (the
/// signer lied, or was compromised): the install stops at the limit, writes
/// nothing past it, leaves the slot unbootable and does not activate it.
#[test]
fn stream_longer_than_result_size_is_stopped_and_not_activated() {
    let mut rng = Rng(7);
    let mut w = world_with(&mut rng, |m| {
        let img = &mut m.images[0];
        img.compression = Compression::Bzip2;
        img.kind = Kind::Full;
        img.result.size -= 1000;
    });
    // Make the payload really bzip2 of the full (longer) image.
    let full = w.new[0].1.clone();
    w.payloads.data[0] = Bytes(bz(&full));
    let mut m = w.approved.manifest().clone();
    m.images[0].payload = blob(&w.payloads.data[0].0);
    m.images[0].result.size = full.len() as u64 - 1000;
    m.images.truncate(1);
    w.approved = approve(&m);
    let b = w.layout.partition("rootfs", Slot::B).unwrap().clone();
    let tail_before = w.disk.range(
        b.offset + m.images[0].result.size,
        b.size - m.images[0].result.size,
    );
    let e = w.install(Slot::A, None).unwrap_err().to_string();
    assert!(e.contains("more than result_size"), "{e}");
    let tail_after = w.disk.range(
        b.offset + m.images[0].result.size,
        b.size - m.images[0].result.size,
    );
    assert!(
        tail_before == tail_after,
        "bytes past result_size were written"
    );
    let env = w.env.borrow().clone();
    assert_eq!(env["ota_slot"], "a");
    assert!(
        env.get("ota_bad").is_some_and(|v| v.contains('b')),
        "{env:?}"
    );
    assert!(w.slot_holds(Slot::A, &w.old));
}

/// The time rule of the checkpoint interval: with a byte interval the image
/// never reaches, a slow source still gets checkpoints every
/// `checkpoint_time`, so a cut mid-image resumes past byte 0; with a time
/// interval that never passes either, it restarts at 0.
#[test]
fn slow_sources_are_checkpointed_by_time() {
    use std::time::Duration;
    let resumed_at = |time: Duration| -> u64 {
        let mut w = (0..500u64)
            .map(|s| world(&mut Rng(1000 + s)))
            .find(|w| {
                let img = &w.approved.manifest().images[0];
                img.compression == Compression::None && matches!(img.kind, Kind::Full)
            })
            .expect("a world with an uncompressed full image first");
        w.options = Some(Options {
            checkpoint: 1 << 40,
            checkpoint_time: time,
            chunk: CHUNK as usize,
        });
        w.payloads.delay = Some(Duration::from_millis(1));
        // Events: 1 env write, 3 for the journal's first record, then one
        // per 4 KiB chunk, and per checkpoint a sync and 2-3 journal
        // operations. The 12th lands inside image 0 (≥ 32 KiB) either way.
        assert!(w.install(Slot::A, Some(12)).is_err());
        assert!(w.power.dead.get(), "the cut did not happen");
        assert_eq!(w.power_on(&mut Rng(5), 1), Slot::A);
        w.payloads.delay = None;
        let out = w.install(Slot::A, None).unwrap();
        assert!(w.slot_holds(Slot::B, &w.new));
        out.resumed.map(|(_, off)| off).unwrap_or(0)
    };
    let by_time = resumed_at(Duration::from_millis(3));
    assert!(by_time > 0, "no checkpoint by time");
    assert_eq!(
        resumed_at(Duration::from_secs(3600)),
        0,
        "the control resumed"
    );
    eprintln!("slow source: resumed at byte {by_time} with a 3 ms time interval");
}
