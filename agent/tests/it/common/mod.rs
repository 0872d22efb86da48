//! Helpers shared by the integration-test modules, each written once:
//! running the agent and host tools ([`tools`]), the bootloader simulated
//! from its rules ([`bootloader`]), GPT disk images with a
//! U-Boot environment made by the real tools ([`disk`]), keys and
//! signatures made by openssl ([`openssl`]), a seeded PRNG ([`rng`]) and
//! the simulated appliance MCU ([`mcu_sim`]).

pub mod bootloader;
pub mod disk;
pub mod mcu_sim;
pub mod openssl;
pub mod rng;
pub mod tools;
