"""The peer servers `vs_peer` compares against (the fastest of them, round by round)."""

from __future__ import annotations

from bench.peer import Peer
from bench.peer_bentoml import BENTOML
from bench.peer_kserve import KSERVE
from bench.peer_mlserver import MLSERVER

PEERS: tuple[Peer, ...] = (MLSERVER, BENTOML, KSERVE)
