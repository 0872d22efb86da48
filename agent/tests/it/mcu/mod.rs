//! MCU link tests through a pseudo-terminal: the agent's real serial code
//! talks to a simulated MCU (`common/mcu_sim.rs`) running in a thread.

mod cli;
mod gate;
