//! Access to the whole U-Boot environment as name → value: the trait, the
//! real storage ([`FwEnv`]) and the in-memory fake for tests ([`MemEnv`]).

use std::collections::BTreeMap;

use crate::Result;

/// Access to the whole U-Boot environment as name → value.
pub trait EnvAccess {
    /// Reads every variable.
    fn load(&mut self) -> Result<BTreeMap<String, String>>;
    /// Reads, lets `edit` change the variables, and writes them back in ONE
    /// write if they changed — all under one hold of the storage's lock, so
    /// a concurrent `fw_setenv` is not lost. The write is atomic with respect
    /// to power loss (redundant copies / CRC in the storage layer). An error
    /// from `edit` writes nothing. Returns whether it wrote.
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool>;
    /// Where the copies live (the installer never writes over them).
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        Vec::new()
    }
}

/// The in-memory fake of [`EnvAccess`] for tests: counts writes.
#[derive(Debug, Clone, Default)]
pub struct MemEnv {
    /// The variables.
    pub vars: BTreeMap<String, String>,
    /// How many writes were made.
    pub writes: usize,
}

impl EnvAccess for MemEnv {
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        Ok(self.vars.clone())
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        let mut vars = self.vars.clone();
        edit(&mut vars)?;
        if vars == self.vars {
            return Ok(false);
        }
        self.vars = vars;
        self.writes += 1;
        Ok(true)
    }
}

impl<E: EnvAccess + ?Sized> EnvAccess for Box<E> {
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        (**self).load()
    }
    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        (**self).update(edit)
    }
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        (**self).locations()
    }
}

/// [`EnvAccess`] on the real environment: `uboot_env::EnvStore` as
/// `fw_env.config` describes it (redundant copies, CRC, flags byte).
pub struct FwEnv {
    store: uboot_env::EnvStore,
    devices: Vec<uboot_env::EnvDevice>,
}

impl FwEnv {
    /// Opens the storage named by the `fw_env.config` at `path`.
    pub fn open(path: &std::path::Path) -> Result<FwEnv> {
        let config = uboot_env::FwEnvConfig::load(path)?;
        Ok(FwEnv {
            store: uboot_env::EnvStore::open(&config)?,
            devices: config.devices().to_vec(),
        })
    }
}

impl EnvAccess for FwEnv {
    fn locations(&self) -> Vec<crate::slots::Reserved> {
        self.devices
            .iter()
            .enumerate()
            .map(|(i, d)| crate::slots::Reserved {
                what: format!("U-Boot env copy {}", i + 1),
                device: d.path.clone(),
                offset: d.offset,
                // An MTD copy may span several erase blocks.
                len: match (d.sector_size, d.sector_count) {
                    (Some(size), Some(count)) => (size * count).max(d.size as u64),
                    _ => d.size as u64,
                },
            })
            .collect()
    }

    /// No valid copy is an error: boot control never starts from a guess.
    fn load(&mut self) -> Result<BTreeMap<String, String>> {
        let env = self.store.read()?;
        Ok(to_map(&env))
    }

    fn update(
        &mut self,
        edit: &mut dyn FnMut(&mut BTreeMap<String, String>) -> Result<()>,
    ) -> Result<bool> {
        // The store's closure returns its own error type: keep ours aside and
        // leave the environment unchanged, so nothing is written.
        let mut refused = None;
        let wrote = self.store.update(None, |env| {
            let mut vars = to_map(env);
            if let Err(e) = edit(&mut vars) {
                refused = Some(e);
                return Ok(());
            }
            let mut next = uboot_env::Env::new();
            for (k, v) in &vars {
                next.set(k, v)?;
            }
            *env = next;
            Ok(())
        })?;
        match refused {
            Some(e) => Err(e),
            // ONE write of the whole image, to the non-current copy.
            None => Ok(wrote),
        }
    }
}

fn to_map(env: &uboot_env::Env) -> BTreeMap<String, String> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
