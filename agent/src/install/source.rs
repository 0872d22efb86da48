//! Source phase: where payload bytes come from ([`Payloads`]: a bundle file
//! or directory, or HTTP), and delta patches made available for positioned
//! reads (the local payload, or a copy kept in `state_dir`).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::{refuse, refuse_io};
use super::files;
use super::progress::Bookkeeping;
use super::readback::check_blob;
use crate::bundle::bsdiff::{self, ReadAt};
use crate::bundle::{self, Bundle, BundleError, Image, PayloadSource};
use crate::update_status::Phase;
use crate::{Error, Result};

/// Where the payload bytes come from.
pub trait Payloads {
    /// A reader of image `index`'s payload (manifest order) from byte
    /// `offset` to its end. The installer reads at most the signed size and
    /// checks the bytes; an error mid-stream keeps the journal so the next
    /// attempt resumes.
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>>;

    /// The whole payload for positioned reads when it is already stored
    /// locally (bundle file or directory). Deltas need positioned reads: a
    /// source without this has its patch copied to `state_dir` first.
    fn local(&self, _index: usize) -> Option<&dyn ReadAt> {
        None
    }
}

/// The payloads of a bundle file or directory.
pub struct BundlePayloads {
    sources: Vec<PayloadSource>,
}

impl BundlePayloads {
    /// Opens every payload of `bundle` (checking each length).
    pub fn new(bundle: &Bundle) -> Result<BundlePayloads> {
        let sources = (0..bundle.manifest.images.len())
            .map(|i| bundle.payload(i))
            .collect::<Result<_>>()?;
        Ok(BundlePayloads { sources })
    }
}

impl Payloads for BundlePayloads {
    fn open_at(&mut self, index: usize, offset: u64) -> io::Result<Box<dyn Read + '_>> {
        let src = self
            .sources
            .get(index)
            .ok_or_else(|| io::Error::other(format!("no payload number {index}")))?;
        Ok(Box::new(AtReader::new(src, offset)))
    }
    fn local(&self, index: usize) -> Option<&dyn ReadAt> {
        self.sources.get(index).map(|s| s as &dyn ReadAt)
    }
}

/// A sequential reader over a [`ReadAt`] from a position.
pub struct AtReader<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    pos: u64,
}

impl<'a, R: ReadAt + ?Sized> AtReader<'a, R> {
    /// Reads `src` from `pos`.
    pub fn new(src: &'a R, pos: u64) -> Self {
        AtReader { src, pos }
    }
}

impl<R: ReadAt + ?Sized> Read for AtReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Where a verified delta patch is.
pub(super) enum PatchLocation {
    /// In the bundle ([`Payloads::local`]).
    Local,
    /// Downloaded into `state_dir`.
    Kept(PathBuf),
}

/// Removes kept delta patches not belonging to manifest `tag` (all when
/// `tag` is empty).
pub(super) fn remove_stale_patches(state_dir: &Path, tag: &str) {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if files::is_patch_of(&name, tag) == Some(false) {
            if let Err(err) = std::fs::remove_file(e.path()) {
                log::warn!("{}: {err}", e.path().display());
            }
        }
    }
}

/// Makes the patch of image `index` available for positioned reads and
/// checks its size and SHA-256: the local payload, or a copy in `state_dir`
/// (resumed by its length; kept across restarts until the install ends).
pub(super) fn fetch_patch(
    state_dir: &Path,
    tag: &str,
    index: usize,
    img: &Image,
    payloads: &mut dyn Payloads,
    books: &mut Bookkeeping<'_>,
    overall: u64,
) -> Result<PatchLocation> {
    let check = |src: &dyn ReadAt| -> Result<()> {
        let got = bundle::hash_reader(AtReader::new(src, 0))
            .map_err(|e| refuse(img, format!("reading the patch: {e}")))?;
        check_blob(img, "patch", got, img.payload)
    };
    if let Some(local) = payloads.local(index) {
        check(local)?;
        let h = bsdiff::read_header(local).map_err(BundleError::from)?;
        if h.new_size != img.result.size {
            return Err(refuse(
                img,
                format!(
                    "patch makes {} bytes, manifest result_size is {}",
                    h.new_size, img.result.size
                ),
            ));
        }
        return Ok(PatchLocation::Local);
    }
    std::fs::create_dir_all(state_dir).map_err(|e| Error::io(state_dir, e))?;
    let path = files::patch_file(state_dir, tag, index);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut have = file.metadata().map_err(|e| Error::io(&path, e))?.len();
    if have > img.payload.size {
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        have = 0;
    }
    if have < img.payload.size {
        let want = img.payload.size - have;
        books.phase(
            Phase::Downloading,
            &img.name,
            Some(img.payload.size),
            overall,
        );
        books.progress.advance(have, overall);
        let src = payloads
            .open_at(index, have)
            .map_err(|e| refuse(img, format!("opening the patch at {have}: {e}")))?;
        let got = copy_counted(src.take(want), &mut file, &mut |n| {
            books.progress.advance(have + n, overall);
            books.go_on()
        })
        .map_err(|e| refuse_io(img, "downloading the patch", e))?;
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        if got < want {
            return Err(Error::io(
                &path,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "patch source ended at {} of {} bytes",
                        have + got,
                        img.payload.size
                    ),
                ),
            ));
        }
    }
    if let Err(e) = check(&file) {
        // A wrong copy is useless: the next attempt downloads it again.
        super::activate::remove_if_present(&path)?;
        return Err(e);
    }
    Ok(PatchLocation::Kept(path))
}

/// `io::copy` that reports the bytes copied so far after every chunk.
fn copy_counted(
    mut src: impl Read,
    dst: &mut impl Write,
    report: &mut dyn FnMut(u64) -> io::Result<()>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut n = 0u64;
    loop {
        let got = match src.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..got])?;
        n += got as u64;
        report(n)?;
    }
}
