//! Helpers shared by the integration-test modules, each written once:
//! running the agent and host tools ([`tools`]), the bootloader simulated
//! from its rules ([`bootloader`]), GPT disk images with a
//! U-Boot environment made by the real tools ([`disk`]), the files a
//! device's agent reads ([`device`]), keys and
//! signatures made by openssl ([`openssl`]), a seeded PRNG ([`rng`]),
//! the simulated appliance MCU ([`mcu_sim`]), nginx ([`nginx`]), free
//! local ports ([`ports`]), signed one-image releases ([`release`]) and
//! a channel server with a device to update from it ([`channel`]).

pub mod bootloader;
pub mod channel;
pub mod device;
pub mod disk;
pub mod mcu_sim;
pub mod nginx;
pub mod openssl;
pub mod ports;
pub mod release;
pub mod rng;
pub mod tools;
