//! Tests of the VRRP core: the codec, the receive checks, and the state
//! machine on a simulated LAN with a simulated clock.

mod captures;
mod checks;
mod codec;
mod convergence;
mod election;
mod lan;
mod sync_groups;
mod tracking;
