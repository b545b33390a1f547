"""The committed copy of upstream's storage.proto, and the gorums.proto the
package ships, are the Go peer's (the latter with a comment added)."""

from __future__ import annotations

from pathlib import Path

from gorums_mw.codegen import include_dir
from tests.interop.goproc import ROOT
from tests.interop.proto import storage_pb2


def test_storage_proto_is_the_go_peers(go_binary: Path) -> None:
    ours = ROOT / "protos" / "tests" / "interop" / "proto" / "storage.proto"
    assert ours.read_bytes() == (go_binary.parent / "proto" / "storage.proto").read_bytes()


def test_shipped_gorums_proto_is_the_go_peers(go_binary: Path) -> None:
    ours = (Path(include_dir()) / "gorums.proto").read_text().splitlines()
    code = [line for line in ours if not line.startswith("//")]
    while code and not code[0]:
        code.pop(0)
    theirs = (go_binary.parent / "proto" / "gorums.proto").read_text().splitlines()
    assert code == theirs


def test_generated_code_keeps_gorums_method_options() -> None:
    methods = storage_pb2.DESCRIPTOR.services_by_name["Storage"].methods_by_name
    options = {name: str(method.GetOptions()).strip() for name, method in methods.items()}
    assert options["ReadQC"] == options["ReadCorrectable"] == "[gorums.quorumcall]: true"
    assert options["WriteMulticast"] == "[gorums.multicast]: true"
    assert options["WriteUnicast"] == "[gorums.unicast]: true"
    assert options["ReadRPC"] == ""
    assert methods["ReadCorrectable"].server_streaming
