//! A model filesystem for power-cut tests of [`Medium`] users: what a cut
//! keeps is only what was synced, and of everything else an adversarial
//! (seeded) choice — a random number of each file's unsynced data writes,
//! the last of them torn at a random byte, and for every name operation
//! since the last directory sync (in order) one of: not done, done, or
//! torn — a created file or a rename target left EMPTY (what vfat was seen
//! to leave of a cut rename: the target empty, the source still there).
//!
//! Every operation is an event; [`ModelFs::cut_at`] makes event N fail and
//! every later one too ("power off"); [`ModelFs::power_on`] computes what
//! survived and continues from it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use super::Medium;

#[derive(Debug, Clone, Default)]
struct Node {
    /// What reads see.
    visible: Vec<u8>,
    /// What survives a cut for sure.
    durable: Vec<u8>,
    /// Unsynced changes, oldest first: `(offset, bytes)`; offset `u64::MAX`
    /// marks a truncation to zero.
    pending: Vec<(u64, Vec<u8>)>,
}

/// A name operation not yet made durable by a directory sync.
#[derive(Debug, Clone)]
enum NameOp {
    Create(PathBuf, usize),
    Rename(PathBuf, PathBuf, usize),
}

#[derive(Debug, Default)]
struct State {
    nodes: Vec<Node>,
    /// Names as reads see them.
    names: BTreeMap<PathBuf, usize>,
    /// Names as the last directory sync left them.
    durable_names: BTreeMap<PathBuf, usize>,
    /// Name operations since then, oldest first.
    name_ops: Vec<NameOp>,
    events: u64,
    cut_at: Option<u64>,
    dead: bool,
    rng: u64,
}

/// The model; see the module docs.
#[derive(Debug, Default)]
pub struct ModelFs {
    state: RefCell<State>,
}

const TRUNCATE: u64 = u64::MAX;

impl State {
    fn event(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("power is off"));
        }
        self.events += 1;
        if self.cut_at == Some(self.events) {
            self.dead = true;
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn apply(data: &mut Vec<u8>, off: u64, bytes: &[u8]) {
    if off == TRUNCATE {
        data.clear();
        return;
    }
    let off = off as usize;
    if data.len() < off + bytes.len() {
        data.resize(off + bytes.len(), 0);
    }
    data[off..off + bytes.len()].copy_from_slice(bytes);
}

impl ModelFs {
    /// An empty model whose adversarial choices follow `seed`.
    pub fn new(seed: u64) -> ModelFs {
        let fs = ModelFs::default();
        fs.state.borrow_mut().rng = seed | 1;
        fs
    }

    /// Events (operations) so far.
    pub fn events(&self) -> u64 {
        self.state.borrow().events
    }

    /// The power fails at event `n` (counted from now) and stays off.
    pub fn cut_at(&self, n: Option<u64>) {
        let mut s = self.state.borrow_mut();
        s.cut_at = n.map(|n| s.events + n);
    }

    /// Whether the power is off.
    pub fn is_dead(&self) -> bool {
        self.state.borrow().dead
    }

    /// Power comes back: each file keeps its synced data plus a random
    /// number of its unsynced writes (the last of them torn at a random
    /// byte), each changed name its old entry, its new one, or an empty
    /// file; then everything counts as durable.
    pub fn power_on(&self) {
        let mut guard = self.state.borrow_mut();
        let s = &mut *guard;
        for i in 0..s.nodes.len() {
            let pending = std::mem::take(&mut s.nodes[i].pending);
            let keep = s.below(pending.len() as u64 + 1) as usize;
            let mut data = s.nodes[i].durable.clone();
            for (k, (off, bytes)) in pending.iter().take(keep).enumerate() {
                if k + 1 == keep && *off != TRUNCATE {
                    let torn = s.below(bytes.len() as u64 + 1) as usize;
                    apply(&mut data, *off, &bytes[..torn]);
                } else {
                    apply(&mut data, *off, bytes);
                }
            }
            s.nodes[i].durable = data.clone();
            s.nodes[i].visible = data;
        }
        let mut names = s.durable_names.clone();
        for op in std::mem::take(&mut s.name_ops) {
            let outcome = s.below(3);
            if outcome == 0 {
                continue; // not done
            }
            let empty = |s: &mut State| {
                s.nodes.push(Node::default());
                s.nodes.len() - 1
            };
            match op {
                NameOp::Create(path, node) => {
                    let node = if outcome == 1 { node } else { empty(s) };
                    names.insert(path, node);
                }
                NameOp::Rename(from, to, node) => {
                    if outcome == 1 {
                        names.remove(&from);
                        names.insert(to, node);
                    } else {
                        // Torn: the target's entry empty, the source kept.
                        let e = empty(s);
                        names.insert(to, e);
                    }
                }
            }
        }
        s.names = names.clone();
        s.durable_names = names;
        s.dead = false;
        s.cut_at = None;
    }

    /// A file's content as reads see it (no event).
    pub fn peek(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.state.borrow();
        s.names.get(path).map(|&n| s.nodes[n].visible.clone())
    }

    /// Every file name (no event).
    pub fn names(&self) -> Vec<PathBuf> {
        self.state.borrow().names.keys().cloned().collect()
    }
}

impl Medium for ModelFs {
    fn read(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let s = self.state.borrow();
        if s.dead {
            return Err(io::Error::other("power is off"));
        }
        Ok(s.names.get(path).map(|&n| s.nodes[n].visible.clone()))
    }
    fn write_new(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.event()?;
        let n = match s.names.get(path) {
            Some(&n) => n,
            None => {
                s.nodes.push(Node::default());
                let n = s.nodes.len() - 1;
                s.names.insert(path.to_owned(), n);
                s.name_ops.push(NameOp::Create(path.to_owned(), n));
                n
            }
        };
        let node = &mut s.nodes[n];
        node.pending.push((TRUNCATE, Vec::new()));
        node.pending.push((0, bytes.to_vec()));
        node.visible = bytes.to_vec();
        Ok(())
    }
    fn overwrite(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.event()?;
        let n = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let node = &mut s.nodes[n];
        assert!(
            offset as usize + bytes.len() <= node.visible.len(),
            "overwrite past the end of {}",
            path.display()
        );
        node.pending.push((offset, bytes.to_vec()));
        apply(&mut node.visible, offset, bytes);
        Ok(())
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.event()?;
        let n = *s
            .names
            .get(path)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let node = &mut s.nodes[n];
        node.pending.clear();
        node.durable = node.visible.clone();
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.event()?;
        s.durable_names = s.names.clone();
        s.name_ops.clear();
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        s.event()?;
        let n = s
            .names
            .remove(from)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        s.names.insert(to.to_owned(), n);
        s.name_ops
            .push(NameOp::Rename(from.to_owned(), to.to_owned(), n));
        Ok(())
    }
}
