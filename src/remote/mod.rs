//! Copies through archiver appliances: the appliance's API as data ([`api`]), its side
//! of the work ([`workshop`]: the repositories it may touch, planning and transfer;
//! [`tasks`]: task slots; [`server`]: the authenticated HTTP service; [`listen`]: its connections, bounded), and the runner's
//! side ([`address`]: URLs and `dns+` names to appliances, [`client`] for one appliance, [`pool`] to dispatch chains over several and
//! recover when one is lost, [`dispatch`]: the pool as the copy engine's `Offload`). The appliance reads, verifies, re-seals and uploads
//! packs next to the source; the runner selects and commits, so only control messages
//! cross the WAN and an appliance that dies leaves whole packs only.

pub mod address;
pub mod api;
pub mod client;
pub mod dispatch;
pub mod listen;
pub mod pool;
pub mod server;
pub mod tasks;
pub mod tokens;
pub mod workshop;
