//! The peer wire codec: every message replicas exchange (openraft's RPCs,
//! snapshots, forwarded proposals, and their replies) as a checksummed
//! postcard frame. The first byte picks the message type, and whether the
//! rest is taken raw (exercising length and checksum checks) or wrapped in a
//! correct header (exercising postcard decoding of the payload). Also the
//! vitals probes replicas exchange and the data directory's `fenced.meta`
//! (read through a `MemDisk`). Properties: never a panic; whatever decodes
//! re-encodes to a frame that decodes to the same bytes.
#![no_main]

use fenced_core::machine::command::Request;
use fenced_core::Response;
use fenced_fuzz::framed;
use fenced_io::disk::{Disk, MemDisk};
use fenced_io::frame;
use fenced_replica::peer::network::SnapshotRequest;
use fenced_replica::peer::health::{ProbeReply, ProbeRequest};
use fenced_replica::storage::state_machine::decode_snapshot_data;
use fenced_replica::storage::types::TypeConfig;
use libfuzzer_sys::fuzz_target;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn round_trip<T: Serialize + DeserializeOwned>(buf: &[u8]) -> Option<T> {
    let v: T = frame::decode_exact(buf).ok()?;
    let again = frame::encode(&v).expect("a decoded message re-encodes");
    let v2: T = frame::decode_exact(&again).expect("a re-encoded message decodes");
    assert_eq!(frame::encode(&v2).expect("re-encodes"), again, "encoding is not stable");
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let owned;
    let buf = if sel & 0x80 != 0 {
        owned = framed(rest);
        &owned[..]
    } else {
        rest
    };
    match sel & 0x7f {
        0 => drop(round_trip::<AppendEntriesRequest<TypeConfig>>(buf)),
        1 => drop(round_trip::<AppendEntriesResponse<TypeConfig>>(buf)),
        2 => drop(round_trip::<VoteRequest<TypeConfig>>(buf)),
        3 => drop(round_trip::<VoteResponse<TypeConfig>>(buf)),
        4 => {
            if let Some(s) = round_trip::<SnapshotRequest>(buf) {
                let _ = decode_snapshot_data(&s.data);
            }
        }
        5 => drop(round_trip::<SnapshotResponse<TypeConfig>>(buf)),
        6 => drop(round_trip::<TransferLeaderRequest<TypeConfig>>(buf)),
        7 => drop(round_trip::<TransferLeaderResponse<TypeConfig>>(buf)),
        8 => drop(round_trip::<Request>(buf)),
        9 => drop(round_trip::<(Response, u64)>(buf)),
        10 => drop(round_trip::<ProbeRequest>(buf)),
        11 => drop(round_trip::<ProbeReply>(buf)),
        12 => {
            let disk = MemDisk::new();
            if disk.write_atomic(fenced_replica::storage::data_dir::META, buf).is_ok() {
                let _ = fenced_replica::storage::data_dir::read(&disk);
            }
        }
        _ => {
            let _ = decode_snapshot_data(buf);
        }
    }
});
